//! What each pod's shim last said about its pause and containers, so that listings
//! (`podhost ps -a`, CRI ListPodSandbox/ListContainers, a worker's container statuses)
//! answer from memory instead of asking every shim on the request path.
//!
//! An answer stays valid until something may have changed it: an exit event from the
//! shim's subscription, or any request of ours that changes the shim's state (create,
//! start, signal, remove, shutdown) invalidates it. What the shim cannot report itself
//! (it was stopped or hangs) shows as silence: a shim whose subscription brought a
//! heartbeat within [`HEARTBEAT_STALE`] is known to be running its loop, so its answer
//! holds however old; without one (a silent shim, or one from before heartbeats) the
//! time to live bounds it and an older answer is asked again. A request that was
//! already under way when its sandbox was invalidated may carry the old state: its
//! answer is dropped (generations).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::shim_client::ShimStatus;

/// How long a cached answer of a shim without a recent heartbeat is used. Longer than a
/// pod worker's steady check (10 s ±25 %), which asks such a shim and so keeps its
/// answer fresh. A kubelet's relist (every second) keeps those of its sandboxes fresh
/// the same way.
pub const STATUS_TTL: Duration = Duration::from_secs(30);

/// A shim whose last heartbeat is older than this is no longer known to be running its
/// loop: two and a half of the shim's heartbeat intervals, so one late beat does not
/// count. The subscription reports such a silence as an event, which wakes the pod's
/// worker to ask the shim.
pub const HEARTBEAT_STALE: Duration =
    Duration::from_millis(podhost_shim::proto::HEARTBEAT.as_millis() as u64 * 5 / 2);

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
    /// When the shim's subscription last brought a heartbeat.
    alive_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Source of generations, unique over the cache's life (also across a sandbox
    /// forgotten and asked about again).
    next: u64,
}

impl Inner {
    /// Forget `id`'s answer, and one under way (a new generation).
    fn drop_answer(&mut self, id: &str) {
        self.next += 1;
        let generation = self.next;
        if let Some(e) = self.entries.get_mut(id) {
            e.generation = generation;
            e.answer = None;
        }
    }
}

/// Last shim answers per sandbox id.
#[derive(Debug)]
pub struct StatusCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    stale: Duration,
}

impl Default for StatusCache {
    fn default() -> Self {
        Self::new(STATUS_TTL)
    }
}

impl StatusCache {
    /// An empty cache whose answers live `ttl`, or as long as heartbeats keep coming.
    pub fn new(ttl: Duration) -> Self {
        StatusCache {
            inner: Mutex::new(Inner::default()),
            ttl,
            stale: HEARTBEAT_STALE,
        }
    }

    /// The same with heartbeats counted for `stale`.
    #[cfg(test)]
    fn with_stale(ttl: Duration, stale: Duration) -> Self {
        StatusCache {
            stale,
            ..Self::new(ttl)
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
                alive_at: None,
            },
        );
        generation
    }

    /// The shim of `id` sent a heartbeat at `now`. An `Unresponsive` answer it had is
    /// dropped: the shim runs its loop again (it was stopped and continued). A sandbox
    /// never asked about, or forgotten, is left out (a late beat of a removed sandbox
    /// must not bring its entry back); the next beat counts once it was asked.
    pub fn alive(&self, id: &str, now: Instant) {
        let mut inner = self.lock();
        let Some(e) = inner.entries.get_mut(id) else {
            return;
        };
        e.alive_at = Some(now);
        if matches!(e.answer, Some((_, Answer::Unresponsive { .. }))) {
            inner.drop_answer(id);
        }
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

    /// The answer about `id` if one is known and either its shim's heartbeat is recent
    /// or the answer is younger than the time to live at `now`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Answer> {
        let inner = self.lock();
        let e = inner.entries.get(id)?;
        let (at, answer) = e.answer.as_ref()?;
        (self.is_live(e, now) || now.saturating_duration_since(*at) < self.ttl)
            .then(|| answer.clone())
    }

    /// The shim's last status only while its heartbeat is recent: what a check for a
    /// stopped or hung shim may take without asking.
    pub fn get_live(&self, id: &str, now: Instant) -> Option<crate::shim_client::ShimStatus> {
        let inner = self.lock();
        let e = inner.entries.get(id)?;
        match &e.answer {
            Some((_, Answer::Status(s))) if self.is_live(e, now) => Some(s.clone()),
            _ => None,
        }
    }

    fn is_live(&self, e: &Entry, now: Instant) -> bool {
        e.alive_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.stale)
    }

    /// Something about `id` changed (an exit, a request of ours): the next reader asks.
    pub fn invalidate(&self, id: &str) {
        self.lock().drop_answer(id);
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

    fn unresponsive() -> Answer {
        Answer::Unresponsive {
            op: "status",
            timeout: Duration::from_secs(5),
        }
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
    fn a_beating_shims_answer_holds_past_the_time_to_live() {
        let c = StatusCache::with_stale(Duration::from_secs(10), Duration::from_secs(25));
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let g = c.begin("a");
        c.store("a", g, status(true), t0);
        assert!(c.get_live("a", t0).is_none(), "no heartbeat yet: ask");
        c.alive("a", s(8));
        assert!(c.get_live("a", s(9)).is_some_and(|st| st.pause_running));
        assert_eq!(
            running(c.get("a", s(30))),
            Some(true),
            "past the ttl, beating"
        );
        // Silence: stale 25 s after the last beat, for both readers.
        assert!(c.get_live("a", s(33)).is_none());
        assert!(c.get("a", s(33)).is_none());
        // A beat does not make a changed state valid: an exit still invalidates.
        c.alive("a", s(40));
        c.invalidate("a");
        assert!(c.get("a", s(40)).is_none() && c.get_live("a", s(40)).is_none());
        let g = c.begin("a");
        c.store("a", g, status(false), s(41));
        assert_eq!(
            running(c.get("a", s(60))),
            Some(false),
            "the beat of 40 s holds"
        );
    }

    #[test]
    fn a_heartbeat_drops_an_unresponsive_answer() {
        let c = StatusCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let g = c.begin("a");
        c.store("a", g, unresponsive(), t0);
        assert!(c.get("a", t0).is_some());
        // Continued after a stop: it beats again, so the next reader asks it.
        c.alive("a", t0);
        assert!(c.get("a", t0).is_none());
        // A heartbeat of a sandbox never asked about is not kept.
        c.alive("b", t0);
        let g = c.begin("b");
        c.store("b", g, status(true), t0);
        assert!(c.get_live("b", t0).is_none());
        c.alive("b", t0);
        assert!(c.get_live("b", t0).is_some());
        // Forgotten, its heartbeats are gone too, and a late one brings nothing back.
        c.forget("b");
        c.alive("b", t0);
        let g = c.begin("b");
        c.store("b", g, status(true), t0);
        assert!(c.get_live("b", t0).is_none());
    }

    #[test]
    fn unresponsive_is_remembered_too() {
        let c = StatusCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let g = c.begin("a");
        c.store("a", g, unresponsive(), t0);
        assert!(matches!(
            c.get("a", t0),
            Some(Answer::Unresponsive { op: "status", .. })
        ));
        assert_eq!(running(c.get("a", t0)), None);
    }
}
