//! Translate an SQS batch into claimed `reconcile_delivery` calls and their outcomes into the
//! batch response: the one place a reconcile failure is classified and logged.
//!
//! Each message is claimed under its SQS message id by the core's claim service: a message
//! another worker already applied is acknowledged without work, and one another worker is
//! applying right now is reported failed, to be retried once that worker is done.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use entra_sync_core::page::PageMessage;
use entra_sync_core::services::claim::{ClaimError, Claims};
use entra_sync_core::services::{
    DeliveryOutcome, ReconcileDeps, ReconcileOutcome, reconcile_delivery,
};
use tracing::{Instrument, error, info, info_span, warn};

/// The ports reconcile uses: cursors (read, applied markers, commit), the mirror, runs, events,
/// and the idempotency records of the messages.
#[derive(Clone)]
pub struct Deps {
    pub reconcile: ReconcileDeps,
    /// The messages' claims. Their in-progress claim lasts at least the function timeout, and
    /// less than the queue's visibility timeout so a redelivery after a crash can take it over.
    pub claims: Claims,
}

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageResult {
    Applied(ReconcileOutcome),
    /// This message id was applied before (a redelivery): acknowledged without work.
    AlreadyApplied,
    /// Not a page message: it fails on every delivery and ends in the dead-letter queue.
    Malformed,
    /// Applying failed, or another worker is applying it right now; SQS delivers it again after
    /// the visibility timeout.
    Failed {
        retryable: bool,
    },
}

/// Apply every message of the batch (concurrently: each is independent and idempotent) and
/// report the failed ones.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let results =
        futures::future::join_all(event.records.iter().map(|m| handle_message(deps, m))).await;
    let mut response = SqsBatchResponse::default();
    for (message, result) in event.records.iter().zip(results) {
        if !matches!(
            result,
            MessageResult::Applied(_) | MessageResult::AlreadyApplied
        ) {
            // A message without an id cannot be reported; Lambda never sends one.
            if let Some(id) = &message.message_id {
                response.add_failure(id.clone());
            }
        }
    }
    response
}

