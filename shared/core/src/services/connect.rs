//! Connecting a directory: the admin-consent flow's start and callback,
//! the connection lifecycle (Connected -> NeedsReauthorization -> Connected, Disconnected) and
//! the plain words every failure is told in.
//!
//! The flow is app-only admin consent (`/adminconsent`): it returns no authorization code, so
//! there is nothing for PKCE to protect; CSRF protection is the single-use `state` with a short
//! TTL kept server-side ([`ConsentStateStore`]). The `tenant` the callback names is only a claim:
//! it is proven by getting an app token for it and reading `/organization`, whose id must match.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use thiserror::Error;
use tracing::{info, warn};

use crate::error::{DirectoryError, StoreError, VaultError};
use crate::model::{AccountId, Connection, ConnectionStatus, ReauthRetry, TenantId};
use crate::ports::{
    Clock, ConnectionStore, ConsentStateStore, PendingConsent, Secret, SecretVault, TenantDirectory,
};

/// How long a consent link (its `state`) stays valid.
pub const DEFAULT_STATE_TTL: Duration = Duration::minutes(10);
/// Longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// Vault names of the credentials held for one tenant. Client credentials need none today (one
/// app secret serves every tenant); whatever an adapter keeps per tenant (a cached token, a
/// delegated refresh token) lives under these names, so disconnect removes it.
pub fn tenant_secret_names(tenant: &TenantId) -> Vec<String> {
    vec![
        format!("tenants/{tenant}/access-token"),
        format!("tenants/{tenant}/refresh-token"),
    ]
}

/// The ports of the connect function.
#[derive(Clone)]
pub struct ConnectDeps {
    pub consent_states: Arc<dyn ConsentStateStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub directory: Arc<dyn TenantDirectory>,
    pub vault: Arc<dyn SecretVault>,
    pub clock: Arc<dyn Clock>,
}

/// Why the admin-consent page sent the admin back without a consent, from the callback's
/// `error` and the `AADSTSnnnn` code leading its `error_description` (Entra's consent page
/// reports a denial or a cancel that way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentDenial {
    /// AADSTS90094: a tenant policy requires an administrator to approve the app (a request
    /// may be pending).
    ApprovalRequired,
    /// AADSTS90093, 65001, 650056, or `consent_required` without a code: the person who signed
    /// in cannot grant the permissions; an administrator must.
    AdminConsentRequired { code: Option<String> },
    /// `permission_denied`: the admin cancelled.
    Cancelled,
    /// AADSTS65004 or `access_denied`: the admin declined.
    Declined,
    /// Anything else; `error` is the OAuth error name.
    Other { error: String, code: Option<String> },
}

impl ConsentDenial {
    /// Classify the callback's error parameters by the OAuth error name and the AADSTS code.
    pub fn classify(error: &str, description: Option<&str>) -> Self {
        let code = description.and_then(aadsts_code);
        match code {
            Some(90094) => return ConsentDenial::ApprovalRequired,
            Some(c @ (90093 | 65001 | 650056)) => {
                return ConsentDenial::AdminConsentRequired {
                    code: Some(format!("AADSTS{c}")),
                };
            }
            Some(65004) => return ConsentDenial::Declined,
            _ => {}
        }
        match error {
            "permission_denied" => ConsentDenial::Cancelled,
            "access_denied" => ConsentDenial::Declined,
            "consent_required" => ConsentDenial::AdminConsentRequired {
                code: code.map(|c| format!("AADSTS{c}")),
            },
            other => ConsentDenial::Other {
                error: other.to_owned(),
                code: code.map(|c| format!("AADSTS{c}")),
            },
        }
    }
}

impl ConsentDenial {
    /// A short phrase for logs and error chains (the full text is [`ConnectError::message`]).
    pub fn describe(&self) -> String {
        match self {
            ConsentDenial::ApprovalRequired => "an administrator's approval is pending".to_owned(),
            ConsentDenial::AdminConsentRequired { code } => format!(
                "an administrator must consent{}",
                code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
            ),
            ConsentDenial::Cancelled => "the consent was cancelled".to_owned(),
            ConsentDenial::Declined => "the permissions were declined".to_owned(),
            ConsentDenial::Other { error, code } => format!(
                "Microsoft answered {}{}",
                sanitize_code(error),
                code.as_ref().map(|c| format!(", {c}")).unwrap_or_default()
            ),
        }
    }
}

