//! Turning the names a caller uses into directory objects, from the mirror, and refusing the
//! targets the directory would refuse, before any directory call.

use super::kind::{ActionKind, is_guid, truncate};
use crate::directory_write::{GroupTraits, NotATargetReason};
use crate::model::{DirectoryGroup, Presence, RemovalReason, StoredGroup, StoredUser};

/// How a caller named a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserName<'a> {
    ObjectId(&'a str),
    /// A user principal name or an email address (matched case-insensitively against both).
    Handle(&'a str),
}

impl<'a> UserName<'a> {
    pub fn parse(name: &'a str) -> Result<Self, TargetError> {
        let name = name.trim();
        if is_guid(name) {
            Ok(UserName::ObjectId(name))
        } else if name.contains('@') && !name.starts_with('@') && !name.ends_with('@') {
            Ok(UserName::Handle(name))
        } else {
            Err(TargetError::BadUserName {
                name: truncate(name, 80),
            })
        }
    }
}

/// How a caller named a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupName<'a> {
    ObjectId(&'a str),
    DisplayName(&'a str),
}

impl<'a> GroupName<'a> {
    pub fn parse(name: &'a str) -> Self {
        let name = name.trim();
        match is_guid(name) {
            true => GroupName::ObjectId(name),
            false => GroupName::DisplayName(name),
        }
    }
}

/// Why a target cannot be used, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("\"{name}\" is not a user's object id (a GUID), user principal name or email address")]
    BadUserName { name: String },
    #[error("no user {name} in this directory (as of the last sync)")]
    UnknownUser { name: String },
    #[error("{name} matches {} users: {}; name one by object id", candidates.len(), candidates.join(", "))]
    AmbiguousUser {
        name: String,
        candidates: Vec<String>,
    },
    #[error("no group {name} in this directory (as of the last sync)")]
    UnknownGroup { name: String },
    #[error("\"{name}\" matches {} groups: {}; name one by object id", candidates.len(), candidates.join(", "))]
    AmbiguousGroup {
        name: String,
        candidates: Vec<String>,
    },
    #[error("user {name} was deleted in the directory{}; restore it first", deleted_note(*reason))]
    UserDeleted { name: String, reason: RemovalReason },
    #[error("user {name} is not deleted, so there is nothing to restore")]
    UserNotDeleted { name: String },
    #[error("user {name} was permanently deleted and cannot be restored")]
    UserPurged { name: String },
    #[error("group {name} was deleted in the directory")]
    GroupDeleted { name: String },
    #[error("group {name} cannot be changed by this app: {reason}")]
    NotATarget { name: String, reason: String },
}

fn deleted_note(reason: RemovalReason) -> &'static str {
    match reason {
        RemovalReason::SoftDeleted => " (restorable for 30 days)",
        RemovalReason::HardDeleted | RemovalReason::MissingFromFullRead => "",
    }
}

/// Pick the user `name` means among the mirror's `candidates` (users whose id, UPN or mail
/// matched), and check it suits `kind` (present, or soft-deleted for a restore).
pub fn pick_user(
    name: &str,
    kind: ActionKind,
    candidates: Vec<StoredUser>,
) -> Result<StoredUser, TargetError> {
    let parsed = UserName::parse(name)?;
    let wanted = |u: &StoredUser| match parsed {
        UserName::ObjectId(id) => u.user.id.eq_ignore_ascii_case(id),
        UserName::Handle(h) => {
            u.user
                .user_principal_name
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(h))
                || u.user
                    .mail
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(h))
        }
    };
    let mut matching: Vec<StoredUser> = candidates.into_iter().filter(wanted).collect();
    // A live user wins over deleted namesakes (a UPN can be reused after a delete), except for
    // a restore, which is about the deleted one.
    if matching.len() > 1 {
        let want_present = kind.needs_present_user();
        let preferred: Vec<StoredUser> = matching
            .iter()
            .filter(|u| u.presence.is_present() == want_present)
            .cloned()
            .collect();
        if !preferred.is_empty() {
            matching = preferred;
        }
    }
    let user = match matching.len() {
        0 => {
            return Err(TargetError::UnknownUser {
                name: truncate(name, 80),
            });
        }
        1 => matching.remove(0),
        _ => {
            let mut candidates: Vec<String> = matching.iter().map(describe_user).collect();
            candidates.sort();
            return Err(TargetError::AmbiguousUser {
                name: truncate(name, 80),
                candidates,
            });
        }
    };
    let shown = describe_user(&user);
    match (kind, user.presence) {
        (ActionKind::RestoreUser, Presence::Present) => {
            Err(TargetError::UserNotDeleted { name: shown })
        }
        (
            ActionKind::RestoreUser,
            Presence::Removed {
                reason: RemovalReason::SoftDeleted,
            },
        ) => Ok(user),
        (ActionKind::RestoreUser, Presence::Removed { .. }) => {
            Err(TargetError::UserPurged { name: shown })
        }
        (_, Presence::Present) => Ok(user),
        (_, Presence::Removed { reason }) => Err(TargetError::UserDeleted {
            name: shown,
            reason,
        }),
    }
}

