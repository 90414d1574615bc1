//! The admin API (`/v1`): what the host product's backend (and an embedded console) uses to
//! manage an account's directory connections: connections, settings, preview and import, sync
//! now, the activity log, held runs, the mirror's users and groups, the host product's users and
//! the sign-in lookup, the write half (actions with their approvals, workflows), and the HR
//! webhook endpoints with their delivery logs and review lists, and the outbound webhook
//! endpoints (where the change events are sent) with theirs.
//! docs/api.md is the reader's guide; docs/openapi.json the contract.
//!
//! - **One table** ([`route_table`]) lists every route with its method, path and whether it is
//!   public; the router is built from it and the tests check the OpenAPI document against it, so
//!   neither can list a route the other lacks.
//! - **Authentication** ([`auth`]): every route but the health check and the document runs behind
//!   the router's [`auth::Authenticator`]; a caller limited to one account gets 404 for any other.
//! - **Lists** take an opaque `cursor` and a `limit` (1 to [`params::MAX_LIMIT`]); a bad one is a
//!   400 naming the parameter.
//! - **Settings** carry their version as the `ETag`; `PUT` needs `If-Match` (412 when stale),
//!   `PATCH` takes a JSON Merge Patch.
//! - State-changing routes need a JSON content type (`application/json`, or
//!   `application/merge-patch+json` for `PATCH`): a page on another site cannot send one without
//!   a CORS preflight, which this API never grants.
//!
//! - **Actions and workflow starts** need an `Idempotency-Key` header: the same key answers with
//!   the same result and never acts twice; the same key with another request is a 422.
//!
//! The router is generic over the core's ports: SQLite locally, DynamoDB in AWS.

pub(crate) mod action_views;
pub(crate) mod actions;
pub mod auth;
pub mod hr;
pub mod outbound;
pub mod params;
pub(crate) mod routes;
pub mod views;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use entra_sync_core::services::ConnectDeps;
use entra_sync_core::services::ProjectDeps;
use entra_sync_core::services::actions::ActionDeps;
use entra_sync_core::services::sync_now::SyncNowDeps;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;

use crate::HttpError;
use crate::connect::ConnectConfig;

/// Largest request body of an API route.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the routes use: the core services' ports, the connect configuration, and who may call.
#[derive(Clone)]
pub struct ApiState {
    pub connect: ConnectDeps,
    pub connect_config: Arc<ConnectConfig>,
    pub project: ProjectDeps,
    pub sync: SyncNowDeps,
    /// The write half: actions, approvals, workflows.
    pub actions: ActionDeps,
    /// HR webhook endpoints and the review list.
    pub hr: hr::HrApi,
    /// Outbound webhook endpoints and their delivery logs; `None` where no endpoint store is
    /// wired (the routes then answer 501).
    pub outbound: Option<outbound::OutboundApi>,
    pub auth: Arc<dyn auth::Authenticator>,
    /// Console sessions: signed and checked here, their sign-in tickets minted by the API.
    pub console: Arc<crate::console::ConsoleSessions>,
}

/// One route of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    /// Public routes need no credentials (the health check and the document).
    pub public: bool,
}

impl RouteSpec {
    pub fn method(&self) -> Method {
        Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET)
    }
}

const fn public(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        public: true,
    }
}

const fn private(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        public: false,
    }
}

