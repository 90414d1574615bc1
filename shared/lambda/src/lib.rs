//! What only Lambda knows about an HTTP request, put into the request as the router crate's
//! types, so the routers of `entra-sync-http` stay free of the Lambda crates and the HTTP
//! functions (connect, api, webhooks) add it the same way:
//!
//! * [`RequestId`]: API Gateway's `requestContext.requestId` (what API Gateway answers as
//!   `apigw-requestid` and logs in its access log), else the Lambda invocation's request id.
//! * [`RequestDomain`]: `requestContext.domainName`, the domain the API was called on (never
//!   the `Host` header).
//! * [`Caller`] (the admin API, [`with_caller`]): who API Gateway's authorizer let in. An IAM
//!   authorizer (SigV4-signed requests of the host product's backend) is every account; a JWT
//!   authorizer (an embedded console) is the one account its token's claim names. A request
//!   that passed no authorizer carries no caller, and the API answers it 401.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use entra_sync_core::model::AccountId;
use entra_sync_http::api::auth::Caller;
use entra_sync_http::{RequestDomain, RequestId};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// The router as a function serves it: the platform's facts copied in first.
pub fn app(router: Router) -> Router {
    router.layer(middleware::map_request(from_lambda_context))
}

/// Copy the request id and domain of the request's Lambda context into its extensions.
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

/// The admin API as its function serves it: [`app`], and the caller API Gateway's authorizer
/// let in, with the account of a JWT caller read from the claim `account_claim`.
pub fn with_caller(router: Router, account_claim: impl Into<Arc<str>>) -> Router {
    let claim: Arc<str> = account_claim.into();
    app(
        router.layer(middleware::map_request(move |mut req: Request| {
            let claim = claim.clone();
            async move {
                if let Some(caller) = caller_of(&req, &claim) {
                    req.extensions_mut().insert(caller);
                }
                req
            }
        })),
    )
}

/// Who the authorizer of the request's API Gateway context let in, if any.
pub fn caller_of(req: &Request, account_claim: &str) -> Option<Caller> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return None;
    };
    let authorizer = ctx.authorizer.as_ref()?;
    if let Some(jwt) = &authorizer.jwt {
        // A token without the claim (or with an empty one) names no account: no caller.
        let account = jwt.claims.get(account_claim)?.trim();
        return (!account.is_empty()).then(|| Caller::Account(AccountId(account.to_owned())));
    }
    authorizer.iam.as_ref().map(|_| Caller::AllAccounts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// An HTTP API (payload 2.0) event as API Gateway sends it, with `authorizer`.
    fn request(authorizer: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "ANY /v1/{proxy+}",
            "rawPath": "/v1/accounts/acme/connections",
            "rawQueryString": "",
            "headers": {"host": "abc.execute-api.eu-west-1.amazonaws.com"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc",
                "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
                "domainPrefix": "abc",
                "http": {"method": "GET", "path": "/v1/accounts/acme/connections",
                         "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
                "requestId": "Kp2fWgY8joEEMdQ=",
                "routeKey": "ANY /v1/{proxy+}",
                "stage": "$default",
                "time": "01/Dec/2026:12:00:00 +0000",
                "timeEpoch": 1796126400000u64,
                "authorizer": authorizer
            },
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        let (parts, body) = req.into_parts();
        Request::from_parts(parts, axum::body::Body::from(body.to_vec()))
    }

    #[test]
    fn iam_is_every_account_and_a_jwt_is_the_account_of_its_claim() {
        let iam = request(serde_json::json!({"iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "123456789012",
            "callerId": "AIDAEXAMPLE", "principalOrgId": null,
            "userArn": "arn:aws:iam::123456789012:user/backend", "userId": "AIDAEXAMPLE"
        }}));
        assert_eq!(caller_of(&iam, "account_id"), Some(Caller::AllAccounts));
        let jwt = request(serde_json::json!({"jwt": {
            "claims": {"sub": "u1", "account_id": "acme"}, "scopes": null
        }}));
        assert_eq!(
            caller_of(&jwt, "account_id"),
            Some(Caller::Account(AccountId("acme".into())))
        );
        // The claim is configured: another claim name finds no account, so no caller.
        assert_eq!(caller_of(&jwt, "tenant"), None);
        let empty = request(serde_json::json!({"jwt": {
            "claims": {"account_id": "  "}, "scopes": null
        }}));
        assert_eq!(caller_of(&empty, "account_id"), None);
        assert_eq!(
            caller_of(&request(serde_json::json!({})), "account_id"),
            None
        );
    }
}
