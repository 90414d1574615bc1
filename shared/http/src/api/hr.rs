//! The API's HR webhook management: an account's endpoints (create with the secret shown once,
//! rotate with a grace period, enable / disable, the HR API credential, the delivery log) and a
//! connection's review list (people held because they matched no directory user, or several).
//! Each route calls one service of `services::webhooks`, the same the `entra-sync hooks`
//! commands call. Secrets sent in a body go to the vault; an answer carries a secret only when
//! this request generated it (a Standard Webhooks endpoint), once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use entra_sync_core::model::AccountId;
use entra_sync_core::ports::Secret;
use entra_sync_core::services::webhooks::{
    CreateEndpoint, EndpointDeps, ProcessDeps, WebhookError, create_endpoint, dismiss_review,
    get_endpoint, list_deliveries, list_endpoints, list_reviews, resolve_review, rotate_secret,
    set_api_credential, set_enabled,
};
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::{Delivery, Outcome, Processing};
use entra_sync_core::webhooks::endpoint::WebhookEndpoint;
use entra_sync_core::webhooks::review::{ReviewItem, ReviewReason, ReviewStatus};
use serde::Deserialize;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::params::Query;
use super::routes::{Tenant, account_of, body, caller_and_path, page, sentence};
use super::views::ErrorBody;
use crate::HttpError;

const ACCOUNT: &str = "The host product's account id (1 to 128 visible characters).";
const TENANT: &str = "The directory (tenant) id, a GUID.";
const SOURCE: &str = "The HR system: bamboohr, hibob or standard (any Standard Webhooks sender).";

/// What the HR routes use: endpoint management, and the processor (resolving a review item
/// starts what the held event asked for, as the delivery queue would have).
#[derive(Clone)]
pub struct HrApi {
    pub endpoints: EndpointDeps,
    pub process: ProcessDeps,
}

/// The one mapping of the webhook services' refusals to answers.
fn hr_error(e: WebhookError) -> HttpError {
    let status = match &e {
        WebhookError::Invalid(_) => StatusCode::BAD_REQUEST,
        WebhookError::UnknownConnection { .. }
        | WebhookError::UnknownEndpoint { .. }
        | WebhookError::UnknownDelivery { .. }
        | WebhookError::UnknownReview { .. } => {
            return HttpError::from_status(StatusCode::NOT_FOUND).with_detail(e);
        }
        WebhookError::EndpointExists { .. } | WebhookError::ReviewClosed { .. } => {
            StatusCode::CONFLICT
        }
        WebhookError::Action(_) => StatusCode::CONFLICT,
        WebhookError::HrApi(h) if h.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        WebhookError::HrApi(_) => StatusCode::BAD_GATEWAY,
        WebhookError::Vault(_)
        | WebhookError::Store(_)
        | WebhookError::Queue(_)
        | WebhookError::Random => {
            return HttpError::from_status(StatusCode::SERVICE_UNAVAILABLE).with_detail(e);
        }
    };
    HttpError::new(status, e.code(), sentence(&e)).with_detail(&e)
}

/// The HR system of a path (404 for another word: no such endpoint).
fn source(raw: &str) -> Result<Source, HttpError> {
    Source::parse(raw).ok_or_else(|| {
        HttpError::from_status(StatusCode::NOT_FOUND).with_detail("unknown HR source in the path")
    })
}

/// The account of the path, for the caller (404 for another account's).
pub(crate) struct Account(pub(crate) AccountId);

impl FromRequestParts<ApiState> for Account {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &ApiState,
    ) -> Result<Self, HttpError> {
        let (caller, p) = caller_and_path(parts, s).await?;
        let raw = p.get("account").map(String::as_str).unwrap_or("");
        account_of(&caller, raw).map(Account)
    }
}

