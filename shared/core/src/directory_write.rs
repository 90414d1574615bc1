//! Writes to the directory (the "actions" half of the product): the [`DirectoryWriter`] port,
//! its typed outcomes and errors, the least-privileged permission of every write kind, the
//! rule that says which groups can take member writes, and [`MemoryDirectoryWriter`], an
//! in-memory fake for service and handler tests.
//!
//! The Graph adapter (`entra-sync-graph`) implements the port; docs/actions.md ("Graph
//! writes") lists each kind's request, success code, permission and error mapping.
//!
//! Outcomes: a write that changed the directory is [`WriteOutcome::Applied`]; one that found
//! the directory already in the wanted state (Graph's "already a member", "not a member", an
//! existing app role assignment, a user already deleted or restored) is
//! [`WriteOutcome::AlreadyInEffect`]. Both are success: an action retried after a lost answer
//! ends the same way as one that ran once.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::TenantId;
use crate::ports::Secret;

/// The app role id Graph uses for "default access": an assignment to an application that
/// defines no app roles (or when no role is given).
pub const DEFAULT_ACCESS_ROLE: &str = "00000000-0000-0000-0000-000000000000";

/// The directory role an app needs, besides `User-PasswordProfile.ReadWrite.All`, to reset
/// passwords without a signed-in user.
pub const PASSWORD_RESET_DIRECTORY_ROLE: &str = "User Administrator";

/// The template id of the User Administrator directory role (the same in every tenant).
pub const USER_ADMINISTRATOR_ROLE_ID: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";

/// One kind of directory write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    AddGroupMember,
    RemoveGroupMember,
    AssignAppRole,
    RemoveAppRole,
    RevokeSessions,
    BlockSignIn,
    UnblockSignIn,
    ResetPassword,
    DeleteUser,
    RestoreUser,
}

impl WriteKind {
    pub const ALL: [WriteKind; 10] = [
        WriteKind::AddGroupMember,
        WriteKind::RemoveGroupMember,
        WriteKind::AssignAppRole,
        WriteKind::RemoveAppRole,
        WriteKind::RevokeSessions,
        WriteKind::BlockSignIn,
        WriteKind::UnblockSignIn,
        WriteKind::ResetPassword,
        WriteKind::DeleteUser,
        WriteKind::RestoreUser,
    ];

    /// Stable snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::AddGroupMember => "add_group_member",
            WriteKind::RemoveGroupMember => "remove_group_member",
            WriteKind::AssignAppRole => "assign_app_role",
            WriteKind::RemoveAppRole => "remove_app_role",
            WriteKind::RevokeSessions => "revoke_sessions",
            WriteKind::BlockSignIn => "block_sign_in",
            WriteKind::UnblockSignIn => "unblock_sign_in",
            WriteKind::ResetPassword => "reset_password",
            WriteKind::DeleteUser => "delete_user",
            WriteKind::RestoreUser => "restore_user",
        }
    }

    /// Inverse of [`WriteKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether sending the same request a second time, after an answer was lost, cannot add a
    /// second effect. True for every kind whose repeat Graph answers with "already done"
    /// (mapped to [`WriteOutcome::AlreadyInEffect`]) or which sets a value (PATCH). False for
    /// revoking sessions: a repeat revokes again (harmless, but a second write). Adapters only
    /// re-send a write whose outcome is unknown (timeout, dropped connection, 5xx) when this
    /// is true; otherwise they return [`WriteError::Transient`] with `maybe_applied` set.
    pub fn safe_to_resend(self) -> bool {
        !matches!(self, WriteKind::RevokeSessions)
    }
}

impl fmt::Display for WriteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six application permissions the write kinds need, least privileged each.
pub const WRITE_PERMISSIONS: [&str; 6] = [
    "GroupMember.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "User.RevokeSessions.All",
    "User.EnableDisableAccount.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.DeleteRestore.All",
];

/// The least-privileged Microsoft Graph application permission a write kind needs.
pub fn required_permission(kind: WriteKind) -> &'static str {
    match kind {
        WriteKind::AddGroupMember | WriteKind::RemoveGroupMember => "GroupMember.ReadWrite.All",
        WriteKind::AssignAppRole | WriteKind::RemoveAppRole => "AppRoleAssignment.ReadWrite.All",
        WriteKind::RevokeSessions => "User.RevokeSessions.All",
        WriteKind::BlockSignIn | WriteKind::UnblockSignIn => "User.EnableDisableAccount.All",
        WriteKind::ResetPassword => "User-PasswordProfile.ReadWrite.All",
        WriteKind::DeleteUser | WriteKind::RestoreUser => "User.DeleteRestore.All",
    }
}

