//! The pure planning step: (page entries, stored state) -> writes, counts and events.
//!
//! Idempotent by construction: an entry whose version is not newer than the stored one is
//! skipped, so applying a page twice, or an older page after a newer one, plans nothing.
//! In a full round unchanged objects are still written (version only): the end-of-round sweep
//! removes whatever a complete read did not touch.

use std::collections::HashMap;

use crate::committed::directory_user_event;
use crate::events::{ChangeEvent, ChangeKind};
use crate::model::{
    DirectoryGroup, DirectoryUser, MemberRef, Presence, RemovalReason, StoredGroup,
    StoredMembership, StoredUser, TenantId, Version,
};
use crate::page::{GroupDelta, ManagerChange, RoundMode, UserDelta};
use crate::run::Counts;

/// What to write for one page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub users: Vec<StoredUser>,
    pub groups: Vec<StoredGroup>,
    pub memberships: Vec<StoredMembership>,
    pub counts: Counts,
    pub events: Vec<ChangeEvent>,
}

impl Plan {
    pub fn write_count(&self) -> usize {
        self.users.len() + self.groups.len() + self.memberships.len()
    }
}

/// An event of the mirror: its sequence is the version written. Services stamp the time.
fn event(tenant: &TenantId, id: &str, version: Version, kind: ChangeKind) -> ChangeEvent {
    ChangeEvent::new(tenant, id, version.sequence(), kind)
}

/// Plan a users page. `current` holds the stored records of (at least) the page's ids.
pub fn plan_users(
    tenant: &TenantId,
    entries: &[UserDelta],
    mode: RoundMode,
    version: Version,
    current: &HashMap<String, StoredUser>,
) -> Plan {
    let mut plan = Plan::default();
    // An id may repeat within a page: the later entry wins, so plan against what we planned.
    let mut planned: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        let id = entry.id();
        // Within-page duplicates are rare: clone only then, to keep `plan` borrowable.
        let in_page_copy = planned.get(id).map(|&i| plan.users[i].clone());
        let in_page = in_page_copy.is_some();
        let stored = in_page_copy.as_ref().or_else(|| current.get(id));
        // Already applied (a replay of this page) or overtaken by a newer page.
        if !in_page && stored.is_some_and(|s| s.version >= version) {
            plan.counts.skipped += 1;
            continue;
        }
        let next = match entry {
            UserDelta::Upsert { user, manager } => {
                let manager_id = match manager {
                    ManagerChange::Set(m) => Some(m.clone()),
                    ManagerChange::Removed => None,
                    // Unreported means "unchanged" only for a user we hold as present; a
                    // full round, a new user and a restored one come with their whole state.
                    ManagerChange::NotReported => match (mode, stored) {
                        (RoundMode::Incremental, Some(s)) if s.presence.is_present() => {
                            s.user.manager_id.clone()
                        }
                        _ => None,
                    },
                };
                StoredUser {
                    user: DirectoryUser {
                        manager_id,
                        ..user.clone()
                    },
                    presence: Presence::Present,
                    version,
                }
            }
            UserDelta::Removed { id, reason } => StoredUser {
                user: stored
                    .map(|s| s.user.clone())
                    .unwrap_or_else(|| DirectoryUser {
                        id: id.clone(),
                        ..DirectoryUser::default()
                    }),
                presence: Presence::Removed { reason: *reason },
                version,
            },
        };
        let unchanged = classify_user(tenant, stored, &next, &mut plan);
        // Incremental rounds write only changes; full rounds also stamp unchanged objects
        // so the sweep knows the complete read saw them.
        if unchanged && mode == RoundMode::Incremental && !in_page {
            continue;
        }
        upsert_planned(&mut plan.users, &mut planned, id.to_owned(), next);
    }
    plan
}

/// Count and describe the transition; returns true when nothing but the version changes.
/// The event is the one a store recording its commits derives from the same two states.
fn classify_user(
    tenant: &TenantId,
    before: Option<&StoredUser>,
    after: &StoredUser,
    plan: &mut Plan,
) -> bool {
    let c = &mut plan.counts;
    let was_active = before.is_some_and(|b| b.presence.is_present() && b.user.is_enabled());
    let unchanged = match (before, after.presence) {
        (None, Presence::Present) => {
            c.created += 1;
            false
        }
        // A removal of an object we never saw: keep a tombstone, nothing to report.
        (None, Presence::Removed { .. }) => false,
        (Some(b), Presence::Removed { .. }) => {
            if !b.presence.is_present() {
                return b.presence == after.presence;
            }
            c.removed += 1;
            if was_active {
                c.deactivated += 1;
            }
            false
        }
        (Some(b), Presence::Present) => {
            let now_active = after.user.is_enabled();
            if b.presence == after.presence && b.user == after.user {
                c.unchanged += 1;
                return true;
            }
            if was_active && !now_active {
                c.deactivated += 1;
            } else if !was_active && now_active {
                c.reactivated += 1;
            } else {
                c.updated += 1;
            }
            false
        }
    };
    plan.events
        .extend(directory_user_event(tenant, before, after));
    unchanged
}

