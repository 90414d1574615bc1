//! The admin API's routes: each parses its input into core types, calls one core service with
//! the router's ports, and turns the result (or the typed error) into an answer. Nothing is
//! decided here that the CLI would decide differently: both call the same services.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, Connection, TenantId};
use entra_sync_core::services::browse::{
    MirrorUserFilter, MirrorUserStatus, list_host_users, list_mirror_groups, list_mirror_users,
};
use entra_sync_core::services::connect::{
    self, ConnectError, parse_tenant_id, validate_account_id,
};
use entra_sync_core::services::sync_now::{SyncNowError, request_sync};
use entra_sync_core::services::{
    ImportMode, LocalUserError, ProjectError, ProjectOutcome, activate_local_user,
    check_settings_edit, confirm_held, import, load_settings, preview, reject_held, save_settings,
    set_local_status, sign_in_lookup,
};
use entra_sync_core::settings::{ConnectionSettings, SettingsError, changes};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ApiState;
use super::auth::Caller;
use super::params::{Query, bad_param, encode_cursor};
use super::views::*;
use crate::json::from_slice;
use crate::{HttpError, RequestDomain};

type Answer<T> = Result<Json<T>, HttpError>;

const ACCOUNT: &str = "The host product's account id (1 to 128 visible characters).";
const TENANT: &str = "The directory (tenant) id, a GUID.";

/// A service's refusal as a sentence for people: capitalised, ending with a full stop.
pub(super) fn sentence(text: impl std::fmt::Display) -> String {
    let mut m = text.to_string();
    if let Some(first) = m.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    if !m.ends_with('.') {
        m.push('.');
    }
    m
}

fn not_found() -> HttpError {
    HttpError::from_status(StatusCode::NOT_FOUND)
}

fn store_error(e: StoreError) -> HttpError {
    let status = match e.is_retryable() {
        true => StatusCode::SERVICE_UNAVAILABLE,
        false => StatusCode::INTERNAL_SERVER_ERROR,
    };
    HttpError::from_status(status).with_detail(e)
}