/// The `AADSTSnnnn` code that leads an Entra `error_description`.
pub fn aadsts_code(description: &str) -> Option<u64> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What the consent page sent back, already split into its two shapes. Any `error` means
/// failure, even beside `admin_consent=True` (Entra sends both when an admin declines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentCallback {
    Granted {
        state: Option<Secret>,
        /// The tenant the admin consented in, as claimed by the callback (not yet proven).
        tenant: Option<String>,
    },
    Failed {
        state: Option<Secret>,
        error: String,
        description: Option<String>,
    },
}

/// Every way connecting can fail, each with a plain, actionable message ([`ConnectError::message`]).
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The state is unknown: forged, or already used.
    #[error("unknown or already used consent state")]
    StateUnknown,
    #[error("the consent state expired")]
    StateExpired,
    #[error("consent was not given: {}", .0.describe())]
    Denied(ConsentDenial),
    #[error("the consent callback did not name a valid tenant")]
    MissingTenant,
    #[error("consented in tenant {actual}, expected {expected}")]
    WrongTenant {
        expected: TenantId,
        actual: TenantId,
    },
    #[error("tenant already connected ({})", if *same_account { "to this account" } else { "to another account" })]
    AlreadyConnected { same_account: bool },
    /// No such connection for this account (also when it belongs to another account).
    #[error("connection not found")]
    NotFound,
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl ConnectError {
    /// A short, stable code for API clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::InvalidRequest(_) => "invalid_request",
            ConnectError::StateUnknown => "state_unknown",
            ConnectError::StateExpired => "state_expired",
            ConnectError::Denied(ConsentDenial::ApprovalRequired) => "approval_required",
            ConnectError::Denied(ConsentDenial::AdminConsentRequired { .. }) => {
                "admin_consent_required"
            }
            ConnectError::Denied(ConsentDenial::Cancelled) => "consent_cancelled",
            ConnectError::Denied(ConsentDenial::Declined) => "consent_declined",
            ConnectError::Denied(ConsentDenial::Other { .. }) => "consent_failed",
            ConnectError::MissingTenant => "missing_tenant",
            ConnectError::WrongTenant { .. } => "wrong_tenant",
            ConnectError::AlreadyConnected { .. } => "already_connected",
            ConnectError::NotFound => "not_found",
            ConnectError::Directory(DirectoryError::InsufficientPrivileges { .. }) => {
                "insufficient_privileges"
            }
            ConnectError::Directory(DirectoryError::NeedsReauthorization { .. }) => {
                "consent_not_effective"
            }
            ConnectError::Directory(DirectoryError::Misconfigured { .. }) => "app_misconfigured",
            ConnectError::Directory(e) if e.is_retryable() => "directory_unavailable",
            ConnectError::Directory(_) => "directory_error",
            ConnectError::Store(_) | ConnectError::Vault(_) => "internal",
        }
    }

    /// Whether the same request may work later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Directory(e) => e.is_retryable(),
            ConnectError::Store(e) => e.is_retryable(),
            ConnectError::Vault(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// What the person reads: what happened and what to do. Never carries a secret, and never
    /// names another account.
    pub fn message(&self) -> String {
        match self {
            ConnectError::InvalidRequest(why) => format!("The request is not valid: {why}."),
            ConnectError::StateUnknown => "This consent link is not valid or was already used, so nothing was connected. Start the connection again from the app.".to_owned(),
            ConnectError::StateExpired => format!(
                "This consent link expired (links are valid for {} minutes), so nothing was connected. Start the connection again from the app.",
                DEFAULT_STATE_TTL.num_minutes()
            ),
            ConnectError::Denied(ConsentDenial::ApprovalRequired) => "Your organization requires an administrator to approve this app, and the approval is still pending. Ask a Global Administrator (or Privileged Role Administrator) of the directory to approve it in the Entra admin center (Enterprise applications > Admin consent requests), then connect again.".to_owned(),
            ConnectError::Denied(ConsentDenial::AdminConsentRequired { code }) => format!(
                "Connecting a directory needs an administrator's consent{}. Sign in with a Global Administrator, Privileged Role Administrator or Cloud Application Administrator account of the directory and connect again.",
                code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
            ),
            ConnectError::Denied(ConsentDenial::Cancelled) => "The consent was cancelled, so nothing was connected. Start the connection again when you are ready.".to_owned(),
            ConnectError::Denied(ConsentDenial::Declined) => "The administrator declined the requested permissions, so nothing was connected. The app needs them to read users and groups; connect again and accept them.".to_owned(),
            ConnectError::Denied(ConsentDenial::Other { error, code }) => format!(
                "Microsoft did not complete the consent ({}{}), so nothing was connected. Start the connection again; if it keeps failing, give this code to your support contact.",
                sanitize_code(error),
                code.as_ref().map(|c| format!(", {c}")).unwrap_or_default()
            ),
            ConnectError::MissingTenant => "Microsoft did not say which directory was consented (the tenant details are missing), so nothing was connected. Start the connection again.".to_owned(),
            ConnectError::WrongTenant { expected, actual } => format!(
                "You consented in directory {actual}, but this connection is for directory {expected}. Sign out, sign in with an administrator of directory {expected}, and reconnect."
            ),
            ConnectError::AlreadyConnected { same_account: true } => "This directory is already connected to your account. Use reconnect on the existing connection instead of connecting it again.".to_owned(),
            ConnectError::AlreadyConnected { same_account: false } => "This directory is already connected to another account. A directory can only be connected once; disconnect it there first.".to_owned(),
            ConnectError::NotFound => "No such connection in your account.".to_owned(),
            ConnectError::Directory(DirectoryError::InsufficientPrivileges { permission }) => format!(
                "The consent did not grant the permission {}. In the Entra admin center, open Enterprise applications, select the app, grant admin consent for {} under Permissions, then connect again.",
                permission.as_deref().unwrap_or("the app needs"),
                permission.as_deref().unwrap_or("its permissions")
            ),
            ConnectError::Directory(DirectoryError::NeedsReauthorization { code }) => format!(
                "Microsoft did not issue a token for the directory: {}. If you just consented, wait a minute and connect again; otherwise an administrator must consent again.",
                reauthorization_reason(code)
            ),
            ConnectError::Directory(e @ DirectoryError::Misconfigured { .. }) => format!(
                "Microsoft did not issue a token for the directory because the app is not set up for it: {e}. Nothing was connected; this needs the app's operator, not another consent."
            ),
            ConnectError::Directory(e) if e.is_retryable() => "Microsoft Entra ID is not answering right now. Nothing was connected; try again in a few minutes.".to_owned(),
            ConnectError::Directory(_) => "Microsoft Entra ID refused to give the directory's details, so nothing was connected. Try again; if it keeps failing, contact support.".to_owned(),
            ConnectError::Store(_) | ConnectError::Vault(_) => "Something went wrong on our side and nothing was connected. Try again in a few minutes.".to_owned(),
        }
    }
}