/// "upn (object id)".
pub fn describe_user(u: &StoredUser) -> String {
    match u
        .user
        .user_principal_name
        .as_deref()
        .or(u.user.mail.as_deref())
    {
        Some(n) => format!("{n} ({})", u.user.id),
        None => u.user.id.clone(),
    }
}

fn describe_group(g: &StoredGroup) -> String {
    match g.group.display_name.as_deref() {
        Some(n) => format!("\"{n}\" ({})", g.group.id),
        None => g.group.id.clone(),
    }
}

/// Pick the group `name` means among `candidates` (groups whose id or display name matched)
/// and refuse one the directory would not let the app change.
pub fn pick_group(name: &str, candidates: Vec<StoredGroup>) -> Result<StoredGroup, TargetError> {
    let parsed = GroupName::parse(name);
    let wanted = |g: &StoredGroup| match parsed {
        GroupName::ObjectId(id) => g.group.id.eq_ignore_ascii_case(id),
        GroupName::DisplayName(n) => g
            .group
            .display_name
            .as_deref()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case(n)),
    };
    let mut matching: Vec<StoredGroup> = candidates.into_iter().filter(wanted).collect();
    if matching.len() > 1 {
        let present: Vec<StoredGroup> = matching
            .iter()
            .filter(|g| g.presence.is_present())
            .cloned()
            .collect();
        if !present.is_empty() {
            matching = present;
        }
    }
    let group = match matching.len() {
        0 => {
            return Err(TargetError::UnknownGroup {
                name: truncate(name, 80),
            });
        }
        1 => matching.remove(0),
        _ => {
            let mut candidates: Vec<String> = matching.iter().map(describe_group).collect();
            candidates.sort();
            return Err(TargetError::AmbiguousGroup {
                name: truncate(name, 80),
                candidates,
            });
        }
    };
    if !group.presence.is_present() {
        return Err(TargetError::GroupDeleted {
            name: describe_group(&group),
        });
    }
    if let Some(reason) = not_a_target(&group.group) {
        return Err(TargetError::NotATarget {
            name: describe_group(&group),
            reason: reason.to_string(),
        });
    }
    Ok(group)
}

