//! Directory writes: [`DirectoryWriter`] on [`GraphClient`].
//!
//! One loop sends every write (and the reads that explain a failed write), reusing the
//! client's token cache and retry policy:
//! - 429, and 503 with `Retry-After`, are retried after the server's wait (Graph did not act
//!   on them); a wait longer than `RetryPolicy::max_retry_after` returns `Throttled` at once.
//! - A 401 gets one immediate re-send with a fresh token.
//! - A timeout, a dropped connection or a 5xx leaves the outcome unknown: the write may have
//!   landed. Kinds whose repeat Graph answers with "already done"
//!   ([`WriteKind::safe_to_resend`]) are re-sent with backoff; revoking sessions is not, and
//!   returns `Transient { maybe_applied: true }` for the caller's idempotency to decide.
//! - Everything else is final and classified by status and `error.code` (any nesting
//!   level). Where status and code cannot tell two cases apart, a read decides (is the
//!   group a target, does the member exist, is the user in deleted items); the error
//!   message is only a fallback, for Graph's "already exist" answers.
//!
//! Writes send `x-ms-throttle-priority: normal`. Microsoft asks that `high` be kept for
//! requests a person is waiting on; the executor also runs queued and scheduled steps, so it
//! does not claim `high`. Background delta reads send `low`, so under pressure Graph sheds
//! those before our writes.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_sync_core::directory_write::{
    AppRoleAssignment, AppRoleRef, DEFAULT_ACCESS_ROLE, DirectoryWriter, GrantedPermissions,
    GroupTraits, WriteError, WriteKind, WriteOutcome, required_permission,
};
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::Secret;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use tracing::{Instrument, debug, field};
use url::Url;

use crate::client::{GraphClient, TenantState, check_tenant, header_retry_after, record_failure};
use crate::error::{Failure, graph_error_codes};
use crate::retry::backoff;

/// A final Graph response (2xx, or a 4xx the caller classifies).
#[derive(Debug)]
struct Reply {
    status: u16,
    request_id: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `error.code` values, outermost first.
    fn codes(&self) -> Vec<String> {
        graph_error_codes(&self.body)
    }

    /// The most specific code, or `unknown`.
    fn code(&self) -> String {
        self.codes().pop().unwrap_or_else(|| "unknown".into())
    }

    /// The outermost `error.message`.
    fn message(&self) -> String {
        #[derive(Deserialize)]
        struct Envelope {
            error: Option<Inner>,
        }
        #[derive(Deserialize)]
        struct Inner {
            message: Option<String>,
        }
        serde_json::from_slice::<Envelope>(&self.body)
            .ok()
            .and_then(|e| e.error)
            .and_then(|e| e.message)
            .unwrap_or_default()
    }

    /// Graph's "already exists" answers (duplicate member, duplicate app role assignment):
    /// 409 by status, or the wording of the 400 Graph sends today. The wording is the
    /// fallback: `Request_BadRequest` alone covers many other refusals.
    fn already_exists(&self) -> bool {
        self.status == 409
            || (self.status == 400
                && self
                    .message()
                    .to_ascii_lowercase()
                    .contains("already exist"))
    }

    /// 403 that means "not allowed" (`Authorization_RequestDenied` at any nesting level, or
    /// a generic forbidden code).
    fn denied(&self) -> bool {
        let codes = self.codes();
        self.status == 403
            && (codes.is_empty()
                || codes.iter().any(|c| {
                    ["Authorization_RequestDenied", "Forbidden", "accessDenied"]
                        .iter()
                        .any(|d| c.eq_ignore_ascii_case(d))
                }))
    }

    fn permanent(&self, scrub: Option<&Secret>) -> WriteError {
        let mut message = self.message();
        if let Some(secret) = scrub.map(Secret::expose).filter(|s| !s.is_empty()) {
            message = message.replace(secret, "***");
        }
        WriteError::Permanent {
            status: self.status,
            code: self.code(),
            message,
            request_id: self.request_id.clone(),
        }
    }

    fn applied(&self) -> WriteOutcome {
        WriteOutcome::Applied {
            request_id: self.request_id.clone(),
        }
    }

