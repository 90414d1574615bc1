//! Wiring only: configuration, the adapters and the Graph client (built once per cold start,
//! the app's client secret read from Secrets Manager), the connect router served by
//! `lambda_http`.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, SecretsManagerVault, config, load_sdk_config};
use entra_sync_core::ports::{SecretVault, SystemClock};
use entra_sync_core::services::ConnectDeps;
use entra_sync_graph::{GraphClient, GraphConfig, GraphTenantDirectory};
use entra_sync_http::connect::{ConnectConfig, ConnectState, router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let graph_app = config::graph_app()?;
    // Empty: the callback URL is derived per request from API Gateway's domain name.
    let redirect_uri = config::optional_url("REDIRECT_URI")?;
    let return_url = config::optional_url("RETURN_URL")?;
    let state_ttl = config::seconds("STATE_TTL_SECONDS", 600)?;

    let sdk = load_sdk_config().await;
    let vault = Arc::new(SecretsManagerVault::from_env(&sdk)?);
    let client_secret = vault
        .get_secret(entra_sync_core::ports::APP_CLIENT_SECRET)
        .await?;
    let graph_config = GraphConfig::new(
        graph_app.graph_url,
        graph_app.login_url.clone(),
        graph_app.client_id.clone(),
        client_secret,
    );
    let scope = graph_config.scope();
    let graph = GraphClient::new(graph_config)?;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let routes = router(ConnectState {
        deps: ConnectDeps {
            consent_states: store.clone(),
            connections: store,
            directory: Arc::new(GraphTenantDirectory(graph)),
            vault,
            clock: Arc::new(SystemClock),
        },
        config: Arc::new(ConnectConfig {
            login_base_url: graph_app.login_url,
            client_id: graph_app.client_id,
            redirect_uri,
            scope,
            state_ttl: chrono::Duration::from_std(state_ttl)?,
            return_url,
        }),
    });
    lambda_http::run(entra_sync_connect::app(routes)).await
}
