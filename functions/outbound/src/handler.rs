//! Translate the function's two events (an SQS batch of wake-up messages, the schedule's tick)
//! into one delivery pass, and its failure into the answer each event's source retries: the
//! batch's message ids in `batchItemFailures`, or a Lambda `Diagnostic` for the tick. [`handle`]
//! is the one place a failed pass is logged.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use entra_sync_core::error::ErrorClass;
use entra_sync_core::outbound::service::{DeliveryReport, OutboundError};
use entra_sync_outbound::OutboundWorker;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info};

/// The ports the function uses: the store (claim, record), the vault (signing secrets), the
/// poster, and the delivery policy.
pub type Deps = OutboundWorker;

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Response {
    pub attempted: usize,
    pub delivered: usize,
    pub failed_attempts: usize,
    pub endpoints_disabled: usize,
}

impl From<DeliveryReport> for Response {
    fn from(r: DeliveryReport) -> Self {
        Self {
            attempted: r.attempted,
            delivered: r.delivered,
            failed_attempts: r.failed_attempts,
            endpoints_disabled: r.endpoints_disabled,
        }
    }
}

/// What the function answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Batch(SqsBatchResponse),
    Tick(Response),
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event is neither an SQS batch nor the schedule's tick")]
    Unknown,
    #[error(transparent)]
    Deliver(#[from] OutboundError),
}

impl HandlerError {
    pub fn class(&self) -> ErrorClass {
        match self {
            HandlerError::Unknown => ErrorClass::Permanent,
            HandlerError::Deliver(e) if e.is_retryable() => ErrorClass::Retryable,
            HandlerError::Deliver(_) => ErrorClass::Permanent,
        }
    }
}