    fn already(&self) -> WriteOutcome {
        WriteOutcome::AlreadyInEffect {
            request_id: self.request_id.clone(),
        }
    }

    fn not_found(&self, what: impl Into<String>) -> WriteError {
        WriteError::NotFound {
            what: what.into(),
            request_id: self.request_id.clone(),
        }
    }

    fn missing(&self, kind: WriteKind) -> WriteError {
        WriteError::MissingPermission {
            permission: required_permission(kind).to_owned(),
            request_id: self.request_id.clone(),
        }
    }
}

/// What a read of a group said.
enum GroupProbe {
    Missing,
    Found(GroupTraits),
    /// The read failed; no conclusion.
    Unknown,
}

/// The group properties that decide whether it takes member writes.
const GROUP_TRAITS_SELECT: &str =
    "id,groupTypes,mailEnabled,securityEnabled,membershipRule,onPremisesSyncEnabled";

fn from_directory(error: DirectoryError) -> WriteError {
    match error {
        DirectoryError::Throttled { retry_after } => WriteError::Throttled {
            retry_after,
            request_id: None,
        },
        DirectoryError::Transient { status, source } => WriteError::Transient {
            status,
            maybe_applied: false,
            request_id: None,
            source,
        },
        DirectoryError::NeedsReauthorization { code } => WriteError::NeedsReauthorization { code },
        DirectoryError::InsufficientPrivileges { permission } => WriteError::MissingPermission {
            permission: permission.unwrap_or_else(|| "an application permission".into()),
            request_id: None,
        },
        DirectoryError::NotFound => WriteError::NotFound {
            what: "the object".into(),
            request_id: None,
        },
        DirectoryError::Permanent { status, code } => WriteError::Permanent {
            status,
            code,
            message: "the access token could not be obtained".into(),
            request_id: None,
        },
        DirectoryError::ResyncRequired { code } => WriteError::Permanent {
            status: 400,
            code,
            message: "unexpected resync answer to a write".into(),
            request_id: None,
        },
        DirectoryError::InvalidResponse(reason) => WriteError::Permanent {
            status: 0,
            code: "InvalidResponse".into(),
            message: reason,
            request_id: None,
        },
    }
}

/// Object ids go into URL paths (percent-encoded); these would still change the path.
fn check_id(what: &str, id: &str) -> Result<(), WriteError> {
    let bad = id.trim().is_empty()
        || id == "."
        || id == ".."
        || id.len() > 1024
        || id.chars().any(char::is_control);
    if bad {
        return Err(WriteError::InvalidInput {
            reason: format!("the {what} id is empty or malformed"),
        });
    }
    Ok(())
}

/// The `roles` claim of a JWT access token, read without verifying it (the token came from
/// the login endpoint over TLS; the claim only informs messages and the consent record).
/// `None` when the value is not a JWT. No crate for this: a JWT library would verify (and
/// bring a crypto stack) for the one claim we read; splitting and base64url-decoding the
/// payload is the whole job.
pub(crate) fn token_roles(token: &str) -> Option<GrantedPermissions> {
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        roles: Vec<String>,
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some(GrantedPermissions::new(claims.roles))
}

