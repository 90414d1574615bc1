//! The emulator's clock: tokio's (pausable) monotonic clock plus an offset that tests move
//! forward with `Emulator::advance_clock`, so tokens can age without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Monotonic milliseconds since the emulator started, plus the test offset.
#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    offset_ms: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Emulator time in milliseconds (includes `advance`).
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        elapsed.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Real time since start, without the test offset (used for the request log).
    pub(crate) fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    /// Moves emulator time forward.
    pub(crate) fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Wall-clock time shifted by the test offset (for timestamps in responses).
    pub(crate) fn wall(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        Utc::now() + chrono::Duration::milliseconds(offset)
    }
}