fn project_error(e: ProjectError) -> HttpError {
    let (status, code) = match &e {
        ProjectError::NotConnected(_) | ProjectError::RunNotFound(_) => {
            return not_found().with_detail(e);
        }
        ProjectError::Unavailable { .. } => (StatusCode::CONFLICT, "connection_unavailable"),
        ProjectError::Settings(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings"),
        ProjectError::SettingsConflict { .. } => {
            (StatusCode::PRECONDITION_FAILED, "precondition_failed")
        }
        ProjectError::NotHeld { .. } => (StatusCode::CONFLICT, "not_held"),
        ProjectError::CursorBusy { .. } => (StatusCode::CONFLICT, "busy"),
        ProjectError::Sync(s) => {
            let status = match s.is_retryable() {
                true => StatusCode::SERVICE_UNAVAILABLE,
                false => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return HttpError::from_status(status).with_detail(e);
        }
    };
    let message = match &e {
        ProjectError::Settings(SettingsError { problems }) => {
            format!("The settings are not valid: {}.", problems.join("; "))
        }
        e => {
            let mut m = e.to_string();
            m[..1].make_ascii_uppercase();
            m.push('.');
            m
        }
    };
    HttpError::new(status, code, message).with_detail(e)
}

fn local_user_error(e: LocalUserError) -> HttpError {
    let (status, code) = match &e {
        LocalUserError::NotFound(_) => return not_found().with_detail(e),
        LocalUserError::DuplicateEmail(_) => (StatusCode::CONFLICT, "duplicate_email"),
        LocalUserError::BadEmail(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        LocalUserError::NotActivatable { .. } => (StatusCode::CONFLICT, "not_activatable"),
        LocalUserError::NotHostStatus(_) => (StatusCode::CONFLICT, "not_host_status"),
        LocalUserError::Store(_) => {
            let LocalUserError::Store(s) = e else {
                unreachable!()
            };
            return store_error(s);
        }
    };
    let mut m = e.to_string();
    m[..1].make_ascii_uppercase();
    HttpError::new(status, code, m).with_detail(e)
}

fn sync_now_error(e: SyncNowError) -> HttpError {
    match e {
        SyncNowError::NotConnected(_) => not_found().with_detail(e),
        SyncNowError::NotSyncable(ref why) => HttpError::new(
            StatusCode::CONFLICT,
            "not_syncable",
            format!("The directory cannot be synced now: {why}."),
        )
        .with_detail(&e),
        e => {
            let status = match e.is_retryable() {
                true => StatusCode::SERVICE_UNAVAILABLE,
                false => StatusCode::INTERNAL_SERVER_ERROR,
            };
            HttpError::from_status(status).with_detail(e)
        }
    }
}

/// The account of the path, if the caller may see it (else 404, as for no such account).
pub(super) fn account_of(caller: &Caller, raw: &str) -> Result<AccountId, HttpError> {
    let account = validate_account_id(raw)?;
    match caller.may_see(&account) {
        true => Ok(account),
        false => Err(not_found().with_detail("another account's address")),
    }
}

/// The account's connection of the path (404 for none, another account's, or a bad id).
async fn connection(
    s: &ApiState,
    caller: &Caller,
    raw_account: &str,
    raw_tenant: &str,
) -> Result<Connection, HttpError> {
    let account = account_of(caller, raw_account)?;
    let tenant: TenantId = parse_tenant_id(raw_tenant).ok_or_else(not_found)?;
    Ok(connect::account_connection(s.project.connections.as_ref(), &account, &tenant).await?)
}

/// The connection a route's path names (`{account}` and `{tenant}`), if the caller may see it:
/// 404 for none, another account's, or a malformed id, so nobody learns which exist.
pub(crate) struct Tenant(pub Connection);

impl Tenant {
    /// The connection of `account` / `tenant` for `caller` (what the extractor does with the
    /// path; the console, which calls the routes directly, uses this).
    pub(crate) async fn resolve(
        s: &ApiState,
        caller: &Caller,
        account: &str,
        tenant: &str,
    ) -> Result<Self, HttpError> {
        connection(s, caller, account, tenant).await.map(Tenant)
    }
}

impl axum::extract::FromRequestParts<ApiState> for Tenant {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &ApiState,
    ) -> Result<Self, HttpError> {
        let (caller, p) = caller_and_path(parts, s).await?;
        let (Some(a), Some(t)) = (p.get("account"), p.get("tenant")) else {
            return Err(not_found());
        };
        Tenant::resolve(s, &caller, a, t).await
    }
}

/// The caller the authenticator put into the request (401 without one) and the route's path
/// parameters by name (404 when they do not parse): what the path extractors start from.
pub(super) async fn caller_and_path(
    parts: &mut axum::http::request::Parts,
    s: &ApiState,
) -> Result<(Caller, std::collections::BTreeMap<String, String>), HttpError> {
    use axum::extract::FromRequestParts;
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| HttpError::from_status(StatusCode::UNAUTHORIZED))?;
    let Path(p) = Path::<std::collections::BTreeMap<String, String>>::from_request_parts(parts, s)
        .await
        .map_err(|_| not_found())?;
    Ok((caller, p))
}

/// A JSON body (an empty body reads as `{}`).
pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, HttpError> {
    let bytes: &[u8] = match bytes.iter().all(u8::is_ascii_whitespace) {
        true => b"{}",
        false => bytes,
    };
    from_slice(bytes).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("The request body is not valid: {e}."),
        )
        .with_detail(e)
    })
}

pub(super) fn page<T, V: From<T>>(
    kind: &str,
    listing: entra_sync_core::ports::Listing<T>,
) -> (Vec<V>, Option<String>) {
    (
        listing.items.into_iter().map(V::from).collect(),
        listing.next.map(|k| encode_cursor(kind, &k)),
    )
}

