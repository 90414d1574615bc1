//! The emulator's clock: Unix milliseconds taken when the emulator started, moved on by
//! tokio's (pausable) monotonic clock, plus an offset that tests move forward with
//! `Emulator::advance_clock`, so tokens can age without sleeping. Being anchored to the Unix
//! epoch, token ages stay meaningful across a saved and restored emulator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Emulator time.
#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    base_ms: u64,
    offset_ms: AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            start: Instant::now(),
            base_ms,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Emulator time in Unix milliseconds (includes `advance`).
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms
            .saturating_add(elapsed)
            .saturating_add(self.offset_ms.load(Ordering::Relaxed))
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

    /// The accumulated `advance` offset in milliseconds.
    pub(crate) fn offset_ms(&self) -> u64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Wall-clock time shifted by the test offset (for timestamps in responses).
    pub(crate) fn wall(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        Utc::now() + chrono::Duration::milliseconds(offset)
    }
}