/// Keep only a code's safe characters (it came from the query string and goes into a message).
fn sanitize_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// Plain words for a token failure that needs a new consent, by the AADSTS code Entra's token
/// endpoint puts first in `error_description`.
pub fn reauthorization_reason(code: &str) -> String {
    let what = match code.trim_start_matches("AADSTS") {
        "7000229" => {
            "the app's consent was revoked (its enterprise application is missing from the directory)"
        }
        "65001" => "no administrator has consented to the app",
        "7000112" => "the app is disabled in the directory",
        "53003" => "a Conditional Access policy of the directory blocks the app",
        _ => "the directory refused to issue a token to the app",
    };
    format!("{what} ({})", sanitize_code(code))
}

/// A label as the customer typed it: trimmed, 1 to [`MAX_LABEL_CHARS`] characters, no control
/// characters.
pub fn validate_label(label: &str) -> Result<String, ConnectError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(ConnectError::InvalidRequest("the label is empty".into()));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(ConnectError::InvalidRequest(format!(
            "the label is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(ConnectError::InvalidRequest(
            "the label contains control characters".into(),
        ));
    }
    Ok(label.to_owned())
}

/// A tenant id must be a GUID (the callback's `tenant`, a path segment).
pub fn parse_tenant_id(s: &str) -> Option<TenantId> {
    uuid::Uuid::try_parse(s.trim())
        .ok()
        .map(|u| TenantId::new(u.hyphenated().to_string()))
}

/// An account id: 1 to 128 visible ASCII characters without `/`.
pub fn validate_account_id(s: &str) -> Result<AccountId, ConnectError> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(ConnectError::InvalidRequest(
            "the account id must be 1 to 128 visible characters".into(),
        ));
    }
    Ok(AccountId(s.to_owned()))
}

