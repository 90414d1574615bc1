//! Change events the host product receives instead of polling: a versioned catalog (see
//! `docs/events.md`) with one JSON Schema per type and version under `events/schemas/`.
//!
//! Two families describe users, and they are distinct on purpose:
//! * `directory.*`: the mirror of the directory changed (a directory user, group or membership
//!   edge as Microsoft Graph reports it);
//! * `user.*`: a user of the host product changed (created, linked, deactivated... by a sync,
//!   an import, or the host product itself).
//!
//! Besides them: `sync.*` (runs), `connection.*`, `action.updated` and `workflow.updated`.
//!
//! Every event is an envelope (`id`, `type`, `version`, `tenant_id`, `account_id`, `object_id`,
//! `sequence`, `occurred_at`, `data`). The `id` is derived from the change itself (tenant, type,
//! object, sequence and, for membership edges, the member), so delivering the same change again
//! gives the same id and a consumer can drop duplicates. The `sequence` grows with every change
//! of one object: a consumer keeps the highest sequence it saw per object and drops lower ones.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{AccountId, MemberType, StoredUser, TenantId, Version};
use crate::provision::{LocalStatus, LocalUser};

/// The version of the envelope and of every `data` schema in this catalog.
pub const SCHEMA_VERSION: u32 = 1;

