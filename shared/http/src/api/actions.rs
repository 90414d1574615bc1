//! The API's write half: submit an action (exactly once per `Idempotency-Key`), the audit
//! trail, approvals, cancel, retry, running an approved password reset, and workflows. Each
//! route calls one service of `services::actions`, the same the CLI and the actions function
//! call; what the service refuses is mapped to a status here, in one place. (Every answer of
//! the stack carries `Cache-Control: no-store`, so the one answer with a temporary password is
//! kept by no cache on the way.)

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use entra_sync_core::actions::ActionKind;
use entra_sync_core::actions::ActionSpec;
use entra_sync_core::actions::ports::ActionFilter;
use entra_sync_core::actions::record::{ActionRecord, ActionStatus, Origin};
use entra_sync_core::actions::workflow::{AppRef, WorkflowOrigin, WorkflowParams};
use entra_sync_core::model::Connection;
use entra_sync_core::services::actions::{
    ActionError, DecideRequest, Decision, ExecuteOutcome, StartWorkflow, SubmitRequest,
    cancel_action, cancel_workflow, decide_action, execute_action, get_action, get_workflow,
    list_actions, list_workflows, retry_action, retry_workflow, start_workflow, submit_action,
};

use super::ApiState;
use super::action_views::*;
use super::params::{Query, bad_param};
use super::routes::{Tenant, body, page, sentence};
use super::views::ErrorBody;
use crate::HttpError;

const ACCOUNT: &str = "The host product's account id (1 to 128 visible characters).";
const TENANT: &str = "The directory (tenant) id, a GUID.";
const ACTION: &str = "The action id.";
const WORKFLOW: &str = "The workflow id.";

/// The one mapping of the write half's refusals to answers.
fn action_error(e: ActionError) -> HttpError {
    let status = match &e {
        ActionError::Invalid(_) | ActionError::Params(_) => StatusCode::BAD_REQUEST,
        ActionError::UnknownConnection { .. }
        | ActionError::UnknownAction { .. }
        | ActionError::UnknownWorkflow { .. } => {
            return HttpError::from_status(StatusCode::NOT_FOUND).with_detail(e);
        }
        ActionError::Refused(_) => StatusCode::FORBIDDEN,
        ActionError::Target(_) | ActionError::KeyReused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ActionError::NotConnected { .. }
        | ActionError::KeyBusy { .. }
        | ActionError::Transition(_)
        | ActionError::Workflow(_) => StatusCode::CONFLICT,
        ActionError::Directory(d) if d.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        ActionError::Directory(_) => StatusCode::BAD_GATEWAY,
        ActionError::Store(s) if !s.is_retryable() => {
            return HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR).with_detail(e);
        }
        ActionError::Store(_) | ActionError::Random => {
            return HttpError::from_status(StatusCode::SERVICE_UNAVAILABLE).with_detail(e);
        }
    };
    HttpError::new(status, e.code(), sentence(&e)).with_detail(&e)
}

/// The `Idempotency-Key` header. Its value may be a plain token or, as the IETF draft writes
/// it, a quoted string (`"abc"`): the quotes are not part of the key.
fn idempotency_key(headers: &HeaderMap) -> Result<String, HttpError> {
    let missing = || {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send an Idempotency-Key header (a unique id per request, such as a UUID): the same key answers with the same result and never acts twice.",
        )
    };
    let mut values = headers.get_all("idempotency-key").iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return Err(missing());
    };
    let raw = v.to_str().map_err(|_| missing())?.trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty() {
        return Err(missing());
    }
    Ok(key.to_owned())
}

fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn action_path(c: &Connection, id: &str) -> String {
    format!(
        "/v1/accounts/{}/connections/{}/actions/{id}",
        c.account_id, c.tenant_id
    )
}