#[utoipa::path(get, path = "/v1/health", tag = "health", security(()),
    responses((status = 200, description = "The API answers.", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        api: "v1",
    })
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "This API's OpenAPI 3.1 document.", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        super::document().to_owned(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections", tag = "connections",
    params(("account" = String, Path, description = ACCOUNT),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, body = ConnectionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_connections(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    uri: Uri,
) -> Answer<ConnectionList> {
    let q = Query::parse(&uri, &["cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("connections")?);
    let account = account_of(&caller, &raw)?;
    let mut all =
        connect::list_account_connections(s.project.connections.as_ref(), &account).await?;
    all.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    all.retain(|c| after.as_deref().is_none_or(|a| c.tenant_id.as_str() > a));
    let more = all.len() > limit;
    all.truncate(limit);
    let next_cursor = more
        .then(|| {
            all.last()
                .map(|c| encode_cursor("connections", c.tenant_id.as_str()))
        })
        .flatten();
    Ok(Json(ConnectionList {
        items: all.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections", tag = "connections",
    params(("account" = String, Path, description = ACCOUNT)),
    request_body = StartConnection,
    responses((status = 201, description = "Send the admin to consent_url.", body = ConsentLinkView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn start_connection(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    domain: Option<Extension<RequestDomain>>,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<ConsentLinkView>), HttpError> {
    let account = account_of(&caller, &raw)?;
    let b: StartConnection = body(&bytes)?;
    let expected = match &b.expected_tenant_id {
        Some(t) => Some(parse_tenant_id(t).ok_or_else(|| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request body is not valid: expected_tenant_id: not a tenant id (a GUID).",
            )
        })?),
        None => None,
    };
    let redirect = s.connect_config.redirect_uri_for(domain.as_deref())?;
    let pending = connect::start_consent(
        &s.connect,
        &account,
        &b.label,
        expected,
        s.connect_config.state_ttl,
    )
    .await?;
    consent_link(&s, &pending, &redirect)
}

fn consent_link(
    s: &ApiState,
    pending: &entra_sync_core::ports::PendingConsent,
    redirect: &url::Url,
) -> Result<(StatusCode, Json<ConsentLinkView>), HttpError> {
    let url = s
        .connect_config
        .consent_url(pending, redirect)
        .map_err(|e| {
            HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
                .with_detail(format_args!("consent URL could not be built: {e}"))
        })?;
    Ok((
        StatusCode::CREATED,
        Json(ConsentLinkView {
            consent_url: url.to_string(),
            expires_at: pending.expires_at,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections/{tenant}", tag = "connections",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    responses((status = 200, body = ConnectionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_connection(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
) -> Answer<ConnectionView> {
    Ok(Json(connection(&s, &caller, &a, &t).await?.into()))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/reconnect", tag = "connections",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    request_body = Reconnect,
    responses((status = 201, body = ConsentLinkView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn reconnect(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    domain: Option<Extension<RequestDomain>>,
    Path((a, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<ConsentLinkView>), HttpError> {
    let c = connection(&s, &caller, &a, &t).await?;
    let b: Reconnect = body(&bytes)?;
    let redirect = s.connect_config.redirect_uri_for(domain.as_deref())?;
    let pending = connect::start_reconnect(
        &s.connect,
        &c.account_id,
        &c.tenant_id,
        b.label.as_deref(),
        s.connect_config.state_ttl,
    )
    .await?;
    consent_link(&s, &pending, &redirect)
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/disconnect", tag = "connections",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    responses((status = 200, description = "Disconnected; the synced users are kept.", body = ConnectionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn disconnect(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
) -> Answer<ConnectionView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let done = connect::disconnect(&s.connect, &c.account_id, &c.tenant_id)
        .await
        .map_err(|e: ConnectError| HttpError::from(e))?;
    Ok(Json(done.into()))
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn settings_json(s: &ConnectionSettings) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("version");
    }
    v
}

/// The version `If-Match` names (`"3"`, `W/"3"`, `3`); `*` and absent are `None`.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, HttpError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = v.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.trim_start_matches("W/").trim_matches('"');
    tag.parse::<u64>().map(Some).map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "If-Match must be the ETag of a settings answer, such as \"3\".",
        )
    })
}

fn stale(expected: u64) -> HttpError {
    project_error(ProjectError::SettingsConflict { expected })
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections/{tenant}/settings", tag = "settings",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    responses((status = 200, description = "The settings; the ETag header carries the version.", body = SettingsView,
        headers(("ETag" = String, description = "The settings version, for If-Match."))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_settings(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    let c = connection(&s, &caller, &a, &t).await?;
    let settings = load_settings(s.project.settings.as_ref(), &c.tenant_id)
        .await
        .map_err(store_error)?;
    Ok((
        [(header::ETAG, etag(settings.version))],
        Json(SettingsView {
            version: settings.version,
            settings: settings_json(&settings),
        }),
    )
        .into_response())
}

fn edit_body(bytes: &Bytes) -> Result<serde_json::Value, HttpError> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not valid: not UTF-8 text.",
        )
    })?;
    entra_sync_core::settings::parse_edit(text)
        .map_err(|e| project_error(ProjectError::Settings(e)))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/settings/validate", tag = "settings",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    request_body(content = Object, description = "A JSON Merge Patch of the stored settings (as PATCH takes it)."),
    responses((status = 200, description = "Every problem at once, and what the change would change. Saves nothing.", body = ValidationView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn validate_settings(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Answer<ValidationView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let edit = match edit_body(&bytes) {
        Ok(e) => e,
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            return Ok(Json(ValidationView {
                valid: false,
                problems: vec![e.message().to_owned()],
                changes: Vec::new(),
            }));
        }
        Err(e) => return Err(e),
    };
    match check_settings_edit(&s.project, &c.tenant_id, &edit).await {
        Ok(edit) => Ok(Json(ValidationView {
            valid: true,
            problems: Vec::new(),
            changes: edit.changes.into_iter().map(Into::into).collect(),
        })),
        Err(ProjectError::Settings(e)) => Ok(Json(ValidationView {
            valid: false,
            problems: e.problems,
            changes: Vec::new(),
        })),
        Err(e) => Err(project_error(e)),
    }
}

async fn saved(
    s: &ApiState,
    tenant: &TenantId,
    current: &ConnectionSettings,
    proposed: ConnectionSettings,
) -> Result<Response, HttpError> {
    let (settings, run) = save_settings(&s.project, tenant, proposed, current.version)
        .await
        .map_err(project_error)?;
    Ok((
        [(header::ETAG, etag(settings.version))],
        Json(SettingsSaved {
            version: settings.version,
            changes: changes(current, &settings)
                .into_iter()
                .map(Into::into)
                .collect(),
            settings: settings_json(&settings),
            run: run.into(),
        }),
    )
        .into_response())
}

#[utoipa::path(put, path = "/v1/accounts/{account}/connections/{tenant}/settings", tag = "settings",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("If-Match" = String, Header, description = "The ETag of the settings this replaces (required).")),
    request_body(content = Object, description = "The whole settings document: fields left out take their defaults."),
    responses((status = 200, description = "Saved; the users are projected again at once.", body = SettingsSaved, headers(("ETag" = String, description = "The new version."))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, description = "The settings changed since that version.", body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 428, description = "If-Match is missing.", body = ErrorBody)))]
pub(crate) async fn put_settings(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let c = connection(&s, &caller, &a, &t).await?;
    let expected = if_match(&headers)?.ok_or_else(|| {
        HttpError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "Send If-Match with the ETag of the settings you replace (GET the settings first).",
        )
    })?;
    let edit = edit_body(&bytes)?;
    let current = load_settings(s.project.settings.as_ref(), &c.tenant_id)
        .await
        .map_err(store_error)?;
    if current.version != expected {
        return Err(stale(expected));
    }
    let proposed = ConnectionSettings::default()
        .apply_edit(&edit)
        .map_err(|e| project_error(ProjectError::Settings(e)))?;
    saved(&s, &c.tenant_id, &current, proposed).await
}

#[utoipa::path(patch, path = "/v1/accounts/{account}/connections/{tenant}/settings", tag = "settings",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("If-Match" = Option<String>, Header, description = "The ETag the patch was written against (optional; stale: 412).")),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "A JSON Merge Patch (RFC 7396): fields left out keep their value, null resets one to its default."),
    responses((status = 200, description = "Saved; the users are projected again at once.", body = SettingsSaved, headers(("ETag" = String, description = "The new version."))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn patch_settings(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, HttpError> {
    let c = connection(&s, &caller, &a, &t).await?;
    let expected = if_match(&headers)?;
    let edit = edit_body(&bytes)?;
    let checked = check_settings_edit(&s.project, &c.tenant_id, &edit)
        .await
        .map_err(project_error)?;
    if let Some(v) = expected
        && v != checked.current.version
    {
        return Err(stale(v));
    }
    saved(&s, &c.tenant_id, &checked.current, checked.proposed).await
}

fn mode(req: &ImportRequest) -> Result<ImportMode, HttpError> {
    match req.mode {
        ImportModeView::Selected if req.object_ids.is_empty() => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not valid: object_ids: name at least one directory user for mode selected.",
        )),
        ImportModeView::Selected => Ok(ImportMode::SelectedNew {
            object_ids: req.object_ids.iter().cloned().collect(),
        }),
        _ if !req.object_ids.is_empty() => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not valid: object_ids: only mode selected takes object ids.",
        )),
        ImportModeView::NewAndUpdated => Ok(ImportMode::NewAndUpdated),
        ImportModeView::OnlyUpdated => Ok(ImportMode::OnlyUpdated),
        ImportModeView::OnlyNew => Ok(ImportMode::OnlyNew),
    }
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/preview", tag = "import",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    request_body = ImportRequest,
    responses((status = 200, description = "What the import would do. Writes nothing.", body = PreviewView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn preview_import(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Answer<PreviewView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let req: ImportRequest = body(&bytes)?;
    let m = mode(&req)?;
    let p = preview(&s.project, &c.tenant_id, m)
        .await
        .map_err(project_error)?;
    Ok(Json(PreviewView::new(p, req.mode)))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/import", tag = "import",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    request_body = ImportRequest,
    responses((status = 200, description = "What the import did (the same decisions the preview lists).", body = ImportView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn run_import(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Answer<ImportView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let req: ImportRequest = body(&bytes)?;
    let m = mode(&req)?;
    let r = import(&s.project, &c.tenant_id, m)
        .await
        .map_err(project_error)?;
    Ok(Json(r.into()))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/sync", tag = "runs",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT)),
    responses((status = 202, description = "A sync started; follow its run.", body = SyncStarted, headers(("Location" = String, description = "The run."))),
        (status = 200, description = "A sync was already running: that run.", body = SyncStarted),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn sync_now(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    let c = connection(&s, &caller, &a, &t).await?;
    let r = request_sync(&s.sync, &c.tenant_id)
        .await
        .map_err(sync_now_error)?;
    let location = format!(
        "/v1/accounts/{}/connections/{}/runs/{}",
        c.account_id, c.tenant_id, r.run.run_id
    );
    let status = match r.started {
        true => StatusCode::ACCEPTED,
        false => StatusCode::OK,
    };
    let mut response = (
        status,
        Json(SyncStarted {
            started: r.started,
            run: r.run.into(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections/{tenant}/runs", tag = "runs",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The activity log, newest first.", body = RunList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_runs(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    uri: Uri,
) -> Answer<RunList> {
    let q = Query::parse(&uri, &["cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("runs")?);
    let c = connection(&s, &caller, &a, &t).await?;
    let listing = s
        .project
        .runs
        .list_runs_page(&c.tenant_id, after.as_deref(), limit)
        .await
        .map_err(store_error)?;
    let (items, next_cursor) = page("runs", listing);
    Ok(Json(RunList { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections/{tenant}/runs/{run}", tag = "runs",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("run" = String, Path, description = "The run id.")),
    responses((status = 200, body = RunView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_run(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t, run)): Path<(String, String, String)>,
) -> Answer<RunView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let run = s
        .project
        .runs
        .get_run(&c.tenant_id, &run)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    Ok(Json(run.into()))
}

fn decider(d: &Decision) -> String {
    d.by.as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or("api")
        .chars()
        .take(128)
        .collect()
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/runs/{run}/confirm", tag = "runs",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("run" = String, Path, description = "The held run's id.")),
    request_body = Decision,
    responses((status = 200, description = "The held deactivations are applied.", body = ConfirmView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The run is not held.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn confirm_run(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t, run)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Answer<ConfirmView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let d: Decision = body(&bytes)?;
    let outcome = confirm_held(&s.project, &c.tenant_id, &run, &decider(&d))
        .await
        .map_err(project_error)?;
    let outcome = match outcome {
        ProjectOutcome::Applied(_) | ProjectOutcome::Held(_) => "applied",
        ProjectOutcome::ClaimedElsewhere => "claimed_elsewhere",
    };
    let run = s
        .project
        .runs
        .get_run(&c.tenant_id, &run)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    Ok(Json(ConfirmView {
        outcome: outcome.to_owned(),
        run: run.into(),
    }))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/connections/{tenant}/runs/{run}/reject", tag = "runs",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT), ("run" = String, Path, description = "The held run's id.")),
    request_body = Decision,
    responses((status = 200, description = "Nothing held is applied; the next run reads the whole directory.", body = RunView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn reject_run(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t, run)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Answer<RunView> {
    let c = connection(&s, &caller, &a, &t).await?;
    let d: Decision = body(&bytes)?;
    let run = reject_held(&s.project, &c.tenant_id, &run, &decider(&d))
        .await
        .map_err(project_error)?;
    Ok(Json(run.into()))
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections/{tenant}/users", tag = "directory",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("status" = Option<String>, Query, description = "enabled, disabled or removed."),
        ("group" = Option<String>, Query, description = "Direct members of this group (object id)."),
        ("department" = Option<String>, Query, description = "This department (without case)."),
        ("email_prefix" = Option<String>, Query, description = "Emails starting with this (without case)."),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The mirror's users in object-id order; a page may be short (even empty) while next_cursor is present.", body = DirectoryUserList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_directory_users(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    uri: Uri,
) -> Answer<DirectoryUserList> {
    let q = Query::parse(
        &uri,
        &[
            "status",
            "group",
            "department",
            "email_prefix",
            "cursor",
            "limit",
        ],
    )?;
    let (limit, after) = (q.limit()?, q.cursor("users")?);
    let status = q
        .get("status")
        .map(|v| {
            MirrorUserStatus::parse(v)
                .ok_or_else(|| bad_param("status", "give enabled, disabled or removed"))
        })
        .transpose()?;
    let filter = MirrorUserFilter {
        status,
        group: q.get("group").map(str::to_owned),
        department: q.get("department").map(str::to_owned),
        email_prefix: q.get("email_prefix").map(str::to_owned),
    };
    let c = connection(&s, &caller, &a, &t).await?;
    let listing = list_mirror_users(
        s.project.mirror.as_ref(),
        s.project.local_users.as_ref(),
        &c.tenant_id,
        &filter,
        after.as_deref(),
        limit,
    )
    .await
    .map_err(store_error)?;
    let (items, next_cursor) = page("users", listing);
    Ok(Json(DirectoryUserList { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/accounts/{account}/connections/{tenant}/groups", tag = "directory",
    params(("account" = String, Path, description = ACCOUNT), ("tenant" = String, Path, description = TENANT),
        ("removed" = Option<bool>, Query, description = "true: also groups removed from the directory (default false)."),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The mirror's groups in object-id order.", body = GroupList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_groups(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((a, t)): Path<(String, String)>,
    uri: Uri,
) -> Answer<GroupList> {
    let q = Query::parse(&uri, &["removed", "cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("groups")?);
    let removed = match q.get("removed") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_param("removed", "give true or false")),
    };
    let c = connection(&s, &caller, &a, &t).await?;
    let listing = list_mirror_groups(
        s.project.mirror.as_ref(),
        &c.tenant_id,
        !removed,
        after.as_deref(),
        limit,
    )
    .await
    .map_err(store_error)?;
    let (items, next_cursor) = page("groups", listing);
    Ok(Json(GroupList { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/accounts/{account}/host-users", tag = "host users",
    params(("account" = String, Path, description = ACCOUNT),
        ("status" = Option<HostStatus>, Query, description = "Only users of this status."),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page."),
        ("limit" = Option<usize>, Query, description = "Items per page, 1 to 200 (default 50).")),
    responses((status = 200, description = "The host product's users in local-id order; a page may be short while next_cursor is present.", body = HostUserList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_host_users_route(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    uri: Uri,
) -> Answer<HostUserList> {
    let q = Query::parse(&uri, &["status", "cursor", "limit"])?;
    let (limit, after) = (q.limit()?, q.cursor("host-users")?);
    let status = q
        .get("status")
        .map(|v| {
            serde_json::from_value::<HostStatus>(serde_json::Value::String(v.to_owned()))
                .map_err(|_| {
                    bad_param(
                        "status",
                        "give pending, active, deactivated, disabled_in_directory or deleted_locally",
                    )
                })
        })
        .transpose()?;
    let account = account_of(&caller, &raw)?;
    let listing = list_host_users(
        s.project.local_users.as_ref(),
        &account,
        status.map(Into::into),
        after.as_deref(),
        limit,
    )
    .await
    .map_err(store_error)?;
    let (items, next_cursor) = page("host-users", listing);
    Ok(Json(HostUserList { items, next_cursor }))
}

#[utoipa::path(post, path = "/v1/accounts/{account}/host-users/{local_id}/activate", tag = "host users",
    params(("account" = String, Path, description = ACCOUNT), ("local_id" = String, Path, description = "The host product's user id.")),
    request_body = Activate,
    responses((status = 200, body = HostUserView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not activatable; the message says why.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn activate(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((raw, local_id)): Path<(String, String)>,
    bytes: Bytes,
) -> Answer<HostUserView> {
    let account = account_of(&caller, &raw)?;
    let b: Activate = body(&bytes)?;
    let u = activate_local_user(
        s.project.local_users.as_ref(),
        s.project.mirror.as_ref(),
        s.project.clock.as_ref(),
        &account,
        &local_id,
        b.force,
    )
    .await
    .map_err(local_user_error)?;
    Ok(Json(u.into()))
}

#[utoipa::path(delete, path = "/v1/accounts/{account}/host-users/{local_id}", tag = "host users",
    params(("account" = String, Path, description = ACCOUNT), ("local_id" = String, Path, description = "The host product's user id.")),
    responses((status = 200, description = "Deleted in the host product (the next sync recreates it if it still matches and recreating is on).", body = HostUserView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_host_user(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((raw, local_id)): Path<(String, String)>,
) -> Answer<HostUserView> {
    let account = account_of(&caller, &raw)?;
    let u = set_local_status(
        s.project.local_users.as_ref(),
        s.project.clock.as_ref(),
        &account,
        &local_id,
        entra_sync_core::provision::LocalStatus::DeletedLocally,
    )
    .await
    .map_err(local_user_error)?;
    Ok(Json(u.into()))
}

/// The sign-in lookup's question (in the body: an email is personal data, kept out of URLs and
/// access logs).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInQuestion {
    pub email: String,
}

#[utoipa::path(post, path = "/v1/accounts/{account}/sign-in-lookup", tag = "host users",
    params(("account" = String, Path, description = ACCOUNT)),
    request_body = SignInQuestion,
    responses((status = 200, description = "The user's status and roles, and whether it may sign in.", body = SignInView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, description = "No user with that email in the account.", body = ErrorBody), (status = 415, body = ErrorBody)))]
pub(crate) async fn sign_in(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    bytes: Bytes,
) -> Answer<SignInView> {
    let account = account_of(&caller, &raw)?;
    let q: SignInQuestion = body(&bytes)?;
    let found = sign_in_lookup(
        s.project.local_users.as_ref(),
        s.project.mirror.as_ref(),
        &account,
        &q.email,
    )
    .await
    .map_err(store_error)?
    .ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No user with this email in the account.",
        )
    })?;
    Ok(Json(found.into()))
}

/// A console sign-in address for one account.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConsoleSessionView {
    /// Open this path on the API's origin in the browser (or the host product's iframe): it
    /// signs the browser in to `account_id`'s console once. Send it to nobody else.
    pub login_path: String,
    pub account_id: String,
    /// The address stops working at this time, and after its first use.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// How long the console session it opens lasts, in seconds.
    pub session_seconds: i64,
}

#[utoipa::path(post, path = "/v1/accounts/{account}/console-sessions", tag = "console",
    operation_id = "create_console_session",
    params(("account" = String, Path, description = ACCOUNT)),
    responses((status = 201, description = "A one-time, short-lived sign-in address for the account's console.", body = ConsoleSessionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, description = "Another account's address.", body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create_console_session(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<ConsoleSessionView>), HttpError> {
    let account = account_of(&caller, &raw)?;
    let (ticket, expires_at) = s.console.mint_ticket(&account).await.map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(ConsoleSessionView {
            login_path: format!("/console/login?ticket={ticket}"),
            account_id: account.0,
            expires_at,
            session_seconds: s.console.session_ttl().num_seconds(),
        }),
    ))
}
