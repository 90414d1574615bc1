//! The directory model: what we mirror from Entra ID, and the connection that owns it.
//!
//! Field names follow Microsoft Graph's `user` and `group` resources; the Graph crate translates
//! wire JSON into these types and nothing else in the core knows the wire format.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::run::Trigger;

/// An Entra tenant id (a GUID). A tenant can be connected at most once, so it is also the
/// connection's key and leads every stored key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host product's account that owns a connection (one account may own many tenants).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two delta streams we read per directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Users,
    Groups,
}

impl Stream {
    pub const ALL: [Stream; 2] = [Stream::Users, Stream::Groups];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Users => "users",
            Stream::Groups => "groups",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    /// Token acquisition fails because consent was revoked or a policy blocks it (a
    /// quarantine): features stop, nothing is deleted. Not final: the scheduler tries again
    /// with growing intervals ([`ReauthRetry`]), a manual sync tries at once, and the first
    /// attempt that reaches the directory makes the connection Connected again.
    NeedsReauthorization {
        reason: String,
        /// The attempts so far and when the next automatic one is due. Records stored before
        /// retries existed read as "no attempt counted, due at once".
        #[serde(default)]
        retry: ReauthRetry,
    },
    /// Tokens and tenant details removed; synced users are kept.
    Disconnected,
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionStatus::Connected => f.write_str("connected"),
            ConnectionStatus::NeedsReauthorization { reason, retry } => {
                write!(f, "needs reauthorization: {reason}")?;
                if let Some(next) = retry.next_attempt_at {
                    write!(
                        f,
                        " (failed attempts: {}; next automatic attempt at {})",
                        retry.attempts,
                        next.format("%Y-%m-%d %H:%M UTC")
                    )?;
                }
                Ok(())
            }
            ConnectionStatus::Disconnected => f.write_str("disconnected"),
        }
    }
}

/// The retry schedule of a connection that needs reauthorization, as the Entra provisioning
/// service does with a quarantined job: the first retry one hour after the first failure, then
/// each interval doubles (1 h, 2 h, 4 h, 8 h, 16 h) up to one day, and stays at one day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReauthRetry {
    /// When the first failed attempt happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Failed token attempts so far (the first failure included).
    #[serde(default)]
    pub attempts: u32,
    /// When the scheduler tries again; `None`: at its next tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl ReauthRetry {
    /// The first retry interval.
    pub const FIRST_INTERVAL: chrono::Duration = chrono::Duration::hours(1);
    /// The longest retry interval.
    pub const MAX_INTERVAL: chrono::Duration = chrono::Duration::hours(24);

    /// The wait after the `attempts`-th failed attempt: 1 h, 2 h, 4 h ... capped at 24 h.
    pub fn interval_after(attempts: u32) -> chrono::Duration {
        let doublings = attempts.saturating_sub(1).min(5);
        (Self::FIRST_INTERVAL * (1i32 << doublings)).min(Self::MAX_INTERVAL)
    }

    /// The schedule after one more failed attempt at `now`.
    pub fn after_failure(&self, now: DateTime<Utc>) -> ReauthRetry {
        let attempts = self.attempts.saturating_add(1);
        ReauthRetry {
            since: Some(self.since.unwrap_or(now)),
            attempts,
            next_attempt_at: Some(now + Self::interval_after(attempts)),
        }
    }

    /// Whether the scheduler should try at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.next_attempt_at.is_none_or(|at| at <= now)
    }
}

/// A verified domain of the tenant, as `/organization` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedDomain {
    pub name: String,
    pub is_default: bool,
    pub is_initial: bool,
}

/// One connected directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    /// Chosen by the customer.
    pub label: String,
    pub tenant_name: Option<String>,
    pub verified_domains: Vec<VerifiedDomain>,
    pub status: ConnectionStatus,
    pub connected_at: DateTime<Utc>,
    /// The Microsoft Graph application permissions the tenant's admin granted, as the `roles`
    /// claim of the last token read for them says (at consent, and whenever an action needed
    /// a permission this record lacks, or Graph refused one). The action checks read this
    /// record instead of a fresh token per action. Empty when not read yet (records stored
    /// before this field existed read as empty, and the first action reads a fresh token).
    #[serde(default)]
    pub granted_permissions: crate::directory_write::GrantedPermissions,
}