/// Every application permission that lets the app do `kind`: the least-privileged one first,
/// then the broader ones Graph also accepts. `User.ReadWrite.All` is deliberately not listed
/// for password resets: Graph refuses app-only resets with it alone.
pub fn sufficient_permissions(kind: WriteKind) -> &'static [&'static str] {
    match kind {
        WriteKind::AddGroupMember | WriteKind::RemoveGroupMember => &[
            "GroupMember.ReadWrite.All",
            "Group.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteKind::AssignAppRole | WriteKind::RemoveAppRole => &["AppRoleAssignment.ReadWrite.All"],
        WriteKind::RevokeSessions => &[
            "User.RevokeSessions.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteKind::BlockSignIn | WriteKind::UnblockSignIn => &[
            "User.EnableDisableAccount.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteKind::ResetPassword => &["User-PasswordProfile.ReadWrite.All"],
        WriteKind::DeleteUser | WriteKind::RestoreUser => &[
            "User.DeleteRestore.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
    }
}

/// The least-privileged permissions for a set of kinds (what a reconsent must ask for when
/// those kinds are enabled), sorted.
pub fn permissions_for(kinds: impl IntoIterator<Item = WriteKind>) -> BTreeSet<&'static str> {
    kinds.into_iter().map(required_permission).collect()
}

/// A plain sentence on what `permission` allows and how a tenant's administrator grants it.
/// Unknown names get the generic part only.
pub fn how_to_grant(permission: &str) -> String {
    let allows = match permission {
        "GroupMember.ReadWrite.All" => "lets the app add and remove members of groups",
        "AppRoleAssignment.ReadWrite.All" => {
            "lets the app assign users to enterprise applications and remove those assignments"
        }
        "User.RevokeSessions.All" => "lets the app sign users out of every session",
        "User.EnableDisableAccount.All" => "lets the app block and unblock users' sign-in",
        "User-PasswordProfile.ReadWrite.All" => "lets the app reset users' passwords",
        "User.DeleteRestore.All" => "lets the app delete users and restore deleted users",
        _ => "is a Microsoft Graph application permission",
    };
    format!(
        "{permission} {allows}. An administrator of the tenant grants it by enabling this action \
         for the connection and approving the consent request that follows (Microsoft Entra \
         admin center: Enterprise applications > entra-sync > Permissions shows what is granted)."
    )
}

/// A plain sentence on how to give the app the directory role password resets need.
pub fn how_to_assign_password_reset_role() -> String {
    format!(
        "Resetting passwords without a signed-in user also needs the app's service principal to \
         hold a directory role such as {PASSWORD_RESET_DIRECTORY_ROLE}: in the Microsoft Entra \
         admin center open Roles & admins > {PASSWORD_RESET_DIRECTORY_ROLE} > Add assignments \
         and select the entra-sync enterprise application (role template id \
         {USER_ADMINISTRATOR_ROLE_ID}). Resetting an administrator's password needs a higher \
         role, such as Privileged Authentication Administrator."
    )
}

/// The application permissions a tenant's access token carries (its `roles` claim).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantedPermissions(BTreeSet<String>);

impl GrantedPermissions {
    pub fn new<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(roles.into_iter().map(Into::into).collect())
    }

    /// Whether this exact permission was granted (names compare case-insensitively, as Entra
    /// treats them).
    pub fn contains(&self, permission: &str) -> bool {
        self.0.iter().any(|p| p.eq_ignore_ascii_case(permission))
    }

    /// Whether any permission that lets the app do `kind` was granted.
    pub fn allows(&self, kind: WriteKind) -> bool {
        sufficient_permissions(kind)
            .iter()
            .any(|p| self.contains(p))
    }

    /// The permission to ask for when `kind` is not allowed.
    pub fn missing_for(&self, kind: WriteKind) -> Option<&'static str> {
        (!self.allows(kind)).then(|| required_permission(kind))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The directory's answer to a write that succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    /// The write changed the directory.
    Applied { request_id: Option<String> },
    /// The directory was already in the wanted state; nothing changed.
    AlreadyInEffect { request_id: Option<String> },
}

impl WriteOutcome {
    /// Graph's `request-id` of the answering response.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            WriteOutcome::Applied { request_id } | WriteOutcome::AlreadyInEffect { request_id } => {
                request_id.as_deref()
            }
        }
    }

    pub fn is_applied(&self) -> bool {
        matches!(self, WriteOutcome::Applied { .. })
    }
}

/// Why a group cannot take member writes through Graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotATargetReason {
    /// Mail-enabled, not security-enabled, not a Microsoft 365 group: Exchange manages it.
    DistributionList,
    /// Mail- and security-enabled, not a Microsoft 365 group: Exchange manages it.
    MailEnabledSecurityGroup,
    /// Members are computed from a rule (`groupTypes` has `DynamicMembership`).
    DynamicMembership,
    /// Synchronized from on-premises Active Directory: change it there.
    OnPremisesSynced,
}

impl fmt::Display for NotATargetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotATargetReason::DistributionList => {
                "it is a distribution list, whose members are managed in Exchange Online"
            }
            NotATargetReason::MailEnabledSecurityGroup => {
                "it is a mail-enabled security group, whose members are managed in Exchange Online"
            }
            NotATargetReason::DynamicMembership => {
                "it has dynamic membership: its members follow its membership rule"
            }
            NotATargetReason::OnPremisesSynced => {
                "it is synchronized from on-premises Active Directory; change its members there"
            }
        })
    }
}

