//! The connect function: the connect router of `entra-sync-http`, served by `lambda_http`.
//!
//! `main.rs` wires the adapters (DynamoDB, Secrets Manager, Graph) into the router; this library
//! holds the one thing only Lambda knows: what API Gateway says about a request. [`app`] puts
//! API Gateway's request id and domain name into the request as the router crate's
//! [`RequestId`] and [`RequestDomain`], so the router stays free of the Lambda crates.

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use entra_sync_http::{RequestDomain, RequestId};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// The router as the function serves it: the platform's facts copied in first.
pub fn app(router: Router) -> Router {
    router.layer(middleware::map_request(from_lambda_context))
}

/// API Gateway's `requestContext.requestId` (what API Gateway answers as `apigw-requestid` and
/// logs in its access log), else the Lambda invocation's request id; and
/// `requestContext.domainName`, the domain the API was called on (never the `Host` header).
pub async fn from_lambda_context(mut req: Request) -> Request {
    let (request_id, domain) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.request_id.as_deref().and_then(RequestId::new),
            ctx.domain_name.as_deref().and_then(RequestDomain::new),
        ),
        _ => (None, None),
    };
    let request_id = request_id.or_else(|| {
        req.lambda_context_ref()
            .and_then(|c| RequestId::new(&c.request_id))
    });
    if let Some(id) = request_id {
        req.extensions_mut().insert(id);
    }
    if let Some(domain) = domain {
        req.extensions_mut().insert(domain);
    }
    req
}

#[cfg(test)]
mod tests;
