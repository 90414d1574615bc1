//! Translate a DynamoDB Stream batch into committed writes and the publishing outcome into the
//! batch response: the one place a publishing failure is classified and logged. Publishing a
//! write means its events are on the bus and its outbound webhook deliveries are created.
//!
//! Records are handled in stream order. The first record that cannot be decoded, or whose
//! events could not all be published, is reported in `batchItemFailures` by its sequence
//! number: Lambda then retries the shard from that record (the records before it are done),
//! bisecting the batch and, after its retries, sending the record's details to the on-failure
//! queue. Republished events carry the same ids (they are derived from the change).

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use entra_sync_aws::dynamo::stream::committed_change;
use entra_sync_core::services::publish::{Committed, PublishDeps, publish_committed};
use tracing::{error, info, warn};

/// Deps of the publisher: the connections (the account of `sync.*` events and of a
/// directory's events), the sink, and the outbound webhook fan-out.
pub type Deps = PublishDeps;

/// An image of the record as the SDK's attribute values (`None` when the record has none).
fn image(item: &serde_dynamo::Item) -> Option<HashMap<String, AttributeValue>> {
    match item.is_empty() {
        true => None,
        false => Some(item.clone().into()),
    }
}

/// The committed write of one record: `Ok(None)` when no event is derived from its item.
fn decode(record: &EventRecord) -> Result<Option<Committed>, entra_sync_core::error::StoreError> {
    let old = image(&record.change.old_image);
    let new = image(&record.change.new_image);
    Ok(
        committed_change(old.as_ref(), new.as_ref())?.map(|change| Committed {
            change,
            at: record.change.approximate_creation_date_time,
        }),
    )
}

/// Publish the events of every record of the batch, in order; report the first failed one.
pub async fn handle(deps: &Deps, event: Event) -> DynamoDbEventResponse {
    let mut writes = Vec::new();
    // The record each write came from.
    let mut origin = Vec::new();
    let mut failed_at = None;
    let mut skipped = 0usize;
    for (i, record) in event.records.iter().enumerate() {
        match decode(record) {
            Ok(Some(w)) => {
                writes.push(w);
                origin.push(i);
            }
            Ok(None) => skipped += 1,
            Err(e) => {
                // Retried with the batch; after the retries it goes to the on-failure queue.
                error!(
                    error = %e,
                    sequence_number = record.change.sequence_number.as_deref().unwrap_or(""),
                    "stream record cannot be decoded"
                );
                failed_at = Some(i);
                break;
            }
        }
    }
    match publish_committed(deps, &writes).await {
        Ok(published) => {
            if let Some(e) = &published.wake {
                // The deliveries are stored: the next scheduled pass sends them.
                warn!(
                    error = %e,
                    deliveries = published.deliveries,
                    "outbound webhook worker not woken; the schedule delivers within a minute"
                );
            }
            info!(
                records = event.records.len(),
                writes = writes.len(),
                skipped,
                published = published.events,
                deliveries = published.deliveries,
                "stream batch published"
            );
        }
        Err(f) => {
            let record = origin[f.index];
            warn!(
                error = %f.error,
                class = f.error.class().as_str(),
                sequence_number = event.records[record].change.sequence_number.as_deref().unwrap_or(""),
                "change events not published; the stream retries from this record"
            );
            failed_at = Some(failed_at.map_or(record, |d: usize| d.min(record)));
        }
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some(i) = failed_at {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = event.records[i].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use entra_sync_core::error::EventError;
    use entra_sync_core::events::ChangeEvent;
    use entra_sync_core::memory::{CollectingEvents, MemoryStore};
    use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
    use entra_sync_core::ports::{ConnectionStore, EventSink};

    use super::*;

    const TENANT: &str = "5e969c4a-c2f2-4712-8d6f-d71e7d111dbd";

    fn fixture(name: &str) -> Event {
        let text = match name {
            "happy" => include_str!("../../../events/publisher/happy.json"),
            "malformed" => include_str!("../../../events/publisher/malformed.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap()
    }

    async fn deps(events: Arc<dyn EventSink>) -> Deps {
        let store = Arc::new(MemoryStore::new());
        store
            .put_connection(&Connection {
                tenant_id: TenantId::new(TENANT),
                account_id: AccountId("acct-1".into()),
                label: "test".into(),
                tenant_name: None,
                verified_domains: vec![],
                status: ConnectionStatus::Connected,
                connected_at: chrono::Utc::now(),
                granted_permissions: Default::default(),
            })
            .await
            .unwrap();
        Deps {
            connections: store,
            events,
            outbound: None,
        }
    }

    fn types(events: &[ChangeEvent]) -> Vec<&'static str> {
        events.iter().map(ChangeEvent::event_type).collect()
    }

    #[tokio::test]
    async fn each_record_gives_its_write_events_and_other_items_are_skipped() {
        let sink = Arc::new(CollectingEvents::new());
        let response = handle(&deps(sink.clone()).await, fixture("happy")).await;
        assert!(response.batch_item_failures.is_empty());
        let got = sink.take();
        // The lease, cursor, email/handle index items and the lease's removal give nothing.
        assert_eq!(
            types(&got),
            [
                "connection.connected",
                "sync.started",
                "directory.user.created",
                "directory.membership.added",
                "directory.group.created",
                "user.created",
            ]
        );
        let started = &got[1];
        assert_eq!(started.account_id, Some(AccountId("acct-1".into())));
        assert_eq!(started.sequence, entra_sync_core::committed::RUN_STARTED);
        // Stamped with the record's creation time, when the event has none of its own.
        assert_eq!(got[2].occurred_at.timestamp(), 1_796_161_809);
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_reported_and_the_records_before_it_published() {
        let sink = Arc::new(CollectingEvents::new());
        let event = fixture("malformed");
        let bad = event.records[1].change.sequence_number.clone();
        let response = handle(&deps(sink.clone()).await, event).await;
        let reported: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(reported, [bad]);
        assert_eq!(types(&sink.take()), ["directory.user.created"]);
    }

    struct Down;

    #[async_trait::async_trait]
    impl EventSink for Down {
        async fn publish(&self, _: &[ChangeEvent]) -> Result<(), EventError> {
            Err(EventError::Unavailable("EventBridge is down".into()))
        }
    }

    #[tokio::test]
    async fn a_sink_that_fails_reports_the_first_record_with_events() {
        let event = fixture("happy");
        let first = event.records[0].change.sequence_number.clone();
        let response = handle(&deps(Arc::new(Down)).await, event).await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, first);
    }
}