/// One field whose value changed, with its value before and after (`null` when absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// What a `user.*` event says about the host product's user (`object_id` is its local id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostUserData {
    /// The status after the change (`pending`, `active`, `deactivated`,
    /// `disabled_in_directory`, `deleted_locally`).
    pub status: String,
    /// The status before the change; `null` for a new user.
    pub previous_status: Option<String>,
    /// The directory user it is linked to, if any.
    pub directory_object_id: Option<String>,
    /// The fields that changed, before and after.
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// The type of an event and its `data`. Serialised as `{"type": "...", "data": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ChangeKind {
    // The directory mirror: `object_id` is the directory object (user or group).
    #[serde(rename = "directory.user.created")]
    DirectoryUserCreated {},
    /// Attributes of a present user changed (not its enabled state: that is deactivated /
    /// reactivated).
    #[serde(rename = "directory.user.updated")]
    DirectoryUserUpdated { changes: Vec<FieldChange> },
    /// `accountEnabled` went from true to false.
    #[serde(rename = "directory.user.deactivated")]
    DirectoryUserDeactivated {},
    #[serde(rename = "directory.user.reactivated")]
    DirectoryUserReactivated {},
    /// Deleted in the directory (soft or hard), or missing from a complete full read.
    #[serde(rename = "directory.user.removed")]
    DirectoryUserRemoved {},
    #[serde(rename = "directory.group.created")]
    DirectoryGroupCreated {},
    #[serde(rename = "directory.group.updated")]
    DirectoryGroupUpdated {},
    #[serde(rename = "directory.group.deleted")]
    DirectoryGroupDeleted {},
    /// `object_id` is the group.
    #[serde(rename = "directory.membership.added")]
    MembershipAdded {
        member_id: String,
        member_type: MemberType,
    },
    #[serde(rename = "directory.membership.removed")]
    MembershipRemoved {
        member_id: String,
        member_type: MemberType,
    },

    // The host product's users: `object_id` is the local id, `account_id` its account.
    #[serde(rename = "user.created")]
    UserCreated(HostUserData),
    /// An existing host user was matched (by email) and linked to a directory user.
    #[serde(rename = "user.linked")]
    UserLinked(HostUserData),
    /// Mapped fields, roles or email changed (or the status moved without losing or regaining
    /// access, for example back to pending).
    #[serde(rename = "user.updated")]
    UserUpdated(HostUserData),
    /// A pending user was activated (in the host product).
    #[serde(rename = "user.activated")]
    UserActivated(HostUserData),
    /// A pending or active user was deactivated (its directory account disabled, or in the
    /// host product).
    #[serde(rename = "user.deactivated")]
    UserDeactivated(HostUserData),
    /// A deactivated or disabled user got its access back.
    #[serde(rename = "user.reactivated")]
    UserReactivated(HostUserData),
    /// The directory user was deleted: the host user is disabled.
    #[serde(rename = "user.disabled_in_directory")]
    UserDisabledInDirectory(HostUserData),
    /// Stopped matching the filters: kept as it is, no longer updated.
    #[serde(rename = "user.frozen")]
    UserFrozen(HostUserData),
    /// Deleted in the host product.
    #[serde(rename = "user.deleted")]
    UserDeleted(HostUserData),

    // Runs: `object_id` is the run id.
    #[serde(rename = "sync.started")]
    SyncStarted { run_id: String, trigger: String },
    #[serde(rename = "sync.completed")]
    SyncCompleted { run_id: String },
    #[serde(rename = "sync.failed")]
    SyncFailed { run_id: String, error: String },
    /// The circuit breaker holds deactivations of this run until an admin confirms or rejects
    /// them; the rest of the run was applied. Sent by every run that is held, so a question
    /// left open shows its age: `held_since` is when it was first asked.
    #[serde(rename = "sync.held")]
    SyncHeld {
        run_id: String,
        /// Deactivations waiting for a confirm.
        deactivations_held: u64,
        /// Deactivations the directory reported for each user, applied despite the hold.
        deactivations_applied: u64,
        held_since: DateTime<Utc>,
        held_for_seconds: i64,
    },

    // Connections: `object_id` is the tenant.
    /// The directory is connected (consent granted, or access back after a reauthorization).
    #[serde(rename = "connection.connected")]
    ConnectionConnected {},
    /// Tokens cannot be acquired (consent revoked, a policy blocks it): syncing and actions
    /// stop until an admin consents again; nothing is deleted.
    #[serde(rename = "connection.needs_reauthorization")]
    ConnectionNeedsReauthorization {
        reason: String,
        next_attempt_at: Option<DateTime<Utc>>,
    },
    /// The connection was removed (its tokens and tenant details deleted; users are kept).
    #[serde(rename = "connection.disconnected")]
    ConnectionDisconnected {},

    /// An action changed status (requested, pending approval, approved, succeeded, failed,
    /// ...). `object_id` is the action id; `user_id` the target user.
    #[serde(rename = "action.updated")]
    ActionUpdated {
        action_id: String,
        action: String,
        status: String,
        user_id: String,
    },
    /// A workflow changed status. `object_id` is the workflow id.
    #[serde(rename = "workflow.updated")]
    WorkflowUpdated {
        workflow_id: String,
        template: String,
        status: String,
    },

    /// An outbound webhook endpoint was disabled: its deliveries failed for too long, or one
    /// delivery exhausted the retry schedule (`object_id` is the endpoint id).
    #[serde(rename = "webhook_endpoint.disabled")]
    WebhookEndpointDisabled {
        endpoint_id: String,
        url: String,
        reason: String,
    },
}

