//! AWS adapters of the core ports: DynamoDB (every store port, one table), SQS (page queue,
//! fetch requests, action and HR delivery queues), Secrets Manager (vault with an in-memory TTL cache) and EventBridge (change
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
pub use sqs::{SqsActionQueue, SqsDeliveryQueue, SqsFetchRequests, SqsPageQueue};

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
