//! The connect routes: translate HTTP into the core's connect services, and their errors into
//! [`HttpError`]s (JSON for the host product's API; an HTML page for the admin's browser, with
//! the error attached for the log line).
//!
//! | Route | What |
//! |---|---|
//! | `POST /accounts/{account}/connections/start` | `{"label", "expected_tenant_id"?}` -> `{"consent_url", "expires_at"}` |
//! | `GET /accounts/{account}/connections` | the account's connections |
//! | `GET /accounts/{account}/connections/{tenant}` | one connection |
//! | `POST /accounts/{account}/connections/{tenant}/reconnect` | `{"label"?}` -> consent URL for that tenant |
//! | `POST /accounts/{account}/connections/{tenant}/disconnect` | disconnect (users are kept) |
//! | `GET {callback path}` | the consent callback (HTML) |
//!
//! The account routes are for the host product's backend (API Gateway authorizes the caller);
//! the account in the path scopes every read and write, and another account's connection is
//! answered as 404. Their POSTs need `Content-Type: application/json` (even without a body) and
//! take at most [`MAX_BODY_BYTES`]. The callback is public; its `state` is the proof.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use chrono::{DateTime, Utc};
use entra_sync_core::directory_write::DirectoryWriter;
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{AccountId, Connection, TenantId};
use entra_sync_core::ports::PendingConsent;
use entra_sync_core::services::actions::record_granted_permissions;
use entra_sync_core::services::connect::{
    self, ConnectDeps, ConnectError, parse_tenant_id, validate_account_id,
};
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::{info, warn};
use url::Url;

use super::config::{ConnectConfig, RedirectError};
use super::parse::{
    BodyError, CallbackError, MAX_BODY_BYTES, parse_callback_query, parse_reconnect_body,
    parse_start_body,
};
use crate::html::page;
use crate::json::require_json;
use crate::{HttpError, RequestDomain, RequestId};

/// Reads what a freshly connected directory granted (the `roles` claim of a fresh token), so
/// the consent callback records it on the connection and the first action needs no extra
/// token. Optional: a host that can write to directories adds it as an [`Extension`] layer;
/// without it, the first action that needs a permission reads and records the grant.
#[derive(Clone)]
pub struct PermissionReader(pub Arc<dyn DirectoryWriter>);

/// What every route shares: the ports and the configuration.
#[derive(Clone)]
pub struct ConnectState {
    pub deps: ConnectDeps,
    pub config: Arc<ConnectConfig>,
}

/// The connect routes, to merge with other routers before [`crate::app`].
pub fn routes(state: ConnectState) -> Router {
    let callback = state.config.callback_path().to_owned();
    let api = Router::new()
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
        .route_layer(middleware::from_fn(require_json))
        .route_layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    api.route(&callback, get(callback_route)).with_state(state)
}

/// The connect routes served through the stack ([`crate::app`]): what the connect function
/// serves.
pub fn router(state: ConnectState) -> Router {
    crate::app(routes(state))
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

impl From<ConnectError> for HttpError {
    fn from(e: ConnectError) -> Self {
        HttpError::new(status_of(&e), e.code(), e.message()).with_detail(&e)
    }
}

impl From<BodyError> for HttpError {
    fn from(e: BodyError) -> Self {
        let error = match &e {
            BodyError::TooLarge => HttpError::from_status(StatusCode::PAYLOAD_TOO_LARGE),
            e => HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("The request body is not valid: {e}."),
            ),
        };
        error.with_detail(e)
    }
}

impl From<RedirectError> for HttpError {
    fn from(e: RedirectError) -> Self {
        HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR).with_detail(e)
    }
}

fn account(raw: &str) -> Result<AccountId, HttpError> {
    Ok(validate_account_id(raw)?)
}

fn tenant(raw: &str) -> Result<TenantId, HttpError> {
    // Not a tenant id: nobody can have such a connection.
    parse_tenant_id(raw).ok_or_else(|| ConnectError::NotFound.into())
}

/// The answer to a start or reconnect: where to send the admin, and until when it works.
#[derive(Debug, Serialize)]
pub struct ConsentLink {
    pub consent_url: String,
    pub expires_at: DateTime<Utc>,
}

fn link(
    config: &ConnectConfig,
    pending: &PendingConsent,
    redirect_uri: &Url,
) -> Result<ConsentLink, HttpError> {
    let url = config.consent_url(pending, redirect_uri).map_err(|e| {
        HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail(format_args!("consent URL could not be built: {e}"))
    })?;
    Ok(ConsentLink {
        consent_url: url.to_string(),
        expires_at: pending.expires_at,
    })
}

