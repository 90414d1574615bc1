//! The connect routes: translate HTTP into the core's connect services and their errors into
//! responses, in exactly one place per kind of response (JSON for the host product's API, an
//! HTML page for the admin's browser). Errors are logged once, here, with ids only.
//!
//! | Route | What |
//! |---|---|
//! | `POST /accounts/{account}/connections/start` | `{"label", "expected_tenant_id"?}` -> `{"consent_url", "expires_at"}` |
//! | `GET /accounts/{account}/connections` | the account's connections |
//! | `GET /accounts/{account}/connections/{tenant}` | one connection |
//! | `POST /accounts/{account}/connections/{tenant}/reconnect` | `{"label"?}` -> consent URL for that tenant |
//! | `POST /accounts/{account}/connections/{tenant}/disconnect` | disconnect (users are kept) |
//! | `GET {redirect_uri path}` | the consent callback (HTML) |
//!
//! The account routes are for the host product's backend (API Gateway authorizes the caller);
//! the account in the path scopes every read and write, and another account's connection is
//! answered as 404. The callback is public; its `state` is the proof.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{AccountId, Connection, TenantId};
use entra_sync_core::ports::PendingConsent;
use entra_sync_core::services::connect::{
    self, ConnectDeps, ConnectError, parse_tenant_id, validate_account_id,
};
use serde::Serialize;
use serde_json::json;
use tracing::{error, info, warn};

use crate::config::ConnectConfig;
use crate::page::page;
use crate::parse::{
    BodyError, CallbackError, parse_callback_query, parse_reconnect_body, parse_start_body,
};

/// What every route shares: the ports and the configuration.
#[derive(Clone)]
pub struct AppState {
    pub deps: ConnectDeps,
    pub config: Arc<ConnectConfig>,
}

/// The connect router.
pub fn router(state: AppState) -> Router {
    let callback = state.config.callback_path().to_owned();
    Router::new()
        .route("/accounts/{account}/connections/start", post(start))
        .route("/accounts/{account}/connections", get(list))
        .route("/accounts/{account}/connections/{tenant}", get(show))
        .route(
            "/accounts/{account}/connections/{tenant}/reconnect",
            post(reconnect),
        )
        .route(
            "/accounts/{account}/connections/{tenant}/disconnect",
            post(disconnect),
        )
        .route(&callback, get(callback_route))
        .with_state(state)
}

/// An error of an API route. The one conversion into an HTTP response: a stable code, the plain
/// message and a request id; the details are logged once, here.
#[derive(Debug)]
pub enum ApiError {
    Connect(ConnectError),
    Body(BodyError),
    /// A consent URL could not be built from the configuration.
    Config(url::ParseError),
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        ApiError::Connect(e)
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::Body(e)
    }
}

/// The HTTP status of a connect error.
pub fn status_of(e: &ConnectError) -> StatusCode {
    match e {
        ConnectError::InvalidRequest(_)
        | ConnectError::StateUnknown
        | ConnectError::StateExpired
        | ConnectError::Denied(_)
        | ConnectError::MissingTenant => StatusCode::BAD_REQUEST,
        ConnectError::WrongTenant { .. } | ConnectError::AlreadyConnected { .. } => {
            StatusCode::CONFLICT
        }
        ConnectError::NotFound => StatusCode::NOT_FOUND,
        ConnectError::Directory(
            DirectoryError::InsufficientPrivileges { .. }
            | DirectoryError::NeedsReauthorization { .. },
        ) => StatusCode::FORBIDDEN,
        ConnectError::Directory(d) if d.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        ConnectError::Directory(_) => StatusCode::BAD_GATEWAY,
        e if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Log a connect error once, at the level its status deserves.
fn log_connect_error(e: &ConnectError, status: StatusCode, request_id: &str, route: &str) {
    if status.is_server_error() {
        error!(route, request_id, code = e.code(), error = %e, "connect request failed");
    } else {
        warn!(route, request_id, code = e.code(), error = %e, "connect request refused");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = request_id();
        let (status, code, message) = match &self {
            ApiError::Connect(e) => {
                let status = status_of(e);
                log_connect_error(e, status, &request_id, "api");
                (status, e.code(), e.message())
            }
            ApiError::Body(e) => {
                warn!(request_id, error = %e, "connect request body refused");
                (
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("The request body is not valid: {e}."),
                )
            }
            ApiError::Config(e) => {
                error!(request_id, error = %e, "consent URL could not be built");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side. Try again later.".to_owned(),
                )
            }
        };
        (
            status,
            axum::Json(json!({"error": code, "message": message, "request_id": request_id})),
        )
            .into_response()
    }
}

fn account(raw: &str) -> Result<AccountId, ApiError> {
    Ok(validate_account_id(raw)?)
}

fn tenant(raw: &str) -> Result<TenantId, ApiError> {
    // Not a tenant id: nobody can have such a connection.
    parse_tenant_id(raw).ok_or(ApiError::Connect(ConnectError::NotFound))
}

/// The answer to a start or reconnect: where to send the admin, and until when it works.
#[derive(Debug, Serialize)]
pub struct ConsentLink {
    pub consent_url: String,
    pub expires_at: DateTime<Utc>,
}

fn link(config: &ConnectConfig, pending: &PendingConsent) -> Result<ConsentLink, ApiError> {
    let url = config.consent_url(pending).map_err(ApiError::Config)?;
    Ok(ConsentLink {
        consent_url: url.to_string(),
        expires_at: pending.expires_at,
    })
}

async fn start(
    State(app): State<AppState>,
    Path(raw_account): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<ConsentLink>), ApiError> {
    let account = account(&raw_account)?;
    let body = parse_start_body(&body)?;
    let pending = connect::start_consent(
        &app.deps,
        &account,
        &body.label,
        body.expected_tenant_id,
        app.config.state_ttl,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(link(&app.config, &pending)?),
    ))
}

