//! The action kinds, what each asks of the directory, and the request a caller sends.
//!
//! A request names its target the way people do (a user by object id, UPN or email; a group by
//! id or display name); [`super::resolve`] turns those names into object ids from the mirror
//! before anything is sent to the directory.

use serde::{Deserialize, Serialize};

pub use crate::directory_write::WriteKind as ActionKind;
use crate::directory_write::required_permission;

/// What the write half adds to each kind: its target shape and approval default.
impl ActionKind {
    /// Parse the documented word, forgiving case and dashes (`Block-Sign-In`).
    pub fn parse_loose(s: &str) -> Option<Self> {
        Self::parse(&s.trim().to_ascii_lowercase().replace('-', "_"))
    }

    /// The least-privileged Microsoft Graph application permission the action needs.
    pub fn permission(self) -> &'static str {
        required_permission(self)
    }

    /// Whether the action works on a group membership (and so needs a group target).
    pub fn needs_group(self) -> bool {
        matches!(
            self,
            ActionKind::AddGroupMember | ActionKind::RemoveGroupMember
        )
    }

    /// Whether the action needs the user to be present in the directory (every kind but
    /// restore, which needs it soft-deleted).
    pub fn needs_present_user(self) -> bool {
        !matches!(self, ActionKind::RestoreUser)
    }

    /// The kinds that wait for an approver unless the connection's policy says otherwise.
    pub fn needs_approval_by_default(self) -> bool {
        matches!(
            self,
            ActionKind::ResetPassword | ActionKind::DeleteUser | ActionKind::BlockSignIn
        )
    }
}

/// The permissions a set of kinds needs, sorted and without repeats.
pub fn permissions_for(kinds: impl IntoIterator<Item = ActionKind>) -> Vec<&'static str> {
    crate::directory_write::permissions_for(kinds)
        .into_iter()
        .collect()
}

/// An action as a caller asks for it: the kind and its targets as names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    AddGroupMember {
        user: String,
        group: String,
    },
    RemoveGroupMember {
        user: String,
        group: String,
    },
    /// Assign an Enterprise Application: its service principal, and the app role (the default
    /// access role when none is given).
    AssignAppRole {
        user: String,
        service_principal_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_role_id: Option<String>,
    },
    /// Remove the user's assignment(s) of this service principal (only of this role when given).
    RemoveAppRole {
        user: String,
        service_principal_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_role_id: Option<String>,
    },
    RevokeSessions {
        user: String,
    },
    BlockSignIn {
        user: String,
    },
    UnblockSignIn {
        user: String,
    },
    ResetPassword {
        user: String,
    },
    DeleteUser {
        user: String,
    },
    RestoreUser {
        user: String,
    },
}

impl ActionSpec {
    pub fn kind(&self) -> ActionKind {
        match self {
            ActionSpec::AddGroupMember { .. } => ActionKind::AddGroupMember,
            ActionSpec::RemoveGroupMember { .. } => ActionKind::RemoveGroupMember,
            ActionSpec::AssignAppRole { .. } => ActionKind::AssignAppRole,
            ActionSpec::RemoveAppRole { .. } => ActionKind::RemoveAppRole,
            ActionSpec::RevokeSessions { .. } => ActionKind::RevokeSessions,
            ActionSpec::BlockSignIn { .. } => ActionKind::BlockSignIn,
            ActionSpec::UnblockSignIn { .. } => ActionKind::UnblockSignIn,
            ActionSpec::ResetPassword { .. } => ActionKind::ResetPassword,
            ActionSpec::DeleteUser { .. } => ActionKind::DeleteUser,
            ActionSpec::RestoreUser { .. } => ActionKind::RestoreUser,
        }
    }

    /// The user the action is about, as the caller named it.
    pub fn user(&self) -> &str {
        match self {
            ActionSpec::AddGroupMember { user, .. }
            | ActionSpec::RemoveGroupMember { user, .. }
            | ActionSpec::AssignAppRole { user, .. }
            | ActionSpec::RemoveAppRole { user, .. }
            | ActionSpec::RevokeSessions { user }
            | ActionSpec::BlockSignIn { user }
            | ActionSpec::UnblockSignIn { user }
            | ActionSpec::ResetPassword { user }
            | ActionSpec::DeleteUser { user }
            | ActionSpec::RestoreUser { user } => user,
        }
    }

    /// The group, for membership actions.
    pub fn group(&self) -> Option<&str> {
        match self {
            ActionSpec::AddGroupMember { group, .. }
            | ActionSpec::RemoveGroupMember { group, .. } => Some(group),
            _ => None,
        }
    }

