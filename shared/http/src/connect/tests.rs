//! Route tests: the sample events of events/connect/ (API Gateway HTTP API requests) as plain
//! HTTP requests into the router, against hand-written fakes of the ports. The connect
//! function's own tests feed the same events through `lambda_http`'s parser and its wiring.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Duration};
use entra_sync_core::error::DirectoryError;
use entra_sync_core::memory::{ManualClock, MemoryStore, MemoryVault};
use entra_sync_core::memory_consent::MemoryConsentStates;
use entra_sync_core::model::{ConnectionStatus, TenantId, VerifiedDomain};
use entra_sync_core::ports::{ConnectionStore, TenantDetails, TenantDirectory};
use entra_sync_core::services::ConnectDeps;
use tower::ServiceExt;
use url::Url;

use super::parse::MAX_BODY_BYTES;
use super::{ConnectConfig, ConnectState, router};
use crate::RequestDomain;

const TENANT: &str = "6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3";

/// A directory that knows one tenant, or fails with a scripted error.
struct FakeDirectory {
    fail: Mutex<Option<DirectoryError>>,
    forgotten: Mutex<Vec<TenantId>>,
}

#[async_trait]
impl TenantDirectory for FakeDirectory {
    async fn tenant_details(&self, tenant: &TenantId) -> Result<TenantDetails, DirectoryError> {
        if let Some(e) = self.fail.lock().unwrap().take() {
            return Err(e);
        }
        Ok(TenantDetails {
            tenant_id: tenant.clone(),
            name: Some("Contoso".into()),
            verified_domains: vec![VerifiedDomain {
                name: "contoso.onmicrosoft.com".into(),
                is_default: true,
                is_initial: true,
            }],
        })
    }
    async fn forget_tenant(&self, tenant: &TenantId) {
        self.forgotten.lock().unwrap().push(tenant.clone());
    }
}

struct World {
    app: axum::Router,
    store: Arc<MemoryStore>,
    states: Arc<MemoryConsentStates>,
    directory: Arc<FakeDirectory>,
}

const CALLBACK_URL: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/connect/callback";

fn world() -> World {
    world_with(Some(CALLBACK_URL))
}

