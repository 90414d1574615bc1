//! The store contract against the in-memory reference adapter.

use entra_sync_core::memory::MemoryStore;
use entra_sync_tests::contract;

#[tokio::test]
async fn memory_store_keeps_the_connection_contract() {
    contract::connections(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_cursor_contract() {
    contract::cursors(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_lease_contract() {
    contract::leases(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_mirror_contract() {
    contract::mirror(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_run_contract() {
    contract::runs(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_pages_the_activity_log() {
    contract::run_pages(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_settings_contract() {
    entra_sync_tests::contract_projection::settings(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_local_user_contract() {
    entra_sync_tests::contract_projection::local_users(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_many_local_users_in_one_put() {
    entra_sync_tests::contract_projection::local_users_in_bulk(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_email_index_under_concurrent_writers() {
    entra_sync_tests::contract_projection::local_users_concurrent_writers(&MemoryStore::new())
        .await;
}

#[tokio::test]
async fn memory_consent_states_are_taken_once() {
    let store = entra_sync_core::memory_consent::MemoryConsentStates::new();
    entra_sync_tests::contract_consent::take_once(&store).await;
    entra_sync_tests::contract_consent::concurrent_takes(&store).await;
}