impl ChangeKind {
    /// The event's type name (`directory.user.created`, `user.deactivated`, ...), which is
    /// also the EventBridge `detail-type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::DirectoryUserCreated {} => "directory.user.created",
            ChangeKind::DirectoryUserUpdated { .. } => "directory.user.updated",
            ChangeKind::DirectoryUserDeactivated {} => "directory.user.deactivated",
            ChangeKind::DirectoryUserReactivated {} => "directory.user.reactivated",
            ChangeKind::DirectoryUserRemoved {} => "directory.user.removed",
            ChangeKind::DirectoryGroupCreated {} => "directory.group.created",
            ChangeKind::DirectoryGroupUpdated {} => "directory.group.updated",
            ChangeKind::DirectoryGroupDeleted {} => "directory.group.deleted",
            ChangeKind::MembershipAdded { .. } => "directory.membership.added",
            ChangeKind::MembershipRemoved { .. } => "directory.membership.removed",
            ChangeKind::UserCreated(_) => "user.created",
            ChangeKind::UserLinked(_) => "user.linked",
            ChangeKind::UserUpdated(_) => "user.updated",
            ChangeKind::UserActivated(_) => "user.activated",
            ChangeKind::UserDeactivated(_) => "user.deactivated",
            ChangeKind::UserReactivated(_) => "user.reactivated",
            ChangeKind::UserDisabledInDirectory(_) => "user.disabled_in_directory",
            ChangeKind::UserFrozen(_) => "user.frozen",
            ChangeKind::UserDeleted(_) => "user.deleted",
            ChangeKind::SyncStarted { .. } => "sync.started",
            ChangeKind::SyncCompleted { .. } => "sync.completed",
            ChangeKind::SyncFailed { .. } => "sync.failed",
            ChangeKind::SyncHeld { .. } => "sync.held",
            ChangeKind::ConnectionConnected {} => "connection.connected",
            ChangeKind::ConnectionNeedsReauthorization { .. } => "connection.needs_reauthorization",
            ChangeKind::ConnectionDisconnected {} => "connection.disconnected",
            ChangeKind::ActionUpdated { .. } => "action.updated",
            ChangeKind::WorkflowUpdated { .. } => "workflow.updated",
            ChangeKind::WebhookEndpointDisabled { .. } => "webhook_endpoint.disabled",
        }
    }

    /// What besides tenant, type, object and sequence tells two changes apart: the member of
    /// a membership edge (the edge, not the group, carries the sequence).
    fn discriminator(&self) -> &str {
        match self {
            ChangeKind::MembershipAdded { member_id, .. }
            | ChangeKind::MembershipRemoved { member_id, .. } => member_id,
            _ => "",
        }
    }
}

/// One change, as the services produce it. Serialised as the versioned envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Envelope", try_from = "Envelope")]
pub struct ChangeEvent {
    /// The directory tenant; empty (`null` in the envelope) only for a host user linked to
    /// no directory.
    pub tenant_id: TenantId,
    /// The host product's account, where the change belongs to one.
    pub account_id: Option<AccountId>,
    /// The object the event is about (see each type).
    pub object_id: String,
    /// Grows with every change of the object (see [`Version::sequence`] for the mirror).
    pub sequence: u64,
    pub occurred_at: DateTime<Utc>,
    pub kind: ChangeKind,
}

impl ChangeEvent {
    /// A change of `object_id` at `sequence`; stamp its time with [`Self::at`].
    pub fn new(
        tenant_id: &TenantId,
        object_id: impl Into<String>,
        sequence: u64,
        kind: ChangeKind,
    ) -> Self {
        Self {
            tenant_id: tenant_id.clone(),
            account_id: None,
            object_id: object_id.into(),
            sequence,
            occurred_at: DateTime::<Utc>::UNIX_EPOCH,
            kind,
        }
    }

    pub fn at(mut self, occurred_at: DateTime<Utc>) -> Self {
        self.occurred_at = occurred_at;
        self
    }

    pub fn account(mut self, account_id: Option<AccountId>) -> Self {
        self.account_id = account_id;
        self
    }

    /// The type name (`directory.user.created`...).
    pub fn event_type(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The stable id: a UUIDv5 over tenant, type, object, sequence (and the member of an
    /// edge). The same change delivered twice has the same id; the time is not part of it.
    pub fn id(&self) -> Uuid {
        let name = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.tenant_id.0,
            self.event_type(),
            self.object_id,
            self.kind.discriminator(),
            self.sequence
        );
        Uuid::new_v5(&id_namespace(), name.as_bytes())
    }
}

fn id_namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:entra-sync:events")
}

/// Stamp events planned without a clock with the time they were applied.
pub fn stamp(events: &mut [ChangeEvent], at: DateTime<Utc>) {
    for e in events {
        e.occurred_at = at;
    }
}

