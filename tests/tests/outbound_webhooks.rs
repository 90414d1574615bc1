//! Outbound webhooks through the local program: a committed change reaches the host
//! product's endpoint signed with Standard Webhooks, retried by the schedule (the clock is
//! injected: no real waits) through a receiver that is down, then slow, then failing, then
//! answering; once per event id; SSRF targets refused at creation and at delivery; an
//! endpoint failing for too long disabled, with its event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, Utc};
use entra_sync_core::model::AccountId;
use entra_sync_core::outbound::ports::OutboundStore;
use entra_sync_core::outbound::service::{
    CreatedEndpoint, NewEndpoint, OutboundError, create_endpoint,
};
use entra_sync_core::outbound::ssrf::{UrlPolicy, UrlRefused};
use entra_sync_core::outbound::{AttemptOutcome, DeliveryState, OutboundEndpoint, OutboundPolicy};
use entra_sync_core::ports::LocalUserStore;
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_local::outbound::SystemResolver;
use entra_sync_local::runtime::{DataDir, LocalApp, SyncSettings};
use serde_json::Value;

fn open(dir: &std::path::Path) -> LocalApp {
    LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap()
}

fn account() -> AccountId {
    AccountId("acct".into())
}

/// The local test setting (http to loopback allowed) and a short timeout, so "slow" is
/// slow beyond it without a long test.
fn testing_policy() -> OutboundPolicy {
    OutboundPolicy {
        urls: UrlPolicy {
            allow_insecure_loopback: true,
        },
        timeout: StdDuration::from_millis(300),
        ..Default::default()
    }
}

/// A change of a host user of the account (a `user.created` event in the outbox), delivered
/// from the outbox (which fans it out to the endpoints).
async fn commit_a_change(app: &LocalApp, id: &str) {
    let user = LocalUser::pre_existing(
        account(),
        id,
        &format!("{id}@contoso.example"),
        LocalStatus::Pending,
        Utc::now(),
    );
    app.store.put_local_users(&[user]).await.unwrap();
    app.deliver_events().await.unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Slow,
    Fail,
    Answer,
}

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    answered: StatusCode,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A receiver on 127.0.0.1:`port` answering by its mode.
async fn start_receiver(port: u16, mode: Mode) -> Receiver {
    let r = Receiver {
        mode: Arc::new(Mutex::new(mode)),
        got: Arc::new(Mutex::new(Vec::new())),
    };
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let mode = *state.mode.lock().unwrap();
                // A slow answer would be 200, too late (the client gives up first).
                let answered = match mode {
                    Mode::Slow => StatusCode::OK,
                    Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
                    Mode::Answer => StatusCode::NO_CONTENT,
                };
                state.got.lock().unwrap().push(Received {
                    headers,
                    body: body.to_vec(),
                    answered,
                });
                if mode == Mode::Slow {
                    tokio::time::sleep(StdDuration::from_secs(3)).await;
                }
                answered
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    r
}

/// A port nothing listens on (yet).
/// An endpoint of the test account at a loopback URL (the local test setting allows it).
async fn loopback_endpoint(
    app: &LocalApp,
    policy: &OutboundPolicy,
    url: &str,
    event_types: Option<Vec<String>>,
    at: DateTime<Utc>,
) -> CreatedEndpoint {
    create_endpoint(
        app.store.as_ref(),
        app.vault.as_ref(),
        &SystemResolver,
        policy,
        NewEndpoint {
            account: account(),
            url: url.to_owned(),
            event_types,
        },
        at,
    )
    .await
    .unwrap()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Checked with the Standard Webhooks reference library: the signature header holds the
/// library's signature of (webhook-id, webhook-timestamp, body) under `secret`, the id is the
/// event's, and the timestamp is the attempt's.
fn assert_signed(r: &Received, secret: &str, at: DateTime<Utc>) {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    let id = r.headers["webhook-id"].to_str().unwrap();
    let ts: i64 = r.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let sig = r.headers["webhook-signature"].to_str().unwrap();
    let expected = wh.sign(id, ts, &r.body).unwrap();
    assert!(
        sig.split(' ').any(|s| s == expected),
        "signature {sig} is not the library's {expected}"
    );
    assert_eq!(ts, at.timestamp());
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["id"], id, "webhook-id is the event id");
    entra_sync_tests::event_schemas::assert_valid_lines(std::str::from_utf8(&r.body).unwrap());
}

