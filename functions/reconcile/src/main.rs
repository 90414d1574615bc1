//! Wiring only: configuration, the adapters (built once per cold start), the runtime loop.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, config, load_sdk_config};
use entra_sync_core::idempotency::IdempotencyConfig;
use entra_sync_core::ports::SystemClock;
use entra_sync_core::services::SyncDeps;
use entra_sync_core::services::claim::Claims;
use entra_sync_reconcile::handler::{Deps, handle};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let idempotency_config = IdempotencyConfig {
        expiry: chrono::Duration::from_std(config::seconds("IDEMPOTENCY_EXPIRY_SECONDS", 3600)?)?,
        in_progress_expiry: chrono::Duration::from_std(config::seconds(
            "IDEMPOTENCY_IN_PROGRESS_SECONDS",
            120,
        )?)?,
    };
    let sdk = load_sdk_config().await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let clock = Arc::new(SystemClock);
    // Every change event is derived from the table's stream by the publisher function.
    let events = Arc::new(entra_sync_core::committed::FromCommitsOnly);
    let deps = Deps {
        reconcile: SyncDeps::from_store(&store, events, clock.clone()),
        claims: Claims::new(store, idempotency_config, clock),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(handle(deps, event.payload).await)
    }))
    .await
}
