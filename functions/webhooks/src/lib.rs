//! The HR webhooks on Lambda: two functions from one crate.
//!
//! * `webhooks-route` serves the public route `POST /hooks/{account}/{source}`: the hooks
//!   router of `entra-sync-http`, behind API Gateway's HTTP API, served by `lambda_http`
//!   ([`app`] copies API Gateway's request id into the request first).
//! * `webhooks-queue` consumes the FIFO delivery queue: every stored, queued delivery becomes
//!   workflows ([`handler::handle_batch`], with partial batch failures).
//!
//! The binaries in `src/bin/` only wire (configuration, adapters, the runtime loop); this
//! library translates.

pub mod handler;

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use entra_sync_http::RequestId;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// The router as the route function serves it: API Gateway's request id copied in first.
pub fn app(router: Router) -> Router {
    router.layer(middleware::map_request(request_id_from_lambda))
}

/// API Gateway's `requestContext.requestId` (what API Gateway logs and answers as
/// `apigw-requestid`), else the Lambda invocation's request id, as the router's [`RequestId`].
pub async fn request_id_from_lambda(mut req: Request) -> Request {
    let id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.request_id.as_deref().and_then(RequestId::new)
        }
        _ => None,
    }
    .or_else(|| {
        req.lambda_context_ref()
            .and_then(|c| RequestId::new(&c.request_id))
    });
    if let Some(id) = id {
        req.extensions_mut().insert(id);
    }
    req
}

#[cfg(test)]
mod tests;
