//! Plain list endpoints (naive baseline) and Graph writes.

// Helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::Fx;
use entra_sync_emulator::{EmulatorConfig, GroupKind, NewGroup, TenantSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn list_all(fx: &Fx, url: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(url.to_string());
    while let Some(u) = next {
        let (status, _, body) = fx.get(&u, token).await;
        assert_eq!(status, StatusCode::OK, "{u}: {body}");
        assert!(body.get("@odata.deltaLink").is_none());
        out.extend(body["value"].as_array().unwrap().clone());
        next = body["@odata.nextLink"].as_str().map(str::to_string);
    }
    out
}

#[tokio::test]
async fn users_list_pages_with_top_and_next_links() {
    let fx = Fx::new(EmulatorConfig::default(), TenantSpec::new(61, 250, 5)).await;
    let token = fx.token().await;
    let (_, headers, first) = fx.get(&fx.graph("users"), &token).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 100);
    assert_eq!(headers["x-ms-resource-unit"], "2");
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken="));
    let all = list_all(
        &fx,
        &fx.graph("users?$top=999&$select=id,displayName,accountEnabled"),
        &token,
    )
    .await;
    assert_eq!(all.len(), 250);
    assert!(all[0].get("accountEnabled").is_some());
    let paged = list_all(&fx, &fx.graph("users?$top=7&$select=id"), &token).await;
    let ids: BTreeSet<_> = paged
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 250);
    let (status, _, body) = fx.get(&fx.graph("users?$top=1000"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "Request_BadRequest");
    let guests = list_all(&fx, &fx.graph("users?$filter=userType eq 'Guest'"), &token).await;
    let snap = fx.handle().snapshot();
    let expected = snap
        .users
        .iter()
        .filter(|u| u["userType"] == "Guest")
        .count();
    assert_eq!(guests.len(), expected);
    let (status, _, _) = fx.get(&fx.graph("users?$count=true"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = fx
        .get_with(
            &fx.graph("users?$count=true&$top=5"),
            &token,
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["@odata.count"], 250);
}

#[tokio::test]
async fn users_list_expand_manager_and_sign_in_activity_gating() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let all = list_all(
        &fx,
        &fx.graph("users?$select=id,displayName&$expand=manager($select=id,displayName)"),
        &token,
    )
    .await;
    let snap = fx.handle().snapshot();
    for u in &all {
        let s = snap.users.iter().find(|s| s["id"] == u["id"]).unwrap();
        assert_eq!(
            u.get("manager")
                .map(|m| m["id"].clone())
                .unwrap_or(Value::Null),
            s["managerId"]
        );
    }
    let (status, _, body) = fx
        .get(
            &fx.graph("users?$select=id,signInActivity&$top=999"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"].as_array().unwrap().len(), 120.min(all.len()));
    assert!(body["value"][0]["signInActivity"]["lastSignInDateTime"].is_string());
    fx.handle().set_premium(false);
    let (status, _, body) = fx
        .get(&fx.graph("users?$select=id,signInActivity"), &token)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["code"],
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );
}

#[tokio::test]
async fn group_lists_members_and_skus() {
    let fx = Fx::new(EmulatorConfig::default(), TenantSpec::new(62, 400, 15)).await;
    let t = fx.handle();
    let token = fx.token().await;
    let groups = list_all(&fx, &fx.graph("groups"), &token).await;
    assert_eq!(groups.len(), 15);
    let snap = t.snapshot();
    // The largest group, paged at the default 100.
    let big = t
        .group_ids()
        .into_iter()
        .max_by_key(|g| t.members(g).unwrap().len())
        .unwrap();
    let expected: BTreeSet<String> = t
        .members(&big)
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert!(expected.len() > 100);
    let (_, headers, first) = fx
        .get(&fx.graph(&format!("groups/{big}/members")), &token)
        .await;
    assert_eq!(first["value"].as_array().unwrap().len(), 100);
    assert_eq!(headers["x-ms-resource-unit"], "3");
    let members = list_all(&fx, &fx.graph(&format!("groups/{big}/members")), &token).await;
    let got: BTreeSet<String> = members
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    assert!(members.iter().all(|m| m["@odata.type"].is_string()));
    let (status, _, _) = fx
        .get(
            &fx.graph(&format!("groups/{big}/members?$top=1000")),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nested groups: transitive members include the nested group's members.
    let nested = snap
        .memberships
        .iter()
        .find(|m| m.member_type == "group")
        .unwrap();
    let trans = list_all(
        &fx,
        &fx.graph(&format!(
            "groups/{}/transitiveMembers?$top=999",
            nested.group_id
        )),
        &token,
    )
    .await;
    let trans_ids: BTreeSet<String> = trans
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    for (m, _) in t.members(&nested.member_id).unwrap() {
        assert!(trans_ids.contains(&m));
    }
    let users_only = list_all(
        &fx,
        &fx.graph(&format!(
            "groups/{}/members/microsoft.graph.user",
            nested.group_id
        )),
        &token,
    )
    .await;
    assert!(
        users_only
            .iter()
            .all(|m| m["@odata.type"] == "#microsoft.graph.user")
    );
    // SKUs.
    let (status, headers, skus) = fx.get(&fx.graph("subscribedSkus"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ms-resource-unit"], "3");
    let parts: Vec<&str> = skus["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["skuPartNumber"].as_str().unwrap())
        .collect();
    assert!(parts.contains(&"ENTERPRISEPACK") && parts.contains(&"SPE_E3"));
    let assigned: BTreeSet<String> = snap
        .users
        .iter()
        .flat_map(|u| {
            u["assignedLicenses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|l| l["skuId"].as_str().unwrap().to_string())
        .collect();
    for sku_id in assigned {
        assert!(
            skus["value"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["skuId"] == *sku_id)
        );
    }
}

#[tokio::test]
async fn writes_change_the_directory_and_show_in_delta() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, ulink) = fx
        .round(
            &fx.graph("users/delta?$select=displayName,accountEnabled"),
            &token,
        )
        .await;
    let (_, glink) = fx
        .round(
            &fx.graph("groups/delta?$select=displayName,members"),
            &token,
        )
        .await;
    let users = t.user_ids();
    let u = users[3].clone();
    let resp = fx
        .http
        .patch(fx.graph(&format!("users/{u}")))
        .bearer_auth(&token)
        .json(&json!({"accountEnabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.headers().get("request-id").is_some());
    let (items, _) = fx.round_items(&ulink, &token).await;
    assert_eq!(items[0]["accountEnabled"], false);

    let gid = t.create_group(NewGroup::new("Writable", GroupKind::Security));
    let add = |member: String| {
        fx.http
            .post(fx.graph(&format!("groups/{gid}/members/$ref")))
            .bearer_auth(&token)
            .json(&json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{member}")}))
            .send()
    };
    assert_eq!(
        add(u.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let dup = add(u.clone()).await.unwrap();
    assert_eq!(dup.status(), StatusCode::BAD_REQUEST);
    let body: Value = dup.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    let missing = add("00000000-0000-4000-8000-000000000000".into())
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let (items, _) = fx.round_items(&glink, &token).await;
    let g = items.iter().find(|g| g["id"] == *gid).unwrap();
    assert_eq!(
        g["members@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": u}])
    );

    let remove = |member: String| {
        fx.http
            .delete(fx.graph(&format!("groups/{gid}/members/{member}/$ref")))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(
        remove(u.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        remove(u.clone()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Distribution lists refuse member writes.
    let dl = t.create_group(NewGroup::new("DL", GroupKind::Distribution));
    let resp = fx
        .http
        .post(fx.graph(&format!("groups/{dl}/members/$ref")))
        .bearer_auth(&token)
        .json(
            &json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{u}")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // More than 20 binds: all or nothing.
    let binds: Vec<String> = users
        .iter()
        .take(21)
        .map(|id| format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}"))
        .collect();
    let resp = fx
        .http
        .patch(fx.graph(&format!("groups/{gid}")))
        .bearer_auth(&token)
        .json(&json!({"members@odata.bind": binds}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(t.members(&gid).unwrap().is_empty());

    // Revoke sessions, delete, restore. A POST without Content-Length is refused, as Graph
    // does, even when it needs no body.
    let resp = fx
        .http
        .post(fx.graph(&format!("users/{u}/revokeSignInSessions")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::LENGTH_REQUIRED);
    let resp = fx
        .http
        .post(fx.graph(&format!("users/{u}/revokeSignInSessions")))
        .bearer_auth(&token)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["value"], true);
    let resp = fx
        .http
        .delete(fx.graph(&format!("users/{u}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let deleted = list_all(
        &fx,
        &fx.graph("directory/deletedItems/microsoft.graph.user"),
        &token,
    )
    .await;
    assert_eq!(deleted.len(), 1);
    let resp = fx
        .http
        .post(fx.graph(&format!("directory/deletedItems/{u}/restore")))
        .bearer_auth(&token)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(t.user(&u).is_some());
    assert_eq!(fx.emu.counters().writes, 12);
}

#[tokio::test]
async fn member_of_lists_a_users_direct_groups_across_pages() {
    let fx = Fx::new(EmulatorConfig::default(), TenantSpec::new(64, 60, 12)).await;
    let token = fx.token().await;
    let snap = fx.handle().snapshot();
    // The user in the most groups, so paging with a small $top is exercised.
    let mut per_user: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for m in &snap.memberships {
        if m.member_type == "user" {
            per_user
                .entry(&m.member_id)
                .or_default()
                .insert(m.group_id.clone());
        }
    }
    let (uid, groups) = per_user
        .iter()
        .max_by_key(|(_, g)| g.len())
        .map(|(u, g)| (*u, g.clone()))
        .unwrap();
    assert!(
        groups.len() >= 2,
        "the generated tenant has users in several groups"
    );
    let got = list_all(
        &fx,
        &fx.graph(&format!("users/{uid}/memberOf?$top=1")),
        &token,
    )
    .await;
    let ids: BTreeSet<String> = got
        .iter()
        .map(|g| {
            assert_eq!(g["@odata.type"], "#microsoft.graph.group");
            g["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids, groups);
    let (status, _, _) = fx.get(&fx.graph("users/not-a-user/memberOf"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