/// A secret as stored: its age and, once rotated out, until when it still verifies.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretInfo {
    pub created_at: DateTime<Utc>,
    /// Set on a rotated-out secret: it verifies until then.
    pub valid_until: Option<DateTime<Utc>>,
}

/// An HR webhook endpoint (never its secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct HrEndpointView {
    pub account_id: String,
    /// `bamboohr`, `hibob` or `standard`.
    pub source: &'static str,
    /// The connection whose directory its workflows act on.
    pub tenant_id: String,
    pub enabled: bool,
    /// Where the HR system posts: `/hooks/{account}/{source}` on the webhook API.
    pub path: String,
    /// The current secret first, then rotated-out ones still in their grace period.
    pub secrets: Vec<SecretInfo>,
    /// Whether an HR API credential is stored (HiBob: needed to read the employee).
    pub has_api_credential: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<WebhookEndpoint> for HrEndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        HrEndpointView {
            path: format!("/hooks/{}/{}", e.key.account_id, e.key.source),
            account_id: e.key.account_id.0.clone(),
            source: e.key.source.as_str(),
            tenant_id: e.tenant_id.to_string(),
            enabled: e.enabled,
            secrets: e
                .secrets
                .into_iter()
                .map(|s| SecretInfo {
                    created_at: s.created_at,
                    valid_until: s.valid_until,
                })
                .collect(),
            has_api_credential: e.api_credential.is_some(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HrEndpointList {
    pub items: Vec<HrEndpointView>,
}

/// An endpoint with the secret this request generated: shown this once, stored only in the
/// vault. `null` when the HR system generated the key (BambooHR, HiBob) and it was sent here.
#[derive(Debug, Serialize, ToSchema)]
pub struct HrEndpointSecret {
    pub endpoint: HrEndpointView,
    /// Standard Webhooks: the `whsec_` secret to give the sender.
    pub secret: Option<String>,
}

/// Create an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHrEndpoint {
    /// `bamboohr`, `hibob` or `standard`.
    pub source: String,
    /// The connection whose directory its workflows act on.
    pub tenant_id: String,
    /// BambooHR and HiBob: the signing key their webhook settings generated (required).
    /// Standard Webhooks: leave out and one is generated (or give the sender's `whsec_` secret).
    #[serde(default)]
    pub secret: Option<String>,
    /// The HR system's API credential (HiBob: `service-user-id:token`).
    #[serde(default)]
    pub api_credential: Option<String>,
}

/// Rotate the signing secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateHrSecret {
    /// BambooHR and HiBob: the new key they generated. Standard: leave out (one is generated).
    #[serde(default)]
    pub secret: Option<String>,
    /// How long the previous secret still verifies (0 to 720; default 24).
    #[serde(default)]
    pub grace_hours: Option<u32>,
}

/// Store the HR API credential.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HrApiCredential {
    pub api_credential: String,
}

/// One row of an endpoint's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct HrDeliveryView {
    pub id: String,
    pub received_at: DateTime<Utc>,
    /// The `webhook-id` or the HR system's event id, when the delivery had one.
    pub source_event_id: Option<String>,
    /// `accepted`, `duplicate` or `refused`.
    pub outcome: &'static str,
    /// `duplicate`: the delivery it repeats.
    pub duplicate_of: Option<String>,
    /// `refused`: the answer's status, code and reason.
    pub refused_status: Option<u16>,
    pub refused_code: Option<String>,
    pub reason: Option<String>,
    /// `queued`, `done` or `not_applicable`.
    pub processing: &'static str,
    /// What processing did or left alone, per event.
    pub notes: Vec<String>,
    pub events: usize,
    pub workflow_ids: Vec<String>,
    pub review_ids: Vec<String>,
}

