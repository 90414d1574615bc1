//! The queue contract (tests/src/contract_queue.rs) on every adapter: the in-memory queues,
//! the durable local queue, and SQS on moto's server mode (a fresh queue per test). Each test
//! brings the small consumer its transport needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use entra_sync_aws::{SqsFetchRequests, SqsPageQueue, sdk_config_for_endpoint};
use entra_sync_core::memory::{CollectingFetchRequests, CollectingQueue, LimitedQueue};
use entra_sync_core::ports::FetchRequest;
use entra_sync_local::queue::{LocalQueue, QueueConfig};
use entra_sync_tests::contract_queue::{self, Consumer, Received, RequestConsumer};
use entra_sync_tests::moto;

struct Collected<'a>(&'a CollectingQueue);

#[async_trait]
impl Consumer for Collected<'_> {
    async fn receive_all(&self) -> Vec<Received> {
        self.0
            .drain()
            .into_iter()
            .map(|m| Received {
                body: serde_json::to_string(&m).unwrap(),
                page_id: None,
            })
            .collect()
    }
}

#[tokio::test]
async fn collecting_queue_keeps_the_work_queue_contract() {
    let q = CollectingQueue::new();
    contract_queue::work_queue(&q, &Collected(&q)).await;
}

#[tokio::test]
async fn limited_memory_queue_keeps_the_work_queue_contract() {
    let q = LimitedQueue {
        max_bytes: 255 * 1024,
        inner: CollectingQueue::new(),
    };
    contract_queue::work_queue(&q, &Collected(&q.inner)).await;
}

/// Claims and acknowledges every visible message, as the local worker pool does.
struct Claimer<'a>(&'a LocalQueue);

#[async_trait]
impl Consumer for Claimer<'_> {
    async fn receive_all(&self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Some(d) = self.0.claim().await.unwrap() {
            self.0.ack(&d.message_id).await.unwrap();
            out.push(Received {
                body: d.body,
                page_id: Some(d.message_id),
            });
        }
        out
    }
}

#[tokio::test]
async fn local_queue_keeps_the_work_queue_contract() {
    let dir = tempfile::tempdir().unwrap();
    let q = LocalQueue::open(&dir.path().join("queue.sqlite"), QueueConfig::default()).unwrap();
    contract_queue::work_queue(&q, &Claimer(&q)).await;
}

struct DueRequests<'a>(&'a CollectingFetchRequests);

#[async_trait]
impl RequestConsumer for DueRequests<'_> {
    async fn receive_due(&self) -> Vec<FetchRequest> {
        self.0
            .take()
            .into_iter()
            .filter(|(_, delay)| delay.is_zero())
            .map(|(r, _)| r)
            .collect()
    }
}

#[tokio::test]
async fn collecting_fetch_requests_keep_the_fetch_request_contract() {
    let r = CollectingFetchRequests::new();
    contract_queue::fetch_requests(&r, &DueRequests(&r)).await;
}

async fn sqs() -> (aws_sdk_sqs::Client, String) {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let url = client
        .create_queue()
        .queue_name(moto::unique_name("contract"))
        .send()
        .await
        .expect("create queue on moto")
        .queue_url
        .expect("queue url");
    (client, url)
}

/// Receives (long enough to see every visible message) and deletes what it received, as
/// Lambda's event source mapping does after a successful batch.
struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsConsumer {
    async fn take(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return out;
            }
            for m in &got {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            out.extend(got);
        }
    }
}

#[async_trait]
impl Consumer for SqsConsumer {
    async fn receive_all(&self) -> Vec<Received> {
        self.take()
            .await
            .into_iter()
            .map(|m| Received {
                page_id: m
                    .message_attributes()
                    .and_then(|a| a.get(entra_sync_aws::sqs::PAGE_ID_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned),
                body: m.body.unwrap_or_default(),
            })
            .collect()
    }
}

#[async_trait]
impl RequestConsumer for SqsConsumer {
    async fn receive_due(&self) -> Vec<FetchRequest> {
        self.take()
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn sqs_page_queue_keeps_the_work_queue_contract() {
    let (client, url) = sqs().await;
    let q = SqsPageQueue::new(client.clone(), &url);
    contract_queue::work_queue(&q, &SqsConsumer { client, url }).await;
}

#[tokio::test]
async fn sqs_fetch_requests_keep_the_fetch_request_contract() {
    let (client, url) = sqs().await;
    let r = SqsFetchRequests::new(client.clone(), &url);
    let consumer = SqsConsumer { client, url };
    contract_queue::fetch_requests(&r, &consumer).await;
    // The delayed request is there, only not yet visible.
    let attrs = consumer
        .client
        .get_queue_attributes()
        .queue_url(&consumer.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attrs
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        })
        .cloned();
    assert_eq!(delayed.as_deref(), Some("1"));
}
