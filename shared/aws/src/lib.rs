//! AWS adapters of the core ports: DynamoDB (every store port, one table), SQS (page queue,
//! fetch requests, action and HR delivery queues, the outbound webhook wake-up), Secrets Manager (vault with an in-memory TTL cache) and EventBridge (change
//! events). Adapters translate between the core model and the SDK; they never decide.
//!
//! Build one [`aws_config::SdkConfig`] per process with [`load_sdk_config`] (or
//! [`sdk_config_for_endpoint`] for moto and other emulators) and the clients from it, once, at
//! cold start.

pub mod config;
pub mod dynamo;
pub mod error;
pub mod eventbridge;
pub mod secrets;
pub mod sqs;

pub use dynamo::DynamoStore;

/// The projection's stores (connections, settings, local users) on one DynamoDB table: what
/// fetch and reconcile pass to the commit that projects a finished run.
pub fn projection_ports(
    store: &std::sync::Arc<DynamoStore>,
) -> entra_sync_core::services::ProjectionPorts {
    entra_sync_core::services::ProjectionPorts {
        connections: store.clone(),
        settings: store.clone(),
        local_users: store.clone(),
    }
}
pub use error::AwsCallError;
pub use eventbridge::EventBridgeSink;
pub use secrets::SecretsManagerVault;
pub use sqs::{SqsActionQueue, SqsDeliveryQueue, SqsDeliveryWake, SqsFetchRequests, SqsPageQueue};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The one HTTPS client of the SDK clients: rustls with the ring provider, the TLS stack the
/// Graph client (reqwest) already uses, so the build carries one TLS implementation.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration from the environment (region, credentials, and the standard
/// `AWS_ENDPOINT_URL*` overrides), as Lambda provides it.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// A configuration for an emulator on `endpoint` (moto's server mode in the tests): fixed
/// region and dummy credentials, so nothing is read from the environment or sent elsewhere.
pub async fn sdk_config_for_endpoint(endpoint: &str) -> SdkConfig {
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        "testing",
        "testing",
        None,
        None,
        "entra-sync-emulator",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The write half on AWS, configured from the environment: the action store and workflows on
/// the table (whose stream gives their change events), the FIFO action queue (`ACTION_QUEUE_URL`),
/// the per-tenant write budget (`WRITES_PER_SECOND`) and the idempotency windows
/// (`IDEMPOTENCY_EXPIRY_SECONDS`, `IDEMPOTENCY_IN_PROGRESS_SECONDS`,
/// `IDEMPOTENCY_KEY_TTL_SECONDS`, `MAX_ATTEMPTS`). The actions function and the admin API build
/// it the same way, so an action submitted through either behaves the same.
pub fn action_deps(
    sdk: &SdkConfig,
    store: &std::sync::Arc<DynamoStore>,
    writer: std::sync::Arc<dyn entra_sync_core::directory_write::DirectoryWriter>,
) -> Result<entra_sync_core::services::actions::ActionDeps, config::ConfigError> {
    use std::sync::Arc;

    use entra_sync_core::actions::budget::{BudgetConfig, DEFAULT_WRITES_PER_SECOND, WriteBudget};
    use entra_sync_core::idempotency::IdempotencyConfig;
    use entra_sync_core::services::actions::{ActionDeps, ActionsConfig};
    use entra_sync_core::services::claim::Claims;

    let action_queue = config::required("ACTION_QUEUE_URL")?;
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
    let window = |name: &'static str, default: u64| {
        config::seconds(name, default).and_then(|d| {
            chrono::Duration::from_std(d).map_err(|_| config::ConfigError::Invalid {
                name,
                expected: "a number of seconds",
            })
        })
    };
    let idempotency = IdempotencyConfig {
        expiry: window("IDEMPOTENCY_EXPIRY_SECONDS", 3600)?,
        in_progress_expiry: window("IDEMPOTENCY_IN_PROGRESS_SECONDS", 120)?,
    };
    let max_attempts = u32::try_from(config::number("MAX_ATTEMPTS", 5)?).map_err(|_| {
        config::ConfigError::Invalid {
            name: "MAX_ATTEMPTS",
            expected: "a small whole number",
        }
    })?;
    let actions_config = ActionsConfig {
        key_ttl: window("IDEMPOTENCY_KEY_TTL_SECONDS", 7 * 24 * 3600)?,
        max_attempts,
    };
    let clock = Arc::new(entra_sync_core::ports::SystemClock);
    Ok(ActionDeps {
        connections: store.clone(),
        settings: store.clone(),
        mirror: store.clone(),
        cursors: store.clone(),
        lookup: store.clone(),
        actions: store.clone(),
        workflows: store.clone(),
        queue: Arc::new(SqsActionQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            action_queue,
        )),
        writer,
        claims: Claims::new(store.clone(), idempotency, clock.clone()),
        budget: Arc::new(WriteBudget::new(BudgetConfig {
            writes_per_second,
            ..BudgetConfig::default()
        })),
        clock,
        config: actions_config,
    })
}