/// The wire form of a [`ChangeEvent`] (`events.jsonl`, EventBridge `detail`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: Uuid,
    pub version: u32,
    /// `null` only for a host user linked to no directory.
    pub tenant_id: Option<TenantId>,
    pub account_id: Option<AccountId>,
    pub object_id: String,
    pub sequence: u64,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: ChangeKind,
}

impl From<ChangeEvent> for Envelope {
    fn from(e: ChangeEvent) -> Self {
        Envelope {
            id: e.id(),
            version: SCHEMA_VERSION,
            tenant_id: (!e.tenant_id.0.is_empty()).then_some(e.tenant_id),
            account_id: e.account_id,
            object_id: e.object_id,
            sequence: e.sequence,
            occurred_at: e.occurred_at,
            kind: e.kind,
        }
    }
}

impl TryFrom<Envelope> for ChangeEvent {
    type Error = String;

    fn try_from(e: Envelope) -> Result<Self, Self::Error> {
        if e.version != SCHEMA_VERSION {
            return Err(format!(
                "event version {} is not supported (this build reads version {SCHEMA_VERSION})",
                e.version
            ));
        }
        Ok(ChangeEvent {
            tenant_id: e.tenant_id.unwrap_or_else(|| TenantId::new("")),
            account_id: e.account_id,
            object_id: e.object_id,
            sequence: e.sequence,
            occurred_at: e.occurred_at,
            kind: e.kind,
        })
    }
}

impl Version {
    /// The mirror version as an event sequence: the cycle in the high 32 bits, the page in the
    /// low ones, so it grows exactly as the version does.
    pub fn sequence(&self) -> u64 {
        (self.cycle << 32) | u64::from(self.page)
    }
}

/// The fields of two serialisable values that differ, by their JSON names, sorted.
pub fn changed_fields<T: Serialize>(before: &T, after: &T, skip: &[&str]) -> Vec<FieldChange> {
    let as_map = |v: &T| match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m.into_iter().collect::<BTreeMap<_, _>>(),
        _ => BTreeMap::new(),
    };
    let (b, a) = (as_map(before), as_map(after));
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter_map(|k| {
            let (bv, av) = (
                b.get(k).cloned().unwrap_or(Value::Null),
                a.get(k).cloned().unwrap_or(Value::Null),
            );
            (bv != av).then(|| FieldChange {
                field: k.clone(),
                before: bv,
                after: av,
            })
        })
        .collect()
}

/// The changed attributes of a directory user (not `id`, and not `account_enabled`, which
/// the deactivated / reactivated events carry).
pub fn directory_user_changes(before: &StoredUser, after: &StoredUser) -> Vec<FieldChange> {
    changed_fields(&before.user, &after.user, &["id", "account_enabled"])
}

