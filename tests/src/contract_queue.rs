//! The contract of the queue ports (`WorkQueue`, `FetchRequests`), as far as the port says
//! anything: what an enqueue does, what a consumer then receives, the size limit, batching of
//! more than ten messages. Every adapter runs the same functions: the in-memory queues, the
//! durable local queue (tests/tests/contract_queue.rs) and SQS on moto.
//!
//! The ports have no "receive" (consuming is the runtime's business: Lambda's event source
//! mapping, the local worker pool), so each adapter's test supplies a small [`Consumer`] that
//! takes what a consumer would get.

use std::time::Duration;

use async_trait::async_trait;
use entra_sync_core::error::QueueError;
use entra_sync_core::model::{DirectoryUser, TenantId};
use entra_sync_core::page::{ManagerChange, PageItems, PageMessage, RoundMode, UserDelta};
use entra_sync_core::ports::{FetchRequest, FetchRequests, WorkQueue};
use entra_sync_core::run::Trigger;

/// One delivery as a consumer sees it.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: String,
    /// The page id the transport carries beside the body, when it carries one (the SQS
    /// `page_id` attribute, the local queue's message id).
    pub page_id: Option<String>,
}

/// Test-only consumer side of one adapter: takes (and acknowledges) every message that is
/// deliverable now.
#[async_trait]
pub trait Consumer: Send + Sync {
    async fn receive_all(&self) -> Vec<Received>;
}

fn tenant() -> TenantId {
    TenantId::new("tenant-a")
}

/// A page of `users` users whose names are `name_len` long.
pub fn page(seq: u32, users: usize, name_len: usize) -> PageMessage {
    PageMessage {
        tenant_id: tenant(),
        run_id: "run-1".into(),
        cycle: 1,
        page_seq: seq,
        mode: RoundMode::Full,
        items: PageItems::Users(
            (0..users)
                .map(|i| UserDelta::Upsert {
                    user: DirectoryUser {
                        id: format!("u{seq}-{i}"),
                        display_name: Some("n".repeat(name_len)),
                        ..Default::default()
                    },
                    manager: ManagerChange::NotReported,
                })
                .collect(),
        ),
    }
}

fn parse(r: &Received) -> PageMessage {
    let m: PageMessage = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("a delivered body is not a page message: {e}"));
    if let Some(id) = &r.page_id {
        assert_eq!(
            id,
            &m.message_id(),
            "the carried page id is the page's stable id"
        );
    }
    m
}

fn sorted(mut v: Vec<PageMessage>) -> Vec<PageMessage> {
    v.sort_by_key(|m| m.page_seq);
    v
}

/// Every rule of `WorkQueue`, on a fresh, empty queue.
pub async fn work_queue(queue: &dyn WorkQueue, consumer: &dyn Consumer) {
    // Nothing enqueued, nothing received; an empty enqueue is fine.
    queue.enqueue(Vec::new()).await.unwrap();
    assert!(consumer.receive_all().await.is_empty());

    // More than one SQS batch (10): every page arrives once, intact, with its stable id.
    let pages: Vec<PageMessage> = (0..23).map(|i| page(i, 3, 20)).collect();
    queue.enqueue(pages.clone()).await.unwrap();
    let got: Vec<PageMessage> = consumer.receive_all().await.iter().map(parse).collect();
    assert_eq!(sorted(got), pages, "23 pages in, the same 23 out");

    // Re-enqueueing a page (a fetch that crashed before its checkpoint) is harmless: every copy
    // a consumer gets is the same page under the same id.
    queue.enqueue(vec![page(3, 3, 20)]).await.unwrap();
    queue.enqueue(vec![page(3, 3, 20)]).await.unwrap();
    let copies: Vec<PageMessage> = consumer.receive_all().await.iter().map(parse).collect();
    assert!(!copies.is_empty() && copies.len() <= 2);
    assert!(copies.iter().all(|m| *m == page(3, 3, 20)));

    // ~400 KiB of users: over SQS's 256 KiB.
    let big = page(100, 400, 1000);
    let big_len = serde_json::to_vec(&big).unwrap().len();
    assert!(big_len > 256 * 1024);
    match queue.max_message_bytes() {
        Some(max) => {
            assert!(max < big_len);
            // A message over the limit is rejected, never truncated, and the enqueue that
            // carries it sends nothing (its neighbours neither).
            let refused = queue.enqueue(vec![page(99, 1, 10), big.clone()]).await;
            assert!(
                matches!(refused, Err(QueueError::Rejected(_))),
                "over the limit: {refused:?}"
            );
            assert!(
                consumer.receive_all().await.is_empty(),
                "a rejected enqueue delivers nothing"
            );
            // Split the way fetch splits: every part fits, is delivered, and the parts
            // together are the page's entries in order.
            let parts = big.clone().split_to_fit(max);
            assert!(parts.len() >= 2);
            queue.enqueue(parts.clone()).await.unwrap();
            let got = consumer.receive_all().await;
            assert!(got.iter().all(|r| r.body.len() <= max), "a part over {max}");
            let got = sorted(got.iter().map(parse).collect());
            assert_eq!(got, parts);
            let mut entries = Vec::new();
            for p in got {
                if let PageItems::Users(u) = p.items {
                    entries.extend(u);
                }
            }
            assert_eq!(PageItems::Users(entries), big.items);
        }
        None => {
            // No limit: the page travels whole.
            queue.enqueue(vec![big.clone()]).await.unwrap();
            let got: Vec<PageMessage> = consumer.receive_all().await.iter().map(parse).collect();
            assert_eq!(got, vec![big]);
        }
    }
}

/// Test-only consumer side of a `FetchRequests` adapter: the requests deliverable now (their
/// delay has passed).
#[async_trait]
pub trait RequestConsumer: Send + Sync {
    async fn receive_due(&self) -> Vec<FetchRequest>;
}

/// Every rule of `FetchRequests`, on a fresh, empty queue.
pub async fn fetch_requests(requests: &dyn FetchRequests, consumer: &dyn RequestConsumer) {
    requests.request_fetches(Vec::new()).await.unwrap();
    assert!(consumer.receive_due().await.is_empty());
    let request = |i: usize| FetchRequest {
        tenant_id: TenantId::new(format!("tenant-{i:02}")),
        trigger: Trigger::Scheduled,
        force_full: i == 0,
        run_id: None,
    };
    // 12 due now (two SQS batches) and one delayed by ten minutes.
    let mut batch: Vec<(FetchRequest, Duration)> =
        (0..12).map(|i| (request(i), Duration::ZERO)).collect();
    batch.push((request(99), Duration::from_secs(600)));
    requests.request_fetches(batch).await.unwrap();
    let mut got = consumer.receive_due().await;
    got.sort_by(|a, b| a.tenant_id.as_str().cmp(b.tenant_id.as_str()));
    let expected: Vec<FetchRequest> = (0..12).map(request).collect();
    assert_eq!(
        got, expected,
        "every due request once; the delayed one not yet"
    );
}
