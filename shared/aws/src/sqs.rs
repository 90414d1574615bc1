//! SQS adapters: the page queue between fetch and reconcile ([`SqsPageQueue`]), the fetch
//! request queue the scheduler feeds ([`SqsFetchRequests`]), the FIFO action queue
//! ([`SqsActionQueue`]) and the outbound webhook wake-up queue ([`SqsDeliveryWake`]).
//!
//! * Page messages stay under the queue's size limit: the queue reports its limit through
//!   `WorkQueue::max_message_bytes`, so fetch splits a large directory page into consecutive
//!   page numbers before enqueueing (docs/data-model.md explains why there and not here);
//!   a message still too large is rejected, never truncated.
//! * Sends are batched: at most 10 entries and 256 KiB per `SendMessageBatch`; entries that fail
//!   for a transient reason are sent again (bounded), the rest is an error.
//! * Every page message carries its stable id (`PageMessage::message_id`, tenant#stream#cycle#page)
//!   as the `page_id` attribute: a redelivered or re-enqueued page has the same id and the same
//!   version, so applying it twice changes nothing.
//! * Action messages go to a FIFO queue: message group = tenant + target user
//!   (`ActionMessage::group_id`), so one user's actions are delivered in order, one at a time,
//!   while other users' proceed; deduplication id = tenant + action (`ActionMessage::dedup_id`),
//!   so the same action sent twice within SQS's five-minute window is one message.
//! * HR webhook deliveries go to a FIFO queue too ([`SqsDeliveryQueue`]): message group = the
//!   endpoint (account + source), so one endpoint's deliveries are processed one at a time, in
//!   the order they were accepted (a hire before the termination that follows it), while other
//!   endpoints proceed. The deduplication id is the delivery and the millisecond of the send:
//!   every send is a message, because a replay must be processed even inside SQS's five-minute
//!   deduplication window; a copy is harmless (the processor does nothing twice).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use entra_sync_core::actions::ports::{ActionMessage, ActionQueue};
use entra_sync_core::error::QueueError;
use entra_sync_core::keys::stable_hash;
use entra_sync_core::outbound::ports::DeliveryWake;
use entra_sync_core::page::PageMessage;
use entra_sync_core::ports::{FetchRequest, FetchRequests, WorkQueue};
use entra_sync_core::webhooks::ports::{DeliveryMessage, DeliveryQueue};

use crate::error::{AwsCallError, Class};

const SERVICE: &str = "sqs";
/// SQS's default (and our queues') maximum message size.
pub const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Room kept for the message attributes, which count toward the size limit.
const ATTRIBUTE_ROOM: usize = 1024;
/// Entries per SendMessageBatch.
const BATCH_ENTRIES: usize = 10;
/// Payload per SendMessageBatch (the classic limit; newer queues allow more).
const BATCH_BYTES: usize = 256 * 1024;
/// SQS delays a message at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(900);
const MAX_ATTEMPTS: u32 = 5;
/// The attribute that carries a page's stable id.
pub const PAGE_ID_ATTRIBUTE: &str = "page_id";

/// One message to send.
struct Outgoing {
    body: String,
    delay: Duration,
    page_id: Option<String>,
    /// FIFO queues: the message group and deduplication ids.
    fifo: Option<(String, String)>,
}