/// The group properties that decide whether Graph accepts member writes (`groupTypes`,
/// `mailEnabled`, `securityEnabled`, `membershipRule`, `onPremisesSyncEnabled`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTraits {
    pub group_types: Vec<String>,
    pub mail_enabled: Option<bool>,
    pub security_enabled: Option<bool>,
    pub membership_rule: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
}

impl GroupTraits {
    fn has_type(&self, t: &str) -> bool {
        self.group_types.iter().any(|g| g.eq_ignore_ascii_case(t))
    }

    /// Why Graph refuses member writes to this group, or `None` when it accepts them.
    /// Synchronized and dynamic come first: they hold whatever the mail flags say.
    pub fn membership_refusal(&self) -> Option<NotATargetReason> {
        if self.on_premises_sync_enabled == Some(true) {
            return Some(NotATargetReason::OnPremisesSynced);
        }
        if self.has_type("DynamicMembership")
            || self
                .membership_rule
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty())
        {
            return Some(NotATargetReason::DynamicMembership);
        }
        if self.mail_enabled == Some(true) && !self.has_type("Unified") {
            return Some(if self.security_enabled == Some(true) {
                NotATargetReason::MailEnabledSecurityGroup
            } else {
                NotATargetReason::DistributionList
            });
        }
        None
    }
}

/// An app role to assign: the enterprise application (its service principal's object id) and
/// one of its app roles; `None` means default access ([`DEFAULT_ACCESS_ROLE`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRoleRef {
    pub service_principal_id: String,
    pub app_role_id: Option<String>,
}

impl AppRoleRef {
    /// The role id sent to Graph.
    pub fn app_role_id(&self) -> &str {
        self.app_role_id.as_deref().unwrap_or(DEFAULT_ACCESS_ROLE)
    }
}

/// One app role assignment of a user (`GET /users/{id}/appRoleAssignments`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRoleAssignment {
    /// The assignment's id: what removal needs.
    pub id: String,
    pub app_role_id: String,
    pub principal_id: String,
    /// The service principal's object id.
    pub resource_id: String,
    pub resource_display_name: Option<String>,
    pub created_date_time: Option<String>,
}

impl AppRoleAssignment {
    /// Whether this assignment is the given role (default access when `None`).
    pub fn is_for(&self, role: &AppRoleRef) -> bool {
        self.resource_id
            .eq_ignore_ascii_case(&role.service_principal_id)
            && self.app_role_id.eq_ignore_ascii_case(role.app_role_id())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a write failed. Every variant that followed a Graph response carries its `request-id`.
/// Display texts are for people: they name what is missing and how to fix it, never only
/// "Insufficient privileges".
#[derive(Debug, Error)]
pub enum WriteError {
    /// The user, group, service principal or assignment does not exist (or, for restore, is
    /// not among the deleted items).
    #[error("{what} was not found in the directory")]
    NotFound {
        what: String,
        request_id: Option<String>,
    },
    /// The app lacks an application permission (403 `Authorization_RequestDenied`).
    #[error(
        "the app is missing the {permission} permission: {}",
        how_to_grant(permission)
    )]
    MissingPermission {
        permission: String,
        request_id: Option<String>,
    },
    /// The token carries the permission, but Graph still refused a password reset: the app's
    /// service principal lacks a directory role.
    #[error(
        "the app holds {permission} but Graph refused the password reset: {}",
        how_to_assign_password_reset_role()
    )]
    MissingDirectoryRole {
        permission: String,
        request_id: Option<String>,
    },
    /// The group cannot take member writes through Graph.
    #[error("group {group_id} cannot be changed by entra-sync: {reason}")]
    NotATarget {
        group_id: String,
        reason: NotATargetReason,
        request_id: Option<String>,
    },
    /// 429 (or 503 with `Retry-After`) after the adapter's bounded retries.
    #[error("Microsoft Graph throttled the write{}", retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    Throttled {
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },
    /// A network failure or a 5xx. `maybe_applied`: the request may have reached Graph and
    /// taken effect (the answer was lost); the caller's idempotency decides what to do.
    #[error("Microsoft Graph could not be reached or failed (status {})", status.map_or_else(|| "none".to_owned(), |s| s.to_string()))]
    Transient {
        status: Option<u16>,
        maybe_applied: bool,
        request_id: Option<String>,
        #[source]
        source: Option<Source>,
    },
    /// The tenant's consent was revoked or a policy blocks the app: an admin must reconnect.
    #[error("the directory needs to be reconnected by an administrator ({code})")]
    NeedsReauthorization { code: String },
    /// The request itself is unusable (an empty or malformed id); nothing was sent.
    #[error("invalid write request: {reason}")]
    InvalidInput { reason: String },
    /// Anything else Graph refused; repeating the same request will not help.
    #[error("Microsoft Graph refused the write ({status} {code}): {message}")]
    Permanent {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
}

impl WriteError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            WriteError::Throttled { .. } | WriteError::Transient { .. }
        )
    }

    /// Graph's `request-id` of the failing response, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            WriteError::NotFound { request_id, .. }
            | WriteError::MissingPermission { request_id, .. }
            | WriteError::MissingDirectoryRole { request_id, .. }
            | WriteError::NotATarget { request_id, .. }
            | WriteError::Throttled { request_id, .. }
            | WriteError::Transient { request_id, .. }
            | WriteError::Permanent { request_id, .. } => request_id.as_deref(),
            WriteError::NeedsReauthorization { .. } | WriteError::InvalidInput { .. } => None,
        }
    }
}

