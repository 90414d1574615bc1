//! What the admin API answers: its own types (with their OpenAPI schemas), built from the core's.
//! The API's contract is these types, not the stored records: a stored field can change without
//! changing the API, and nothing stored but not meant for the host product (claims, versions of
//! mirror items, secrets) is ever part of an answer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entra_sync_core::model::{Connection, ConnectionStatus, StoredGroup, StoredUser};
use entra_sync_core::page::RoundMode;
use entra_sync_core::provision::{Action, LocalStatus, LocalUser};
use entra_sync_core::run::{
    BreakerHold, Counts, ProvisioningCounts, RunStatus, StreamProgress, SyncRun, Trigger,
};
use entra_sync_core::services::browse::{MirrorUserStatus, MirrorUserView};
use entra_sync_core::services::{ImportReport, Preview, PreviewItem, SignInLookup};
use entra_sync_core::settings::SettingsChange;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The one error answer: a stable code for programs, a message for people, the request id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `invalid_request`, `unauthorized`, `not_found`, `precondition_failed`, …
    pub error: String,
    /// What went wrong and what to do, in plain words.
    pub message: String,
    /// The request's id (also in the `x-request-id` header and the log line).
    pub request_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the API answers.
    pub status: &'static str,
    /// The API version (`v1`).
    pub api: &'static str,
}

/// A domain the directory verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub name: String,
    pub is_default: bool,
    pub is_initial: bool,
}

/// Why a connection needs the admin's consent again, and what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReauthorizationView {
    /// What the directory answered, in plain words.
    pub reason: String,
    /// What the admin should do.
    pub what_to_do: String,
    /// Failed automatic attempts so far.
    pub attempts: u32,
    /// When the next automatic attempt is due (absent: at the next schedule).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connected,
    NeedsReauthorization,
    Disconnected,
}

/// A connected directory (tenant) of an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub tenant_id: String,
    pub account_id: String,
    pub label: String,
    pub tenant_name: Option<String>,
    pub verified_domains: Vec<DomainView>,
    pub status: ConnectionState,
    /// Set when `status` is `needs_reauthorization`.
    pub reauthorization: Option<ReauthorizationView>,
    pub connected_at: DateTime<Utc>,
    /// The Microsoft Graph application permissions the admin granted.
    pub granted_permissions: Vec<String>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        let (status, reauthorization) = match c.status {
            ConnectionStatus::Connected => (ConnectionState::Connected, None),
            ConnectionStatus::NeedsReauthorization { reason, retry } => (
                ConnectionState::NeedsReauthorization,
                Some(ReauthorizationView {
                    reason,
                    what_to_do: "Ask an administrator of the directory to consent again: reconnect the connection (POST .../reconnect) and open the consent link it returns.".to_owned(),
                    attempts: retry.attempts,
                    next_attempt_at: retry.next_attempt_at,
                }),
            ),
            ConnectionStatus::Disconnected => (ConnectionState::Disconnected, None),
        };
        ConnectionView {
            tenant_id: c.tenant_id.0,
            account_id: c.account_id.0,
            label: c.label,
            tenant_name: c.tenant_name,
            verified_domains: c
                .verified_domains
                .into_iter()
                .map(|d| DomainView {
                    name: d.name,
                    is_default: d.is_default,
                    is_initial: d.is_initial,
                })
                .collect(),
            status,
            reauthorization,
            connected_at: c.connected_at,
            granted_permissions: serde_json::to_value(&c.granted_permissions)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<ConnectionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where to send the admin to consent, and until when the link works.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentLinkView {
    pub consent_url: String,
    pub expires_at: DateTime<Utc>,
}

/// Start a connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartConnection {
    /// The name the connection gets in the host product.
    pub label: String,
    /// When set, the consent must come from this tenant.
    #[serde(default)]
    pub expected_tenant_id: Option<String>,
}

/// Reconnect a connection (consent again).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    /// A new label (absent: keep it).
    #[serde(default)]
    pub label: Option<String>,
}

