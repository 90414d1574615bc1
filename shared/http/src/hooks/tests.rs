//! Route tests: signed requests built with each provider's scheme, sent through the stack with
//! `oneshot`, against the in-memory webhook adapters. The answers are the receive service's
//! decisions; these tests check that the route hands over the raw body and headers untouched
//! and renders every answer in the one format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use entra_sync_core::memory::{ManualClock, MemoryVault};
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{Clock, Secret, SecretVault};
use entra_sync_core::services::webhooks::ReceiveDeps;
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::Outcome;
use entra_sync_core::webhooks::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use entra_sync_core::webhooks::memory::{CollectingDeliveryQueue, MemoryWebhooks};
use entra_sync_core::webhooks::verify::{SigningKey, sign};
use tower::ServiceExt;

use super::{HooksState, MAX_BODY_BYTES, router};

const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BAMBOO_KEY: &str = "bamboo-private-key-0123456789";
const BOB_KEY: &str = "hibob-secret-0123456789";

struct World {
    app: axum::Router,
    hooks: Arc<MemoryWebhooks>,
    queue: Arc<CollectingDeliveryQueue>,
    clock: Arc<ManualClock>,
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

async fn endpoint(
    hooks: &MemoryWebhooks,
    vault: &MemoryVault,
    account: &str,
    source: Source,
    secret: &str,
) -> WebhookEndpoint {
    let key = EndpointKey {
        account_id: AccountId(account.into()),
        source,
    };
    let e = WebhookEndpoint::new(key, TenantId::new(format!("t-{account}")), now());
    vault
        .put_secret(&e.secrets[0].name, &Secret::new(secret))
        .await
        .unwrap();
    assert!(hooks.create_endpoint(&e).await.unwrap().is_none());
    e
}

async fn world() -> World {
    let hooks = Arc::new(MemoryWebhooks::new());
    let vault = Arc::new(MemoryVault::default());
    let queue = Arc::new(CollectingDeliveryQueue::new());
    let clock = Arc::new(ManualClock::new(now()));
    endpoint(&hooks, &vault, "acct-a", Source::Standard, STD_SECRET).await;
    endpoint(&hooks, &vault, "acct-a", Source::BambooHr, BAMBOO_KEY).await;
    endpoint(&hooks, &vault, "acct-a", Source::HiBob, BOB_KEY).await;
    endpoint(
        &hooks,
        &vault,
        "acct-b",
        Source::Standard,
        "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
    )
    .await;
    let app = router(HooksState::new(ReceiveDeps {
        endpoints: hooks.clone(),
        vault,
        deliveries: hooks.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
        limits: Default::default(),
    }));
    World {
        app,
        hooks,
        queue,
        clock,
    }
}

const HIRE: &str = r#"{"type":"hire","data":{"employee_id":"E100","work_email":"ann@contoso.com","start_date":"2026-12-14","department":"Sales"}}"#;
const BAMBOO_TERMINATION: &str = r#"{"employees":[{"id":"123","action":"Updated","changedFields":["Termination Date"],"fields":{"Employee #":"E100","Work Email":"ann@contoso.com","Termination Date":"2026-12-20"}}]}"#;
const BOB_LEFT: &str = r#"{"companyId":636192,"type":"employee.left","triggeredBy":"system","triggeredAt":"2026-12-01T08:59:00","version":"v2","data":{"employeeId":"3332883854254932743"}}"#;

fn key(source: Source, secret: &str) -> SigningKey {
    SigningKey::from_secret(source, secret).unwrap()
}

fn standard(path: &str, secret: &str, id: &str, ts: i64, body: &str) -> Request<Body> {
    let sig = sign::standard(&key(Source::Standard, secret), id, ts, body.as_bytes());
    Request::post(path)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn bamboo(ts: i64, body: &str) -> Request<Body> {
    let sig = sign::bamboohr(&key(Source::BambooHr, BAMBOO_KEY), ts, body.as_bytes());
    Request::post("/hooks/acct-a/bamboohr")
        .header("content-type", "application/json; charset=utf-8")
        .header("x-bamboohr-timestamp", ts.to_string())
        .header("x-bamboohr-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn bob(body: &str) -> Request<Body> {
    let sig = sign::hibob(&key(Source::HiBob, BOB_KEY), body.as_bytes());
    Request::post("/hooks/acct-a/hibob")
        .header("content-type", "application/json")
        .header("bob-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn send(w: &World, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = w.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    assert_eq!(ct.as_deref(), Some("application/json"));
    (status, json)
}

/// The one error format: exactly `error`, `message`, `request_id`.
fn assert_error(body: &serde_json::Value, code: &str) {
    let o = body.as_object().unwrap();
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["error", "message", "request_id"], "{body}");
    assert_eq!(o["error"], code, "{body}");
    assert!(!o["request_id"].as_str().unwrap().is_empty());
}

fn ts(w: &World) -> i64 {
    w.clock.now().timestamp()
}

#[tokio::test]
async fn a_signed_standard_delivery_is_stored_and_queued_before_the_202() {
    let w = world().await;
    let req = standard("/hooks/acct-a/standard", STD_SECRET, "msg_1", ts(&w), HIRE);
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");
    let id = body["delivery_id"].as_str().unwrap();
    let stored = w.hooks.all_deliveries();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id);
    assert_eq!(stored[0].outcome, Outcome::Accepted);
    assert_eq!(w.queue.drain().len(), 1);
}

#[tokio::test]
async fn each_scheme_verifies_over_the_raw_body() {
    let w = world().await;
    let (status, body) = send(&w, bamboo(ts(&w), BAMBOO_TERMINATION)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = send(&w, bob(BOB_LEFT)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(w.queue.drain().len(), 2);
}

#[tokio::test]
async fn a_retry_is_a_duplicate_answered_200_and_queued_nothing_new() {
    let w = world().await;
    let t = ts(&w);
    let (first, _) = send(&w, bamboo(t, BAMBOO_TERMINATION)).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    w.queue.drain();
    let (status, body) = send(&w, bamboo(t + 30, BAMBOO_TERMINATION)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "duplicate");
    // The first one is still queued (not yet processed), so the retry queues it again; the
    // processor is idempotent. What matters is that no second delivery is stored as accepted.
    let accepted = w
        .hooks
        .all_deliveries()
        .into_iter()
        .filter(|d| d.outcome == Outcome::Accepted)
        .count();
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_tampered_body_or_a_wrong_secret_is_401_in_the_error_format() {
    let w = world().await;
    let t = ts(&w);
    let mut req = standard("/hooks/acct-a/standard", STD_SECRET, "msg_2", t, HIRE);
    *req.body_mut() = Body::from(HIRE.replace("E100", "E101"));
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_signature");

    let other = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let (status, body) = send(
        &w,
        standard("/hooks/acct-a/standard", other, "msg_3", t, HIRE),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "account B's secret on A");
    assert_error(&body, "invalid_signature");
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn a_secret_of_account_a_never_verifies_on_account_b() {
    let w = world().await;
    let req = standard("/hooks/acct-b/standard", STD_SECRET, "msg_4", ts(&w), HIRE);
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_signature");
}

#[tokio::test]
async fn an_old_timestamp_is_401() {
    let w = world().await;
    let old = ts(&w) - 600;
    let (status, body) = send(&w, bamboo(old, BAMBOO_TERMINATION)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_signature");
}

#[tokio::test]
async fn unknown_account_unknown_source_and_disabled_endpoint_are_the_same_404() {
    let w = world().await;
    let t = ts(&w);
    let mut answers = Vec::new();
    for path in [
        "/hooks/acct-zzz/standard",
        "/hooks/acct-a/workday",
        "/hooks/acct-a/Standard",
    ] {
        let (status, body) = send(&w, standard(path, STD_SECRET, "msg_5", t, HIRE)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_error(&body, "not_found");
        answers.push(body["message"].clone());
    }
    let k = EndpointKey {
        account_id: AccountId("acct-a".into()),
        source: Source::Standard,
    };
    let mut e = w.hooks.get_endpoint(&k).await.unwrap().unwrap();
    e.enabled = false;
    e.rev = 1;
    w.hooks.update_endpoint(&e, 0).await.unwrap();
    let req = standard("/hooks/acct-a/standard", STD_SECRET, "msg_5", t, HIRE);
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    assert_eq!(
        body["message"], answers[0],
        "no hint that the account exists"
    );
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn a_payload_that_does_not_fit_is_400_naming_the_field() {
    let w = world().await;
    let body = r#"{"type":"hire","data":{"employee_id":"E100"}}"#;
    let req = standard("/hooks/acct-a/standard", STD_SECRET, "msg_6", ts(&w), body);
    let (status, answer) = send(&w, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&answer, "invalid_payload");
    assert!(
        answer["message"].as_str().unwrap().contains("start_date"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_form_post_is_415() {
    let w = world().await;
    let mut req = bamboo(ts(&w), BAMBOO_TERMINATION);
    req.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_with_or_without_a_length() {
    let w = world().await;
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    let (status, body) = send(&w, bob(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    // Streamed without Content-Length.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(big.clone())];
    let mut req = bob(&big);
    *req.body_mut() = Body::from_stream(futures::stream::iter(chunks));
    req.headers_mut().remove("content-length");
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
}

#[tokio::test]
async fn a_hibob_ping_is_answered_200_even_unsigned_and_stores_nothing() {
    let w = world().await;
    let req = Request::post("/hooks/acct-a/hibob")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"text": "Ping test"}"#))
        .unwrap();
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ping");
    assert!(w.hooks.all_deliveries().is_empty());
}

#[tokio::test]
async fn only_post_is_allowed() {
    let w = world().await;
    let req = Request::get("/hooks/acct-a/standard")
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&w, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
}

#[tokio::test]
async fn concurrent_duplicate_deliveries_store_one_accepted_delivery() {
    let w = world().await;
    let t = ts(&w);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = w.app.clone();
        let req = standard("/hooks/acct-a/standard", STD_SECRET, "msg_same", t, HIRE);
        tasks.push(tokio::spawn(async move {
            app.oneshot(req).await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| s.is_success()));
    let stored = w
        .hooks
        .all_deliveries()
        .into_iter()
        .filter(|d| d.outcome == Outcome::Accepted)
        .count();
    assert_eq!(stored, 1);
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("webhook-id".to_owned()),
            Just("webhook-timestamp".to_owned()),
            Just("webhook-signature".to_owned()),
            Just("x-bamboohr-signature".to_owned()),
            Just("x-bamboohr-timestamp".to_owned()),
            Just("bob-signature".to_owned()),
            Just("content-type".to_owned()),
            "[a-z][a-z0-9-]{0,20}",
        ]
    }

    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"application/json".to_vec()),
            Just(b"v1,AAAA v1,".to_vec()),
            "[ -~]{0,80}".prop_map(String::into_bytes),
            proptest::collection::vec(32u8..=255, 0..40),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(HIRE.as_bytes().to_vec()),
            Just(BAMBOO_TERMINATION.as_bytes().to_vec()),
            Just(BOB_LEFT.as_bytes().to_vec()),
            Just(br#"{"text": "Ping test"}"#.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..512),
            "[{}\\[\\]\":,a-z0-9 ]{0,200}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the headers and the body, the route answers a 4xx in the error format
        /// (or 200 for a ping) and never panics, never accepts anything unsigned, and
        /// stores no accepted delivery.
        #[test]
        fn arbitrary_headers_and_bodies_get_only_4xx_in_the_error_format(
            source in prop_oneof![Just("standard"), Just("bamboohr"), Just("hibob"), Just("x")],
            headers in proptest::collection::vec((header_name(), header_value()), 0..8),
            body in body(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let w = world().await;
                let mut req = Request::post(format!("/hooks/acct-a/{source}"));
                for (name, value) in &headers {
                    if let Ok(v) = axum::http::HeaderValue::from_bytes(value) {
                        req = req.header(name.as_str(), v);
                    }
                }
                let req = req.body(Body::from(body.clone())).unwrap();
                let res = w.app.clone().oneshot(req).await.unwrap();
                let status = res.status();
                let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                if status == StatusCode::OK {
                    assert_eq!(json["status"], "ping", "{json}");
                } else {
                    assert!(status.is_client_error(), "{status} {json}");
                    assert_error(&json, json["error"].as_str().unwrap());
                }
                assert!(
                    w.hooks.all_deliveries().iter().all(|d| d.outcome != Outcome::Accepted),
                    "nothing unsigned is accepted"
                );
                assert!(w.queue.is_empty());
            });
        }
    }
}