impl GraphClient {
    /// `{graph}/v1.0/{segments...}`, each segment percent-encoded.
    fn v1_url(&self, segments: &[&str]) -> Result<Url, WriteError> {
        let mut url = self.inner.graph_base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| WriteError::InvalidInput {
                    reason: "the Graph base URL cannot take a path".into(),
                })?;
            path.pop_if_empty();
            path.push("v1.0");
            for s in segments {
                path.push(s);
            }
        }
        Ok(url)
    }

    /// A reference to a directory object in a request body.
    fn object_ref(&self, id: &str) -> Result<String, WriteError> {
        Ok(self.v1_url(&["directoryObjects", id])?.to_string())
    }

    /// One write (or explaining read) with bounded retries; returns the final response.
    async fn call(
        &self,
        tenant: &TenantId,
        kind: WriteKind,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, WriteError> {
        check_tenant(tenant).map_err(from_directory)?;
        let state = self.state(tenant);
        let policy = &self.inner.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let resend_ok = method == Method::GET || kind.safe_to_resend();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let bearer = match self.bearer(tenant, &state).await {
                Ok(bearer) => bearer,
                Err(Failure::Retry { error, wait }) => {
                    if attempt >= max_attempts {
                        return Err(from_directory(error));
                    }
                    tokio::time::sleep(wait.unwrap_or_else(|| backoff(policy, attempt))).await;
                    continue;
                }
                Err(Failure::Fatal(error)) => return Err(from_directory(error)),
                Err(Failure::Unauthorized { code }) => {
                    return Err(WriteError::NeedsReauthorization { code });
                }
            };
            let sent = self
                .send_write(&state, method.clone(), &url, body.as_deref(), &bearer.value)
                .await;
            let (reply, retry_after) = match sent {
                Ok(pair) => pair,
                Err(error) => {
                    // Refused connections never reached Graph; anything later may have.
                    let reached = !error.is_connect();
                    let failure = WriteError::Transient {
                        status: None,
                        maybe_applied: reached && method != Method::GET,
                        request_id: None,
                        source: Some(Box::new(error.without_url())),
                    };
                    if (reached && !resend_ok) || attempt >= max_attempts {
                        return Err(failure);
                    }
                    tokio::time::sleep(backoff(policy, attempt)).await;
                    continue;
                }
            };
            let status = reply.status;
            let throttled = status == 429 || (status == 503 && retry_after.is_some());
            let unknown_outcome = status == 408 || (500..=599).contains(&status);
            if status == 401 {
                if refreshed {
                    return Err(WriteError::NeedsReauthorization { code: reply.code() });
                }
                debug!("Graph rejected the access token; refreshing once");
                self.invalidate(&state, bearer.generation).await;
                refreshed = true;
                attempt -= 1;
                continue;
            }
            if !throttled && !unknown_outcome {
                return Ok(reply);
            }
            let error = if throttled {
                WriteError::Throttled {
                    retry_after,
                    request_id: reply.request_id.clone(),
                }
            } else {
                WriteError::Transient {
                    status: Some(status),
                    maybe_applied: method != Method::GET,
                    request_id: reply.request_id.clone(),
                    source: None,
                }
            };
            if (unknown_outcome && !resend_ok) || attempt >= max_attempts {
                return Err(error);
            }
            let delay = match retry_after {
                Some(wait) if wait > policy.max_retry_after => return Err(error),
                Some(wait) => wait,
                None => backoff(policy, attempt),
            };
            debug!(
                attempt,
                status,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "graph write not answered; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP request. The body is never logged (it can hold a password).
    async fn send_write(
        &self,
        state: &TenantState,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        token: &Secret,
    ) -> Result<(Reply, Option<Duration>), reqwest::Error> {
        let client_request_id = uuid::Uuid::new_v4().to_string();
        state.requests.fetch_add(1, Ordering::Relaxed);
        let is_get = method == Method::GET;
        let mut request = self
            .inner
            .http
            .request(method, url.clone())
            .bearer_auth(token.expose())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header("x-ms-throttle-priority", HeaderValue::from_static("normal"))
            .header("client-request-id", client_request_id.as_str());
        match body {
            Some(bytes) => {
                request = request
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(bytes.to_vec());
            }
            // Graph answers 411 to a POST without Content-Length, even with no body (and
            // hyper leaves the header out for an empty body).
            None if !is_get => {
                request = request
                    .header(CONTENT_LENGTH, HeaderValue::from_static("0"))
                    .body(Vec::new());
            }
            None => {}
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = header_retry_after(response.headers());
        if status == 429 {
            state.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let body = response.bytes().await?.to_vec();
        if !is_get {
            // The write's own answer goes on the span; explaining reads do not overwrite it.
            record_failure(status, request_id.as_deref());
        }
        debug!(
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            client_request_id = %client_request_id,
            retry_after_s = retry_after.map(|d| d.as_secs()),
            "graph write answered"
        );
        Ok((
            Reply {
                status,
                request_id,
                body,
            },
            retry_after,
        ))
    }

    async fn write_json(
        &self,
        tenant: &TenantId,
        kind: WriteKind,
        method: Method,
        url: Url,
        body: &Value,
    ) -> Result<Reply, WriteError> {
        let bytes = serde_json::to_vec(body).map_err(|_| WriteError::InvalidInput {
            reason: "the request body could not be encoded".into(),
        })?;
        self.call(tenant, kind, method, url, Some(bytes)).await
    }

    /// `GET /groups/{id}` with the trait properties.
    async fn probe_group(&self, tenant: &TenantId, kind: WriteKind, group_id: &str) -> GroupProbe {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            #[serde(default)]
            group_types: Vec<String>,
            mail_enabled: Option<bool>,
            security_enabled: Option<bool>,
            membership_rule: Option<String>,
            on_premises_sync_enabled: Option<bool>,
        }
        let Ok(mut url) = self.v1_url(&["groups", group_id]) else {
            return GroupProbe::Unknown;
        };
        url.set_query(Some(&format!("$select={GROUP_TRAITS_SELECT}")));
        match self.call(tenant, kind, Method::GET, url, None).await {
            Ok(r) if r.status == 404 => GroupProbe::Missing,
            Ok(r) if r.ok() => match serde_json::from_slice::<Wire>(&r.body) {
                Ok(w) => GroupProbe::Found(GroupTraits {
                    group_types: w.group_types,
                    mail_enabled: w.mail_enabled,
                    security_enabled: w.security_enabled,
                    membership_rule: w.membership_rule,
                    on_premises_sync_enabled: w.on_premises_sync_enabled,
                }),
                Err(_) => GroupProbe::Unknown,
            },
            _ => GroupProbe::Unknown,
        }
    }

    /// Whether `GET {segments}?$select=id` finds the object: `Some(true/false)`, `None` when
    /// the read itself failed.
    async fn exists(&self, tenant: &TenantId, kind: WriteKind, segments: &[&str]) -> Option<bool> {
        let mut url = self.v1_url(segments).ok()?;
        url.set_query(Some("$select=id"));
        match self.call(tenant, kind, Method::GET, url, None).await {
            Ok(r) if r.ok() => Some(true),
            Ok(r) if r.status == 404 => Some(false),
            _ => None,
        }
    }

    /// A user or group with this id exists.
    async fn member_exists(&self, tenant: &TenantId, kind: WriteKind, id: &str) -> Option<bool> {
        match self.exists(tenant, kind, &["users", id]).await {
            Some(false) => self.exists(tenant, kind, &["groups", id]).await,
            other => other,
        }
    }

    /// A failed member write (add or remove) explained: not a target, missing permission,
    /// which object is missing, or already in effect.
    async fn member_write_failed(
        &self,
        tenant: &TenantId,
        kind: WriteKind,
        group_id: &str,
        member_id: &str,
        reply: Reply,
    ) -> Result<WriteOutcome, WriteError> {
        if kind == WriteKind::AddGroupMember && reply.already_exists() {
            return Ok(reply.already());
        }
        if !matches!(reply.status, 400 | 403 | 404) {
            return Err(reply.permanent(None));
        }
        let probe = self.probe_group(tenant, kind, group_id).await;
        if let GroupProbe::Found(traits) = &probe
            && let Some(reason) = traits.membership_refusal()
        {
            return Err(WriteError::NotATarget {
                group_id: group_id.to_owned(),
                reason,
                request_id: reply.request_id,
            });
        }
        match reply.status {
            403 if reply.denied() => Err(reply.missing(kind)),
            404 => {
                if matches!(probe, GroupProbe::Missing) {
                    return Err(reply.not_found(format!("group {group_id}")));
                }
                let member = self.member_exists(tenant, kind, member_id).await;
                match (kind, member) {
                    // Removing a member that exists but is not in the group: nothing to do.
                    (WriteKind::RemoveGroupMember, Some(true)) => Ok(reply.already()),
                    (_, Some(false)) => Err(reply.not_found(format!("member {member_id}"))),
                    _ => Err(reply.not_found(format!("group {group_id} or member {member_id}"))),
                }
            }
            _ => Err(reply.permanent(None)),
        }
    }

    /// The common answer of user writes: 2xx applied; 404 the user; 403 the permission.
    fn user_write_result(
        kind: WriteKind,
        user_id: &str,
        reply: &Reply,
    ) -> Result<WriteOutcome, WriteError> {
        match reply.status {
            s if (200..300).contains(&s) => Ok(reply.applied()),
            404 => Err(reply.not_found(format!("user {user_id}"))),
            403 if reply.denied() => Err(reply.missing(kind)),
            _ => Err(reply.permanent(None)),
        }
    }

    async fn set_account_enabled(
        &self,
        tenant: &TenantId,
        user_id: &str,
        enabled: bool,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = if enabled {
            WriteKind::UnblockSignIn
        } else {
            WriteKind::BlockSignIn
        };
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            let url = self.v1_url(&["users", user_id])?;
            let reply = self
                .write_json(
                    tenant,
                    kind,
                    Method::PATCH,
                    url,
                    &json!({"accountEnabled": enabled}),
                )
                .await?;
            Self::user_write_result(kind, user_id, &reply)
        })
        .await
    }

    /// The `roles` of the token the client holds for `tenant` (fetching one if needed).
    async fn current_roles(&self, tenant: &TenantId) -> Option<GrantedPermissions> {
        let state = self.state(tenant);
        let bearer = self.bearer(tenant, &state).await.ok()?;
        token_roles(bearer.value.expose())
    }
}

/// Runs a write inside a span carrying the tenant, the kind and (once known) Graph's
/// request id and status.
async fn write_span<F, T>(tenant: &TenantId, kind: WriteKind, f: F) -> Result<T, WriteError>
where
    F: std::future::Future<Output = Result<T, WriteError>>,
{
    let span = tracing::debug_span!(
        "graph_write",
        tenant = %tenant,
        kind = kind.as_str(),
        request_id = field::Empty,
        status = field::Empty,
    );
    f.instrument(span).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAssignment {
    id: String,
    app_role_id: String,
    principal_id: String,
    resource_id: String,
    resource_display_name: Option<String>,
    created_date_time: Option<String>,
}

#[derive(Deserialize)]
struct WireList {
    #[serde(default)]
    value: Vec<WireAssignment>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

#[async_trait]
impl DirectoryWriter for GraphClient {
    async fn add_group_member(
        &self,
        tenant: &TenantId,
        group_id: &str,
        member_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::AddGroupMember;
        write_span(tenant, kind, async {
            check_id("group", group_id)?;
            check_id("member", member_id)?;
            let url = self.v1_url(&["groups", group_id, "members", "$ref"])?;
            let body = json!({"@odata.id": self.object_ref(member_id)?});
            let reply = self
                .write_json(tenant, kind, Method::POST, url, &body)
                .await?;
            if reply.ok() {
                return Ok(reply.applied());
            }
            self.member_write_failed(tenant, kind, group_id, member_id, reply)
                .await
        })
        .await
    }

    async fn remove_group_member(
        &self,
        tenant: &TenantId,
        group_id: &str,
        member_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::RemoveGroupMember;
        write_span(tenant, kind, async {
            check_id("group", group_id)?;
            check_id("member", member_id)?;
            let url = self.v1_url(&["groups", group_id, "members", member_id, "$ref"])?;
            let reply = self.call(tenant, kind, Method::DELETE, url, None).await?;
            if reply.ok() {
                return Ok(reply.applied());
            }
            self.member_write_failed(tenant, kind, group_id, member_id, reply)
                .await
        })
        .await
    }

    async fn assign_app_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
        role: &AppRoleRef,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::AssignAppRole;
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            check_id("service principal", &role.service_principal_id)?;
            check_id("app role", role.app_role_id())?;
            let url = self.v1_url(&["users", user_id, "appRoleAssignments"])?;
            let body = json!({
                "principalId": user_id,
                "resourceId": role.service_principal_id,
                "appRoleId": role.app_role_id(),
            });
            let reply = self
                .write_json(tenant, kind, Method::POST, url, &body)
                .await?;
            if reply.ok() {
                return Ok(reply.applied());
            }
            match reply.status {
                400 | 409 => {
                    // An existing assignment of the same role is the answer we want; read it
                    // rather than trust the wording alone.
                    let listed = self.app_role_assignments(tenant, user_id).await;
                    if listed.is_ok_and(|l| l.iter().any(|a| a.is_for(role)))
                        || reply.already_exists()
                    {
                        return Ok(reply.already());
                    }
                    if role.app_role_id() != DEFAULT_ACCESS_ROLE
                        && self
                            .app_role_defined(
                                tenant,
                                &role.service_principal_id,
                                role.app_role_id(),
                            )
                            .await
                            == Some(false)
                    {
                        return Err(reply.not_found(format!(
                            "app role {} of enterprise application {}",
                            role.app_role_id(),
                            role.service_principal_id
                        )));
                    }
                    Err(reply.permanent(None))
                }
                404 => {
                    let sp = self
                        .exists(
                            tenant,
                            kind,
                            &["servicePrincipals", &role.service_principal_id],
                        )
                        .await;
                    Err(match sp {
                        Some(false) => reply.not_found(format!(
                            "enterprise application {}",
                            role.service_principal_id
                        )),
                        _ => reply.not_found(format!("user {user_id}")),
                    })
                }
                403 if reply.denied() => Err(reply.missing(kind)),
                _ => Err(reply.permanent(None)),
            }
        })
        .await
    }

    async fn app_role_assignments(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, WriteError> {
        let kind = WriteKind::RemoveAppRole;
        check_id("user", user_id)?;
        let mut url = self.v1_url(&["users", user_id, "appRoleAssignments"])?;
        let mut out = Vec::new();
        // Bounded: a user has at most a few thousand assignments, 100 per page.
        for _ in 0..1000 {
            let reply = self
                .call(tenant, kind, Method::GET, url.clone(), None)
                .await?;
            match reply.status {
                s if (200..300).contains(&s) => {}
                404 => return Err(reply.not_found(format!("user {user_id}"))),
                403 if reply.denied() => return Err(reply.missing(kind)),
                _ => return Err(reply.permanent(None)),
            }
            let page: WireList =
                serde_json::from_slice(&reply.body).map_err(|_| WriteError::Permanent {
                    status: reply.status,
                    code: "InvalidResponse".into(),
                    message: "the app role assignments page is not valid JSON".into(),
                    request_id: reply.request_id.clone(),
                })?;
            out.extend(page.value.into_iter().map(|a| AppRoleAssignment {
                id: a.id,
                app_role_id: a.app_role_id,
                principal_id: a.principal_id,
                resource_id: a.resource_id,
                resource_display_name: a.resource_display_name,
                created_date_time: a.created_date_time,
            }));
            let Some(next) = page.next else {
                return Ok(out);
            };
            // Our bearer token only ever goes to the configured Graph origin.
            let next = Url::parse(&next)
                .ok()
                .filter(|u| u.origin() == self.inner.graph_base.origin())
                .ok_or_else(|| WriteError::Permanent {
                    status: reply.status,
                    code: "InvalidResponse".into(),
                    message: "the next page link is not on the configured Graph host".into(),
                    request_id: reply.request_id.clone(),
                })?;
            url = next;
        }
        Err(WriteError::Permanent {
            status: 200,
            code: "InvalidResponse".into(),
            message: "the app role assignments did not end".into(),
            request_id: None,
        })
    }

    async fn remove_app_role_assignment(
        &self,
        tenant: &TenantId,
        user_id: &str,
        assignment_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::RemoveAppRole;
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            check_id("assignment", assignment_id)?;
            let url = self.v1_url(&["users", user_id, "appRoleAssignments", assignment_id])?;
            let reply = self.call(tenant, kind, Method::DELETE, url, None).await?;
            match reply.status {
                s if (200..300).contains(&s) => Ok(reply.applied()),
                404 => match self.exists(tenant, kind, &["users", user_id]).await {
                    // The user is there, the assignment is not: already removed.
                    Some(true) => Ok(reply.already()),
                    Some(false) => Err(reply.not_found(format!("user {user_id}"))),
                    None => Err(reply.not_found(format!("assignment {assignment_id}"))),
                },
                403 if reply.denied() => Err(reply.missing(kind)),
                _ => Err(reply.permanent(None)),
            }
        })
        .await
    }

    async fn revoke_sign_in_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::RevokeSessions;
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            let url = self.v1_url(&["users", user_id, "revokeSignInSessions"])?;
            let reply = self.call(tenant, kind, Method::POST, url, None).await?;
            Self::user_write_result(kind, user_id, &reply)
        })
        .await
    }

    async fn block_sign_in(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.set_account_enabled(tenant, user_id, false).await
    }

    async fn unblock_sign_in(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.set_account_enabled(tenant, user_id, true).await
    }

    async fn reset_password(
        &self,
        tenant: &TenantId,
        user_id: &str,
        password: &Secret,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::ResetPassword;
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            if password.expose().is_empty() {
                return Err(WriteError::InvalidInput {
                    reason: "the new password is empty".into(),
                });
            }
            let url = self.v1_url(&["users", user_id])?;
            let body = json!({"passwordProfile": {
                "forceChangePasswordNextSignIn": true,
                "password": password.expose(),
            }});
            let reply = self
                .write_json(tenant, kind, Method::PATCH, url, &body)
                .await?;
            match reply.status {
                s if (200..300).contains(&s) => Ok(reply.applied()),
                404 => Err(reply.not_found(format!("user {user_id}"))),
                403 if reply.denied() => {
                    // With the permission in the token, what is missing is the directory role.
                    let has_permission = self
                        .current_roles(tenant)
                        .await
                        .is_some_and(|roles| roles.allows(kind));
                    Err(if has_permission {
                        WriteError::MissingDirectoryRole {
                            permission: required_permission(kind).to_owned(),
                            request_id: reply.request_id.clone(),
                        }
                    } else {
                        reply.missing(kind)
                    })
                }
                _ => Err(reply.permanent(Some(password))),
            }
        })
        .await
    }

    async fn delete_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::DeleteUser;
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            let url = self.v1_url(&["users", user_id])?;
            let reply = self.call(tenant, kind, Method::DELETE, url, None).await?;
            if reply.status == 404
                && self
                    .exists(tenant, kind, &["directory", "deletedItems", user_id])
                    .await
                    == Some(true)
            {
                return Ok(reply.already());
            }
            Self::user_write_result(kind, user_id, &reply)
        })
        .await
    }

    async fn restore_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        let kind = WriteKind::RestoreUser;
        write_span(tenant, kind, async {
            check_id("user", user_id)?;
            let url = self.v1_url(&["directory", "deletedItems", user_id, "restore"])?;
            let reply = self.call(tenant, kind, Method::POST, url, None).await?;
            match reply.status {
                s if (200..300).contains(&s) => Ok(reply.applied()),
                400 | 404 => match self.exists(tenant, kind, &["users", user_id]).await {
                    Some(true) => Ok(reply.already()),
                    _ if reply.status == 404 => {
                        Err(reply.not_found(format!("deleted user {user_id}")))
                    }
                    _ => Err(reply.permanent(None)),
                },
                403 if reply.denied() => Err(reply.missing(kind)),
                _ => Err(reply.permanent(None)),
            }
        })
        .await
    }

    async fn granted_permissions(
        &self,
        tenant: &TenantId,
    ) -> Result<GrantedPermissions, WriteError> {
        check_tenant(tenant).map_err(from_directory)?;
        // A fresh token: its roles reflect the consent as it is now.
        self.forget_token(tenant).await;
        let state = self.state(tenant);
        let policy = &self.inner.config.retry;
        let mut attempt = 0;
        let bearer = loop {
            attempt += 1;
            match self.bearer(tenant, &state).await {
                Ok(b) => break b,
                Err(Failure::Retry { error, wait }) if attempt < policy.max_attempts.max(1) => {
                    debug!(error = %error, "token request failed; retrying");
                    tokio::time::sleep(wait.unwrap_or_else(|| backoff(policy, attempt))).await;
                }
                Err(Failure::Retry { error, .. } | Failure::Fatal(error)) => {
                    return Err(from_directory(error));
                }
                Err(Failure::Unauthorized { code }) => {
                    return Err(WriteError::NeedsReauthorization { code });
                }
            }
        };
        token_roles(bearer.value.expose()).ok_or_else(|| WriteError::Permanent {
            status: 200,
            code: "UnreadableAccessToken".into(),
            message: "the access token is not a JWT, so its granted permissions cannot be read"
                .into(),
            request_id: None,
        })
    }
}