/// Why Microsoft Graph would refuse membership changes of `group` by an app, if it would.
pub fn not_a_target(g: &DirectoryGroup) -> Option<NotATargetReason> {
    GroupTraits {
        group_types: g.group_types.clone(),
        mail_enabled: g.mail_enabled,
        security_enabled: g.security_enabled,
        membership_rule: None,
        on_premises_sync_enabled: g.on_premises_sync_enabled,
    }
    .membership_refusal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DirectoryUser, Version};

    fn user(id: &str, upn: &str, mail: Option<&str>, presence: Presence) -> StoredUser {
        StoredUser {
            user: DirectoryUser {
                id: id.into(),
                user_principal_name: Some(upn.into()),
                mail: mail.map(str::to_string),
                ..Default::default()
            },
            presence,
            version: Version::new(1, 1),
        }
    }

    fn group(id: &str, name: &str, f: impl FnOnce(&mut DirectoryGroup)) -> StoredGroup {
        let mut g = DirectoryGroup {
            id: id.into(),
            display_name: Some(name.into()),
            security_enabled: Some(true),
            mail_enabled: Some(false),
            ..Default::default()
        };
        f(&mut g);
        StoredGroup {
            group: g,
            presence: Presence::Present,
            version: Version::new(1, 1),
        }
    }

    const ID1: &str = "11111111-1111-1111-1111-111111111111";
    const ID2: &str = "22222222-2222-2222-2222-222222222222";
    const SOFT: Presence = Presence::Removed {
        reason: RemovalReason::SoftDeleted,
    };

    #[test]
    fn users_are_found_by_id_upn_or_mail_case_insensitively() {
        let all = || {
            vec![
                user(ID1, "ann@x.com", Some("ann.lee@x.com"), Presence::Present),
                user(ID2, "bob@x.com", None, Presence::Present),
            ]
        };
        let kind = ActionKind::BlockSignIn;
        assert_eq!(pick_user(ID1, kind, all()).unwrap().user.id, ID1);
        assert_eq!(pick_user("ANN@x.com", kind, all()).unwrap().user.id, ID1);
        assert_eq!(
            pick_user("Ann.Lee@X.com", kind, all()).unwrap().user.id,
            ID1
        );
        let e = pick_user("carl@x.com", kind, all()).unwrap_err();
        assert!(matches!(e, TargetError::UnknownUser { .. }), "{e}");
        let e = pick_user("carl", kind, all()).unwrap_err();
        assert!(matches!(e, TargetError::BadUserName { .. }), "{e}");
    }

    #[test]
    fn an_ambiguous_email_lists_the_candidates() {
        let all = vec![
            user(ID1, "ann@x.com", Some("shared@x.com"), Presence::Present),
            user(ID2, "bob@x.com", Some("shared@x.com"), Presence::Present),
        ];
        let e = pick_user("shared@x.com", ActionKind::RevokeSessions, all).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("ann@x.com") && text.contains("bob@x.com"),
            "{text}"
        );
        assert!(text.contains(ID1) && text.contains(ID2), "{text}");
    }

    #[test]
    fn deleted_users_are_refused_except_for_a_restore() {
        let all = || vec![user(ID1, "ann@x.com", None, SOFT)];
        let e = pick_user("ann@x.com", ActionKind::BlockSignIn, all()).unwrap_err();
        assert!(e.to_string().contains("restore it first"), "{e}");
        pick_user("ann@x.com", ActionKind::RestoreUser, all()).unwrap();
        let live = vec![user(ID1, "ann@x.com", None, Presence::Present)];
        assert!(matches!(
            pick_user(ID1, ActionKind::RestoreUser, live).unwrap_err(),
            TargetError::UserNotDeleted { .. }
        ));
        let purged = vec![user(
            ID1,
            "ann@x.com",
            None,
            Presence::Removed {
                reason: RemovalReason::HardDeleted,
            },
        )];
        assert!(matches!(
            pick_user(ID1, ActionKind::RestoreUser, purged).unwrap_err(),
            TargetError::UserPurged { .. }
        ));
    }

    #[test]
    fn a_reused_upn_picks_the_live_user_and_a_restore_the_deleted_one() {
        let all = || {
            vec![
                user(ID1, "ann@x.com", None, SOFT),
                user(ID2, "ann@x.com", None, Presence::Present),
            ]
        };
        assert_eq!(
            pick_user("ann@x.com", ActionKind::BlockSignIn, all())
                .unwrap()
                .user
                .id,
            ID2
        );
        assert_eq!(
            pick_user("ann@x.com", ActionKind::RestoreUser, all())
                .unwrap()
                .user
                .id,
            ID1
        );
    }

    #[test]
    fn groups_by_name_are_unique_or_listed() {
        let all = || {
            vec![
                group(ID1, "Sales", |_| {}),
                group(ID2, "sales", |_| {}),
                group("33333333-3333-3333-3333-333333333333", "Ops", |_| {}),
            ]
        };
        let e = pick_group("Sales", all()).unwrap_err();
        assert!(
            matches!(&e, TargetError::AmbiguousGroup { candidates, .. } if candidates.len() == 2),
            "{e}"
        );
        assert_eq!(
            pick_group("ops", all())
                .unwrap()
                .group
                .display_name
                .as_deref(),
            Some("Ops")
        );
        assert_eq!(pick_group(ID2, all()).unwrap().group.id, ID2);
        assert!(matches!(
            pick_group("Nope", all()).unwrap_err(),
            TargetError::UnknownGroup { .. }
        ));
    }

    #[test]
    fn non_target_groups_are_refused_with_the_reason() {
        let cases: Vec<(StoredGroup, &str)> = vec![
            (
                group(ID1, "DL", |g| {
                    g.mail_enabled = Some(true);
                    g.security_enabled = Some(false);
                }),
                "distribution list",
            ),
            (
                group(ID1, "MESG", |g| g.mail_enabled = Some(true)),
                "mail-enabled security group",
            ),
            (
                group(ID1, "Dyn", |g| {
                    g.group_types = vec!["DynamicMembership".into()]
                }),
                "dynamic membership",
            ),
            (
                group(ID1, "OnPrem", |g| g.on_premises_sync_enabled = Some(true)),
                "on-premises",
            ),
        ];
        for (g, words) in cases {
            let e = pick_group(ID1, vec![g]).unwrap_err();
            assert!(matches!(e, TargetError::NotATarget { .. }), "{e}");
            assert!(e.to_string().contains(words), "{e}");
        }
        // Microsoft 365 groups (Unified, mail-enabled) and plain security groups are targets.
        pick_group(
            ID1,
            vec![group(ID1, "M365", |g| {
                g.group_types = vec!["Unified".into()];
                g.mail_enabled = Some(true);
                g.security_enabled = Some(false);
            })],
        )
        .unwrap();
        pick_group(ID1, vec![group(ID1, "Sec", |_| {})]).unwrap();
    }
}