/// The event a write of a host user describes, given what was stored before; `None` when
/// nothing a consumer sees changed. The sequence is the user's revision after the write.
pub fn host_user_change(before: Option<&LocalUser>, after: &LocalUser) -> Option<ChangeEvent> {
    let tenant = after
        .link
        .as_ref()
        .or(before.and_then(|b| b.link.as_ref()))
        .map_or_else(|| TenantId::new(""), |l| l.tenant_id.clone());
    let changes = match before {
        Some(b) => {
            let mut c = changed_fields(b, after, &["updated_at", "revision", "link", "activated"]);
            // The status is carried by `status` / `previous_status`.
            c.retain(|f| f.field != "status");
            c
        }
        None => Vec::new(),
    };
    let link_changed = before.map(|b| &b.link) != Some(&after.link);
    let status_changed = before.map(|b| b.status) != Some(after.status);
    if before.is_some() && changes.is_empty() && !link_changed && !status_changed {
        return None;
    }
    let data = HostUserData {
        status: after.status.as_str().to_owned(),
        previous_status: before.map(|b| b.status.as_str().to_owned()),
        directory_object_id: after.link.as_ref().map(|l| l.object_id.clone()),
        changes,
    };
    use LocalStatus as S;
    let kind = match (before, after.status) {
        (None, _) => ChangeKind::UserCreated(data),
        (Some(b), to) if b.status != to => match (b.status, to) {
            (_, S::DeletedLocally) => ChangeKind::UserDeleted(data),
            (_, S::DisabledInDirectory) => ChangeKind::UserDisabledInDirectory(data),
            (S::Pending | S::Active, S::Deactivated) => ChangeKind::UserDeactivated(data),
            (S::Pending, S::Active) => ChangeKind::UserActivated(data),
            (
                S::Deactivated | S::DisabledInDirectory | S::DeletedLocally,
                S::Pending | S::Active,
            ) => ChangeKind::UserReactivated(data),
            _ => ChangeKind::UserUpdated(data),
        },
        (Some(b), _) if b.link.is_none() && after.link.is_some() => ChangeKind::UserLinked(data),
        (Some(b), _) if !b.frozen && after.frozen => ChangeKind::UserFrozen(data),
        _ => ChangeKind::UserUpdated(data),
    };
    Some(
        ChangeEvent::new(&tenant, after.local_id.clone(), after.revision, kind)
            .account(Some(after.account_id.clone()))
            .at(after.updated_at),
    )
}

