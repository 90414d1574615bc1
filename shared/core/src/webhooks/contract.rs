//! The contract of the webhook store ports, as functions any adapter's tests call: the
//! in-memory adapters pass it here, and the SQLite and DynamoDB adapters run the same checks
//! from their own test suites. Each check stops loudly (a failed assertion) on a violation.
// Test support: a violated contract should stop the test with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::Source;
use super::delivery::{Delivery, Outcome, Processing};
use super::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use super::mapping::HrPerson;
use super::payload::HrEvent;
use super::ports::{DeliveryStore, HrPersonStore, ReviewStore};
use super::review::{ReviewItem, ReviewReason, ReviewStatus, review_id};
use crate::error::StoreError;
use crate::model::{AccountId, TenantId};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn key(account: &str, source: Source) -> EndpointKey {
    EndpointKey {
        account_id: AccountId(account.into()),
        source,
    }
}

fn endpoint(account: &str, source: Source) -> WebhookEndpoint {
    WebhookEndpoint::new(
        key(account, source),
        TenantId::new(format!("t-{account}")),
        t0(),
    )
}

/// Endpoints: conditional create, conditional update on `rev`, per-account listing.
pub async fn endpoints(store: &dyn WebhookEndpointStore) {
    let e = endpoint("acct-c1", Source::Standard);
    assert!(store.create_endpoint(&e).await.unwrap().is_none());
    let mut other = e.clone();
    other.enabled = false;
    let existing = store
        .create_endpoint(&other)
        .await
        .unwrap()
        .expect("the first one answers");
    assert!(existing.enabled, "a second create writes nothing");
    let mut next = existing.clone();
    next.rev = 1;
    next.enabled = false;
    store.update_endpoint(&next, 0).await.unwrap();
    assert!(matches!(
        store.update_endpoint(&next, 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!store.get_endpoint(&e.key).await.unwrap().unwrap().enabled);
    store
        .create_endpoint(&endpoint("acct-c1", Source::HiBob))
        .await
        .unwrap();
    store
        .create_endpoint(&endpoint("acct-c2", Source::HiBob))
        .await
        .unwrap();
    let mine = store
        .list_endpoints(&AccountId("acct-c1".into()))
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    assert!(
        store
            .get_endpoint(&key("acct-c3", Source::HiBob))
            .await
            .unwrap()
            .is_none()
    );
}

fn delivery(e: &EndpointKey, id: &str, at: DateTime<Utc>, outcome: Outcome) -> Delivery {
    Delivery {
        id: id.into(),
        endpoint: e.clone(),
        tenant_id: TenantId::new("t"),
        received_at: at,
        source_event_id: Some(format!("msg-{id}")),
        dedupe_key: Some(format!("id:msg-{id}")),
        outcome,
        events: vec![HrEvent {
            provider_id: "E1".into(),
            employee_id: "E1".into(),
            ..Default::default()
        }],
        ignored: vec![],
        processing: Processing::Queued,
        workflow_ids: vec![],
        review_ids: vec![],
        rev: 0,
    }
}

/// Deliveries: conditional create per endpoint, conditional update, newest-first pages.
pub async fn deliveries(store: &dyn DeliveryStore) {
    let a = key("acct-d1", Source::Standard);
    let b = key("acct-d2", Source::Standard);
    let first = delivery(&a, "d1", t0(), Outcome::Accepted);
    assert!(store.create_delivery(&first).await.unwrap().is_none());
    let mut again = first.clone();
    again.processing = Processing::NotApplicable;
    assert_eq!(
        store.create_delivery(&again).await.unwrap(),
        Some(first.clone())
    );
    // The same id on another endpoint is another delivery.
    assert!(
        store
            .create_delivery(&delivery(&b, "d1", t0(), Outcome::Accepted))
            .await
            .unwrap()
            .is_none()
    );
    let mut done = first.clone();
    done.processing = Processing::Done {
        notes: vec!["n".into()],
    };
    done.workflow_ids = vec!["w1".into()];
    done.rev = 1;
    store.update_delivery(&done, 0).await.unwrap();
    assert!(matches!(
        store.update_delivery(&done, 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_delivery(&a, "d1").await.unwrap(), Some(done));
    for i in 2..=5 {
        let d = delivery(
            &a,
            &format!("d{i}"),
            t0() + Duration::seconds(i),
            Outcome::Duplicate { of: "d1".into() },
        );
        store.create_delivery(&d).await.unwrap();
    }
    let p1 = store.list_deliveries(&a, None, 3).await.unwrap();
    let ids: Vec<&str> = p1.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, vec!["d5", "d4", "d3"], "newest first");
    let p2 = store
        .list_deliveries(&a, p1.next.as_deref(), 3)
        .await
        .unwrap();
    let ids: Vec<&str> = p2.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, vec!["d2", "d1"]);
    assert!(p2.next.is_none());
}

fn review(tenant: &str, delivery: &str, n: usize, at: DateTime<Utc>) -> ReviewItem {
    ReviewItem {
        id: review_id(delivery, n),
        tenant_id: TenantId::new(tenant),
        endpoint: key("acct-r", Source::BambooHr),
        delivery_id: delivery.into(),
        event_index: n as u32,
        event: HrEvent::default(),
        reason: ReviewReason::NoMatch,
        message: "no match".into(),
        created_at: at,
        status: ReviewStatus::Open,
        rev: 0,
    }
}

/// Reviews: conditional create, conditional update, open-only listing per tenant.
pub async fn reviews(store: &dyn ReviewStore) {
    let r1 = review("t-r1", "d1", 0, t0());
    assert!(store.create_review(&r1).await.unwrap().is_none());
    assert!(store.create_review(&r1).await.unwrap().is_some());
    let r2 = review("t-r1", "d1", 1, t0() + Duration::seconds(1));
    store.create_review(&r2).await.unwrap();
    store
        .create_review(&review("t-r2", "d9", 0, t0()))
        .await
        .unwrap();
    let mut closed = r1.clone();
    closed.status = ReviewStatus::Dismissed {
        by: "me".into(),
        at: t0(),
    };
    closed.rev = 1;
    store.update_review(&closed, 0).await.unwrap();
    assert!(matches!(
        store.update_review(&closed, 0).await,
        Err(StoreError::Conflict(_))
    ));
    let t = TenantId::new("t-r1");
    let open = store.list_reviews(&t, true, None, 10).await.unwrap();
    assert_eq!(
        open.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![r2.id.clone()]
    );
    let all = store.list_reviews(&t, false, None, 10).await.unwrap();
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.items[0].id, r2.id, "newest first");
    assert_eq!(store.get_review(&t, &r1.id).await.unwrap(), Some(closed));
}

/// People: create only at rev 0, replace only at the stored rev.
pub async fn people(store: &dyn HrPersonStore) {
    let t = TenantId::new("t-p");
    let mut p = HrPerson::new(t.clone(), Source::HiBob, "333");
    p.rev = 1;
    assert!(
        matches!(store.put_person(&p, 5).await, Err(StoreError::Conflict(_))),
        "no record at rev 5"
    );
    store.put_person(&p, 0).await.unwrap();
    assert!(
        matches!(store.put_person(&p, 0).await, Err(StoreError::Conflict(_))),
        "a second create"
    );
    let mut next = p.clone();
    next.department = Some("Sales".into());
    next.rev = 2;
    store.put_person(&next, 1).await.unwrap();
    assert_eq!(
        store.get_person(&t, Source::HiBob, "333").await.unwrap(),
        Some(next)
    );
    assert!(
        store
            .get_person(&t, Source::BambooHr, "333")
            .await
            .unwrap()
            .is_none(),
        "keyed by source too"
    );
}

#[cfg(test)]
mod tests {
    use super::super::memory::MemoryWebhooks;

    #[tokio::test]
    async fn the_memory_adapters_keep_the_contract() {
        let m = MemoryWebhooks::new();
        super::endpoints(&m).await;
        super::deliveries(&m).await;
        super::reviews(&m).await;
        super::people(&m).await;
    }
}