#[tokio::test]
async fn a_receiver_down_then_slow_then_failing_gets_the_retries_by_the_schedule_then_the_event_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let policy = testing_policy();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let t0 = Utc::now();
    let created = loopback_endpoint(&app, &policy, &url, None, t0).await;
    let secret = created.secret.expose().to_owned();
    let endpoint = created.endpoint.id.clone();
    commit_a_change(&app, "l1").await;
    // The delivery is due from its fan-out on (real time); the worker's clock starts there.
    let t0 = Utc::now();
    let worker = app.outbound_worker(policy).unwrap();

    let only = |ds: Vec<entra_sync_core::outbound::OutboundDelivery>| {
        assert_eq!(ds.len(), 1, "one delivery per (endpoint, event): {ds:?}");
        ds.into_iter().next().unwrap()
    };
    let due_at = |d: &entra_sync_core::outbound::OutboundDelivery| match d.state {
        DeliveryState::Pending { next_attempt_at } => next_attempt_at,
        ref s => panic!("not pending: {s:?}"),
    };

    // 1. Down: nothing listens. Retried 5 s later (±20%).
    let r = worker.deliver_due(t0).await.unwrap();
    assert_eq!((r.attempted, r.delivered), (1, 0));
    let d = only(
        app.store
            .list_deliveries(&endpoint, None, 10)
            .await
            .unwrap(),
    );
    assert!(
        matches!(d.attempts[0].outcome, AttemptOutcome::Error { .. }),
        "{d:?}"
    );
    let next = due_at(&d);
    assert!(
        next >= t0 + Duration::seconds(4) && next <= t0 + Duration::seconds(6),
        "{next}"
    );
    // Not before its time.
    assert_eq!(
        worker
            .deliver_due(t0 + Duration::seconds(3))
            .await
            .unwrap()
            .attempted,
        0
    );

    // 2. Slow beyond the timeout. Retried 5 min later.
    let receiver = start_receiver(port, Mode::Slow).await;
    let t1 = t0 + Duration::seconds(7);
    let r = worker.deliver_due(t1).await.unwrap();
    assert_eq!((r.attempted, r.delivered), (1, 0));
    let d = only(
        app.store
            .list_deliveries(&endpoint, None, 10)
            .await
            .unwrap(),
    );
    assert_eq!(d.attempts[1].outcome, AttemptOutcome::Timeout);
    let next = due_at(&d);
    assert!(
        next >= t1 + Duration::minutes(4) && next <= t1 + Duration::minutes(6),
        "{next}"
    );
    assert_eq!(
        worker
            .deliver_due(t1 + Duration::minutes(3))
            .await
            .unwrap()
            .attempted,
        0
    );

    // 3. Answering 500. Retried 30 min later.
    receiver.set(Mode::Fail);
    let t2 = t1 + Duration::minutes(7);
    assert_eq!(worker.deliver_due(t2).await.unwrap().attempted, 1);
    let d = only(
        app.store
            .list_deliveries(&endpoint, None, 10)
            .await
            .unwrap(),
    );
    assert_eq!(
        d.attempts[2].outcome,
        AttemptOutcome::Status { status: 500 }
    );
    let next = due_at(&d);
    assert!(
        next >= t2 + Duration::minutes(24) && next <= t2 + Duration::minutes(36),
        "{next}"
    );
    assert_eq!(
        worker
            .deliver_due(t2 + Duration::minutes(20))
            .await
            .unwrap()
            .attempted,
        0
    );

    // 4. Answering: delivered, and never again.
    receiver.set(Mode::Answer);
    let t3 = t2 + Duration::minutes(40);
    let r = worker.deliver_due(t3).await.unwrap();
    assert_eq!((r.attempted, r.delivered), (1, 1));
    let d = only(
        app.store
            .list_deliveries(&endpoint, None, 10)
            .await
            .unwrap(),
    );
    assert_eq!(d.state, DeliveryState::Delivered { at: t3 });
    assert_eq!(d.attempts.len(), 4);
    assert_eq!(
        d.attempts[3].outcome,
        AttemptOutcome::Status { status: 204 }
    );
    assert_eq!(
        worker
            .deliver_due(t3 + Duration::days(2))
            .await
            .unwrap()
            .attempted,
        0
    );

    // The receiver: the slow attempt (received, answered too late), the 500 and the answer,
    // all signed; one answered delivery per id.
    let got = receiver.got();
    assert_eq!(got.len(), 3, "{got:?}");
    for (r, at) in got.iter().map(|r| {
        let at = match r.answered {
            StatusCode::OK => t1,
            StatusCode::INTERNAL_SERVER_ERROR => t2,
            _ => t3,
        };
        (r, at)
    }) {
        assert_signed(r, &secret, at);
    }
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for r in got.iter().filter(|r| r.answered == StatusCode::NO_CONTENT) {
        *answered
            .entry(r.headers["webhook-id"].to_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(answered.len(), 1);
    assert!(answered.values().all(|n| *n == 1), "{answered:?}");
    assert_eq!(answered.keys().next().unwrap(), &d.event_id);
}

#[tokio::test]
async fn every_delivery_verifies_with_the_standard_webhooks_library_once_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let policy = testing_policy();
    let port = free_port();
    let receiver = start_receiver(port, Mode::Answer).await;
    let created = loopback_endpoint(
        &app,
        &policy,
        &format!("http://127.0.0.1:{port}/hook"),
        Some(vec!["user.created".into()]),
        Utc::now(),
    )
    .await;
    for i in 0..5 {
        commit_a_change(&app, &format!("l{i}")).await;
    }
    let worker = app.outbound_worker(policy).unwrap();
    let r = worker.deliver_due(Utc::now()).await.unwrap();
    assert_eq!((r.attempted, r.delivered), (5, 5));
    // Delivering again (and the outbox again) sends nothing more.
    app.deliver_events().await.unwrap();
    assert_eq!(worker.deliver_due(Utc::now()).await.unwrap().attempted, 0);
    let got = receiver.got();
    assert_eq!(got.len(), 5);
    let wh = standardwebhooks::Webhook::new(created.secret.expose()).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for r in &got {
        // The full check of the library, timestamp tolerance included.
        wh.verify(&r.body, &r.headers).unwrap();
        assert!(ids.insert(r.headers["webhook-id"].to_str().unwrap().to_owned()));
    }
    // A wrong secret is refused by the same check (the check can fail).
    let other = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(other.verify(&got[0].body, &got[0].headers).is_err());
}

