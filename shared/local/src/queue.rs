//! The in-process work queue: durable (its own SQLite file, so a crash loses no page), with a
//! worker pool, visibility timeouts, bounded retries with backoff and a dead-letter state —
//! the same contract SQS gives the Lambda functions.
//!
//! `enqueue` blocks while the queue holds `max_depth` messages, so a fetch of a huge tenant never
//! runs far ahead of reconcile: memory and disk stay flat as the tenant grows.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use entra_sync_core::error::{QueueError, StoreError};
use entra_sync_core::page::PageMessage;
use entra_sync_core::ports::WorkQueue;
use rusqlite::{OptionalExtension, params};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{error, warn};

use crate::sqlite::{internal, migrate_with, on_connection, open_database};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queue (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT NOT NULL UNIQUE,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    visible_at_ms INTEGER NOT NULL DEFAULT 0,
    dead          INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX queue_ready ON queue (dead, visible_at_ms);
"#,
    // 2: message groups (the action queue, src/action_queue.rs): a message with a group waits
    // while an older live message of its group is queued, claimed or waiting for a retry, as in
    // an SQS FIFO queue. Page messages have no group.
    r#"
ALTER TABLE queue ADD COLUMN group_id TEXT;
CREATE INDEX queue_group ON queue (group_id, seq) WHERE group_id IS NOT NULL;
"#,
];

/// Tuning of the local queue.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// `enqueue` waits while this many live messages are queued.
    pub max_depth: usize,
    /// A claimed message becomes visible again after this long if not acknowledged.
    pub visibility: Duration,
    /// Deliveries before a message is dead-lettered (like SQS maxReceiveCount).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_depth: 64,
            visibility: Duration::from_secs(60),
            max_attempts: 5,
            retry_base: Duration::from_millis(200),
        }
    }
}

/// One claimed delivery.
#[derive(Debug)]
pub struct Delivery {
    pub message_id: String,
    pub body: String,
    /// 1 on the first delivery.
    pub attempt: u32,
}

/// A message that exhausted its retries (or could not be parsed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What a handler says about a delivery.
#[derive(Debug)]
pub enum HandlerResult {
    Done,
    /// Try again later (counts toward `max_attempts`).
    Retry(String),
    /// Try again after this delay (counts toward `max_attempts`), instead of the backoff.
    RetryAfter(String, Duration),
    /// Will never succeed: dead-letter at once.
    Poison(String),
}

