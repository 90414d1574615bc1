//! The host product's users and the provisioning rules that derive them from the mirror.
//!
//! Every directory user we may read is mirrored; the host product's users are a *projection* of
//! that mirror through the connection's filters, mapping and rules. [`decide`] is the pure step:
//! given one mirrored user, the local user linked to it (or the one matched by email) and the
//! settings, it says what should happen and why. The projection service runs it over the whole
//! mirror; the preview runs the very same function without writing, so a preview and the import
//! that follows agree exactly.
//!
//! Rules (docs/sync-semantics.md describes them for people):
//! - enabled in the directory -> *pending*, or *active* when auto-activation for verified
//!   domains is on and the email's domain is verified;
//! - disabled in the directory -> *deactivated* (at once, or at night with nightly
//!   deprovisioning);
//! - deleted in the directory -> *disabled in directory*;
//! - out of the filters -> *frozen*: its attributes are kept and no longer updated, but its
//!   status still follows the account (a frozen user whose account is disabled or deleted loses
//!   access like any other; one enabled again gets it back);
//! - nothing is ever hard-deleted by a sync.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::filters::{OutOfScope, email_domain};
use crate::mapping::EMAIL_TARGET;
use crate::model::{AccountId, Presence, RemovalReason, StoredUser, TenantId};
use crate::settings::ConnectionSettings;

/// The status of a user in the host product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalStatus {
    /// Imported, waiting for an activation in the host product.
    Pending,
    Active,
    /// The directory account is disabled.
    Deactivated,
    /// The directory user was deleted.
    DisabledInDirectory,
    /// Deleted in the host product (kept as a marker so a sync knows not to, or to, recreate it).
    DeletedLocally,
}

impl LocalStatus {
    /// Pending and active users count as "managed, able to sign in" for the circuit breaker.
    pub fn is_active_or_pending(self) -> bool {
        matches!(self, LocalStatus::Pending | LocalStatus::Active)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LocalStatus::Pending => "pending",
            LocalStatus::Active => "active",
            LocalStatus::Deactivated => "deactivated",
            LocalStatus::DisabledInDirectory => "disabled_in_directory",
            LocalStatus::DeletedLocally => "deleted_locally",
        }
    }
}

impl fmt::Display for LocalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable link between a local user and a directory user: the object id, not the email
/// (an email rename keeps the link).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DirectoryLink {
    pub tenant_id: TenantId,
    pub object_id: String,
}

/// A user of the host product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUser {
    pub account_id: AccountId,
    pub local_id: String,
    /// Canonical email, lower-cased: the matching key within the account.
    pub email: String,
    pub status: LocalStatus,
    /// Was active at least once: a reactivation restores *active* rather than *pending*.
    pub activated: bool,
    pub link: Option<DirectoryLink>,
    /// Mapped fields (attribute mapping).
    pub fields: BTreeMap<String, String>,
    /// Roles from the group -> role mapping, sorted.
    pub roles: Vec<String>,
    /// Stopped matching the filters: kept, no longer updated.
    pub frozen: bool,
    pub updated_at: DateTime<Utc>,
    /// Grows with every stored change (the `sequence` of its `user.*` events); 0 for users
    /// written before revisions existed.
    #[serde(default)]
    pub revision: u64,
}

impl LocalUser {
    /// A user that exists in the host product before any sync (no link yet).
    pub fn pre_existing(
        account_id: AccountId,
        local_id: impl Into<String>,
        email: &str,
        status: LocalStatus,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            account_id,
            local_id: local_id.into(),
            email: email.trim().to_lowercase(),
            status,
            activated: status == LocalStatus::Active,
            link: None,
            fields: BTreeMap::new(),
            roles: Vec::new(),
            frozen: false,
            updated_at: now,
            revision: 0,
        }
    }

    pub fn is_linked_to(&self, tenant: &TenantId, object_id: &str) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| &l.tenant_id == tenant && l.object_id == object_id)
    }
}

/// The id of a local user created from a directory user: derived from (tenant, object id), so
/// a repeated projection writes the same record instead of a duplicate.
pub fn local_id_for(tenant: &TenantId, object_id: &str) -> String {
    let name = format!("{}/{}", tenant.as_str(), object_id);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// What the projection does with one directory user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new local user.
    Create,
    /// An existing local user (same email, same account) is linked to the directory user.
    Link,
    Update,
    Deactivate,
    Reactivate,
    DisableInDirectory,
    /// Stopped matching the filters; kept as it is from now on.
    Freeze,
    Unchanged,
    /// Not imported; the reason says why.
    Skip,
}

impl Action {
    /// "New" in the import modes: a directory user the host product does not have yet.
    pub fn is_new(self) -> bool {
        self == Action::Create
    }

