//! The API's outbound webhooks: an account's endpoints that receive the change events (create
//! with the secret shown once, rotate, disable, enable) and each endpoint's delivery log with
//! manual redelivery. Each route calls one service of the core's `outbound::service`, the same
//! the `entra-sync events endpoints` commands call; the local program wires them to SQLite and
//! the AWS api function to DynamoDB. Where no endpoint store is wired every route answers 501.
//!
//! A URL must be https and must not resolve to a private, loopback or link-local address
//! (checked at creation and when enabled again, and again at every delivery); the local test
//! setting alone allows http to loopback.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use entra_sync_core::model::AccountId;
use entra_sync_core::outbound::ports::{HostResolver, OutboundStore};
use entra_sync_core::outbound::service::{
    NewEndpoint, OutboundError, create_endpoint, disable_endpoint, enable_endpoint, redeliver,
    rotate_secret,
};
use entra_sync_core::outbound::{
    AttemptOutcome, DeliveryState, EndpointState, OutboundDelivery, OutboundEndpoint,
    OutboundPolicy,
};
use entra_sync_core::ports::{Clock, SecretVault};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::hr::{Account, SecretInfo};
use super::params::{Query, encode_cursor};
use super::routes::{body, sentence};
use super::views::ErrorBody;
use crate::HttpError;

const ACCOUNT: &str = "The host product's account id (1 to 128 visible characters).";
const ENDPOINT: &str = "The endpoint's id (`ep_` and 32 hex digits).";
const DELIVERY: &str = "The delivery's id (`dl_` and 32 hex digits).";
const CURSOR: &str = "The next_cursor of the previous page.";
const LIMIT: &str = "Items per page, 1 to 200 (default 50).";

/// What the outbound webhook routes use.
#[derive(Clone)]
pub struct OutboundApi {
    pub store: Arc<dyn OutboundStore>,
    /// Where the endpoints' signing secrets live.
    pub vault: Arc<dyn SecretVault>,
    /// Resolves an endpoint's host for the SSRF check.
    pub resolver: Arc<dyn HostResolver>,
    /// `urls` says whether the local test setting (http to loopback) is on.
    pub policy: OutboundPolicy,
    pub clock: Arc<dyn Clock>,
}

/// The one mapping of the outbound services' refusals to answers.
fn outbound_error(e: OutboundError) -> HttpError {
    match &e {
        OutboundError::Url(_) | OutboundError::Resolve(_) => {
            HttpError::new(StatusCode::BAD_REQUEST, "invalid_request", sentence(&e)).with_detail(&e)
        }
        OutboundError::UnknownType(_) => HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not valid: event_types: give type names of the event catalog.",
        )
        .with_detail(&e),
        OutboundError::NoEndpoint(_) | OutboundError::NoDelivery(_) => {
            HttpError::from_status(StatusCode::NOT_FOUND).with_detail(&e)
        }
        OutboundError::Store(_) | OutboundError::Vault(_) | OutboundError::Random => {
            HttpError::from_status(StatusCode::SERVICE_UNAVAILABLE).with_detail(&e)
        }
    }
}

/// The routes' deps, or 501 where outbound webhooks are not wired.
fn deps(s: &ApiState) -> Result<&OutboundApi, HttpError> {
    s.outbound.as_ref().ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "Outbound webhooks are not configured on this deployment.",
        )
    })
}

/// The endpoint `id` if it belongs to `account` (404 otherwise, like an unknown one).
async fn owned(
    o: &OutboundApi,
    account: &AccountId,
    id: &str,
) -> Result<OutboundEndpoint, HttpError> {
    match o.store.get_endpoint(id).await {
        Ok(Some(e)) if &e.account_id == account => Ok(e),
        Ok(_) => Err(HttpError::from_status(StatusCode::NOT_FOUND).with_detail("no such endpoint")),
        Err(e) => Err(outbound_error(e.into())),
    }
}

/// An outbound webhook endpoint (never its secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: String,
    pub account_id: String,
    pub url: String,
    /// The event types it receives; `null` for every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: bool,
    /// Disabled: why (by hand, or after failing for days) and when.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// The current secret first, then a rotated-out one still signing in its grace period.
    pub secrets: Vec<SecretInfo>,
    /// Since when its deliveries fail without a success in between.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<OutboundEndpoint> for WebhookEndpointView {
    fn from(e: OutboundEndpoint) -> Self {
        let (enabled, disabled_reason, disabled_at) = match e.state {
            EndpointState::Enabled => (true, None, None),
            EndpointState::Disabled { reason, at } => (false, Some(reason), Some(at)),
        };
        WebhookEndpointView {
            id: e.id,
            account_id: e.account_id.0,
            url: e.url,
            event_types: e.event_types,
            enabled,
            disabled_reason,
            disabled_at,
            secrets: e
                .secrets
                .into_iter()
                .map(|s| SecretInfo {
                    created_at: s.created_at,
                    valid_until: s.valid_until,
                })
                .collect(),
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub items: Vec<WebhookEndpointView>,
    pub next_cursor: Option<String>,
}

/// An endpoint with the secret this request generated: shown this once, stored only in the
/// vault.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointSecret {
    pub endpoint: WebhookEndpointView,
    /// The `whsec_` secret the receiver verifies signatures with.
    pub secret: String,
}

