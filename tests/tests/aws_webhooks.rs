//! The HR webhook stores on DynamoDB (moto's server mode): the core's contract
//! (`webhooks::contract`, the checks the in-memory and SQLite adapters pass), "stored once"
//! under concurrency, the review listing across its open and closed partitions, and the
//! employee-id lookup from the mirror's handle items. A fresh table per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, TimeZone, Utc};
use entra_sync_aws::{DynamoStore, sdk_config_for_endpoint};
use entra_sync_core::model::{AccountId, DirectoryUser, Presence, StoredUser, TenantId, Version};
use entra_sync_core::ports::MirrorStore;
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::contract;
use entra_sync_core::webhooks::delivery::{Delivery, Outcome, Processing};
use entra_sync_core::webhooks::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use entra_sync_core::webhooks::payload::HrEvent;
use entra_sync_core::webhooks::ports::{DeliveryStore, EmployeeLookup, ReviewStore};
use entra_sync_core::webhooks::review::{ReviewItem, ReviewReason, ReviewStatus, review_id};
use entra_sync_tests::moto;

async fn store() -> DynamoStore {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("hooks"),
    );
    store.create_table().await.expect("create table on moto");
    store
}

#[tokio::test]
async fn dynamodb_keeps_the_webhook_store_contract() {
    let s = store().await;
    contract::endpoints(&s).await;
    contract::deliveries(&s).await;
    contract::reviews(&s).await;
    contract::people(&s).await;
}

