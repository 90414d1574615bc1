//! The write half's contract (tests/src/contract_actions.rs) on every adapter: the in-memory
//! reference, SQLite (a fresh file per test) and DynamoDB on moto's server mode (a fresh table
//! per test); the action queue on the collecting memory queue, the durable local queue and an
//! SQS FIFO queue on moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Duration, Utc};
use entra_sync_aws::{DynamoStore, SqsActionQueue, sdk_config_for_endpoint};
use entra_sync_core::actions::memory::{CollectingActionQueue, MemoryActions, ScanningLookup};
use entra_sync_core::actions::ports::{
    ActionFilter, ActionMessage, ActionQueue, ActionStore, TargetLookup, WorkflowStore,
    action_listing_key,
};
use entra_sync_core::actions::{ActionStatus, WorkflowStatus};
use entra_sync_core::memory::MemoryStore;
use entra_sync_core::model::{DirectoryUser, Presence, StoredUser, TenantId, Version};
use entra_sync_core::ports::MirrorStore;
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
    dynamo_raw().await.0
}

/// The store, and the client and table underneath it (the crash tests plant and remove items
/// the way a writer that died halfway would have left them).
async fn dynamo_raw() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::unique_name("actions");
    let store = DynamoStore::new(client.clone(), table.clone());
    store.create_table().await.expect("create table on moto");
    (store, client, table)
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
        tenant_id: TenantId::new("tenant-a"),
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

