//! Wiring only: configuration, the adapters (built once per cold start), the runtime loop.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, EventBridgeSink, config, load_sdk_config};
use entra_sync_core::services::publish::PublishDeps;
use entra_sync_publisher::handler::handle;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let bus = config::required("EVENT_BUS_NAME")?;
    let sdk = load_sdk_config().await;
    let deps = PublishDeps {
        connections: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table)),
        events: Arc::new(EventBridgeSink::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            bus,
        )),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(handle(deps, event.payload).await)
    }))
    .await
}
