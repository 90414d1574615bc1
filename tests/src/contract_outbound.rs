//! The outbound webhook store contract ([`OutboundStore`]), run against the in-memory store,
//! the SQLite store and the DynamoDB store (on moto). Deliveries come from committed events,
//! which each adapter fans out its own way (the SQLite store when its outbox is delivered, the
//! memory store by `fan_out`, the DynamoDB store by the publisher's fan-out), so the suite
//! takes `commit`: make one event of the account `acct` about the
//! object named, and fan it out.

use chrono::{Duration, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::AccountId;
use entra_sync_core::outbound::ports::OutboundStore;
use entra_sync_core::outbound::{
    Attempt, AttemptOutcome, DeliveryState, OutboundEndpoint, claim_lease,
};

/// The account the suite's events belong to.
pub fn account() -> AccountId {
    AccountId("acct".into())
}

fn endpoint(id: &str, account: &AccountId, at: chrono::DateTime<Utc>) -> OutboundEndpoint {
    OutboundEndpoint::new(
        id.to_owned(),
        account.clone(),
        format!("https://hooks.example.com/{id}"),
        None,
        at,
    )
}

/// Endpoints: created, read, listed per account oldest first, replaced only at the expected
/// `rev`.
pub async fn endpoints<S: OutboundStore>(store: &S) {
    let t0 = Utc::now();
    let first = endpoint("ep_first", &account(), t0);
    let second = endpoint("ep_second", &account(), t0 + Duration::seconds(1));
    let other = endpoint("ep_other", &AccountId("other".into()), t0);
    store.create_endpoint(&second).await.unwrap();
    store.create_endpoint(&first).await.unwrap();
    store.create_endpoint(&other).await.unwrap();
    assert!(
        store.create_endpoint(&first).await.is_err(),
        "an endpoint id is created once"
    );
    assert_eq!(
        store.get_endpoint("ep_first").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_endpoint("ep_none").await.unwrap(), None);
    let ids: Vec<String> = store
        .list_endpoints(&account())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["ep_first", "ep_second"]);

    let mut disabled = first.clone();
    let rev = disabled.rev;
    let event = disabled.disable("by hand", t0).expect("disabled once");
    store
        .update_endpoint(&disabled, rev, &[event])
        .await
        .unwrap();
    assert_eq!(
        store.get_endpoint("ep_first").await.unwrap(),
        Some(disabled.clone())
    );
    // A writer that read the endpoint before loses.
    let mut stale = first.clone();
    stale.url = "https://hooks.example.com/stale".into();
    stale.rev += 1;
    let lost = store.update_endpoint(&stale, rev, &[]).await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    assert_eq!(
        store.get_endpoint("ep_first").await.unwrap(),
        Some(disabled)
    );
}

/// Deliveries: one per (endpoint, event) for the enabled endpoints of the event's account,
/// claimed with a lease, recorded, listed newest first, redelivered.
pub async fn deliveries<S: OutboundStore>(store: &S, commit: impl AsyncFn(&str)) {
    let t0 = Utc::now();
    let on = endpoint("ep_on", &account(), t0);
    let mut off = endpoint("ep_off", &account(), t0);
    off.disable("by hand", t0);
    let other = endpoint("ep_other", &AccountId("other".into()), t0);
    for e in [&on, &off, &other] {
        store.create_endpoint(e).await.unwrap();
    }
    commit("u1").await;
    let now = Utc::now() + Duration::seconds(1);
    let lease = now + claim_lease();
    let due = store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "only the enabled endpoint of the account: {due:?}"
    );
    let d = &due[0];
    assert_eq!(d.endpoint.id, "ep_on");
    assert_eq!(d.delivery.endpoint_id, "ep_on");
    let body: serde_json::Value = serde_json::from_str(&d.body).expect("the body is JSON");
    assert_eq!(body["id"], d.delivery.event_id.as_str(), "{body}");
    assert!(
        matches!(d.delivery.state, DeliveryState::Pending { .. }),
        "{:?}",
        d.delivery.state
    );

    // Leased: nobody else takes it until the lease ends.
    assert!(store.claim_due(now, lease, 10).await.unwrap().is_empty());
    let again = store
        .claim_due(lease, lease + claim_lease(), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "due again once the lease ended");

    // Recorded: delivered, never claimed again.
    let mut delivery = again[0].delivery.clone();
    delivery.attempts.push(Attempt {
        at: now,
        outcome: AttemptOutcome::Status { status: 204 },
        latency_ms: 5,
    });
    delivery.state = DeliveryState::Delivered { at: now };
    let mut ep = again[0].endpoint.clone();
    let rev = ep.rev;
    ep.failing_since = None;
    store
        .record_attempt(&delivery, &ep, rev, &[])
        .await
        .unwrap();
    let far = now + Duration::days(30);
    assert!(store.claim_due(far, far, 10).await.unwrap().is_empty());
    assert_eq!(
        store.get_delivery(&delivery.id).await.unwrap(),
        Some(delivery.clone())
    );
    assert_eq!(store.get_delivery("dl_none").await.unwrap(), None);

    // An attempt recorded against an endpoint an admin changed meanwhile keeps the delivery
    // and leaves the endpoint as the admin left it.
    let mut by_admin = ep.clone();
    by_admin.url = "https://hooks.example.com/moved".into();
    by_admin.rev += 1;
    store.update_endpoint(&by_admin, rev, &[]).await.unwrap();
    let mut late = delivery.clone();
    late.attempts.push(Attempt {
        at: now,
        outcome: AttemptOutcome::Timeout,
        latency_ms: 10_000,
    });
    let mut worker_view = ep.clone();
    worker_view.failing_since = Some(now);
    store
        .record_attempt(&late, &worker_view, rev, &[])
        .await
        .unwrap();
    assert_eq!(
        store.get_delivery(&late.id).await.unwrap(),
        Some(late.clone())
    );
    assert_eq!(store.get_endpoint("ep_on").await.unwrap(), Some(by_admin));

    // Two more events: newest first, limited.
    commit("u2").await;
    commit("u3").await;
    let all = store.list_deliveries("ep_on", None, 10).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[2].id, delivery.id, "the oldest last");
    let two = store.list_deliveries("ep_on", None, 2).await.unwrap();
    assert_eq!(two, all[..2].to_vec());
    let rest = store
        .list_deliveries("ep_on", Some(&two[1].id), 2)
        .await
        .unwrap();
    assert_eq!(
        rest,
        all[2..].to_vec(),
        "the next page: older than the last one"
    );
    assert!(
        store
            .list_deliveries("ep_off", None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The same event fanned out again creates nothing new.
    commit("u3").await;
    assert_eq!(
        store
            .list_deliveries("ep_on", None, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    // A redelivery makes a delivered one due again.
    let mut redo = store.get_delivery(&delivery.id).await.unwrap().unwrap();
    redo.redeliver(far);
    store.put_delivery(&redo).await.unwrap();
    let due: Vec<String> = store
        .claim_due(far, far + claim_lease(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.delivery.id)
        .collect();
    assert!(due.contains(&delivery.id), "{due:?}");
    assert_eq!(
        due.len(),
        3,
        "the two new ones and the redelivered one: {due:?}"
    );
}
