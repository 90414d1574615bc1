//! The directory model: what we mirror from Entra ID, and the connection that owns it.
//!
//! Field names follow Microsoft Graph's `user` and `group` resources; the Graph crate translates
//! wire JSON into these types and nothing else in the core knows the wire format.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// Lifecycle of a connection (PRODUCT.md section 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    /// Token acquisition fails because consent was revoked or a policy blocks it. Sync and
    /// actions stop; nothing is deleted.
    NeedsReauthorization {
        reason: String,
    },
    /// Tokens and tenant details removed; synced users are kept.
    Disconnected,
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
}

impl Connection {
    pub fn can_sync(&self) -> bool {
        matches!(self.status, ConnectionStatus::Connected)
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
