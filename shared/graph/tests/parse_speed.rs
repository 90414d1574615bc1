//! Parsing throughput: a 200-user page with every selected property. The bound is asserted in
//! release builds only (`cargo test --release -p entra-sync-graph --test parse_speed`); debug
//! builds just check the parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use entra_sync_graph::{parse_groups_page, parse_users_page};
use serde_json::json;

fn users_page(n: usize) -> Vec<u8> {
    let users: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "@odata.type": "#microsoft.graph.user",
                "id": format!("{i:08x}-1111-2222-3333-444444444444"),
                "displayName": format!("User Number {i}"), "givenName": "User", "surname": format!("Number{i}"),
                "mail": format!("user{i}@contoso.com"), "userPrincipalName": format!("user{i}@contoso.com"),
                "jobTitle": "Software Engineer", "department": "Research & Development",
                "officeLocation": "Building 42", "usageLocation": "US", "businessPhones": ["+1 425 555 0100"],
                "mobilePhone": null, "streetAddress": "1 Microsoft Way", "city": "Redmond", "state": "WA",
                "postalCode": "98052", "country": "United States", "employeeId": format!("E{i}"),
                "employeeHireDate": "2021-03-01T00:00:00Z", "accountEnabled": true, "userType": "Member",
                "onPremisesSyncEnabled": null,
                "assignedLicenses": [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": []},
                                     {"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": ["a", "b"]}],
                "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "99999999-1111-2222-3333-444444444444"}]
            })
        })
        .collect();
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abcdef",
        "value": users
    })
    .to_string()
    .into_bytes()
}

/// Time per 1000 users of `parse` over a 200-user page (best of 5 runs of 40 pages).
fn per_thousand_users(page: &[u8], parse: impl Fn(&[u8])) -> Duration {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..40 {
                parse(std::hint::black_box(page));
            }
            started.elapsed() / 8
        })
        .min()
        .unwrap()
}

#[test]
fn users_pages_parse_faster_than_a_value_tree() {
    let page = users_page(200);
    let (items, _) = parse_users_page(&page).unwrap();
    assert_eq!(items.len(), 200);

    let typed = per_thousand_users(&page, |p| {
        std::hint::black_box(parse_users_page(p).unwrap());
    });
    let tree = per_thousand_users(&page, |p| {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(p).unwrap());
    });
    eprintln!(
        "users page of {} bytes: typed parse {typed:?} per 1000 users, Value tree {tree:?}",
        page.len()
    );
    if !cfg!(debug_assertions) {
        // Relative, so the guard holds on slow or busy machines; the absolute number is printed.
        assert!(typed < tree, "typed {typed:?} vs Value tree {tree:?}");
        assert!(
            typed < Duration::from_millis(10),
            "{typed:?} per 1000 users"
        );
    }
}

#[test]
fn large_group_page_parses() {
    let members: Vec<_> = (0..5000)
        .map(|i| json!({"@odata.type": "#microsoft.graph.user", "id": format!("{i:08x}-1111-2222-3333-444444444444")}))
        .collect();
    let page =
        json!({"@odata.deltaLink": "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=x",
        "value": [{"id": "g", "displayName": "All", "members@delta": members}]})
        .to_string();
    let (items, _) = parse_groups_page(page.as_bytes()).unwrap();
    assert_eq!(items.len(), 1);
}
