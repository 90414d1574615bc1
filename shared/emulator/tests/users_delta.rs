//! Users delta: paging, incremental rounds, lifecycle, `$select` tracking, tokens.

// Helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{ALL_USER_PROPS, Fx, Mirror};
use entra_sync_emulator::{EmulatorConfig, NewUser, TenantSpec, UserPatch};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn patch(v: Value) -> UserPatch {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn initial_round_pages_cover_every_user_exactly_once() {
    let config = EmulatorConfig {
        user_page_size: 50,
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(11, 333, 5)).await;
    let token = fx.token().await;
    let (pages, delta_link) = fx
        .round(&fx.graph("users/microsoft.graph.delta"), &token)
        .await;
    assert_eq!(pages.len(), 7);
    for p in &pages[..6] {
        assert!(
            p["@odata.nextLink"]
                .as_str()
                .unwrap()
                .contains("$skiptoken=")
        );
        assert_eq!(p["value"].as_array().unwrap().len(), 50);
    }
    assert!(delta_link.starts_with(&fx.graph("users/delta?$deltatoken=")));
    let items: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .collect();
    let got = ids(&items);
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "no duplicates");
    let expected: BTreeSet<_> = fx.handle().user_ids().into_iter().collect();
    assert_eq!(unique, expected);
    // Default property set without $select.
    let u = &items[0];
    assert!(u.get("userPrincipalName").is_some());
    assert!(u.get("accountEnabled").is_none());
    assert!(u.get("manager@delta").is_none());
}

#[tokio::test]
async fn duplicate_switch_repeats_some_users_within_the_round() {
    let config = EmulatorConfig {
        duplicate_every: Some(5),
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(12, 200, 3)).await;
    let token = fx.token().await;
    let (items, _) = fx.round_items(&fx.graph("users/delta"), &token).await;
    let unique: BTreeSet<_> = ids(&items).into_iter().collect();
    assert_eq!(unique.len(), 200);
    assert!(items.len() > 200);
}

#[tokio::test]
async fn empty_page_with_next_link_is_served_and_round_completes() {
    let config = EmulatorConfig {
        user_page_size: 10,
        empty_page_every: Some(2),
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(13, 35, 2)).await;
    let token = fx.token().await;
    let (pages, _) = fx.round(&fx.graph("users/delta"), &token).await;
    let empty_with_next = pages
        .iter()
        .filter(|p| p["value"].as_array().unwrap().is_empty() && p.get("@odata.nextLink").is_some())
        .count();
    assert!(empty_with_next >= 1);
    let items: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .collect();
    assert_eq!(ids(&items).into_iter().collect::<BTreeSet<_>>().len(), 35);
}

#[tokio::test]
async fn delta_link_without_changes_returns_empty_value_and_new_link() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let (_, link) = fx.round(&fx.graph("users/delta"), &token).await;
    let (status, _, body) = fx.get(&link, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([]));
    assert!(body["@odata.deltaLink"].is_string());
    assert!(body.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn changed_users_come_back_with_all_selected_properties() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let url = fx.graph(&format!("users/delta?$select={ALL_USER_PROPS}"));
    let (_, link) = fx.round(&url, &token).await;
    let ids_all = t.user_ids();
    let (a, b) = (&ids_all[3], &ids_all[10]);
    t.update_user(
        a,
        patch(json!({"jobTitle": "Chief Tester", "mobilePhone": null})),
    )
    .unwrap();
    t.set_account_enabled(b, false).unwrap();
    let new_id = t.create_user(NewUser::new("New Person", "new.person@contoso.com"));
    let (items, _) = fx.round_items(&link, &token).await;
    let got: BTreeSet<_> = ids(&items).into_iter().collect();
    assert_eq!(
        got,
        [a.clone(), b.clone(), new_id.clone()].into_iter().collect()
    );
    let ua = items.iter().find(|v| v["id"] == **a).unwrap();
    assert_eq!(ua["jobTitle"], "Chief Tester");
    assert_eq!(
        ua["mobilePhone"],
        Value::Null,
        "nulled property is explicit null"
    );
    assert!(
        ua["displayName"].is_string(),
        "unchanged selected props are present"
    );
    assert!(ua["userPrincipalName"].is_string());
    let ub = items.iter().find(|v| v["id"] == **b).unwrap();
    assert_eq!(ub["accountEnabled"], false);
    assert!(ub.get("@removed").is_none());
    // The delta JSON equals the snapshot JSON (minus manager@delta / managerId).
    let mut snap = t.user(a).unwrap();
    snap.as_object_mut().unwrap().remove("managerId");
    let mut from_delta = ua.clone();
    from_delta.as_object_mut().unwrap().remove("manager@delta");
    assert_eq!(from_delta, snap);
}