    /// "Updated" in the import modes: a change to a user the host product already has.
    pub fn is_update(self) -> bool {
        matches!(
            self,
            Action::Link
                | Action::Update
                | Action::Deactivate
                | Action::Reactivate
                | Action::DisableInDirectory
                | Action::Freeze
        )
    }
}

/// How a decision learnt that a user loses access: what the circuit breaker weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLoss {
    /// Graph reported it for this very user: `accountEnabled: false`, or an `@removed` entry
    /// (soft or hard deletion).
    Reported,
    /// Concluded from what a read did not contain: absent from a complete full read, or no
    /// account state at all. A truncated or wrong read looks exactly like this.
    Inferred,
}

impl AccessLoss {
    fn of_disabled(user: &StoredUser) -> Self {
        match user.user.account_enabled {
            Some(false) => AccessLoss::Reported,
            _ => AccessLoss::Inferred,
        }
    }

    fn of_removed(user: &StoredUser) -> Self {
        match user.presence {
            Presence::Removed {
                reason: RemovalReason::SoftDeleted | RemovalReason::HardDeleted,
            } => AccessLoss::Reported,
            _ => AccessLoss::Inferred,
        }
    }
}

/// One decision, with the before and after state of the local user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub object_id: String,
    pub action: Action,
    /// Plain words: why this action (or why skipped).
    pub reason: String,
    /// The local user to write (absent for unchanged and skipped).
    pub write: Option<LocalUser>,
    /// Fields whose value changes (for updates), sorted.
    pub changed: Vec<String>,
    /// This decision moves a pending or active user to deactivated / disabled in directory
    /// (what the circuit breaker counts), and how that was learnt.
    pub deactivates: Option<AccessLoss>,
}

/// What the rules need besides the user.
pub struct RuleContext<'a> {
    pub tenant: &'a TenantId,
    pub account: &'a AccountId,
    pub settings: &'a ConnectionSettings,
    /// The tenant's verified domains, lower-cased.
    pub verified_domains: &'a [String],
    /// Whether disabled accounts may be deactivated now (nightly deprovisioning).
    pub deactivation_allowed: bool,
    pub now: DateTime<Utc>,
}

/// The local users relevant to one directory user.
#[derive(Clone, Copy, Debug, Default)]
pub struct Found<'a> {
    /// Linked to this directory user.
    pub linked: Option<&'a LocalUser>,
    /// Same email in the same account, not linked to this directory user. For a linked user
    /// whose email changed: another local user that holds the new email (the rename then
    /// keeps the old email, so no two local users share one).
    pub by_email: Option<&'a LocalUser>,
}

fn initial_status(user: &StoredUser, ctx: &RuleContext<'_>) -> LocalStatus {
    if !user.user.is_enabled() {
        return LocalStatus::Deactivated;
    }
    let verified = user
        .user
        .canonical_email()
        .and_then(|e| email_domain(&e))
        .is_some_and(|d| ctx.verified_domains.iter().any(|v| v == &d));
    match ctx.settings.provisioning.auto_activate_verified_domains && verified {
        true => LocalStatus::Active,
        false => LocalStatus::Pending,
    }
}

fn skip(object_id: &str, reason: impl Into<String>) -> Decision {
    Decision {
        object_id: object_id.to_owned(),
        action: Action::Skip,
        reason: reason.into(),
        write: None,
        changed: Vec::new(),
        deactivates: None,
    }
}

fn unchanged(object_id: &str, reason: impl Into<String>) -> Decision {
    Decision {
        action: Action::Unchanged,
        ..skip(object_id, reason)
    }
}

