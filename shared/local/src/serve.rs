//! `entra-sync serve`: the connect routes of `entra-sync-http` (the routes the connect Lambda
//! serves) on the embedded adapters, with `axum::serve`. With `--emulator` it starts an emulated
//! tenant first, so a person can click through admin consent in a browser without a Microsoft
//! tenant.
//!
//! The admin API (`/v1`, see [`crate::api_serve`]) is served beside them, behind its API key.
//!
//! Besides the connect routes, `GET /` shows a small form (local only) that starts a consent for
//! an account and sends the browser to the consent page. Both go through the same stack
//! ([`entra_sync_http::app`]): error format, request ids, log line, security headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Duration;
use entra_sync_core::model::AccountId;
use entra_sync_core::ports::{APP_CLIENT_SECRET, Secret, SecretVault};
use entra_sync_core::services::ConnectDeps;
use entra_sync_core::services::connect::{start_consent, validate_account_id};
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, GraphTenantDirectory};
use entra_sync_http::HttpError;
use entra_sync_http::connect::{self, ConnectConfig, ConnectState};
use entra_sync_http::html::escape;
use serde::Deserialize;
use tracing::{info, warn};
use url::Url;

use crate::action_worker::{DirectoryAccess, run_ticks, run_worker};
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

/// The connect router (through the stack) on a local data directory.
pub fn connect_router(app: &LocalApp, graph: GraphClient, config: ConnectConfig) -> Router {
    let reader = connect::PermissionReader(Arc::new(graph.clone()));
    entra_sync_http::app(
        connect::routes(ConnectState {
            deps: connect_deps(app, graph),
            config: Arc::new(config),
        })
        .layer(axum::Extension(reader)),
    )
}

/// What `serve` serves: the connect routes and the local start page, through the stack.
pub fn serve_router(app: &LocalApp, graph: GraphClient, config: ConnectConfig) -> Router {
    serve_router_with(app, graph, config, Router::new())
}

/// [`serve_router`] with more routes (the HR webhook route) merged before the stack.
pub fn serve_router_with(
    app: &LocalApp,
    graph: GraphClient,
    config: ConnectConfig,
    more: Router,
) -> Router {
    let local_state = LocalPage {
        deps: connect_deps(app, graph.clone()),
        config: Arc::new(config.clone()),
    };
    let local = Router::new()
        .route("/", get(index))
        .route("/local/start", post(local_start))
        .with_state(local_state);
    let reader = connect::PermissionReader(Arc::new(graph.clone()));
    entra_sync_http::app(
        connect::routes(ConnectState {
            deps: connect_deps(app, graph),
            config: Arc::new(config),
        })
        .layer(axum::Extension(reader))
        .merge(local)
        .merge(more),
    )
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
    /// Outbound webhooks: the test setting that allows `http://` to loopback addresses
    /// (`--allow-insecure-loopback`; off by default).
    pub allow_insecure_loopback: bool,
}