async fn reconnect(
    State(app): State<AppState>,
    Path((raw_account, raw_tenant)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<ConsentLink>), ApiError> {
    let account = account(&raw_account)?;
    let tenant = tenant(&raw_tenant)?;
    let body = parse_reconnect_body(&body)?;
    let pending = connect::start_reconnect(
        &app.deps,
        &account,
        &tenant,
        body.label.as_deref(),
        app.config.state_ttl,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(link(&app.config, &pending)?),
    ))
}

/// The connection as the host product sees it (no secret is ever part of a connection).
#[derive(Debug, Serialize)]
pub struct ConnectionList {
    pub connections: Vec<Connection>,
}

async fn list(
    State(app): State<AppState>,
    Path(raw_account): Path<String>,
) -> Result<axum::Json<ConnectionList>, ApiError> {
    let account = account(&raw_account)?;
    let connections =
        connect::list_account_connections(app.deps.connections.as_ref(), &account).await?;
    Ok(axum::Json(ConnectionList { connections }))
}

async fn show(
    State(app): State<AppState>,
    Path((raw_account, raw_tenant)): Path<(String, String)>,
) -> Result<axum::Json<Connection>, ApiError> {
    let account = account(&raw_account)?;
    let tenant = tenant(&raw_tenant)?;
    let c = connect::account_connection(app.deps.connections.as_ref(), &account, &tenant).await?;
    Ok(axum::Json(c))
}

async fn disconnect(
    State(app): State<AppState>,
    Path((raw_account, raw_tenant)): Path<(String, String)>,
) -> Result<axum::Json<Connection>, ApiError> {
    let account = account(&raw_account)?;
    let tenant = tenant(&raw_tenant)?;
    let c = connect::disconnect(&app.deps, &account, &tenant).await?;
    Ok(axum::Json(c))
}

/// The consent callback: always an HTML page for the admin's browser.
async fn callback_route(State(app): State<AppState>, uri: Uri) -> Response {
    let return_url = app.config.return_url.as_ref();
    let callback = match parse_callback_query(uri.query()) {
        Ok(c) => c,
        Err(e) => {
            let request_id = request_id();
            warn!(request_id, error = %e, "consent callback not understood");
            let message = match e {
                CallbackError::Unrecognized => {
                    "This page expects the answer of Microsoft's consent page, and this is not one. Start the connection again from the app."
                }
                _ => {
                    "The answer of Microsoft's consent page could not be read, so nothing was connected. Start the connection again from the app."
                }
            };
            return page(
                StatusCode::BAD_REQUEST,
                "Not connected",
                message,
                Some(&format!("Request id: {request_id}")),
                return_url,
            );
        }
    };
    match connect::complete_consent(&app.deps, callback).await {
        Ok(c) => {
            info!(tenant = %c.tenant_id, account = %c.account_id, "consent callback connected a directory");
            let name = c.tenant_name.as_deref().unwrap_or(c.tenant_id.as_str());
            page(
                StatusCode::OK,
                "Directory connected",
                &format!(
                    "{name} is connected as \"{}\". The first sync starts with the next schedule; you can close this page.",
                    c.label
                ),
                Some(&format!("Directory id: {}", c.tenant_id)),
                return_url,
            )
        }
        Err(e) => {
            let request_id = request_id();
            let status = status_of(&e);
            log_connect_error(&e, status, &request_id, "callback");
            page(
                status,
                "Not connected",
                &e.message(),
                Some(&format!("Error: {} · Request id: {request_id}", e.code())),
                return_url,
            )
        }
    }
}
