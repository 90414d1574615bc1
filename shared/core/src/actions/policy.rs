//! A connection's action policy: which kinds its admin enabled (and so consented to), which
//! wait for an approver, and how long a request may wait. Pure checks the service runs before
//! anything reaches the directory.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::kind::{ActionKind, permissions_for};
use crate::directory_write::GrantedPermissions;

/// The `actions` section of a connection's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionSettings {
    /// The kinds the admin enabled. Empty (the default): actions are off for the connection.
    /// Enabling a kind asks the admin for a reconsent with its write permission.
    pub enabled: BTreeSet<ActionKind>,
    /// The kinds that wait for an approver (default: reset password, delete, block sign-in).
    pub approval_required: BTreeSet<ActionKind>,
    /// How long a request waits for an approver before it expires (default 72).
    pub approval_expiry_hours: u32,
}

impl Default for ActionSettings {
    fn default() -> Self {
        Self {
            enabled: BTreeSet::new(),
            approval_required: ActionKind::ALL
                .into_iter()
                .filter(|k| k.needs_approval_by_default())
                .collect(),
            approval_expiry_hours: 72,
        }
    }
}

/// The longest a request may wait for an approver (30 days, the time a deleted user stays
/// restorable: a longer wait would make little sense for any kind).
pub const MAX_APPROVAL_EXPIRY_HOURS: u32 = 30 * 24;

impl ActionSettings {
    /// Every problem, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.approval_expiry_hours == 0 || self.approval_expiry_hours > MAX_APPROVAL_EXPIRY_HOURS
        {
            p.push(format!(
                "actions.approval_expiry_hours must be 1-{MAX_APPROVAL_EXPIRY_HOURS}, got {}",
                self.approval_expiry_hours
            ));
        }
        p
    }

    pub fn needs_approval(&self, kind: ActionKind) -> bool {
        self.approval_required.contains(&kind)
    }

    /// The write permissions the enabled kinds need (what a reconsent asks for).
    pub fn write_permissions(&self) -> Vec<&'static str> {
        permissions_for(self.enabled.iter().copied())
    }
}

/// Why an action may not run at all, decided before any directory call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{kind} is not enabled for this directory: an admin enables it (which asks the directory's admin to consent to {permission}), e.g. `entra-sync actions enable --kind {kind}`"
    )]
    NotEnabled {
        kind: ActionKind,
        permission: &'static str,
    },
    #[error(
        "the app lacks the Microsoft Graph permission {permission}, which {kind} needs: the directory's admin has not granted it. Enable the action again to get a new consent link, or grant {permission} (application permission) to the app in Entra ID > Enterprise applications > Permissions, with admin consent"
    )]
    MissingPermission {
        kind: ActionKind,
        permission: &'static str,
    },
}

/// Whether `kind` may run on a connection whose policy is `settings` and whose token carries
/// `granted` (application permissions, the token's `roles` claim).
pub fn check_allowed(
    kind: ActionKind,
    settings: &ActionSettings,
    granted: &GrantedPermissions,
) -> Result<(), Refusal> {
    let permission = kind.permission();
    if !settings.enabled.contains(&kind) {
        return Err(Refusal::NotEnabled { kind, permission });
    }
    if !granted.allows(kind) {
        return Err(Refusal::MissingPermission { kind, permission });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(kinds: &[ActionKind]) -> ActionSettings {
        ActionSettings {
            enabled: kinds.iter().copied().collect(),
            ..ActionSettings::default()
        }
    }

    #[test]
    fn actions_are_off_until_enabled() {
        let s = ActionSettings::default();
        let e = check_allowed(
            ActionKind::RevokeSessions,
            &s,
            &GrantedPermissions::new(["User.RevokeSessions.All"]),
        )
        .unwrap_err();
        assert!(matches!(e, Refusal::NotEnabled { .. }));
        assert!(e.to_string().contains("User.RevokeSessions.All"), "{e}");
    }

    #[test]
    fn a_missing_permission_is_named_with_how_to_grant_it() {
        let s = enabled(&[ActionKind::AddGroupMember]);
        let e = check_allowed(
            ActionKind::AddGroupMember,
            &s,
            &GrantedPermissions::new(["User.Read.All"]),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("GroupMember.ReadWrite.All"), "{text}");
        assert!(text.contains("admin consent"), "{text}");
        assert!(!text.to_lowercase().starts_with("insufficient privileges"));
        check_allowed(
            ActionKind::AddGroupMember,
            &s,
            &GrantedPermissions::new(["GroupMember.ReadWrite.All"]),
        )
        .unwrap();
    }

    #[test]
    fn reconsent_asks_only_for_the_enabled_kinds() {
        let s = enabled(&[ActionKind::BlockSignIn, ActionKind::UnblockSignIn]);
        assert_eq!(s.write_permissions(), vec!["User.EnableDisableAccount.All"]);
        assert!(ActionSettings::default().write_permissions().is_empty());
    }

    #[test]
    fn expiry_bounds_are_checked() {
        let mut s = ActionSettings::default();
        assert!(s.problems().is_empty());
        assert_eq!(s.approval_expiry_hours, 72);
        s.approval_expiry_hours = 0;
        assert!(s.problems()[0].contains("approval_expiry_hours"));
    }
}
