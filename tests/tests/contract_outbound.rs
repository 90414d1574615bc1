//! The outbound webhook store contract against the in-memory store, the SQLite store and the
//! DynamoDB store on moto's server mode (a fresh table per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use chrono::Utc;
use entra_sync_aws::{DynamoStore, sdk_config_for_endpoint};
use entra_sync_core::events::{ChangeEvent, ChangeKind};
use entra_sync_core::memory_outbound::MemoryOutboundStore;
use entra_sync_core::model::TenantId;
use entra_sync_core::outbound::ports::{DeliveryFanOut, OutboundStore};
use entra_sync_core::ports::LocalUserStore;
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_local::sqlite::SqliteStore;
use entra_sync_tests::contract_outbound::{self, account};
use entra_sync_tests::moto;

fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn memory_outbound_store_keeps_the_endpoint_contract() {
    contract_outbound::endpoints(&MemoryOutboundStore::new()).await;
}

#[tokio::test]
async fn sqlite_outbound_store_keeps_the_endpoint_contract() {
    let (_d, s) = sqlite();
    contract_outbound::endpoints(&s).await;
}

#[tokio::test]
async fn memory_outbound_store_keeps_the_delivery_contract() {
    let s = MemoryOutboundStore::new();
    contract_outbound::deliveries(&s, async |id: &str| {
        let e = ChangeEvent::new(
            &TenantId::new(""),
            id,
            1,
            ChangeKind::DirectoryUserCreated {},
        )
        .account(Some(account()));
        s.fan_out(&[e], None, Utc::now()).unwrap();
    })
    .await;
}

#[tokio::test]
async fn sqlite_outbound_store_keeps_the_delivery_contract() {
    let (_d, s) = sqlite();
    contract_outbound::deliveries(&s, async |id: &str| {
        // A host-user change records its `user.created` in the outbox; delivering the outbox
        // fans it out.
        let user = LocalUser::pre_existing(
            account(),
            id,
            &format!("{id}@contoso.example"),
            LocalStatus::Pending,
            Utc::now(),
        );
        s.put_local_users(&[user]).await.unwrap();
        s.deliver_outbox(|_| Ok::<(), Infallible>(())).unwrap();
    })
    .await;
}

async fn dynamo() -> DynamoStore {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("outbound"),
    );
    store.create_table().await.expect("create table on moto");
    store
}

#[tokio::test]
async fn dynamodb_outbound_store_keeps_the_endpoint_contract() {
    contract_outbound::endpoints(&dynamo().await).await;
}

#[tokio::test]
async fn dynamodb_outbound_store_keeps_the_delivery_contract() {
    let s = dynamo().await;
    contract_outbound::deliveries(&s, async |id: &str| {
        // What the publisher does with a committed event: the core plans the deliveries of
        // the account's endpoints, the store creates them (conditional puts).
        let e = ChangeEvent::new(
            &TenantId::new(""),
            id,
            1,
            ChangeKind::DirectoryUserCreated {},
        )
        .account(Some(account()));
        let endpoints = s.list_endpoints(&account()).await.unwrap();
        let planned =
            entra_sync_core::outbound::fan_out(&[(e, None)], &endpoints, Utc::now()).unwrap();
        s.create_deliveries(&planned).await.unwrap();
    })
    .await;
}
