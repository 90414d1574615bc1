//! The pure planning step: (page entries, stored state) -> writes, counts and events.
//!
//! Idempotent by construction: an entry whose version is not newer than the stored one is
//! skipped, so applying a page twice, or an older page after a newer one, plans nothing.
//! In a full round unchanged objects are still written (version only): the end-of-round sweep
//! removes whatever a complete read did not touch.

use std::collections::HashMap;

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

fn event(tenant: &TenantId, id: &str, kind: ChangeKind) -> ChangeEvent {
    ChangeEvent {
        tenant_id: tenant.clone(),
        object_id: id.to_owned(),
        kind,
    }
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
                    ManagerChange::NotReported => match mode {
                        RoundMode::Full => None,
                        RoundMode::Incremental => stored.and_then(|s| s.user.manager_id.clone()),
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
fn classify_user(
    tenant: &TenantId,
    before: Option<&StoredUser>,
    after: &StoredUser,
    plan: &mut Plan,
) -> bool {
    let id = after.user.id.as_str();
    let c = &mut plan.counts;
    let was_active = before.is_some_and(|b| b.presence.is_present() && b.user.is_enabled());
    match (before, after.presence) {
        (None, Presence::Present) => {
            c.created += 1;
            plan.events.push(event(tenant, id, ChangeKind::UserCreated));
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
            plan.events
                .push(event(tenant, id, ChangeKind::UserRemovedFromDirectory));
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
                plan.events
                    .push(event(tenant, id, ChangeKind::UserDeactivated));
            } else if !was_active && now_active {
                c.reactivated += 1;
                plan.events
                    .push(event(tenant, id, ChangeKind::UserReactivated));
            } else {
                c.updated += 1;
                plan.events.push(event(tenant, id, ChangeKind::UserUpdated));
            }
            false
        }
    }
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
                            ChangeKind::GroupUpdated
                        } else {
                            plan.counts.groups_created += 1;
                            ChangeKind::GroupCreated
                        };
                        plan.events.push(event(tenant, &id, kind));
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
                    plan.events
                        .push(event(tenant, &id, ChangeKind::GroupRemovedFromDirectory));
                }
                upsert_planned(&mut plan.groups, &mut planned_groups, id.clone(), next);
                // A removed group has no members any more.
                let mut members: Vec<MemberRef> = edges
                    .values()
                    .filter(|e| e.group_id == id && e.present)
                    .map(|e| e.member.clone())
                    .collect();
                members.sort();
                let mut ctx = EdgeCtx {
                    tenant,
                    plan: &mut plan,
                    planned: &mut planned_edges,
                    edges,
                    mode,
                    version,
                };
                for m in &members {
                    ctx.plan_edge(&id, m, false);
                }
            }
        }
    }
    plan
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
                    ChangeKind::MemberAdded {
                        member_id: member.id.clone(),
                        member_type: member.member_type,
                    },
                )
            } else {
                (
                    &mut self.plan.counts.memberships_removed,
                    ChangeKind::MemberRemoved {
                        member_id: member.id.clone(),
                        member_type: member.member_type,
                    },
                )
            };
            *counter += 1;
            self.plan.events.push(event(self.tenant, group_id, kind));
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
                ChangeKind::GroupRemovedFromDirectory,
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
                ChangeKind::MemberRemoved {
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