/// Run an action now as `runner` (a password reset only runs as its requester), answering with
/// the record as it then is and a password reset's temporary password.
async fn run_as(
    s: &ApiState,
    c: &Connection,
    record: ActionRecord,
    runner: &str,
) -> Result<ActionRunView, HttpError> {
    let outcome = execute_action(&s.actions, &c.tenant_id, &record.id, Some(runner))
        .await
        .map_err(action_error)?;
    let (record, temporary_password) = match outcome {
        ExecuteOutcome::Done(done) => (
            done.record,
            done.temporary_password.map(|p| p.expose().to_owned()),
        ),
        ExecuteOutcome::AlreadyFinal(r)
        | ExecuteOutcome::NotReady(r)
        | ExecuteOutcome::RetryLater { record: r, .. } => (r, None),
        ExecuteOutcome::Busy { .. } => (record, None),
    };
    Ok(ActionRunView {
        action: record.into(),
        temporary_password,
    })
}

#[utoipa::path(post, operation_id = "submit_action", path = "/v1/accounts/{account}/connections/{tenant}/actions", tag = "actions",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("Idempotency-Key" = String, Header, description = "A unique id per request (such as a UUID), at most 200 printable characters. The same key answers with the same action and never acts twice; the same key with another request is refused (422).")),
    request_body = SubmitActionBody,
    responses((status = 202, description = "The action is stored: `queued` for the executor, or `pending_approval`. A repeated key answers with the same action as it is now.", body = ActionRunView, headers(("Location" = String, description = "The action."))),
        (status = 200, description = "A password reset that needs no approval ran now: the temporary password is in this answer, once.", body = ActionRunView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Actions of this kind are not enabled for the connection, or the app lacks the permission (the message names it and how to grant it).", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The connection cannot take actions now, or a request with this key is still being processed.", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "A target is unknown, ambiguous or not a valid target; or the key was used for another request.", body = ErrorBody)))]
pub(crate) async fn submit(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let req: SubmitActionBody = body(&bytes)?;
    let spec: ActionSpec = serde_json::from_value(req.action).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("The request body is not valid: action: {e}."),
        )
    })?;
    let record = submit_action(
        &s.actions,
        SubmitRequest {
            account: c.account_id.clone(),
            tenant: c.tenant_id.clone(),
            key,
            spec,
            requested_by: req.requested_by.clone(),
            origin: Origin::Api,
        },
    )
    .await
    .map_err(action_error)?;
    let location = action_path(&c, &record.id);
    // A password reset that waits for nobody runs now, as its requester: the password can
    // only be handed to the person who asked, in this answer.
    if record.kind() == ActionKind::ResetPassword && record.status == ActionStatus::Queued {
        let ran = run_as(&s, &c, record, &req.requested_by).await?;
        return Ok(with_location(
            (StatusCode::OK, Json(ran)).into_response(),
            &location,
        ));
    }
    let answer = ActionRunView {
        action: record.into(),
        temporary_password: None,
    };
    Ok(with_location(
        (StatusCode::ACCEPTED, Json(answer)).into_response(),
        &location,
    ))
}

