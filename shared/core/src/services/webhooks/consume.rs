//! Consuming one message of the delivery queue: the processor's loop body for a queue whose
//! messages can arrive twice at once (SQS: a message whose visibility timeout ran out while a
//! worker still processes it). The message is claimed under its queue message id (the claim
//! service of the write half, [`crate::services::claim`]), so two workers never process one
//! message at the same time; a different message for the same delivery (a replay, a sender's
//! retry) is a new claim, and [`process_delivery`] itself does nothing twice.

use super::process::{ProcessDeps, process_delivery};
use crate::services::actions::MessageVerdict;
use crate::services::claim::{ClaimError, Claimed};
use crate::webhooks::ports::DeliveryMessage;

/// The claim key of a queue message.
pub fn claim_key(message_id: &str) -> String {
    format!("hooks#{message_id}")
}

/// Consume one delivery message (`body` as the queue holds it). Errors are logged here, where
/// the verdict is decided.
pub async fn handle_delivery_message(
    deps: &ProcessDeps,
    message_id: &str,
    body: &str,
) -> MessageVerdict {
    let msg = match serde_json::from_str::<DeliveryMessage>(body) {
        Ok(m) => m,
        Err(e) => {
            // Fails on every delivery, so it ends in the dead-letter queue.
            tracing::error!(message_id, error = %e, "malformed delivery message");
            return MessageVerdict::DeadLetter;
        }
    };
    // The delivery names the tenant whose records hold the claim.
    let delivery = match deps
        .deliveries
        .get_delivery(&msg.endpoint(), &msg.delivery_id)
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => {
            tracing::error!(message_id, delivery = %msg.delivery_id, endpoint = %msg.endpoint(), "delivery message names no stored delivery");
            return MessageVerdict::DeadLetter;
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(message_id, error = %e, "delivery not read; will be retried");
            return MessageVerdict::Retry { after: None };
        }
        Err(e) => {
            tracing::error!(message_id, error = %e, "delivery not read");
            return MessageVerdict::DeadLetter;
        }
    };
    let claims = &deps.actions.claims;
    let claimed = claims
        .run_once(
            &delivery.tenant_id,
            &claim_key(message_id),
            &msg.dedup_id(),
            |d: &crate::webhooks::delivery::Delivery| format!("processed {}", d.id),
            || process_delivery(deps, &msg),
        )
        .await;
    match claimed {
        Ok(Claimed::Ran(d)) => {
            tracing::info!(delivery = %d.id, endpoint = %d.endpoint, workflows = d.workflow_ids.len(), reviews = d.review_ids.len(), "webhook delivery processed");
            MessageVerdict::Ack
        }
        Ok(Claimed::AlreadyDone(_)) => MessageVerdict::Ack,
        Ok(Claimed::Busy { until }) => MessageVerdict::Retry {
            after: (until - claims.clock.now()).to_std().ok(),
        },
        Ok(Claimed::Mismatch) => {
            tracing::error!(
                message_id,
                "a queue message id was used for another delivery"
            );
            MessageVerdict::DeadLetter
        }
        Err(ClaimError::Store(e)) if e.is_retryable() => {
            tracing::warn!(message_id, error = %e, "delivery claim not taken; will be retried");
            MessageVerdict::Retry { after: None }
        }
        Err(ClaimError::Store(e)) => {
            tracing::error!(message_id, error = %e, "delivery claim not taken");
            MessageVerdict::DeadLetter
        }
        Err(ClaimError::Work(e)) if e.is_retryable() => {
            tracing::warn!(delivery = %msg.delivery_id, error = %e, "delivery not processed; will be retried");
            MessageVerdict::Retry { after: None }
        }
        Err(ClaimError::Work(e)) => {
            // The delivery stays in the log; `replay` queues it again once fixed.
            tracing::error!(delivery = %msg.delivery_id, error = %e, "delivery cannot be processed");
            MessageVerdict::DeadLetter
        }
    }
}