/// One field a settings change changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// `filters.departments`, `group_roles[1]`, `breaker.max_count`.
    pub path: String,
    /// The value before (absent: not set).
    pub before: Option<serde_json::Value>,
    /// The value after (absent: not set any more).
    pub after: Option<serde_json::Value>,
}

impl From<SettingsChange> for ChangeView {
    fn from(c: SettingsChange) -> Self {
        ChangeView {
            path: c.path,
            before: c.before,
            after: c.after,
        }
    }
}

/// A connection's settings (filters, mapping, rules, breaker, actions, HR), as docs/api.md and
/// docs/sync-semantics.md describe them. The `ETag` header carries the version.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// Bumped by every save; 0: never saved (the defaults).
    pub version: u64,
    /// Every setting (the defaults where never set).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

/// What a settings check found: every problem at once, and what the change would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationView {
    pub valid: bool,
    pub problems: Vec<String>,
    pub changes: Vec<ChangeView>,
}

/// Saved settings, what changed, and the re-projection run the save started.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsSaved {
    pub version: u64,
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub changes: Vec<ChangeView>,
    pub run: RunView,
}

/// Which decisions a preview shows or an import applies.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ImportModeView {
    /// Every new user and every change to existing users.
    NewAndUpdated,
    /// Changes to users the host product already has; no new users.
    OnlyUpdated,
    /// New users only.
    OnlyNew,
    /// Only the new users named in `object_ids`.
    Selected,
}

/// A preview or an import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[serde(default = "default_mode")]
    pub mode: ImportModeView,
    /// Directory object ids of the new users to import (mode `selected`).
    #[serde(default)]
    pub object_ids: Vec<String>,
}

fn default_mode() -> ImportModeView {
    ImportModeView::NewAndUpdated
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionView {
    Create,
    Link,
    Update,
    Deactivate,
    Reactivate,
    DisableInDirectory,
    Freeze,
    Unchanged,
    Skip,
}

impl From<&Action> for ActionView {
    fn from(a: &Action) -> Self {
        match a {
            Action::Create => ActionView::Create,
            Action::Link => ActionView::Link,
            Action::Update => ActionView::Update,
            Action::Deactivate => ActionView::Deactivate,
            Action::Reactivate => ActionView::Reactivate,
            Action::DisableInDirectory => ActionView::DisableInDirectory,
            Action::Freeze => ActionView::Freeze,
            Action::Unchanged => ActionView::Unchanged,
            Action::Skip => ActionView::Skip,
        }
    }
}

/// One decision of a preview or an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewItemView {
    pub object_id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub action: ActionView,
    pub reason: String,
    /// Changed fields (updates).
    pub changed: Vec<String>,
    pub local_id: Option<String>,
    pub status_after: Option<HostStatus>,
}

impl From<PreviewItem> for PreviewItemView {
    fn from(i: PreviewItem) -> Self {
        PreviewItemView {
            action: ActionView::from(&i.action),
            object_id: i.object_id,
            display_name: i.display_name,
            email: i.email,
            reason: i.reason,
            changed: i.changed,
            local_id: i.local_id,
            status_after: i.status_after.map(HostStatus::from),
        }
    }
}

/// What an import would do: every decision except "unchanged", and the counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    pub tenant_id: String,
    pub settings_version: u64,
    pub mode: ImportModeView,
    pub counts: ProvisioningView,
    pub items: Vec<PreviewItemView>,
}