/// Writes to one tenant's directory, by object id. Retries of throttling (honouring
/// `Retry-After`) happen inside, bounded; what comes out is final for this call. Group writes
/// take a group id and a member's object id; user writes take the user's object id.
#[async_trait]
pub trait DirectoryWriter: Send + Sync {
    /// `POST /groups/{group}/members/$ref`. Already a member: `AlreadyInEffect`.
    async fn add_group_member(
        &self,
        tenant: &TenantId,
        group_id: &str,
        member_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `DELETE /groups/{group}/members/{member}/$ref`. Not a member: `AlreadyInEffect`.
    async fn remove_group_member(
        &self,
        tenant: &TenantId,
        group_id: &str,
        member_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `POST /users/{user}/appRoleAssignments`. The same role already assigned:
    /// `AlreadyInEffect`.
    async fn assign_app_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
        role: &AppRoleRef,
    ) -> Result<WriteOutcome, WriteError>;

    /// `GET /users/{user}/appRoleAssignments` (every page): what removal needs.
    async fn app_role_assignments(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, WriteError>;

    /// `DELETE /users/{user}/appRoleAssignments/{assignment}`. Already gone: `AlreadyInEffect`.
    async fn remove_app_role_assignment(
        &self,
        tenant: &TenantId,
        user_id: &str,
        assignment_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `POST /users/{user}/revokeSignInSessions`.
    async fn revoke_sign_in_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `PATCH /users/{user}` `{"accountEnabled": false}`.
    async fn block_sign_in(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `PATCH /users/{user}` `{"accountEnabled": true}`.
    async fn unblock_sign_in(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `PATCH /users/{user}` with `passwordProfile` (`forceChangePasswordNextSignIn: true`).
    /// The password never appears in logs, errors or `Debug` output.
    async fn reset_password(
        &self,
        tenant: &TenantId,
        user_id: &str,
        password: &Secret,
    ) -> Result<WriteOutcome, WriteError>;

    /// `DELETE /users/{user}` (soft delete; restorable for 30 days). Already in deleted items:
    /// `AlreadyInEffect`.
    async fn delete_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// `POST /directory/deletedItems/{user}/restore`. Already live: `AlreadyInEffect`.
    async fn restore_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError>;

    /// The application permissions the tenant's consent grants now (the `roles` claim of a
    /// freshly acquired access token).
    async fn granted_permissions(
        &self,
        tenant: &TenantId,
    ) -> Result<GrantedPermissions, WriteError>;
}

// ---------------------------------------------------------------------------------------------
// In-memory fake

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Debug)]
struct FakeUser {
    enabled: bool,
    deleted: bool,
}

#[derive(Clone, Debug, Default)]
struct FakeGroup {
    traits: GroupTraits,
    members: BTreeSet<String>,
}

#[derive(Default)]
struct FakeTenant {
    users: BTreeMap<String, FakeUser>,
    groups: BTreeMap<String, FakeGroup>,
    /// Service principal id -> app role ids it defines.
    apps: BTreeMap<String, BTreeSet<String>>,
    /// User id -> assignments.
    assignments: BTreeMap<String, Vec<AppRoleAssignment>>,
    granted: GrantedPermissions,
    password_role: bool,
    next_assignment: u64,
}

#[derive(Default)]
struct FakeState {
    tenants: HashMap<TenantId, FakeTenant>,
    /// Every call per kind (failed ones included).
    calls: BTreeMap<(TenantId, WriteKind), u64>,
    /// Calls that changed the fake directory.
    applied: BTreeMap<(TenantId, WriteKind), u64>,
    /// Scripted failures, taken before the fake looks at its directory.
    failures: HashMap<WriteKind, VecDeque<WriteError>>,
    password_resets: BTreeMap<(TenantId, String), u64>,
    requests: u64,
}

/// An in-memory directory behind the [`DirectoryWriter`] port, for service and handler tests:
/// users, groups (with their traits), enterprise applications and assignments per tenant;
/// permissions checked like Graph checks them; scripted failures; and counters of calls and
/// applied effects per (tenant, kind), so tests can prove an action ran exactly once.
/// Passwords are never stored, only counted.
#[derive(Default)]
pub struct MemoryDirectoryWriter {
    state: Mutex<FakeState>,
}

impl MemoryDirectoryWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_tenant<R>(&self, tenant: &TenantId, f: impl FnOnce(&mut FakeTenant) -> R) -> R {
        let mut state = lock(&self.state);
        f(state.tenants.entry(tenant.clone()).or_default())
    }

    /// Adds (or resets) a live, enabled user.
    pub fn add_user(&self, tenant: &TenantId, user_id: &str) {
        self.with_tenant(tenant, |t| {
            t.users.insert(
                user_id.to_owned(),
                FakeUser {
                    enabled: true,
                    deleted: false,
                },
            );
        });
    }

    /// Adds (or replaces) a group with the given traits and no members.
    pub fn add_group(&self, tenant: &TenantId, group_id: &str, traits: GroupTraits) {
        self.with_tenant(tenant, |t| {
            t.groups.insert(
                group_id.to_owned(),
                FakeGroup {
                    traits,
                    members: BTreeSet::new(),
                },
            );
        });
    }

    /// Adds an enterprise application (service principal) defining these app roles; default
    /// access is always assignable.
    pub fn add_app(&self, tenant: &TenantId, service_principal_id: &str, app_role_ids: &[&str]) {
        self.with_tenant(tenant, |t| {
            t.apps.insert(
                service_principal_id.to_owned(),
                app_role_ids.iter().map(|s| (*s).to_owned()).collect(),
            );
        });
    }

    /// The permissions the tenant's token carries (default: none).
    pub fn grant(&self, tenant: &TenantId, permissions: GrantedPermissions) {
        self.with_tenant(tenant, |t| t.granted = permissions);
    }

    /// Grants every write permission of [`WRITE_PERMISSIONS`] and the password-reset role.
    pub fn grant_all(&self, tenant: &TenantId) {
        self.with_tenant(tenant, |t| {
            t.granted = GrantedPermissions::new(WRITE_PERMISSIONS);
            t.password_role = true;
        });
    }

    /// Whether the app holds the directory role password resets need (default: no).
    pub fn set_password_reset_role(&self, tenant: &TenantId, held: bool) {
        self.with_tenant(tenant, |t| t.password_role = held);
    }

    /// The next call of `kind` (any tenant) fails with `error`; several queue up in order.
    pub fn fail_next(&self, kind: WriteKind, error: WriteError) {
        lock(&self.state)
            .failures
            .entry(kind)
            .or_default()
            .push_back(error);
    }

    /// Calls of `kind` for `tenant` so far (failed ones included).
    pub fn calls(&self, tenant: &TenantId, kind: WriteKind) -> u64 {
        lock(&self.state)
            .calls
            .get(&(tenant.clone(), kind))
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `kind` for `tenant` that changed the directory.
    pub fn applied(&self, tenant: &TenantId, kind: WriteKind) -> u64 {
        lock(&self.state)
            .applied
            .get(&(tenant.clone(), kind))
            .copied()
            .unwrap_or(0)
    }

    /// Calls of every kind, all tenants.
    pub fn total_calls(&self) -> u64 {
        lock(&self.state).calls.values().sum()
    }

    /// Members of a group, sorted (`None`: no such group).
    pub fn members(&self, tenant: &TenantId, group_id: &str) -> Option<Vec<String>> {
        let state = lock(&self.state);
        let group = state.tenants.get(tenant)?.groups.get(group_id)?;
        Some(group.members.iter().cloned().collect())
    }

    /// `Some(enabled)` for a live user, `None` for an unknown or deleted one.
    pub fn user_enabled(&self, tenant: &TenantId, user_id: &str) -> Option<bool> {
        let state = lock(&self.state);
        let user = state.tenants.get(tenant)?.users.get(user_id)?;
        (!user.deleted).then_some(user.enabled)
    }

    /// Whether the user exists and is in deleted items.
    pub fn is_deleted(&self, tenant: &TenantId, user_id: &str) -> bool {
        let state = lock(&self.state);
        state
            .tenants
            .get(tenant)
            .and_then(|t| t.users.get(user_id))
            .is_some_and(|u| u.deleted)
    }

    /// How many password resets landed for the user.
    pub fn password_resets(&self, tenant: &TenantId, user_id: &str) -> u64 {
        lock(&self.state)
            .password_resets
            .get(&(tenant.clone(), user_id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The common frame of every write: count, scripted failure, permission, then `apply`
    /// (which returns whether the directory changed).
    fn write(
        &self,
        tenant: &TenantId,
        kind: WriteKind,
        apply: impl FnOnce(&mut FakeTenant) -> Result<bool, WriteError>,
    ) -> Result<WriteOutcome, WriteError> {
        let mut state = lock(&self.state);
        *state.calls.entry((tenant.clone(), kind)).or_default() += 1;
        state.requests += 1;
        let request_id = Some(format!("fake-{}", state.requests));
        if let Some(error) = state.failures.get_mut(&kind).and_then(VecDeque::pop_front) {
            return Err(error);
        }
        let t = state.tenants.entry(tenant.clone()).or_default();
        if let Some(permission) = t.granted.missing_for(kind) {
            return Err(WriteError::MissingPermission {
                permission: permission.to_owned(),
                request_id,
            });
        }
        let changed = apply(t).map_err(|e| with_request_id(e, request_id.clone()))?;
        if changed {
            *state.applied.entry((tenant.clone(), kind)).or_default() += 1;
            Ok(WriteOutcome::Applied { request_id })
        } else {
            Ok(WriteOutcome::AlreadyInEffect { request_id })
        }
    }
}

fn with_request_id(error: WriteError, id: Option<String>) -> WriteError {
    match error {
        WriteError::NotFound { what, .. } => WriteError::NotFound {
            what,
            request_id: id,
        },
        WriteError::NotATarget {
            group_id, reason, ..
        } => WriteError::NotATarget {
            group_id,
            reason,
            request_id: id,
        },
        other => other,
    }
}

fn not_found(what: impl Into<String>) -> WriteError {
    WriteError::NotFound {
        what: what.into(),
        request_id: None,
    }
}

impl FakeTenant {
    fn live_user(&mut self, id: &str) -> Result<&mut FakeUser, WriteError> {
        self.users
            .get_mut(id)
            .filter(|u| !u.deleted)
            .ok_or_else(|| not_found(format!("user {id}")))
    }

    fn writable_group(&mut self, id: &str) -> Result<&mut FakeGroup, WriteError> {
        let group = self
            .groups
            .get_mut(id)
            .ok_or_else(|| not_found(format!("group {id}")))?;
        if let Some(reason) = group.traits.membership_refusal() {
            return Err(WriteError::NotATarget {
                group_id: id.to_owned(),
                reason,
                request_id: None,
            });
        }
        Ok(group)
    }
}

#[async_trait]
impl DirectoryWriter for MemoryDirectoryWriter {
    async fn add_group_member(
        &self,
        tenant: &TenantId,
        group_id: &str,
        member_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::AddGroupMember, |t| {
            let member_exists = t.users.get(member_id).is_some_and(|u| !u.deleted)
                || t.groups.contains_key(member_id);
            let group = t.writable_group(group_id)?;
            if group.members.contains(member_id) {
                return Ok(false);
            }
            if !member_exists {
                return Err(not_found(format!("member {member_id}")));
            }
            Ok(group.members.insert(member_id.to_owned()))
        })
    }

    async fn remove_group_member(
        &self,
        tenant: &TenantId,
        group_id: &str,
        member_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::RemoveGroupMember, |t| {
            Ok(t.writable_group(group_id)?.members.remove(member_id))
        })
    }

    async fn assign_app_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
        role: &AppRoleRef,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::AssignAppRole, |t| {
            t.live_user(user_id)?;
            let roles = t.apps.get(&role.service_principal_id).ok_or_else(|| {
                not_found(format!(
                    "enterprise application {}",
                    role.service_principal_id
                ))
            })?;
            let role_id = role.app_role_id();
            if role_id != DEFAULT_ACCESS_ROLE && !roles.contains(role_id) {
                return Err(not_found(format!(
                    "app role {role_id} of enterprise application {}",
                    role.service_principal_id
                )));
            }
            t.next_assignment += 1;
            let id = format!("assignment-{}", t.next_assignment);
            let list = t.assignments.entry(user_id.to_owned()).or_default();
            if list.iter().any(|a| a.is_for(role)) {
                return Ok(false);
            }
            list.push(AppRoleAssignment {
                id,
                app_role_id: role_id.to_owned(),
                principal_id: user_id.to_owned(),
                resource_id: role.service_principal_id.clone(),
                resource_display_name: None,
                created_date_time: None,
            });
            Ok(true)
        })
    }

    async fn app_role_assignments(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, WriteError> {
        let mut state = lock(&self.state);
        let t = state.tenants.entry(tenant.clone()).or_default();
        t.live_user(user_id)?;
        Ok(t.assignments.get(user_id).cloned().unwrap_or_default())
    }

    async fn remove_app_role_assignment(
        &self,
        tenant: &TenantId,
        user_id: &str,
        assignment_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::RemoveAppRole, |t| {
            t.live_user(user_id)?;
            let list = t.assignments.entry(user_id.to_owned()).or_default();
            let before = list.len();
            list.retain(|a| a.id != assignment_id);
            Ok(list.len() != before)
        })
    }

    async fn revoke_sign_in_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::RevokeSessions, |t| {
            t.live_user(user_id)?;
            Ok(true)
        })
    }

