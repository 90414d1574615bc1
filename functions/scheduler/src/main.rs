//! Wiring only: configuration, the adapters (built once per cold start), the runtime loop.

use std::sync::Arc;

use entra_sync_aws::{DynamoStore, SqsFetchRequests, config, load_sdk_config};
use entra_sync_core::ports::SystemClock;
use entra_sync_scheduler::handler::{Deps, Settings, invoke};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let fetch_queue = config::required("FETCH_QUEUE_URL")?;
    let settings = Settings {
        max_jitter: config::seconds("MAX_JITTER_SECONDS", 900)?,
    };
    let sdk = load_sdk_config().await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    let deps = Deps::from_store(
        &store,
        Arc::new(SqsFetchRequests::new(
            aws_sdk_sqs::Client::new(&sdk),
            fetch_queue,
        )),
        Arc::new(SystemClock),
    );
    let (deps, settings) = (&deps, &settings);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            invoke(deps, settings, event.payload).await
        },
    ))
    .await
}