#[tokio::test]
async fn lifecycle_soft_delete_purge_restore() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let url = fx.graph("users/delta?$select=displayName,accountEnabled");
    let (_, link0) = fx.round(&url, &token).await;
    let users = t.user_ids();
    let (soft, hard) = (&users[1], &users[2]);
    t.delete_user(soft).unwrap();
    t.purge_user(hard).unwrap();
    let (items, link1) = fx.round_items(&link0, &token).await;
    let by_id: BTreeMap<_, _> = items
        .iter()
        .map(|v| (v["id"].as_str().unwrap(), v))
        .collect();
    assert_eq!(by_id[soft.as_str()]["@removed"]["reason"], "changed");
    assert_eq!(by_id[hard.as_str()]["@removed"]["reason"], "deleted");
    assert_eq!(by_id[soft.as_str()].as_object().unwrap().len(), 2);
    // Restore: plain object again.
    t.restore_user(soft).unwrap();
    let (items, link2) = fx.round_items(&link1, &token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], **soft);
    assert!(items[0].get("@removed").is_none());
    assert!(items[0]["displayName"].is_string());
    // Purge after soft delete.
    t.delete_user(soft).unwrap();
    t.purge_user(soft).unwrap();
    let (items, _) = fx.round_items(&link2, &token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["@removed"]["reason"], "deleted");
}

#[tokio::test]
async fn select_tracks_only_selected_properties() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let url = fx.graph("users/delta?$select=displayName,mail");
    let (items, link) = fx.round_items(&url, &token).await;
    assert!(items.iter().all(|u| u.get("jobTitle").is_none()));
    let users = t.user_ids();
    t.update_user(&users[0], patch(json!({"jobTitle": "Untracked"})))
        .unwrap();
    t.update_user(&users[1], patch(json!({"displayName": "Tracked Name"})))
        .unwrap();
    let (items, _) = fx.round_items(&link, &token).await;
    assert_eq!(ids(&items), vec![users[1].clone()]);
    assert_eq!(items[0]["displayName"], "Tracked Name");
    assert!(items[0].get("jobTitle").is_none());
    let context = fx.get(&url, &token).await.2["@odata.context"].clone();
    assert!(
        context
            .as_str()
            .unwrap()
            .ends_with("#users(displayName,mail)")
    );
}

#[tokio::test]
async fn prefer_minimal_returns_only_changed_properties() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, link) = fx
        .round(
            &fx.graph("users/delta?$select=displayName,jobTitle,city"),
            &token,
        )
        .await;
    let u = t.user_ids()[4].clone();
    t.update_user(&u, patch(json!({"city": "Oslo"}))).unwrap();
    let (status, headers, body) = fx
        .get_with(&link, &token, &[("prefer", "return=minimal")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["preference-applied"], "return=minimal");
    assert_eq!(body["value"][0], json!({"id": u, "city": "Oslo"}));
}