/// Parse, claim and apply one message.
pub async fn handle_message(deps: &Deps, message: &SqsMessage) -> MessageResult {
    let message_id = message.message_id.as_deref().unwrap_or("");
    let Some(body) = message.body.as_deref() else {
        error!(message_id, "page message without a body");
        return MessageResult::Malformed;
    };
    let page: PageMessage = match serde_json::from_str(body) {
        Ok(p) => p,
        Err(e) => {
            error!(message_id, error = %e, "malformed page message");
            return MessageResult::Malformed;
        }
    };
    let span = info_span!(
        "page",
        message_id,
        tenant = %page.tenant_id,
        stream = %page.stream(),
        cycle = page.cycle,
        page = page.page_seq
    );
    async {
        match reconcile_delivery(&deps.reconcile, &deps.claims, message_id, body, &page).await {
            Ok(DeliveryOutcome::Applied(outcome)) => MessageResult::Applied(outcome),
            Ok(DeliveryOutcome::AlreadyApplied) => {
                info!("page message already applied; acknowledged");
                MessageResult::AlreadyApplied
            }
            Ok(DeliveryOutcome::Busy { until }) => {
                warn!(claimed_until = %until, "page message is being applied elsewhere; will be retried");
                MessageResult::Failed { retryable: true }
            }
            Ok(DeliveryOutcome::Mismatch) => {
                error!("message id seen before with another body; not applied");
                MessageResult::Failed { retryable: false }
            }
            Err(ClaimError::Store(e)) => {
                warn!(error = %e, "idempotency record unavailable; will be retried");
                MessageResult::Failed { retryable: true }
            }
            Err(ClaimError::Work(e)) if e.is_retryable() => {
                warn!(error = %e, class = e.class().as_str(), "page not applied; will be retried");
                MessageResult::Failed { retryable: true }
            }
            Err(ClaimError::Work(e)) => {
                error!(error = %e, class = e.class().as_str(), "page cannot be applied");
                MessageResult::Failed { retryable: false }
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use chrono::DateTime;
    use entra_sync_core::cursor::CursorRecord;
    use entra_sync_core::idempotency::{Begin, IdempotencyConfig};
    use entra_sync_core::memory::{ManualClock, MemoryIdempotency, MemoryStore};
    use entra_sync_core::model::{Stream, TenantId};
    use entra_sync_core::ports::{CursorStore, MirrorStore, RunStore};
    use entra_sync_core::run::{SyncRun, Trigger};

    use entra_sync_core::services::{delivery_key, payload_hash};
    use entra_sync_core::testing::DepsBuilder;

    use super::*;

    async fn world() -> (Deps, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let t = TenantId::new("tenant-a");
        let now = DateTime::from_timestamp(1_767_261_600, 0).unwrap();
        let (round, _) = CursorRecord::default().begin_round("run-1");
        store
            .save_cursor(&t, Stream::Users, &round, None)
            .await
            .unwrap();
        store
            .create_run(&SyncRun::new("run-1".into(), t, Trigger::Scheduled, now))
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let deps = Deps {
            reconcile: DepsBuilder::on(&store).clock(clock.clone()).reconcile(),
            claims: Claims::new(
                Arc::new(MemoryIdempotency::new()),
                IdempotencyConfig::default(),
                clock,
            ),
        };
        (deps, store)
    }

    /// Claim `m` as another worker would, now.
    async fn claim_now(deps: &Deps, m: &SqsMessage) -> Begin {
        let body = m.body.as_deref().unwrap();
        let page: PageMessage = serde_json::from_str(body).unwrap();
        let claim = deps.claims.config.claim(
            delivery_key(m.message_id.as_deref().unwrap()),
            payload_hash(body),
            deps.reconcile.clock.now(),
        );
        deps.claims
            .store
            .begin(&page.tenant_id, &claim)
            .await
            .unwrap()
    }

    fn sample(text: &str) -> SqsEvent {
        serde_json::from_str(text).unwrap()
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn every_page_of_the_batch_is_applied_and_none_fails() {
        let (deps, store) = world().await;
        let r = handle(
            &deps,
            sample(include_str!("../../../events/reconcile/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        let t = TenantId::new("tenant-a");
        let users = store
            .get_users(&t, &["u1".into(), "u2".into(), "u3".into(), "u9".into()])
            .await
            .unwrap();
        assert_eq!(users.len(), 4, "three upserts and one tombstone");
        assert_eq!(store.applied_pages(&t, Stream::Users, 1).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_malformed_message_fails_alone() {
        let (deps, store) = world().await;
        let r = handle(
            &deps,
            sample(include_str!("../../../events/reconcile/malformed.json")),
        )
        .await;
        assert_eq!(
            failures(&r),
            vec![
                "9a0e2c55-0000-4000-8000-000000000001",
                "9a0e2c55-0000-4000-8000-000000000002"
            ]
        );
        let t = TenantId::new("tenant-a");
        assert_eq!(store.get_users(&t, &["u1".into()]).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn duplicates_and_pages_of_abandoned_rounds_are_acknowledged_without_effect() {
        let (deps, store) = world().await;
        let r = handle(
            &deps,
            sample(include_str!("../../../events/reconcile/edge.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        let t = TenantId::new("tenant-a");
        let u1 = store.get_users(&t, &["u1".into()]).await.unwrap();
        assert_eq!(u1[0].user.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(store.writes(), 1, "the duplicate wrote nothing");
        let run = store.get_run(&t, "run-1").await.unwrap().unwrap();
        assert_eq!(
            run.counts.pages_applied, 2,
            "page 0 counted once, page 1 once"
        );
    }

    #[tokio::test]
    async fn a_message_without_a_body_is_reported_malformed() {
        let (deps, _) = world().await;
        let mut m = SqsMessage::default();
        m.message_id = Some("m1".into());
        assert_eq!(handle_message(&deps, &m).await, MessageResult::Malformed);
    }

    #[tokio::test]
    async fn a_message_delivered_again_after_it_was_applied_is_acknowledged_without_work() {
        let (deps, store) = world().await;
        let event = sample(include_str!("../../../events/reconcile/happy.json"));
        assert!(failures(&handle(&deps, event.clone()).await).is_empty());
        let writes = store.writes();
        let results =
            futures::future::join_all(event.records.iter().map(|m| handle_message(&deps, m))).await;
        assert_eq!(
            results,
            vec![MessageResult::AlreadyApplied, MessageResult::AlreadyApplied]
        );
        assert!(failures(&handle(&deps, event).await).is_empty());
        assert_eq!(
            store.writes(),
            writes,
            "nothing was planned or written again"
        );
    }

    #[tokio::test]
    async fn a_message_another_worker_is_applying_is_reported_for_a_later_retry() {
        let (deps, store) = world().await;
        let event = sample(include_str!("../../../events/reconcile/happy.json"));
        let first = &event.records[0];
        // Another worker claimed the first message a moment ago and is still at it.
        assert_eq!(claim_now(&deps, first).await, Begin::Started);
        let r = handle(&deps, event.clone()).await;
        assert_eq!(failures(&r), vec!["3f1c7b1e-0000-4000-8000-000000000000"]);
        let t = TenantId::new("tenant-a");
        assert_eq!(store.applied_pages(&t, Stream::Users, 1).await.unwrap(), 1);
        // That worker died: once its claim expires, the redelivery applies the page.
        let clock = Arc::new(ManualClock::new(deps.reconcile.clock.now()));
        clock.advance(deps.claims.config.in_progress_expiry + chrono::Duration::seconds(1));
        let later = Deps {
            reconcile: ReconcileDeps {
                clock: clock.clone(),
                ..deps.reconcile.clone()
            },
            claims: Claims {
                clock,
                ..deps.claims.clone()
            },
        };
        assert!(matches!(
            handle_message(&later, first).await,
            MessageResult::Applied(_)
        ));
        assert_eq!(store.applied_pages(&t, Stream::Users, 1).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_page_releases_its_claim_so_the_retry_runs_at_once() {
        let (deps, _store) = world().await;
        let event = sample(include_str!("../../../events/reconcile/happy.json"));
        let first = &event.records[0];
        // A page of a run the store does not know: updating the run's counts fails.
        let mut body: serde_json::Value =
            serde_json::from_str(first.body.as_deref().unwrap()).unwrap();
        body["run_id"] = "no-such-run".into();
        let mut m = first.clone();
        m.body = Some(body.to_string());
        assert!(matches!(
            handle_message(&deps, &m).await,
            MessageResult::Failed { .. }
        ));
        assert_eq!(
            claim_now(&deps, &m).await,
            Begin::Started,
            "the failed attempt left no claim behind"
        );
    }
}
