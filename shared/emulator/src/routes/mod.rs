//! HTTP surface: the router, the middleware every request goes through (ids, latency,
//! faults, counters, log) and small request helpers.

// Handlers return early with a ready `Response` as the error of their helpers; boxing it
// would only add noise.
#![allow(clippy::result_large_err)]

pub(crate) mod graph;
pub(crate) mod lists;
pub(crate) mod login;
pub(crate) mod writes;

use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::counters::{RequestRecord, Route};
use crate::errors::{
    Faulted, ReqCtx, TenantTag, WriteTag, graph_error, login_error, throttled, with_header,
};
use crate::faults::{FaultKind, FaultProbe};
use crate::model::{Kind, Select};
use crate::server::ConnHandle;
use crate::state::Inner;
use crate::tokens::DeltaToken;

/// Builds the emulator's router.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/login/{tenant}/oauth2/v2.0/token", post(login::token))
        .route("/login/{tenant}/adminconsent", get(login::admin_consent))
        .route(
            "/login/{tenant}/v2.0/adminconsent",
            get(login::admin_consent),
        )
        .fallback(graph::dispatch)
        .layer(middleware::from_fn_with_state(inner.clone(), around))
        .with_state(inner)
}

/// Query parameters with OData names normalised: lower case, leading `$` removed.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| {
                        let k = k.trim_start_matches('$').to_ascii_lowercase();
                        (k, v.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// Last value of a parameter.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Non-empty value of a parameter.
    pub(crate) fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// The query string again, without `$skiptoken`, for list nextLinks.
    pub(crate) fn without_skiptoken(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.pairs {
            if k == "skiptoken" {
                continue;
            }
            if !out.is_empty() {
                out.push('&');
            }
            out.push('$');
            out.push_str(k);
            out.push('=');
            out.push_str(&encode_query_value(v));
        }
        out
    }
}

/// Percent-encodes a query value, keeping the characters OData links usually show verbatim.
pub(crate) fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b','
            | b'\''
            | b'('
            | b')'
            | b':'
            | b'@'
            | b'$' => out.push(char::from(b)),
            b' ' => out.push_str("%20"),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `http://host` as the client addressed us (Host header), else the bound address.
pub(crate) fn base_url(headers: &HeaderMap, inner: &Inner) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| inner.base_url(), |h| format!("http://{h}"))
}

/// The initial delta URL for a kind (and the select a token carried), for 410 `Location`.
pub(crate) fn initial_delta_url(base: &str, kind: Kind, sel: Option<Select>) -> String {
    let mut url = format!("{base}/v1.0/{}/delta", kind.collection());
    if let Some(sel) = sel.filter(|s| s.explicit) {
        url.push_str("?$select=");
        url.push_str(&sel.names(kind));
    }
    url
}

