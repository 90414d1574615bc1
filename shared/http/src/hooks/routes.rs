//! The webhook route's translation: HTTP request -> [`Incoming`], [`Answer`] -> HTTP answer.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use entra_sync_core::services::webhooks::{Incoming, ReceiveDeps, receive};
use entra_sync_core::webhooks::delivery::Answer;
use entra_sync_core::webhooks::verify::Headers;
use serde::Serialize;

use crate::{HttpError, RequestId};

/// The largest body the route reads. The stack refuses anything larger before the route runs
/// (413, in the one error format); the receive service is configured with the same limit, so
/// both answer alike.
pub const MAX_BODY_BYTES: usize = crate::stack::DEFAULT_MAX_BODY_BYTES;

/// What the route holds: the receive service's ports (read endpoints and secrets, write the
/// delivery log, send to the queue).
#[derive(Clone)]
pub struct HooksState {
    pub deps: ReceiveDeps,
}

impl HooksState {
    /// The state for `deps`, with the service's body limit no larger than the route's.
    pub fn new(mut deps: ReceiveDeps) -> Self {
        deps.limits.max_body_bytes = deps.limits.max_body_bytes.min(MAX_BODY_BYTES);
        Self { deps }
    }
}

/// The webhook route, to merge with other routers before [`crate::app`].
pub fn routes(state: HooksState) -> Router {
    Router::new()
        .route("/hooks/{account}/{source}", post(hook))
        .with_state(state)
}

/// The webhook route served through the stack: what the webhooks function serves.
pub fn router(state: HooksState) -> Router {
    crate::app(routes(state))
}

/// The body of a 2xx answer.
#[derive(Debug, Serialize)]
struct Received<'a> {
    status: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<&'a str>,
    request_id: &'a str,
}

async fn hook(
    State(state): State<HooksState>,
    Path((account, source)): Path<(String, String)>,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Header values that are not visible ASCII cannot be a signature: they are left out, and a
    // signature header left out is answered as missing.
    let pairs = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let headers = Headers::from_pairs(pairs);
    let answer = receive(
        &state.deps,
        Incoming {
            account: &account,
            source: &source,
            content_type,
            headers: &headers,
            body: &body,
        },
    )
    .await;
    respond(&answer, &request_id)
}

/// The one translation of an answer.
fn respond(answer: &Answer, request_id: &RequestId) -> Response {
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let delivery_id = match answer {
        Answer::Accepted { delivery_id } | Answer::Duplicate { delivery_id } => {
            Some(delivery_id.as_str())
        }
        Answer::Ping => None,
        Answer::Refused(_) | Answer::Unavailable => {
            return HttpError::new(status, answer.code(), answer.message())
                .with_detail(answer.code())
                .into_response();
        }
    };
    let body = Received {
        status: answer.code(),
        message: answer.message(),
        delivery_id,
        request_id: request_id.as_str(),
    };
    (status, Json(body)).into_response()
}
