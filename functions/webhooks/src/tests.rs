//! Wiring tests of the route function: the signed sample events of events/webhooks/ through
//! `lambda_http`'s own event parser and [`crate::app`] into the hooks router, over the
//! in-memory adapters, with the clock at the samples' signing time. What the route decides is
//! tested in `entra-sync-http` and the core; here, that API Gateway's events, headers and raw
//! bodies reach it intact, for each source. The queue function's batches run on moto in
//! tests/tests/webhooks_lambda.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::DateTime;
use entra_sync_core::memory::{ManualClock, MemoryVault};
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{Secret, SecretVault};
use entra_sync_core::services::webhooks::{ReceiveDeps, WebhookConfig};
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::Processing;
use entra_sync_core::webhooks::endpoint::{
    EndpointKey, WebhookEndpoint, WebhookEndpointStore, secret_name,
};
use entra_sync_core::webhooks::memory::{CollectingDeliveryQueue, MemoryWebhooks};
use entra_sync_core::webhooks::ports::DeliveryStore;
use entra_sync_http::REQUEST_ID_HEADER;
use entra_sync_http::hooks::{HooksState, router};
use tower::ServiceExt;

/// The samples' signing time (scripts/webhook_samples.py).
const SIGNED_AT: i64 = 1_796_115_600;

/// The sample secrets the samples are signed with (published on purpose, never configured).
fn sample_secret(source: Source) -> &'static str {
    match source {
        Source::Standard => "whsec_ZW50cmEtc3luYy1TQU1QTEUtc2VjcmV0LW5vdC1yZWFsISE=",
        Source::BambooHr => "sample-bamboohr-private-key-NOT-REAL",
        Source::HiBob => "sample-hibob-webhook-secret-NOT-REAL",
    }
}

fn sample(name: &str) -> &'static str {
    match name {
        "standard" => include_str!("../../../events/webhooks/standard.json"),
        "tampered" => include_str!("../../../events/webhooks/tampered.json"),
        "bamboohr" => include_str!("../../../events/webhooks/bamboohr.json"),
        "hibob" => include_str!("../../../events/webhooks/hibob.json"),
        _ => include_str!("../../../events/webhooks/sqs.json"),
    }
}

struct World {
    app: axum::Router,
    hooks: Arc<MemoryWebhooks>,
    queue: Arc<CollectingDeliveryQueue>,
}

/// The route function's app, with an endpoint per source on account `acct-1` whose secret
/// is the sample secret.
async fn world() -> World {
    let hooks = Arc::new(MemoryWebhooks::new());
    let vault = Arc::new(MemoryVault::default());
    let queue = Arc::new(CollectingDeliveryQueue::new());
    let now = DateTime::from_timestamp(SIGNED_AT, 0).unwrap();
    for source in Source::ALL {
        let key = EndpointKey {
            account_id: AccountId("acct-1".into()),
            source,
        };
        hooks
            .create_endpoint(&WebhookEndpoint::new(
                key.clone(),
                TenantId::new("7d2c1f0e-0000-4000-8000-000000000001"),
                now,
            ))
            .await
            .unwrap();
        vault
            .put_secret(&secret_name(&key, 1), &Secret::new(sample_secret(source)))
            .await
            .unwrap();
    }
    let deps = ReceiveDeps {
        endpoints: hooks.clone(),
        vault,
        deliveries: hooks.clone(),
        queue: queue.clone(),
        clock: Arc::new(ManualClock::new(now)),
        limits: WebhookConfig::default().limits,
    };
    World {
        app: crate::app(router(HooksState::new(deps))),
        hooks,
        queue,
    }
}

/// An event as `lambda_http` hands it to the function (with its request context).
fn event(name: &str) -> Request<Body> {
    let req = lambda_http::request::from_str(sample(name)).unwrap();
    let (parts, body) = req.into_parts();
    Request::from_parts(parts, Body::from(body.to_vec()))
}

struct Answer {
    status: StatusCode,
    request_id: String,
    body: serde_json::Value,
}

