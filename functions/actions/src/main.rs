//! Wiring only: configuration, the adapters and the Graph client (built once per cold start,
//! the app's client secret read from Secrets Manager), the runtime loop. The handler routes
//! the three event shapes (an SQS batch, a direct invocation, the schedule's tick).

use std::sync::Arc;

use entra_sync_actions::handler::handle;
use entra_sync_aws::{DynamoStore, SecretsManagerVault, action_deps, config, load_sdk_config};
use entra_sync_core::ports::SecretVault;
use entra_sync_graph::{GraphClient, GraphConfig};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let graph_app = config::graph_app()?;
    let sdk = load_sdk_config().await;
    let vault = SecretsManagerVault::from_env(&sdk)?;
    let client_secret = vault
        .get_secret(entra_sync_core::ports::APP_CLIENT_SECRET)
        .await?;
    let graph = GraphClient::new(GraphConfig::new(
        graph_app.graph_url,
        graph_app.login_url,
        graph_app.client_id,
        client_secret,
    ))?;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let deps = action_deps(&sdk, &store, Arc::new(graph))?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(handle(deps, event.payload).await)
        },
    ))
    .await
}