/// Key of a membership edge.
pub fn edge_key(group_id: &str, member_id: &str) -> (String, String) {
    (group_id.to_owned(), member_id.to_owned())
}

/// Plan a groups page. `groups` holds the stored groups of the page's ids; `edges` the stored
/// edges the page mentions, plus every edge of each group the page removes.
///
/// A group object and its member edges are versioned separately: a large group spans several
/// pages, and a late page must still deliver its slice of members even though a newer page
/// already wrote the group object.
pub fn plan_groups(
    tenant: &TenantId,
    entries: &[GroupDelta],
    mode: RoundMode,
    version: Version,
    groups: &HashMap<String, StoredGroup>,
    edges: &HashMap<(String, String), StoredMembership>,
) -> Plan {
    let mut plan = Plan::default();
    let mut planned_groups: HashMap<String, usize> = HashMap::new();
    let mut planned_edges: HashMap<(String, String), usize> = HashMap::new();

    for entry in entries {
        let id = entry.id().to_owned();
        let in_page_copy = planned_groups.get(&id).map(|&i| plan.groups[i].clone());
        let in_page = in_page_copy.is_some();
        let stored = in_page_copy.as_ref().or_else(|| groups.get(&id));
        let group_stale = !in_page && stored.is_some_and(|s| s.version >= version);
        match entry {
            GroupDelta::Upsert {
                group,
                members_added,
                members_removed,
            } => {
                // A newer removal of the group wins over this page's additions.
                let removed_later = group_stale && stored.is_some_and(|s| !s.presence.is_present());
                if group_stale {
                    plan.counts.skipped += 1;
                } else {
                    let next = StoredGroup {
                        group: group.clone(),
                        presence: Presence::Present,
                        version,
                    };
                    let was_present = stored.is_some_and(|s| s.presence.is_present());
                    let same = was_present && stored.is_some_and(|s| s.group == next.group);
                    if !same {
                        let kind = if was_present {
                            plan.counts.groups_updated += 1;
                            ChangeKind::DirectoryGroupUpdated {}
                        } else {
                            plan.counts.groups_created += 1;
                            ChangeKind::DirectoryGroupCreated {}
                        };
                        plan.events.push(event(tenant, &id, version, kind));
                    }
                    if !(same && mode == RoundMode::Incremental && !in_page) {
                        upsert_planned(&mut plan.groups, &mut planned_groups, id.clone(), next);
                    }
                }
                let mut ctx = EdgeCtx {
                    tenant,
                    plan: &mut plan,
                    planned: &mut planned_edges,
                    edges,
                    mode,
                    version,
                };
                if !removed_later {
                    for m in members_added {
                        ctx.plan_edge(&id, m, true);
                    }
                }
                for m in members_removed {
                    ctx.plan_edge(&id, m, false);
                }
            }
            GroupDelta::Removed { reason, .. } => {
                if group_stale {
                    plan.counts.skipped += 1;
                    // The group is already removed (by this page, redelivered, or a newer
                    // one), but a worker that crashed between the group write and the edge
                    // writes left its members in place: tombstone whatever is still present.
                    if stored.is_some_and(|s| !s.presence.is_present()) {
                        remove_all_members(
                            tenant,
                            &id,
                            &mut plan,
                            &mut planned_edges,
                            edges,
                            mode,
                            version,
                        );
                    }
                    continue;
                }
                let next = StoredGroup {
                    group: stored
                        .map(|s| s.group.clone())
                        .unwrap_or_else(|| DirectoryGroup {
                            id: id.clone(),
                            ..Default::default()
                        }),
                    presence: Presence::Removed { reason: *reason },
                    version,
                };
                if stored.is_some_and(|s| s.presence.is_present()) {
                    plan.counts.groups_removed += 1;
                    plan.events.push(event(
                        tenant,
                        &id,
                        version,
                        ChangeKind::DirectoryGroupDeleted {},
                    ));
                }
                upsert_planned(&mut plan.groups, &mut planned_groups, id.clone(), next);
                remove_all_members(
                    tenant,
                    &id,
                    &mut plan,
                    &mut planned_edges,
                    edges,
                    mode,
                    version,
                );
            }
        }
    }
    plan
}

