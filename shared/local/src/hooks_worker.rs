//! The HR webhooks on one machine: the delivery queue (a [`LocalQueue`] of its own, a separate
//! SQLite file, used as the SQS queue is in AWS), the worker that processes queued deliveries,
//! and the deps the webhook route, the endpoint management and the processor use on a data
//! directory.
//!
//! * Message id = `DeliveryMessage::dedup_id()`: a delivery queued again while its message is
//!   still queued (a sender's retry, a replay) is one message.
//! * Message group = the endpoint: one endpoint's deliveries are processed one at a time, in
//!   the order they were accepted, so two events about one person never race on that person's
//!   record; other endpoints proceed.
//! * The processor's result decides: `Ok` acknowledges (the outcome is in the delivery log),
//!   a retryable error (the store, the vault, the HR system's API) retries with the queue's
//!   backoff, any other error dead-letters the message (the delivery stays in the log and can
//!   be replayed with `entra-sync hooks replay`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use entra_sync_core::error::{QueueError, StoreError};
use entra_sync_core::services::actions::ActionDeps;
use entra_sync_core::services::webhooks::{
    EndpointDeps, ProcessDeps, ReceiveDeps, WebhookConfig, process_delivery,
};
use entra_sync_core::webhooks::ports::{DeliveryMessage, DeliveryQueue, HrDirectory};
use tokio::sync::watch;

use crate::queue::{Delivery, HandlerResult, LocalQueue, QueueConfig};
use crate::runtime::{DataDir, LocalApp};

/// The delivery queue's file in a data directory.
pub fn queue_path(dir: &DataDir) -> PathBuf {
    dir.root.join("hooks-queue.sqlite")
}

/// The durable local delivery queue. Cheap to clone.
#[derive(Clone)]
pub struct LocalDeliveryQueue {
    queue: LocalQueue,
}

impl LocalDeliveryQueue {
    /// Open (or create) the queue file at `path`. `config.max_depth` does not apply: the
    /// webhook route never waits for the queue to drain.
    pub fn open(path: &Path, config: QueueConfig) -> Result<Self, StoreError> {
        Ok(Self {
            queue: LocalQueue::open(path, config)?,
        })
    }

    /// The queue underneath: depth, dead letters, redrive.
    pub fn queue(&self) -> &LocalQueue {
        &self.queue
    }

    /// Run `workers` processors until `stop` turns true.
    pub async fn run_workers(
        &self,
        workers: usize,
        deps: ProcessDeps,
        stop: watch::Receiver<bool>,
    ) {
        let deps = Arc::new(deps);
        self.queue
            .run_workers(
                workers,
                move |d: Delivery| {
                    let deps = deps.clone();
                    async move {
                        let result = handle(&deps, &d.body).await;
                        (d, result)
                    }
                },
                stop,
            )
            .await;
    }

    /// Process every message queued now, one after the other (tests and one-shot commands).
    /// Returns how many were handled.
    pub async fn drain(&self, deps: &ProcessDeps) -> Result<usize, StoreError> {
        let mut n = 0;
        while let Some(d) = self.queue.claim().await? {
            match handle(deps, &d.body).await {
                HandlerResult::Done => self.queue.ack(&d.message_id).await?,
                HandlerResult::Poison(why) => {
                    self.queue.nack(&d, &why, true).await?;
                }
                HandlerResult::Retry(why) | HandlerResult::RetryAfter(why, _) => {
                    self.queue.nack(&d, &why, false).await?;
                    // Not now: leave it for the worker's backoff.
                    n += 1;
                    break;
                }
            }
            n += 1;
        }
        Ok(n)
    }
}

/// One message: parse, process, and the queue's reading of the result. The error is logged
/// here, where the decision about it is made.
async fn handle(deps: &ProcessDeps, body: &str) -> HandlerResult {
    let msg = match serde_json::from_str::<DeliveryMessage>(body) {
        Ok(m) => m,
        Err(e) => return HandlerResult::Poison(format!("malformed delivery message: {e}")),
    };
    match process_delivery(deps, &msg).await {
        Ok(d) => {
            tracing::info!(delivery = %d.id, endpoint = %d.endpoint, workflows = d.workflow_ids.len(), reviews = d.review_ids.len(), "webhook delivery processed");
            HandlerResult::Done
        }
        Err(e) if e.is_retryable() => {
            HandlerResult::Retry(format!("delivery {} not processed: {e}", msg.delivery_id))
        }
        Err(e) => HandlerResult::Poison(format!("delivery {} not processed: {e}", msg.delivery_id)),
    }
}

#[async_trait]
impl DeliveryQueue for LocalDeliveryQueue {
    async fn enqueue_delivery(&self, message: &DeliveryMessage) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(message).map_err(|e| QueueError::Rejected(e.to_string()))?;
        let group = message.endpoint().to_string();
        self.queue
            .enqueue_in_group(&message.dedup_id(), &group, &body)
            .await
            .map_err(|e| QueueError::Unavailable(Box::new(e)))
    }
}