/// The one conversion of a failed tick for the Lambda runtime.
impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.class().as_str().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The schedule's event: EventBridge's scheduled event (`source` `aws.events`).
fn is_tick(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("aws.events")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// Handle one invocation at `now`. Either event runs the same pass: every delivery due,
/// whatever the message says (the deliveries are in the table; the message only wakes the
/// function). A failed pass fails the whole wake-up batch (SQS redelivers it, and after five
/// receives it goes to the dead-letter queue) or the tick (Lambda retries it twice).
pub async fn handle(deps: &Deps, payload: Value, now: DateTime<Utc>) -> Result<Answer, Diagnostic> {
    let batch = match payload.get("Records") {
        None if is_tick(&payload) => None,
        None => {
            let e = HandlerError::Unknown;
            error!(error = %e, class = e.class().as_str(), "outbound delivery not run");
            return Err(e.into());
        }
        Some(_) => Some(
            serde_json::from_value::<SqsEvent>(payload).unwrap_or_else(|e| {
                // Unreadable wake-ups still wake: the pass does not depend on them.
                error!(error = %e, "unreadable SQS event");
                SqsEvent::default()
            }),
        ),
    };
    match deps.deliver_due(now).await {
        Ok(report) => {
            info!(
                attempted = report.attempted,
                delivered = report.delivered,
                failed_attempts = report.failed_attempts,
                endpoints_disabled = report.endpoints_disabled,
                "outbound deliveries attempted"
            );
            Ok(match batch {
                Some(_) => Answer::Batch(SqsBatchResponse::default()),
                None => Answer::Tick(report.into()),
            })
        }
        Err(e) => {
            let e = HandlerError::from(e);
            error!(error = %e, class = e.class().as_str(), "outbound delivery pass failed");
            match batch {
                Some(event) => {
                    let mut response = SqsBatchResponse::default();
                    for m in event.records {
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = m.message_id.unwrap_or_default();
                        response.batch_item_failures.push(failure);
                    }
                    Ok(Answer::Batch(response))
                }
                None => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use entra_sync_core::error::VaultError;
    use entra_sync_core::events::{ChangeEvent, ChangeKind};
    use entra_sync_core::memory::MemoryVault;
    use entra_sync_core::memory_outbound::MemoryOutboundStore;
    use entra_sync_core::model::{AccountId, TenantId};
    use entra_sync_core::outbound::ports::{OutboundRequest, OutboundStore, WebhookPoster};
    use entra_sync_core::outbound::service::{NewEndpoint, create_endpoint};
    use entra_sync_core::outbound::{AttemptOutcome, OutboundPolicy};
    use entra_sync_core::ports::{Secret, SecretVault};

    use super::*;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "tick" => include_str!("../../../events/outbound/tick.json"),
            "wake" => include_str!("../../../events/outbound/wake.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap()
    }

    /// Answers every POST with one status and keeps the requests.
    struct Answering(u16, Mutex<Vec<OutboundRequest>>);

    #[async_trait]
    impl WebhookPoster for Answering {
        async fn post(&self, request: &OutboundRequest) -> AttemptOutcome {
            self.1.lock().unwrap().push(request.clone());
            AttemptOutcome::Status { status: self.0 }
        }
    }

    /// A vault that is down.
    struct Down;

    #[async_trait]
    impl SecretVault for Down {
        async fn get_secret(&self, _: &str) -> Result<Secret, VaultError> {
            Err(VaultError::Unavailable("Secrets Manager is down".into()))
        }
        async fn put_secret(&self, _: &str, _: &Secret) -> Result<(), VaultError> {
            Err(VaultError::Unavailable("Secrets Manager is down".into()))
        }
        async fn delete_secret(&self, _: &str) -> Result<(), VaultError> {
            Err(VaultError::Unavailable("Secrets Manager is down".into()))
        }
    }

    struct Resolves;

    #[async_trait]
    impl entra_sync_core::outbound::ports::HostResolver for Resolves {
        async fn resolve(
            &self,
            _: &str,
            _: u16,
        ) -> Result<Vec<std::net::IpAddr>, entra_sync_core::outbound::ports::ResolveError> {
            Ok(vec!["8.8.8.8".parse().unwrap()])
        }
    }

    /// A store with one endpoint and one delivery due now, the vault holding its secret.
    async fn one_due() -> (Arc<MemoryOutboundStore>, Arc<MemoryVault>, DateTime<Utc>) {
        let store = Arc::new(MemoryOutboundStore::new());
        let vault = Arc::new(MemoryVault::default());
        let now = Utc::now();
        let created = create_endpoint(
            store.as_ref(),
            vault.as_ref(),
            &Resolves,
            &OutboundPolicy::default(),
            NewEndpoint {
                account: AccountId("acct".into()),
                url: "https://hooks.example.com/in".into(),
                event_types: None,
            },
            now,
        )
        .await
        .unwrap();
        let event = ChangeEvent::new(
            &TenantId::new(""),
            "u1",
            1,
            ChangeKind::DirectoryUserCreated {},
        )
        .account(Some(created.endpoint.account_id.clone()));
        assert_eq!(store.fan_out(&[event], None, now).unwrap(), 1);
        (store, vault, now)
    }

    fn deps(
        store: Arc<MemoryOutboundStore>,
        vault: Arc<dyn SecretVault>,
        poster: Arc<dyn WebhookPoster>,
    ) -> Deps {
        OutboundWorker {
            store,
            vault,
            poster,
            policy: OutboundPolicy::default(),
        }
    }

    #[tokio::test]
    async fn the_tick_delivers_what_is_due_signed() {
        let (store, vault, now) = one_due().await;
        let poster = Arc::new(Answering(204, Mutex::default()));
        let answer = handle(
            &deps(store.clone(), vault, poster.clone()),
            fixture("tick"),
            now,
        )
        .await
        .unwrap();
        let Answer::Tick(r) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!((r.attempted, r.delivered), (1, 1));
        let sent = poster.1.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        let names: Vec<&str> = sent[0].headers.iter().map(|(k, _)| *k).collect();
        assert!(names.contains(&"webhook-signature"), "{names:?}");
        let ep = &store
            .list_endpoints(&AccountId("acct".into()))
            .await
            .unwrap()[0];
        let log = store.list_deliveries(&ep.id, None, 10).await.unwrap();
        assert!(
            matches!(
                log[0].state,
                entra_sync_core::outbound::DeliveryState::Delivered { .. }
            ),
            "{:?}",
            log[0].state
        );
    }

    #[tokio::test]
    async fn a_wake_up_batch_runs_the_pass_and_a_failed_pass_returns_every_message() {
        let (store, vault, now) = one_due().await;
        let poster = Arc::new(Answering(500, Mutex::default()));
        let answer = handle(
            &deps(store.clone(), vault, poster.clone()),
            fixture("wake"),
            now,
        )
        .await
        .unwrap();
        let Answer::Batch(b) = answer else {
            panic!("{answer:?}")
        };
        // A receiver's 500 is an attempt recorded for a retry, not a failed pass.
        assert!(b.batch_item_failures.is_empty());
        assert_eq!(poster.1.lock().unwrap().len(), 1);

        let (store, _, now) = one_due().await;
        let answer = handle(&deps(store, Arc::new(Down), poster), fixture("wake"), now)
            .await
            .unwrap();
        let Answer::Batch(b) = answer else {
            panic!("{answer:?}")
        };
        let ids: Vec<&str> = b
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "9b3c1f3e-4a39-4d4e-9d2b-6c7f0a4c1d11",
                "0c1d2e3f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_tick_is_a_retryable_diagnostic_and_an_unknown_event_a_permanent_one() {
        let (store, _, now) = one_due().await;
        let poster = Arc::new(Answering(204, Mutex::default()));
        let d = deps(store, Arc::new(Down), poster);
        let err = handle(&d, fixture("tick"), now).await.unwrap_err();
        assert_eq!(err.error_type, "Retryable");
        let err = handle(&d, serde_json::json!({"op": "x"}), now)
            .await
            .unwrap_err();
        assert_eq!(err.error_type, "Permanent");
    }
}
