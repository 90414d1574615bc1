//! The store contract (tests/src/contract.rs, the suite the in-memory and SQLite stores pass)
//! against the DynamoDB store on moto's server mode, plus the SQS, Secrets Manager and
//! EventBridge adapters. A fresh table (queue, secret prefix, bus) per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use entra_sync_aws::{
    DynamoStore, EventBridgeSink, SecretsManagerVault, SqsFetchRequests, SqsPageQueue,
    sdk_config_for_endpoint,
};
use entra_sync_core::error::VaultError;
use entra_sync_core::events::{ChangeEvent, ChangeKind};
use entra_sync_core::model::{DirectoryUser, TenantId};
use entra_sync_core::page::{ManagerChange, PageItems, PageMessage, RoundMode, UserDelta};
use entra_sync_core::ports::{
    EventSink, FetchRequest, FetchRequests, Secret, SecretVault, WorkQueue,
};
use entra_sync_core::run::Trigger;
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

fn page(seq: u32, users: usize, name_len: usize) -> PageMessage {
    PageMessage {
        tenant_id: TenantId::new("tenant-a"),
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

#[tokio::test]
async fn sqs_queue_sends_pages_in_batches_with_their_stable_ids() {
    let (client, url) = sqs().await;
    let queue = SqsPageQueue::new(client.clone(), &url);
    // 23 pages: three batches of at most ten.
    let pages: Vec<PageMessage> = (0..23).map(|i| page(i, 3, 10)).collect();
    queue.enqueue(pages.clone()).await.unwrap();
    let got = receive_all(&client, &url).await;
    assert_eq!(got.len(), 23);
    for m in &got {
        let body: PageMessage = serde_json::from_str(m.body().unwrap()).unwrap();
        let id = m
            .message_attributes()
            .and_then(|a| a.get("page_id"))
            .and_then(|v| v.string_value())
            .unwrap();
        assert_eq!(id, body.message_id());
        assert!(pages.contains(&body));
    }
}

#[tokio::test]
async fn sqs_queue_refuses_a_message_over_its_limit_and_fetch_can_split_to_fit() {
    let (client, url) = sqs().await;
    let queue = SqsPageQueue::new(client.clone(), &url);
    let max = queue.max_message_bytes().unwrap();
    assert!(max < 256 * 1024);
    // ~400 KiB of users: too large as one message...
    let big = page(0, 400, 1000);
    assert!(queue.enqueue(vec![big.clone()]).await.is_err());
    // ...and fine once split the way fetch splits it.
    let parts = big.clone().split_to_fit(max);
    assert!(parts.len() >= 2);
    queue.enqueue(parts.clone()).await.unwrap();
    let got = receive_all(&client, &url).await;
    assert_eq!(got.len(), parts.len());
    assert!(got.iter().all(|m| m.body().unwrap().len() <= max));
}

#[tokio::test]
async fn sqs_fetch_requests_are_delivered_with_their_delay() {
    let (client, url) = sqs().await;
    let requests = SqsFetchRequests::new(client.clone(), &url);
    let now = FetchRequest {
        tenant_id: TenantId::new("tenant-a"),
        trigger: Trigger::Scheduled,
        force_full: false,
    };
    let later = FetchRequest {
        tenant_id: TenantId::new("tenant-b"),
        ..now.clone()
    };
    requests
        .request_fetches(vec![
            (now.clone(), Duration::ZERO),
            (later, Duration::from_secs(600)),
        ])
        .await
        .unwrap();
    let got = receive_all(&client, &url).await;
    assert_eq!(got.len(), 1, "the delayed request is not visible yet");
    let body: FetchRequest = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(body, now);
}

#[tokio::test]
async fn secrets_manager_vault_round_trips_caches_and_never_prints_a_value() {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let prefix = format!("{}/", moto::unique_name("vault"));
    let vault = SecretsManagerVault::new(client.clone(), &prefix, Duration::from_secs(300));
    assert!(matches!(
        vault.get_secret("app/client-secret").await,
        Err(VaultError::NotFound(_))
    ));
    vault
        .put_secret("app/client-secret", &Secret::new("s3cr3t-value"))
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_secret("app/client-secret")
            .await
            .unwrap()
            .expose(),
        "s3cr3t-value"
    );
    // A second put updates the existing secret.
    vault
        .put_secret("app/client-secret", &Secret::new("rotated"))
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_secret("app/client-secret")
            .await
            .unwrap()
            .expose(),
        "rotated"
    );
    // Changed behind the vault's back: the cached value is served until the TTL passes.
    client
        .put_secret_value()
        .secret_id(format!("{prefix}app/client-secret"))
        .secret_string("changed-elsewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_secret("app/client-secret")
            .await
            .unwrap()
            .expose(),
        "rotated"
    );
    let fresh = SecretsManagerVault::new(client.clone(), &prefix, Duration::ZERO);
    assert_eq!(
        fresh
            .get_secret("app/client-secret")
            .await
            .unwrap()
            .expose(),
        "changed-elsewhere"
    );
    let shown = format!(
        "{vault:?} {:?}",
        vault.get_secret("app/client-secret").await.unwrap()
    );
    assert!(
        !shown.contains("rotated") && !shown.contains("changed"),
        "{shown}"
    );
    vault.delete_secret("app/client-secret").await.unwrap();
    assert!(matches!(
        vault.get_secret("app/client-secret").await,
        Err(VaultError::NotFound(_))
    ));
    // Deleting what is not there is fine.
    vault.delete_secret("app/client-secret").await.unwrap();
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
        .map(|i| ChangeEvent {
            tenant_id: TenantId::new("tenant-a"),
            object_id: format!("u{i}"),
            kind: ChangeKind::UserCreated,
        })
        .collect();
    sink.publish(&batch).await.unwrap();
    let got = receive_all(&sqs, &url).await;
    assert_eq!(got.len(), 12);
    let envelope: serde_json::Value = serde_json::from_str(got[0].body().unwrap()).unwrap();
    assert_eq!(envelope["source"], "entra-sync");
    assert_eq!(envelope["detail-type"], "UserCreated");
    assert_eq!(envelope["detail"]["tenant_id"], "tenant-a");
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
