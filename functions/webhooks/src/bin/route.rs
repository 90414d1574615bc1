//! Wiring only: configuration, the adapters (DynamoDB for the endpoints and the delivery log,
//! Secrets Manager for the signing secrets, the SQS FIFO delivery queue), the hooks router
//! served by `lambda_http`.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, SecretsManagerVault, SqsDeliveryQueue, config, load_sdk_config};
use entra_sync_core::ports::SystemClock;
use entra_sync_core::services::webhooks::{ReceiveDeps, WebhookConfig};
use entra_sync_http::hooks::{HooksState, router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let delivery_queue = config::required("DELIVERY_QUEUE_URL")?;

    let sdk = load_sdk_config().await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let deps = ReceiveDeps {
        endpoints: store.clone(),
        vault: Arc::new(SecretsManagerVault::from_env(&sdk)?),
        deliveries: store,
        queue: Arc::new(SqsDeliveryQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            delivery_queue,
        )),
        clock: Arc::new(SystemClock),
        limits: WebhookConfig::default().limits,
    };
    lambda_http::run(entra_sync_webhooks::app(router(HooksState::new(deps)))).await
}
