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

#[test]
fn users_pages_parse_well_under_a_millisecond_per_thousand_users() {
    let page = users_page(200);
    let (items, _) = parse_users_page(&page).unwrap();
    assert_eq!(items.len(), 200);

    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        let (items, _) = parse_users_page(std::hint::black_box(&page)).unwrap();
        std::hint::black_box(items);
    }
    let per_thousand = started.elapsed() / (rounds * 200 / 1000);
    if !cfg!(debug_assertions) {
        assert!(
            per_thousand < Duration::from_millis(1),
            "{per_thousand:?} per 1000 users"
        );
    }
}

#[test]
fn large_group_page_parses() {
    let members: Vec<_> = (0..5000)
        .map(|i| json!({"@odata.type": "#microsoft.graph.user", "id": format!("{i:08x}-1111-2222-3333-444444444444")}))
        .collect();
    let page = json!({"@odata.deltaLink": "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=x",
        "value": [{"id": "g", "displayName": "All", "members@delta": members}]})
    .to_string();
    let (items, _) = parse_groups_page(page.as_bytes()).unwrap();
    assert_eq!(items.len(), 1);
}

#[test]
fn baseline_value_parse() {
    let page = users_page(200);
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        let v: serde_json::Value = serde_json::from_slice(std::hint::black_box(&page)).unwrap();
        std::hint::black_box(v);
    }
    let per_thousand = started.elapsed() / (rounds * 200 / 1000);
    panic!("value baseline {per_thousand:?} per 1000 users, page {} bytes", page.len());
}

#[test]
fn baseline_ignored_any() {
    #[derive(serde::Deserialize)]
    struct P { #[allow(dead_code)] value: Vec<serde::de::IgnoredAny> }
    let page = users_page(200);
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        let v: P = serde_json::from_slice(std::hint::black_box(&page)).unwrap();
        std::hint::black_box(v);
    }
    let per_thousand = started.elapsed() / (rounds * 200 / 1000);
    let x = (0..100_000_000u64).fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b));
    let t = Instant::now();
    let y = (0..std::hint::black_box(100_000_000u64)).fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b ^ a));
    panic!("ignored-any baseline {per_thousand:?} per 1000 users; 1e8 loop {:?} {x}{y}", t.elapsed());
}

#[test]
fn baseline_borrowed() {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct U<'a> {
        id: Option<&'a str>, display_name: Option<&'a str>, given_name: Option<&'a str>, surname: Option<&'a str>,
        mail: Option<&'a str>, user_principal_name: Option<&'a str>, job_title: Option<&'a str>, department: Option<&'a str>,
        office_location: Option<&'a str>, usage_location: Option<&'a str>, business_phones: Option<Vec<&'a str>>,
        mobile_phone: Option<&'a str>, street_address: Option<&'a str>, city: Option<&'a str>, state: Option<&'a str>,
        postal_code: Option<&'a str>, country: Option<&'a str>, employee_id: Option<&'a str>, employee_hire_date: Option<&'a str>,
        account_enabled: Option<bool>, user_type: Option<&'a str>, on_premises_sync_enabled: Option<bool>,
    }
    #[derive(serde::Deserialize)]
    struct P<'a> { #[allow(dead_code)] #[serde(borrow)] value: Vec<U<'a>> }
    let page = users_page(200);
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        let v: P = serde_json::from_slice(std::hint::black_box(&page)).unwrap();
        std::hint::black_box(v);
    }
    let per_thousand = started.elapsed() / (rounds * 200 / 1000);
    panic!("borrowed baseline {per_thousand:?} per 1000 users");
}
