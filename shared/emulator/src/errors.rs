//! Response builders: Graph error envelopes, Entra (login) error bodies, JSON responses.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Content type Graph uses for JSON.
pub(crate) const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// Content type of the login endpoints.
pub(crate) const LOGIN_JSON: &str = "application/json; charset=utf-8";

/// Per-request facts every response needs.
#[derive(Clone, Debug)]
pub(crate) struct ReqCtx {
    pub(crate) request_id: String,
    pub(crate) client_request_id: String,
    pub(crate) now: DateTime<Utc>,
}

/// The tenant a response was for (read back by the logging middleware).
#[derive(Clone, Debug)]
pub(crate) struct TenantTag(pub(crate) String);

/// The kind of Graph write a response answered (read back by the counters).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteTag(pub(crate) crate::counters::WriteOp);

/// Marks a response produced by an injected fault.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Faulted;

/// A JSON response with the given content type.
pub(crate) fn json_response(
    status: StatusCode,
    body: &Value,
    content_type: &'static str,
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A Graph JSON response.
pub(crate) fn graph_json(status: StatusCode, body: &Value) -> Response {
    json_response(status, body, GRAPH_JSON)
}

/// A Graph error: `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
pub(crate) fn graph_error(ctx: &ReqCtx, status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": ctx.now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": ctx.request_id,
                "client-request-id": ctx.client_request_id,
            }
        }
    });
    graph_json(status, &body)
}

/// Adds a header (ignoring values that are not valid header text).
pub(crate) fn with_header(mut resp: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
    resp
}

/// 429 with `Retry-After` and the throttle-scope headers.
pub(crate) fn throttled(ctx: &ReqCtx, retry_after: u32, scope: &str) -> Response {
    let resp = graph_error(
        ctx,
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Too many requests.",
    );
    let resp = with_header(resp, "retry-after", &retry_after.to_string());
    let resp = with_header(resp, "x-ms-throttle-scope", scope);
    with_header(
        resp,
        "x-ms-throttle-information",
        "ResourceUnitLimitExceeded",
    )
}

/// An Entra token-endpoint error body: `error`, and an `error_description` that starts with the
/// `AADSTSnnnn` code.
pub(crate) fn login_error(
    ctx: &ReqCtx,
    status: StatusCode,
    error: &str,
    code: u32,
    description: &str,
) -> Response {
    let ts = ctx.now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let full = format!(
        "AADSTS{code}: {description}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {ts}",
        ctx.request_id, ctx.client_request_id
    );
    let body = json!({
        "error": error,
        "error_description": full,
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": ctx.request_id,
        "correlation_id": ctx.client_request_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    json_response(status, &body, LOGIN_JSON)
}