#[tokio::test]
async fn manager_changes_surface_as_manager_delta() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (items, link) = fx
        .round_items(&fx.graph("users/delta?$select=displayName,manager"), &token)
        .await;
    let with_mgr: Vec<_> = items
        .iter()
        .filter(|u| u.get("manager@delta").is_some())
        .collect();
    assert!(!with_mgr.is_empty());
    let snap = t.snapshot();
    for u in &with_mgr {
        let s = snap.users.iter().find(|s| s["id"] == u["id"]).unwrap();
        assert_eq!(u["manager@delta"][0]["id"], s["managerId"]);
        assert_eq!(
            u["manager@delta"][0]["@odata.type"],
            "#microsoft.graph.user"
        );
    }
    let managed = with_mgr[0]["id"].as_str().unwrap().to_string();
    let old_mgr = with_mgr[0]["manager@delta"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.set_manager(&managed, None).unwrap();
    let (items, link) = fx.round_items(&link, &token).await;
    let u = items.iter().find(|u| u["id"] == *managed).unwrap();
    assert_eq!(
        u["manager@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": old_mgr, "@removed": {"reason": "deleted"}}])
    );
    let new_mgr = t
        .user_ids()
        .into_iter()
        .find(|u| *u != managed && *u != old_mgr)
        .unwrap();
    t.set_manager(&managed, Some(&new_mgr)).unwrap();
    let (items, _) = fx.round_items(&link, &token).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["manager@delta"][0]["id"], *new_mgr);
    assert_eq!(t.user(&managed).unwrap()["managerId"], *new_mgr);
}

#[tokio::test]
async fn replaying_a_delta_link_returns_the_same_changes() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, link) = fx
        .round(&fx.graph("users/delta?$select=displayName"), &token)
        .await;
    let users = t.user_ids();
    t.update_user(&users[5], patch(json!({"displayName": "Replay One"})))
        .unwrap();
    t.delete_user(&users[6]).unwrap();
    let (first, _) = fx.round_items(&link, &token).await;
    let (second, _) = fx.round_items(&link, &token).await;
    assert_eq!(first, second);
    assert_eq!(first.len(), 2);
    // A newer change shows up on top of the same set.
    t.update_user(&users[7], patch(json!({"displayName": "Replay Two"})))
        .unwrap();
    let (third, _) = fx.round_items(&link, &token).await;
    assert_eq!(third.len(), 3);
}

#[tokio::test]
async fn replaying_a_next_link_serves_an_equivalent_page() {
    let config = EmulatorConfig {
        user_page_size: 20,
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(21, 60, 2)).await;
    let token = fx.token().await;
    let (_, _, first) = fx.get(&fx.graph("users/delta"), &token).await;
    let next = first["@odata.nextLink"].as_str().unwrap();
    let (_, _, a) = fx.get(next, &token).await;
    let (_, _, b) = fx.get(next, &token).await;
    assert_eq!(a["value"], b["value"]);
}

#[tokio::test]
async fn deltatoken_latest_returns_only_a_delta_link() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (status, _, body) = fx
        .get(
            &fx.graph("users/delta?$deltatoken=latest&$select=displayName"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([]));
    let link = body["@odata.deltaLink"].as_str().unwrap().to_string();
    let u = t.user_ids()[0].clone();
    t.update_user(&u, patch(json!({"displayName": "After Latest"})))
        .unwrap();
    let (items, _) = fx.round_items(&link, &token).await;
    assert_eq!(items, vec![json!({"id": u, "displayName": "After Latest"})]);
}

#[tokio::test]
async fn stale_delta_token_gives_sync_state_not_found() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let (_, link) = fx.round(&fx.graph("users/delta"), &token).await;
    fx.emu
        .advance_clock(Duration::from_secs(7 * 24 * 3600 + 60));
    let token = fx.token().await;
    let (status, _, body) = fx.get(&link, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "syncStateNotFound");
    assert_eq!(
        body["error"]["message"],
        "The sync state generation is not found. The delta token is expired and data must be synchronized again."
    );
}