async fn send_all(client: &Client, url: &str, messages: Vec<Outgoing>) -> Result<(), QueueError> {
    // Group into batches by count and payload, keeping order. A FIFO message group appears at
    // most once per batch: an entry that fails and is sent again can then never land behind a
    // later message of its group (batches go one after the other, each retried to the end).
    let mut batches: Vec<Vec<Outgoing>> = Vec::new();
    let mut size = 0usize;
    for m in messages {
        let len = m.body.len() + ATTRIBUTE_ROOM;
        let start_new = match batches.last() {
            None => true,
            Some(b) => {
                b.len() == BATCH_ENTRIES
                    || size + len > BATCH_BYTES
                    || m.fifo.as_ref().is_some_and(|(group, _)| {
                        b.iter()
                            .any(|o| o.fifo.as_ref().is_some_and(|(g, _)| g == group))
                    })
            }
        };
        if start_new {
            batches.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(b) = batches.last_mut() {
            b.push(m);
        }
    }
    for batch in batches {
        send_batch(client, url, batch).await?;
    }
    Ok(())
}

async fn send_batch(client: &Client, url: &str, batch: Vec<Outgoing>) -> Result<(), QueueError> {
    let mut pending: Vec<(String, Outgoing)> = batch
        .into_iter()
        .enumerate()
        .map(|(i, m)| (format!("m{i}"), m))
        .collect();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50u64 << attempt)).await;
        }
        let mut entries = Vec::with_capacity(pending.len());
        for (id, m) in &pending {
            let delay = i32::try_from(m.delay.min(MAX_DELAY).as_secs()).unwrap_or(0);
            let mut e = SendMessageBatchRequestEntry::builder()
                .id(id)
                .message_body(&m.body);
            // FIFO queues refuse a per-message delay, so none is sent when there is none.
            if delay > 0 {
                e = e.delay_seconds(delay);
            }
            if let Some((group, dedup)) = &m.fifo {
                e = e.message_group_id(group).message_deduplication_id(dedup);
            }
            if let Some(pid) = &m.page_id {
                let attr = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(pid)
                    .build()
                    .map_err(|e| QueueError::Rejected(e.to_string()))?;
                e = e.message_attributes(PAGE_ID_ATTRIBUTE, attr);
            }
            entries.push(e.build().map_err(|e| QueueError::Rejected(e.to_string()))?);
        }
        let out = client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "SendMessageBatch", e, |e| {
                    if e.is_request_throttled() || e.is_kms_throttled() {
                        Class::Retryable
                    } else {
                        Class::Permanent
                    }
                })
                .into_queue()
            })?;
        if out.failed.is_empty() {
            return Ok(());
        }
        if let Some(f) = out.failed.iter().find(|f| f.sender_fault) {
            return Err(QueueError::Rejected(format!(
                "SQS refused a message ({})",
                f.code
            )));
        }
        let failed: std::collections::HashSet<&str> =
            out.failed.iter().map(|f| f.id.as_str()).collect();
        pending.retain(|(id, _)| failed.contains(id.as_str()));
    }
    Err(QueueError::Unavailable(
        format!("{} message(s) still failing after retries", pending.len()).into(),
    ))
}

/// The page queue (fetch -> reconcile).
#[derive(Clone, Debug)]
pub struct SqsPageQueue {
    client: Client,
    queue_url: String,
    max_message_bytes: usize,
}

impl SqsPageQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            max_message_bytes: SQS_MAX_MESSAGE_BYTES - ATTRIBUTE_ROOM,
        }
    }

    /// A lower body limit (tests use it to force splitting with small pages).
    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max.min(SQS_MAX_MESSAGE_BYTES - ATTRIBUTE_ROOM);
        self
    }
}

#[async_trait]
impl WorkQueue for SqsPageQueue {
    async fn enqueue(&self, messages: Vec<PageMessage>) -> Result<(), QueueError> {
        let mut out = Vec::with_capacity(messages.len());
        for m in &messages {
            let body = serde_json::to_string(m).map_err(|e| QueueError::Rejected(e.to_string()))?;
            if body.len() > self.max_message_bytes {
                return Err(QueueError::Rejected(format!(
                    "page {} is {} bytes, over the {} byte limit",
                    m.message_id(),
                    body.len(),
                    self.max_message_bytes
                )));
            }
            out.push(Outgoing {
                body,
                delay: Duration::ZERO,
                page_id: Some(m.message_id()),
                fifo: None,
            });
        }
        send_all(&self.client, &self.queue_url, out).await
    }

    fn max_message_bytes(&self) -> Option<usize> {
        Some(self.max_message_bytes)
    }
}

/// The fetch request queue (scheduler -> fetch, and fetch -> itself to continue a round).
#[derive(Clone, Debug)]
pub struct SqsFetchRequests {
    client: Client,
    queue_url: String,
}

