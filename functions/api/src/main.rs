//! Wiring only: configuration, the adapters and the Graph client (built once per cold start,
//! the app's client secret read from Secrets Manager), the write half (the action queue, the
//! event bus), the outbound webhook endpoints, the admin API served by `lambda_http`.

use std::sync::Arc;

use entra_sync_api::{DEFAULT_ACCOUNT_CLAIM, app, console_sessions};
use entra_sync_aws::{
    DynamoStore, SecretsManagerVault, SqsFetchRequests, action_deps, config, load_sdk_config,
};
use entra_sync_core::outbound::OutboundPolicy;
use entra_sync_core::ports::{SecretVault, SystemClock};
use entra_sync_core::services::sync_now::SyncNowDeps;
use entra_sync_core::services::webhooks::{EndpointDeps, ProcessDeps, WebhookConfig};
use entra_sync_core::services::{ConnectDeps, ProjectDeps};
use entra_sync_graph::{GraphClient, GraphConfig, GraphTenantDirectory};
use entra_sync_hr::{HiBobClient, HiBobConfig};
use entra_sync_http::api::ApiState;
use entra_sync_http::api::auth::PlatformCaller;
use entra_sync_http::api::hr::HrApi;
use entra_sync_http::api::outbound::OutboundApi;
use entra_sync_http::connect::ConnectConfig;
use entra_sync_outbound::SystemResolver;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let fetch_queue = config::required("FETCH_QUEUE_URL")?;
    let graph_app = config::graph_app()?;
    let account_claim = config::optional("JWT_ACCOUNT_CLAIM", DEFAULT_ACCOUNT_CLAIM);
    // The consent callback is the connect function's route: its URL, as configured there.
    let redirect_uri = config::optional_url("REDIRECT_URI")?;
    let return_url = config::optional_url("RETURN_URL")?;
    let state_ttl = config::seconds("STATE_TTL_SECONDS", 600)?;
    let console_hours = config::number("CONSOLE_SESSION_HOURS", 8)?;

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
    // Actions submitted here go to the actions function's queue; a password reset is run here,
    // as its requester, so its temporary password is only ever in this answer.
    let actions = action_deps(&sdk, &store, Arc::new(graph.clone()))?;
    let clock = Arc::new(SystemClock);
    let console =
        console_sessions(vault.as_ref(), store.clone(), clock.clone(), console_hours).await?;
    // HR endpoints: their secrets go to Secrets Manager. Resolving a review item applies the
    // held event as stored (a lookup event was filled from the HR system's API when it was
    // processed), so the processor's HiBob client is never called here.
    let hibob = HiBobClient::new(HiBobConfig::default())?;
    let hr = HrApi {
        endpoints: EndpointDeps {
            connections: store.clone(),
            endpoints: store.clone(),
            deliveries: store.clone(),
            vault: vault.clone(),
            clock: clock.clone(),
            config: WebhookConfig::default(),
        },
        process: ProcessDeps {
            actions: actions.clone(),
            endpoints: store.clone(),
            deliveries: store.clone(),
            reviews: store.clone(),
            people: store.clone(),
            employees: store.clone(),
            hr_api: Arc::new(hibob),
            vault: vault.clone(),
        },
    };
    let (outbound_store, outbound_vault, outbound_clock) =
        (store.clone(), vault.clone(), clock.clone());
    let state = ApiState {
        connect: ConnectDeps {
            consent_states: store.clone(),
            connections: store.clone(),
            directory: Arc::new(GraphTenantDirectory(graph)),
            vault,
            clock: clock.clone(),
        },
        connect_config: Arc::new(ConnectConfig {
            login_base_url: graph_app.login_url,
            client_id: graph_app.client_id,
            redirect_uri,
            scope,
            state_ttl: chrono::Duration::from_std(state_ttl)?,
            return_url,
        }),
        project: ProjectDeps::from_store(&store, clock.clone()),
        sync: SyncNowDeps {
            connections: store.clone(),
            runs: store,
            requests: Arc::new(SqsFetchRequests::new(
                aws_sdk_sqs::Client::new(&sdk),
                fetch_queue,
            )),
            clock,
        },
        actions,
        hr,
        // Outbound webhook endpoints: records in the table, signing secrets in Secrets
        // Manager; URLs must be public https (the loopback test setting is never on here).
        outbound: Some(OutboundApi {
            store: outbound_store,
            vault: outbound_vault,
            resolver: Arc::new(SystemResolver),
            policy: OutboundPolicy::default(),
            clock: outbound_clock,
        }),
        auth: Arc::new(PlatformCaller),
        console: Arc::new(console),
    };
    lambda_http::run(app(state, &account_claim)).await
}