fn av(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An index item as the adapter writes them (docs/data-model.md, "Actions and workflows").
async fn plant_entry(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
    ref_id: &str,
    rev: i64,
    created_ms: i64,
) {
    client
        .put_item()
        .table_name(table)
        .item("pk", av(pk))
        .item("sk", av(sk))
        .item("tenant", av("tenant-a"))
        .item("ref_id", av(ref_id))
        .item("rev", num(rev))
        .item("created_ms", num(created_ms))
        .send()
        .await
        .unwrap();
}

/// The sort keys of a table partition.
async fn partition(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> Vec<String> {
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", av(pk))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| i["sk"].as_s().unwrap().clone())
        .collect()
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_115_600, 0).unwrap()
}

#[tokio::test]
async fn dynamodb_listings_ignore_index_items_a_crashed_writer_left() {
    let (store, client, table) = dynamo_raw().await;
    let a = TenantId::new("tenant-a");
    let queued = contract_actions::action(&a, "a1", "u1", t0(), ActionStatus::Queued);
    store.create_action(&queued).await.unwrap();
    let mut running = queued.clone();
    running.status = ActionStatus::Running { since: t0() };
    running.rev = 1;
    store.update_action(&running, 0).await.unwrap();
    let key = action_listing_key(&queued);
    assert!(
        partition(&client, &table, "T#tenant-a#AS#queued")
            .await
            .is_empty(),
        "the update removed the entry of the status it left"
    );
    assert_eq!(
        partition(&client, &table, "T#tenant-a#AS#running").await,
        std::slice::from_ref(&key)
    );
    let now_ms = Utc::now().timestamp_millis();
    // An update to "cancelled" that died after its entry, before the record: the entry is
    // newer than the record.
    plant_entry(
        &client,
        &table,
        "T#tenant-a#AS#cancelled",
        &key,
        "a1",
        2,
        now_ms,
    )
    .await;
    // An update that died after the record, before deleting the old status's entry.
    plant_entry(
        &client,
        &table,
        "T#tenant-a#AS#queued",
        &key,
        "a1",
        0,
        now_ms,
    )
    .await;
    // A create that died after its entries: the action does not exist. Its listing key is the
    // newest of all, so it comes first in every listing.
    let ghost = contract_actions::action(
        &a,
        "a9",
        "u1",
        t0() + Duration::hours(1),
        ActionStatus::Queued,
    );
    let ghost_key = action_listing_key(&ghost);
    plant_entry(
        &client,
        &table,
        "T#tenant-a#AU#u1",
        &ghost_key,
        "a9",
        0,
        now_ms,
    )
    .await;
    plant_entry(
        &client,
        &table,
        "T#tenant-a#AS#running",
        &ghost_key,
        "a9",
        0,
        now_ms,
    )
    .await;
    // A second create of a1 (requested later) that lost to the first and died before removing
    // its entries: they name a1, but under another listing key.
    let late = contract_actions::action(
        &a,
        "a1",
        "u1",
        t0() + Duration::minutes(30),
        ActionStatus::Queued,
    );
    let late_key = action_listing_key(&late);
    plant_entry(
        &client,
        &table,
        "T#tenant-a#AU#u1",
        &late_key,
        "a1",
        0,
        now_ms,
    )
    .await;
    plant_entry(
        &client,
        &table,
        "T#tenant-a#AS#running",
        &late_key,
        "a1",
        1,
        now_ms,
    )
    .await;

    let list = |status: Option<&str>, user: Option<&str>, limit: usize| {
        let filter = ActionFilter {
            user_id: user.map(str::to_owned),
            status: status.map(str::to_owned),
        };
        let store = &store;
        let a = a.clone();
        async move { store.list_actions(&a, &filter, None, limit).await.unwrap() }
    };
    for (status, user) in [
        (Some("cancelled"), None),
        (Some("queued"), None),
        (Some("queued"), Some("u1")),
    ] {
        let page = list(status, user, 10).await;
        assert!(
            page.items.is_empty(),
            "{status:?}/{user:?}: {:?}",
            page.items
        );
        assert!(page.next.is_none());
    }
    for (status, user) in [(Some("running"), None), (None, Some("u1")), (None, None)] {
        // Limit 1: the stale entry ahead of the real one neither fills the page nor makes a
        // cursor.
        let page = list(status, user, 1).await;
        assert_eq!(page.items, vec![running.clone()], "{status:?}/{user:?}");
        assert!(page.next.is_none(), "{status:?}/{user:?}: nothing follows");
    }
    assert_eq!(store.get_action(&a, "a9").await.unwrap(), None);
}

#[tokio::test]
async fn dynamodb_due_list_skips_and_removes_entries_that_no_longer_describe_a_workflow() {
    let (store, client, table) = dynamo_raw().await;
    let a = TenantId::new("tenant-a");
    let at = t0() + Duration::hours(1);
    let w1 = contract_actions::workflow(&a, "w1", t0(), WorkflowStatus::Scheduled { at });
    store.create_workflow(&w1).await.unwrap();
    let w2 = contract_actions::workflow(&a, "w2", t0(), WorkflowStatus::Scheduled { at });
    store.create_workflow(&w2).await.unwrap();
    let mut started = w1.clone();
    started.status = WorkflowStatus::Running;
    started.rev = 1;
    store.update_workflow(&started, 0).await.unwrap();
    let due_text = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    assert_eq!(
        partition(&client, &table, "DUE").await,
        [format!("{due_text}#tenant-a#w2")],
        "starting w1 removed its entry"
    );
    // As if that cleanup had died: w1's old entry is back. And two creates that died before
    // their workflow: one two hours ago, one just now (maybe still in flight).
    let now_ms = Utc::now().timestamp_millis();
    plant_entry(
        &client,
        &table,
        "DUE",
        &format!("{due_text}#tenant-a#w1"),
        "w1",
        0,
        now_ms,
    )
    .await;
    let old = now_ms - 2 * 3600 * 1000;
    plant_entry(
        &client,
        &table,
        "DUE",
        &format!("{due_text}#tenant-a#lost"),
        "lost",
        0,
        old,
    )
    .await;
    plant_entry(
        &client,
        &table,
        "DUE",
        &format!("{due_text}#tenant-a#young"),
        "young",
        0,
        now_ms,
    )
    .await;

    assert_eq!(
        store.due_workflows(at, 1).await.unwrap(),
        vec![(a.clone(), "w2".to_owned())],
        "only the workflow that is scheduled, even with a limit of one behind stale entries"
    );
    assert_eq!(
        store.due_workflows(at, 10).await.unwrap(),
        vec![(a.clone(), "w2".to_owned())]
    );
    let mut left = partition(&client, &table, "DUE").await;
    left.sort();
    assert_eq!(
        left,
        [
            format!("{due_text}#tenant-a#w2"),
            format!("{due_text}#tenant-a#young"),
        ],
        "the stale entry and the old orphan were removed; the young one may still be a create in flight"
    );
}

#[tokio::test]
async fn dynamodb_handle_items_follow_renames_and_a_replayed_page_restores_a_lost_one() {
    let (store, client, table) = dynamo_raw().await;
    let a = TenantId::new("tenant-a");
    let user = |upn: &str, mail: Option<&str>, v: Version| StoredUser {
        user: DirectoryUser {
            id: "u1".into(),
            user_principal_name: Some(upn.into()),
            mail: mail.map(str::to_owned),
            ..Default::default()
        },
        presence: Presence::Present,
        version: v,
    };
    let v1 = user(
        "Ann@Contoso.com",
        Some("ann@contoso.com"),
        Version::new(1, 1),
    );
    store
        .put_users(&a, std::slice::from_ref(&v1))
        .await
        .unwrap();
    let handle_pk = "T#tenant-a#UH#ann@contoso.com";
    assert_eq!(
        partition(&client, &table, handle_pk).await,
        ["U#u1"],
        "one item for a name and mail that are equal"
    );
    // The process died between the user put and its handle item: the lookup cannot find the
    // user (it reads the index, never the tenant's users)...
    client
        .delete_item()
        .table_name(&table)
        .key("pk", av(handle_pk))
        .key("sk", av("U#u1"))
        .send()
        .await
        .unwrap();
    assert!(
        store
            .users_by_handle(&a, "ann@contoso.com")
            .await
            .unwrap()
            .is_empty()
    );
    // ... until the page is redelivered: the replay does not land, and restores the item.
    assert_eq!(
        store
            .put_users(&a, std::slice::from_ref(&v1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.users_by_handle(&a, "ANN@contoso.com").await.unwrap(),
        vec![v1]
    );
    // A rename removes the old handle's item and adds the new ones.
    let v2 = user(
        "ann.lee@contoso.com",
        Some("al@contoso.com"),
        Version::new(2, 1),
    );
    assert_eq!(
        store
            .put_users(&a, std::slice::from_ref(&v2))
            .await
            .unwrap(),
        1
    );
    assert!(partition(&client, &table, handle_pk).await.is_empty());
    assert_eq!(
        partition(&client, &table, "T#tenant-a#UH#ann.lee@contoso.com").await,
        ["U#u1"]
    );
    assert_eq!(
        partition(&client, &table, "T#tenant-a#UH#al@contoso.com").await,
        ["U#u1"]
    );
    // A handle item that points at a user without that handle is never believed.
    client
        .put_item()
        .table_name(&table)
        .item("pk", av(handle_pk))
        .item("sk", av("U#u1"))
        .item("tenant", av("tenant-a"))
        .item("user_id", av("u1"))
        .item("cycle", num(1))
        .item("page", num(1))
        .send()
        .await
        .unwrap();
    assert!(
        store
            .users_by_handle(&a, "ann@contoso.com")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.users_by_handle(&a, "al@contoso.com").await.unwrap(),
        vec![v2]
    );
}
