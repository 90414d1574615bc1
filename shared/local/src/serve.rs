//! `entra-sync serve`: the connect routes (the same router the Lambda function serves) on the
//! embedded adapters, with `axum::serve`. With `--emulator` it starts an emulated tenant first,
//! so a person can click through admin consent in a browser without a Microsoft tenant.
//!
//! Besides the connect routes, `GET /` shows a small form (local only) that starts a consent for
//! an account and sends the browser to the consent page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Duration;
use entra_sync_connect::page::escape;
use entra_sync_connect::{AppState, ConnectConfig, GraphTenantDirectory, router};
use entra_sync_core::model::AccountId;
use entra_sync_core::ports::{Secret, SecretVault};
use entra_sync_core::services::ConnectDeps;
use entra_sync_core::services::connect::{start_consent, validate_account_id};
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig};
use serde::Deserialize;
use tracing::{info, warn};
use url::Url;

use crate::demo::CLIENT_SECRET_NAME;
use crate::runtime::{DataDir, LocalApp, LocalError, SyncSettings};

/// The connect deps on a local data directory.
pub fn connect_deps(app: &LocalApp, graph: GraphClient) -> ConnectDeps {
    ConnectDeps {
        consent_states: app.store.clone(),
        connections: app.store.clone(),
        directory: Arc::new(GraphTenantDirectory(graph)),
        vault: app.vault.clone(),
        clock: app.clock.clone(),
    }
}

/// The connect router on a local data directory.
pub fn connect_router(app: &LocalApp, graph: GraphClient, config: ConnectConfig) -> Router {
    router(AppState {
        deps: connect_deps(app, graph),
        config: Arc::new(config),
    })
}

/// Where the directory is: an emulator this process starts, or Microsoft's (or another)
/// login and Graph hosts.
#[derive(Clone, Debug)]
pub enum ServeDirectory {
    Emulator {
        users: usize,
        groups: usize,
        seed: u64,
    },
    Remote {
        client_id: String,
        client_secret: Secret,
        graph_url: Url,
        login_url: Url,
    },
}

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The callback URL registered on the app; default `http://{listen}/connect/callback`.
    pub redirect_uri: Option<Url>,
    pub directory: ServeDirectory,
}

/// What the person needs to know once the server listens.
#[derive(Clone, Debug)]
pub struct ServeInfo {
    pub base_url: String,
    pub redirect_uri: Url,
    /// The emulated tenant, when `--emulator` started one.
    pub emulated_tenant: Option<String>,
}

fn url(s: &str) -> Result<Url, LocalError> {
    Url::parse(s).map_err(|e| LocalError::Failed(format!("bad URL {s}: {e}")))
}

/// Serve until Ctrl-C.
pub async fn run_serve(
    opts: &ServeOptions,
    on_ready: impl FnOnce(&ServeInfo),
) -> Result<(), LocalError> {
    let dir = DataDir::new(&opts.data_dir);
    let app = LocalApp::open_for_writing(&dir, &SyncSettings::default(), "serve")?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| LocalError::Failed(format!("cannot listen on {}: {e}", opts.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| LocalError::Failed(format!("no local address: {e}")))?;
    let base_url = format!("http://{local}");
    let redirect_uri = match &opts.redirect_uri {
        Some(u) => u.clone(),
        None => url(&format!("{base_url}/connect/callback"))?,
    };
    let mut emulator = None;
    let (graph_config, emulated_tenant) = match &opts.directory {
        ServeDirectory::Emulator {
            users,
            groups,
            seed,
        } => {
            let emu = Emulator::start(EmulatorConfig::default())
                .await
                .map_err(|e| LocalError::Failed(format!("cannot start the emulator: {e}")))?;
            let info = emu.add_tenant(&TenantSpec::new(*seed, *users, *groups));
            // Not consented yet: the browser flow grants it.
            if let Some(t) = emu.tenant(&info.tenant_id) {
                t.revoke_consent();
            }
            let creds = emu.app();
            app.vault
                .put_secret(CLIENT_SECRET_NAME, &Secret::new(creds.client_secret))
                .await?;
            let config = GraphConfig::new(
                url(&emu.graph_base_url())?,
                url(&emu.login_base_url())?,
                creds.client_id,
                app.vault.get_secret(CLIENT_SECRET_NAME).await?,
            );
            emulator = Some(emu);
            (config, Some(info.tenant_id))
        }
        ServeDirectory::Remote {
            client_id,
            client_secret,
            graph_url,
            login_url,
        } => (
            GraphConfig::new(
                graph_url.clone(),
                login_url.clone(),
                client_id.clone(),
                client_secret.clone(),
            ),
            None,
        ),
    };
    let config = ConnectConfig {
        login_base_url: graph_config.login_base_url.clone(),
        client_id: graph_config.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope: graph_config.scope(),
        state_ttl: Duration::minutes(10),
        return_url: Some(url(&format!("{base_url}/"))?),
    };
    let graph = GraphClient::new(graph_config)
        .map_err(|e| LocalError::Failed(format!("graph client: {e}")))?;
    let local_state = LocalPage {
        deps: connect_deps(&app, graph.clone()),
        config: Arc::new(config.clone()),
    };
    let routes = connect_router(&app, graph, config).merge(
        Router::new()
            .route("/", get(index))
            .route("/local/start", post(local_start))
            .with_state(local_state),
    );
    on_ready(&ServeInfo {
        base_url,
        redirect_uri,
        emulated_tenant,
    });
    info!(listen = %local, "connect routes served");
    let served = axum::serve(listener, routes)
        .with_graceful_shutdown(async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                warn!(error = %e, "cannot wait for Ctrl-C");
            }
        })
        .await;
    if let Some(emu) = emulator {
        emu.shutdown().await;
    }
    served.map_err(|e| LocalError::Failed(format!("server failed: {e}")))
}

#[derive(Clone)]
struct LocalPage {
    deps: ConnectDeps,
    config: Arc<ConnectConfig>,
}

async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>entra-sync: connect a directory</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.5rem 0}</style></head>\
         <body><h1>Connect a directory</h1>\
         <form method=\"post\" action=\"/local/start\">\
         <label>Account id <input name=\"account\" value=\"local\" required></label>\
         <label>Label <input name=\"label\" value=\"My directory\" required></label>\
         <button type=\"submit\">Connect with Microsoft</button></form>\
         <p>The account's connections: <code>GET /accounts/{account}/connections</code></p></body></html>\n",
    )
}

#[derive(Deserialize)]
struct StartForm {
    account: String,
    label: String,
}

/// Start a consent and send the browser to the consent page (the URL comes from the
/// configuration, never from the form).
async fn local_start(State(s): State<LocalPage>, Form(form): Form<StartForm>) -> Response {
    let result = async {
        let account: AccountId = validate_account_id(form.account.trim())?;
        let pending =
            start_consent(&s.deps, &account, &form.label, None, s.config.state_ttl).await?;
        Ok::<_, entra_sync_core::services::ConnectError>(pending)
    }
    .await;
    match result {
        Ok(pending) => match s.config.consent_url(&pending) {
            Ok(u) => (StatusCode::SEE_OTHER, [(header::LOCATION, u.to_string())]).into_response(),
            Err(e) => {
                warn!(error = %e, "consent URL could not be built");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "bad login URL configuration",
                )
                    .into_response()
            }
        },
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Html(format!(
                "<p>{}</p><p><a href=\"/\">Back</a></p>",
                escape(&e.message())
            )),
        )
            .into_response(),
    }
}