    async fn block_sign_in(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::BlockSignIn, |t| {
            let user = t.live_user(user_id)?;
            // Graph answers 204 either way; the fake reports the change it made.
            Ok(std::mem::replace(&mut user.enabled, false))
        })
    }

    async fn unblock_sign_in(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::UnblockSignIn, |t| {
            let user = t.live_user(user_id)?;
            Ok(!std::mem::replace(&mut user.enabled, true))
        })
    }

    async fn reset_password(
        &self,
        tenant: &TenantId,
        user_id: &str,
        password: &Secret,
    ) -> Result<WriteOutcome, WriteError> {
        if password.expose().is_empty() {
            return Err(WriteError::InvalidInput {
                reason: "the new password is empty".into(),
            });
        }
        let outcome = self.write(tenant, WriteKind::ResetPassword, |t| {
            t.live_user(user_id)?;
            if !t.password_role {
                return Err(WriteError::MissingDirectoryRole {
                    permission: required_permission(WriteKind::ResetPassword).to_owned(),
                    request_id: None,
                });
            }
            Ok(true)
        })?;
        *lock(&self.state)
            .password_resets
            .entry((tenant.clone(), user_id.to_owned()))
            .or_default() += 1;
        Ok(outcome)
    }

    async fn delete_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::DeleteUser, |t| {
            let user = t
                .users
                .get_mut(user_id)
                .ok_or_else(|| not_found(format!("user {user_id}")))?;
            if user.deleted {
                return Ok(false);
            }
            user.deleted = true;
            for group in t.groups.values_mut() {
                group.members.remove(user_id);
            }
            Ok(true)
        })
    }

    async fn restore_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<WriteOutcome, WriteError> {
        self.write(tenant, WriteKind::RestoreUser, |t| {
            let user = t
                .users
                .get_mut(user_id)
                .ok_or_else(|| not_found(format!("deleted user {user_id}")))?;
            Ok(std::mem::replace(&mut user.deleted, false))
        })
    }

    async fn granted_permissions(
        &self,
        tenant: &TenantId,
    ) -> Result<GrantedPermissions, WriteError> {
        Ok(self.with_tenant(tenant, |t| t.granted.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn traits(types: &[&str], mail: bool, security: bool) -> GroupTraits {
        GroupTraits {
            group_types: types.iter().map(|s| (*s).to_owned()).collect(),
            mail_enabled: Some(mail),
            security_enabled: Some(security),
            membership_rule: None,
            on_premises_sync_enabled: None,
        }
    }

    #[test]
    fn every_kind_has_a_least_privileged_permission_listed_first() {
        for kind in WriteKind::ALL {
            let required = required_permission(kind);
            assert_eq!(sufficient_permissions(kind)[0], required, "{kind}");
            assert!(WRITE_PERMISSIONS.contains(&required), "{kind}");
            assert_eq!(WriteKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(
            permissions_for(WriteKind::ALL).len(),
            WRITE_PERMISSIONS.len(),
            "every write permission is needed by some kind"
        );
        assert_eq!(
            permissions_for([WriteKind::BlockSignIn, WriteKind::UnblockSignIn]),
            BTreeSet::from(["User.EnableDisableAccount.All"])
        );
    }

    #[test]
    fn only_revoking_sessions_is_unsafe_to_resend() {
        let unsafe_kinds: Vec<_> = WriteKind::ALL
            .into_iter()
            .filter(|k| !k.safe_to_resend())
            .collect();
        assert_eq!(unsafe_kinds, vec![WriteKind::RevokeSessions]);
    }

    #[test]
    fn granted_permissions_cover_kinds_including_broader_grants() {
        let none = GrantedPermissions::default();
        assert_eq!(
            none.missing_for(WriteKind::AddGroupMember),
            Some("GroupMember.ReadWrite.All")
        );
        let directory = GrantedPermissions::new(["Directory.ReadWrite.All"]);
        assert!(directory.allows(WriteKind::RemoveGroupMember));
        assert!(directory.allows(WriteKind::DeleteUser));
        assert!(
            !directory.allows(WriteKind::ResetPassword),
            "password resets need their own permission"
        );
        assert!(!directory.allows(WriteKind::AssignAppRole));
        let user_rw = GrantedPermissions::new(["user.readwrite.all"]);
        assert!(
            user_rw.allows(WriteKind::BlockSignIn),
            "names are case-insensitive"
        );
        assert!(!user_rw.allows(WriteKind::ResetPassword));
        let all = GrantedPermissions::new(WRITE_PERMISSIONS);
        assert!(WriteKind::ALL.into_iter().all(|k| all.allows(k)));
    }

    #[test]
    fn group_kinds_that_refuse_member_writes() {
        assert_eq!(traits(&[], false, true).membership_refusal(), None);
        assert_eq!(traits(&["Unified"], true, false).membership_refusal(), None);
        assert_eq!(traits(&["Unified"], true, true).membership_refusal(), None);
        assert_eq!(
            traits(&[], true, false).membership_refusal(),
            Some(NotATargetReason::DistributionList)
        );
        assert_eq!(
            traits(&[], true, true).membership_refusal(),
            Some(NotATargetReason::MailEnabledSecurityGroup)
        );
        assert_eq!(
            traits(&["Unified", "DynamicMembership"], true, false).membership_refusal(),
            Some(NotATargetReason::DynamicMembership)
        );
        let mut rule_only = traits(&[], false, true);
        rule_only.membership_rule = Some("user.department -eq \"Sales\"".into());
        assert_eq!(
            rule_only.membership_refusal(),
            Some(NotATargetReason::DynamicMembership)
        );
        let mut synced = traits(&["DynamicMembership"], true, false);
        synced.on_premises_sync_enabled = Some(true);
        assert_eq!(
            synced.membership_refusal(),
            Some(NotATargetReason::OnPremisesSynced)
        );
        let mut cloud = traits(&[], false, true);
        cloud.on_premises_sync_enabled = Some(false);
        assert_eq!(cloud.membership_refusal(), None);
    }

    #[test]
    fn error_texts_name_the_fix_not_just_insufficient_privileges() {
        let e = WriteError::MissingPermission {
            permission: "GroupMember.ReadWrite.All".into(),
            request_id: Some("r1".into()),
        };
        let text = e.to_string();
        assert!(text.contains("GroupMember.ReadWrite.All"), "{text}");
        assert!(text.contains("consent"), "{text}");
        assert_eq!(e.request_id(), Some("r1"));
        assert!(!e.is_retryable());
        let role = WriteError::MissingDirectoryRole {
            permission: "User-PasswordProfile.ReadWrite.All".into(),
            request_id: None,
        }
        .to_string();
        assert!(role.contains("User Administrator"), "{role}");
        assert!(role.contains("Roles & admins"), "{role}");
        let target = WriteError::NotATarget {
            group_id: "g1".into(),
            reason: NotATargetReason::DistributionList,
            request_id: None,
        }
        .to_string();
        assert!(target.contains("distribution list"), "{target}");
        assert!(
            WriteError::Throttled {
                retry_after: Some(Duration::from_secs(7)),
                request_id: None
            }
            .to_string()
            .contains("retry after 7 s")
        );
        assert!(
            WriteError::Transient {
                status: None,
                maybe_applied: true,
                request_id: None,
                source: None
            }
            .is_retryable()
        );
    }

    #[test]
    fn outcomes_serialize_with_their_request_id() {
        let o = WriteOutcome::AlreadyInEffect {
            request_id: Some("abc".into()),
        };
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({"outcome": "already_in_effect", "request_id": "abc"})
        );
        assert_eq!(o.request_id(), Some("abc"));
        assert!(!o.is_applied());
    }

    #[tokio::test]
    async fn fake_counts_calls_and_effects_and_checks_permissions() {
        let fake = MemoryDirectoryWriter::new();
        let t = TenantId::new("t1");
        fake.add_user(&t, "u1");
        fake.add_group(&t, "g1", traits(&[], false, true));
        fake.add_group(&t, "dl", traits(&[], true, false));

        let denied = fake.add_group_member(&t, "g1", "u1").await.unwrap_err();
        assert!(
            matches!(&denied, WriteError::MissingPermission { permission, .. } if permission == "GroupMember.ReadWrite.All")
        );
        fake.grant_all(&t);
        assert!(
            fake.add_group_member(&t, "g1", "u1")
                .await
                .unwrap()
                .is_applied()
        );
        assert!(
            !fake
                .add_group_member(&t, "g1", "u1")
                .await
                .unwrap()
                .is_applied()
        );
        assert_eq!(fake.calls(&t, WriteKind::AddGroupMember), 3);
        assert_eq!(fake.applied(&t, WriteKind::AddGroupMember), 1);
        assert!(matches!(
            fake.add_group_member(&t, "dl", "u1").await,
            Err(WriteError::NotATarget {
                reason: NotATargetReason::DistributionList,
                ..
            })
        ));
        assert!(matches!(
            fake.add_group_member(&t, "g1", "nobody").await,
            Err(WriteError::NotFound { .. })
        ));

        fake.fail_next(
            WriteKind::BlockSignIn,
            WriteError::Throttled {
                retry_after: None,
                request_id: None,
            },
        );
        assert!(
            fake.block_sign_in(&t, "u1")
                .await
                .unwrap_err()
                .is_retryable()
        );
        assert!(fake.block_sign_in(&t, "u1").await.unwrap().is_applied());
        assert_eq!(fake.user_enabled(&t, "u1"), Some(false));

        fake.set_password_reset_role(&t, false);
        let e = fake
            .reset_password(&t, "u1", &Secret::new("Temp#Pass-1234"))
            .await
            .unwrap_err();
        assert!(matches!(e, WriteError::MissingDirectoryRole { .. }));
        assert!(!format!("{e:?} {e}").contains("Temp#Pass-1234"));
        fake.set_password_reset_role(&t, true);
        fake.reset_password(&t, "u1", &Secret::new("Temp#Pass-1234"))
            .await
            .unwrap();
        assert_eq!(fake.password_resets(&t, "u1"), 1);

        assert!(fake.delete_user(&t, "u1").await.unwrap().is_applied());
        assert_eq!(fake.members(&t, "g1"), Some(vec![]));
        assert!(!fake.delete_user(&t, "u1").await.unwrap().is_applied());
        assert!(fake.restore_user(&t, "u1").await.unwrap().is_applied());
        assert!(!fake.restore_user(&t, "u1").await.unwrap().is_applied());

        fake.add_app(&t, "sp1", &["role-a"]);
        let role = AppRoleRef {
            service_principal_id: "sp1".into(),
            app_role_id: None,
        };
        assert!(
            fake.assign_app_role(&t, "u1", &role)
                .await
                .unwrap()
                .is_applied()
        );
        assert!(
            !fake
                .assign_app_role(&t, "u1", &role)
                .await
                .unwrap()
                .is_applied()
        );
        let list = fake.app_role_assignments(&t, "u1").await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].app_role_id, DEFAULT_ACCESS_ROLE);
        assert!(
            fake.remove_app_role_assignment(&t, "u1", &list[0].id)
                .await
                .unwrap()
                .is_applied()
        );
        assert!(
            !fake
                .remove_app_role_assignment(&t, "u1", &list[0].id)
                .await
                .unwrap()
                .is_applied()
        );
        let other = TenantId::new("t2");
        assert_eq!(fake.calls(&other, WriteKind::AddGroupMember), 0);
    }
}
