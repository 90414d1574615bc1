//! The store contract (tests/src/contract.rs, the suite the in-memory and SQLite stores pass)
//! against the DynamoDB store on moto's server mode, plus the EventBridge sink. A fresh table
//! (queue, bus) per test. The SQS and Secrets Manager adapters pass the queue and vault contracts
//! (tests/tests/contract_queue.rs, contract_vault.rs), the idempotency records theirs
//! (contract_idempotency.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use entra_sync_aws::{DynamoStore, EventBridgeSink, sdk_config_for_endpoint};
use entra_sync_core::events::{ChangeEvent, ChangeKind};
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::EventSink;
use entra_sync_tests::{contract, moto};

async fn store() -> DynamoStore {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("store"),
    );
    store.create_table().await.expect("create table on moto");
    store
}

#[tokio::test]
async fn dynamodb_store_keeps_the_connection_contract() {
    contract::connections(&store().await).await;
}

/// A connection stored by an older version (no retry schedule in its body) is replaced by value:
/// the conditional write compares what it decodes, then holds on to the raw body it read.
#[tokio::test]
async fn dynamodb_replaces_a_connection_stored_by_an_older_version() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use entra_sync_core::model::{Connection, ConnectionStatus};
    use entra_sync_core::ports::ConnectionStore;

    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::unique_name("store");
    let store = DynamoStore::new(client.clone(), table.clone());
    store.create_table().await.unwrap();
    let tenant = "tenant-old";
    let old_body = serde_json::json!({
        "tenant_id": tenant, "account_id": "acct-1", "label": "Old", "tenant_name": null,
        "verified_domains": [], "connected_at": "2026-01-01T00:00:00Z",
        "status": {"status": "needs_reauthorization", "reason": "AADSTS7000229"}
    })
    .to_string();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    client
        .put_item()
        .table_name(&table)
        .item("pk", s(&format!("T#{tenant}")))
        .item("sk", s("CONNECTION"))
        .item("tenant", s(tenant))
        .item("body", s(&old_body))
        .item("gsi1pk", s("CONNECTIONS"))
        .item("gsi1sk", s(tenant))
        .send()
        .await
        .unwrap();
    let read = store
        .get_connection(&TenantId::new(tenant))
        .await
        .unwrap()
        .unwrap();
    let connected = Connection {
        status: ConnectionStatus::Connected,
        ..read.clone()
    };
    store
        .replace_connection(&connected, Some(&read))
        .await
        .unwrap();
    assert_eq!(
        store.get_connection(&TenantId::new(tenant)).await.unwrap(),
        Some(connected)
    );
    // The record read before is gone: a second writer holding it loses.
    assert!(store.replace_connection(&read, Some(&read)).await.is_err());
}

#[tokio::test]
async fn dynamodb_store_keeps_the_cursor_contract() {
    contract::cursors(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_lease_contract() {
    contract::leases(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_mirror_contract() {
    contract::mirror(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_run_contract() {
    contract::runs(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_pages_the_activity_log() {
    contract::run_pages(&store().await).await;
}

#[tokio::test]
async fn dynamodb_consent_states_are_taken_once() {
    let s = store().await;
    entra_sync_tests::contract_consent::take_once(&s).await;
    entra_sync_tests::contract_consent::concurrent_takes(&s).await;
}

async fn sqs() -> (aws_sdk_sqs::Client, String) {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let url = client
        .create_queue()
        .queue_name(moto::unique_name("q"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    (client, url)
}

async fn receive_all(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            break;
        }
        out.extend(got);
    }
    out
}

#[tokio::test]
async fn eventbridge_sink_delivers_events_to_a_rule_target() {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let (sqs, url) = sqs().await;
    let bus = moto::unique_name("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .unwrap();
    events
        .put_rule()
        .name("all")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["entra-sync"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("all")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let sink = EventBridgeSink::new(events, &bus);
    let batch: Vec<ChangeEvent> = (0..12)
        .map(|i| {
            ChangeEvent::new(
                &TenantId::new("tenant-a"),
                format!("u{i}"),
                1,
                ChangeKind::DirectoryUserCreated {},
            )
        })
        .collect();
    sink.publish(&batch).await.unwrap();
    let got = receive_all(&sqs, &url).await;
    assert_eq!(got.len(), 12);
    let envelope: serde_json::Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(envelope["source"], "entra-sync");
    assert_eq!(envelope["detail-type"], "directory.user.created");
    assert_eq!(envelope["detail"]["tenant_id"], "tenant-a");
    assert_eq!(envelope["detail"]["type"], "directory.user.created");
    assert_eq!(envelope["detail"]["version"], 1);
    // The detail is the envelope: its id is the change's stable id.
    let detail: ChangeEvent = serde_json::from_value(envelope["detail"].clone()).unwrap();
    assert!(
        batch
            .iter()
            .any(|e| e.id().to_string() == envelope["detail"]["id"] && *e == detail)
    );
}

#[tokio::test]
async fn dynamodb_store_keeps_the_settings_contract() {
    entra_sync_tests::contract_projection::settings(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_local_user_contract() {
    entra_sync_tests::contract_projection::local_users(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_many_local_users_in_one_put() {
    entra_sync_tests::contract_projection::local_users_in_bulk(&store().await).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_email_index_under_concurrent_writers() {
    entra_sync_tests::contract_projection::local_users_concurrent_writers(&store().await).await;
}
