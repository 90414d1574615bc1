//! Wiring only: configuration, the adapters and the clients (built once per cold start: the
//! Graph client with the app's client secret from Secrets Manager, the HiBob API client), the
//! runtime loop over the delivery queue's batches.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use entra_sync_aws::{DynamoStore, SecretsManagerVault, SqsActionQueue, config, load_sdk_config};
use entra_sync_core::actions::budget::WriteBudget;
use entra_sync_core::idempotency::IdempotencyConfig;
use entra_sync_core::ports::{APP_CLIENT_SECRET, SecretVault, SystemClock};
use entra_sync_core::services::actions::{ActionDeps, ActionsConfig};
use entra_sync_core::services::claim::Claims;
use entra_sync_core::services::webhooks::ProcessDeps;
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_hr::{HiBobClient, HiBobConfig};
use entra_sync_webhooks::handler::handle_batch;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let action_queue = config::required("ACTION_QUEUE_URL")?;
    let graph_app = config::graph_app()?;
    let hibob_url = config::optional("HIBOB_BASE_URL", &HiBobConfig::default().base_url);
    // A claim outlives the function's timeout, so a live worker is never taken over.
    let claim = config::seconds("CLAIM_SECONDS", 120)?;
    let claims_config = IdempotencyConfig {
        expiry: chrono::Duration::hours(1),
        in_progress_expiry: chrono::Duration::from_std(claim)?,
    };

    let sdk = load_sdk_config().await;
    let vault = Arc::new(SecretsManagerVault::from_env(&sdk)?);
    let client_secret = vault.get_secret(APP_CLIENT_SECRET).await?;
    let graph = GraphClient::new(GraphConfig::new(
        graph_app.graph_url,
        graph_app.login_url,
        graph_app.client_id,
        client_secret,
    ))?;
    let hr_api = HiBobClient::new(HiBobConfig {
        base_url: hibob_url,
        ..HiBobConfig::default()
    })?;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let clock = Arc::new(SystemClock);
    let actions = ActionDeps {
        connections: store.clone(),
        settings: store.clone(),
        mirror: store.clone(),
        cursors: store.clone(),
        lookup: store.clone(),
        actions: store.clone(),
        workflows: store.clone(),
        queue: Arc::new(SqsActionQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            action_queue,
        )),
        writer: Arc::new(graph),
        claims: Claims::new(store.clone(), claims_config, clock.clone()),
        budget: Arc::new(WriteBudget::default()),
        clock,
        config: ActionsConfig::default(),
    };
    let deps = ProcessDeps {
        actions,
        endpoints: store.clone(),
        deliveries: store.clone(),
        reviews: store.clone(),
        people: store.clone(),
        employees: store,
        hr_api: Arc::new(hr_api),
        vault,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(handle_batch(deps, event.payload).await)
    }))
    .await
}
