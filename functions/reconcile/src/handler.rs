//! Translate an SQS batch into `reconcile_page` calls and their outcomes into the batch
//! response: the one place a reconcile failure is classified and logged.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use entra_sync_core::page::PageMessage;
use entra_sync_core::services::{ReconcileDeps, ReconcileOutcome, reconcile_page};
use tracing::{Instrument, error, info_span, warn};

/// The ports reconcile uses: cursors (read, applied markers, commit), the mirror, runs, events.
pub type Deps = ReconcileDeps;

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageResult {
    Applied(ReconcileOutcome),
    /// Not a page message: it fails on every delivery and ends in the dead-letter queue.
    Malformed,
    /// Applying failed; SQS delivers it again after the visibility timeout.
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
        if !matches!(result, MessageResult::Applied(_)) {
            // A message without an id cannot be reported; Lambda never sends one.
            if let Some(id) = &message.message_id {
                response.add_failure(id.clone());
            }
        }
    }
    response
}

/// Parse and apply one message.
pub async fn handle_message(deps: &Deps, message: &SqsMessage) -> MessageResult {
    let message_id = message.message_id.as_deref().unwrap_or("");
    let page: PageMessage = match message
        .body
        .as_deref()
        .map(serde_json::from_str::<PageMessage>)
    {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            error!(message_id, error = %e, "malformed page message");
            return MessageResult::Malformed;
        }
        None => {
            error!(message_id, "page message without a body");
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
        match reconcile_page(deps, &page).await {
            Ok(outcome) => MessageResult::Applied(outcome),
            Err(e) if e.is_retryable() => {
                warn!(error = %e, class = e.class().as_str(), "page not applied; will be retried");
                MessageResult::Failed { retryable: true }
            }
            Err(e) => {
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
    use entra_sync_core::memory::{CollectingEvents, ManualClock, MemoryStore};
    use entra_sync_core::model::{Stream, TenantId};
    use entra_sync_core::ports::{CursorStore, MirrorStore, RunStore};
    use entra_sync_core::run::{SyncRun, Trigger};

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
        let deps = Deps {
            cursors: store.clone(),
            mirror: store.clone(),
            runs: store.clone(),
            events: Arc::new(CollectingEvents::new()),
            clock: Arc::new(ManualClock::new(now)),
        };
        (deps, store)
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
}