/// 244 random bits from the operating system (two v4 UUIDs), URL-safe.
fn new_state() -> Secret {
    Secret::new(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// Start a consent for `account`: store a single-use state and return it. `expected_tenant` is
/// set when reconnecting; the consent URL is built by the caller from its configuration.
pub async fn start_consent(
    deps: &ConnectDeps,
    account: &AccountId,
    label: &str,
    expected_tenant: Option<TenantId>,
    ttl: Duration,
) -> Result<PendingConsent, ConnectError> {
    let label = validate_label(label)?;
    let now = deps.clock.now();
    let pending = PendingConsent {
        state: new_state(),
        account_id: account.clone(),
        label,
        expected_tenant,
        created_at: now,
        expires_at: now + ttl,
    };
    deps.consent_states.put_consent_state(&pending).await?;
    info!(account = %account, reconnect = pending.expected_tenant.is_some(), "consent started");
    Ok(pending)
}

/// Start a reconsent of an existing connection of `account` (after NeedsReauthorization, or to
/// refresh it). The label stays unless a new one is given.
pub async fn start_reconnect(
    deps: &ConnectDeps,
    account: &AccountId,
    tenant: &TenantId,
    label: Option<&str>,
    ttl: Duration,
) -> Result<PendingConsent, ConnectError> {
    let existing = account_connection(deps.connections.as_ref(), account, tenant).await?;
    let label = label.unwrap_or(&existing.label).to_owned();
    start_consent(deps, account, &label, Some(tenant.clone()), ttl).await
}

/// Handle the consent callback: consume the state (once), map any error, prove the tenant with
/// a token and `/organization`, and store the connection as Connected. Nothing is stored on
/// any failure.
pub async fn complete_consent(
    deps: &ConnectDeps,
    callback: ConsentCallback,
) -> Result<Connection, ConnectError> {
    let state = match &callback {
        ConsentCallback::Granted { state, .. } | ConsentCallback::Failed { state, .. } => {
            state.clone()
        }
    };
    let state = state
        .filter(|s| !s.expose().is_empty())
        .ok_or(ConnectError::StateUnknown)?;
    let pending = deps
        .consent_states
        .take_consent_state(state.expose())
        .await?
        .ok_or(ConnectError::StateUnknown)?;
    if deps.clock.now() >= pending.expires_at {
        return Err(ConnectError::StateExpired);
    }
    let claimed = match callback {
        ConsentCallback::Failed {
            error, description, ..
        } => {
            return Err(ConnectError::Denied(ConsentDenial::classify(
                &error,
                description.as_deref(),
            )));
        }
        ConsentCallback::Granted { tenant, .. } => tenant
            .as_deref()
            .and_then(parse_tenant_id)
            .ok_or(ConnectError::MissingTenant)?,
    };
    if let Some(expected) = &pending.expected_tenant
        && *expected != claimed
    {
        return Err(ConnectError::WrongTenant {
            expected: expected.clone(),
            actual: claimed,
        });
    }
    let mut existing = deps.connections.get_connection(&claimed).await?;
    let mut reconnect = admit(&pending, existing.as_ref())?;
    // The proof: a token for the tenant and its own description of itself.
    let details = deps.directory.tenant_details(&claimed).await?;
    if details.tenant_id != claimed {
        return Err(ConnectError::WrongTenant {
            expected: claimed,
            actual: details.tenant_id,
        });
    }
    let now = deps.clock.now();
    // The write is conditional on the record the decision was made on: of two accounts
    // connecting the tenant at once, one creates it and the other is told it is taken.
    for _ in 0..CONDITIONAL_ATTEMPTS {
        let connection = Connection {
            tenant_id: claimed.clone(),
            account_id: pending.account_id.clone(),
            label: pending.label.clone(),
            tenant_name: details.name.clone(),
            verified_domains: details.verified_domains.clone(),
            status: ConnectionStatus::Connected,
            connected_at: match (&existing, reconnect) {
                (Some(c), true) if !matches!(c.status, ConnectionStatus::Disconnected) => {
                    c.connected_at
                }
                _ => now,
            },
            // A consent changes what is granted: the record is read again from a fresh token
            // (by the consent callback, or the first action that needs a permission).
            granted_permissions: Default::default(),
        };
        match deps
            .connections
            .replace_connection(&connection, existing.as_ref())
            .await
        {
            Ok(()) => {
                info!(tenant = %connection.tenant_id, account = %connection.account_id, reconnect, "directory connected");
                return Ok(connection);
            }
            Err(StoreError::Conflict(_)) => {
                existing = deps.connections.get_connection(&claimed).await?;
                reconnect = admit(&pending, existing.as_ref())?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(format!("connection {claimed}")).into())
}

/// How often a conditional connection write is decided again after losing a race.
const CONDITIONAL_ATTEMPTS: usize = 3;

/// Whether `pending` may store a connection over `existing`: `Ok(true)` for a reconnect of the
/// same account's connection, `Ok(false)` for a new one. A tenant is held by the account whose
/// connection is Connected or NeedsReauthorization; a disconnected tenant is free for any
/// account (the users synced for the old account stay in that account).
fn admit(pending: &PendingConsent, existing: Option<&Connection>) -> Result<bool, ConnectError> {
    match existing {
        None => Ok(false),
        Some(c) if matches!(c.status, ConnectionStatus::Disconnected) => {
            Ok(c.account_id == pending.account_id)
        }
        Some(c) if c.account_id != pending.account_id => Err(ConnectError::AlreadyConnected {
            same_account: false,
        }),
        Some(c)
            if pending.expected_tenant.is_none()
                && matches!(c.status, ConnectionStatus::Connected) =>
        {
            Err(ConnectError::AlreadyConnected { same_account: true })
        }
        Some(_) => Ok(true),
    }
}

/// One connection of `account`; another account's connection is reported as not found.
pub async fn account_connection(
    connections: &dyn ConnectionStore,
    account: &AccountId,
    tenant: &TenantId,
) -> Result<Connection, ConnectError> {
    connections
        .get_connection(tenant)
        .await?
        .filter(|c| c.account_id == *account)
        .ok_or(ConnectError::NotFound)
}

/// Every connection of `account`, by tenant id.
pub async fn list_account_connections(
    connections: &dyn ConnectionStore,
    account: &AccountId,
) -> Result<Vec<Connection>, ConnectError> {
    let mut list: Vec<Connection> = connections
        .list_connections()
        .await?
        .into_iter()
        .filter(|c| c.account_id == *account)
        .collect();
    list.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    Ok(list)
}

/// Disconnect: remove the credentials held for the tenant and its details, mark it
/// Disconnected (every feature checks the status before it acts, so all stop at once), and keep
/// the synced users. Idempotent. From then on the tenant is free: any account may connect it.
pub async fn disconnect(
    deps: &ConnectDeps,
    account: &AccountId,
    tenant: &TenantId,
) -> Result<Connection, ConnectError> {
    account_connection(deps.connections.as_ref(), account, tenant).await?;
    for name in tenant_secret_names(tenant) {
        match deps.vault.delete_secret(&name).await {
            Ok(()) | Err(VaultError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    deps.directory.forget_tenant(tenant).await;
    // A status change written meanwhile (a failed fetch flagging the connection) is read
    // again; the disconnect wins.
    for _ in 0..CONDITIONAL_ATTEMPTS {
        let existing = account_connection(deps.connections.as_ref(), account, tenant).await?;
        let connection = Connection {
            tenant_name: None,
            verified_domains: Vec::new(),
            status: ConnectionStatus::Disconnected,
            ..existing.clone()
        };
        match deps
            .connections
            .replace_connection(&connection, Some(&existing))
            .await
        {
            Ok(()) => {
                info!(tenant = %tenant, account = %account, "directory disconnected");
                return Ok(connection);
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(format!("connection {tenant}")).into())
}

/// When a token acquisition failed because consent was revoked or a policy blocks the app,
/// the reason to store with NeedsReauthorization; `None` for every other error (a
/// [`DirectoryError::Misconfigured`] is our configuration, not the customer's consent).
pub fn needs_reauthorization(e: &DirectoryError) -> Option<String> {
    match e {
        DirectoryError::NeedsReauthorization { code } => Some(reauthorization_reason(code)),
        _ => None,
    }
}

/// Read-decide-write of one connection, conditional on what was read: `decide` returns the
/// connection to store, or `None` to leave it. A concurrent change is read and decided on
/// again. Returns `(before, after)` when a write landed.
pub async fn update_connection(
    connections: &dyn ConnectionStore,
    tenant: &TenantId,
    decide: impl Fn(&Connection) -> Option<Connection> + Send + Sync,
) -> Result<Option<(Connection, Connection)>, StoreError> {
    for _ in 0..CONDITIONAL_ATTEMPTS {
        let Some(before) = connections.get_connection(tenant).await? else {
            return Ok(None);
        };
        let Some(after) = decide(&before) else {
            return Ok(None);
        };
        match connections.replace_connection(&after, Some(&before)).await {
            Ok(()) => return Ok(Some((before, after))),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!("connection {tenant}")))
}

/// After a failed token attempt at `now` (`e`, a typed directory error): a Connected
/// connection becomes NeedsReauthorization with its first retry in one hour; one that already
/// needs it counts the attempt and waits twice as long (up to a day). A disconnected one stays
/// as it is. Returns the connection as stored, when it changed.
pub async fn mark_needs_reauthorization(
    connections: &dyn ConnectionStore,
    tenant: &TenantId,
    e: &DirectoryError,
    now: DateTime<Utc>,
) -> Result<Option<Connection>, StoreError> {
    let Some(reason) = needs_reauthorization(e) else {
        return Ok(None);
    };
    let changed = update_connection(connections, tenant, |c| {
        let retry = match &c.status {
            ConnectionStatus::Connected => ReauthRetry::default().after_failure(now),
            ConnectionStatus::NeedsReauthorization { retry, .. } => retry.after_failure(now),
            ConnectionStatus::Disconnected => return None,
        };
        Some(Connection {
            status: ConnectionStatus::NeedsReauthorization {
                reason: reason.clone(),
                retry,
            },
            ..c.clone()
        })
    })
    .await?;
    if let Some((_, after)) = &changed {
        warn!(tenant = %tenant, status = %after.status, "directory needs reauthorization");
    }
    Ok(changed.map(|(_, after)| after))
}

/// A fetch reached the directory: a connection that needed reauthorization is Connected
/// again. Returns the retry schedule it had, when it changed.
pub async fn clear_reauthorization(
    connections: &dyn ConnectionStore,
    tenant: &TenantId,
) -> Result<Option<ReauthRetry>, StoreError> {
    let changed = update_connection(connections, tenant, |c| match &c.status {
        ConnectionStatus::NeedsReauthorization { .. } => Some(Connection {
            status: ConnectionStatus::Connected,
            ..c.clone()
        }),
        _ => None,
    })
    .await?;
    Ok(changed.and_then(|(before, _)| match before.status {
        ConnectionStatus::NeedsReauthorization { retry, .. } => {
            info!(tenant = %tenant, attempts = retry.attempts, "directory access restored; reauthorization flag cleared");
            Some(retry)
        }
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_classified_by_code_then_error_name() {
        use ConsentDenial::*;
        assert_eq!(
            ConsentDenial::classify("access_denied", Some("AADSTS90094: needs approval")),
            ApprovalRequired
        );
        assert_eq!(
            ConsentDenial::classify("consent_required", Some("AADSTS65004: denied\r\nTrace")),
            Declined
        );
        assert_eq!(
            ConsentDenial::classify("permission_denied", Some("The admin canceled")),
            Cancelled
        );
        assert_eq!(ConsentDenial::classify("access_denied", None), Declined);
        assert_eq!(
            ConsentDenial::classify("access_denied", Some("AADSTS90093: not allowed")),
            AdminConsentRequired {
                code: Some("AADSTS90093".into())
            }
        );
        assert_eq!(
            ConsentDenial::classify("consent_required", None),
            AdminConsentRequired { code: None }
        );
        assert!(matches!(
            ConsentDenial::classify("server_error", Some("AADSTS50000")),
            Other { error, code: Some(c) } if error == "server_error" && c == "AADSTS50000"
        ));
    }

    #[test]
    fn labels_and_ids_are_validated() {
        assert_eq!(validate_label("  Contoso  ").unwrap(), "Contoso");
        assert!(validate_label(" ").is_err());
        assert!(validate_label("a\u{7}b").is_err());
        assert!(validate_label(&"x".repeat(101)).is_err());
        assert!(parse_tenant_id("not-a-guid").is_none());
        assert_eq!(
            parse_tenant_id("6E9F0C7A-3B8D-4D2E-9A6F-0C4B7D21E9A3").unwrap(),
            TenantId::new("6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3")
        );
        assert!(validate_account_id("acct-1").is_ok());
        assert!(validate_account_id("a/b").is_err());
        assert!(validate_account_id("").is_err());
    }

    #[test]
    fn other_errors_never_echo_arbitrary_text() {
        let e = ConnectError::Denied(ConsentDenial::Other {
            error: "<script>alert(1)</script>".into(),
            code: None,
        });
        assert!(!e.message().contains('<'));
    }

    #[test]
    fn reauthorization_reasons_name_the_cause() {
        assert!(reauthorization_reason("AADSTS7000229").contains("revoked"));
        assert!(reauthorization_reason("AADSTS53003").contains("Conditional Access"));
        assert!(reauthorization_reason("AADSTS7000112").contains("disabled"));
        assert!(needs_reauthorization(&DirectoryError::NotFound).is_none());
    }
}