/// A removed group has no members any more: tombstone every present edge of it.
fn remove_all_members(
    tenant: &TenantId,
    group_id: &str,
    plan: &mut Plan,
    planned: &mut HashMap<(String, String), usize>,
    edges: &HashMap<(String, String), StoredMembership>,
    mode: RoundMode,
    version: Version,
) {
    let mut members: Vec<MemberRef> = edges
        .values()
        .filter(|e| e.group_id == group_id && e.present)
        .map(|e| e.member.clone())
        .collect();
    members.sort();
    let mut ctx = EdgeCtx {
        tenant,
        plan,
        planned,
        edges,
        mode,
        version,
    };
    for m in &members {
        ctx.plan_edge(group_id, m, false);
    }
}

fn upsert_planned<K: std::hash::Hash + Eq, T>(
    list: &mut Vec<T>,
    index: &mut HashMap<K, usize>,
    key: K,
    v: T,
) {
    match index.get(&key) {
        Some(&i) => list[i] = v,
        None => {
            index.insert(key, list.len());
            list.push(v);
        }
    }
}

struct EdgeCtx<'a> {
    tenant: &'a TenantId,
    plan: &'a mut Plan,
    planned: &'a mut HashMap<(String, String), usize>,
    edges: &'a HashMap<(String, String), StoredMembership>,
    mode: RoundMode,
    version: Version,
}

impl EdgeCtx<'_> {
    fn plan_edge(&mut self, group_id: &str, member: &MemberRef, present: bool) {
        let key = edge_key(group_id, &member.id);
        let in_page_copy = self
            .planned
            .get(&key)
            .map(|&i| self.plan.memberships[i].clone());
        let in_page = in_page_copy.is_some();
        let stored = in_page_copy.as_ref().or_else(|| self.edges.get(&key));
        if !in_page && stored.is_some_and(|s| s.version >= self.version) {
            self.plan.counts.skipped += 1;
            return;
        }
        let was_present = stored.is_some_and(|s| s.present);
        // Incremental rounds write only changes, but a removal of an edge we never had still
        // leaves a tombstone, so a late "add" from an older page cannot resurrect it.
        if stored.is_some() && was_present == present && self.mode == RoundMode::Incremental {
            return;
        }
        if was_present != present {
            let (counter, kind) = if present {
                (
                    &mut self.plan.counts.memberships_added,
                    ChangeKind::MembershipAdded {
                        member_id: member.id.clone(),
                        member_type: member.member_type,
                    },
                )
            } else {
                (
                    &mut self.plan.counts.memberships_removed,
                    ChangeKind::MembershipRemoved {
                        member_id: member.id.clone(),
                        member_type: member.member_type,
                    },
                )
            };
            *counter += 1;
            self.plan
                .events
                .push(event(self.tenant, group_id, self.version, kind));
        }
        let next = StoredMembership {
            group_id: group_id.to_owned(),
            member: member.clone(),
            present,
            version: self.version,
        };
        upsert_planned(&mut self.plan.memberships, self.planned, key, next);
    }
}

/// The end-of-round sweep of a full round of `cycle`: users still present that the complete read
/// did not touch are gone from the directory.
pub fn sweep_users(tenant: &TenantId, stored: &[StoredUser], cycle: u64) -> Plan {
    let mut plan = Plan::default();
    for s in stored {
        if s.presence.is_present() && s.version.cycle < cycle {
            let after = StoredUser {
                user: s.user.clone(),
                presence: Presence::Removed {
                    reason: RemovalReason::MissingFromFullRead,
                },
                version: Version::sweep(cycle),
            };
            classify_user(tenant, Some(s), &after, &mut plan);
            plan.users.push(after);
        }
    }
    plan
}