/// What the person needs to know once the server listens.
#[derive(Clone, Debug)]
pub struct ServeInfo {
    pub base_url: String,
    pub redirect_uri: Url,
    /// The emulated tenant, when `--emulator` started one.
    pub emulated_tenant: Option<String>,
    /// The admin API's key, when this `serve` created it (shown once; only its digest is kept).
    pub new_api_key: Option<String>,
    /// The admin console's one-time sign-in address (a new one at every start).
    pub console_url: String,
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
                .put_secret(APP_CLIENT_SECRET, &Secret::new(creds.client_secret))
                .await?;
            let config = GraphConfig::new(
                url(&emu.graph_base_url())?,
                url(&emu.login_base_url())?,
                creds.client_id,
                app.vault.get_secret(APP_CLIENT_SECRET).await?,
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
        redirect_uri: Some(redirect_uri.clone()),
        scope: graph_config.scope(),
        state_ttl: Duration::minutes(10),
        return_url: Some(url(&format!("{base_url}/"))?),
    };
    // Noted for the action commands run next to this server (no secret: that is in the vault
    // for the emulator, in the environment otherwise).
    DirectoryAccess {
        graph_url: graph_config.graph_base_url.clone(),
        login_url: graph_config.login_base_url.clone(),
        client_id: graph_config.client_id.clone(),
        secret_in_vault: emulator.is_some(),
        redirect_uri: Some(redirect_uri.clone()),
    }
    .save(&dir)?;
    let graph = GraphClient::new(graph_config)
        .map_err(|e| LocalError::Failed(format!("graph client: {e}")))?;
    // The action queue's worker and the tick (approval expiry, due workflows) run while the
    // server does, beside the webhook deliveries' worker.
    let actions = app.actions(Arc::new(graph.clone()))?;
    actions.queue.queue().release_claims().await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = {
        let actions = actions.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move { run_worker(&actions, 2, stop).await })
    };
    let ticks = {
        let deps = actions.deps.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move { run_ticks(&deps, stop).await })
    };
    // The outbox's events reach events.jsonl within a quarter of a second of their commit.
    let outbox = {
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                    _ = stop.changed() => break,
                }
                if let Err(e) = app.deliver_events().await {
                    tracing::warn!(error = %e, "change events left in the outbox for the next attempt");
                }
            }
        })
    };
    // Outbound webhooks: every second, the deliveries that are due.
    let outbound_policy = entra_sync_core::outbound::OutboundPolicy {
        urls: entra_sync_core::outbound::ssrf::UrlPolicy {
            allow_insecure_loopback: opts.allow_insecure_loopback,
        },
        ..Default::default()
    };
    app.set_close_webhook_urls(outbound_policy.urls);
    let outbound = {
        let worker = app.outbound_worker(outbound_policy)?;
        let clock = app.clock.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stop.changed() => break,
                }
                if let Err(e) = worker.deliver_due(clock.now()).await {
                    tracing::warn!(error = %e, "outbound webhook deliveries left for the next pass");
                }
            }
        })
    };
    let hooks = crate::hooks_worker::serve_hooks(&app, actions.deps.clone(), stop_rx)?;
    // The admin API behind its key (created at the first serve).
    let (key, new_api_key) = crate::api_serve::api_key(&dir)?;
    let mut api = crate::api_serve::api_state(
        &app,
        connect_deps(&app, graph.clone()),
        config.clone(),
        Arc::new(graph.clone()),
        actions.deps.clone(),
        Arc::new(
            crate::hooks_worker::hibob_client()
                .map_err(|e| LocalError::Failed(format!("HiBob client: {e}")))?,
        ),
        key,
    );
    // The API's endpoint checks follow serve's URL policy (the local test setting).
    api.outbound = Some(crate::api_serve::outbound_api(&app, outbound_policy));
    // The admin console beside the API, signed in through a one-time address.
    let (api, console_token) = crate::api_serve::api_and_console_routes(api);
    let console_url = format!("{base_url}/console/login?token={console_token}");
    let routes = serve_router_with(&app, graph, config, hooks.routes.merge(api));
    on_ready(&ServeInfo {
        base_url,
        redirect_uri,
        emulated_tenant,
        new_api_key,
        console_url,
    });
    info!(listen = %local, "connect and webhook routes served");
    let served = axum::serve(listener, routes)
        .with_graceful_shutdown(async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                warn!(error = %e, "cannot wait for Ctrl-C");
            }
        })
        .await;
    let _ = stop_tx.send(true);
    for task in [worker, ticks] {
        if let Err(e) = task.await {
            warn!(error = %e, "action worker ended abnormally");
        }
    }
    let _ = outbox.await;
    let _ = outbound.await;
    if let Err(e) = hooks.worker.await {
        warn!(error = %e, "webhook worker ended abnormally");
    }
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