/// The router with this redirect URI configured (`None`: derived per request).
fn world_with(redirect_uri: Option<&str>) -> World {
    let store = Arc::new(MemoryStore::new());
    let states = Arc::new(MemoryConsentStates::new());
    let directory = Arc::new(FakeDirectory {
        fail: Mutex::new(None),
        forgotten: Mutex::new(Vec::new()),
    });
    let app = router(ConnectState {
        deps: ConnectDeps {
            consent_states: states.clone(),
            connections: store.clone(),
            directory: directory.clone(),
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
        app,
        store,
        states,
        directory,
    }
}

/// A sample API Gateway event as the HTTP request it describes (method, raw path and query,
/// headers, body), with `STATE` replaced.
fn event(name: &str, state: &str) -> Request<Body> {
    let text = match name {
        "happy" => include_str!("../../../../events/connect/happy.json"),
        "callback" => include_str!("../../../../events/connect/callback.json"),
        "malformed" => include_str!("../../../../events/connect/malformed.json"),
        _ => include_str!("../../../../events/connect/edge.json"),
    };
    let v: serde_json::Value = serde_json::from_str(&text.replace("STATE", state)).unwrap();
    let query = v["rawQueryString"].as_str().unwrap_or("");
    let uri = match query {
        "" => v["rawPath"].as_str().unwrap().to_owned(),
        q => format!("{}?{q}", v["rawPath"].as_str().unwrap()),
    };
    let mut req = Request::builder()
        .method(v["requestContext"]["http"]["method"].as_str().unwrap())
        .uri(uri);
    for (name, value) in v["headers"].as_object().unwrap() {
        req = req.header(name, value.as_str().unwrap());
    }
    let body = match v["body"].as_str() {
        None => Vec::new(),
        Some(b) if v["isBase64Encoded"] == true => BASE64.decode(b).unwrap(),
        Some(b) => b.as_bytes().to_vec(),
    };
    req.body(Body::from(body)).unwrap()
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Start through the happy sample and return the state of the consent URL it answered.
async fn started(w: &World) -> String {
    let (status, body) = send(&w.app, event("happy", "")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = Url::parse(v["consent_url"].as_str().unwrap()).unwrap();
    assert_eq!(url.host_str(), Some("login.microsoftonline.com"));
    assert_eq!(url.path(), "/organizations/v2.0/adminconsent");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q["redirect_uri"],
        "https://abc123.execute-api.eu-west-1.amazonaws.com/connect/callback"
    );
    q["state"].clone()
}

#[tokio::test]
async fn start_then_callback_sample_connects_the_tenant_with_its_label() {
    let w = world();
    let state = started(&w).await;
    assert_eq!(w.states.len(), 1);
    let (status, body) = send(&w.app, event("callback", &state)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Directory connected"));
    assert!(body.contains("Contoso HQ"));
    assert!(!body.contains(&state), "the page never echoes the state");
    let c = w
        .store
        .get_connection(&TenantId::new(TENANT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ConnectionStatus::Connected);
    assert_eq!(c.label, "Contoso HQ");
    assert_eq!(c.account_id.0, "acct-1");
    assert!(w.states.is_empty(), "the state was consumed");

    // The same callback again (a replay) is refused and changes nothing.
    let (status, body) = send(&w.app, event("callback", &state)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("already used"));
}

#[tokio::test]
async fn malformed_start_body_is_a_400_with_a_request_id_and_stores_nothing() {
    let w = world();
    let (status, body) = send(&w.app, event("malformed", "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert!(v["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(w.states.is_empty());
}

#[tokio::test]
async fn denied_callback_with_admin_consent_true_is_mapped_and_nothing_is_stored() {
    let w = world();
    let state = started(&w).await;
    let (status, body) = send(&w.app, event("edge", &state)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("declined"), "{body}");
    assert!(body.contains("consent_declined"));
    assert!(w.store.list_connections().await.unwrap().is_empty());
    assert!(
        w.states.is_empty(),
        "a failed consent still uses up its state"
    );
}

#[tokio::test]
async fn missing_permission_is_named_on_the_page() {
    let w = world();
    *w.directory.fail.lock().unwrap() = Some(DirectoryError::InsufficientPrivileges {
        permission: Some("Organization.Read.All".into()),
    });
    let state = started(&w).await;
    let (status, body) = send(&w.app, event("callback", &state)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Organization.Read.All"));
    assert!(w.store.list_connections().await.unwrap().is_empty());
}

#[tokio::test]
async fn other_accounts_connections_are_not_found_and_disconnect_forgets_tokens() {
    let w = world();
    let state = started(&w).await;
    send(&w.app, event("callback", &state)).await;
    let get = |uri: String| Request::get(uri).body(Body::empty()).unwrap();
    let (status, body) = send(&w.app, get("/accounts/acct-2/connections".into())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"connections":[]}"#);
    let (status, _) = send(
        &w.app,
        get(format!("/accounts/acct-2/connections/{TENANT}")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let post = |uri: String| {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::empty())
            .unwrap()
    };
    let (status, _) = send(
        &w.app,
        post(format!("/accounts/acct-2/connections/{TENANT}/disconnect")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(w.directory.forgotten.lock().unwrap().is_empty());

    let (status, body) = send(
        &w.app,
        post(format!("/accounts/acct-1/connections/{TENANT}/disconnect")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"]["status"], "disconnected");
    assert!(v["tenant_name"].is_null());
    assert_eq!(
        w.directory.forgotten.lock().unwrap().as_slice(),
        &[TenantId::new(TENANT)]
    );
}

fn start_request(content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut req = Request::post("/accounts/acct-1/connections/start");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

fn error_of(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    assert!(v["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    v
}

#[tokio::test]
async fn a_start_that_is_not_json_is_a_415_and_starts_nothing() {
    let w = world();
    // What a form or a fetch() from any web page can send without a CORS preflight.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (status, body) = send(&w.app, start_request(ct, r#"{"label":"CSRF"}"#)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {body}");
        assert_eq!(error_of(&body)["error"], "unsupported_media_type");
    }
    assert!(w.states.is_empty(), "no consent was started");

    // Disconnect and reconnect (no body needed) are refused the same way.
    let state = started(&w).await;
    send(&w.app, event("callback", &state)).await;
    for action in ["disconnect", "reconnect"] {
        let req = Request::post(format!("/accounts/acct-1/connections/{TENANT}/{action}"))
            .header("content-type", "text/plain")
            .body(Body::empty())
            .unwrap();
        let (status, _) = send(&w.app, req).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{action}");
    }
    let c = w
        .store
        .get_connection(&TenantId::new(TENANT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ConnectionStatus::Connected);
    assert!(w.states.is_empty());
    assert!(w.directory.forgotten.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_body_error_names_the_field() {
    let w = world();
    let (status, body) = send(
        &w.app,
        start_request(Some("application/json"), r#"{"label": 5}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v = error_of(&body);
    assert_eq!(v["error"], "invalid_request");
    assert_eq!(
        v["message"],
        "The request body is not valid: label: invalid type: integer, expected a string."
    );
}

#[tokio::test]
async fn a_body_over_4_kib_is_a_413_in_the_error_format() {
    let w = world();
    let big = format!(r#"{{"label":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    let (status, body) = send(&w.app, start_request(Some("application/json"), &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_of(&body)["error"], "payload_too_large");
    assert!(w.states.is_empty());
}

#[tokio::test]
async fn errors_of_every_kind_carry_the_callers_request_id() {
    let w = world();
    let with_id = |req: Request<Body>| {
        let (mut parts, body) = req.into_parts();
        parts
            .headers
            .insert("x-request-id", "host-req-42".parse().unwrap());
        Request::from_parts(parts, body)
    };
    for req in [
        event("malformed", ""),
        Request::get("/accounts/acct-1/nothing")
            .body(Body::empty())
            .unwrap(),
        Request::delete("/accounts/acct-1/connections")
            .body(Body::empty())
            .unwrap(),
        Request::get(format!("/accounts/acct-1/connections/{TENANT}"))
            .body(Body::empty())
            .unwrap(),
    ] {
        let resp = w.app.clone().oneshot(with_id(req)).await.unwrap();
        assert_eq!(resp.headers()["x-request-id"], "host-req-42");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v = error_of(std::str::from_utf8(&bytes).unwrap());
        assert_eq!(v["request_id"], "host-req-42", "{v}");
    }
    // The callback's HTML page shows it.
    let (status, body) = send(&w.app, with_id(event("callback", "forged"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Request id: host-req-42"), "{body}");
}

#[tokio::test]
async fn the_callback_page_has_the_security_headers() {
    let w = world();
    let resp = w
        .app
        .clone()
        .oneshot(event("callback", "forged"))
        .await
        .unwrap();
    let h = resp.headers();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
}

#[tokio::test]
async fn without_a_configured_redirect_uri_the_consent_url_carries_the_requests_domain() {
    let w = world_with(None);
    let mut req = event("happy", "");
    req.extensions_mut()
        .insert(RequestDomain::new("connect.example.org").unwrap());
    let (status, body) = send(&w.app, req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = Url::parse(v["consent_url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q["redirect_uri"],
        "https://connect.example.org/connect/callback"
    );
    // The callback is served on the constant path.
    let (status, body) = send(&w.app, event("callback", &q["state"])).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // No domain (and the Host header does not count): 500, nothing stored.
    let (status, body) = send(&w.app, event("happy", "")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(error_of(&body)["error"], "internal");
    assert!(w.states.is_empty());
}