/// The sweep of groups after a full groups round.
pub fn sweep_groups(tenant: &TenantId, stored: &[StoredGroup], cycle: u64) -> Plan {
    let mut plan = Plan::default();
    for s in stored {
        if s.presence.is_present() && s.version.cycle < cycle {
            plan.counts.groups_removed += 1;
            plan.events.push(event(
                tenant,
                &s.group.id,
                Version::sweep(cycle),
                ChangeKind::DirectoryGroupDeleted {},
            ));
            plan.groups.push(StoredGroup {
                group: s.group.clone(),
                presence: Presence::Removed {
                    reason: RemovalReason::MissingFromFullRead,
                },
                version: Version::sweep(cycle),
            });
        }
    }
    plan
}

/// The sweep of membership edges after a full groups round.
pub fn sweep_memberships(tenant: &TenantId, stored: &[StoredMembership], cycle: u64) -> Plan {
    let mut plan = Plan::default();
    for s in stored {
        if s.present && s.version.cycle < cycle {
            plan.counts.memberships_removed += 1;
            plan.events.push(event(
                tenant,
                &s.group_id,
                Version::sweep(cycle),
                ChangeKind::MembershipRemoved {
                    member_id: s.member.id.clone(),
                    member_type: s.member.member_type,
                },
            ));
            plan.memberships.push(StoredMembership {
                present: false,
                version: Version::sweep(cycle),
                ..s.clone()
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MemberType, RemovalReason};

    fn tenant() -> TenantId {
        TenantId::new("t1")
    }

    fn user(id: &str, name: &str, enabled: bool) -> DirectoryUser {
        DirectoryUser {
            id: id.into(),
            display_name: Some(name.into()),
            account_enabled: Some(enabled),
            ..Default::default()
        }
    }

    fn upsert(u: DirectoryUser) -> UserDelta {
        UserDelta::Upsert {
            user: u,
            manager: ManagerChange::NotReported,
        }
    }

    fn apply_users(state: &mut HashMap<String, StoredUser>, plan: &Plan) {
        for u in &plan.users {
            let newer = state.get(&u.user.id).is_none_or(|s| s.version < u.version);
            if newer {
                state.insert(u.user.id.clone(), u.clone());
            }
        }
    }

    #[test]
    fn new_users_are_created_and_a_replayed_page_plans_nothing() {
        let entries = vec![upsert(user("a", "A", true)), upsert(user("b", "B", false))];
        let mut state = HashMap::new();
        let v = Version::new(1, 0);
        let plan = plan_users(&tenant(), &entries, RoundMode::Full, v, &state);
        assert_eq!(plan.counts.created, 2);
        assert_eq!(plan.users.len(), 2);
        apply_users(&mut state, &plan);
        let again = plan_users(&tenant(), &entries, RoundMode::Full, v, &state);
        assert_eq!(again.users.len(), 0);
        assert_eq!(again.counts.skipped, 2);
        assert!(again.events.is_empty());
    }

    #[test]
    fn an_older_page_after_a_newer_one_changes_nothing() {
        let mut state = HashMap::new();
        let newer = plan_users(
            &tenant(),
            &[upsert(user("a", "New name", true))],
            RoundMode::Incremental,
            Version::new(2, 3),
            &state,
        );
        apply_users(&mut state, &newer);
        let older = plan_users(
            &tenant(),
            &[upsert(user("a", "Old name", true))],
            RoundMode::Incremental,
            Version::new(2, 1),
            &state,
        );
        assert!(older.users.is_empty());
        assert_eq!(state["a"].user.display_name.as_deref(), Some("New name"));
    }

    #[test]
    fn incremental_rounds_write_only_changes_full_rounds_stamp_everything() {
        let mut state = HashMap::new();
        let p = plan_users(
            &tenant(),
            &[upsert(user("a", "A", true))],
            RoundMode::Full,
            Version::new(1, 0),
            &state,
        );
        apply_users(&mut state, &p);
        let inc = plan_users(
            &tenant(),
            &[upsert(user("a", "A", true))],
            RoundMode::Incremental,
            Version::new(2, 0),
            &state,
        );
        assert!(inc.users.is_empty());
        assert_eq!(inc.counts.unchanged, 1);
        let full = plan_users(
            &tenant(),
            &[upsert(user("a", "A", true))],
            RoundMode::Full,
            Version::new(3, 0),
            &state,
        );
        assert_eq!(full.users.len(), 1);
        assert_eq!(full.counts.unchanged, 1);
        assert!(full.events.is_empty());
    }

    #[test]
    fn disabling_and_removing_count_as_deactivations() {
        let mut state = HashMap::new();
        let p = plan_users(
            &tenant(),
            &[upsert(user("a", "A", true)), upsert(user("b", "B", true))],
            RoundMode::Full,
            Version::new(1, 0),
            &state,
        );
        apply_users(&mut state, &p);
        let p = plan_users(
            &tenant(),
            &[
                upsert(user("a", "A", false)),
                UserDelta::Removed {
                    id: "b".into(),
                    reason: RemovalReason::SoftDeleted,
                },
            ],
            RoundMode::Incremental,
            Version::new(2, 0),
            &state,
        );
        assert_eq!(p.counts.deactivated, 2);
        assert_eq!(p.counts.removed, 1);
        apply_users(&mut state, &p);
        assert!(!state["b"].presence.is_present());
        // Restored: comes back as a plain object.
        let p = plan_users(
            &tenant(),
            &[upsert(user("b", "B", true))],
            RoundMode::Incremental,
            Version::new(3, 0),
            &state,
        );
        assert_eq!(p.counts.reactivated, 1);
    }

    #[test]
    fn manager_absent_means_unchanged_in_incremental_and_none_in_full() {
        let mut state = HashMap::new();
        let p = plan_users(
            &tenant(),
            &[UserDelta::Upsert {
                user: user("a", "A", true),
                manager: ManagerChange::Set("m".into()),
            }],
            RoundMode::Full,
            Version::new(1, 0),
            &state,
        );
        apply_users(&mut state, &p);
        let p = plan_users(
            &tenant(),
            &[upsert(user("a", "A2", true))],
            RoundMode::Incremental,
            Version::new(2, 0),
            &state,
        );
        apply_users(&mut state, &p);
        assert_eq!(state["a"].user.manager_id.as_deref(), Some("m"));
        let p = plan_users(
            &tenant(),
            &[upsert(user("a", "A2", true))],
            RoundMode::Full,
            Version::new(3, 0),
            &state,
        );
        apply_users(&mut state, &p);
        assert_eq!(state["a"].user.manager_id, None);
    }

    #[test]
    fn a_restored_user_does_not_get_back_the_manager_it_had_before_deletion() {
        let mut state = HashMap::new();
        let p = plan_users(
            &tenant(),
            &[UserDelta::Upsert {
                user: user("a", "A", true),
                manager: ManagerChange::Set("m".into()),
            }],
            RoundMode::Full,
            Version::new(1, 0),
            &state,
        );
        apply_users(&mut state, &p);
        let p = plan_users(
            &tenant(),
            &[UserDelta::Removed {
                id: "a".into(),
                reason: RemovalReason::SoftDeleted,
            }],
            RoundMode::Incremental,
            Version::new(2, 0),
            &state,
        );
        apply_users(&mut state, &p);
        let p = plan_users(
            &tenant(),
            &[upsert(user("a", "A", true))],
            RoundMode::Incremental,
            Version::new(3, 0),
            &state,
        );
        apply_users(&mut state, &p);
        assert_eq!(state["a"].user.manager_id, None);
    }

    #[test]
    fn a_removal_of_an_unknown_user_leaves_a_tombstone_that_blocks_late_creates() {
        let mut state = HashMap::new();
        let p = plan_users(
            &tenant(),
            &[UserDelta::Removed {
                id: "x".into(),
                reason: RemovalReason::HardDeleted,
            }],
            RoundMode::Incremental,
            Version::new(2, 5),
            &state,
        );
        apply_users(&mut state, &p);
        let late = plan_users(
            &tenant(),
            &[upsert(user("x", "X", true))],
            RoundMode::Incremental,
            Version::new(2, 1),
            &state,
        );
        assert!(late.users.is_empty());
        assert!(!state["x"].presence.is_present());
    }

    fn group(id: &str) -> crate::model::DirectoryGroup {
        crate::model::DirectoryGroup {
            id: id.into(),
            display_name: Some(id.to_uppercase()),
            ..Default::default()
        }
    }

    fn m(id: &str) -> MemberRef {
        MemberRef {
            id: id.into(),
            member_type: MemberType::User,
        }
    }

    struct GroupState {
        groups: HashMap<String, StoredGroup>,
        edges: HashMap<(String, String), StoredMembership>,
    }

    impl GroupState {
        fn apply(&mut self, p: &Plan) {
            for g in &p.groups {
                if self
                    .groups
                    .get(&g.group.id)
                    .is_none_or(|s| s.version < g.version)
                {
                    self.groups.insert(g.group.id.clone(), g.clone());
                }
            }
            for e in &p.memberships {
                let k = edge_key(&e.group_id, &e.member.id);
                if self.edges.get(&k).is_none_or(|s| s.version < e.version) {
                    self.edges.insert(k, e.clone());
                }
            }
        }
        fn members(&self, g: &str) -> Vec<String> {
            let mut v: Vec<String> = self
                .edges
                .values()
                .filter(|e| e.group_id == g && e.present)
                .map(|e| e.member.id.clone())
                .collect();
            v.sort();
            v
        }
        fn plan(&self, entries: &[GroupDelta], mode: RoundMode, v: Version) -> Plan {
            plan_groups(&tenant(), entries, mode, v, &self.groups, &self.edges)
        }
    }

    fn slice(g: &str, added: &[&str], removed: &[&str]) -> GroupDelta {
        GroupDelta::Upsert {
            group: group(g),
            members_added: added.iter().map(|x| m(x)).collect(),
            members_removed: removed.iter().map(|x| m(x)).collect(),
        }
    }

    #[test]
    fn members_of_a_group_split_across_pages_accumulate_in_any_order() {
        let mut s = GroupState {
            groups: HashMap::new(),
            edges: HashMap::new(),
        };
        // Page 2 arrives before page 0.
        let p2 = s.plan(
            &[slice("g", &["c", "d"], &[])],
            RoundMode::Full,
            Version::new(1, 2),
        );
        s.apply(&p2);
        let p0 = s.plan(
            &[slice("g", &["a", "b"], &[])],
            RoundMode::Full,
            Version::new(1, 0),
        );
        s.apply(&p0);
        assert_eq!(s.members("g"), vec!["a", "b", "c", "d"]);
        assert_eq!(s.groups["g"].version, Version::new(1, 2));
    }

    #[test]
    fn incremental_member_changes_and_replays() {
        let mut s = GroupState {
            groups: HashMap::new(),
            edges: HashMap::new(),
        };
        let p = s.plan(
            &[slice("g", &["a", "b"], &[])],
            RoundMode::Full,
            Version::new(1, 0),
        );
        s.apply(&p);
        let entries = [slice("g", &["c"], &["a"])];
        let p = s.plan(&entries, RoundMode::Incremental, Version::new(2, 0));
        assert_eq!(p.counts.memberships_added, 1);
        assert_eq!(p.counts.memberships_removed, 1);
        assert!(
            p.groups.is_empty(),
            "unchanged group object is not rewritten"
        );
        s.apply(&p);
        assert_eq!(s.members("g"), vec!["b", "c"]);
        let replay = s.plan(&entries, RoundMode::Incremental, Version::new(2, 0));
        assert_eq!(replay.write_count(), 0);
    }

    #[test]
    fn a_removed_group_loses_its_members_and_late_adds_do_not_resurrect_them() {
        let mut s = GroupState {
            groups: HashMap::new(),
            edges: HashMap::new(),
        };
        let p = s.plan(
            &[slice("g", &["a"], &[])],
            RoundMode::Full,
            Version::new(1, 0),
        );
        s.apply(&p);
        let p = s.plan(
            &[GroupDelta::Removed {
                id: "g".into(),
                reason: RemovalReason::HardDeleted,
            }],
            RoundMode::Incremental,
            Version::new(2, 4),
        );
        assert_eq!(p.counts.groups_removed, 1);
        s.apply(&p);
        assert!(s.members("g").is_empty());
        let late = s.plan(
            &[slice("g", &["z"], &[])],
            RoundMode::Incremental,
            Version::new(2, 1),
        );
        s.apply(&late);
        assert!(s.members("g").is_empty());
        assert!(!s.groups["g"].presence.is_present());
    }

    #[test]
    fn sweep_removes_only_what_the_full_read_did_not_touch() {
        let stored = vec![
            StoredUser {
                user: user("seen", "S", true),
                presence: Presence::Present,
                version: Version::new(5, 1),
            },
            StoredUser {
                user: user("gone", "G", true),
                presence: Presence::Present,
                version: Version::new(4, 9),
            },
            StoredUser {
                user: user("old", "O", true),
                presence: Presence::Removed {
                    reason: RemovalReason::HardDeleted,
                },
                version: Version::new(3, 0),
            },
        ];
        let p = sweep_users(&tenant(), &stored, 5);
        assert_eq!(p.users.len(), 1);
        assert_eq!(p.users[0].user.id, "gone");
        assert_eq!(p.counts.deactivated, 1);
        assert_eq!(p.users[0].version, Version::sweep(5));
    }
}
