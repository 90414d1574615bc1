//! The store contract against the embedded SQLite adapter (a fresh database file per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use entra_sync_local::sqlite::SqliteStore;
use entra_sync_tests::contract;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn sqlite_store_keeps_the_connection_contract() {
    let (_d, s) = store();
    contract::connections(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_cursor_contract() {
    let (_d, s) = store();
    contract::cursors(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_lease_contract() {
    let (_d, s) = store();
    contract::leases(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_mirror_contract() {
    let (_d, s) = store();
    contract::mirror(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_run_contract() {
    let (_d, s) = store();
    contract::runs(&s).await;
}

#[tokio::test]
async fn sqlite_store_pages_the_activity_log() {
    let (_d, s) = store();
    contract::run_pages(&s).await;
}

#[tokio::test]
async fn sqlite_store_reopens_with_its_data_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.sqlite");
    {
        let s = SqliteStore::open(&path).expect("open");
        contract::runs(&s).await;
    }
    let s = SqliteStore::open(&path).expect("reopen");
    use entra_sync_core::ports::RunStore;
    let t = entra_sync_core::model::TenantId::new("tenant-a");
    assert_eq!(s.list_runs(&t, 10).await.expect("list").len(), 2);
    drop(s);
    let conn = rusqlite_bump(&path);
    assert!(conn.is_err(), "a database from a newer program is refused");
}

/// Pretend a newer program migrated the file, then open it with this one.
fn rusqlite_bump(
    path: &std::path::Path,
) -> Result<SqliteStore, entra_sync_core::error::StoreError> {
    let c = entra_sync_local::sqlite::open_database(path)?;
    c.pragma_update(None, "user_version", 999).expect("bump");
    drop(c);
    SqliteStore::open(path)
}

#[tokio::test]
async fn sqlite_store_keeps_the_settings_contract() {
    let (_d, s) = store();
    entra_sync_tests::contract_projection::settings(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_local_user_contract() {
    let (_d, s) = store();
    entra_sync_tests::contract_projection::local_users(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_many_local_users_in_one_put() {
    let (_d, s) = store();
    entra_sync_tests::contract_projection::local_users_in_bulk(&s).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_email_index_under_concurrent_writers() {
    let (_d, s) = store();
    entra_sync_tests::contract_projection::local_users_concurrent_writers(&s).await;
}

#[tokio::test]
async fn sqlite_consent_states_are_taken_once() {
    let (_d, s) = store();
    entra_sync_tests::contract_consent::take_once(&s).await;
    entra_sync_tests::contract_consent::concurrent_takes(&s).await;
}