#[tokio::test]
async fn garbage_and_foreign_tokens_give_400() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    for bad in ["garbage", "AAAA", "%%%", "eyJ0eXAiOiJKV1QifQ"] {
        let (status, _, body) = fx
            .get(&fx.graph(&format!("users/delta?$deltatoken={bad}")), &token)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let (status, _, _) = fx
            .get(&fx.graph(&format!("users/delta?$skiptoken={bad}")), &token)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // A users token on the groups stream.
    let (_, link) = fx.round(&fx.graph("users/delta"), &token).await;
    let groups_link = link.replace("/users/delta", "/groups/delta");
    let (status, _, _) = fx.get(&groups_link, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A tampered token.
    let tampered = format!("{}x", link);
    let (status, _, _) = fx.get(&tampered, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_option_validation() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let (status, _, body) = fx
        .get(&fx.graph("users/delta?$select=displayName,foo"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "Request_BadRequest");
    assert_eq!(
        body["error"]["message"],
        "Could not find a property named 'foo' on type 'microsoft.graph.user'."
    );
    let (status, _, body) = fx
        .get(&fx.graph("users/delta?$select=displayName,skills"), &token)
        .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(body["error"]["code"], "NotImplemented");
    for q in ["$expand=manager", "$orderby=displayName"] {
        let (status, _, _) = fx.get(&fx.graph(&format!("users/delta?{q}")), &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
    }
    let (status, _, _) = fx.get(&fx.graph("users/delta?$top=5"), &token).await;
    assert_eq!(status, StatusCode::OK, "$top is ignored");
    let (status, _, _) = fx
        .get(&fx.graph("users/delta?$filter=displayName eq 'x'"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn id_filter_limits_the_round() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let users = t.user_ids();
    let filter = format!("id eq '{}' or id eq '{}'", users[2], users[9]);
    let (items, link) = fx
        .round_items(&fx.graph(&format!("users/delta?$filter={filter}")), &token)
        .await;
    assert_eq!(ids(&items), vec![users[2].clone(), users[9].clone()]);
    t.update_user(&users[3], patch(json!({"displayName": "Outside"})))
        .unwrap();
    t.update_user(&users[9], patch(json!({"displayName": "Inside"})))
        .unwrap();
    let (items, _) = fx.round_items(&link, &token).await;
    assert_eq!(ids(&items), vec![users[9].clone()]);
    let many: Vec<String> = (0..51)
        .map(|i| format!("id eq '{}'", users[i % users.len()]))
        .collect();
    let (status, _, _) = fx
        .get(
            &fx.graph(&format!("users/delta?$filter={}", many.join(" or "))),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn changes_during_a_round_are_not_lost() {
    let config = EmulatorConfig {
        user_page_size: 10,
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(31, 100, 10)).await;
    let t = fx.handle();
    let token = fx.token().await;
    let url = fx.graph(&format!("users/delta?$select={ALL_USER_PROPS}"));
    let mut mirror = Mirror::default();
    // Initial round with churn between pages.
    let mut next = url.clone();
    let mut link = String::new();
    let mut n = 0;
    while link.is_empty() {
        let (_, _, body) = fx.get(&next, &token).await;
        mirror.apply_users(body["value"].as_array().unwrap());
        t.random_churn(100 + n, 5);
        n += 1;
        match body.get("@odata.nextLink") {
            Some(l) => next = l.as_str().unwrap().to_string(),
            None => link = body["@odata.deltaLink"].as_str().unwrap().to_string(),
        }
    }
    // Incremental rounds with churn between pages, then one quiet round.
    for round in 0..3 {
        let mut next = link.clone();
        loop {
            let (_, _, body) = fx.get(&next, &token).await;
            mirror.apply_users(body["value"].as_array().unwrap());
            if round < 2 {
                t.random_churn(1000 + n, 7);
                n += 1;
            }
            match body.get("@odata.nextLink") {
                Some(l) => next = l.as_str().unwrap().to_string(),
                None => {
                    link = body["@odata.deltaLink"].as_str().unwrap().to_string();
                    break;
                }
            }
        }
    }
    let snap = t.snapshot();
    let expected: BTreeMap<String, Value> = snap
        .users
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.as_object_mut().unwrap().remove("managerId");
            (u["id"].as_str().unwrap().to_string(), u)
        })
        .collect();
    assert_eq!(mirror.users, expected);
    let managers: BTreeMap<String, String> = snap
        .users
        .iter()
        .filter_map(|u| {
            Some((
                u["id"].as_str()?.to_string(),
                u["managerId"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(mirror.managers, managers);
}
