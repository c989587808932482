//! One-time tokens for streaming requests, as kubelet's `requestCache`: a CRI call stores
//! its request under a fresh unguessable token and answers with a URL naming it; the
//! HTTP request on that URL takes the request out again. A token works once, and only
//! within its time to live; the cache holds a bounded number of them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rand::TryRngCore;
use tokio::time::Instant;

/// Random bytes per token: 128 bits (kubelet uses 64).
const TOKEN_BYTES: usize = 16;

/// Why a request could not be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// As many unexpired tokens as the cache holds are waiting to be used.
    #[error("maximum number of in-flight streaming requests ({0}) exceeded")]
    Full(usize),
    /// The system's random source failed.
    #[error("no random token: {0}")]
    Random(String),
}

/// Requests waiting for their streaming connection, by token.
pub struct RequestCache<T> {
    /// Entries and their insertion order.
    state: Mutex<State<T>>,
    /// How long a token stays valid (kubelet: one minute).
    ttl: Duration,
    /// Most tokens held at once (kubelet: 1000).
    max: usize,
}

struct State<T> {
    /// Request and expiry per token.
    entries: HashMap<String, (T, Instant)>,
    /// Tokens oldest first, for expiring them in order. A consumed token's entry may
    /// stay here until it comes up; it is skipped then.
    order: VecDeque<(String, Instant)>,
}

impl<T> RequestCache<T> {
    /// An empty cache whose tokens live `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Self {
        RequestCache {
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `request` and returns its token.
    pub fn insert(&self, request: T) -> Result<String, CacheError> {
        let now = Instant::now();
        let mut st = self.lock();
        st.expire(now);
        if st.entries.len() >= self.max {
            return Err(CacheError::Full(self.max));
        }
        let token = loop {
            let token = new_token()?;
            if !st.entries.contains_key(&token) {
                break token;
            }
        };
        let expiry = now + self.ttl;
        st.entries.insert(token.clone(), (request, expiry));
        st.order.push_back((token.clone(), expiry));
        Ok(token)
    }

    /// Takes the request stored under `token`: `None` if the token is unknown, was
    /// used already, or expired.
    pub fn consume(&self, token: &str) -> Option<T> {
        let now = Instant::now();
        let mut st = self.lock();
        let (request, expiry) = st.entries.remove(token)?;
        (now < expiry).then_some(request)
    }

    /// Tokens currently held (unexpired or not yet collected).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> State<T> {
    /// Drops the tokens whose time is up, oldest first, and forgets used ones.
    fn expire(&mut self, now: Instant) {
        let live = |entries: &HashMap<String, (T, Instant)>, token: &String, expiry: &Instant| {
            entries.get(token).is_some_and(|(_, e)| e == expiry)
        };
        while let Some((token, expiry)) = self.order.front() {
            let held = live(&self.entries, token, expiry);
            if held && *expiry > now {
                break;
            }
            if held {
                self.entries.remove(token);
            }
            self.order.pop_front();
        }
        // Used tokens behind a live one would pile up under a fast insert-and-use loop.
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(token, expiry)| live(entries, token, expiry));
        }
    }
}

/// A token from the operating system's random source, URL-safe (hex).
fn new_token() -> Result<String, CacheError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| CacheError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_token_works_once_and_only_within_its_time() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let a = cache.insert("a").unwrap();
        let b = cache.insert("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(cache.consume(&a), Some("a"));
        assert_eq!(cache.consume(&a), None, "single use");
        assert_eq!(cache.consume("not-a-token"), None);
        tokio::time::advance(Duration::from_secs(59)).await;
        let c = cache.insert("c").unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.consume(&b), None, "expired after 60 s");
        assert_eq!(cache.consume(&c), Some("c"), "59 s later it still has 59 s");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_and_expiry_makes_room() {
        let cache = RequestCache::new(Duration::from_secs(60), 3);
        let first = cache.insert(1).unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        cache.insert(2).unwrap();
        cache.insert(3).unwrap();
        assert_eq!(cache.insert(4), Err(CacheError::Full(3)));
        // A used token frees its place at once.
        assert_eq!(cache.consume(&first), Some(1));
        tokio::time::advance(Duration::from_secs(10)).await;
        let fourth = cache.insert(4).unwrap();
        assert_eq!(cache.insert(5), Err(CacheError::Full(3)));
        // The two inserted at 30 s expire at 90 s: room for two more; the one of 40 s
        // is still there.
        tokio::time::advance(Duration::from_secs(50)).await;
        cache.insert(5).unwrap();
        cache.insert(6).unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.consume(&fourth), Some(4));
    }

    #[test]
    fn tokens_do_not_repeat() {
        let tokens: std::collections::HashSet<String> =
            (0..1000).map(|_| new_token().unwrap()).collect();
        assert_eq!(tokens.len(), 1000);
    }
}
