//! The delivery queue's batch: each SQS message to the core consumer
//! ([`handle_delivery_message`]), its verdict back as SQS partial batch failures. The one place
//! a delivery message's outcome is translated for Lambda.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use entra_sync_core::services::actions::MessageVerdict;
use entra_sync_core::services::webhooks::{ProcessDeps, handle_delivery_message};
use tracing::{Instrument, error, info_span};

/// A FIFO batch: the messages of one group (one endpoint) are processed in order, and after a
/// failure the rest of that group fails too, so a later delivery never overtakes a retried one
/// (a termination never runs before the hire it follows); groups run concurrently. A message
/// that fails is reported in `batchItemFailures` and delivered again after the visibility
/// timeout; after the queue's receive limit it moves to the dead-letter queue.
pub async fn handle_batch(deps: &ProcessDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut groups: BTreeMap<String, Vec<&SqsMessage>> = BTreeMap::new();
    for m in &event.records {
        let group = m
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        groups.entry(group).or_default().push(m);
    }
    let failed = futures::future::join_all(groups.into_values().map(|msgs| async move {
        let mut failed = Vec::new();
        let mut stop = false;
        for m in msgs {
            if stop || !handle_message(deps, m).await {
                stop = true;
                if let Some(id) = &m.message_id {
                    failed.push(id.clone());
                }
            }
        }
        failed
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}

/// One message; `true` when it may be acknowledged.
async fn handle_message(deps: &ProcessDeps, m: &SqsMessage) -> bool {
    let message_id = m.message_id.as_deref().unwrap_or("");
    let Some(body) = m.body.as_deref() else {
        error!(message_id, "delivery message without a body");
        return false;
    };
    let span = info_span!("delivery_message", message_id);
    match handle_delivery_message(deps, message_id, body)
        .instrument(span)
        .await
    {
        MessageVerdict::Ack => true,
        MessageVerdict::Retry { .. } | MessageVerdict::DeadLetter => false,
    }
}