impl From<Delivery> for HrDeliveryView {
    fn from(d: Delivery) -> Self {
        let (duplicate_of, refused_status, refused_code, reason) = match d.outcome.clone() {
            Outcome::Accepted => (None, None, None, None),
            Outcome::Duplicate { of } => (Some(of), None, None, None),
            Outcome::Refused {
                status,
                code,
                reason,
            } => (None, Some(status), Some(code), Some(reason)),
        };
        let (processing, notes) = match d.processing {
            Processing::Queued => ("queued", Vec::new()),
            Processing::Done { notes } => ("done", notes),
            Processing::NotApplicable => ("not_applicable", Vec::new()),
        };
        HrDeliveryView {
            outcome: d.outcome.as_str(),
            id: d.id,
            received_at: d.received_at,
            source_event_id: d.source_event_id,
            duplicate_of,
            refused_status,
            refused_code,
            reason,
            processing,
            notes,
            events: d.events.len(),
            workflow_ids: d.workflow_ids,
            review_ids: d.review_ids,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HrDeliveryList {
    pub items: Vec<HrDeliveryView>,
    pub next_cursor: Option<String>,
}

/// A person held for review.
#[derive(Debug, Serialize, ToSchema)]
pub struct HrReviewView {
    pub id: String,
    /// `bamboohr`, `hibob` or `standard`.
    pub source: &'static str,
    pub delivery_id: String,
    /// The person in the HR system.
    pub provider_id: String,
    pub employee_id: String,
    pub work_email: Option<String>,
    /// `no_match` or `ambiguous`.
    pub reason: &'static str,
    /// `ambiguous`: the directory users that match.
    pub candidates: Vec<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// `open`, `resolved` or `dismissed`.
    pub status: &'static str,
    /// `resolved`: the user picked and the workflows started.
    pub user_id: Option<String>,
    pub workflow_ids: Vec<String>,
    /// `resolved` / `dismissed`: who and when.
    pub by: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

impl From<ReviewItem> for HrReviewView {
    fn from(r: ReviewItem) -> Self {
        let (reason, candidates) = match r.reason {
            ReviewReason::NoMatch => ("no_match", Vec::new()),
            ReviewReason::Ambiguous { candidates } => ("ambiguous", candidates),
        };
        let (status, user_id, workflow_ids, by, at) = match r.status {
            ReviewStatus::Open => ("open", None, Vec::new(), None, None),
            ReviewStatus::Resolved {
                user_id,
                by,
                at,
                workflow_ids,
            } => ("resolved", Some(user_id), workflow_ids, Some(by), Some(at)),
            ReviewStatus::Dismissed { by, at } => {
                ("dismissed", None, Vec::new(), Some(by), Some(at))
            }
        };
        HrReviewView {
            id: r.id,
            source: r.endpoint.source.as_str(),
            delivery_id: r.delivery_id,
            provider_id: r.event.provider_id,
            employee_id: r.event.employee_id,
            work_email: r.event.work_email,
            reason,
            candidates,
            message: r.message,
            created_at: r.created_at,
            status,
            user_id,
            workflow_ids,
            by,
            at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HrReviewList {
    pub items: Vec<HrReviewView>,
    pub next_cursor: Option<String>,
}

/// Resolve a review item by picking the directory user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveReview {
    /// The directory user's object id.
    pub user_id: String,
    pub by: String,
}

/// Who dismisses.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissReview {
    pub by: String,
}

fn secret_of(s: Option<String>) -> Option<Secret> {
    s.filter(|v| !v.trim().is_empty()).map(Secret::new)
}

#[utoipa::path(get, operation_id = "list_hr_endpoints", path = "/v1/accounts/{account}/hr-endpoints", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT)),
    responses((status = 200, body = HrEndpointList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Account(a): Account,
) -> Result<Json<HrEndpointList>, HttpError> {
    let items = list_endpoints(&s.hr.endpoints, &a)
        .await
        .map_err(hr_error)?
        .into_iter()
        .map(HrEndpointView::from)
        .collect();
    Ok(Json(HrEndpointList { items }))
}

#[utoipa::path(post, operation_id = "create_hr_endpoint", path = "/v1/accounts/{account}/hr-endpoints", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT)),
    request_body = CreateHrEndpoint,
    responses((status = 201, description = "Created. A generated secret is in this answer, once.", body = HrEndpointSecret),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, description = "No such connection in the account.", body = ErrorBody),
        (status = 409, description = "The account already has an endpoint for this HR system.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn create(
    State(s): State<ApiState>,
    Account(a): Account,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let req: CreateHrEndpoint = body(&bytes)?;
    let Some(src) = Source::parse(&req.source) else {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not valid: source: give bamboohr, hibob or standard.",
        ));
    };
    let tenant =
        entra_sync_core::services::connect::parse_tenant_id(&req.tenant_id).ok_or_else(|| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request body is not valid: tenant_id: give the directory's id (a GUID).",
            )
        })?;
    let created = create_endpoint(
        &s.hr.endpoints,
        CreateEndpoint {
            account: a,
            source: src,
            tenant,
            secret: secret_of(req.secret),
            api_credential: secret_of(req.api_credential),
        },
    )
    .await
    .map_err(hr_error)?;
    let answer = HrEndpointSecret {
        endpoint: created.endpoint.into(),
        secret: created.secret.map(|s| s.expose().to_owned()),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(get, operation_id = "show_hr_endpoint", path = "/v1/accounts/{account}/hr-endpoints/{source}", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("source" = String, Path, description = SOURCE)),
    responses((status = 200, body = HrEndpointView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, src)): Path<(String, String)>,
) -> Result<Json<HrEndpointView>, HttpError> {
    let e = get_endpoint(&s.hr.endpoints, &a, source(&src)?)
        .await
        .map_err(hr_error)?;
    Ok(Json(e.into()))
}

#[utoipa::path(post, operation_id = "rotate_hr_secret", path = "/v1/accounts/{account}/hr-endpoints/{source}/rotate", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("source" = String, Path, description = SOURCE)),
    request_body = RotateHrSecret,
    responses((status = 200, description = "The new secret is current; the previous one verifies for the grace period. A generated secret is in this answer, once.", body = HrEndpointSecret),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn rotate(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, src)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<HrEndpointSecret>, HttpError> {
    let req: RotateHrSecret = body(&bytes)?;
    let grace = req
        .grace_hours
        .map(|h| chrono::Duration::hours(i64::from(h)));
    let r = rotate_secret(
        &s.hr.endpoints,
        &a,
        source(&src)?,
        secret_of(req.secret),
        grace,
    )
    .await
    .map_err(hr_error)?;
    Ok(Json(HrEndpointSecret {
        endpoint: r.endpoint.into(),
        secret: r.secret.map(|s| s.expose().to_owned()),
    }))
}

async fn toggle(
    s: &ApiState,
    a: &AccountId,
    src: &str,
    enabled: bool,
) -> Result<Json<HrEndpointView>, HttpError> {
    let e = set_enabled(&s.hr.endpoints, a, source(src)?, enabled)
        .await
        .map_err(hr_error)?;
    Ok(Json(e.into()))
}

#[utoipa::path(post, operation_id = "disable_hr_endpoint", path = "/v1/accounts/{account}/hr-endpoints/{source}/disable", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("source" = String, Path, description = SOURCE)),
    responses((status = 200, description = "Disabled: deliveries get 404, like an unknown endpoint.", body = HrEndpointView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn disable(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, src)): Path<(String, String)>,
) -> Result<Json<HrEndpointView>, HttpError> {
    toggle(&s, &a, &src, false).await
}

#[utoipa::path(post, operation_id = "enable_hr_endpoint", path = "/v1/accounts/{account}/hr-endpoints/{source}/enable", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("source" = String, Path, description = SOURCE)),
    responses((status = 200, body = HrEndpointView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn enable(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, src)): Path<(String, String)>,
) -> Result<Json<HrEndpointView>, HttpError> {
    toggle(&s, &a, &src, true).await
}

#[utoipa::path(put, operation_id = "set_hr_api_credential", path = "/v1/accounts/{account}/hr-endpoints/{source}/api-credential", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("source" = String, Path, description = SOURCE)),
    request_body = HrApiCredential,
    responses((status = 200, description = "Stored in the vault (never shown again).", body = HrEndpointView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn api_credential(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, src)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<HrEndpointView>, HttpError> {
    let req: HrApiCredential = body(&bytes)?;
    let e = set_api_credential(
        &s.hr.endpoints,
        &a,
        source(&src)?,
        Secret::new(req.api_credential),
    )
    .await
    .map_err(hr_error)?;
    Ok(Json(e.into()))
}

#[utoipa::path(get, operation_id = "list_hr_deliveries", path = "/v1/accounts/{account}/hr-endpoints/{source}/deliveries", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("source" = String, Path, description = SOURCE),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The delivery log, newest first.", body = HrDeliveryList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn deliveries(
    State(s): State<ApiState>,
    Account(a): Account,
    Path((_, src)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<HrDeliveryList>, HttpError> {
    let q = Query::parse(&uri, &["cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("hr-deliveries")?);
    let listing = list_deliveries(&s.hr.endpoints, &a, source(&src)?, after.as_deref(), limit)
        .await
        .map_err(hr_error)?;
    let (items, next_cursor) = page("hr-deliveries", listing);
    Ok(Json(HrDeliveryList { items, next_cursor }))
}

#[utoipa::path(get, operation_id = "list_hr_reviews", path = "/v1/accounts/{account}/connections/{tenant}/hr-reviews", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("status" = Option<String>, Query, description = "`open` (the default) or `all`."),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "People held for review, newest first.", body = HrReviewList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn reviews(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    uri: Uri,
) -> Result<Json<HrReviewList>, HttpError> {
    let q = Query::parse(&uri, &["status", "cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("hr-reviews")?);
    let open_only = match q.get("status") {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => return Err(super::params::bad_param("status", "give open or all")),
    };
    let listing = list_reviews(
        &s.hr.process,
        &c.account_id,
        &c.tenant_id,
        open_only,
        after.as_deref(),
        limit,
    )
    .await
    .map_err(hr_error)?;
    let (items, next_cursor) = page("hr-reviews", listing);
    Ok(Json(HrReviewList { items, next_cursor }))
}

#[utoipa::path(post, operation_id = "resolve_hr_review", path = "/v1/accounts/{account}/connections/{tenant}/hr-reviews/{review}/resolve", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("review" = String, Path, description = "The review item's id.")),
    request_body = ResolveReview,
    responses((status = 200, description = "Resolved: what the held event asked for is started for the picked user.", body = HrReviewView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already resolved or dismissed.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn resolve(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<HrReviewView>, HttpError> {
    let req: ResolveReview = body(&bytes)?;
    let r = resolve_review(
        &s.hr.process,
        &c.account_id,
        &c.tenant_id,
        &id,
        &req.user_id,
        &req.by,
    )
    .await
    .map_err(hr_error)?;
    Ok(Json(r.into()))
}

#[utoipa::path(post, operation_id = "dismiss_hr_review", path = "/v1/accounts/{account}/connections/{tenant}/hr-reviews/{review}/dismiss", tag = "hr webhooks",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("review" = String, Path, description = "The review item's id.")),
    request_body = DismissReview,
    responses((status = 200, description = "Dismissed: nothing is started.", body = HrReviewView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already resolved or dismissed.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn dismiss(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<HrReviewView>, HttpError> {
    let req: DismissReview = body(&bytes)?;
    let r = dismiss_review(&s.hr.process, &c.account_id, &c.tenant_id, &id, &req.by)
        .await
        .map_err(hr_error)?;
    Ok(Json(r.into()))
}
