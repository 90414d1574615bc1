//! Wiring only: configuration, the adapters and the Graph client (built once per cold start,
//! the app's client secret read from Secrets Manager), the runtime loop. The handler routes
//! the three event shapes (an SQS batch, a direct invocation, the schedule's tick).

use std::sync::Arc;

use entra_sync_actions::handler::handle;
use entra_sync_aws::{
    DynamoStore, EventBridgeSink, SecretsManagerVault, SqsActionQueue, config, load_sdk_config,
};
use entra_sync_core::actions::budget::{BudgetConfig, DEFAULT_WRITES_PER_SECOND, WriteBudget};
use entra_sync_core::idempotency::IdempotencyConfig;
use entra_sync_core::ports::{SecretVault, SystemClock};
use entra_sync_core::services::actions::{ActionDeps, ActionsConfig};
use entra_sync_core::services::claim::Claims;
use entra_sync_graph::{GraphClient, GraphConfig};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let action_queue = config::required("ACTION_QUEUE_URL")?;
    let bus = config::required("EVENT_BUS_NAME")?;
    let graph_app = config::graph_app()?;
    let writes_per_second =
        config::optional("WRITES_PER_SECOND", &DEFAULT_WRITES_PER_SECOND.to_string())
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or(config::ConfigError::Invalid {
                name: "WRITES_PER_SECOND",
                expected: "a positive number",
            })?;
    let idempotency = IdempotencyConfig {
        expiry: chrono::Duration::from_std(config::seconds("IDEMPOTENCY_EXPIRY_SECONDS", 3600)?)?,
        in_progress_expiry: chrono::Duration::from_std(config::seconds(
            "IDEMPOTENCY_IN_PROGRESS_SECONDS",
            120,
        )?)?,
    };
    let actions_config = ActionsConfig {
        key_ttl: chrono::Duration::from_std(config::seconds(
            "IDEMPOTENCY_KEY_TTL_SECONDS",
            7 * 24 * 3600,
        )?)?,
        max_attempts: u32::try_from(config::number("MAX_ATTEMPTS", 5)?)?,
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
    let clock = Arc::new(SystemClock);
    let deps = ActionDeps {
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
        claims: Claims::new(store, idempotency, clock.clone()),
        budget: Arc::new(WriteBudget::new(BudgetConfig {
            writes_per_second,
            ..BudgetConfig::default()
        })),
        events: Arc::new(EventBridgeSink::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            bus,
        )),
        clock,
        config: actions_config,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(handle(deps, event.payload).await)
        },
    ))
    .await
}