#[tokio::test]
async fn ssrf_targets_are_refused_when_an_endpoint_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let strict = OutboundPolicy::default();
    let create = |url: &'static str, policy: OutboundPolicy| {
        let app = app.clone();
        async move {
            create_endpoint(
                app.store.as_ref(),
                app.vault.as_ref(),
                &SystemResolver,
                &policy,
                NewEndpoint {
                    account: account(),
                    url: url.to_string(),
                    event_types: None,
                },
                Utc::now(),
            )
            .await
        }
    };
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
    ] {
        let e = create(url, strict).await.unwrap_err();
        assert!(
            matches!(e, OutboundError::Url(UrlRefused::NotPublic(_))),
            "{url}: {e}"
        );
    }
    for url in ["http://example.com/hook", "http://127.0.0.1:9/hook"] {
        let e = create(url, strict).await.unwrap_err();
        assert!(
            matches!(e, OutboundError::Url(UrlRefused::NotHttps)),
            "{url}: {e}"
        );
    }
    // The test setting allows http to a loopback address, and nothing else.
    let testing = testing_policy();
    assert!(create("http://127.0.0.1:9/hook", testing).await.is_ok());
    assert!(create("http://10.0.0.8/hook", testing).await.is_err());
    assert!(create("http://localhost:9/hook", testing).await.is_err());
    assert_eq!(app.store.list_endpoints(&account()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_at_delivery_is_refused_then() {
    // The endpoint was accepted (as if its name had resolved to a public address then); at
    // delivery the name resolves to 127.0.0.1, where a receiver listens: nothing reaches it.
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let port = free_port();
    let receiver = start_receiver(port, Mode::Answer).await;
    let now = Utc::now();
    for url in [
        format!("https://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
    ] {
        let ep = OutboundEndpoint::new(OutboundEndpoint::new_id(), account(), url, None, now);
        app.vault
            .put_secret(
                &ep.secrets[0].name,
                &entra_sync_core::ports::Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            )
            .await
            .unwrap();
        app.store.create_endpoint(&ep).await.unwrap();
    }
    commit_a_change(&app, "l1").await;
    let strict = OutboundPolicy {
        timeout: StdDuration::from_millis(500),
        ..Default::default()
    };
    let worker = app.outbound_worker(strict).unwrap();
    let r = worker.deliver_due(Utc::now()).await.unwrap();
    assert_eq!((r.attempted, r.delivered), (2, 0));
    assert!(receiver.got().is_empty());
    for ep in app.store.list_endpoints(&account()).await.unwrap() {
        let d = app.store.list_deliveries(&ep.id, None, 10).await.unwrap();
        let AttemptOutcome::Error { error } = &d[0].attempts[0].outcome else {
            panic!("{d:?}")
        };
        assert!(
            error.contains("not a public address") || error.contains("https"),
            "{error}"
        );
    }
}

use entra_sync_core::ports::SecretVault;

#[tokio::test]
async fn an_endpoint_failing_for_longer_than_the_window_is_disabled_with_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let policy = testing_policy();
    let port = free_port();
    let t0 = Utc::now();
    let created = loopback_endpoint(
        &app,
        &policy,
        &format!("http://127.0.0.1:{port}/hook"),
        None,
        t0 - Duration::days(6),
    )
    .await;
    // Failing for six days already (a window of five).
    let mut ep = created.endpoint;
    ep.failing_since = Some(t0 - Duration::days(6));
    app.store.update_endpoint(&ep, ep.rev, &[]).await.unwrap();
    commit_a_change(&app, "l1").await;
    commit_a_change(&app, "l2").await;
    let t0 = Utc::now();
    let worker = app.outbound_worker(policy).unwrap();
    let r = worker.deliver_due(t0).await.unwrap();
    assert_eq!(r.endpoints_disabled, 1);
    assert_eq!(r.attempted, 1, "no attempt after the endpoint was disabled");
    let stored = app.store.get_endpoint(&ep.id).await.unwrap().unwrap();
    assert!(!stored.is_enabled());
    // Nothing is tried while it is disabled.
    assert_eq!(
        worker
            .deliver_due(t0 + Duration::hours(1))
            .await
            .unwrap()
            .attempted,
        0
    );
    // Its event, through the outbox to events.jsonl, valid against its schema.
    app.deliver_events().await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let events = entra_sync_tests::event_schemas::assert_valid_lines(&text);
    let disabled: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "webhook_endpoint.disabled")
        .collect();
    assert_eq!(disabled.len(), 1, "{events:?}");
    assert_eq!(disabled[0]["object_id"], ep.id.as_str());
    assert_eq!(disabled[0]["account_id"], "acct");
    assert!(disabled[0]["tenant_id"].is_null());
}

#[tokio::test]
async fn a_process_killed_before_the_fan_out_or_during_a_post_still_delivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let policy = testing_policy();
    let port = free_port();
    let receiver = start_receiver(port, Mode::Answer).await;
    let created = loopback_endpoint(
        &app,
        &policy,
        &format!("http://127.0.0.1:{port}/hook"),
        None,
        Utc::now(),
    )
    .await;
    let endpoint = created.endpoint.id;
    // Committed, then killed before the outbox rows were marked (the sink gave up): no
    // delivery yet, and the event is still pending in the outbox.
    let user = LocalUser::pre_existing(
        account(),
        "l1",
        "l1@contoso.example",
        LocalStatus::Pending,
        Utc::now(),
    );
    app.store.put_local_users(&[user]).await.unwrap();
    let killed = app
        .store
        .deliver_outbox(|_| Err::<(), _>(std::io::Error::other("killed")));
    assert!(killed.is_err());
    assert!(
        app.store
            .list_deliveries(&endpoint, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The next start delivers the outbox, and fans it out.
    app.deliver_events().await.unwrap();
    app.deliver_events().await.unwrap();
    assert_eq!(
        app.store
            .list_deliveries(&endpoint, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // A worker claims it and is killed before the POST's answer is recorded: the claim runs
    // out and the next worker sends it.
    let t0 = Utc::now();
    let claimed = app
        .store
        .claim_due(t0, t0 + Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let worker = app.outbound_worker(policy).unwrap();
    assert_eq!(
        worker
            .deliver_due(t0 + Duration::seconds(30))
            .await
            .unwrap()
            .attempted,
        0
    );
    let r = worker
        .deliver_due(t0 + Duration::seconds(61))
        .await
        .unwrap();
    assert_eq!((r.attempted, r.delivered), (1, 1));
    assert_eq!(
        worker
            .deliver_due(t0 + Duration::hours(1))
            .await
            .unwrap()
            .attempted,
        0
    );
    let got = receiver.got();
    assert_eq!(got.len(), 1, "once per event id");
    assert_signed(&got[0], created.secret.expose(), t0 + Duration::seconds(61));
}

/// A command that writes (`entra-sync sync` without `serve`) delivers the due webhooks when it
/// ends: dropping the last handle of an app opened for writing POSTs them. The test runtime has
/// two workers so the receiver answers while the drop waits for its delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_ends_delivers_the_due_webhooks_without_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    let app = LocalApp::open_for_writing(&data, &SyncSettings::default(), "test").unwrap();
    app.set_close_webhook_urls(UrlPolicy {
        allow_insecure_loopback: true,
    });
    let port = free_port();
    let receiver = start_receiver(port, Mode::Answer).await;
    let created = loopback_endpoint(
        &app,
        &testing_policy(),
        &format!("http://127.0.0.1:{port}/hook"),
        None,
        Utc::now(),
    )
    .await;
    let endpoint = created.endpoint.id.clone();
    commit_a_change(&app, "l1").await;
    assert!(receiver.got().is_empty(), "nothing is sent before the end");
    let before = Utc::now();
    drop(app);
    let got = receiver.got();
    assert_eq!(got.len(), 1, "delivered when the command ended");
    assert_eq!(got[0].answered, StatusCode::NO_CONTENT);
    let ts: i64 = got[0].headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let at = DateTime::from_timestamp(ts, 0).unwrap();
    assert!(at >= before - chrono::Duration::seconds(1), "{at} {before}");
    assert_signed(&got[0], created.secret.expose(), at);
    let app = open(dir.path());
    let d = app
        .store
        .list_deliveries(&endpoint, None, 10)
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    assert!(
        matches!(d[0].state, DeliveryState::Delivered { .. }),
        "{:?}",
        d[0].state
    );
}
