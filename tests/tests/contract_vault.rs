//! The vault contract (tests/src/contract_vault.rs) on every adapter: the in-memory vault, the
//! encrypted file vault, and Secrets Manager on moto's server mode (a fresh name prefix per
//! test); plus the Secrets Manager cache, which only that adapter has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use entra_sync_aws::{SecretsManagerVault, sdk_config_for_endpoint};
use entra_sync_core::memory::MemoryVault;
use entra_sync_core::ports::{Secret, SecretVault};
use entra_sync_local::vault::FileVault;
use entra_sync_tests::{contract_vault, moto};

#[tokio::test]
async fn memory_vault_keeps_the_vault_contract() {
    contract_vault::vault(&MemoryVault::default(), None).await;
}

#[tokio::test]
async fn file_vault_keeps_the_vault_contract_and_a_reopened_vault_sees_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = (dir.path().join("vault.json"), dir.path().join("vault.key"));
    let vault = FileVault::open(&path, &key).unwrap();
    let again = FileVault::open(&path, &key).unwrap();
    contract_vault::vault(&vault, Some(&again)).await;
    // At rest, nothing readable.
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(!on_disk.contains("line one") && !on_disk.contains("client-secret-value"));
}

async fn secrets_manager(
    ttl: Duration,
) -> (aws_sdk_secretsmanager::Client, String, SecretsManagerVault) {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let prefix = format!("{}/", moto::unique_name("vault"));
    let vault = SecretsManagerVault::new(client.clone(), &prefix, ttl);
    (client, prefix, vault)
}

#[tokio::test]
async fn secrets_manager_vault_keeps_the_vault_contract() {
    let (client, prefix, vault) = secrets_manager(Duration::from_secs(300)).await;
    // A second vault on the same secrets, without a cache (a cold container): another warm
    // container sees a change only after its TTL (the next test).
    let again = SecretsManagerVault::new(client, &prefix, Duration::ZERO);
    contract_vault::vault(&vault, Some(&again)).await;
    let shown = format!("{vault:?}");
    assert!(!shown.contains("secret-value"), "{shown}");
}

async fn read(vault: &SecretsManagerVault) -> String {
    vault
        .get_secret("app/client-secret")
        .await
        .unwrap()
        .expose()
        .to_owned()
}

#[tokio::test]
async fn secrets_manager_cache_serves_a_value_until_its_ttl_then_reads_again() {
    let (client, prefix, vault) = secrets_manager(Duration::from_millis(1500)).await;
    vault
        .put_secret("app/client-secret", &Secret::new("first"))
        .await
        .unwrap();
    assert_eq!(read(&vault).await, "first");
    // Rotated behind this container's back.
    client
        .put_secret_value()
        .secret_id(format!("{prefix}app/client-secret"))
        .secret_string("rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(&vault).await,
        "first",
        "served from the cache within the TTL"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        read(&vault).await,
        "rotated",
        "read again once the TTL passed"
    );
    // The vault's own writes never serve a stale value.
    vault
        .put_secret("app/client-secret", &Secret::new("third"))
        .await
        .unwrap();
    assert_eq!(read(&vault).await, "third");
}
