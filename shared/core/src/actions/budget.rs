//! The per-tenant write budget: Microsoft Graph allows an app about 3,000 writes per 150 s in
//! one tenant (20 per second), and answers 429 with `Retry-After` beyond it. The executor takes
//! one unit of its tenant's budget before every write, so a burst of actions on one tenant is
//! spread under the limit instead of being throttled, and tenants never wait for each other.
//! A 429 that comes anyway (another app writing to the same tenant, or several executors)
//! pauses that tenant's budget for the `Retry-After` time.
//!
//! The rate limiter is `governor`'s keyed GCRA limiter (a well-kept crate; the algorithm needs
//! no timer task and no per-tenant state beyond one timestamp).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Jitter, Quota, RateLimiter};

use crate::model::TenantId;

/// Graph's documented write limit per app per tenant (3,000 per 150 s).
pub const GRAPH_WRITES_PER_SECOND: f64 = 20.0;

/// The default budget: a little under Graph's limit, so clock differences and the requests of
/// a retried call never push a tenant over it.
pub const DEFAULT_WRITES_PER_SECOND: f64 = 19.5;

/// The default burst (see [`BudgetConfig::burst`]).
pub const DEFAULT_BURST: u32 = 5;

/// How the budget is sized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Sustained writes per second per tenant (per executor process: with several executors
    /// in parallel, give each its share).
    pub writes_per_second: f64,
    /// Writes that may go at once after a quiet period. Also what lets the budget make up a
    /// slot an executor woke late for, so the sustained rate is the configured one; with
    /// [`DEFAULT_BURST`] and the default rate, no 150 s window holds more than 2,930 writes.
    pub burst: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            writes_per_second: DEFAULT_WRITES_PER_SECOND,
            burst: DEFAULT_BURST,
        }
    }
}

type Limiter = RateLimiter<TenantId, DefaultKeyedStateStore<TenantId>, DefaultClock>;

/// Per-tenant write budgets.
pub struct WriteBudget {
    limiter: Limiter,
    paused: Mutex<HashMap<TenantId, Instant>>,
    period: Duration,
}

impl WriteBudget {
    pub fn new(config: BudgetConfig) -> Self {
        let rate = config.writes_per_second.clamp(0.01, 10_000.0);
        let period = Duration::from_secs_f64(1.0 / rate);
        let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            paused: Mutex::new(HashMap::new()),
            period,
        }
    }

    /// Wait until `tenant` may write once more, then take that unit.
    pub async fn acquire(&self, tenant: &TenantId) {
        loop {
            let until = self.paused_until(tenant);
            match until {
                Some(t) => {
                    futures_timer::Delay::new(t.saturating_duration_since(Instant::now())).await
                }
                None => break,
            }
        }
        // A little jitter keeps executors that wake at once from writing in lockstep.
        self.limiter
            .until_key_ready_with_jitter(tenant, Jitter::up_to(self.period / 4))
            .await;
    }

    /// Take a unit now if one is free (the benchmark and tests use it to look at the budget
    /// without waiting).
    pub fn try_acquire(&self, tenant: &TenantId) -> bool {
        self.paused_until(tenant).is_none() && self.limiter.check_key(tenant).is_ok()
    }

    /// Graph throttled `tenant` anyway: no writes for `retry_after`.
    pub fn pause(&self, tenant: &TenantId, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut paused = self
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = paused.entry(tenant.clone()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }

    fn paused_until(&self, tenant: &TenantId) -> Option<Instant> {
        let mut paused = self
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match paused.get(tenant) {
            Some(t) if *t > Instant::now() => Some(*t),
            Some(_) => {
                paused.remove(tenant);
                None
            }
            None => None,
        }
    }
}

impl Default for WriteBudget {
    fn default() -> Self {
        Self::new(BudgetConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_at_the_budget_and_tenants_are_independent() {
        let b = WriteBudget::new(BudgetConfig {
            writes_per_second: 1.0,
            burst: 3,
        });
        let a = TenantId::new("a");
        let c = TenantId::new("c");
        let taken = (0..10).filter(|_| b.try_acquire(&a)).count();
        assert_eq!(taken, 3, "the burst, then nothing until the next unit");
        assert!(b.try_acquire(&c), "another tenant has its own budget");
    }

    #[test]
    fn a_throttled_tenant_is_paused_and_the_others_are_not() {
        let b = WriteBudget::new(BudgetConfig {
            writes_per_second: 1000.0,
            burst: 10,
        });
        let a = TenantId::new("a");
        let c = TenantId::new("c");
        b.pause(&a, Duration::from_secs(60));
        assert!(!b.try_acquire(&a));
        assert!(b.try_acquire(&c));
    }

    #[tokio::test]
    async fn acquire_waits_for_a_short_pause_and_then_writes() {
        let b = WriteBudget::new(BudgetConfig {
            writes_per_second: 1000.0,
            burst: 10,
        });
        let a = TenantId::new("a");
        b.pause(&a, Duration::from_millis(30));
        b.acquire(&a).await;
        assert!(
            b.paused_until(&a).is_none(),
            "the pause is over once acquire returns"
        );
    }
}