/// The middleware around every request.
async fn around(State(inner): State<Arc<Inner>>, mut req: Request, next: Next) -> Response {
    let arrived = inner.clock.since_start();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let route = Route::classify(&method, &path);
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_string);
    let ctx = ReqCtx {
        request_id: request_id.clone(),
        client_request_id: client_request_id.clone(),
        now: inner.clock.wall(),
    };
    req.extensions_mut().insert(ctx.clone());
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());
    let base = base_url(req.headers(), &inner);
    let query = Query::parse(req.uri().query());

    let latency = inner.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let is_delta = matches!(route, Route::UsersDelta | Route::GroupsDelta);
    let token = query
        .non_empty("deltatoken")
        .or_else(|| query.non_empty("skiptoken"));
    let probe = FaultProbe {
        route,
        path: &path,
        has_delta_token: is_delta && token.is_some(),
    };
    let fault = inner.faults.take(&probe);
    let faulted = fault.is_some();
    let mut resp = match fault {
        None => next.run(req).await,
        Some(kind) => {
            let resp = fault_response(
                &inner,
                &ctx,
                route,
                kind,
                token,
                &base,
                conn.as_ref(),
                next,
                req,
            )
            .await;
            let mut resp = resp;
            resp.extensions_mut().insert(Faulted);
            resp
        }
    };

    let headers = resp.headers_mut();
    if let Ok(v) = request_id.parse() {
        headers.insert("request-id", v);
    }
    if let Ok(v) = client_request_id.parse() {
        headers.insert("client-request-id", v);
    }
    headers.insert(
        "x-ms-ags-diagnostic",
        axum::http::HeaderValue::from_static(
            "{\"ServerInfo\":{\"DataCenter\":\"Emulator\",\"Slice\":\"E\",\"Ring\":\"0\",\"ScaleUnit\":\"000\",\"RoleInstance\":\"EMU\"}}",
        ),
    );
    let status = resp.status().as_u16();
    let tenant = resp.extensions().get::<TenantTag>().map(|t| t.0.clone());
    let write_op = resp.extensions().get::<WriteTag>().map(|t| t.0);
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let faulted = faulted || resp.extensions().get::<Faulted>().is_some();
    inner
        .counters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(route, status, tenant.as_deref(), faulted, write_op);
    inner
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(RequestRecord {
            at: arrived,
            method: method.to_string(),
            path_and_query,
            status,
            route,
            tenant,
            request_id,
            retry_after,
        });
    resp
}

/// The response an injected fault produces.
#[allow(clippy::too_many_arguments)]
async fn fault_response(
    inner: &Inner,
    ctx: &ReqCtx,
    route: Route,
    kind: FaultKind,
    token: Option<&str>,
    base: &str,
    conn: Option<&ConnHandle>,
    next: Next,
    req: Request,
) -> Response {
    let login = matches!(route, Route::Token | Route::AdminConsent);
    match kind {
        FaultKind::Latency(d) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        FaultKind::Throttle { retry_after_secs } => {
            if login {
                let resp = login_error(
                    ctx,
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    50196,
                    "The server terminated an operation because it encountered a client request loop.",
                );
                with_header(resp, "retry-after", &retry_after_secs.to_string())
            } else {
                throttled(
                    ctx,
                    retry_after_secs,
                    "Tenant_Application/ReadWrite/emulator",
                )
            }
        }
        FaultKind::Unavailable {
            status,
            retry_after_secs,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let resp = if login {
                login_error(
                    ctx,
                    status,
                    "temporarily_unavailable",
                    90033,
                    "A transient error has occurred. Please try again.",
                )
            } else {
                let code = match status.as_u16() {
                    504 => "gatewayTimeout",
                    500 => "generalException",
                    _ => "serviceNotAvailable",
                };
                graph_error(
                    ctx,
                    status,
                    code,
                    "The service is temporarily unavailable. Please retry later.",
                )
            };
            match retry_after_secs {
                Some(s) => with_header(resp, "retry-after", &s.to_string()),
                None => resp,
            }
        }
        FaultKind::DropConnection => {
            if let Some(c) = conn {
                c.kill();
            }
            graph_error(
                ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "connection dropped",
            )
        }
        FaultKind::ExpireDeltaTokens => sync_state_not_found(ctx),
        FaultKind::ResyncRequired => graph_error(
            ctx,
            StatusCode::BAD_REQUEST,
            "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
        ),
        FaultKind::ResyncGone => {
            let kind = if route == Route::GroupsDelta {
                Kind::Group
            } else {
                Kind::User
            };
            let sel = token
                .and_then(|t| inner.codec.decode::<DeltaToken>(t))
                .map(|t| t.select());
            let location = initial_delta_url(base, kind, sel);
            let resp = graph_error(
                ctx,
                StatusCode::GONE,
                "resyncRequired",
                "The sync state is no longer valid; a full synchronization is required.",
            );
            with_header(resp, "location", &location)
        }
    }
}

/// 400 `syncStateNotFound` with the documented message.
pub(crate) fn sync_state_not_found(ctx: &ReqCtx) -> Response {
    graph_error(
        ctx,
        StatusCode::BAD_REQUEST,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}