fn key(account: &str, source: Source) -> EndpointKey {
    EndpointKey {
        account_id: AccountId(account.into()),
        source,
    }
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn delivery(e: &EndpointKey, id: &str, notes: &str) -> Delivery {
    Delivery {
        id: id.into(),
        endpoint: e.clone(),
        tenant_id: TenantId::new("t-x"),
        received_at: t0(),
        source_event_id: None,
        dedupe_key: Some(format!("sha256:{id}")),
        outcome: Outcome::Accepted,
        events: vec![HrEvent {
            provider_id: "E1".into(),
            employee_id: "E1".into(),
            ..Default::default()
        }],
        ignored: vec![],
        processing: Processing::Done {
            notes: vec![notes.into()],
        },
        workflow_ids: vec![],
        review_ids: vec![],
        rev: 0,
    }
}

/// Twelve concurrent creates of one delivery (a sender retrying while the first request is
/// still being answered): exactly one lands, and every other one gets that one back.
#[tokio::test]
async fn concurrent_creates_of_one_delivery_store_it_once() {
    let s = store().await;
    let e = key("acct-race", Source::BambooHr);
    let results = futures::future::join_all((0..12).map(|i| {
        let s = s.clone();
        let d = delivery(&e, "d-race", &format!("writer {i}"));
        async move { s.create_delivery(&d).await.unwrap() }
    }))
    .await;
    let landed = results.iter().filter(|r| r.is_none()).count();
    assert_eq!(landed, 1, "exactly one create lands");
    let stored = s.get_delivery(&e, "d-race").await.unwrap().unwrap();
    for r in results.into_iter().flatten() {
        assert_eq!(r, stored, "the losers get the stored delivery back");
    }
    let listed = s.list_deliveries(&e, None, 10).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // Endpoints too: of concurrent creates for one (account, source) one lands.
    let ep = WebhookEndpoint::new(key("acct-race", Source::Standard), TenantId::new("t"), t0());
    let results = futures::future::join_all((0..8).map(|_| {
        let s = s.clone();
        let ep = ep.clone();
        async move { s.create_endpoint(&ep).await.unwrap() }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_none()).count(), 1);
}

fn review(n: usize) -> ReviewItem {
    ReviewItem {
        id: review_id("d-page", n),
        tenant_id: TenantId::new("t-pages"),
        endpoint: key("acct-r", Source::HiBob),
        delivery_id: "d-page".into(),
        event_index: n as u32,
        event: HrEvent::default(),
        reason: ReviewReason::NoMatch,
        message: "no match".into(),
        created_at: t0() + Duration::seconds(n as i64),
        status: ReviewStatus::Open,
        rev: 0,
    }
}

/// Closed items move to the other index partition: the full listing merges both partitions
/// newest first, page by page, and the open listing skips the closed ones.
#[tokio::test]
async fn review_listings_page_across_open_and_closed_items() {
    let s = store().await;
    let t = TenantId::new("t-pages");
    for n in 0..7 {
        s.create_review(&review(n)).await.unwrap();
    }
    for n in [1, 4, 5] {
        let mut closed = review(n);
        closed.status = ReviewStatus::Dismissed {
            by: "admin".into(),
            at: t0(),
        };
        closed.rev = 1;
        s.update_review(&closed, 0).await.unwrap();
    }
    let walk = |open_only: bool| {
        let s = s.clone();
        let t = t.clone();
        async move {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = s
                    .list_reviews(&t, open_only, after.as_deref(), 2)
                    .await
                    .unwrap();
                assert!(page.items.len() <= 2);
                seen.extend(page.items.into_iter().map(|r| r.event_index));
                match page.next {
                    Some(n) => after = Some(n),
                    None => return seen,
                }
            }
        }
    };
    assert_eq!(walk(false).await, vec![6, 5, 4, 3, 2, 1, 0]);
    assert_eq!(walk(true).await, vec![6, 3, 2, 0]);
}

fn user(id: &str, employee_id: Option<&str>, v: Version) -> StoredUser {
    StoredUser {
        user: DirectoryUser {
            id: id.into(),
            user_principal_name: Some(format!("{id}@contoso.com")),
            employee_id: employee_id.map(str::to_owned),
            ..Default::default()
        },
        presence: Presence::Present,
        version: v,
    }
}

async fn employee_ids(s: &DynamoStore, t: &TenantId, id: &str) -> Vec<String> {
    s.users_by_employee_id(t, id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.user.id)
        .collect()
}

/// The mirror's user writes keep an employee-id handle per user: the lookup is
/// case-insensitive, per tenant, and follows a changed employee id.
#[tokio::test]
async fn employee_ids_are_found_from_the_mirror_and_follow_changes() {
    let s = store().await;
    let t = TenantId::new("t-e");
    let other = TenantId::new("t-f");
    let v1 = Version::new(1, 0);
    s.put_users(
        &t,
        &[
            user("u1", Some("E100"), v1),
            user("u2", Some(" e100 "), v1),
            user("u3", Some("E1000"), v1),
            user("u4", None, v1),
        ],
    )
    .await
    .unwrap();
    s.put_users(&other, &[user("u9", Some("E100"), v1)])
        .await
        .unwrap();
    assert_eq!(employee_ids(&s, &t, "e100").await, vec!["u1", "u2"]);
    assert_eq!(employee_ids(&s, &other, "E100").await, vec!["u9"]);
    assert!(employee_ids(&s, &t, "E2").await.is_empty());
    assert!(employee_ids(&s, &t, " ").await.is_empty());

    // u1's employee id changes: it is found under the new one only. A replay of the older
    // page changes nothing.
    let v2 = Version::new(1, 1);
    s.put_users(&t, &[user("u1", Some("E200"), v2)])
        .await
        .unwrap();
    s.put_users(&t, &[user("u1", Some("E100"), v1)])
        .await
        .unwrap();
    assert_eq!(employee_ids(&s, &t, "E100").await, vec!["u2"]);
    assert_eq!(employee_ids(&s, &t, "e200").await, vec!["u1"]);
    // The name handles are still kept beside it.
    use entra_sync_core::actions::ports::TargetLookup;
    let by_name = s.users_by_handle(&t, "U1@contoso.com").await.unwrap();
    assert_eq!(by_name.len(), 1);
}