/// What the webhook route uses on a data directory.
pub fn receive_deps(app: &LocalApp, queue: Arc<LocalDeliveryQueue>) -> ReceiveDeps {
    ReceiveDeps {
        endpoints: app.store.clone(),
        vault: app.vault.clone(),
        deliveries: app.store.clone(),
        queue,
        clock: app.clock.clone(),
        limits: WebhookConfig::default().limits,
    }
}

/// What endpoint management uses on a data directory (secrets go to the vault only).
pub fn endpoint_deps(app: &LocalApp) -> EndpointDeps {
    EndpointDeps {
        connections: app.store.clone(),
        endpoints: app.store.clone(),
        deliveries: app.store.clone(),
        vault: app.vault.clone(),
        clock: app.clock.clone(),
        config: WebhookConfig::default(),
    }
}

/// What the processor uses: the write half's deps (workflows run there), the webhook stores
/// and the employee-id index on the data directory, and the HR systems' API client.
pub fn process_deps(
    app: &LocalApp,
    actions: ActionDeps,
    hr_api: Arc<dyn HrDirectory>,
) -> ProcessDeps {
    ProcessDeps {
        actions,
        endpoints: app.store.clone(),
        deliveries: app.store.clone(),
        reviews: app.store.clone(),
        people: app.store.clone(),
        employees: app.store.clone(),
        hr_api,
        vault: app.vault.clone(),
    }
}

/// The HiBob API client: `https://api.hibob.com`, or the base URL in `ENTRA_SYNC_HIBOB_URL`
/// (a sandbox, or an emulator in tests).
pub fn hibob_client() -> Result<entra_sync_hr::HiBobClient, reqwest::Error> {
    let mut config = entra_sync_hr::HiBobConfig::default();
    if let Ok(url) = std::env::var("ENTRA_SYNC_HIBOB_URL") {
        config.base_url = url;
    }
    entra_sync_hr::HiBobClient::new(config)
}

/// What `serve` adds for the HR webhooks: the route (to merge with the other routes before the
/// stack) and the worker that processes the queued deliveries until `stop` turns true.
pub struct ServedHooks {
    pub routes: axum::Router,
    pub worker: tokio::task::JoinHandle<()>,
}

/// Open the delivery queue of the data directory, build the route and start one delivery
/// worker. `actions`: the write half `serve` runs (its action queue, worker and write budget),
/// where the workflows the deliveries start run like any other.
pub fn serve_hooks(
    app: &LocalApp,
    actions: ActionDeps,
    stop: watch::Receiver<bool>,
) -> Result<ServedHooks, crate::runtime::LocalError> {
    let deliveries = Arc::new(LocalDeliveryQueue::open(
        &queue_path(&app.data_dir()),
        QueueConfig::default(),
    )?);
    let hr_api = hibob_client().map_err(|e| {
        crate::runtime::LocalError::Failed(format!("cannot build the HiBob client: {e}"))
    })?;
    let routes = entra_sync_http::hooks::routes(entra_sync_http::hooks::HooksState::new(
        receive_deps(app, deliveries.clone()),
    ));
    let deps = process_deps(app, actions, Arc::new(hr_api));
    let worker = tokio::spawn(async move { deliveries.run_workers(1, deps, stop).await });
    Ok(ServedHooks { routes, worker })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use entra_sync_core::model::AccountId;
    use entra_sync_core::webhooks::Source;

    use super::*;

    fn message(id: &str) -> DeliveryMessage {
        DeliveryMessage {
            account_id: AccountId("acct".into()),
            source: Source::BambooHr,
            delivery_id: id.into(),
        }
    }

    #[tokio::test]
    async fn a_delivery_queued_again_while_waiting_is_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let q =
            LocalDeliveryQueue::open(&dir.path().join("q.sqlite"), QueueConfig::default()).unwrap();
        q.enqueue_delivery(&message("d1")).await.unwrap();
        q.enqueue_delivery(&message("d1")).await.unwrap();
        q.enqueue_delivery(&message("d2")).await.unwrap();
        assert_eq!(q.queue().depth().await.unwrap(), 2);
        let first = q.queue().claim().await.unwrap().unwrap();
        let parsed: DeliveryMessage = serde_json::from_str(&first.body).unwrap();
        assert_eq!(parsed, message("d1"), "in the order accepted");
        // One endpoint's deliveries are processed one at a time: d2 waits for d1.
        assert!(q.queue().claim().await.unwrap().is_none());
        q.queue().ack(&first.message_id).await.unwrap();
        let second = q.queue().claim().await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<DeliveryMessage>(&second.body).unwrap(),
            message("d2")
        );
    }
}