fn changed_fields(before: &LocalUser, after: &LocalUser) -> Vec<String> {
    let mut keys: Vec<String> = before
        .fields
        .keys()
        .chain(after.fields.keys())
        .filter(|k| before.fields.get(*k) != after.fields.get(*k))
        .cloned()
        .collect();
    if before.roles != after.roles {
        keys.push("roles".to_owned());
    }
    if before.email != after.email && !keys.iter().any(|k| k == "email") {
        keys.push("email".to_owned());
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Decide what happens to the local side of one mirrored user. Pure.
pub fn decide(
    stored: &StoredUser,
    found: Found<'_>,
    scope: Result<(), OutOfScope>,
    roles: Vec<String>,
    ctx: &RuleContext<'_>,
) -> Decision {
    let u = &stored.user;
    let id = u.id.as_str();
    let removed = !stored.presence.is_present();
    let enabled = u.is_enabled();
    let email = u.canonical_email().map(|e| e.trim().to_owned());
    let fields = ctx.settings.mapping.apply(u);
    let link = DirectoryLink {
        tenant_id: ctx.tenant.clone(),
        object_id: u.id.clone(),
    };

    let Some(existing) = found.linked else {
        // Not linked yet: import (create) or match an existing local user by email.
        if removed {
            return skip(id, "deleted in the directory before it was imported");
        }
        let Some(email) = email else {
            return skip(id, "no email (neither mail nor user principal name)");
        };
        if let Err(why) = scope {
            return skip(id, format!("outside the filters: {why}"));
        }
        if !enabled && !ctx.settings.filters.include_disabled {
            return skip(
                id,
                "disabled in the directory (disabled accounts are not imported)",
            );
        }
        if let Some(other) = found.by_email {
            if other.link.is_some() {
                return skip(
                    id,
                    format!(
                        "local user {} already has the email {email} and is linked to another directory user",
                        other.local_id
                    ),
                );
            }
            // Matching: the existing local user is linked, never duplicated.
            let mut after = other.clone();
            after.link = Some(link);
            after.fields = fields;
            after.roles = roles;
            after.email = email.clone();
            after.frozen = false;
            after.updated_at = ctx.now;
            // The local user keeps its status, except where the account's state decides it
            // for a linked user (the rules below): linking applies them at once, so the next
            // run has nothing left to change.
            let mut deactivates = None;
            match after.status {
                LocalStatus::DeletedLocally => after.status = initial_status(stored, ctx),
                s if !enabled && s.is_active_or_pending() && ctx.deactivation_allowed => {
                    after.status = LocalStatus::Deactivated;
                    deactivates = Some(AccessLoss::of_disabled(stored));
                }
                LocalStatus::DisabledInDirectory if !enabled => {
                    after.status = LocalStatus::Deactivated;
                }
                LocalStatus::Deactivated | LocalStatus::DisabledInDirectory if enabled => {
                    after.status = match after.activated {
                        true => LocalStatus::Active,
                        false => LocalStatus::Pending,
                    };
                }
                _ => {}
            }
            after.activated |= after.status == LocalStatus::Active;
            let mut changed = changed_fields(other, &after);
            if after.status != other.status {
                changed.push("status".to_owned());
            }
            return Decision {
                object_id: id.to_owned(),
                action: Action::Link,
                reason: format!("matched existing local user {} by email", other.local_id),
                changed,
                write: Some(after),
                deactivates,
            };
        }
        let status = initial_status(stored, ctx);
        let created = LocalUser {
            account_id: ctx.account.clone(),
            local_id: local_id_for(ctx.tenant, id),
            email,
            status,
            activated: status == LocalStatus::Active,
            link: Some(link),
            fields,
            roles,
            frozen: false,
            updated_at: ctx.now,
            revision: 0,
        };
        return Decision {
            object_id: id.to_owned(),
            action: Action::Create,
            reason: format!("new directory user, created as {status}"),
            write: Some(created),
            changed: Vec::new(),
            deactivates: None,
        };
    };

    let before = existing;
    // Renamed to an email another local user holds: keep the old one (never a duplicate).
    let email_taken = found.by_email.filter(|o| o.local_id != before.local_id);
    let email = match email_taken {
        Some(_) => None,
        None => email,
    };
    let mut fields = fields;
    if email_taken.is_some() {
        match before.fields.get(EMAIL_TARGET) {
            Some(v) => fields.insert(EMAIL_TARGET.to_owned(), v.clone()),
            None => fields.remove(EMAIL_TARGET),
        };
    }
    if removed {
        if matches!(
            before.status,
            LocalStatus::DisabledInDirectory | LocalStatus::DeletedLocally
        ) {
            return unchanged(id, "deleted in the directory; already handled");
        }
        let mut after = before.clone();
        after.status = LocalStatus::DisabledInDirectory;
        after.updated_at = ctx.now;
        return Decision {
            object_id: id.to_owned(),
            action: Action::DisableInDirectory,
            reason: "deleted in the directory".to_owned(),
            write: Some(after),
            changed: vec!["status".to_owned()],
            deactivates: before
                .status
                .is_active_or_pending()
                .then(|| AccessLoss::of_removed(stored)),
        };
    }
    if before.status == LocalStatus::DeletedLocally {
        if scope.is_err() || (!enabled && !ctx.settings.filters.include_disabled) {
            return unchanged(id, "deleted in the host product and no longer matches");
        }
        if !ctx.settings.provisioning.recreate_deleted_locally {
            return skip(
                id,
                "deleted in the host product; recreating deleted users is off",
            );
        }
        let mut after = before.clone();
        after.status = initial_status(stored, ctx);
        after.fields = fields;
        after.roles = roles;
        after.email = email.unwrap_or_else(|| before.email.clone());
        after.frozen = false;
        after.updated_at = ctx.now;
        return Decision {
            object_id: id.to_owned(),
            action: Action::Create,
            reason: "deleted in the host product but still matches: created again".to_owned(),
            write: Some(after),
            changed: Vec::new(),
            deactivates: None,
        };
    }
    let step = follow_account(before, stored, ctx);
    if let Err(why) = scope {
        // Out of the filters: the attributes are kept as they are, but the status still
        // follows the account. A disabled or deleted account never keeps its access because a
        // filter stopped matching it.
        let mut after = before.clone();
        after.frozen = true;
        let mut changed = Vec::new();
        if !before.frozen {
            changed.push("frozen".to_owned());
        }
        let (action, reason, deactivates) = match step {
            Step::Moves {
                status,
                action,
                reason,
                deactivates,
            } => {
                after.status = status;
                after.activated |= status == LocalStatus::Active;
                changed.push("status".to_owned());
                (
                    action,
                    format!("{reason} (outside the filters: {why}; attributes kept)"),
                    deactivates,
                )
            }
            Step::Waits(waits) if before.frozen => {
                return unchanged(id, format!("frozen: outside the filters ({why}); {waits}"));
            }
            Step::Stays if before.frozen => {
                return unchanged(id, format!("frozen: outside the filters ({why})"));
            }
            Step::Waits(_) | Step::Stays => (
                Action::Freeze,
                format!("no longer matches the filters ({why}); kept, no longer updated"),
                None,
            ),
        };
        after.updated_at = ctx.now;
        return Decision {
            object_id: id.to_owned(),
            action,
            reason,
            write: Some(after),
            changed,
            deactivates,
        };
    }

    let mut after = before.clone();
    after.fields = fields;
    after.roles = roles;
    if let Some(e) = email {
        after.email = e;
    }
    after.frozen = false;
    let mut action = Action::Update;
    let mut reason = String::from("directory attributes changed");
    let mut deactivates = None;
    match step {
        Step::Moves {
            status,
            action: a,
            reason: r,
            deactivates: d,
        } => {
            after.status = status;
            action = a;
            reason = r;
            deactivates = d;
        }
        Step::Waits(r) => reason = r,
        Step::Stays => {}
    }
    if before.frozen && action == Action::Update {
        reason = "matches the filters again".to_owned();
    }
    if let Some(o) = email_taken
        && action == Action::Update
    {
        reason = format!(
            "{reason}; the new email belongs to local user {}, so the email is kept",
            o.local_id
        );
    }
    let mut changed = changed_fields(before, &after);
    if before.status != after.status {
        changed.push("status".to_owned());
    }
    if before.frozen {
        changed.push("frozen".to_owned());
    }
    if changed.is_empty() {
        return unchanged(id, reason_if_unchanged(&reason));
    }
    after.updated_at = ctx.now;
    Decision {
        object_id: id.to_owned(),
        action,
        reason,
        write: Some(after),
        changed,
        deactivates,
    }
}

/// What the account's state in the directory does to a linked local user's status.
enum Step {
    /// The status stays as it is.
    Stays,
    /// It would change, but not now (nightly deprovisioning); the reason says when.
    Waits(String),
    Moves {
        status: LocalStatus,
        action: Action,
        reason: String,
        deactivates: Option<AccessLoss>,
    },
}

/// The account-state rules for a present, linked user: disabled -> deactivated (at once or at
/// night), enabled again -> reactivated. The same for users in scope and frozen ones.
fn follow_account(before: &LocalUser, stored: &StoredUser, ctx: &RuleContext<'_>) -> Step {
    if !stored.user.is_enabled() {
        if before.status.is_active_or_pending() {
            return match ctx.deactivation_allowed {
                true => Step::Moves {
                    status: LocalStatus::Deactivated,
                    action: Action::Deactivate,
                    reason: "disabled in the directory".to_owned(),
                    deactivates: Some(AccessLoss::of_disabled(stored)),
                },
                false => Step::Waits(
                    "disabled in the directory; deactivation waits for nightly deprovisioning"
                        .to_owned(),
                ),
            };
        }
        if before.status == LocalStatus::DisabledInDirectory {
            // Restored from the recycle bin, but disabled.
            return Step::Moves {
                status: LocalStatus::Deactivated,
                action: Action::Deactivate,
                reason: "restored in the directory, but disabled".to_owned(),
                deactivates: None,
            };
        }
        return Step::Stays;
    }
    if matches!(
        before.status,
        LocalStatus::Deactivated | LocalStatus::DisabledInDirectory
    ) {
        let status = match before.activated {
            true => LocalStatus::Active,
            false => LocalStatus::Pending,
        };
        return Step::Moves {
            status,
            action: Action::Reactivate,
            reason: format!("enabled in the directory again, now {status}"),
            deactivates: None,
        };
    }
    Step::Stays
}

fn reason_if_unchanged(reason: &str) -> String {
    match reason.contains("nightly") {
        true => reason.to_owned(),
        false => "up to date".to_owned(),
    }
}