/// One example of every type in the catalog, in catalog order (the docs show them; the tests
/// check the catalog and the schemas against them).
pub fn examples() -> Vec<ChangeEvent> {
    let tenant = TenantId::new("6f1c2b8e-3f7a-4d2b-9c41-0a5e8d7b1c23");
    let account = Some(AccountId("acct-42".to_owned()));
    use chrono::TimeZone;
    let at = Utc
        .with_ymd_and_hms(2026, 1, 5, 9, 30, 0)
        .single()
        .unwrap_or_default();
    let user = "a1b2c3d4-0000-4000-8000-000000000001";
    let group = "9e8d7c6b-0000-4000-8000-000000000010";
    let seq = Version::new(7, 2).sequence();
    let host = |status: &str, previous: Option<&str>, changes: Vec<FieldChange>| HostUserData {
        status: status.to_owned(),
        previous_status: previous.map(str::to_owned),
        directory_object_id: Some(user.to_owned()),
        changes,
    };
    let title = || FieldChange {
        field: "job_title".to_owned(),
        before: Value::String("Analyst".to_owned()),
        after: Value::String("Senior analyst".to_owned()),
    };
    let mapped = || FieldChange {
        field: "fields".to_owned(),
        before: serde_json::json!({"title": "Analyst"}),
        after: serde_json::json!({"title": "Senior analyst"}),
    };
    let member = || (user.to_owned(), MemberType::User);
    let local = "host-7f3a";
    let mut out = vec![
        (user, seq, ChangeKind::DirectoryUserCreated {}, None),
        (
            user,
            seq,
            ChangeKind::DirectoryUserUpdated {
                changes: vec![title()],
            },
            None,
        ),
        (user, seq, ChangeKind::DirectoryUserDeactivated {}, None),
        (user, seq, ChangeKind::DirectoryUserReactivated {}, None),
        (user, seq, ChangeKind::DirectoryUserRemoved {}, None),
        (group, seq, ChangeKind::DirectoryGroupCreated {}, None),
        (group, seq, ChangeKind::DirectoryGroupUpdated {}, None),
        (group, seq, ChangeKind::DirectoryGroupDeleted {}, None),
        (
            group,
            seq,
            ChangeKind::MembershipAdded {
                member_id: member().0,
                member_type: member().1,
            },
            None,
        ),
        (
            group,
            seq,
            ChangeKind::MembershipRemoved {
                member_id: member().0,
                member_type: member().1,
            },
            None,
        ),
    ];
    let a = account.clone();
    let hosts = [
        ChangeKind::UserCreated(host("pending", None, vec![])),
        ChangeKind::UserLinked(host("active", Some("active"), vec![])),
        ChangeKind::UserUpdated(host("active", Some("active"), vec![mapped()])),
        ChangeKind::UserActivated(host("active", Some("pending"), vec![])),
        ChangeKind::UserDeactivated(host("deactivated", Some("active"), vec![])),
        ChangeKind::UserReactivated(host("active", Some("deactivated"), vec![])),
        ChangeKind::UserDisabledInDirectory(host("disabled_in_directory", Some("active"), vec![])),
        ChangeKind::UserFrozen(host("active", Some("active"), vec![])),
        ChangeKind::UserDeleted(host("deleted_locally", Some("active"), vec![])),
    ];
    for (i, k) in hosts.into_iter().enumerate() {
        out.push((local, i as u64 + 1, k, a.clone()));
    }
    let run = "run-20260105-0930";
    out.extend([
        (
            run,
            1,
            ChangeKind::SyncStarted {
                run_id: run.to_owned(),
                trigger: "scheduled".to_owned(),
            },
            a.clone(),
        ),
        (
            run,
            3,
            ChangeKind::SyncCompleted {
                run_id: run.to_owned(),
            },
            a.clone(),
        ),
        (
            run,
            3,
            ChangeKind::SyncFailed {
                run_id: run.to_owned(),
                error: "Microsoft Graph is throttling requests for this directory; the sync will resume from where it stopped on the next run.".to_owned(),
            },
            a.clone(),
        ),
        (
            run,
            2,
            ChangeKind::SyncHeld {
                run_id: run.to_owned(),
                deactivations_held: 120,
                deactivations_applied: 3,
                held_since: at,
                held_for_seconds: 0,
            },
            a.clone(),
        ),
        (
            tenant.as_str(),
            1_767_605_400_000_000,
            ChangeKind::ConnectionConnected {},
            a.clone(),
        ),
        (
            tenant.as_str(),
            1_767_605_460_000_000,
            ChangeKind::ConnectionNeedsReauthorization {
                reason: "The administrator's consent was revoked in Microsoft Entra ID.".to_owned(),
                next_attempt_at: Some(at + chrono::Duration::minutes(15)),
            },
            a.clone(),
        ),
        (
            tenant.as_str(),
            1_767_605_520_000_000,
            ChangeKind::ConnectionDisconnected {},
            a.clone(),
        ),
        (
            "act-5d1e",
            2,
            ChangeKind::ActionUpdated {
                action_id: "act-5d1e".to_owned(),
                action: "block_sign_in".to_owned(),
                status: "succeeded".to_owned(),
                user_id: user.to_owned(),
            },
            a.clone(),
        ),
        (
            "wf-81c0",
            3,
            ChangeKind::WorkflowUpdated {
                workflow_id: "wf-81c0".to_owned(),
                template: "offboarding".to_owned(),
                status: "running".to_owned(),
            },
            a.clone(),
        ),
    ]);
    // Outbound webhook endpoints belong to an account, not to a directory.
    out.push((
        "ep_3f2a9c1e0b7d4e5f8a6b2c1d0e9f8a7b",
        4,
        ChangeKind::WebhookEndpointDisabled {
            endpoint_id: "ep_3f2a9c1e0b7d4e5f8a6b2c1d0e9f8a7b".to_owned(),
            url: "https://hooks.example.com/entra-sync".to_owned(),
            reason: "a delivery failed 8 times over the whole retry schedule".to_owned(),
        },
        a,
    ));
    out.into_iter()
        .map(|(object, sequence, kind, account)| {
            let tenant = match kind {
                ChangeKind::WebhookEndpointDisabled { .. } => TenantId::new(""),
                _ => tenant.clone(),
            };
            ChangeEvent::new(&tenant, object, sequence, kind)
                .account(account)
                .at(at)
        })
        .collect()
}