/// Whether the browser says the form was sent from another site (`Sec-Fetch-Site`). A page on
/// another site can submit a form to this address; such a submission starts nothing. Browsers
/// that do not send the header, and programs, are let through (the form starts a consent only;
/// the admin still has to consent at Microsoft).
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        })
}

/// An error of the local page, as a page (with the error attached for the log line).
fn local_error_page(error: HttpError) -> Response {
    let page = (
        error.status(),
        Html(format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not started</title></head>\
             <body><p>{}</p><p><a href=\"/\">Back</a></p></body></html>\n",
            escape(error.message())
        )),
    )
        .into_response();
    error.on_page(page)
}

/// Start a consent and send the browser to the consent page (the URL comes from the
/// configuration, never from the form).
async fn local_start(
    State(s): State<LocalPage>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    if cross_site(&headers) {
        return local_error_page(
            HttpError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                "This form only works from this page. Open it and start again.",
            )
            .with_detail("local start form sent from another site"),
        );
    }
    let redirect_uri = match s.config.redirect_uri_for(None) {
        Ok(u) => u,
        Err(e) => return HttpError::from(e).into_response(),
    };
    let result = async {
        let account: AccountId = validate_account_id(form.account.trim())?;
        let pending =
            start_consent(&s.deps, &account, &form.label, None, s.config.state_ttl).await?;
        Ok::<_, entra_sync_core::services::ConnectError>(pending)
    }
    .await;
    match result {
        Ok(pending) => match s.config.consent_url(&pending, &redirect_uri) {
            Ok(u) => (StatusCode::SEE_OTHER, [(header::LOCATION, u.to_string())]).into_response(),
            Err(e) => HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
                .with_detail(format_args!("consent URL could not be built: {e}"))
                .into_response(),
        },
        Err(e) => local_error_page(HttpError::from(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn served(dir: &std::path::Path) -> (Router, LocalApp) {
        let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
        let login = url("https://login.microsoftonline.com").unwrap();
        let graph_config = GraphConfig::new(
            url("https://graph.microsoft.com").unwrap(),
            login.clone(),
            "app".to_owned(),
            Secret::new("not used"),
        );
        let config = ConnectConfig {
            login_base_url: login,
            client_id: "app".into(),
            redirect_uri: Some(url("http://127.0.0.1:8080/connect/callback").unwrap()),
            scope: graph_config.scope(),
            state_ttl: Duration::minutes(10),
            return_url: None,
        };
        let graph = GraphClient::new(graph_config).unwrap();
        (serve_router(&app, graph, config), app)
    }

    fn form(sec_fetch_site: Option<&str>) -> Request<Body> {
        let mut req = Request::post("/local/start")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(site) = sec_fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        req.body(Body::from("account=local&label=Mine")).unwrap()
    }

    #[tokio::test]
    async fn the_start_page_carries_the_security_headers() {
        let dir = tempfile::tempdir().unwrap();
        let (routes, _app) = served(dir.path());
        let resp = routes
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("script"),
            "{csp}"
        );
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn the_start_form_sends_the_browser_to_consent_unless_sent_from_another_site() {
        let dir = tempfile::tempdir().unwrap();
        let (routes, _app) = served(dir.path());
        for site in [None, Some("same-origin"), Some("none")] {
            let resp = routes.clone().oneshot(form(site)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{site:?}");
            let to = resp.headers()[header::LOCATION].to_str().unwrap();
            assert!(
                to.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fconnect%2Fcallback"),
                "{to}"
            );
        }
        for site in ["cross-site", "same-site"] {
            let resp = routes.clone().oneshot(form(Some(site))).await.unwrap();
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{site}");
            assert!(resp.headers().get(header::LOCATION).is_none());
        }
    }

    #[tokio::test]
    async fn the_connect_api_refuses_a_text_plain_start() {
        let dir = tempfile::tempdir().unwrap();
        let (routes, _app) = served(dir.path());
        let req = Request::post("/accounts/local/connections/start")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(r#"{"label":"from another site"}"#))
            .unwrap();
        let resp = routes.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
