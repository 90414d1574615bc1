//! Wiring only: configuration, the adapters and the HTTP client (built once per cold start),
//! the runtime loop. The endpoints' URLs follow the production rule (public https only): the
//! loopback test setting is never read from the environment here.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, SecretsManagerVault, config, load_sdk_config};
use entra_sync_core::outbound::OutboundPolicy;
use entra_sync_outbound::{OutboundWorker, ReqwestPoster};
use entra_sync_outbound_function::handler::handle;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let sdk = load_sdk_config().await;
    let policy = OutboundPolicy::default();
    let deps = OutboundWorker {
        store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table)),
        vault: Arc::new(SecretsManagerVault::from_env(&sdk)?),
        poster: Arc::new(ReqwestPoster::new(&policy)?),
        policy,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle(deps, event.payload, chrono::Utc::now()).await
        },
    ))
    .await
}
