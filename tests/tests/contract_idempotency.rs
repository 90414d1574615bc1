//! The idempotency contract (tests/src/contract_idempotency.rs) on every adapter: the in-memory
//! reference, SQLite (a fresh file per test) and DynamoDB on moto's server mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, sdk_config_for_endpoint};
use entra_sync_core::memory::MemoryIdempotency;
use entra_sync_local::sqlite::SqliteStore;
use entra_sync_tests::{contract_idempotency, moto};

#[tokio::test]
async fn memory_idempotency_keeps_the_idempotency_contract() {
    contract_idempotency::idempotency(Arc::new(MemoryIdempotency::new())).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_idempotency_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
    contract_idempotency::idempotency(Arc::new(store)).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_idempotency_contract() {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("idem"),
    );
    store.create_table().await.expect("create table on moto");
    contract_idempotency::idempotency(Arc::new(store)).await;
}