#[utoipa::path(get, operation_id = "list_actions", path = "/v1/accounts/{account}/connections/{tenant}/actions", tag = "actions",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("status" = Option<String>, Query, description = "Only actions in this status (pending_approval, approved, queued, running, succeeded, failed, rejected, expired, cancelled)."),
        ("user_id" = Option<String>, Query, description = "Only actions on this user (object id)."),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The audit trail, newest first.", body = DirectoryActionList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    uri: Uri,
) -> Result<Json<DirectoryActionList>, HttpError> {
    const STATUSES: [&str; 9] = [
        "pending_approval",
        "approved",
        "queued",
        "running",
        "succeeded",
        "failed",
        "rejected",
        "expired",
        "cancelled",
    ];
    let q = Query::parse(&uri, &["status", "user_id", "cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("actions")?);
    let status = q.get("status").map(str::to_owned);
    if let Some(st) = &status
        && !STATUSES.contains(&st.as_str())
    {
        return Err(bad_param(
            "status",
            &format!("give one of {}", STATUSES.join(", ")),
        ));
    }
    let filter = ActionFilter {
        user_id: q.get("user_id").map(str::to_owned),
        status,
    };
    let listing = list_actions(
        &s.actions,
        &c.account_id,
        &c.tenant_id,
        &filter,
        after.as_deref(),
        limit,
    )
    .await
    .map_err(action_error)?;
    let (items, next_cursor) = page("actions", listing);
    Ok(Json(DirectoryActionList { items, next_cursor }))
}

#[utoipa::path(get, operation_id = "show_action", path = "/v1/accounts/{account}/connections/{tenant}/actions/{action}", tag = "actions",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("action" = String, Path, description = ACTION)),
    responses((status = 200, body = DirectoryActionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
) -> Result<Json<DirectoryActionView>, HttpError> {
    let r = get_action(&s.actions, &c.account_id, &c.tenant_id, &id)
        .await
        .map_err(action_error)?;
    Ok(Json(r.into()))
}

async fn decide(
    s: &ApiState,
    c: &Connection,
    id: String,
    bytes: &Bytes,
    decision: Decision,
) -> Result<Json<DirectoryActionView>, HttpError> {
    let d: DecideBody = body(bytes)?;
    let r = decide_action(
        &s.actions,
        DecideRequest {
            account: c.account_id.clone(),
            tenant: c.tenant_id.clone(),
            action_id: id,
            decision,
            by: d.by,
            comment: d.comment,
        },
    )
    .await
    .map_err(action_error)?;
    Ok(Json(r.into()))
}

#[utoipa::path(post, operation_id = "approve_action", path = "/v1/accounts/{account}/connections/{tenant}/actions/{action}/approve", tag = "approvals",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("action" = String, Path, description = ACTION)),
    request_body = DecideBody,
    responses((status = 200, description = "Approved: the action goes to the executor (a password reset waits for its requester to run it).", body = DirectoryActionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not pending, expired, or the approver is the requester.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn approve(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<DirectoryActionView>, HttpError> {
    decide(&s, &c, id, &bytes, Decision::Approve).await
}

#[utoipa::path(post, operation_id = "reject_action", path = "/v1/accounts/{account}/connections/{tenant}/actions/{action}/reject", tag = "approvals",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("action" = String, Path, description = ACTION)),
    request_body = DecideBody,
    responses((status = 200, description = "Rejected: nothing is done.", body = DirectoryActionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not pending, expired, or the approver is the requester.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn reject(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<DirectoryActionView>, HttpError> {
    decide(&s, &c, id, &bytes, Decision::Reject).await
}

#[utoipa::path(post, operation_id = "cancel_action", path = "/v1/accounts/{account}/connections/{tenant}/actions/{action}/cancel", tag = "actions",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("action" = String, Path, description = ACTION)),
    request_body = ByBody,
    responses((status = 200, description = "Cancelled before it started.", body = DirectoryActionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It already started or ended.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn cancel(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<DirectoryActionView>, HttpError> {
    let b: ByBody = body(&bytes)?;
    let r = cancel_action(&s.actions, &c.account_id, &c.tenant_id, &id, &b.by)
        .await
        .map_err(action_error)?;
    Ok(Json(r.into()))
}

#[utoipa::path(post, operation_id = "retry_action", path = "/v1/accounts/{account}/connections/{tenant}/actions/{action}/retry", tag = "actions",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("action" = String, Path, description = ACTION)),
    request_body = ByBody,
    responses((status = 200, description = "The failed action is queued again.", body = DirectoryActionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It has not failed.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn retry(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<DirectoryActionView>, HttpError> {
    let b: ByBody = body(&bytes)?;
    let r = retry_action(&s.actions, &c.account_id, &c.tenant_id, &id, &b.by)
        .await
        .map_err(action_error)?;
    Ok(Json(r.into()))
}

#[utoipa::path(post, operation_id = "run_action", path = "/v1/accounts/{account}/connections/{tenant}/actions/{action}/run", tag = "actions",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("action" = String, Path, description = ACTION)),
    request_body = RunActionBody,
    responses((status = 200, description = "The action as it is after running it; a password reset's temporary password is in this answer, once.", body = ActionRunView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The runner is not the requester, or the action cannot run now.", body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 502, description = "The directory refused the call.", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn run(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let b: RunActionBody = body(&bytes)?;
    let record = get_action(&s.actions, &c.account_id, &c.tenant_id, &id)
        .await
        .map_err(action_error)?;
    let ran = run_as(&s, &c, record, &b.runner).await?;
    Ok(Json(ran).into_response())
}

#[utoipa::path(post, operation_id = "start_workflow", path = "/v1/accounts/{account}/connections/{tenant}/workflows", tag = "workflows",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("Idempotency-Key" = String, Header, description = "A unique id per request (such as a UUID): the same key answers with the workflow it started.")),
    request_body = StartWorkflowBody,
    responses((status = 202, description = "Started: its steps run now, or wait for their date.", body = WorkflowView, headers(("Location" = String, description = "The workflow."))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn start(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let b: StartWorkflowBody = body(&bytes)?;
    let wf = start_workflow(
        &s.actions,
        StartWorkflow {
            account: c.account_id.clone(),
            tenant: c.tenant_id.clone(),
            template: b.template.into(),
            params: WorkflowParams {
                user: b.user,
                groups: b.groups,
                apps: b
                    .apps
                    .into_iter()
                    .map(|a| AppRef {
                        service_principal_id: a.service_principal_id,
                        app_role_id: a.app_role_id,
                    })
                    .collect(),
                at: b.at,
            },
            requested_by: b.requested_by,
            origin: WorkflowOrigin::Api,
            key: Some(format!("api#{key}")),
        },
    )
    .await
    .map_err(action_error)?;
    let location = format!(
        "/v1/accounts/{}/connections/{}/workflows/{}",
        c.account_id, c.tenant_id, wf.id
    );
    let view: WorkflowView = wf.into();
    Ok(with_location(
        (StatusCode::ACCEPTED, Json(view)).into_response(),
        &location,
    ))
}

#[utoipa::path(get, operation_id = "list_workflows", path = "/v1/accounts/{account}/connections/{tenant}/workflows", tag = "workflows",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The workflows, newest first.", body = WorkflowList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn workflows(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    uri: Uri,
) -> Result<Json<WorkflowList>, HttpError> {
    let q = Query::parse(&uri, &["cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("workflows")?);
    let listing = list_workflows(
        &s.actions,
        &c.account_id,
        &c.tenant_id,
        after.as_deref(),
        limit,
    )
    .await
    .map_err(action_error)?;
    let (items, next_cursor) = page("workflows", listing);
    Ok(Json(WorkflowList { items, next_cursor }))
}

#[utoipa::path(get, operation_id = "show_workflow", path = "/v1/accounts/{account}/connections/{tenant}/workflows/{workflow}", tag = "workflows",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("workflow" = String, Path, description = WORKFLOW)),
    responses((status = 200, body = WorkflowView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn workflow(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
) -> Result<Json<WorkflowView>, HttpError> {
    let wf = get_workflow(&s.actions, &c.account_id, &c.tenant_id, &id)
        .await
        .map_err(action_error)?;
    Ok(Json(wf.into()))
}

#[utoipa::path(post, operation_id = "cancel_workflow", path = "/v1/accounts/{account}/connections/{tenant}/workflows/{workflow}/cancel", tag = "workflows",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("workflow" = String, Path, description = WORKFLOW)),
    request_body = ByBody,
    responses((status = 200, description = "Cancelled, with the not-yet-started actions of its current step.", body = WorkflowView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It already completed or was cancelled.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn cancel_wf(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<Json<WorkflowView>, HttpError> {
    let b: ByBody = body(&bytes)?;
    let wf = cancel_workflow(&s.actions, &c.account_id, &c.tenant_id, &id, &b.by)
        .await
        .map_err(action_error)?;
    Ok(Json(wf.into()))
}

#[utoipa::path(post, operation_id = "retry_workflow", path = "/v1/accounts/{account}/connections/{tenant}/workflows/{workflow}/retry", tag = "workflows",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("workflow" = String, Path, description = WORKFLOW)),
    responses((status = 200, description = "The failed step runs again.", body = WorkflowView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It has not failed.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn retry_wf(
    State(s): State<ApiState>,
    Tenant(c): Tenant,
    Path((_, _, id)): Path<(String, String, String)>,
) -> Result<Json<WorkflowView>, HttpError> {
    let wf = retry_workflow(&s.actions, &c.account_id, &c.tenant_id, &id)
        .await
        .map_err(action_error)?;
    Ok(Json(wf.into()))
}