/// Every route of the API with its handler: the one table the router, the OpenAPI check and
/// the authentication tests are built from.
pub fn route_table() -> Vec<(RouteSpec, MethodRouter<ApiState>)> {
    use routes::*;
    vec![
        (public("GET", "/v1/health"), get(health)),
        (public("GET", "/v1/openapi.json"), get(openapi)),
        (
            private("GET", "/v1/accounts/{account}/connections"),
            get(list_connections),
        ),
        (
            private("POST", "/v1/accounts/{account}/connections"),
            post(start_connection),
        ),
        (
            private("GET", "/v1/accounts/{account}/connections/{tenant}"),
            get(show_connection),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/reconnect",
            ),
            post(reconnect),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/disconnect",
            ),
            post(disconnect),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/connections/{tenant}/settings",
            ),
            get(get_settings),
        ),
        (
            private(
                "PUT",
                "/v1/accounts/{account}/connections/{tenant}/settings",
            ),
            put(put_settings),
        ),
        (
            private(
                "PATCH",
                "/v1/accounts/{account}/connections/{tenant}/settings",
            ),
            patch(patch_settings),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/settings/validate",
            ),
            post(validate_settings),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/preview",
            ),
            post(preview_import),
        ),
        (
            private("POST", "/v1/accounts/{account}/connections/{tenant}/import"),
            post(run_import),
        ),
        (
            private("POST", "/v1/accounts/{account}/connections/{tenant}/sync"),
            post(sync_now),
        ),
        (
            private("GET", "/v1/accounts/{account}/connections/{tenant}/runs"),
            get(list_runs),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/connections/{tenant}/runs/{run}",
            ),
            get(show_run),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/runs/{run}/confirm",
            ),
            post(confirm_run),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/runs/{run}/reject",
            ),
            post(reject_run),
        ),
        (
            private("GET", "/v1/accounts/{account}/connections/{tenant}/users"),
            get(list_directory_users),
        ),
        (
            private("GET", "/v1/accounts/{account}/connections/{tenant}/groups"),
            get(list_groups),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/actions",
            ),
            post(actions::submit),
        ),
        (
            private("GET", "/v1/accounts/{account}/connections/{tenant}/actions"),
            get(actions::list),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/connections/{tenant}/actions/{action}",
            ),
            get(actions::show),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/actions/{action}/approve",
            ),
            post(actions::approve),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/actions/{action}/reject",
            ),
            post(actions::reject),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/actions/{action}/cancel",
            ),
            post(actions::cancel),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/actions/{action}/retry",
            ),
            post(actions::retry),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/actions/{action}/run",
            ),
            post(actions::run),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/workflows",
            ),
            post(actions::start),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/connections/{tenant}/workflows",
            ),
            get(actions::workflows),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/connections/{tenant}/workflows/{workflow}",
            ),
            get(actions::workflow),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/workflows/{workflow}/cancel",
            ),
            post(actions::cancel_wf),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/workflows/{workflow}/retry",
            ),
            post(actions::retry_wf),
        ),
        (
            private("GET", "/v1/accounts/{account}/hr-endpoints"),
            get(hr::list),
        ),
        (
            private("POST", "/v1/accounts/{account}/hr-endpoints"),
            post(hr::create),
        ),
        (
            private("GET", "/v1/accounts/{account}/hr-endpoints/{source}"),
            get(hr::show),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/hr-endpoints/{source}/rotate",
            ),
            post(hr::rotate),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/hr-endpoints/{source}/disable",
            ),
            post(hr::disable),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/hr-endpoints/{source}/enable",
            ),
            post(hr::enable),
        ),
        (
            private(
                "PUT",
                "/v1/accounts/{account}/hr-endpoints/{source}/api-credential",
            ),
            put(hr::api_credential),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/hr-endpoints/{source}/deliveries",
            ),
            get(hr::deliveries),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/connections/{tenant}/hr-reviews",
            ),
            get(hr::reviews),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/hr-reviews/{review}/resolve",
            ),
            post(hr::resolve),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/connections/{tenant}/hr-reviews/{review}/dismiss",
            ),
            post(hr::dismiss),
        ),
        (
            private("GET", "/v1/accounts/{account}/webhook-endpoints"),
            get(outbound::list),
        ),
        (
            private("POST", "/v1/accounts/{account}/webhook-endpoints"),
            post(outbound::create),
        ),
        (
            private("GET", "/v1/accounts/{account}/webhook-endpoints/{endpoint}"),
            get(outbound::show),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/webhook-endpoints/{endpoint}/rotate",
            ),
            post(outbound::rotate),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/webhook-endpoints/{endpoint}/disable",
            ),
            post(outbound::disable),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/webhook-endpoints/{endpoint}/enable",
            ),
            post(outbound::enable),
        ),
        (
            private(
                "GET",
                "/v1/accounts/{account}/webhook-endpoints/{endpoint}/deliveries",
            ),
            get(outbound::deliveries),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/webhook-endpoints/{endpoint}/deliveries/{delivery}/redeliver",
            ),
            post(outbound::redeliver_one),
        ),
        (
            private("GET", "/v1/accounts/{account}/host-users"),
            get(list_host_users_route),
        ),
        (
            private(
                "POST",
                "/v1/accounts/{account}/host-users/{local_id}/activate",
            ),
            post(activate),
        ),
        (
            private("DELETE", "/v1/accounts/{account}/host-users/{local_id}"),
            delete(delete_host_user),
        ),
        (
            private("POST", "/v1/accounts/{account}/sign-in-lookup"),
            post(sign_in),
        ),
        (
            private("POST", "/v1/accounts/{account}/console-sessions"),
            post(routes::create_console_session),
        ),
    ]
}