impl SqsFetchRequests {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl FetchRequests for SqsFetchRequests {
    async fn request_fetches(
        &self,
        requests: Vec<(FetchRequest, Duration)>,
    ) -> Result<(), QueueError> {
        let mut out = Vec::with_capacity(requests.len());
        for (r, delay) in requests {
            out.push(Outgoing {
                body: serde_json::to_string(&r).map_err(|e| QueueError::Rejected(e.to_string()))?,
                delay,
                page_id: None,
                fifo: None,
            });
        }
        send_all(&self.client, &self.queue_url, out).await
    }
}

/// The outbound webhook delivery function's wake-up queue (a standard queue): the publisher
/// sends one message per stream batch that fanned out deliveries. The message only says how
/// many; the deliveries themselves are in the table.
#[derive(Clone, Debug)]
pub struct SqsDeliveryWake {
    client: Client,
    queue_url: String,
}

impl SqsDeliveryWake {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl DeliveryWake for SqsDeliveryWake {
    async fn wake(&self, created: usize) -> Result<(), QueueError> {
        let body = serde_json::json!({ "deliveries": created }).to_string();
        send_all(
            &self.client,
            &self.queue_url,
            vec![Outgoing {
                body,
                delay: Duration::ZERO,
                page_id: None,
                fifo: None,
            }],
        )
        .await
    }
}

/// The action queue (submit, approvals, retries and workflows -> the actions function): an SQS
/// FIFO queue (its name ends in `.fifo`).
#[derive(Clone, Debug)]
pub struct SqsActionQueue {
    client: Client,
    queue_url: String,
}

impl SqsActionQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl ActionQueue for SqsActionQueue {
    async fn enqueue_actions(&self, messages: Vec<ActionMessage>) -> Result<(), QueueError> {
        let mut out = Vec::with_capacity(messages.len());
        for m in &messages {
            out.push(Outgoing {
                body: serde_json::to_string(m).map_err(|e| QueueError::Rejected(e.to_string()))?,
                delay: Duration::ZERO,
                page_id: None,
                fifo: Some((m.group_id(), m.dedup_id())),
            });
        }
        send_all(&self.client, &self.queue_url, out).await
    }
}

/// The HR webhook delivery queue (the webhook route and replays -> the processor): an SQS FIFO
/// queue (its name ends in `.fifo`).
#[derive(Clone, Debug)]
pub struct SqsDeliveryQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeliveryQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// SQS's limit for message group and deduplication ids, and the characters it allows
/// (alphanumerics and ASCII punctuation).
const FIFO_ID_MAX: usize = 128;

fn fifo_safe(id: &str) -> bool {
    !id.is_empty() && id.len() <= FIFO_ID_MAX && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The message group of a delivery: its endpoint (`account/source`), or a stable hash of it
/// when the account id does not fit SQS's rules.
pub fn delivery_group_id(m: &DeliveryMessage) -> String {
    let endpoint = m.endpoint().to_string();
    match fifo_safe(&endpoint) {
        true => endpoint,
        false => format!("endpoint-{:016x}", stable_hash(&endpoint)),
    }
}

/// The deduplication id of one send: the delivery (a stable hash of it) and the send's
/// millisecond.
pub fn delivery_dedup_id(m: &DeliveryMessage, sent_ms: i64) -> String {
    format!("{:016x}-{sent_ms}", stable_hash(&m.dedup_id()))
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn enqueue_delivery(&self, message: &DeliveryMessage) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(message).map_err(|e| QueueError::Rejected(e.to_string()))?;
        let sent_ms = chrono::Utc::now().timestamp_millis();
        send_all(
            &self.client,
            &self.queue_url,
            vec![Outgoing {
                body,
                delay: Duration::ZERO,
                page_id: None,
                fifo: Some((
                    delivery_group_id(message),
                    delivery_dedup_id(message, sent_ms),
                )),
            }],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use entra_sync_core::model::AccountId;
    use entra_sync_core::webhooks::Source;

    use super::*;

    fn msg(account: &str) -> DeliveryMessage {
        DeliveryMessage {
            account_id: AccountId(account.into()),
            source: Source::HiBob,
            delivery_id: "d1".into(),
        }
    }

    #[test]
    fn a_delivery_is_grouped_by_its_endpoint_within_sqs_rules() {
        assert_eq!(delivery_group_id(&msg("acct-1")), "acct-1/hibob");
        let odd = delivery_group_id(&msg("acct with spaces"));
        assert!(fifo_safe(&odd) && odd.starts_with("endpoint-"), "{odd}");
        assert_eq!(odd, delivery_group_id(&msg("acct with spaces")), "stable");
        let long = delivery_group_id(&msg(&"a".repeat(200)));
        assert!(fifo_safe(&long), "{long}");
    }

    #[test]
    fn every_send_of_a_delivery_has_its_own_deduplication_id() {
        let a = delivery_dedup_id(&msg("acct-1"), 1);
        assert!(fifo_safe(&a));
        assert_ne!(a, delivery_dedup_id(&msg("acct-1"), 2));
        assert_ne!(a, delivery_dedup_id(&msg("acct-2"), 1));
    }
}