/// Every type name of the catalog, in catalog order.
pub fn catalog() -> Vec<&'static str> {
    examples().iter().map(ChangeEvent::event_type).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::DirectoryLink;

    #[test]
    fn the_envelope_round_trips_and_names_its_type_and_version() {
        for e in examples() {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["type"], e.event_type());
            assert_eq!(v["version"], 1);
            assert_eq!(v["id"], e.id().to_string());
            assert!(v["data"].is_object(), "{v}");
            let back: ChangeEvent = serde_json::from_value(v).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn the_catalog_has_each_type_once() {
        let mut names = catalog();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn the_id_depends_on_the_change_not_on_the_time_it_was_sent() {
        let t = TenantId::new("t");
        let e = ChangeEvent::new(&t, "u1", 5, ChangeKind::DirectoryUserCreated {});
        let later = e.clone().at(Utc::now());
        assert_eq!(e.id(), later.id());
        let next = ChangeEvent::new(&t, "u1", 6, ChangeKind::DirectoryUserCreated {});
        assert_ne!(e.id(), next.id());
        let other_member = |m: &str| {
            ChangeEvent::new(
                &t,
                "g1",
                5,
                ChangeKind::MembershipAdded {
                    member_id: m.to_owned(),
                    member_type: MemberType::User,
                },
            )
            .id()
        };
        assert_ne!(other_member("a"), other_member("b"));
    }

    #[test]
    fn a_newer_envelope_version_is_refused() {
        let mut v = serde_json::to_value(&examples()[0]).unwrap();
        v["version"] = 2.into();
        assert!(serde_json::from_value::<ChangeEvent>(v).is_err());
    }

    #[test]
    fn the_sequence_grows_with_the_mirror_version() {
        let vs = [
            Version::new(1, 0),
            Version::new(1, 1),
            Version::new(1, u32::MAX),
            Version::new(2, 0),
        ];
        for w in vs.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].sequence() < w[1].sequence());
        }
    }

    fn host_user(status: LocalStatus) -> LocalUser {
        let mut u = LocalUser::pre_existing(
            AccountId("a".into()),
            "l1",
            "ann@contoso.example",
            status,
            Utc::now(),
        );
        u.revision = 1;
        u
    }

    #[test]
    fn host_user_writes_name_what_changed() {
        let t = TenantId::new("t");
        let pending = host_user(LocalStatus::Pending);
        let created = host_user_change(None, &pending).unwrap();
        assert_eq!(created.event_type(), "user.created");
        assert_eq!(created.account_id, Some(AccountId("a".into())));

        assert!(host_user_change(Some(&pending), &pending).is_none());

        let mut active = pending.clone();
        active.status = LocalStatus::Active;
        active.revision = 2;
        let e = host_user_change(Some(&pending), &active).unwrap();
        assert_eq!(e.event_type(), "user.activated");
        assert_eq!(e.sequence, 2);

        let mut off = active.clone();
        off.status = LocalStatus::Deactivated;
        assert_eq!(
            host_user_change(Some(&active), &off).unwrap().event_type(),
            "user.deactivated"
        );
        assert_eq!(
            host_user_change(Some(&off), &active).unwrap().event_type(),
            "user.reactivated"
        );

        let mut renamed = active.clone();
        renamed.fields.insert("title".into(), "Lead".into());
        let e = host_user_change(Some(&active), &renamed).unwrap();
        let ChangeKind::UserUpdated(d) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].field, "fields");
        assert_eq!(d.changes[0].after, serde_json::json!({"title": "Lead"}));

        let mut linked = active.clone();
        linked.link = Some(DirectoryLink {
            tenant_id: t.clone(),
            object_id: "d1".into(),
        });
        let e = host_user_change(Some(&active), &linked).unwrap();
        assert_eq!(e.event_type(), "user.linked");
        assert_eq!(e.tenant_id, t);
        let v = serde_json::to_value(&created).unwrap();
        assert!(
            v["tenant_id"].is_null(),
            "an unlinked host user has no tenant: {v}"
        );
    }
}