/// The routes of [`route_table`] without their handlers.
pub fn route_specs() -> Vec<RouteSpec> {
    route_table().into_iter().map(|(spec, _)| spec).collect()
}

/// Every POST, PUT and PATCH must say its body is JSON (`application/json`, or
/// `application/merge-patch+json`), with or without a body; otherwise 415. (A DELETE has no
/// body, and a page on another site cannot send one without a CORS preflight either.)
async fn require_json(req: Request, next: Next) -> Response {
    let reads_only = !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|e| {
            let e = e.trim();
            e.eq_ignore_ascii_case("application/json")
                || e.eq_ignore_ascii_case("application/merge-patch+json")
        });
    if reads_only || json {
        return next.run(req).await;
    }
    HttpError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .with_detail("not a JSON content type")
        .into_response()
}

/// The API's routes, to merge with other routers before [`crate::app`].
pub fn routes(state: ApiState) -> Router {
    let mut open = Router::new();
    let mut guarded = Router::new();
    for (spec, handler) in route_table() {
        match spec.public {
            true => open = open.route(spec.path, handler),
            false => guarded = guarded.route(spec.path, handler),
        }
    }
    let guarded = guarded
        .route_layer(middleware::from_fn(require_json))
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ))
        .route_layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    open.merge(guarded).with_state(state)
}

/// The API's routes served through the stack ([`crate::app`]): what the api function serves.
pub fn router(state: ApiState) -> Router {
    crate::app(routes(state))
}

/// The OpenAPI 3.1 document of the API, derived from the route and answer types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "entra-sync admin API",
        version = "1",
        description = "Manage an account's Microsoft Entra ID directory connections: settings, imports, syncs, the activity log, held runs, the mirrored directory, the host product's users, actions on the directory with their approvals and workflows, and HR webhook endpoints. See docs/api.md."
    ),
    paths(
        routes::health,
        routes::openapi,
        routes::list_connections,
        routes::start_connection,
        routes::show_connection,
        routes::reconnect,
        routes::disconnect,
        routes::get_settings,
        routes::put_settings,
        routes::patch_settings,
        routes::validate_settings,
        routes::preview_import,
        routes::run_import,
        routes::sync_now,
        routes::list_runs,
        routes::show_run,
        routes::confirm_run,
        routes::reject_run,
        routes::list_directory_users,
        routes::list_groups,
        actions::submit,
        actions::list,
        actions::show,
        actions::approve,
        actions::reject,
        actions::cancel,
        actions::retry,
        actions::run,
        actions::start,
        actions::workflows,
        actions::workflow,
        actions::cancel_wf,
        actions::retry_wf,
        hr::list,
        hr::create,
        hr::show,
        hr::rotate,
        hr::disable,
        hr::enable,
        hr::api_credential,
        hr::deliveries,
        hr::reviews,
        hr::resolve,
        hr::dismiss,
        outbound::list,
        outbound::create,
        outbound::show,
        outbound::rotate,
        outbound::disable,
        outbound::enable,
        outbound::deliveries,
        outbound::redeliver_one,
        routes::list_host_users_route,
        routes::activate,
        routes::delete_host_user,
        routes::sign_in,
        routes::create_console_session,
    ),
    modifiers(&Security),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Locally, the API key `entra-sync serve` printed. In AWS, API Gateway authorizes the caller (IAM or a JWT) before the API sees the request.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served and committed (pretty JSON, with a final newline).
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned());
        text.push('\n');
        text
    })
}

#[cfg(test)]
mod tests;