impl Connection {
    /// Whether every feature is on (the connection is Connected).
    pub fn can_sync(&self) -> bool {
        matches!(self.status, ConnectionStatus::Connected)
    }

    /// Why a fetch started by `trigger` at `now` must not run, or `None` when it may. A
    /// connection that needs reauthorization may always be tried by hand (the first success
    /// clears the flag), and by the scheduler once its retry is due; a disconnected one never.
    pub fn fetch_refusal(&self, trigger: Trigger, now: DateTime<Utc>) -> Option<String> {
        match &self.status {
            ConnectionStatus::Connected => None,
            ConnectionStatus::NeedsReauthorization { .. } if trigger.is_manual() => None,
            ConnectionStatus::NeedsReauthorization { retry, .. } if retry.is_due(now) => None,
            ConnectionStatus::NeedsReauthorization { .. } => Some(format!(
                "the directory {}; a manual sync tries at once",
                self.status
            )),
            ConnectionStatus::Disconnected => {
                Some("the directory is disconnected; connect it again to resume syncing".to_owned())
            }
        }
    }
}

/// A user as the directory describes it: every field we mirror. Optional strings are `None`
/// when Graph omits the property or sends `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub usage_location: Option<String>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub street_address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub employee_id: Option<String>,
    pub employee_hire_date: Option<String>,
    pub account_enabled: Option<bool>,
    pub user_type: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
    /// SKU ids of assigned licenses, sorted.
    pub license_sku_ids: Vec<String>,
    pub manager_id: Option<String>,
}

impl DirectoryUser {
    /// Canonical email for matching: `mail`, else the UPN, lower-cased.
    pub fn canonical_email(&self) -> Option<String> {
        self.mail
            .as_deref()
            .or(self.user_principal_name.as_deref())
            .map(str::to_lowercase)
    }

    pub fn is_enabled(&self) -> bool {
        self.account_enabled.unwrap_or(false)
    }
}

/// A group as the directory describes it (members are kept as separate edges).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryGroup {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub group_types: Vec<String>,
    pub security_enabled: Option<bool>,
    pub mail_enabled: Option<bool>,
    pub mail: Option<String>,
    /// Synchronised from on-premises Active Directory: members are changed there, not through
    /// Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_sync_enabled: Option<bool>,
}

/// What kind of object a group member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberType {
    User,
    Group,
    Device,
    OrgContact,
    ServicePrincipal,
    Other,
}

impl MemberType {
    /// From Graph's `@odata.type` (`#microsoft.graph.user`...).
    pub fn from_odata_type(t: &str) -> Self {
        match t.trim_start_matches("#microsoft.graph.") {
            "user" => MemberType::User,
            "group" => MemberType::Group,
            "device" => MemberType::Device,
            "orgContact" => MemberType::OrgContact,
            "servicePrincipal" => MemberType::ServicePrincipal,
            _ => MemberType::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberType::User => "user",
            MemberType::Group => "group",
            MemberType::Device => "device",
            MemberType::OrgContact => "orgContact",
            MemberType::ServicePrincipal => "servicePrincipal",
            MemberType::Other => "other",
        }
    }
}

/// A direct member of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberRef {
    pub id: String,
    pub member_type: MemberType,
}

/// Why Graph reported an object as removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// `@removed: {reason: "changed"}`: soft-deleted (restorable for 30 days).
    SoftDeleted,
    /// `@removed: {reason: "deleted"}`: permanently deleted.
    HardDeleted,
    /// Absent from a complete full read (mark-and-sweep after a resync).
    MissingFromFullRead,
}

/// Ordering of applied changes: (cycle, page). A cycle is one delta round of one stream of one
/// tenant; pages are numbered in the order fetch read them. A write only lands when its version
/// is newer than the stored one, so replays and late pages never overwrite newer state.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    pub cycle: u64,
    pub page: u32,
}

impl Version {
    pub fn new(cycle: u64, page: u32) -> Self {
        Self { cycle, page }
    }

