//! The action queue on one machine: a [`LocalQueue`] of its own (a separate SQLite file, so page
//! workers never see action messages), used as an SQS FIFO queue is in AWS.
//!
//! * Message group = `ActionMessage::group_id()` (tenant + target user): a group's messages are
//!   claimed one at a time, in the order they were enqueued, and a message waiting for its
//!   retry holds the messages behind it — one user's actions never overtake each other, even
//!   with several workers, while other users' actions proceed.
//! * Message id = `ActionMessage::dedup_id()` (tenant + action): the same action enqueued while
//!   its message is still queued is one message. After the message was handled, enqueueing it
//!   again (a retry, the sweep's redelivery) is a new message.
//! * The executor's verdict decides what happens to a delivery: acknowledged, retried after the
//!   delay it asks for (a throttled call's Retry-After) or after the queue's backoff, or
//!   dead-lettered. Every delivery counts toward `max_attempts`, as every receive counts toward
//!   an SQS queue's `maxReceiveCount`.
//! * Enqueueing never waits for the queue to drain (the page queue's back-pressure is for
//!   fetch; actions are enqueued by people and workflows, one at a time).

use std::future::Future;
use std::path::Path;

use async_trait::async_trait;
use entra_sync_core::actions::ports::{ActionMessage, ActionQueue};
use entra_sync_core::error::{QueueError, StoreError};
use entra_sync_core::services::actions::MessageVerdict;
use tokio::sync::watch;

use crate::queue::{Delivery, HandlerResult, LocalQueue, QueueConfig};

/// The durable local action queue. Cheap to clone.
#[derive(Clone)]
pub struct LocalActionQueue {
    queue: LocalQueue,
}

impl LocalActionQueue {
    /// Open (or create) the queue file at `path`. `config.max_depth` does not apply.
    pub fn open(path: &Path, config: QueueConfig) -> Result<Self, StoreError> {
        Ok(Self {
            queue: LocalQueue::open(path, config)?,
        })
    }

    /// The queue underneath: depth, dead letters, redrive, claims.
    pub fn queue(&self) -> &LocalQueue {
        &self.queue
    }

    /// Run `workers` executors until `stop` turns true: each delivery is parsed and handed to
    /// `handler` (the core's `handle_action_message`), whose verdict acknowledges, retries or
    /// dead-letters it. A body that is not an action message is dead-lettered at once.
    pub async fn run_workers<H, F>(&self, workers: usize, handler: H, stop: watch::Receiver<bool>)
    where
        H: Fn(ActionMessage) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = MessageVerdict> + Send + 'static,
    {
        self.queue
            .run_workers(
                workers,
                move |d: Delivery| {
                    let handler = handler.clone();
                    async move {
                        let result = match serde_json::from_str::<ActionMessage>(&d.body) {
                            Ok(m) => verdict_result(handler(m).await),
                            Err(e) => {
                                HandlerResult::Poison(format!("malformed action message: {e}"))
                            }
                        };
                        (d, result)
                    }
                },
                stop,
            )
            .await;
    }
}

/// The queue's reading of the executor's verdict.
fn verdict_result(v: MessageVerdict) -> HandlerResult {
    match v {
        MessageVerdict::Ack => HandlerResult::Done,
        MessageVerdict::Retry { after: Some(after) } => {
            HandlerResult::RetryAfter("the executor asked for a later retry".into(), after)
        }
        MessageVerdict::Retry { after: None } => {
            HandlerResult::Retry("the action could not be executed now".into())
        }
        MessageVerdict::DeadLetter => {
            HandlerResult::Poison("the message names no action that can be executed".into())
        }
    }
}

