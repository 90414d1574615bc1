//! Per-tenant resource-unit token buckets.

use crate::config::ThrottleBudget;

/// A token bucket refilled continuously at `units / window`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    budget: ThrottleBudget,
    tokens: f64,
    last_ms: u64,
}

/// Outcome of a successful take: how much of the budget is in use (0.0..=1.0).
pub(crate) type Usage = f64;

impl Bucket {
    pub(crate) fn new(budget: ThrottleBudget, now_ms: u64) -> Self {
        Self {
            budget,
            tokens: f64::from(budget.capacity()),
            last_ms: now_ms,
        }
    }

    fn rate_per_ms(&self) -> f64 {
        let window = self.budget.window.as_millis().max(1) as f64;
        f64::from(self.budget.units) / window
    }

    /// Takes `cost` units, or says in how many whole seconds (at least 1) enough will have
    /// refilled. A request costing more than the whole budget can never pass; it is told to
    /// wait a full window.
    pub(crate) fn try_take(&mut self, cost: u32, now_ms: u64) -> Result<Usage, u32> {
        let cap = f64::from(self.budget.capacity());
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.rate_per_ms()).min(cap);
        self.last_ms = now_ms.max(self.last_ms);
        let cost = f64::from(cost);
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(if cap > 0.0 {
                1.0 - self.tokens / cap
            } else {
                1.0
            });
        }
        let missing = if cost > cap { cap } else { cost - self.tokens };
        let ms = missing / self.rate_per_ms().max(f64::MIN_POSITIVE);
        let secs = (ms / 1000.0).ceil();
        Err(if secs.is_finite() && secs >= 1.0 {
            secs.min(f64::from(u32::MAX)) as u32
        } else {
            1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_and_reports_retry_after() {
        let mut b = Bucket::new(ThrottleBudget::new(10, Duration::from_secs(10)), 0);
        for _ in 0..10 {
            assert!(b.try_take(1, 0).is_ok());
        }
        assert_eq!(b.try_take(1, 0), Err(1));
        assert_eq!(b.try_take(3, 0), Err(3));
        assert!(b.try_take(3, 3000).is_ok());
        assert!(b.try_take(1, 3000).is_err());
    }

    #[test]
    fn burst_caps_the_bucket_but_not_the_rate() {
        // 20 per second sustained, at most 5 at once.
        let mut b = Bucket::new(
            ThrottleBudget::new(20, Duration::from_secs(1)).with_burst(5),
            0,
        );
        for _ in 0..5 {
            assert!(b.try_take(1, 0).is_ok());
        }
        assert_eq!(b.try_take(1, 0), Err(1));
        // A long quiet spell refills to the burst only.
        let mut taken = 0;
        while b.try_take(1, 60_000).is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 5);
        // Sustained: one every 50 ms passes.
        for i in 1..=40 {
            assert!(b.try_take(1, 60_000 + i * 50).is_ok(), "write {i}");
        }
    }
}
