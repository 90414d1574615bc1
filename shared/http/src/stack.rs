//! The stack every router is served through: [`app`].
//!
//! From the outside in:
//!
//! 1. **Request id** ([`crate::request_id`]): the platform's, else a valid `x-request-id`, else
//!    new; copied into the response's `x-request-id` (tower-http `PropagateRequestIdLayer`).
//! 2. **Security headers** on every answer, unless the route set its own (tower-http
//!    `SetResponseHeaderLayer`): a Content-Security-Policy that allows no script at all and no
//!    framing, `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
//!    `Referrer-Policy: no-referrer`, `Cache-Control: no-store` (the pages and answers show
//!    consent links and connection state).
//! 3. **The answer and its log line** (`answer`): refuses a too long address (414) or too large
//!    headers (431) before the route runs; renders every [`HttpError`] and every error status the
//!    framework produced on its own into the one error body; writes one log line per request
//!    (method, route template, status, latency, request id; for an error its code and detail, at
//!    warn when refused and error when failed). Never the body, the query string or a header: the
//!    callback's query carries the single-use state, and headers may carry credentials.
//! 4. **Body limit** (tower-http `RequestBodyLimitLayer`, [`DEFAULT_MAX_BODY_BYTES`]; a router may
//!    set a smaller one on its routes): 413.
//! 5. **Panics** become a 500 (tower-http `CatchPanicLayer`) instead of a dropped connection.
//!
//! Unknown routes (404) and known routes with another method (405, with `Allow`) are answered by
//! fallbacks returning [`HttpError`].

use std::any::Any;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::{Instrument, Level, error, info, info_span, warn};

use crate::HttpError;
use crate::request_id::{self, RequestId};

/// Largest request body any route accepts unless its router sets less.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest path and query accepted (414 above). API Gateway has its own, smaller limits.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Largest sum of header names and values accepted (431 above).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// No script, no plugin, no framing, no base or form target elsewhere; inline style only (the
/// pages carry one small `<style>`).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

/// Serve `routes` (one router, or several merged): fallbacks and the layers described above.
/// Call it once, on the complete router: layers apply to the routes present when it is called.
pub fn app(routes: Router) -> Router {
    let headers = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let mut app = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(RequestBodyLimitLayer::new(DEFAULT_MAX_BODY_BYTES))
        .layer(middleware::from_fn(answer));
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    app.layer(PropagateRequestIdLayer::new(request_id::REQUEST_ID_HEADER))
        .layer(middleware::map_request(request_id::assign))
}

async fn not_found() -> HttpError {
    HttpError::from_status(StatusCode::NOT_FOUND).with_detail("no such route")
}

async fn method_not_allowed() -> HttpError {
    HttpError::from_status(StatusCode::METHOD_NOT_ALLOWED).with_detail("method not allowed")
}

fn panicked(_payload: Box<dyn Any + Send + 'static>) -> Response {
    // The panic's message may quote data; the log line says where (route, request id).
    HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
        .with_detail("the route panicked")
        .into_response()
}

/// Requests larger than the stack accepts, refused before the route runs.
fn oversized(req: &Request) -> Option<HttpError> {
    let uri = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(
            HttpError::from_status(StatusCode::URI_TOO_LONG)
                .with_detail(format_args!("address of {uri} bytes")),
        );
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    (headers > MAX_HEADER_BYTES).then(|| {
        HttpError::from_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            .with_detail(format_args!("headers of {headers} bytes"))
    })
}

/// Render the answer's error (if any) and write the request's one log line.
async fn answer(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(RequestId::random);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = info_span!("request", request_id = %id, method = %method, route = %route);
    let response = match oversized(&req) {
        Some(e) => e.into_response(),
        None => next.run(req).instrument(span.clone()).await,
    };
    let response = render(response, &id);
    let _entered = span.enter();
    let status = response.status().as_u16();
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (method, route, request_id) = (method.as_str(), route.as_str(), id.as_str());
    match response.extensions().get::<HttpError>() {
        None => info!(
            method,
            route, status, latency_ms, request_id, "request served"
        ),
        Some(e) => {
            let (code, error) = (e.code, e.detail.as_deref().unwrap_or(&e.message));
            if level_of(e) == Level::ERROR {
                error!(
                    method,
                    route, status, latency_ms, request_id, code, error, "request failed"
                );
            } else {
                warn!(
                    method,
                    route, status, latency_ms, request_id, code, error, "request refused"
                );
            }
        }
    }
    response
}

/// Refused (the caller's request, 4xx) is a warning; failed (ours or a dependency's, 5xx) an
/// error.
fn level_of(e: &HttpError) -> Level {
    if e.status.is_server_error() {
        Level::ERROR
    } else {
        Level::WARN
    }
}

/// The one rendering of an error: `{"error", "message", "request_id"}`. An error status the
/// framework answered by itself (a refused extractor, the body limit) gets the standard error of
/// its status; the framework's own text is dropped (it may quote the request). A page the route
/// rendered itself stays as it is.
fn render(response: Response, id: &RequestId) -> Response {
    let status = response.status();
    let error = match response.extensions().get::<HttpError>() {
        Some(e) if e.rendered => return response,
        Some(e) => e.clone(),
        None if status.is_client_error() || status.is_server_error() => {
            HttpError::from_status(status).with_detail(bare_detail(status))
        }
        None => return response,
    };
    let body = serde_json::json!({
        "error": error.code,
        "message": error.message,
        "request_id": id.as_str(),
    })
    .to_string();
    let (mut parts, _) = response.into_parts();
    parts.status = error.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.extensions.insert(error);
    Response::from_parts(parts, Body::from(body))
}

fn bare_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the body is larger than the route's limit",
        StatusCode::BAD_REQUEST => "the framework refused the request's path, query or body",
        _ => "answered by the framework without a route error",
    }
}