async fn start(
    State(app): State<ConnectState>,
    domain: Option<Extension<RequestDomain>>,
    Path(raw_account): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<ConsentLink>), HttpError> {
    let account = account(&raw_account)?;
    let body = parse_start_body(&body)?;
    // Before a state is stored: a request without a callback URL changes nothing.
    let redirect_uri = app.config.redirect_uri_for(domain.as_deref())?;
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
        axum::Json(link(&app.config, &pending, &redirect_uri)?),
    ))
}

async fn reconnect(
    State(app): State<ConnectState>,
    domain: Option<Extension<RequestDomain>>,
    Path((raw_account, raw_tenant)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<ConsentLink>), HttpError> {
    let account = account(&raw_account)?;
    let tenant = tenant(&raw_tenant)?;
    let body = parse_reconnect_body(&body)?;
    let redirect_uri = app.config.redirect_uri_for(domain.as_deref())?;
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
        axum::Json(link(&app.config, &pending, &redirect_uri)?),
    ))
}

/// The connection as the host product sees it (no secret is ever part of a connection).
#[derive(Debug, Serialize)]
pub struct ConnectionList {
    pub connections: Vec<Connection>,
}

async fn list(
    State(app): State<ConnectState>,
    Path(raw_account): Path<String>,
) -> Result<axum::Json<ConnectionList>, HttpError> {
    let account = account(&raw_account)?;
    let connections =
        connect::list_account_connections(app.deps.connections.as_ref(), &account).await?;
    Ok(axum::Json(ConnectionList { connections }))
}

async fn show(
    State(app): State<ConnectState>,
    Path((raw_account, raw_tenant)): Path<(String, String)>,
) -> Result<axum::Json<Connection>, HttpError> {
    let account = account(&raw_account)?;
    let tenant = tenant(&raw_tenant)?;
    let c = connect::account_connection(app.deps.connections.as_ref(), &account, &tenant).await?;
    Ok(axum::Json(c))
}

async fn disconnect(
    State(app): State<ConnectState>,
    Path((raw_account, raw_tenant)): Path<(String, String)>,
) -> Result<axum::Json<Connection>, HttpError> {
    let account = account(&raw_account)?;
    let tenant = tenant(&raw_tenant)?;
    let c = connect::disconnect(&app.deps, &account, &tenant).await?;
    Ok(axum::Json(c))
}

/// Record what the consent granted (best effort: the connection stands; the first action that
/// needs a permission reads it again).
async fn record_grant(app: &ConnectState, reader: &PermissionReader, tenant: &TenantId) {
    match reader.0.granted_permissions(tenant).await {
        Ok(granted) => {
            if let Err(e) =
                record_granted_permissions(app.deps.connections.as_ref(), tenant, &granted).await
            {
                warn!(tenant = %tenant, error = %e, "granted permissions not recorded at consent");
            }
        }
        Err(e) => {
            warn!(tenant = %tenant, error = %e, "granted permissions not read at consent");
        }
    }
}

/// The consent callback: always an HTML page for the admin's browser; a failure is attached to
/// the page for the request's log line.
async fn callback_route(
    State(app): State<ConnectState>,
    reader: Option<Extension<PermissionReader>>,
    request_id: RequestId,
    uri: Uri,
) -> Response {
    let return_url = app.config.return_url.as_ref();
    let callback = match parse_callback_query(uri.query()) {
        Ok(c) => c,
        Err(e) => {
            let message = match e {
                CallbackError::Unrecognized => {
                    "This page expects the answer of Microsoft's consent page, and this is not one. Start the connection again from the app."
                }
                _ => {
                    "The answer of Microsoft's consent page could not be read, so nothing was connected. Start the connection again from the app."
                }
            };
            let shown = page(
                StatusCode::BAD_REQUEST,
                "Not connected",
                message,
                Some(&format!("Request id: {request_id}")),
                return_url,
            );
            return HttpError::new(StatusCode::BAD_REQUEST, "invalid_callback", message)
                .with_detail(format_args!("consent callback not understood: {e}"))
                .on_page(shown);
        }
    };
    match connect::complete_consent(&app.deps, callback).await {
        Ok(c) => {
            info!(tenant = %c.tenant_id, account = %c.account_id, "consent callback connected a directory");
            if let Some(Extension(reader)) = reader {
                record_grant(&app, &reader, &c.tenant_id).await;
            }
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
            let error = HttpError::from(e);
            let shown = page(
                error.status(),
                "Not connected",
                error.message(),
                Some(&format!(
                    "Error: {} · Request id: {request_id}",
                    error.code()
                )),
                return_url,
            );
            error.on_page(shown)
        }
    }
}
