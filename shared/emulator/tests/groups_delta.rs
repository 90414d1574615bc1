//! Groups delta: member slices across pages, incremental membership, nesting, convergence.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{ALL_GROUP_PROPS, ALL_USER_PROPS, Fx, Mirror};
use entra_sync_emulator::{EmulatorConfig, GroupKind, NewGroup, TenantSpec};
use serde_json::{Value, json};

fn snapshot_members(fx: &Fx) -> BTreeSet<(String, String, String)> {
    fx.handle()
        .snapshot()
        .memberships
        .into_iter()
        .map(|m| (m.group_id, m.member_id, m.member_type))
        .collect()
}

#[tokio::test]
async fn large_group_is_split_across_pages_and_slices_add_up() {
    let config = EmulatorConfig {
        member_slice: 100,
        group_page_size: 5,
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(41, 600, 20)).await;
    let token = fx.token().await;
    let (pages, link) = fx
        .round(
            &fx.graph(&format!("groups/delta?$select={ALL_GROUP_PROPS}")),
            &token,
        )
        .await;
    assert!(link.contains("$deltatoken="));
    // Per page: at most member_slice entries and group_page_size groups.
    for p in &pages {
        let v = p["value"].as_array().unwrap();
        assert!(v.len() <= 5);
        let entries: usize = v
            .iter()
            .map(|g| {
                g.get("members@delta")
                    .map_or(0, |m| m.as_array().unwrap().len())
            })
            .sum();
        assert!(entries <= 100, "{entries}");
    }
    // The large group appears on several pages with different slices.
    let mut appearances: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pages {
        for g in p["value"].as_array().unwrap() {
            *appearances
                .entry(g["id"].as_str().unwrap().into())
                .or_default() += 1;
        }
    }
    assert!(appearances.values().any(|n| *n >= 3), "{appearances:?}");
    let mut mirror = Mirror::default();
    for p in &pages {
        mirror.apply_groups(p["value"].as_array().unwrap());
    }
    assert_eq!(mirror.members, snapshot_members(&fx));
    assert_eq!(mirror.groups.len(), 20);
    // Empty groups have no members@delta key; nested members are typed as groups.
    let all: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .collect();
    assert!(mirror.members.iter().any(|(_, _, t)| t == "group"));
    let t = fx.handle();
    for g in &all {
        let id = g["id"].as_str().unwrap();
        if t.members(id).unwrap().is_empty() {
            assert!(g.get("members@delta").is_none());
        }
    }
}

