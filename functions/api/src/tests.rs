//! Wiring tests: the sample events of events/api/ through `lambda_http`'s own event parser and
//! [`crate::app`] into the admin API router, on the in-memory adapters. What the routes do is
//! tested in `entra-sync-http`; here, what the function adds: API Gateway's authorizer decides
//! the caller (IAM: every account; a JWT: the account of its claim; none: 401), and its
//! request id is answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration};
use entra_sync_core::error::{DirectoryError, QueueError};
use entra_sync_core::memory::{ManualClock, MemoryStore, MemoryVault};
use entra_sync_core::memory_consent::MemoryConsentStates;
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::ports::{
    ConnectionStore, FetchRequest, FetchRequests, TenantDetails, TenantDirectory,
};
use entra_sync_core::services::sync_now::SyncNowDeps;
use entra_sync_core::services::{ConnectDeps, ProjectDeps};
use entra_sync_http::REQUEST_ID_HEADER;
use entra_sync_http::api::ApiState;
use entra_sync_http::api::auth::ApiKey;
use entra_sync_http::connect::ConnectConfig;
use tower::ServiceExt;
use url::Url;

const TENANT: &str = "6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3";

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

struct NoFetches;

#[async_trait]
impl FetchRequests for NoFetches {
    async fn request_fetches(
        &self,
        _requests: Vec<(FetchRequest, std::time::Duration)>,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

async fn app() -> axum::Router {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_770_113_700, 0).unwrap(),
    ));
    store
        .put_connection(&Connection {
            tenant_id: TenantId::new(TENANT),
            account_id: AccountId("acct-1".into()),
            label: "Contoso HQ".into(),
            tenant_name: Some("Contoso".into()),
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: DateTime::from_timestamp(1_770_000_000, 0).unwrap(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let (_, key) = ApiKey::generate([9; 32]);
    let actions = entra_sync_core::actions::testing::memory_deps(
        &store,
        Arc::new(entra_sync_core::directory_write::MemoryDirectoryWriter::new()),
        Arc::new(entra_sync_core::actions::memory::CollectingActionQueue::new()),
        clock.clone(),
    );
    let state = ApiState {
        connect: ConnectDeps {
            consent_states: Arc::new(MemoryConsentStates::new()),
            connections: store.clone(),
            directory: Arc::new(AnyTenant),
            vault: Arc::new(MemoryVault::default()),
            clock: clock.clone(),
        },
        connect_config: Arc::new(ConnectConfig {
            login_base_url: Url::parse("https://login.microsoftonline.com").unwrap(),
            client_id: "5e1f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3".into(),
            redirect_uri: Some(Url::parse("https://connect.example.com/connect/callback").unwrap()),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: Duration::minutes(10),
            return_url: None,
        }),
        project: ProjectDeps::from_store(&store, clock.clone()),
        sync: SyncNowDeps {
            connections: store.clone(),
            runs: store.clone(),
            requests: Arc::new(NoFetches),
            clock: clock.clone(),
        },
        hr: {
            let (endpoints, process) =
                entra_sync_core::webhooks::memory::memory_hr_deps(&store, actions.clone());
            entra_sync_http::api::hr::HrApi { endpoints, process }
        },
        actions,
        // A local key, which the function must ignore: only API Gateway says who calls.
        outbound: None,
        auth: Arc::new(key),
        console: entra_sync_http::console::ConsoleSessions::in_memory(clock.clone()),
    };
    crate::app(state, crate::DEFAULT_ACCOUNT_CLAIM)
}

fn sample(name: &str) -> &'static str {
    match name {
        "iam" => include_str!("../../../events/api/iam-list-connections.json"),
        "jwt" => include_str!("../../../events/api/jwt-list-connections.json"),
        "jwt-other" => include_str!("../../../events/api/jwt-other-account.json"),
        "none" => include_str!("../../../events/api/no-authorizer.json"),
        _ => include_str!("../../../events/api/health.json"),
    }
}

async fn send(app: &axum::Router, name: &str) -> (StatusCode, String, String) {
    let req = lambda_http::request::from_str(sample(name)).unwrap();
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Body::from(body.to_vec()));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let request_id = resp.headers()[REQUEST_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        request_id,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_authorizer_decides_who_calls_and_sees_what() {
    let app = app().await;
    // IAM: the host product's backend, every account.
    let (status, id, body) = send(&app, "iam").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        id, "Gv3qZkd9HoEEMcB=",
        "API Gateway's request id is answered"
    );
    assert!(body.contains(TENANT), "{body}");
    // A console's JWT: its own account.
    let (status, _, body) = send(&app, "jwt").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(TENANT), "{body}");
    // The same token on another account's path: 404, as for an account that does not exist.
    let (status, _, body) = send(&app, "jwt-other").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.contains(TENANT), "{body}");
    // No authorizer (a route left open by mistake): 401, never data; the local key's
    // scheme does not open it either.
    let (status, id, body) = send(&app, "none").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains(TENANT), "{body}");
    assert!(body.contains(&id), "the one error format: {body}");
    // The health check is public.
    let (status, _, body) = send(&app, "health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A sample event changed to another method, path and query (and, for a page, without the
/// authorizer: the console's routes have none).
fn event(name: &str, method: &str, path: &str, query: &str, cookie: Option<&str>) -> Request<Body> {
    let mut e: serde_json::Value = serde_json::from_str(sample(name)).unwrap();
    e["rawPath"] = path.into();
    e["rawQueryString"] = query.into();
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["path"] = path.into();
    e["headers"]["content-type"] = "application/json".into();
    if let Some(c) = cookie {
        e["headers"]["cookie"] = c.into();
    }
    let req = lambda_http::request::from_str(&e.to_string()).unwrap();
    let (parts, body) = req.into_parts();
    Request::from_parts(parts, Body::from(body.to_vec()))
}

async fn answer(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn an_embedded_console_signs_in_with_a_ticket_its_jwt_got() {
    let app = app().await;
    // The embedded console's JWT (account acct-1) asks for a sign-in address.
    let (status, _, body) = answer(
        &app,
        event(
            "jwt",
            "POST",
            "/v1/accounts/acct-1/console-sessions",
            "",
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let login: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (path, query) = login["login_path"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap();
    // Another account's address with the same token: 404.
    let (status, _, _) = answer(
        &app,
        event(
            "jwt",
            "POST",
            "/v1/accounts/acct-2/console-sessions",
            "",
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The browser opens it (no authorizer on the console's routes): a Secure session cookie.
    let (status, headers, body) = answer(&app, event("none", "GET", path, query, None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap();
    let (status, _, body) = answer(
        &app,
        event("none", "GET", "/console/accounts/acct-1/", "", Some(cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(TENANT), "{body}");
    // The pages' home link (a path `/console/{proxy+}` matches) leads to the account.
    let (status, headers, _) = answer(
        &app,
        event("none", "GET", "/console/home", "", Some(cookie)),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/console/accounts/acct-1/");
    // Without the cookie, a page is the sign-in refusal, never data.
    let (status, _, body) = answer(
        &app,
        event("none", "GET", "/console/accounts/acct-1/", "", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains(TENANT), "{body}");
}
