//! Wiring only: configuration, the adapters and the Graph client (built once per cold start,
//! the app's client secret read from Secrets Manager), the runtime loop.

use std::sync::Arc;

use entra_sync_aws::{
    DynamoStore, SecretsManagerVault, SqsFetchRequests, SqsPageQueue, config, load_sdk_config,
};
use entra_sync_core::ports::{SecretVault, SystemClock};
use entra_sync_core::services::{FetchDeps, SyncDeps};
use entra_sync_fetch::handler::{Deps, Settings, handle};
use entra_sync_graph::{GraphClient, GraphConfig};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let page_queue = config::required("PAGE_QUEUE_URL")?;
    let fetch_queue = config::required("FETCH_QUEUE_URL")?;
    let graph_app = config::graph_app()?;
    let settings = Settings {
        max_pages: u32::try_from(config::number("MAX_PAGES_PER_INVOCATION", 200)?)?,
        lease_ttl: config::seconds("LEASE_TTL_SECONDS", 900)?,
    };

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
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    // Every change event is derived from the table's stream by the publisher function.
    let events = Arc::new(entra_sync_core::committed::FromCommitsOnly);
    let deps = Deps {
        fetch: FetchDeps::new(
            &store,
            Arc::new(graph),
            Arc::new(SqsPageQueue::new(sqs.clone(), page_queue)),
            SyncDeps::from_store(&store, events, Arc::new(SystemClock)),
        ),
        requests: Arc::new(SqsFetchRequests::new(sqs, fetch_queue)),
    };
    let (deps, settings) = (&deps, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let holder = event.context.request_id.clone();
        Ok::<_, lambda_runtime::Error>(handle(deps, settings, &holder, event.payload).await)
    }))
    .await
}
