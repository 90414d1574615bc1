//! The contract every idempotency store passes (Powertools semantics; see
//! shared/core/src/idempotency.rs): the in-memory reference, SQLite, and DynamoDB on moto run
//! the same function on a fresh store.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::idempotency::{Begin, IdempotencyConfig};
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::IdempotencyStore;

/// Now, to the second (stores keep milliseconds; the TTL attribute whole seconds), so the
/// records are live by the wall clock too and no store's housekeeping removes them early.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

fn config() -> IdempotencyConfig {
    IdempotencyConfig {
        expiry: Duration::hours(1),
        in_progress_expiry: Duration::minutes(2),
    }
}

/// Every rule of the port, in order.
pub async fn idempotency(store: Arc<dyn IdempotencyStore>) {
    let t = TenantId::new("tenant-a");
    let other = TenantId::new("tenant-b");
    let now = t0();
    let cfg = config();

    // A free key starts; the same key again (same payload) is in progress until its claim ends.
    let claim = cfg.claim("msg-1", "hash-1", now);
    assert_eq!(store.begin(&t, &claim).await.unwrap(), Begin::Started);
    assert_eq!(
        store
            .begin(
                &t,
                &cfg.claim("msg-1", "hash-1", now + Duration::seconds(5))
            )
            .await
            .unwrap(),
        Begin::InProgress {
            until: now + Duration::minutes(2)
        },
        "a live claim answers in progress"
    );
    // Another payload under the same key is a mismatch, never the other work's answer.
    assert_eq!(
        store
            .begin(
                &t,
                &cfg.claim("msg-1", "hash-2", now + Duration::seconds(5))
            )
            .await
            .unwrap(),
        Begin::PayloadMismatch
    );
    // Keys are per tenant.
    assert_eq!(
        store
            .begin(&other, &cfg.claim("msg-1", "hash-9", now))
            .await
            .unwrap(),
        Begin::Started,
        "the same key in another tenant is another record"
    );

    // Completed: the stored answer, for as long as the record lives, even after the claim's
    // own in-progress expiry.
    store
        .complete(&t, "msg-1", r#"{"writes":3}"#, claim.expires_at)
        .await
        .unwrap();
    for later in [
        Duration::seconds(1),
        Duration::minutes(30),
        Duration::hours(1),
    ] {
        assert_eq!(
            store
                .begin(&t, &cfg.claim("msg-1", "hash-1", now + later))
                .await
                .unwrap(),
            Begin::AlreadyCompleted(r#"{"writes":3}"#.into()),
            "completed answer {later} later"
        );
    }
    // Release never drops a completed answer.
    store.release(&t, "msg-1").await.unwrap();
    assert_eq!(
        store
            .begin(&t, &cfg.claim("msg-1", "hash-1", now))
            .await
            .unwrap(),
        Begin::AlreadyCompleted(r#"{"writes":3}"#.into())
    );
    // After the record expires the key starts again (with any payload).
    let past = now + Duration::hours(1) + Duration::seconds(1);
    assert_eq!(
        store
            .begin(&t, &cfg.claim("msg-1", "hash-2", past))
            .await
            .unwrap(),
        Begin::Started,
        "an expired record counts for nothing"
    );

    // An abandoned claim (the worker died) is taken over once its in-progress expiry passed.
    let c2 = cfg.claim("msg-2", "h", now);
    assert_eq!(store.begin(&t, &c2).await.unwrap(), Begin::Started);
    assert!(matches!(
        store
            .begin(&t, &cfg.claim("msg-2", "h", now + Duration::minutes(2)))
            .await
            .unwrap(),
        Begin::InProgress { .. }
    ));
    let takeover = cfg.claim(
        "msg-2",
        "h",
        now + Duration::minutes(2) + Duration::seconds(1),
    );
    assert_eq!(store.begin(&t, &takeover).await.unwrap(), Begin::Started);
    assert_eq!(
        store
            .begin(&t, &cfg.claim("msg-2", "h", now + Duration::minutes(3)))
            .await
            .unwrap(),
        Begin::InProgress {
            until: takeover.in_progress_until
        },
        "the new claim runs on its own expiry"
    );

    // A failed worker releases its claim: the retry starts at once.
    let c3 = cfg.claim("msg-3", "h", now);
    assert_eq!(store.begin(&t, &c3).await.unwrap(), Begin::Started);
    store.release(&t, "msg-3").await.unwrap();
    assert_eq!(store.begin(&t, &c3).await.unwrap(), Begin::Started);
    // Releasing what is not there is fine.
    store.release(&t, "never-claimed").await.unwrap();

    // Completing without a claim is refused (someone else's record must not be invented).
    assert!(matches!(
        store
            .complete(&t, "never-claimed", "x", now + Duration::hours(1))
            .await,
        Err(StoreError::Conflict(_))
    ));

    // Concurrent claims on a free key: exactly one starts.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let t = t.clone();
        let claim = cfg.claim("msg-race", "h", now);
        racers.spawn(async move { store.begin(&t, &claim).await });
    }
    let mut started = 0;
    while let Some(r) = racers.join_next().await {
        match r.unwrap().unwrap() {
            Begin::Started => started += 1,
            Begin::InProgress { .. } => {}
            other => panic!("a racer got {other:?}"),
        }
    }
    assert_eq!(started, 1, "exactly one concurrent claim starts");
}