/// Create an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// An https URL whose host resolves to public addresses only.
    pub url: String,
    /// Only these event types (names of the catalog); leave out for every type.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttemptView {
    pub at: DateTime<Utc>,
    /// `status` (the receiver answered), `timeout` or `error` (no connection, or refused).
    pub outcome: &'static str,
    /// `status`: the HTTP status of the answer.
    pub status: Option<u16>,
    /// `error`: what happened, in plain words.
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// The delivery of one event to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryView {
    pub id: String,
    pub endpoint_id: String,
    /// The event's id (the `webhook-id` header).
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (the schedule is exhausted; redeliver to retry).
    pub state: &'static str,
    /// `pending`: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// `delivered` / `failed`: when.
    pub finished_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub attempts: Vec<WebhookAttemptView>,
    pub created_at: DateTime<Utc>,
}

impl From<OutboundDelivery> for WebhookDeliveryView {
    fn from(d: OutboundDelivery) -> Self {
        let (state, next_attempt_at, finished_at) = match d.state {
            DeliveryState::Pending { next_attempt_at } => ("pending", Some(next_attempt_at), None),
            DeliveryState::Delivered { at } => ("delivered", None, Some(at)),
            DeliveryState::Failed { at } => ("failed", None, Some(at)),
        };
        WebhookDeliveryView {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            state,
            next_attempt_at,
            finished_at,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| {
                    let (outcome, status, error) = match a.outcome {
                        AttemptOutcome::Status { status } => ("status", Some(status), None),
                        AttemptOutcome::Timeout => ("timeout", None, None),
                        AttemptOutcome::Error { error } => ("error", None, Some(error)),
                    };
                    WebhookAttemptView {
                        at: a.at,
                        outcome,
                        status,
                        error,
                        latency_ms: a.latency_ms,
                    }
                })
                .collect(),
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryList {
    pub items: Vec<WebhookDeliveryView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, operation_id = "list_webhook_endpoints", path = "/v1/accounts/{account}/webhook-endpoints", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT),
        ("cursor" = Option<String>, Query, description = CURSOR),
        ("limit" = Option<usize>, Query, description = LIMIT)),
    responses((status = 200, description = "The account's endpoints, oldest first.", body = WebhookEndpointList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Account(a): Account,
    uri: Uri,
) -> Result<Json<WebhookEndpointList>, HttpError> {
    let o = deps(&s)?;
    let q = Query::parse(&uri, &["cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("webhook-endpoints")?);
    let all = o
        .store
        .list_endpoints(&a)
        .await
        .map_err(|e| outbound_error(e.into()))?;
    let start = match &after {
        None => 0,
        Some(id) => all
            .iter()
            .position(|e| &e.id == id)
            .map_or(all.len(), |i| i + 1),
    };
    let rest: Vec<OutboundEndpoint> = all.into_iter().skip(start).collect();
    let next_cursor =
        (rest.len() > limit).then(|| encode_cursor("webhook-endpoints", &rest[limit - 1].id));
    let items = rest.into_iter().take(limit).map(Into::into).collect();
    Ok(Json(WebhookEndpointList { items, next_cursor }))
}

#[utoipa::path(post, operation_id = "create_webhook_endpoint", path = "/v1/accounts/{account}/webhook-endpoints", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT)),
    request_body = CreateWebhookEndpoint,
    responses((status = 201, description = "Created. Its signing secret is in this answer, once.", body = WebhookEndpointSecret),
        (status = 400, description = "A URL that is not https, or whose host is private, loopback or link-local; an unknown event type.", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn create(
    State(s): State<ApiState>,
    Account(a): Account,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let o = deps(&s)?;
    let req: CreateWebhookEndpoint = body(&bytes)?;
    let created = create_endpoint(
        o.store.as_ref(),
        o.vault.as_ref(),
        o.resolver.as_ref(),
        &o.policy,
        NewEndpoint {
            account: a,
            url: req.url,
            event_types: req.event_types,
        },
        o.clock.now(),
    )
    .await
    .map_err(outbound_error)?;
    let answer = WebhookEndpointSecret {
        endpoint: created.endpoint.into(),
        secret: created.secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(get, operation_id = "show_webhook_endpoint", path = "/v1/accounts/{account}/webhook-endpoints/{endpoint}", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, body = WebhookEndpointView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn show(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointView>, HttpError> {
    let o = deps(&s)?;
    Ok(Json(owned(o, &a, &id).await?.into()))
}

#[utoipa::path(post, operation_id = "rotate_webhook_secret", path = "/v1/accounts/{account}/webhook-endpoints/{endpoint}/rotate", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, description = "A new secret, in this answer once; the previous one keeps signing beside it for 24 hours.", body = WebhookEndpointSecret),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn rotate(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointSecret>, HttpError> {
    let o = deps(&s)?;
    owned(o, &a, &id).await?;
    let r = rotate_secret(o.store.as_ref(), o.vault.as_ref(), &id, o.clock.now())
        .await
        .map_err(outbound_error)?;
    Ok(Json(WebhookEndpointSecret {
        endpoint: r.endpoint.into(),
        secret: r.secret.expose().to_owned(),
    }))
}

#[utoipa::path(post, operation_id = "disable_webhook_endpoint", path = "/v1/accounts/{account}/webhook-endpoints/{endpoint}/disable", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, description = "Disabled: it receives nothing, and events committed meanwhile are not kept for it. A webhook_endpoint.disabled event says so.", body = WebhookEndpointView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn disable(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointView>, HttpError> {
    let o = deps(&s)?;
    owned(o, &a, &id).await?;
    let e = disable_endpoint(
        o.store.as_ref(),
        &id,
        "disabled through the admin API",
        o.clock.now(),
    )
    .await
    .map_err(outbound_error)?;
    Ok(Json(e.into()))
}

#[utoipa::path(post, operation_id = "enable_webhook_endpoint", path = "/v1/accounts/{account}/webhook-endpoints/{endpoint}/enable", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("endpoint" = String, Path, description = ENDPOINT)),
    responses((status = 200, description = "Enabled: its pending deliveries resume; the URL is checked again.", body = WebhookEndpointView),
        (status = 400, description = "The URL's host no longer resolves to public addresses only.", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn enable(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointView>, HttpError> {
    let o = deps(&s)?;
    owned(o, &a, &id).await?;
    let e = enable_endpoint(
        o.store.as_ref(),
        o.resolver.as_ref(),
        &o.policy,
        &id,
        o.clock.now(),
    )
    .await
    .map_err(outbound_error)?;
    Ok(Json(e.into()))
}

#[utoipa::path(get, operation_id = "list_webhook_deliveries", path = "/v1/accounts/{account}/webhook-endpoints/{endpoint}/deliveries", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("endpoint" = String, Path, description = ENDPOINT),
        ("cursor" = Option<String>, Query, description = CURSOR),
        ("limit" = Option<usize>, Query, description = LIMIT)),
    responses((status = 200, description = "The endpoint's delivery log, newest first, with every attempt (status, latency).", body = WebhookDeliveryList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn deliveries(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<WebhookDeliveryList>, HttpError> {
    let o = deps(&s)?;
    let q = Query::parse(&uri, &["cursor", "limit"])?;
    let (limit, before) = (q.limit()?, q.cursor("webhook-deliveries")?);
    owned(o, &a, &id).await?;
    let mut rows = o
        .store
        .list_deliveries(&id, before.as_deref(), limit + 1)
        .await
        .map_err(|e| outbound_error(e.into()))?;
    let next_cursor = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        encode_cursor("webhook-deliveries", &rows[limit - 1].id)
    });
    let items = rows.into_iter().map(Into::into).collect();
    Ok(Json(WebhookDeliveryList { items, next_cursor }))
}

#[utoipa::path(post, operation_id = "redeliver_webhook_delivery", path = "/v1/accounts/{account}/webhook-endpoints/{endpoint}/deliveries/{delivery}/redeliver", tag = "outbound webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("endpoint" = String, Path, description = ENDPOINT), ("delivery" = String, Path, description = DELIVERY)),
    responses((status = 200, description = "Due again now, with a fresh retry schedule (same event, same webhook-id).", body = WebhookDeliveryView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 501, description = "Not available on this deployment.", body = ErrorBody)))]
pub(crate) async fn redeliver_one(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, id, delivery)): Path<(String, String, String)>,
) -> Result<Json<WebhookDeliveryView>, HttpError> {
    let o = deps(&s)?;
    owned(o, &a, &id).await?;
    match o.store.get_delivery(&delivery).await {
        Ok(Some(d)) if d.endpoint_id == id => {}
        Ok(_) => {
            return Err(
                HttpError::from_status(StatusCode::NOT_FOUND).with_detail("no such delivery")
            );
        }
        Err(e) => return Err(outbound_error(e.into())),
    }
    let d = redeliver(o.store.as_ref(), &delivery, o.clock.now())
        .await
        .map_err(outbound_error)?;
    Ok(Json(d.into()))
}
