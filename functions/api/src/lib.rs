//! The admin API function: the admin API router of `entra-sync-http`, served by `lambda_http`
//! behind API Gateway.
//!
//! `main.rs` wires the adapters (DynamoDB, SQS for "sync now", Secrets Manager, Graph) into the
//! router. API Gateway authenticates every request before the function runs: the host
//! product's backend with IAM (SigV4; every account), an embedded console with the optional
//! JWT authorizer (the account its token's claim names). [`app`] puts that caller into the
//! request ([`entra_sync_lambda::with_caller`]) and the router's [`PlatformCaller`] reads it:
//! a request that passed no authorizer is 401, another account's data is 404.

use std::sync::Arc;

use axum::Router;
use entra_sync_http::api::auth::PlatformCaller;
use entra_sync_http::api::{self, ApiState};

/// The claim of a console's JWT that names its account, when `JWT_ACCOUNT_CLAIM` is not set.
pub const DEFAULT_ACCOUNT_CLAIM: &str = "account_id";

/// The function's app: the API router with the platform's caller (`state.auth` is replaced by
/// [`PlatformCaller`]: in AWS only API Gateway's authorizer says who calls).
pub fn app(state: ApiState, account_claim: &str) -> Router {
    let state = ApiState {
        auth: Arc::new(PlatformCaller),
        ..state
    };
    entra_sync_lambda::with_caller(api::router(state), account_claim)
}

#[cfg(test)]
mod tests;
