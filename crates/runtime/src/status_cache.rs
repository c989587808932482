//! What each pod's shim last said about its pause and containers, so that listings
//! (`podhost ps -a`, CRI ListPodSandbox/ListContainers, a worker's container statuses)
//! answer from memory instead of asking every shim on the request path.
//!
//! An answer stays valid until something may have changed it: an exit event from the
//! shim's subscription, or any request of ours that changes the shim's state (create,
//! start, signal, remove, shutdown) invalidates it. What the shim cannot report itself
//! (it was stopped or hangs) is bounded by the time to live: an older answer is asked
//! again. A request that was already under way when its sandbox was invalidated may
//! carry the old state: its answer is dropped (generations).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::shim_client::ShimStatus;

/// How long a cached answer is used without news from the shim. Longer than a pod
/// worker's steady check (10 s ±25 %), which asks every shim of podhost's pods and so
/// keeps their answers fresh: a listing then asks no shim. A kubelet's relist (every
/// second) keeps those of its sandboxes fresh the same way.
pub const STATUS_TTL: Duration = Duration::from_secs(30);

/// A shim's last answer to `status`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// It answered.
    Status(ShimStatus),
    /// It accepted the request but gave no answer within `timeout` (request `op`).
    Unresponsive {
        /// The request that went unanswered.
        op: &'static str,
        /// How long it was waited for.
        timeout: Duration,
    },
}

#[derive(Debug)]
struct Entry {
    /// Changes on every invalidation: an answer is stored only under the generation
    /// its request started in.
    generation: u64,
    answer: Option<(Instant, Answer)>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Source of generations, unique over the cache's life (also across a sandbox
    /// forgotten and asked about again).
    next: u64,
}

/// Last shim answers per sandbox id.
#[derive(Debug)]
pub struct StatusCache {
    inner: Mutex<Inner>,
    ttl: Duration,
}

impl Default for StatusCache {
    fn default() -> Self {
        Self::new(STATUS_TTL)
    }
}

impl StatusCache {
    /// An empty cache whose answers live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        StatusCache {
            inner: Mutex::new(Inner::default()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map half changed (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation a status request about `id` starts in (pass it to [`Self::store`]).
    pub fn begin(&self, id: &str) -> u64 {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get(id) {
            return e.generation;
        }
        inner.next += 1;
        let generation = inner.next;
        inner.entries.insert(
            id.to_string(),
            Entry {
                generation,
                answer: None,
            },
        );
        generation
    }

    /// Keep `answer`, got at `now` by a request begun in `generation`, unless `id` was
    /// invalidated or forgotten since.
    pub fn store(&self, id: &str, generation: u64, answer: Answer, now: Instant) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(id) {
            if e.generation == generation {
                e.answer = Some((now, answer));
            }
        }
    }

    /// The answer about `id` if one is known and younger than the time to live at `now`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Answer> {
        let inner = self.lock();
        let (at, answer) = inner.entries.get(id)?.answer.as_ref()?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| answer.clone())
    }

    /// Something about `id` changed (an exit, a request of ours): the next reader asks.
    pub fn invalidate(&self, id: &str) {
        let mut inner = self.lock();
        inner.next += 1;
        let generation = inner.next;
        if let Some(e) = inner.entries.get_mut(id) {
            e.generation = generation;
            e.answer = None;
        }
    }

    /// The sandbox is gone: drop what is known about it.
    pub fn forget(&self, id: &str) {
        self.lock().entries.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pause_running: bool) -> Answer {
        Answer::Status(ShimStatus {
            pause_pid: Some(7),
            pause_running,
            containers: Vec::new(),
        })
    }

    fn running(a: Option<Answer>) -> Option<bool> {
        match a? {
            Answer::Status(s) => Some(s.pause_running),
            Answer::Unresponsive { .. } => None,
        }
    }

    #[test]
    fn an_answer_is_kept_until_its_time_to_live() {
        let c = StatusCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(c.get("a", t0).is_none());
        let g = c.begin("a");
        c.store("a", g, status(true), t0);
        assert_eq!(running(c.get("a", t0 + Duration::from_secs(9))), Some(true));
        assert!(c.get("a", t0 + Duration::from_secs(10)).is_none());
        assert!(c.get("b", t0).is_none(), "other sandboxes unknown");
    }

    #[test]
    fn an_invalidation_drops_the_answer_and_one_under_way() {
        let c = StatusCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let g = c.begin("a");
        c.store("a", g, status(true), t0);
        // A request starts, the container exits (event), the old answer arrives.
        let under_way = c.begin("a");
        c.invalidate("a");
        assert!(c.get("a", t0).is_none());
        c.store("a", under_way, status(true), t0);
        assert!(c.get("a", t0).is_none(), "the stale answer is dropped");
        let g = c.begin("a");
        c.store("a", g, status(false), t0);
        assert_eq!(running(c.get("a", t0)), Some(false));
    }

    #[test]
    fn a_forgotten_sandbox_takes_no_late_answer() {
        let c = StatusCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let late = c.begin("a");
        c.forget("a");
        c.store("a", late, status(true), t0);
        assert!(c.get("a", t0).is_none());
        // Asked about again, a new generation: the late answer still does not count.
        let g = c.begin("a");
        assert_ne!(g, late);
        c.store("a", late, status(true), t0);
        assert!(c.get("a", t0).is_none());
    }

    #[test]
    fn unresponsive_is_remembered_too() {
        let c = StatusCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let g = c.begin("a");
        let a = Answer::Unresponsive {
            op: "status",
            timeout: Duration::from_secs(5),
        };
        c.store("a", g, a, t0);
        assert!(matches!(
            c.get("a", t0),
            Some(Answer::Unresponsive { op: "status", .. })
        ));
        assert_eq!(running(c.get("a", t0)), None);
    }
}