    /// The version the end-of-round sweep writes: after every page of its cycle.
    pub fn sweep(cycle: u64) -> Self {
        Self {
            cycle,
            page: u32::MAX,
        }
    }
}

/// Whether an object currently exists in the directory, as far as the mirror knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Presence {
    Present,
    Removed { reason: RemovalReason },
}

impl Presence {
    pub fn is_present(&self) -> bool {
        matches!(self, Presence::Present)
    }
}

/// A mirrored user: the last directory state we applied and the version that wrote it.
/// Removed users keep their last known fields (nothing is ever hard-deleted by a sync).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    pub user: DirectoryUser,
    pub presence: Presence,
    pub version: Version,
}

/// A mirrored group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub group: DirectoryGroup,
    pub presence: Presence,
    pub version: Version,
}

/// A membership edge; a removed edge stays as a tombstone so an older "add" cannot resurrect it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMembership {
    pub group_id: String,
    pub member: MemberRef,
    pub present: bool,
    pub version: Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
    }

    fn conn(status: ConnectionStatus) -> Connection {
        Connection {
            tenant_id: TenantId::new("t"),
            account_id: AccountId("a".into()),
            label: "L".into(),
            tenant_name: None,
            verified_domains: vec![],
            status,
            connected_at: t0(),
            granted_permissions: Default::default(),
        }
    }

    #[test]
    fn reauthorization_retries_wait_one_hour_then_twice_as_long_up_to_a_day() {
        let hours: Vec<i64> = (1..=8)
            .map(|n| ReauthRetry::interval_after(n).num_hours())
            .collect();
        assert_eq!(hours, vec![1, 2, 4, 8, 16, 24, 24, 24]);
        assert_eq!(ReauthRetry::interval_after(u32::MAX).num_hours(), 24);

        let first = ReauthRetry::default().after_failure(t0());
        assert_eq!(first.attempts, 1);
        assert_eq!(first.since, Some(t0()));
        assert_eq!(
            first.next_attempt_at,
            Some(t0() + chrono::Duration::hours(1))
        );
        let later = t0() + chrono::Duration::hours(1);
        let second = first.after_failure(later);
        assert_eq!(second.attempts, 2);
        assert_eq!(second.since, Some(t0()), "the first failure is kept");
        assert_eq!(
            second.next_attempt_at,
            Some(later + chrono::Duration::hours(2))
        );
        assert!(!second.is_due(later + chrono::Duration::minutes(119)));
        assert!(second.is_due(later + chrono::Duration::hours(2)));
        assert!(
            ReauthRetry::default().is_due(t0()),
            "no schedule: due at once"
        );
    }

    #[test]
    fn a_connection_that_needs_reauthorization_is_tried_by_hand_always_and_by_schedule_when_due() {
        let retry = ReauthRetry::default().after_failure(t0());
        let c = conn(ConnectionStatus::NeedsReauthorization {
            reason: "the app's consent was revoked (AADSTS7000229)".into(),
            retry,
        });
        for trigger in [Trigger::Manual, Trigger::Resync] {
            assert_eq!(c.fetch_refusal(trigger, t0()), None, "{trigger:?}");
        }
        let why = c
            .fetch_refusal(Trigger::Scheduled, t0())
            .unwrap_or_default();
        assert!(
            why.contains("needs reauthorization")
                && why.contains("AADSTS7000229")
                && why.contains("next automatic attempt at 2026-01-01 01:00 UTC")
                && why.contains("manual sync"),
            "{why}"
        );
        assert!(!why.contains('{') && !why.contains("Some("), "{why}");
        assert_eq!(
            c.fetch_refusal(Trigger::Scheduled, t0() + chrono::Duration::hours(1)),
            None
        );
        assert!(!c.can_sync(), "features stay off while flagged");
        assert_eq!(
            conn(ConnectionStatus::Connected).fetch_refusal(Trigger::Scheduled, t0()),
            None
        );
        let gone = conn(ConnectionStatus::Disconnected);
        assert!(gone.fetch_refusal(Trigger::Manual, t0()).is_some());
    }
}
