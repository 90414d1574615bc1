//! Outbound webhooks on AWS, end to end on moto: committed writes on the DynamoDB table, its
//! stream through the publisher function's handler (which fans the events out to the account's
//! endpoints), the delivery function's handler POSTing to a receiver on 127.0.0.1 (the
//! loopback test setting is set here, in the test, never by the function), signatures checked
//! with the Standard Webhooks reference library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, Duration, Utc};
use entra_sync_aws::secrets::DEFAULT_TTL;
use entra_sync_aws::{DynamoStore, SecretsManagerVault, sdk_config_for_endpoint};
use entra_sync_core::error::QueueError;
use entra_sync_core::memory::CollectingEvents;
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::outbound::ports::{DeliveryWake, OutboundStore};
use entra_sync_core::outbound::service::{CreatedEndpoint, NewEndpoint, create_endpoint};
use entra_sync_core::outbound::ssrf::UrlPolicy;
use entra_sync_core::outbound::{DeliveryState, OutboundPolicy};
use entra_sync_core::ports::{ConnectionStore, LocalUserStore, SystemClock};
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_core::services::publish::{FanOutDeps, PublishDeps};
use entra_sync_outbound::{OutboundWorker, ReqwestPoster, SystemResolver};
use entra_sync_outbound_function::handler::{Answer, handle};
use entra_sync_tests::receiver::Receiver;
use entra_sync_tests::{moto, streams};
use serde_json::Value;

const TENANT: &str = "5e969c4a-c2f2-4712-8d6f-d71e7d111dbd";

fn account() -> AccountId {
    AccountId("acct-out".into())
}

/// Counts the publisher's wake-ups of the delivery function.
#[derive(Default)]
struct CountingWake(AtomicUsize);

