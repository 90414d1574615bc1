//! Message claims: "do this work once per key", on the idempotency records
//! ([`crate::idempotency`]). One service for every consumer of an at-least-once queue: the
//! reconcile function and the local runtime (page messages), and the actions executor (action
//! messages). A key is claimed before the work, completed with its answer after it, and
//! released when the work fails, so a redelivery while (or after) another worker does the work
//! never does it twice, and a failure can be retried at once.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::idempotency::{Begin, IdempotencyConfig};
use crate::model::TenantId;
use crate::ports::{Clock, IdempotencyStore};

/// The claim service: the store, how long records and claims last, and the clock.
#[derive(Clone)]
pub struct Claims {
    pub store: Arc<dyn IdempotencyStore>,
    pub config: IdempotencyConfig,
    pub clock: Arc<dyn Clock>,
}

/// What a claimed run of some work came to.
#[derive(Debug)]
pub enum Claimed<T> {
    /// This worker did the work; its answer is stored under the key.
    Ran(T),
    /// The work was done before; the answer it stored.
    AlreadyDone(String),
    /// Another worker holds the key until `until`: try again later.
    Busy { until: DateTime<Utc> },
    /// The key was used before for different work (a caller's bug); nothing was done.
    Mismatch,
}

/// Why a claimed run did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError<E> {
    /// The idempotency store could not be read or written before the work started.
    #[error("idempotency record unavailable")]
    Store(#[source] StoreError),
    /// The work failed; its claim was released (or expires by itself if that failed too).
    #[error(transparent)]
    Work(E),
}

impl Claims {
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        config: IdempotencyConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            config,
            clock,
        }
    }

    /// Run `work` once for `key`, unless a live record answers. The answer stored on success is
    /// `answer(&output)` (ids and counts only: records are not a place for secrets).
    /// A failed completion is not an error: the work is done, and a redelivery meets the
    /// effects of the work (which its consumers must treat as done), or the expired claim.
    pub async fn run_once<T, E, Fut>(
        &self,
        tenant: &TenantId,
        key: &str,
        payload_hash: &str,
        answer: impl FnOnce(&T) -> String,
        work: impl FnOnce() -> Fut,
    ) -> Result<Claimed<T>, ClaimError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let claim = self.config.claim(key, payload_hash, self.clock.now());
        match self
            .store
            .begin(tenant, &claim)
            .await
            .map_err(ClaimError::Store)?
        {
            Begin::Started => {}
            Begin::AlreadyCompleted(a) => return Ok(Claimed::AlreadyDone(a)),
            Begin::InProgress { until } => return Ok(Claimed::Busy { until }),
            Begin::PayloadMismatch => return Ok(Claimed::Mismatch),
        }
        match work().await {
            Ok(out) => {
                let stored = answer(&out);
                if let Err(e) = self
                    .store
                    .complete(tenant, key, &stored, claim.expires_at)
                    .await
                {
                    tracing::debug!(error = %e, key, "work done but its record was not completed");
                }
                Ok(Claimed::Ran(out))
            }
            Err(e) => {
                if let Err(re) = self.store.release(tenant, key).await {
                    tracing::debug!(error = %re, key, "claim not released; it expires by itself");
                }
                Err(ClaimError::Work(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use chrono::TimeZone;

    use super::*;
    use crate::memory::ManualClock;
    use crate::memory_idempotency::MemoryIdempotency;

    fn claims() -> (Claims, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        ));
        (
            Claims::new(
                Arc::new(MemoryIdempotency::new()),
                IdempotencyConfig::default(),
                clock.clone(),
            ),
            clock,
        )
    }

    #[tokio::test]
    async fn work_runs_once_per_key_and_later_runs_get_its_answer() {
        let (c, _) = claims();
        let t = TenantId::new("t");
        let runs = AtomicU32::new(0);
        for _ in 0..3 {
            let r = c
                .run_once(
                    &t,
                    "k",
                    "h",
                    |n: &u32| n.to_string(),
                    || async { Ok::<_, ()>(runs.fetch_add(1, Ordering::SeqCst) + 7) },
                )
                .await
                .unwrap();
            match r {
                Claimed::Ran(n) => assert_eq!(n, 7),
                Claimed::AlreadyDone(a) => assert_eq!(a, "7"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let other = c
            .run_once(
                &t,
                "k",
                "other",
                |_: &u32| String::new(),
                || async { Ok::<_, ()>(0) },
            )
            .await
            .unwrap();
        assert!(matches!(other, Claimed::Mismatch));
    }

    #[tokio::test]
    async fn a_failure_releases_the_key_so_a_retry_runs_at_once() {
        let (c, _) = claims();
        let t = TenantId::new("t");
        let e = c
            .run_once(
                &t,
                "k",
                "h",
                |_: &u32| String::new(),
                || async { Err::<u32, _>("boom") },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ClaimError::Work("boom")));
        let r = c
            .run_once(
                &t,
                "k",
                "h",
                |_: &u32| "1".into(),
                || async { Ok::<_, ()>(1) },
            )
            .await
            .unwrap();
        assert!(matches!(r, Claimed::Ran(1)));
    }

    #[tokio::test]
    async fn a_key_held_by_a_live_worker_is_busy_and_taken_over_after_its_claim_expires() {
        let (c, clock) = claims();
        let t = TenantId::new("t");
        let claim = c.config.claim("k", "h", clock.now());
        assert_eq!(c.store.begin(&t, &claim).await.unwrap(), Begin::Started);
        let r = c
            .run_once(
                &t,
                "k",
                "h",
                |_: &u32| String::new(),
                || async { Ok::<_, ()>(1) },
            )
            .await
            .unwrap();
        assert!(matches!(r, Claimed::Busy { .. }));
        clock.advance(c.config.in_progress_expiry + chrono::Duration::seconds(1));
        let r = c
            .run_once(
                &t,
                "k",
                "h",
                |_: &u32| String::new(),
                || async { Ok::<_, ()>(1) },
            )
            .await
            .unwrap();
        assert!(matches!(r, Claimed::Ran(1)));
    }
}
