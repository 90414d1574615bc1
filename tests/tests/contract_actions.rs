//! The write half's contract (tests/src/contract_actions.rs) on every adapter: the in-memory
//! reference, SQLite (a fresh file per test) and DynamoDB on moto's server mode (a fresh table
//! per test); the action queue on the collecting memory queue, the durable local queue and an
//! SQS FIFO queue on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use entra_sync_aws::{DynamoStore, SqsActionQueue, sdk_config_for_endpoint};
use entra_sync_core::actions::memory::{CollectingActionQueue, MemoryActions, ScanningLookup};
use entra_sync_core::actions::ports::{ActionMessage, ActionQueue};
use entra_sync_core::memory::MemoryStore;
use entra_sync_local::action_queue::LocalActionQueue;
use entra_sync_local::queue::QueueConfig;
use entra_sync_local::sqlite::SqliteStore;
use entra_sync_tests::contract_actions::{self, ActionConsumer};
use entra_sync_tests::moto;

#[tokio::test]
async fn memory_actions_keep_the_action_store_contract() {
    contract_actions::actions(&MemoryActions::new()).await;
}

#[tokio::test]
async fn memory_actions_keep_the_workflow_store_contract() {
    contract_actions::workflows(&MemoryActions::new()).await;
}

#[tokio::test]
async fn scanning_lookup_keeps_the_lookup_contract() {
    let mirror = Arc::new(MemoryStore::new());
    let lookup = ScanningLookup {
        mirror: mirror.clone(),
    };
    contract_actions::lookups(mirror.as_ref(), &lookup).await;
}

struct Drained<'a>(&'a CollectingActionQueue);

#[async_trait]
impl ActionConsumer for Drained<'_> {
    async fn receive_all(&self) -> Vec<ActionMessage> {
        self.0.drain()
    }
}

#[tokio::test]
async fn collecting_action_queue_keeps_the_action_queue_contract() {
    let q = CollectingActionQueue::new();
    contract_actions::action_queue(&q, &Drained(&q)).await;
}

fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn sqlite_store_keeps_the_action_store_contract() {
    let (_d, s) = sqlite();
    contract_actions::actions(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_workflow_store_contract() {
    let (_d, s) = sqlite();
    contract_actions::workflows(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_lookup_contract() {
    let (_d, s) = sqlite();
    contract_actions::lookups(&s, &s).await;
}

/// Claims and acknowledges every deliverable message, one at a time, as a worker does.
struct Claimer<'a>(&'a LocalActionQueue);

#[async_trait]
impl ActionConsumer for Claimer<'_> {
    async fn receive_all(&self) -> Vec<ActionMessage> {
        let mut out = Vec::new();
        while let Some(d) = self.0.queue().claim().await.unwrap() {
            self.0.queue().ack(&d.message_id).await.unwrap();
            out.push(serde_json::from_str(&d.body).unwrap());
        }
        out
    }
}

#[tokio::test]
async fn local_action_queue_keeps_the_action_queue_contract() {
    let dir = tempfile::tempdir().unwrap();
    let q =
        LocalActionQueue::open(&dir.path().join("actions.sqlite"), QueueConfig::default()).unwrap();
    contract_actions::action_queue(&q, &Claimer(&q)).await;
}

async fn dynamo() -> DynamoStore {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("actions"),
    );
    store.create_table().await.expect("create table on moto");
    store
}

#[tokio::test]
async fn dynamodb_store_keeps_the_action_store_contract() {
    contract_actions::actions(&dynamo().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_workflow_store_contract() {
    contract_actions::workflows(&dynamo().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_lookup_contract() {
    let s = dynamo().await;
    contract_actions::lookups(&s, &s).await;
}

/// Receives what is visible and deletes it, as the event source mapping does after a batch;
/// a FIFO queue hands out one group's messages in order.
struct FifoConsumer {
    client: aws_sdk_sqs::Client,
    url: String,
}

#[async_trait]
impl ActionConsumer for FifoConsumer {
    async fn receive_all(&self) -> Vec<ActionMessage> {
        let mut out = Vec::new();
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return out;
            }
            for m in got {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            }
        }
    }
}

async fn fifo_queue() -> (aws_sdk_sqs::Client, String) {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let url = client
        .create_queue()
        .queue_name(format!("{}.fifo", moto::unique_name("actions")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create FIFO queue on moto")
        .queue_url
        .expect("queue url");
    (client, url)
}

#[tokio::test]
async fn sqs_fifo_action_queue_keeps_the_action_queue_contract() {
    let (client, url) = fifo_queue().await;
    let q = SqsActionQueue::new(client.clone(), &url);
    contract_actions::action_queue(&q, &FifoConsumer { client, url }).await;
}

#[tokio::test]
async fn sqs_action_messages_carry_their_group_and_deduplication_ids() {
    let (client, url) = fifo_queue().await;
    let q = SqsActionQueue::new(client.clone(), &url);
    let m = ActionMessage {
        tenant_id: entra_sync_core::model::TenantId::new("tenant-a"),
        action_id: "act-1".into(),
        user_id: "u1".into(),
    };
    // Sent twice: the queue's deduplication keeps one.
    q.enqueue_actions(vec![m.clone()]).await.unwrap();
    q.enqueue_actions(vec![m.clone()]).await.unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(got.len(), 1, "one message for one action");
    let attrs = got[0].attributes().unwrap();
    assert_eq!(
        attrs.get(&MessageSystemAttributeName::MessageGroupId),
        Some(&m.group_id())
    );
    assert_eq!(
        attrs.get(&MessageSystemAttributeName::MessageDeduplicationId),
        Some(&m.dedup_id())
    );
}