#[async_trait]
impl DeliveryWake for CountingWake {
    async fn wake(&self, _created: usize) -> Result<(), QueueError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct World {
    table: String,
    store: Arc<DynamoStore>,
    vault: Arc<SecretsManagerVault>,
    receiver: Receiver,
    endpoint: CreatedEndpoint,
    /// The table's stream after the endpoint, a connection and two host users were written.
    records: Vec<EventRecord>,
    wake: Arc<CountingWake>,
    published: Arc<CollectingEvents>,
    deps: PublishDeps,
}

fn testing_policy() -> OutboundPolicy {
    OutboundPolicy {
        urls: UrlPolicy {
            allow_insecure_loopback: true,
        },
        timeout: StdDuration::from_secs(5),
        ..OutboundPolicy::default()
    }
}

async fn world(answer: u16) -> World {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let table = moto::unique_name("outbound");
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table.clone(),
    ));
    store.create_table().await.unwrap();
    let vault = Arc::new(SecretsManagerVault::new(
        aws_sdk_secretsmanager::Client::new(&config),
        format!("{}/", moto::unique_name("entra-sync")),
        DEFAULT_TTL,
    ));
    let receiver = Receiver::start(answer).await;
    let now = Utc::now();
    let endpoint = create_endpoint(
        store.as_ref(),
        vault.as_ref(),
        &SystemResolver,
        &testing_policy(),
        NewEndpoint {
            account: account(),
            url: receiver.url.clone(),
            event_types: None,
        },
        now,
    )
    .await
    .unwrap();
    // A directory connected to the account, two host users of the account.
    store
        .put_connection(&Connection {
            tenant_id: TenantId::new(TENANT),
            account_id: account(),
            label: "test".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: now,
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let users: Vec<LocalUser> = ["h1", "h2"]
        .iter()
        .map(|id| {
            LocalUser::pre_existing(
                account(),
                *id,
                &format!("{id}@contoso.example"),
                LocalStatus::Pending,
                now,
            )
        })
        .collect();
    store.put_local_users(&users).await.unwrap();
    let records = streams::stream_records(
        &aws_sdk_dynamodb::Client::new(&config),
        &aws_sdk_dynamodbstreams::Client::new(&config),
        &table,
    )
    .await;
    let wake = Arc::new(CountingWake::default());
    let published = Arc::new(CollectingEvents::new());
    let deps = PublishDeps {
        connections: store.clone(),
        events: published.clone(),
        outbound: Some(FanOutDeps {
            deliveries: store.clone(),
            wake: wake.clone(),
            clock: Arc::new(SystemClock),
        }),
    };
    World {
        table,
        store,
        vault,
        receiver,
        endpoint,
        records,
        wake,
        published,
        deps,
    }
}

impl World {
    async fn publish(&self) {
        let r =
            entra_sync_publisher::handler::handle(&self.deps, streams::event(&self.records)).await;
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }

    async fn deliveries(&self) -> Vec<entra_sync_core::outbound::OutboundDelivery> {
        self.store
            .list_deliveries(&self.endpoint.endpoint.id, None, 100)
            .await
            .unwrap()
    }

    fn worker(&self) -> OutboundWorker {
        let policy = testing_policy();
        OutboundWorker {
            store: self.store.clone(),
            vault: self.vault.clone(),
            poster: Arc::new(ReqwestPoster::new(&policy).unwrap()),
            policy,
        }
    }
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "tick" => include_str!("../../events/outbound/tick.json"),
        "wake" => include_str!("../../events/outbound/wake.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn the_publisher_fans_each_event_out_once_per_endpoint_and_a_replayed_batch_adds_none() {
    let w = world(204).await;
    w.publish().await;
    let events = w.published.history();
    let tenant_account = Some(account());
    let wanted: BTreeSet<String> = events
        .iter()
        .filter(|e| w.endpoint.endpoint.wants(e, tenant_account.as_ref()))
        .map(|e| e.id().to_string())
        .collect();
    let types: BTreeSet<&str> = events.iter().map(|e| e.event_type()).collect();
    assert!(
        types.contains("user.created") && types.contains("connection.connected"),
        "{types:?}"
    );
    assert!(wanted.len() >= 3, "{events:?}");
    let first = w.deliveries().await;
    let delivered: BTreeSet<String> = first.iter().map(|d| d.event_id.clone()).collect();
    assert_eq!(delivered, wanted, "one delivery per event of the account");
    assert_eq!(first.len(), wanted.len());
    assert!(
        first
            .iter()
            .all(|d| matches!(d.state, DeliveryState::Pending { .. }))
    );
    assert_eq!(w.wake.0.load(Ordering::SeqCst), 1, "woken once per batch");

    // A crash after the fan-out: the stream hands the same batch again.
    w.publish().await;
    let again = w.deliveries().await;
    assert_eq!(again, first, "a replay creates no second delivery");
}

#[tokio::test]
async fn the_delivery_function_retries_after_a_500_and_signs_for_the_standard_webhooks_library() {
    let w = world(500).await;
    w.publish().await;
    let due = w.deliveries().await.len();
    assert!(due >= 3);
    let worker = w.worker();
    let now = Utc::now();

    // The publisher's wake-up: every due delivery attempted, the receiver answers 500.
    let answer = handle(&worker, fixture("wake"), now).await.unwrap();
    let Answer::Batch(b) = answer else {
        panic!("{answer:?}")
    };
    assert!(b.batch_item_failures.is_empty());
    assert_eq!(w.receiver.got().len(), due);
    for d in w.deliveries().await {
        assert_eq!(d.failures, 1, "{d:?}");
        let DeliveryState::Pending { next_attempt_at } = d.state else {
            panic!("{d:?}")
        };
        // The schedule's second wait: 5 s, +-20%.
        let wait = next_attempt_at - now;
        assert!(
            wait >= Duration::seconds(4) && wait <= Duration::seconds(6),
            "{wait}"
        );
    }
    // Not due yet: the minute's tick right away sends nothing.
    let Answer::Tick(r) = handle(&worker, fixture("tick"), now).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.attempted, 0);

    // The receiver is back; the tick after the wait delivers each event, signed.
    w.receiver.answer(204);
    let later = now + Duration::seconds(7);
    let Answer::Tick(r) = handle(&worker, fixture("tick"), later).await.unwrap() else {
        panic!()
    };
    assert_eq!((r.attempted, r.delivered), (due, due));
    let got = w.receiver.got();
    let ok: Vec<_> = got.iter().filter(|r| r.answered == 204).collect();
    assert_eq!(ok.len(), due);
    let secret = w.endpoint.secret.expose();
    let mut ids = BTreeSet::new();
    for r in &ok {
        assert_signed(r, secret, later);
        ids.insert(r.headers["webhook-id"].clone());
    }
    assert_eq!(ids.len(), due, "each event delivered once");
    for d in w.deliveries().await {
        assert!(matches!(d.state, DeliveryState::Delivered { .. }), "{d:?}");
        assert_eq!(d.attempts.len(), 2);
    }
}

#[tokio::test]
async fn disabling_an_endpoint_publishes_its_event_from_the_stream_with_the_id_the_service_returned()
 {
    let w = world(204).await;
    let disabled = entra_sync_core::outbound::service::disable_endpoint(
        w.store.as_ref(),
        &w.endpoint.endpoint.id,
        "by hand",
        Utc::now(),
    )
    .await
    .unwrap();
    let expected = disabled.disabled_event().unwrap();
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let records = streams::stream_records(
        &aws_sdk_dynamodb::Client::new(&config),
        &aws_sdk_dynamodbstreams::Client::new(&config),
        &w.table,
    )
    .await;
    let r = entra_sync_publisher::handler::handle(&w.deps, streams::event(&records)).await;
    assert!(r.batch_item_failures.is_empty(), "{r:?}");
    let got: Vec<_> = w
        .published
        .history()
        .into_iter()
        .filter(|e| e.event_type() == "webhook_endpoint.disabled")
        .collect();
    assert_eq!(got, [expected], "once, derived from the committed write");
    entra_sync_tests::event_schemas::assert_valid(&got);
    // A disabled endpoint receives nothing, its own event included.
    assert!(w.deliveries().await.is_empty());
}

/// The signature header holds the reference library's signature of (webhook-id,
/// webhook-timestamp, body) under the endpoint's secret, and the body is the event.
fn assert_signed(r: &entra_sync_tests::receiver::Received, secret: &str, at: DateTime<Utc>) {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    let id = &r.headers["webhook-id"];
    let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
    let expected = wh.sign(id, ts, &r.body).unwrap();
    assert!(
        r.headers["webhook-signature"]
            .split(' ')
            .any(|s| s == expected),
        "signature {} is not the library's {expected}",
        r.headers["webhook-signature"]
    );
    assert_eq!(ts, at.timestamp());
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"].as_str(), Some(id.as_str()));
    entra_sync_tests::event_schemas::assert_valid_lines(std::str::from_utf8(&r.body).unwrap());
}
