//! Browsing what the sync holds, page by page with filters: the mirror's users (with the host
//! product's user each one became) and groups, and the host product's users by status. What the
//! admin API's lists and the console show.
//!
//! The stores list in key order (object id, local id); a filter is applied here, over at most
//! [`SCAN_BUDGET`] stored items per call. A page may therefore hold fewer items than asked for
//! (even none) and still have a `next`: the listing ends only when `next` is `None`. That keeps
//! every call's cost bounded whatever the filter, on every store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::model::{AccountId, StoredGroup, StoredUser, TenantId};
use crate::ports::{Listing, LocalUserStore, MirrorStore};
use crate::provision::{LocalStatus, LocalUser};

/// The most stored items one listing call reads before it returns what it found.
pub const SCAN_BUDGET: usize = 2000;
/// Stored items read per store call while scanning.
const READ_BATCH: usize = 200;

/// A directory user's state as the mirror knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorUserStatus {
    /// Present and enabled (or the directory did not say).
    Enabled,
    /// Present, `accountEnabled: false`.
    Disabled,
    /// Deleted in the directory or absent from a full read.
    Removed,
}

impl MirrorUserStatus {
    pub fn of(u: &StoredUser) -> Self {
        match (u.presence.is_present(), u.user.account_enabled) {
            (false, _) => MirrorUserStatus::Removed,
            (true, Some(false)) => MirrorUserStatus::Disabled,
            (true, _) => MirrorUserStatus::Enabled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MirrorUserStatus::Enabled => "enabled",
            MirrorUserStatus::Disabled => "disabled",
            MirrorUserStatus::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Enabled, Self::Disabled, Self::Removed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Which mirrored users a listing shows; every filter set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorUserFilter {
    pub status: Option<MirrorUserStatus>,
    /// Direct members of this group (object id).
    pub group: Option<String>,
    /// Department, compared without case and surrounding spaces.
    pub department: Option<String>,
    /// The start of the user's email (mail, else user principal name), without case.
    pub email_prefix: Option<String>,
}

impl MirrorUserFilter {
    fn keeps(&self, u: &StoredUser) -> bool {
        let fold = |s: &str| s.trim().to_lowercase();
        self.status.is_none_or(|s| MirrorUserStatus::of(u) == s)
            && self.department.as_deref().is_none_or(|d| {
                u.user
                    .department
                    .as_deref()
                    .is_some_and(|ud| fold(ud) == fold(d))
            })
            && self.email_prefix.as_deref().is_none_or(|p| {
                u.user
                    .canonical_email()
                    .is_some_and(|e| e.starts_with(&fold(p)))
            })
    }
}

/// A mirrored user and the host product's user linked to it, if any (its mapped and custom
/// fields, roles and status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorUserView {
    pub stored: StoredUser,
    pub host_user: Option<LocalUser>,
}

/// Read `read` from `after` on, keep what `keeps` accepts, stop at `limit` kept items or after
/// [`SCAN_BUDGET`] read ones. `next` is the key of the last item looked at when more may follow.
async fn filtered<T, R, Fut>(
    mut read: R,
    key: impl Fn(&T) -> String,
    keeps: impl Fn(&T) -> bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<T>, StoreError>
where
    R: FnMut(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Listing<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut cursor = after.map(str::to_owned);
    let mut scanned = 0;
    let limit = limit.max(1);
    for _ in 0..SCAN_BUDGET.div_ceil(READ_BATCH) {
        let page = read(cursor.clone(), READ_BATCH).await?;
        let more = page.next.is_some();
        let count = page.items.len();
        for (i, item) in page.items.into_iter().enumerate() {
            scanned += 1;
            cursor = Some(key(&item));
            if keeps(&item) {
                items.push(item);
            }
            if items.len() == limit || scanned >= SCAN_BUDGET {
                let rest = more || i + 1 < count;
                return Ok(Listing {
                    items,
                    next: cursor.filter(|_| rest),
                });
            }
        }
        if !more {
            return Ok(Listing { items, next: None });
        }
        cursor = page.next;
    }
    // Pages without items (members the mirror does not hold) used the budget up.
    Ok(Listing {
        items,
        next: cursor,
    })
}

/// One page of the mirror's users of `tenant` that `filter` keeps, in object-id order, each
/// with the host product's user it is linked to.
pub async fn list_mirror_users(
    mirror: &dyn MirrorStore,
    local_users: &dyn LocalUserStore,
    tenant: &TenantId,
    filter: &MirrorUserFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<MirrorUserView>, StoreError> {
    let page = match &filter.group {
        None => {
            filtered(
                |after: Option<String>, n| async move {
                    mirror.list_users(tenant, after.as_deref(), n).await
                },
                |u: &StoredUser| u.user.id.clone(),
                |u| filter.keeps(u),
                after,
                limit,
            )
            .await?
        }
        Some(group) => {
            // The group's present user members in id order, read in batches from `after`.
            let mut members: Vec<String> = mirror
                .memberships_of_group(tenant, group)
                .await?
                .into_iter()
                .filter(|m| m.present && m.member.member_type == crate::model::MemberType::User)
                .map(|m| m.member.id)
                .collect();
            members.sort();
            members.dedup();
            let members = &members;
            filtered(
                |after: Option<String>, n| async move {
                    let start = match &after {
                        Some(a) => members.partition_point(|m| m <= a),
                        None => 0,
                    };
                    let ids: Vec<String> = members.iter().skip(start).take(n).cloned().collect();
                    let more = start + ids.len() < members.len();
                    // An edge to a user the mirror does not hold (yet) is passed over.
                    let mut found = mirror.get_users(tenant, &ids).await?;
                    found.sort_by(|a, b| a.user.id.cmp(&b.user.id));
                    let next = more.then(|| ids.last().cloned()).flatten();
                    Ok(Listing { items: found, next })
                },
                |u: &StoredUser| u.user.id.clone(),
                |u| filter.keeps(u),
                after,
                limit,
            )
            .await?
        }
    };
    let ids: Vec<String> = page.items.iter().map(|u| u.user.id.clone()).collect();
    let mut linked: HashMap<String, LocalUser> = HashMap::new();
    if !ids.is_empty() {
        for u in local_users.find_linked(tenant, &ids).await? {
            let Some(link) = &u.link else { continue };
            // A deleted local user is only a marker; prefer the one in use.
            let keep = match linked.get(&link.object_id) {
                Some(existing) => existing.status == LocalStatus::DeletedLocally,
                None => true,
            };
            if keep {
                linked.insert(link.object_id.clone(), u.clone());
            }
        }
    }
    Ok(Listing {
        items: page
            .items
            .into_iter()
            .map(|stored| MirrorUserView {
                host_user: linked.remove(&stored.user.id),
                stored,
            })
            .collect(),
        next: page.next,
    })
}

/// One page of the mirror's groups of `tenant` in object-id order (present and removed).
pub async fn list_mirror_groups(
    mirror: &dyn MirrorStore,
    tenant: &TenantId,
    present_only: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<StoredGroup>, StoreError> {
    filtered(
        |after: Option<String>, n| async move {
            mirror.list_groups(tenant, after.as_deref(), n).await
        },
        |g: &StoredGroup| g.group.id.clone(),
        |g| !present_only || g.presence.is_present(),
        after,
        limit,
    )
    .await
}

/// One page of the host product's users of `account` in local-id order, of one status or all.
pub async fn list_host_users(
    local_users: &dyn LocalUserStore,
    account: &AccountId,
    status: Option<LocalStatus>,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<LocalUser>, StoreError> {
    filtered(
        |after: Option<String>, n| async move {
            local_users
                .list_local_users(account, after.as_deref(), n)
                .await
        },
        |u: &LocalUser| u.local_id.clone(),
        |u| status.is_none_or(|s| u.status == s),
        after,
        limit,
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::memory::MemoryStore;
    use crate::model::{
        DirectoryGroup, DirectoryUser, MemberRef, MemberType, Presence, RemovalReason,
        StoredMembership, Version,
    };
    use crate::provision::DirectoryLink;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000, 0).unwrap()
    }

    fn user(i: usize) -> StoredUser {
        let dept = ["Sales", "Engineering", "sales "][i % 3];
        StoredUser {
            user: DirectoryUser {
                id: format!("u{i:03}"),
                mail: Some(format!("{}{i}@contoso.com", ["ann", "bob"][i % 2])),
                department: Some(dept.to_owned()),
                account_enabled: Some(!i.is_multiple_of(5)),
                ..DirectoryUser::default()
            },
            presence: if i.is_multiple_of(7) {
                Presence::Removed {
                    reason: RemovalReason::SoftDeleted,
                }
            } else {
                Presence::Present
            },
            version: Version::new(1, 0),
        }
    }

    async fn store(n: usize) -> (MemoryStore, TenantId) {
        let s = MemoryStore::new();
        let t = TenantId::new("t1");
        let users: Vec<StoredUser> = (0..n).map(user).collect();
        s.put_users(&t, &users).await.unwrap();
        (s, t)
    }

    async fn all(
        s: &MemoryStore,
        t: &TenantId,
        f: &MirrorUserFilter,
        limit: usize,
    ) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        let mut calls = 0;
        loop {
            let page = list_mirror_users(s, s, t, f, after.as_deref(), limit)
                .await
                .unwrap();
            calls += 1;
            assert!(page.items.len() <= limit);
            out.extend(page.items.into_iter().map(|v| v.stored.user.id));
            match page.next {
                Some(n) => after = Some(n),
                None => return (out, calls),
            }
            assert!(calls < 10_000);
        }
    }

    #[tokio::test]
    async fn every_filter_keeps_exactly_the_matching_users_across_pages() {
        let (s, t) = store(60).await;
        let expect = |keep: &dyn Fn(&StoredUser) -> bool| -> Vec<String> {
            (0..60)
                .map(user)
                .filter(|u| keep(u))
                .map(|u| u.user.id)
                .collect()
        };
        let (got, _) = all(&s, &t, &MirrorUserFilter::default(), 7).await;
        assert_eq!(got, expect(&|_| true));
        let f = MirrorUserFilter {
            status: Some(MirrorUserStatus::Disabled),
            ..Default::default()
        };
        assert_eq!(
            all(&s, &t, &f, 4).await.0,
            expect(&|u| u.presence.is_present() && u.user.account_enabled == Some(false))
        );
        let f = MirrorUserFilter {
            status: Some(MirrorUserStatus::Removed),
            ..Default::default()
        };
        assert_eq!(
            all(&s, &t, &f, 4).await.0,
            expect(&|u| !u.presence.is_present())
        );
        let f = MirrorUserFilter {
            department: Some("SALES".into()),
            ..Default::default()
        };
        assert_eq!(
            all(&s, &t, &f, 5).await.0,
            expect(&|u| u.user.department.as_deref().unwrap().trim() != "Engineering")
        );
        let f = MirrorUserFilter {
            email_prefix: Some("Bob".into()),
            status: Some(MirrorUserStatus::Enabled),
            ..Default::default()
        };
        assert_eq!(
            all(&s, &t, &f, 3).await.0,
            expect(&|u| u.user.mail.as_deref().unwrap().starts_with("bob")
                && MirrorUserStatus::of(u) == MirrorUserStatus::Enabled)
        );
    }

    #[tokio::test]
    async fn a_sparse_filter_returns_short_pages_within_the_scan_budget() {
        let (s, t) = store(SCAN_BUDGET + 500).await;
        let f = MirrorUserFilter {
            email_prefix: Some("nobody".into()),
            ..Default::default()
        };
        let first = list_mirror_users(&s, &s, &t, &f, None, 10).await.unwrap();
        assert!(first.items.is_empty());
        assert!(first.next.is_some(), "more to scan, so the page says where");
        let (got, calls) = all(&s, &t, &f, 10).await;
        assert!(got.is_empty());
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn the_group_filter_lists_present_user_members_with_their_host_user() {
        let (s, t) = store(30).await;
        let g = StoredGroup {
            group: DirectoryGroup {
                id: "g1".into(),
                display_name: Some("Sales".into()),
                ..DirectoryGroup::default()
            },
            presence: Presence::Present,
            version: Version::new(1, 0),
        };
        s.put_groups(&t, std::slice::from_ref(&g)).await.unwrap();
        let edge = |member: &str, kind: MemberType, present: bool| StoredMembership {
            group_id: "g1".into(),
            member: MemberRef {
                id: member.into(),
                member_type: kind,
            },
            present,
            version: Version::new(1, 0),
        };
        s.put_memberships(
            &t,
            &[
                edge("u003", MemberType::User, true),
                edge("u001", MemberType::User, true),
                edge("u002", MemberType::User, false),
                edge("g9", MemberType::Group, true),
                edge("u999", MemberType::User, true),
                edge("u010", MemberType::User, true),
            ],
        )
        .await
        .unwrap();
        let account = AccountId("acct".into());
        let mut host = LocalUser::pre_existing(
            account,
            "l1",
            "ann10@contoso.com",
            LocalStatus::Active,
            t0(),
        );
        host.link = Some(DirectoryLink {
            tenant_id: t.clone(),
            object_id: "u010".into(),
        });
        host.fields.insert("department".into(), "Sales".into());
        s.put_local_users(std::slice::from_ref(&host))
            .await
            .unwrap();
        host.revision = 1; // as stored
        let f = MirrorUserFilter {
            group: Some("g1".into()),
            ..Default::default()
        };
        assert_eq!(all(&s, &t, &f, 2).await.0, ["u001", "u003", "u010"]);
        let page = list_mirror_users(&s, &s, &t, &f, Some("u003"), 5)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].host_user.as_ref(), Some(&host));
    }

    #[tokio::test]
    async fn host_users_list_by_status() {
        let s = MemoryStore::new();
        let account = AccountId("acct".into());
        let statuses = [
            LocalStatus::Pending,
            LocalStatus::Active,
            LocalStatus::Deactivated,
        ];
        let users: Vec<LocalUser> = (0..25)
            .map(|i| {
                LocalUser::pre_existing(
                    account.clone(),
                    format!("l{i:02}"),
                    &format!("u{i}@contoso.com"),
                    statuses[i % 3],
                    t0(),
                )
            })
            .collect();
        s.put_local_users(&users).await.unwrap();
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list_host_users(
                &s,
                &account,
                Some(LocalStatus::Pending),
                after.as_deref(),
                3,
            )
            .await
            .unwrap();
            got.extend(page.items.into_iter().map(|u| u.local_id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let want: Vec<String> = (0..25)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("l{i:02}"))
            .collect();
        assert_eq!(got, want);
        let other = list_host_users(&s, &AccountId("other".into()), None, None, 10)
            .await
            .unwrap();
        assert!(other.items.is_empty() && other.next.is_none());
    }
}