impl PreviewView {
    pub fn new(p: Preview, mode: ImportModeView) -> Self {
        PreviewView {
            tenant_id: p.tenant_id.0,
            settings_version: p.settings_version,
            mode,
            counts: p.counts.into(),
            items: p.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// What an import did: its run and every decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    pub run: RunView,
    pub items: Vec<PreviewItemView>,
}

impl From<ImportReport> for ImportView {
    fn from(r: ImportReport) -> Self {
        ImportView {
            run: r.run.into(),
            items: r.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a run did to the host product's users.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvisioningView {
    pub created: u64,
    pub linked: u64,
    pub updated: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub disabled_in_directory: u64,
    pub frozen: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Deactivations the circuit breaker holds.
    pub held: u64,
}

impl From<ProvisioningCounts> for ProvisioningView {
    fn from(c: ProvisioningCounts) -> Self {
        ProvisioningView {
            created: c.created,
            linked: c.linked,
            updated: c.updated,
            deactivated: c.deactivated,
            reactivated: c.reactivated,
            disabled_in_directory: c.disabled_in_directory,
            frozen: c.frozen,
            unchanged: c.unchanged,
            skipped: c.skipped,
            failed: c.failed,
            held: c.held,
        }
    }
}

/// What a run read and changed in the mirror.
#[derive(Debug, Serialize, ToSchema)]
pub struct MirrorCountsView {
    pub created: u64,
    pub updated: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    pub groups_created: u64,
    pub groups_updated: u64,
    pub groups_removed: u64,
    pub memberships_added: u64,
    pub memberships_removed: u64,
    pub pages_applied: u64,
}

impl From<Counts> for MirrorCountsView {
    fn from(c: Counts) -> Self {
        MirrorCountsView {
            created: c.created,
            updated: c.updated,
            deactivated: c.deactivated,
            reactivated: c.reactivated,
            removed: c.removed,
            unchanged: c.unchanged,
            skipped: c.skipped,
            failed: c.failed,
            groups_created: c.groups_created,
            groups_updated: c.groups_updated,
            groups_removed: c.groups_removed,
            memberships_added: c.memberships_added,
            memberships_removed: c.memberships_removed,
            pages_applied: c.pages_applied,
        }
    }
}

/// How far one stream (users or groups) of a run is.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamProgressView {
    /// `full` or `incremental` once the first page is read.
    pub mode: Option<String>,
    pub pages_fetched: u64,
    /// Known once the last page is read.
    pub pages_total: Option<u64>,
    pub committed: bool,
}

impl From<StreamProgress> for StreamProgressView {
    fn from(p: StreamProgress) -> Self {
        StreamProgressView {
            mode: p.mode.map(|m| match m {
                RoundMode::Full => "full".to_owned(),
                RoundMode::Incremental => "incremental".to_owned(),
            }),
            pages_fetched: p.pages_fetched,
            pages_total: p.pages_total,
            committed: p.committed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub users: StreamProgressView,
    pub groups: StreamProgressView,
    /// Pages fetched of both streams over the known total, 0-100; absent while a total is
    /// unknown.
    pub percent: Option<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Held,
    Rejected,
    Skipped,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerView {
    Scheduled,
    Manual,
    Resync,
    SettingsChanged,
    Import,
}

impl From<Trigger> for TriggerView {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Scheduled => TriggerView::Scheduled,
            Trigger::Manual => TriggerView::Manual,
            Trigger::Resync => TriggerView::Resync,
            Trigger::SettingsChanged => TriggerView::SettingsChanged,
            Trigger::Import => TriggerView::Import,
        }
    }
}

/// Why the circuit breaker held a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    /// Users whose deactivation waits for a confirm.
    pub deactivations: u64,
    /// Users active or pending before the run.
    pub active_before: u64,
    /// The threshold that tripped, in plain words.
    pub threshold: String,
    /// The read returned no users at all.
    pub empty_read: bool,
    pub held_at: DateTime<Utc>,
    /// When the question was first asked.
    pub held_since: DateTime<Utc>,
    /// Deactivations of accounts the directory reported disabled or deleted, applied anyway.
    pub applied_deactivations: u64,
}

impl From<&BreakerHold> for HoldView {
    fn from(h: &BreakerHold) -> Self {
        HoldView {
            deactivations: h.deactivations,
            active_before: h.active_before,
            threshold: h.threshold.clone(),
            empty_read: h.empty_read,
            held_at: h.held_at,
            held_since: h.since(),
            applied_deactivations: h.applied_deactivations,
        }
    }
}

/// One activity-log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub run_id: String,
    pub tenant_id: String,
    pub trigger: TriggerView,
    pub status: RunState,
    /// Failed: what went wrong and what to do.
    pub error: Option<String>,
    /// Skipped: why.
    pub reason: Option<String>,
    /// Held: the breaker's numbers.
    pub hold: Option<HoldView>,
    /// Rejected: who, and when.
    pub rejected_by: Option<String>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from start to end (finished runs).
    pub duration_seconds: Option<i64>,
    pub progress: ProgressView,
    /// What the run read into the mirror.
    pub mirror: MirrorCountsView,
    /// What the run did to the host product's users.
    pub provisioning: ProvisioningView,
    pub graph_requests: u64,
    pub settings_version: Option<u64>,
    /// The failed run whose round this one finished.
    pub continues: Option<String>,
    pub notes: Vec<String>,
}

impl From<SyncRun> for RunView {
    fn from(r: SyncRun) -> Self {
        let (status, error, reason, hold, rejected_by, rejected_at) = match &r.status {
            RunStatus::Running => (RunState::Running, None, None, None, None, None),
            RunStatus::Succeeded => (RunState::Succeeded, None, None, None, None, None),
            RunStatus::Failed { error } => (
                RunState::Failed,
                Some(error.clone()),
                None,
                None,
                None,
                None,
            ),
            RunStatus::Held { hold } => (RunState::Held, None, None, Some(hold.into()), None, None),
            RunStatus::Rejected { by, at } => (
                RunState::Rejected,
                None,
                None,
                None,
                Some(by.clone()),
                Some(*at),
            ),
            RunStatus::Skipped { reason } => (
                RunState::Skipped,
                None,
                Some(reason.clone()),
                None,
                None,
                None,
            ),
        };
        let percent = match (r.users.pages_total, r.groups.pages_total) {
            (Some(u), Some(g)) if u + g > 0 => {
                let done = r.users.pages_fetched.min(u) + r.groups.pages_fetched.min(g);
                u8::try_from(done * 100 / (u + g)).ok()
            }
            _ => None,
        };
        RunView {
            duration_seconds: r
                .finished_at
                .map(|f| (f - r.started_at).num_seconds().max(0)),
            run_id: r.run_id,
            tenant_id: r.tenant_id.0,
            trigger: r.trigger.into(),
            status,
            error,
            reason,
            hold,
            rejected_by,
            rejected_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            progress: ProgressView {
                users: r.users.into(),
                groups: r.groups.into(),
                percent,
            },
            mirror: r.counts.into(),
            provisioning: r.provisioning.into(),
            graph_requests: r.graph_requests,
            settings_version: r.settings_version,
            continues: r.continues,
            notes: r.notes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub items: Vec<RunView>,
    pub next_cursor: Option<String>,
}

/// The answer of "sync now".
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    /// `false`: a sync was already running and `run` is that one.
    pub started: bool,
    pub run: RunView,
}

/// Confirm or reject a held run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Who decides (recorded in the activity log); default `api`.
    #[serde(default)]
    pub by: Option<String>,
}

/// What a confirm did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmView {
    /// `applied`, or `claimed_elsewhere` when another worker is applying the run.
    pub outcome: String,
    pub run: RunView,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Pending,
    Active,
    Deactivated,
    DisabledInDirectory,
    DeletedLocally,
}

impl From<LocalStatus> for HostStatus {
    fn from(s: LocalStatus) -> Self {
        match s {
            LocalStatus::Pending => HostStatus::Pending,
            LocalStatus::Active => HostStatus::Active,
            LocalStatus::Deactivated => HostStatus::Deactivated,
            LocalStatus::DisabledInDirectory => HostStatus::DisabledInDirectory,
            LocalStatus::DeletedLocally => HostStatus::DeletedLocally,
        }
    }
}

impl From<HostStatus> for LocalStatus {
    fn from(s: HostStatus) -> Self {
        match s {
            HostStatus::Pending => LocalStatus::Pending,
            HostStatus::Active => LocalStatus::Active,
            HostStatus::Deactivated => LocalStatus::Deactivated,
            HostStatus::DisabledInDirectory => LocalStatus::DisabledInDirectory,
            HostStatus::DeletedLocally => LocalStatus::DeletedLocally,
        }
    }
}

/// A user of the host product.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostUserView {
    pub local_id: String,
    pub email: String,
    pub status: HostStatus,
    /// Was active at least once.
    pub activated: bool,
    /// Mapped and custom fields (the connection's attribute mapping).
    pub fields: BTreeMap<String, String>,
    pub roles: Vec<String>,
    /// Stopped matching the filters: kept, no longer updated.
    pub frozen: bool,
    /// The directory user it is linked to.
    pub tenant_id: Option<String>,
    pub object_id: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<LocalUser> for HostUserView {
    fn from(u: LocalUser) -> Self {
        let (tenant_id, object_id) = match u.link {
            Some(l) => (Some(l.tenant_id.0), Some(l.object_id)),
            None => (None, None),
        };
        HostUserView {
            local_id: u.local_id,
            email: u.email,
            status: u.status.into(),
            activated: u.activated,
            fields: u.fields,
            roles: u.roles,
            frozen: u.frozen,
            tenant_id,
            object_id,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostUserList {
    pub items: Vec<HostUserView>,
    pub next_cursor: Option<String>,
}

/// Activate a pending user.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    /// Also activate a user deactivated in the host product (never one whose directory account
    /// is disabled or deleted).
    #[serde(default)]
    pub force: bool,
}

/// What the host product learns at sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInView {
    pub local_id: String,
    pub status: HostStatus,
    pub roles: Vec<String>,
    pub may_sign_in: bool,
    /// Why not (absent when the user may sign in).
    pub reason: Option<String>,
}

impl From<SignInLookup> for SignInView {
    fn from(s: SignInLookup) -> Self {
        SignInView {
            local_id: s.local_id,
            status: s.status.into(),
            roles: s.roles,
            may_sign_in: s.may_sign_in,
            reason: s.reason,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryStatus {
    Enabled,
    Disabled,
    Removed,
}

impl From<MirrorUserStatus> for DirectoryStatus {
    fn from(s: MirrorUserStatus) -> Self {
        match s {
            MirrorUserStatus::Enabled => DirectoryStatus::Enabled,
            MirrorUserStatus::Disabled => DirectoryStatus::Disabled,
            MirrorUserStatus::Removed => DirectoryStatus::Removed,
        }
    }
}

/// A directory user as the mirror holds it, with the host product's user it became.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUserView {
    pub object_id: String,
    pub display_name: Option<String>,
    /// The canonical email (mail, else user principal name), lower-case.
    pub email: Option<String>,
    pub user_principal_name: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub status: DirectoryStatus,
    /// Every attribute the mirror holds (Graph's names in snake_case).
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// The host product's user linked to it, with its mapped and custom fields.
    pub host_user: Option<HostUserView>,
}

impl From<MirrorUserView> for DirectoryUserView {
    fn from(v: MirrorUserView) -> Self {
        let status = MirrorUserStatus::of(&v.stored).into();
        let StoredUser { user, .. } = v.stored;
        DirectoryUserView {
            object_id: user.id.clone(),
            display_name: user.display_name.clone(),
            email: user.canonical_email(),
            user_principal_name: user.user_principal_name.clone(),
            department: user.department.clone(),
            job_title: user.job_title.clone(),
            status,
            attributes: serde_json::to_value(&user).unwrap_or_default(),
            host_user: v.host_user.map(Into::into),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUserList {
    pub items: Vec<DirectoryUserView>,
    /// More may follow even after a short (or empty) page: continue while this is present.
    pub next_cursor: Option<String>,
}

/// A directory group as the mirror holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub object_id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub mail: Option<String>,
    pub security_enabled: Option<bool>,
    /// Absent from the directory now (deleted, or missing from a full read).
    pub removed: bool,
}

impl From<StoredGroup> for GroupView {
    fn from(g: StoredGroup) -> Self {
        GroupView {
            removed: !g.presence.is_present(),
            object_id: g.group.id,
            display_name: g.group.display_name,
            description: g.group.description,
            mail: g.group.mail,
            security_enabled: g.group.security_enabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupView>,
    pub next_cursor: Option<String>,
}