#[derive(Clone)]
pub struct LocalQueue {
    conn: Arc<Mutex<rusqlite::Connection>>,
    /// The queue's file, named in logs about messages set aside.
    path: Arc<PathBuf>,
    config: QueueConfig,
    changed: Arc<Notify>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl LocalQueue {
    pub fn open(path: &Path, config: QueueConfig) -> Result<Self, StoreError> {
        let mut conn = open_database(path)?;
        migrate_with(&mut conn, MIGRATIONS)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_owned()),
            config,
            changed: Arc::new(Notify::new()),
        })
    }

    /// The queue's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        on_connection(&self.conn, f).await
    }

    /// Live (not dead-lettered) messages, claimed or not.
    pub async fn depth(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM queue WHERE dead = 0", [], |r| {
                r.get::<_, u64>(0)
            })
            .map_err(internal)
        })
        .await
    }

    /// Make every claimed message visible again: the previous process that claimed them is gone.
    pub async fn release_claims(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE queue SET visible_at_ms = 0 WHERE dead = 0", [])
                .map_err(internal)?;
            Ok(())
        })
        .await
    }

    /// Claim the oldest visible message, hiding it for the visibility timeout. A message of a
    /// group is only claimed when no older live message of its group is left (claimed, waiting
    /// for a retry, or not yet delivered): one group's messages are handled one at a time, in
    /// order, while other groups proceed.
    pub async fn claim(&self) -> Result<Option<Delivery>, StoreError> {
        let vis = millis(self.config.visibility);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let now = now_ms();
            let row: Option<(i64, String, String, u32)> = tx
                .query_row(
                    "SELECT seq, message_id, body, attempts FROM queue AS q
                     WHERE dead = 0 AND visible_at_ms <= ?1
                       AND (group_id IS NULL OR NOT EXISTS (
                             SELECT 1 FROM queue AS e
                             WHERE e.group_id = q.group_id AND e.dead = 0 AND e.seq < q.seq))
                     ORDER BY seq LIMIT 1",
                    [now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(internal)?;
            let Some((seq, message_id, body, attempts)) = row else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE queue SET visible_at_ms = ?2, attempts = attempts + 1 WHERE seq = ?1",
                params![seq, now.saturating_add(vis)],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Some(Delivery {
                message_id,
                body,
                attempt: attempts + 1,
            }))
        })
        .await
    }

    /// The delivery succeeded: delete it.
    pub async fn ack(&self, message_id: &str) -> Result<(), StoreError> {
        let id = message_id.to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM queue WHERE message_id = ?1", [id])
                .map_err(internal)?;
            Ok(())
        })
        .await?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// The delivery failed: retry after a backoff, or dead-letter it.
    pub async fn nack(&self, d: &Delivery, error: &str, poison: bool) -> Result<bool, StoreError> {
        let backoff = self
            .config
            .retry_base
            .saturating_mul(1u32 << d.attempt.saturating_sub(1).min(10));
        self.fail(d, error, poison, backoff).await
    }

    /// The delivery failed and asks to be retried after `after` (a throttled call's
    /// Retry-After), or is dead-lettered when it had its last attempt. Returns whether it was.
    pub async fn nack_after(
        &self,
        d: &Delivery,
        error: &str,
        after: Duration,
    ) -> Result<bool, StoreError> {
        self.fail(d, error, false, after).await
    }

    async fn fail(
        &self,
        d: &Delivery,
        error: &str,
        poison: bool,
        backoff: Duration,
    ) -> Result<bool, StoreError> {
        let dead = poison || d.attempt >= self.config.max_attempts;
        let id = d.message_id.clone();
        let err = error.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE queue SET dead = ?2, visible_at_ms = ?3, last_error = ?4 WHERE message_id = ?1",
                params![id, dead, now_ms().saturating_add(millis(backoff)), err],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await?;
        self.changed.notify_waiters();
        Ok(dead)
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare("SELECT message_id, attempts, last_error FROM queue WHERE dead = 1 ORDER BY seq")
                .map_err(internal)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(DeadLetter {
                        message_id: r.get(0)?,
                        attempts: r.get(1)?,
                        last_error: r.get(2)?,
                    })
                })
                .map_err(internal)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(internal)
        })
        .await
    }

    /// Delete every dead letter (a full read replaces the pages they held); returns how many.
    pub async fn purge_dead_letters(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            let n = c
                .execute("DELETE FROM queue WHERE dead = 1", [])
                .map_err(internal)?;
            Ok(n as u64)
        })
        .await
    }

    /// Put every dead letter back on the queue (after the cause is fixed).
    pub async fn redrive(&self) -> Result<u64, StoreError> {
        let n = self
            .with(|c| {
                let n = c
                    .execute(
                        "UPDATE queue SET dead = 0, attempts = 0, visible_at_ms = 0 WHERE dead = 1",
                        [],
                    )
                    .map_err(internal)?;
                Ok(n as u64)
            })
            .await?;
        self.changed.notify_waiters();
        Ok(n)
    }

    /// Insert a raw body (tests use it to plant malformed messages).
    pub async fn enqueue_raw(&self, message_id: &str, body: &str) -> Result<(), StoreError> {
        let id = message_id.to_owned();
        let body = body.to_owned();
        self.with(move |c| {
            c.execute(
                "INSERT INTO queue (message_id, body) VALUES (?1, ?2) ON CONFLICT (message_id) DO NOTHING",
                params![id, body],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// Insert a message of group `group_id` (see [`Self::claim`]) at the end of the queue. A
    /// live message with the same id makes this a duplicate, and nothing is added; a
    /// dead-lettered one is replaced by the new message, with fresh attempts (a new send to an
    /// SQS queue is not held back by an old copy in the dead-letter queue either).
    pub async fn enqueue_in_group(
        &self,
        message_id: &str,
        group_id: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let id = message_id.to_owned();
        let group = group_id.to_owned();
        let body = body.to_owned();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            tx.execute(
                "DELETE FROM queue WHERE message_id = ?1 AND dead = 1",
                [&id],
            )
            .map_err(internal)?;
            tx.execute(
                "INSERT INTO queue (message_id, group_id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (message_id) DO NOTHING",
                params![id, group, body],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(())
        })
        .await?;
        self.changed.notify_waiters();
        Ok(())
    }

    /// Run `workers` consumers until `stop` turns true. Each delivery is handled once per claim;
    /// failures are retried with backoff and dead-lettered after `max_attempts`.
    pub async fn run_workers<H, F>(
        &self,
        workers: usize,
        handler: H,
        mut stop: watch::Receiver<bool>,
    ) where
        H: Fn(Delivery) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = (Delivery, HandlerResult)> + Send + 'static,
    {
        let mut set = JoinSet::new();
        for _ in 0..workers.max(1) {
            let q = self.clone();
            let h = handler.clone();
            let mut stop = stop.clone();
            set.spawn(async move {
                loop {
                    if *stop.borrow() {
                        return;
                    }
                    let delivery = match q.claim().await {
                        Ok(Some(d)) => d,
                        Ok(None) => {
                            tokio::select! {
                                _ = q.changed.notified() => {}
                                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
                                _ = stop.changed() => {}
                            }
                            continue;
                        }
                        Err(e) => {
                            error!(error = %e, "queue claim failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let (d, result) = h(delivery).await;
                    let outcome = match result {
                        HandlerResult::Done => q.ack(&d.message_id).await.map(|_| ()),
                        HandlerResult::Retry(why) => q.nack(&d, &why, false).await.map(|dead| {
                            if dead {
                                error!(queue = %q.path.display(), message_id = %d.message_id, attempts = d.attempt, error = %why, "page message set aside after its last retry");
                            } else {
                                warn!(message_id = %d.message_id, attempt = d.attempt, error = %why, "message will be retried");
                            }
                        }),
                        HandlerResult::RetryAfter(why, after) => {
                            q.nack_after(&d, &why, after).await.map(|dead| {
                                if dead {
                                    error!(message_id = %d.message_id, attempts = d.attempt, error = %why, "message dead-lettered");
                                } else {
                                    warn!(message_id = %d.message_id, attempt = d.attempt, error = %why, after_ms = millis(after), "message will be retried");
                                }
                            })
                        }
                        HandlerResult::Poison(why) => q.nack(&d, &why, true).await.map(|_| {
                            error!(queue = %q.path.display(), message_id = %d.message_id, error = %why, "page message set aside: it cannot be applied");
                        }),
                    };
                    if let Err(e) = outcome {
                        error!(message_id = %d.message_id, error = %e, "queue acknowledgement failed");
                    }
                }
            });
        }
        let _ = stop.wait_for(|s| *s).await;
        while set.join_next().await.is_some() {}
    }
}

#[async_trait]
impl WorkQueue for LocalQueue {
    async fn enqueue(&self, messages: Vec<PageMessage>) -> Result<(), QueueError> {
        for msg in messages {
            // Back-pressure: wait for reconcile to catch up.
            loop {
                let depth = self
                    .depth()
                    .await
                    .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
                if depth < self.config.max_depth as u64 {
                    break;
                }
                tokio::select! {
                    _ = self.changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            let body =
                serde_json::to_string(&msg).map_err(|e| QueueError::Rejected(e.to_string()))?;
            self.enqueue_raw(&msg.message_id(), &body)
                .await
                .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        }
        Ok(())
    }
}