    /// The app (service principal id, app role id) for app assignment actions.
    pub fn app(&self) -> Option<(&str, Option<&str>)> {
        match self {
            ActionSpec::AssignAppRole {
                service_principal_id,
                app_role_id,
                ..
            }
            | ActionSpec::RemoveAppRole {
                service_principal_id,
                app_role_id,
                ..
            } => Some((service_principal_id, app_role_id.as_deref())),
            _ => None,
        }
    }

    /// Every problem with the request's values, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let user = self.user();
        if user.trim().is_empty() {
            p.push("user: must name a user (object id, user principal name or email)".into());
        } else if user.len() > 256 {
            p.push("user: longer than 256 characters".into());
        }
        if let Some(g) = self.group() {
            if g.trim().is_empty() {
                p.push("group: must name a group (object id or display name)".into());
            } else if g.len() > 256 {
                p.push("group: longer than 256 characters".into());
            }
        }
        if let Some((sp, role)) = self.app() {
            if !is_guid(sp) {
                p.push(format!(
                    "service_principal_id: must be the object id (a GUID) of the Enterprise Application's service principal, got \"{}\"",
                    truncate(sp, 60)
                ));
            }
            if let Some(r) = role
                && !is_guid(r)
            {
                p.push(format!(
                    "app_role_id: must be a GUID (or left out for the default access role), got \"{}\"",
                    truncate(r, 60)
                ));
            }
        }
        p
    }

    /// The canonical JSON of the request (field order fixed by the type), which the
    /// idempotency key's payload hash covers.
    pub fn canonical_json(&self) -> String {
        // Serialising a plain enum of strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether `s` looks like a GUID (8-4-4-4-12 hex digits).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_word() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::parse_loose(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(
            ActionKind::parse_loose("Block-Sign-In"),
            Some(ActionKind::BlockSignIn)
        );
        assert_eq!(ActionKind::parse_loose("nuke"), None);
    }

    #[test]
    fn permissions_are_the_least_privileged_ones() {
        assert_eq!(
            permissions_for([ActionKind::AddGroupMember, ActionKind::RemoveGroupMember]),
            vec!["GroupMember.ReadWrite.All"]
        );
        assert_eq!(
            ActionKind::ResetPassword.permission(),
            "User-PasswordProfile.ReadWrite.All"
        );
        let all = permissions_for(ActionKind::ALL);
        assert_eq!(all.len(), 6, "{all:?}");
        assert!(!all.iter().any(|p| p.starts_with("Directory.")), "{all:?}");
    }

    #[test]
    fn approval_defaults_are_reset_delete_and_block() {
        let needing: Vec<ActionKind> = ActionKind::ALL
            .into_iter()
            .filter(|k| k.needs_approval_by_default())
            .collect();
        assert_eq!(
            needing,
            vec![
                ActionKind::BlockSignIn,
                ActionKind::ResetPassword,
                ActionKind::DeleteUser
            ]
        );
    }

    #[test]
    fn specs_parse_from_tagged_json_and_refuse_unknown_fields() {
        let s: ActionSpec =
            serde_json::from_str(r#"{"kind":"add_group_member","user":"a@x.com","group":"Sales"}"#)
                .unwrap();
        assert_eq!(s.kind(), ActionKind::AddGroupMember);
        assert_eq!(s.group(), Some("Sales"));
        assert!(
            serde_json::from_str::<ActionSpec>(r#"{"kind":"block_sign_in","user":"a","grup":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn bad_values_are_each_named() {
        let s = ActionSpec::AssignAppRole {
            user: " ".into(),
            service_principal_id: "not-a-guid".into(),
            app_role_id: Some("x".into()),
        };
        let p = s.problems().join("\n");
        assert!(p.contains("user:"), "{p}");
        assert!(p.contains("service_principal_id:"), "{p}");
        assert!(p.contains("app_role_id:"), "{p}");
        let ok = ActionSpec::AssignAppRole {
            user: "a@x.com".into(),
            service_principal_id: "0b9d3a7e-1c2f-4a5b-8c9d-0e1f2a3b4c5d".into(),
            app_role_id: None,
        };
        assert!(ok.problems().is_empty());
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("0b9d3a7e-1c2f-4a5b-8c9d-0e1f2a3b4c5d"));
        assert!(!is_guid("0b9d3a7e1c2f4a5b8c9d0e1f2a3b4c5d"));
        assert!(!is_guid("0b9d3a7e-1c2f-4a5b-8c9d-0e1f2a3b4c5z"));
    }
}
