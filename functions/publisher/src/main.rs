//! Wiring only: configuration, the adapters (built once per cold start), the runtime loop.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, EventBridgeSink, SqsDeliveryWake, config, load_sdk_config};
use entra_sync_core::ports::SystemClock;
use entra_sync_core::services::publish::{FanOutDeps, PublishDeps};
use entra_sync_publisher::handler::handle;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let bus = config::required("EVENT_BUS_NAME")?;
    let outbound_queue = config::required("OUTBOUND_QUEUE_URL")?;
    let sdk = load_sdk_config().await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let deps = PublishDeps {
        connections: store.clone(),
        events: Arc::new(EventBridgeSink::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            bus,
        )),
        // Outbound webhooks: deliveries created in the table, the delivery function woken.
        outbound: Some(FanOutDeps {
            deliveries: store,
            wake: Arc::new(SqsDeliveryWake::new(
                aws_sdk_sqs::Client::new(&sdk),
                outbound_queue,
            )),
            clock: Arc::new(SystemClock),
        }),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(handle(deps, event.payload).await)
    }))
    .await
}