#[async_trait]
impl ActionQueue for LocalActionQueue {
    async fn enqueue_actions(&self, messages: Vec<ActionMessage>) -> Result<(), QueueError> {
        for m in messages {
            let body =
                serde_json::to_string(&m).map_err(|e| QueueError::Rejected(e.to_string()))?;
            self.queue
                .enqueue_in_group(&m.dedup_id(), &m.group_id(), &body)
                .await
                .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use entra_sync_core::model::TenantId;

    use super::*;

    /// `cond` polled until it holds (bounded: a broken pool fails instead of hanging).
    async fn eventually<F, Fut>(mut cond: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        for _ in 0..400 {
            if cond().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    fn msg(action: &str, user: &str) -> ActionMessage {
        ActionMessage {
            tenant_id: TenantId::new("tenant-a"),
            action_id: action.into(),
            user_id: user.into(),
        }
    }

    fn open(dir: &tempfile::TempDir, max_attempts: u32) -> LocalActionQueue {
        let config = QueueConfig {
            max_attempts,
            ..QueueConfig::default()
        };
        LocalActionQueue::open(&dir.path().join("actions.sqlite"), config).unwrap()
    }

    async fn claim(q: &LocalActionQueue) -> Option<(Delivery, ActionMessage)> {
        let d = q.queue().claim().await.unwrap()?;
        let m = serde_json::from_str(&d.body).unwrap();
        Some((d, m))
    }

    #[tokio::test]
    async fn one_users_actions_wait_for_each_other_while_other_users_proceed() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir, 5);
        q.enqueue_actions(vec![msg("a1", "u1"), msg("a2", "u1"), msg("b1", "u2")])
            .await
            .unwrap();
        let (d1, m1) = claim(&q).await.unwrap();
        assert_eq!(m1, msg("a1", "u1"));
        let (db, mb) = claim(&q).await.unwrap();
        assert_eq!(
            mb,
            msg("b1", "u2"),
            "u2 proceeds while u1's first action runs"
        );
        assert!(claim(&q).await.is_none(), "a2 waits for a1");
        // a1 is to be retried later: a2 still waits (it must not overtake a1).
        q.queue()
            .nack_after(&d1, "throttled", Duration::from_secs(3600))
            .await
            .unwrap();
        q.queue().ack(&db.message_id).await.unwrap();
        assert!(
            claim(&q).await.is_none(),
            "a2 waits while a1 waits for its retry"
        );
        // Once a1 is done, a2 follows.
        q.queue().release_claims().await.unwrap();
        let (d1, m1) = claim(&q).await.unwrap();
        assert_eq!((m1.action_id.as_str(), d1.attempt), ("a1", 2));
        q.queue().ack(&d1.message_id).await.unwrap();
        let (_, m2) = claim(&q).await.unwrap();
        assert_eq!(m2, msg("a2", "u1"));
    }

    #[tokio::test]
    async fn a_retry_after_a_delay_is_not_delivered_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir, 5);
        q.enqueue_actions(vec![msg("a1", "u1")]).await.unwrap();
        let (d, _) = claim(&q).await.unwrap();
        q.queue()
            .nack_after(&d, "throttled", Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(
            claim(&q).await.is_none(),
            "hidden for the hour it asked for"
        );
        let (d, _) = {
            q.queue()
                .nack_after(&d, "throttled", Duration::ZERO)
                .await
                .unwrap();
            claim(&q).await.unwrap()
        };
        assert_eq!(d.attempt, 2);
    }

    #[tokio::test]
    async fn a_dead_letter_releases_its_group_and_the_action_can_be_enqueued_again() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir, 2);
        q.enqueue_actions(vec![msg("a1", "u1"), msg("a2", "u1")])
            .await
            .unwrap();
        for attempt in 1..=2 {
            let (d, m) = claim(&q).await.unwrap();
            assert_eq!((m.action_id.as_str(), d.attempt), ("a1", attempt));
            let dead = q
                .queue()
                .nack_after(&d, "still throttled", Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(dead, attempt == 2, "dead after max_attempts deliveries");
        }
        let dead = q.queue().dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, msg("a1", "u1").dedup_id());
        let (d2, m2) = claim(&q).await.unwrap();
        assert_eq!(
            m2.action_id, "a2",
            "the group moves on past its dead letter"
        );
        q.queue().ack(&d2.message_id).await.unwrap();
        // A retry of the action enqueues it again: a fresh message, not held by the old one.
        q.enqueue_actions(vec![msg("a1", "u1")]).await.unwrap();
        let (d1, m1) = claim(&q).await.unwrap();
        assert_eq!((m1.action_id.as_str(), d1.attempt), ("a1", 1));
        assert!(q.queue().dead_letters().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_same_action_enqueued_while_queued_is_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir, 5);
        q.enqueue_actions(vec![msg("a1", "u1")]).await.unwrap();
        q.enqueue_actions(vec![msg("a1", "u1")]).await.unwrap();
        assert_eq!(q.queue().depth().await.unwrap(), 1);
        let (d, _) = claim(&q).await.unwrap();
        // Claimed and running: still one message.
        q.enqueue_actions(vec![msg("a1", "u1")]).await.unwrap();
        assert_eq!(q.queue().depth().await.unwrap(), 1);
        q.queue().ack(&d.message_id).await.unwrap();
        // Handled: enqueueing it again is a new delivery.
        q.enqueue_actions(vec![msg("a1", "u1")]).await.unwrap();
        assert_eq!(q.queue().depth().await.unwrap(), 1);
        assert!(claim(&q).await.is_some());
    }

    #[tokio::test]
    async fn workers_follow_the_executors_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(&dir, 3);
        q.enqueue_actions(vec![
            msg("throttled-once", "u1"),
            msg("after-it", "u1"),
            msg("unknown", "u2"),
            msg("flaky", "u3"),
        ])
        .await
        .unwrap();
        q.queue()
            .enqueue_in_group("junk", "g", "not json")
            .await
            .unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let handler = {
            let seen = seen.clone();
            move |m: ActionMessage| {
                let seen = seen.clone();
                async move {
                    let mut log = seen.lock().unwrap();
                    log.push(m.action_id.clone());
                    let tries = log.iter().filter(|a| **a == m.action_id).count();
                    match (m.action_id.as_str(), tries) {
                        ("throttled-once", 1) => MessageVerdict::Retry {
                            after: Some(Duration::ZERO),
                        },
                        ("unknown", _) => MessageVerdict::DeadLetter,
                        ("flaky", _) => MessageVerdict::Retry { after: None },
                        _ => MessageVerdict::Ack,
                    }
                }
            }
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let pool = {
            let q = q.clone();
            tokio::spawn(async move { q.run_workers(3, handler, stop_rx).await })
        };
        let done = eventually(|| {
            let q = q.clone();
            async move { q.queue().depth().await.unwrap() == 0 }
        })
        .await;
        stop_tx.send(true).unwrap();
        pool.await.unwrap();
        assert!(done, "every message was handled");
        let log = seen.lock().unwrap().clone();
        let first_of = |a: &str| log.iter().position(|x| x == a).unwrap();
        let last_of = |a: &str| log.iter().rposition(|x| x == a).unwrap();
        assert!(
            last_of("throttled-once") < first_of("after-it"),
            "the retried action ran again before the one behind it: {log:?}"
        );
        assert_eq!(log.iter().filter(|a| *a == "flaky").count(), 3, "{log:?}");
        let mut dead: Vec<String> = q
            .queue()
            .dead_letters()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.message_id)
            .collect();
        dead.sort();
        assert_eq!(
            dead,
            [
                "junk".to_string(),
                msg("flaky", "u3").dedup_id(),
                msg("unknown", "u2").dedup_id()
            ]
        );
    }
}
