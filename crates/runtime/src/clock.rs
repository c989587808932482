//! Time as the runtime reports it: unix nanoseconds, from a clock tests can pause.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Now as unix nanoseconds (the wall clock).
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Wall time that advances with tokio's clock, so that a paused test clock (and
/// `tokio::time::advance`) moves the timestamps of the fake runtime and of lifecycle
/// decisions together, deterministically.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Unix nanoseconds when the clock was made.
    base_nanos: i64,
    /// tokio's instant at the same moment.
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            base_nanos: now_nanos(),
            base: Instant::now(),
        }
    }
}

impl Clock {
    /// Unix nanoseconds now.
    pub fn now(&self) -> i64 {
        self.base_nanos + self.base.elapsed().as_nanos() as i64
    }
}
