//! Translate a DynamoDB Stream batch into committed writes and the publishing outcome into the
//! batch response: the one place a publishing failure is classified and logged.
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

/// Deps of the publisher: the connections (the account of `sync.*` events) and the sink.
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
            info!(
                records = event.records.len(),
                writes = writes.len(),
                skipped,
                published,
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