impl GraphClient {
    /// Whether the enterprise application defines this app role (`None`: could not tell).
    async fn app_role_defined(&self, tenant: &TenantId, sp: &str, role: &str) -> Option<bool> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            #[serde(default)]
            app_roles: Vec<Role>,
        }
        #[derive(Deserialize)]
        struct Role {
            id: String,
        }
        let mut url = self.v1_url(&["servicePrincipals", sp]).ok()?;
        url.set_query(Some("$select=id,appRoles"));
        let reply = self
            .call(tenant, WriteKind::AssignAppRole, Method::GET, url, None)
            .await
            .ok()?;
        if !reply.ok() {
            return None;
        }
        let wire: Wire = serde_json::from_slice(&reply.body).ok()?;
        Some(
            wire.app_roles
                .iter()
                .any(|r| r.id.eq_ignore_ascii_case(role)),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn jwt(payload: &Value) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn roles_are_read_from_the_token_payload() {
        let roles = token_roles(&jwt(
            &json!({"tid": "t", "roles": ["User.Read.All", "GroupMember.ReadWrite.All"]}),
        ))
        .unwrap();
        assert!(roles.allows(WriteKind::AddGroupMember));
        assert!(!roles.allows(WriteKind::DeleteUser));
        let none = token_roles(&jwt(&json!({"tid": "t"}))).unwrap();
        assert!(none.is_empty(), "no roles claim: nothing granted");
        assert!(token_roles("opaque-token").is_none());
        assert!(token_roles("a.b").is_none());
        assert!(token_roles("a.!!!.c").is_none());
        assert!(token_roles("a.b.c.d").is_none());
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        for bad in ["", " ", ".", "..", "a\nb"] {
            assert!(check_id("user", bad).is_err(), "{bad:?}");
        }
        check_id("user", "alice@contoso.com").unwrap();
        check_id("user", "a_ext.com#EXT#@t.onmicrosoft.com").unwrap();
    }

    #[test]
    fn replies_classify_by_status_and_nested_code() {
        let reply = |status: u16, body: Value| Reply {
            status,
            request_id: Some("r".into()),
            body: body.to_string().into_bytes(),
        };
        let nested = reply(
            403,
            json!({"error": {"code": "Forbidden_Generic", "message": "m",
                "innerError": {"code": "Authorization_RequestDenied"}}}),
        );
        assert!(nested.denied());
        assert_eq!(nested.code(), "Authorization_RequestDenied");
        let premium = reply(
            403,
            json!({"error": {"code": "Authentication_RequestFromNonPremiumTenantOrB2CTenant"}}),
        );
        assert!(!premium.denied());
        let dup = reply(
            400,
            json!({"error": {"code": "Request_BadRequest", "message": "One or more added object references already exist for the following modified properties: 'members'."}}),
        );
        assert!(dup.already_exists());
        let other = reply(
            400,
            json!({"error": {"code": "Request_BadRequest", "message": "Cannot Update a mail-enabled security groups and or distribution list."}}),
        );
        assert!(!other.already_exists());
        assert!(reply(409, json!({})).already_exists());
        let secret = Secret::new("Pa$$w0rd-xyz");
        let echoed = reply(
            400,
            json!({"error": {"code": "Request_BadRequest", "message": "Pa$$w0rd-xyz is too weak"}}),
        );
        let text = echoed.permanent(Some(&secret)).to_string();
        assert!(!text.contains("Pa$$w0rd-xyz"), "{text}");
        assert!(text.contains("*** is too weak"), "{text}");
    }
}