#[tokio::test]
async fn incremental_membership_adds_and_removes() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, link) = fx
        .round(
            &fx.graph("groups/delta?$select=displayName,members"),
            &token,
        )
        .await;
    let gid = t.create_group(NewGroup::new("Delta Team", GroupKind::Security));
    let users = t.user_ids();
    t.add_member(&gid, &users[0]).unwrap();
    t.add_member(&gid, &users[1]).unwrap();
    let (items, link) = fx.round_items(&link, &token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["displayName"], "Delta Team");
    let entries: BTreeSet<String> = items[0]["members@delta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        entries,
        [users[0].clone(), users[1].clone()].into_iter().collect()
    );

    // Only membership changed: the group comes back with just that change.
    t.remove_member(&gid, &users[0]).unwrap();
    let nested = t.group_ids().into_iter().find(|g| *g != gid).unwrap();
    t.add_member(&gid, &nested).unwrap();
    let (items, link) = fx.round_items(&link, &token).await;
    assert_eq!(items.len(), 1);
    let md = items[0]["members@delta"].as_array().unwrap();
    assert_eq!(md.len(), 2);
    assert!(md.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": users[0], "@removed": {"reason": "deleted"}})));
    assert!(md.contains(&json!({"@odata.type": "#microsoft.graph.group", "id": nested})));

    // Soft-deleting a member shows as a removal in every group it was in.
    t.delete_user(&users[1]).unwrap();
    let (items, link) = fx.round_items(&link, &token).await;
    let g = items.iter().find(|g| g["id"] == *gid).unwrap();
    assert_eq!(
        g["members@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": users[1], "@removed": {"reason": "deleted"}}])
    );
    // Deleting the group.
    t.delete_group(&gid).unwrap();
    let (items, _) = fx.round_items(&link, &token).await;
    let g = items.iter().find(|g| g["id"] == *gid).unwrap();
    assert_eq!(g["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn membership_changes_do_not_surface_groups_without_members_selected() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, link) = fx
        .round(&fx.graph("groups/delta?$select=displayName"), &token)
        .await;
    let g = t.group_ids()[0].clone();
    let u = t
        .user_ids()
        .into_iter()
        .find(|u| !t.members(&g).unwrap().iter().any(|(m, _)| m == u))
        .unwrap();
    t.add_member(&g, &u).unwrap();
    let (items, _) = fx.round_items(&link, &token).await;
    assert!(items.is_empty(), "{items:?}");
}

#[tokio::test]
async fn incremental_large_membership_change_is_split_too() {
    let config = EmulatorConfig {
        member_slice: 50,
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(43, 300, 4)).await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, link) = fx.round(&fx.graph("groups/delta"), &token).await;
    let gid = t.create_group(NewGroup::new("Big New", GroupKind::Microsoft365));
    for u in t.user_ids().iter().take(180) {
        t.add_member(&gid, u).unwrap();
    }
    let (pages, _) = fx.round(&link, &token).await;
    assert!(pages.len() >= 4, "{}", pages.len());
    let mut mirror = Mirror::default();
    for p in &pages {
        mirror.apply_groups(p["value"].as_array().unwrap());
    }
    assert_eq!(
        mirror.members.iter().filter(|(g, _, _)| *g == gid).count(),
        180
    );
}

#[tokio::test]
async fn groups_delta_without_select_includes_members() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let (items, _) = fx.round_items(&fx.graph("groups/delta"), &token).await;
    assert!(items.iter().any(|g| g.get("members@delta").is_some()));
    let kinds: BTreeSet<String> = items
        .iter()
        .map(|g| {
            format!(
                "{}|{}|{}",
                g["groupTypes"], g["mailEnabled"], g["securityEnabled"]
            )
        })
        .collect();
    assert!(kinds.len() >= 2, "{kinds:?}");
}

/// Random churn between every page of users and groups rounds; after a quiet round the
/// mirror equals the snapshot.
#[tokio::test]
async fn mirror_converges_to_snapshot_under_churn() {
    let config = EmulatorConfig {
        user_page_size: 25,
        group_page_size: 4,
        member_slice: 40,
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(44, 250, 30)).await;
    let t = fx.handle();
    let token = fx.token().await;
    let mut mirror = Mirror::default();
    let mut user_link = fx.graph(&format!("users/delta?$select={ALL_USER_PROPS}"));
    let mut group_link = fx.graph(&format!("groups/delta?$select={ALL_GROUP_PROPS}"));
    let mut n = 0u64;
    for round in 0..4 {
        for users in [true, false] {
            let mut next = if users {
                user_link.clone()
            } else {
                group_link.clone()
            };
            loop {
                let (status, _, body) = fx.get(&next, &token).await;
                assert_eq!(status, 200, "{body}");
                let v = body["value"].as_array().unwrap();
                if users {
                    mirror.apply_users(v);
                } else {
                    mirror.apply_groups(v);
                }
                if round < 3 {
                    t.random_churn(n, 6);
                    n += 1;
                }
                if let Some(l) = body.get("@odata.nextLink") {
                    next = l.as_str().unwrap().to_string();
                } else {
                    let l = body["@odata.deltaLink"].as_str().unwrap().to_string();
                    if users {
                        user_link = l;
                    } else {
                        group_link = l;
                    }
                    break;
                }
            }
        }
    }

    let snap = t.snapshot();
    let groups: BTreeMap<String, Value> = snap
        .groups
        .iter()
        .map(|g| (g["id"].as_str().unwrap().to_string(), g.clone()))
        .collect();
    assert_eq!(mirror.groups, groups);
    assert_eq!(mirror.members, snapshot_members(&fx));
    assert_eq!(mirror.users.len(), snap.users.len());
}