async fn send(w: &World, name: &str) -> Answer {
    let resp = w.app.clone().oneshot(event(name)).await.unwrap();
    let status = resp.status();
    let request_id = resp.headers()[REQUEST_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        request_id,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

fn key(source: Source) -> EndpointKey {
    EndpointKey {
        account_id: AccountId("acct-1".into()),
        source,
    }
}

#[tokio::test]
async fn each_sources_signed_sample_is_accepted_stored_and_queued() {
    let w = world().await;
    for (name, source) in [
        ("standard", Source::Standard),
        ("bamboohr", Source::BambooHr),
        ("hibob", Source::HiBob),
    ] {
        let a = send(&w, name).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{name}: {}", a.body);
        assert_eq!(a.body["status"], "accepted");
        let id = a.body["delivery_id"].as_str().unwrap();
        let stored = w.hooks.get_delivery(&key(source), id).await.unwrap();
        assert_eq!(
            stored.map(|d| d.processing),
            Some(Processing::Queued),
            "{name}"
        );
    }
    assert_eq!(w.queue.len(), 3);
}

#[tokio::test]
async fn the_request_id_is_api_gateways_and_a_resent_sample_is_a_duplicate() {
    let w = world().await;
    let a = send(&w, "standard").await;
    assert_eq!(a.request_id, "Cq7a1Hb9DoEEMaA=");
    assert_eq!(a.body["request_id"], "Cq7a1Hb9DoEEMaA=");
    let again = send(&w, "standard").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(again.body["delivery_id"], a.body["delivery_id"]);
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused_and_nothing_is_queued() {
    let w = world().await;
    let a = send(&w, "tampered").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.body["error"], "invalid_signature");
    assert!(w.queue.is_empty());
    // The refusal is in the delivery log, without the body's content.
    let log = w
        .hooks
        .list_deliveries(&key(Source::Standard), None, 10)
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    assert!(log.items[0].events.is_empty());
}

/// The delivery queue's sample names the delivery the BambooHR sample becomes, so the two
/// samples describe one flow (the queue function runs it on moto).
#[tokio::test]
async fn the_queue_sample_names_the_bamboohr_samples_delivery() {
    let w = world().await;
    let a = send(&w, "bamboohr").await;
    let sqs: serde_json::Value = serde_json::from_str(sample("sqs")).unwrap();
    let body: serde_json::Value =
        serde_json::from_str(sqs["Records"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["delivery_id"], a.body["delivery_id"]);
    let queued = w.queue.drain();
    assert_eq!(serde_json::to_value(&queued[0]).unwrap(), body);
}

/// The queue function's handler on the delivery queue's sample batch: the BambooHR delivery
/// (accepted from its sample first) is processed and acknowledged (Bob is in no directory
/// here, so he is held for review); the malformed message is reported as a batch item failure,
/// so it goes to the dead-letter queue after its receives.
#[tokio::test]
async fn the_queue_sample_is_processed_and_its_malformed_message_fails_alone() {
    use aws_lambda_events::event::sqs::SqsEvent;
    use entra_sync_core::actions::budget::WriteBudget;
    use entra_sync_core::actions::memory::{CollectingActionQueue, MemoryActions, ScanningLookup};
    use entra_sync_core::directory_write::MemoryDirectoryWriter;
    use entra_sync_core::idempotency::IdempotencyConfig;
    use entra_sync_core::memory::MemoryStore;
    use entra_sync_core::memory_idempotency::MemoryIdempotency;
    use entra_sync_core::services::actions::{ActionDeps, ActionsConfig};
    use entra_sync_core::services::claim::Claims;
    use entra_sync_core::services::webhooks::ProcessDeps;
    use entra_sync_core::webhooks::memory::{MemoryHrDirectory, ScanningEmployeeLookup};

    let w = world().await;
    let a = send(&w, "bamboohr").await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let store = Arc::new(MemoryStore::new());
    let actions = Arc::new(MemoryActions::new());
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(SIGNED_AT, 0).unwrap(),
    ));
    let deps = ProcessDeps {
        actions: ActionDeps {
            connections: store.clone(),
            settings: store.clone(),
            mirror: store.clone(),
            cursors: store.clone(),
            lookup: Arc::new(ScanningLookup {
                mirror: store.clone(),
            }),
            actions: actions.clone(),
            workflows: actions,
            queue: Arc::new(CollectingActionQueue::new()),
            writer: Arc::new(MemoryDirectoryWriter::new()),
            claims: Claims::new(
                Arc::new(MemoryIdempotency::new()),
                IdempotencyConfig::default(),
                clock.clone(),
            ),
            budget: Arc::new(WriteBudget::default()),
            clock,
            config: ActionsConfig::default(),
        },
        endpoints: w.hooks.clone(),
        deliveries: w.hooks.clone(),
        reviews: w.hooks.clone(),
        people: w.hooks.clone(),
        employees: Arc::new(ScanningEmployeeLookup { mirror: store }),
        hr_api: Arc::new(MemoryHrDirectory::new()),
        vault: Arc::new(MemoryVault::default()),
    };
    let event: SqsEvent = serde_json::from_str(sample("sqs")).unwrap();
    let r = crate::handler::handle_batch(&deps, event).await;
    let failed: Vec<&str> = r
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["7c1d2e3f-0000-4000-8000-000000000002"]);
    let id = a.body["delivery_id"].as_str().unwrap();
    let d = w
        .hooks
        .get_delivery(&key(Source::BambooHr), id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(d.processing, Processing::Done { .. }),
        "{:?}",
        d.processing
    );
    assert_eq!(d.review_ids.len(), 1, "Bob matches nobody: held for review");
}
