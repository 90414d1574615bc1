//! Wiring tests: the sample events of events/connect/ through `lambda_http`'s own event parser
//! and [`crate::app`] into the connect router, against hand-written fakes of the ports. What
//! the router does is tested in `entra-sync-http`; here, what the function adds: API Gateway's
//! request id and domain name reach the router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration};
use entra_sync_core::error::DirectoryError;
use entra_sync_core::memory::{ManualClock, MemoryStore, MemoryVault};
use entra_sync_core::memory_consent::MemoryConsentStates;
use entra_sync_core::model::{ConnectionStatus, TenantId};
use entra_sync_core::ports::{ConnectionStore, TenantDetails, TenantDirectory};
use entra_sync_core::services::ConnectDeps;
use entra_sync_http::REQUEST_ID_HEADER;
use entra_sync_http::connect::{CALLBACK_PATH, ConnectConfig, ConnectState, router};
use tower::ServiceExt;
use url::Url;

const TENANT: &str = "6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3";
const API_DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

struct AnyTenant;

#[async_trait]
impl TenantDirectory for AnyTenant {
    async fn tenant_details(&self, tenant: &TenantId) -> Result<TenantDetails, DirectoryError> {
        Ok(TenantDetails {
            tenant_id: tenant.clone(),
            name: Some("Contoso".into()),
            verified_domains: vec![],
        })
    }
    async fn forget_tenant(&self, _tenant: &TenantId) {}
}

struct World {
    app: axum::Router,
    store: Arc<MemoryStore>,
    states: Arc<MemoryConsentStates>,
}

/// The function's app; `redirect_uri` as configured (`None`: the `REDIRECT_URI` variable empty).
fn world(redirect_uri: Option<&str>) -> World {
    let store = Arc::new(MemoryStore::new());
    let states = Arc::new(MemoryConsentStates::new());
    let routes = router(ConnectState {
        deps: ConnectDeps {
            consent_states: states.clone(),
            connections: store.clone(),
            directory: Arc::new(AnyTenant),
            vault: Arc::new(MemoryVault::default()),
            clock: Arc::new(ManualClock::new(
                DateTime::from_timestamp(1_770_113_700, 0).unwrap(),
            )),
        },
        config: Arc::new(ConnectConfig {
            login_base_url: Url::parse("https://login.microsoftonline.com").unwrap(),
            client_id: "5e1f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3".into(),
            redirect_uri: redirect_uri.map(|u| Url::parse(u).unwrap()),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: Duration::minutes(10),
            return_url: None,
        }),
    });
    World {
        app: crate::app(routes),
        store,
        states,
    }
}

fn sample(name: &str) -> &'static str {
    match name {
        "happy" => include_str!("../../../events/connect/happy.json"),
        "callback" => include_str!("../../../events/connect/callback.json"),
        "malformed" => include_str!("../../../events/connect/malformed.json"),
        _ => include_str!("../../../events/connect/edge.json"),
    }
}

/// An event as `lambda_http` hands it to the function (with its request context).
fn event_text(text: &str) -> Request<Body> {
    let req = lambda_http::request::from_str(text).unwrap();
    let (parts, body) = req.into_parts();
    Request::from_parts(parts, Body::from(body.to_vec()))
}

fn event(name: &str, state: &str) -> Request<Body> {
    event_text(&sample(name).replace("STATE", state))
}

struct Answer {
    status: StatusCode,
    request_id: String,
    body: String,
}

async fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
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
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The redirect URI in the consent URL of a start answer, and the state.
fn consent(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let url = Url::parse(v["consent_url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    (q["redirect_uri"].clone(), q["state"].clone())
}

#[tokio::test]
async fn sample_events_connect_the_tenant_through_the_wiring() {
    let w = world(Some(&format!("https://{API_DOMAIN}{CALLBACK_PATH}")));
    let a = send(&w.app, event("happy", "")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let (_, state) = consent(&a.body);
    let a = send(&w.app, event("callback", &state)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let c = w
        .store
        .get_connection(&TenantId::new(TENANT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ConnectionStatus::Connected);
    assert_eq!(c.label, "Contoso HQ");
}

#[tokio::test]
async fn the_request_id_is_api_gateways() {
    let w = world(Some(&format!("https://{API_DOMAIN}{CALLBACK_PATH}")));
    let a = send(&w.app, event("happy", "")).await;
    assert_eq!(a.request_id, "Fq1pYjd8DoEEMbA=");
    // In the error body too, and over a client's own x-request-id header.
    let mut req = event("malformed", "");
    req.headers_mut()
        .insert(REQUEST_ID_HEADER, "client-chosen".parse().unwrap());
    let a = send(&w.app, req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["request_id"], "Fq1rBmX4DoEEMcQ=");
    assert_eq!(a.request_id, "Fq1rBmX4DoEEMcQ=");
    // The HTML page shows it as well.
    let a = send(&w.app, event("edge", "unknown-state")).await;
    assert!(
        a.body.contains("5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn without_a_configured_redirect_uri_the_callback_url_is_the_apis_domain() {
    let w = world(None);
    let a = send(&w.app, event("happy", "")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let (redirect, state) = consent(&a.body);
    assert_eq!(redirect, format!("https://{API_DOMAIN}/connect/callback"));
    // The callback is served on that path.
    let a = send(&w.app, event("callback", &state)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // A reconnect derives the same URL.
    let reconnect = sample("happy")
        .replace(
            "/accounts/acct-1/connections/start",
            &format!("/accounts/acct-1/connections/{TENANT}/reconnect"),
        )
        .replace(r#""body": "{\"label\":\"Contoso HQ\"}""#, r#""body": """#)
        .replace(r#""content-length": "22""#, r#""content-length": "0""#);
    let a = send(&w.app, event_text(&reconnect)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        consent(&a.body).0,
        format!("https://{API_DOMAIN}/connect/callback")
    );
}

#[tokio::test]
async fn without_a_redirect_uri_or_a_domain_the_start_fails_and_stores_nothing() {
    let w = world(None);
    let text = sample("happy").replace(&format!(r#""domainName": "{API_DOMAIN}","#), "");
    assert!(!text.contains("domainName"));
    let a = send(&w.app, event_text(&text)).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["error"], "internal");
    assert!(w.states.is_empty());
    // The Host header is the client's: it never becomes the callback URL.
    assert!(!a.body.contains(API_DOMAIN));
}
