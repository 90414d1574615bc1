//! Route tests of the admin API on the in-memory ports. Every answer a test receives is checked
//! against the OpenAPI document: its status must be documented for the route, and its JSON body
//! must validate against the schema documented for that status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration};
use entra_sync_core::actions::ActionKind;
use entra_sync_core::actions::memory::CollectingActionQueue;
use entra_sync_core::actions::testing::memory_deps;
use entra_sync_core::directory_write::GroupTraits;
use entra_sync_core::directory_write::MemoryDirectoryWriter;
use entra_sync_core::error::DirectoryError;
use entra_sync_core::memory::{CollectingFetchRequests, ManualClock, MemoryStore, MemoryVault};
use entra_sync_core::memory_consent::MemoryConsentStates;
use entra_sync_core::memory_outbound::MemoryOutboundStore;
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryGroup, DirectoryUser, Presence, StoredGroup,
    StoredUser, TenantId, VerifiedDomain, Version,
};
use entra_sync_core::outbound::ports::{HostResolver, OutboundStore, ResolveError};
use entra_sync_core::outbound::ssrf::UrlPolicy;
use entra_sync_core::outbound::{DeliveryState, OutboundEndpoint, OutboundPolicy};
use entra_sync_core::ports::{
    ConnectionStore, LocalUserStore, MirrorStore, RunStore, SettingsStore, TenantDetails,
    TenantDirectory,
};
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_core::run::{BreakerHold, RunUpdate, SyncRun, Trigger};
use entra_sync_core::services::actions::{ActionDeps, handle_action_message};
use entra_sync_core::services::sync_now::SyncNowDeps;
use entra_sync_core::services::{ConnectDeps, ProjectDeps};
use entra_sync_core::webhooks::memory::memory_hr_deps;
use serde_json::{Value, json};
use tower::ServiceExt;
use url::Url;

use super::auth::{ApiKey, Authenticator, Caller, PlatformCaller};
use super::{ApiState, RouteSpec, document, route_specs, router};
use crate::connect::ConnectConfig;

const TENANT: &str = "6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3";
const OTHER_TENANT: &str = "7a1b2c3d-3b8d-4d2e-9a6f-0c4b7d21e9a3";
const ACCOUNT: &str = "acct-1";

struct FakeDirectory;

#[async_trait]
impl TenantDirectory for FakeDirectory {
    async fn tenant_details(&self, tenant: &TenantId) -> Result<TenantDetails, DirectoryError> {
        Ok(TenantDetails {
            tenant_id: tenant.clone(),
            name: Some("Contoso".into()),
            verified_domains: Vec::new(),
        })
    }
    async fn forget_tenant(&self, _tenant: &TenantId) {}
}

struct World {
    app: axum::Router,
    store: Arc<MemoryStore>,
    outbound: Arc<MemoryOutboundStore>,
    requests: Arc<CollectingFetchRequests>,
    writer: Arc<MemoryDirectoryWriter>,
    queue: Arc<CollectingActionQueue>,
    actions: ActionDeps,
    key: String,
    doc: Value,
}

fn t0() -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_770_113_700, 0).unwrap()
}

fn connection(account: &str, tenant: &str) -> Connection {
    Connection {
        tenant_id: TenantId::new(tenant),
        account_id: AccountId(account.into()),
        label: "Contoso".into(),
        tenant_name: Some("Contoso Ltd".into()),
        verified_domains: vec![VerifiedDomain {
            name: "contoso.com".into(),
            is_default: true,
            is_initial: false,
        }],
        status: ConnectionStatus::Connected,
        connected_at: t0(),
        granted_permissions: Default::default(),
    }
}

fn user(i: usize) -> StoredUser {
    StoredUser {
        user: DirectoryUser {
            id: format!("u{i:03}"),
            display_name: Some(format!("User {i}")),
            mail: Some(format!("user{i}@contoso.com")),
            department: Some(["Sales", "Engineering"][i % 2].into()),
            account_enabled: Some(i % 4 != 3),
            ..DirectoryUser::default()
        },
        presence: Presence::Present,
        version: Version::new(1, 0),
    }
}

async fn world_with(auth: Option<Arc<dyn Authenticator>>) -> World {
    world_full(auth, Some(UrlPolicy::default())).await
}

/// Names the outbound webhook tests use: one public, one private.
struct FakeResolver;

#[async_trait]
impl HostResolver for FakeResolver {
    async fn resolve(&self, host: &str, _port: u16) -> Result<Vec<IpAddr>, ResolveError> {
        match host {
            "hooks.example.com" => Ok(vec![IpAddr::from([93, 184, 216, 34])]),
            "internal.example.com" => Ok(vec![IpAddr::from([10, 0, 0, 5])]),
            _ => Err(ResolveError {
                host: host.to_owned(),
                source: None,
            }),
        }
    }
}

/// `outbound`: the URL policy of the outbound webhook routes, or `None` for none wired (501).
async fn world_full(auth: Option<Arc<dyn Authenticator>>, outbound: Option<UrlPolicy>) -> World {
    let outbound_store = Arc::new(MemoryOutboundStore::new());
    let store = Arc::new(MemoryStore::new());
    let requests = Arc::new(CollectingFetchRequests::default());
    let clock = Arc::new(ManualClock::new(t0()));
    let (key, api_key) = ApiKey::generate([3; 32]);
    let auth = auth.unwrap_or_else(|| Arc::new(api_key));
    let writer = Arc::new(MemoryDirectoryWriter::new());
    let queue = Arc::new(CollectingActionQueue::new());
    let actions = memory_deps(&store, writer.clone(), queue.clone(), clock.clone());
    store
        .put_connection(&connection(ACCOUNT, TENANT))
        .await
        .unwrap();
    store
        .put_connection(&connection("acct-2", OTHER_TENANT))
        .await
        .unwrap();
    let t = TenantId::new(TENANT);
    let users: Vec<StoredUser> = (0..12).map(user).collect();
    store.put_users(&t, &users).await.unwrap();
    let state = ApiState {
        connect: ConnectDeps {
            consent_states: Arc::new(MemoryConsentStates::new()),
            connections: store.clone(),
            directory: Arc::new(FakeDirectory),
            vault: Arc::new(MemoryVault::default()),
            clock: clock.clone(),
        },
        connect_config: Arc::new(ConnectConfig {
            login_base_url: Url::parse("https://login.microsoftonline.com").unwrap(),
            client_id: "5e1f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3".into(),
            redirect_uri: Some(Url::parse("https://api.example.com/connect/callback").unwrap()),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: Duration::minutes(10),
            return_url: None,
        }),
        project: ProjectDeps::from_store(&store, clock.clone()),
        sync: SyncNowDeps {
            connections: store.clone(),
            runs: store.clone(),
            requests: requests.clone(),
            clock: clock.clone(),
        },
        hr: {
            let (endpoints, process) = memory_hr_deps(&store, actions.clone());
            super::hr::HrApi { endpoints, process }
        },
        actions: actions.clone(),
        outbound: outbound.map(|urls| super::outbound::OutboundApi {
            store: outbound_store.clone(),
            vault: Arc::new(MemoryVault::default()),
            resolver: Arc::new(FakeResolver),
            policy: OutboundPolicy {
                urls,
                ..Default::default()
            },
            clock: clock.clone(),
        }),
        auth,
        console: crate::console::ConsoleSessions::in_memory(clock.clone()),
    };
    World {
        app: router(state),
        store,
        outbound: outbound_store,
        requests,
        writer,
        queue,
        actions,
        key,
        doc: serde_json::from_str(document()).unwrap(),
    }
}

async fn world() -> World {
    world_with(None).await
}

/// The route template of a concrete path (the table's, for `method`).
fn template(method: &str, path: &str) -> Option<RouteSpec> {
    let segments: Vec<&str> = path.split('/').collect();
    route_specs()
        .into_iter()
        .filter(|s| s.method == method)
        .filter(|s| {
            let t: Vec<&str> = s.path.split('/').collect();
            t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(t, p)| t.starts_with('{') || t == p)
        })
        .max_by_key(|s| s.path.split('/').filter(|t| !t.starts_with('{')).count())
}

/// Check an answer against the document: status documented, body valid against its schema.
fn check_against_document(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let Some(spec) = template(method, path) else {
        // Not an API route (the stack's 404): the one error format.
        assert!(
            body["error"].is_string() && body["request_id"].is_string(),
            "{body}"
        );
        return;
    };
    let op = &doc["paths"][spec.path][method.to_lowercase()];
    let answer = &op["responses"][status.as_str()];
    assert!(
        answer.is_object(),
        "{method} {} answered {status}, which the document does not list",
        spec.path
    );
    let schema = &answer["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {} {status}: no JSON schema",
        spec.path
    );
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{method} {} {status}: the answer does not match its schema: {errors:?}\n{body}",
        spec.path
    );
}

impl World {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        check_against_document(&self.doc, &method, &path, status, &body);
        (status, body, headers)
    }

    fn req(&self, method: &str, path: &str, body: Option<Value>) -> Request<Body> {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        if body.is_some() || !matches!(method, "GET" | "DELETE") {
            r = r.header(header::CONTENT_TYPE, "application/json");
        }
        r.body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (s, b, _) = self.send(self.req(method, path, body)).await;
        (s, b)
    }
}

fn base() -> String {
    format!("/v1/accounts/{ACCOUNT}/connections/{TENANT}")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("ENTRA_SYNC_WRITE_OPENAPI").is_some() {
        std::fs::write(path, document()).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == document(),
        "docs/openapi.json is not the document the code generates. Regenerate it with\n  ENTRA_SYNC_WRITE_OPENAPI=1 cargo test -p entra-sync-http the_committed_document_is_the_generated_one\nand commit it."
    );
}

#[test]
fn every_route_is_in_the_document_and_nothing_else() {
    let doc: Value = serde_json::from_str(document()).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete", "head", "options"]
                .contains(&method.as_str())
            {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = route_specs()
        .iter()
        .map(|s| (s.method.to_owned(), s.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Public routes say so; every other route needs the bearer scheme.
    for spec in route_specs() {
        let op = &doc["paths"][spec.path][spec.method.to_lowercase()];
        let open = op["security"] == json!([{}]);
        assert_eq!(open, spec.public, "{} {}", spec.method, spec.path);
    }
}

/// A concrete path for a template.
fn concrete(path: &str) -> String {
    path.replace("{account}", ACCOUNT)
        .replace("{tenant}", TENANT)
        .replace("{run}", "20260101T000000Z-00000000")
        .replace("{local_id}", "l1")
        .replace("{action}", "0b7f2c1e-6a4d-5e8f-9a0b-1c2d3e4f5a6b")
        .replace("{workflow}", "1c8f2c1e-6a4d-5e8f-9a0b-1c2d3e4f5a6b")
        .replace("{source}", "standard")
        .replace("{review}", "2d8f2c1e-6a4d-5e8f-9a0b-1c2d3e4f5a6b")
        .replace("{endpoint}", "ep_00000000000000000000000000000001")
        .replace("{delivery}", "dl_00000000000000000000000000000001")
}

#[tokio::test]
async fn every_route_refuses_no_credentials_and_a_wrong_key() {
    let w = world().await;
    let (wrong, _) = ApiKey::generate([9; 32]);
    for spec in route_specs() {
        let path = concrete(spec.path);
        for auth in [
            None,
            Some(format!("Bearer {wrong}")),
            Some("Basic dXNlcjpwYXNz".into()),
        ] {
            let mut r = Request::builder()
                .method(spec.method)
                .uri(&path)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(a) = &auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            let (status, body, headers) = w.send(r.body(Body::from("{}")).unwrap()).await;
            if spec.public {
                assert_eq!(status, StatusCode::OK, "{} {path}", spec.method);
                continue;
            }
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {path} {auth:?}",
                spec.method
            );
            assert_eq!(body["error"], "unauthorized");
            assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        }
    }
    assert!(w.requests.take().is_empty(), "nothing ran");
}

#[tokio::test]
async fn another_accounts_caller_gets_404_on_every_route_and_changes_nothing() {
    // A console token of acct-2 (as API Gateway's JWT authorizer names it).
    let w = world_with(Some(Arc::new(PlatformCaller))).await;
    let before = w.store.list_connections().await.unwrap();
    for spec in route_specs().into_iter().filter(|s| !s.public) {
        let path = concrete(spec.path);
        let mut r = Request::builder()
            .method(spec.method)
            .uri(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"label": "x", "email": "user1@contoso.com"}).to_string(),
            ))
            .unwrap();
        r.extensions_mut()
            .insert(Caller::Account(AccountId("acct-2".into())));
        let (status, body, _) = w.send(r).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{} {path}: {body}",
            spec.method
        );
        assert!(!body.to_string().contains("Contoso"), "{body}");
        // Without a caller at all (no authorizer ran): 401.
        let r = Request::builder()
            .method(spec.method)
            .uri(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(w.send(r).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(w.store.list_connections().await.unwrap(), before);
    assert!(w.requests.take().is_empty());
    // The account's own caller sees its connection; acct-2's sees its own only.
    let mut r = Request::get(format!("/v1/accounts/acct-2/connections/{TENANT}"))
        .body(Body::empty())
        .unwrap();
    r.extensions_mut()
        .insert(Caller::Account(AccountId("acct-2".into())));
    assert_eq!(w.send(r).await.0, StatusCode::NOT_FOUND);
    let mut r = Request::get(format!("/v1/accounts/acct-2/connections/{OTHER_TENANT}"))
        .body(Body::empty())
        .unwrap();
    r.extensions_mut()
        .insert(Caller::Account(AccountId("acct-2".into())));
    assert_eq!(w.send(r).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_document_is_served_and_health_answers() {
    let w = world().await;
    let resp = w
        .app
        .clone()
        .oneshot(
            Request::get("/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), document());
    let (s, b) = w.call("GET", "/v1/health", None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn connections_list_show_start_reconnect_and_disconnect() {
    let w = world().await;
    let (s, b) = w
        .call("GET", &format!("/v1/accounts/{ACCOUNT}/connections"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert_eq!(b["items"][0]["tenant_id"], TENANT);
    assert_eq!(b["items"][0]["status"], "connected");
    let (s, b) = w.call("GET", &base(), None).await;
    assert_eq!((s, b["label"].as_str()), (StatusCode::OK, Some("Contoso")));
    let (s, _) = w
        .call(
            "GET",
            &format!("/v1/accounts/{ACCOUNT}/connections/{OTHER_TENANT}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another account's tenant");
    let (s, b) = w
        .call(
            "POST",
            &format!("/v1/accounts/{ACCOUNT}/connections"),
            Some(json!({"label": "Fabrikam"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b["consent_url"].as_str().unwrap().contains("adminconsent"));
    let (s, b) = w
        .call(
            "POST",
            &format!("/v1/accounts/{ACCOUNT}/connections"),
            Some(json!({"lable": "typo"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["message"].as_str().unwrap().contains("lable"));
    let (s, _) = w.call("POST", &format!("{}/reconnect", base()), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = w
        .call("POST", &format!("{}/disconnect", base()), None)
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("disconnected"))
    );
    // A state change needs a JSON content type (CSRF).
    let r = Request::post(format!("{}/disconnect", base()))
        .header(header::AUTHORIZATION, format!("Bearer {}", w.key))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::empty())
        .unwrap();
    assert_eq!(w.send(r).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn connection_lists_page_with_a_cursor() {
    let w = world().await;
    for i in 0..3 {
        let t = format!("0000000{i}-3b8d-4d2e-9a6f-0c4b7d21e9a3");
        w.store
            .put_connection(&connection(ACCOUNT, &t))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut path = format!("/v1/accounts/{ACCOUNT}/connections?limit=2");
    loop {
        let (s, b) = w.call("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK);
        seen.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["tenant_id"].clone()),
        );
        match b["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/accounts/{ACCOUNT}/connections?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn settings_carry_their_version_and_refuse_a_stale_one() {
    let w = world().await;
    let path = format!("{}/settings", base());
    let (s, b, h) = w.send(w.req("GET", &path, None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["version"], 0);
    assert_eq!(h[header::ETAG], "\"0\"");

    // PUT without If-Match: 428; with it: saved, and the diff says what changed.
    let (s, _) = w
        .call(
            "PUT",
            &path,
            Some(json!({"breaker": {"max_count": {"count": 5}}})),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_REQUIRED);
    let mut r = w.req("PUT", &path, Some(json!({"breaker": {"max_percent": 20}})));
    r.headers_mut()
        .insert(header::IF_MATCH, "\"0\"".parse().unwrap());
    let (s, b, h) = w.send(r).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"], 1);
    assert_eq!(h[header::ETAG], "\"1\"");
    assert!(
        b["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "breaker.max_percent"),
        "{b}"
    );
    assert_eq!(b["run"]["trigger"], "settings_changed");

    // A PATCH naming the old version: 412, nothing saved.
    let mut r = w.req(
        "PATCH",
        &path,
        Some(json!({"filters": {"departments": {"mode": "all"}}})),
    );
    r.headers_mut()
        .insert(header::IF_MATCH, "\"0\"".parse().unwrap());
    let (s, b, _) = w.send(r).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{b}");
    assert_eq!(b["error"], "precondition_failed");
    // A PUT naming the old version: 412 too.
    let mut r = w.req("PUT", &path, Some(json!({})));
    r.headers_mut()
        .insert(header::IF_MATCH, "\"0\"".parse().unwrap());
    assert_eq!(w.send(r).await.0, StatusCode::PRECONDITION_FAILED);

    // A merge patch keeps the fields it leaves out.
    let mut r = w.req(
        "PATCH",
        &path,
        Some(json!({"schedule": {"every": "daily", "hour_utc": 3}})),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/merge-patch+json".parse().unwrap(),
    );
    r.headers_mut()
        .insert(header::IF_MATCH, "\"1\"".parse().unwrap());
    let (s, b, _) = w.send(r).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["version"], 2);
    assert_eq!(b["settings"]["breaker"]["max_percent"], 20, "kept: {b}");
    assert_eq!(b["settings"]["schedule"]["hour_utc"], 3);
    // A whole PUT resets what it leaves out.
    let mut r = w.req("PUT", &path, Some(json!({})));
    r.headers_mut()
        .insert(header::IF_MATCH, "\"2\"".parse().unwrap());
    let (s, b, _) = w.send(r).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(b["settings"]["breaker"]["max_percent"], 20, "{b}");
}

#[tokio::test]
async fn settings_validation_lists_every_problem_and_saves_nothing() {
    let w = world().await;
    let path = format!("{}/settings/validate", base());
    let (s, b) = w
        .call(
            "POST",
            &path,
            Some(json!({"breaker": {"max_percent": 300}, "group_roles": [{"group_id": "nope", "role": "admin"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["valid"], false);
    let problems = b["problems"].as_array().unwrap();
    assert!(problems.len() >= 2, "{b}");
    let (s, b) = w
        .call("POST", &path, Some(json!({"breaker": {"max_percent": 30}})))
        .await;
    assert_eq!((s, &b["valid"]), (StatusCode::OK, &json!(true)));
    assert_eq!(b["changes"][0]["path"], "breaker.max_percent");
    let (_, b) = w.call("GET", &format!("{}/settings", base()), None).await;
    assert_eq!(b["version"], 0, "nothing saved");
    // PATCH with a problem: 422 naming it.
    let (s, b) = w
        .call(
            "PATCH",
            &format!("{}/settings", base()),
            Some(json!({"breaker": {"max_percent": 300}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"].as_str().unwrap().contains("max_percent"),
        "{b}"
    );
}

#[tokio::test]
async fn preview_then_import_of_selected_users() {
    let w = world().await;
    let (s, b) = w
        .call(
            "POST",
            &format!("{}/preview", base()),
            Some(json!({"mode": "new_and_updated"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let creates: Vec<String> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "create")
        .map(|i| i["object_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!creates.is_empty(), "{b}");
    for mode in ["only_new", "only_updated"] {
        let (s, _) = w
            .call(
                "POST",
                &format!("{}/preview", base()),
                Some(json!({ "mode": mode })),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = w
        .call(
            "POST",
            &format!("{}/preview", base()),
            Some(json!({"mode": "selected"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = w
        .call(
            "POST",
            &format!("{}/import", base()),
            Some(json!({"mode": "selected", "object_ids": [creates[0]]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["run"]["trigger"], "import");
    assert_eq!(b["run"]["provisioning"]["created"], 1);
    let (s, b) = w
        .call("GET", &format!("/v1/accounts/{ACCOUNT}/host-users"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert_eq!(b["items"][0]["object_id"], creates[0].as_str());
}

#[tokio::test]
async fn sync_now_answers_202_and_a_second_request_gets_the_running_run() {
    let w = world().await;
    let (s, b, h) = w
        .send(w.req("POST", &format!("{}/sync", base()), None))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["started"], true);
    let id = b["run"]["run_id"].as_str().unwrap().to_owned();
    assert!(h[header::LOCATION].to_str().unwrap().ends_with(&id));
    assert_eq!(w.requests.take().len(), 1);
    let (s, b) = w.call("POST", &format!("{}/sync", base()), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (b["started"].as_bool(), b["run"]["run_id"].as_str()),
        (Some(false), Some(id.as_str()))
    );
    assert!(w.requests.take().is_empty(), "one at a time");
    let (s, b) = w.call("GET", &format!("{}/runs/{id}", base()), None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("running")));
}

#[tokio::test]
async fn runs_page_newest_first_and_bad_cursors_and_limits_name_the_parameter() {
    let w = world().await;
    let t = TenantId::new(TENANT);
    for i in 0..5 {
        let run = SyncRun::new(
            format!("r{i}"),
            t.clone(),
            Trigger::Scheduled,
            t0() + Duration::minutes(i),
        );
        w.store.create_run(&run).await.unwrap();
    }
    w.store
        .update_run(
            &t,
            "r0",
            &RunUpdate::Finish {
                status: entra_sync_core::run::RunStatus::Succeeded,
                at: t0() + Duration::seconds(90),
            },
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut path = format!("{}/runs?limit=2", base());
    let mut last = Value::Null;
    loop {
        let (s, b) = w.call("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for r in b["items"].as_array().unwrap() {
            seen.push(r["run_id"].as_str().unwrap().to_owned());
            last = r.clone();
        }
        match b["next_cursor"].as_str() {
            Some(c) => path = format!("{}/runs?limit=2&cursor={c}", base()),
            None => break,
        }
    }
    assert_eq!(seen, ["r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(last["duration_seconds"], 90);
    assert!(last["finished_at"].is_string());
    for (q, name) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("sort=asc", "sort"),
    ] {
        let (s, b) = w.call("GET", &format!("{}/runs?{q}", base()), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert!(b["message"].as_str().unwrap().contains(name), "{q}: {b}");
    }
    // A cursor of another list is not a runs cursor.
    let (_, b) = w
        .call("GET", &format!("{}/users?limit=2", base()), None)
        .await;
    let users_cursor = b["next_cursor"].as_str().unwrap().to_owned();
    let (s, _) = w
        .call(
            "GET",
            &format!("{}/runs?cursor={users_cursor}", base()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_held_run_is_rejected_and_a_run_that_is_not_held_is_refused() {
    let w = world().await;
    let t = TenantId::new(TENANT);
    let run = SyncRun::new("held-1".into(), t.clone(), Trigger::Scheduled, t0());
    w.store.create_run(&run).await.unwrap();
    w.store
        .update_run(
            &t,
            "held-1",
            &RunUpdate::Hold(BreakerHold {
                deactivations: 40,
                active_before: 50,
                threshold: "more than 10 %".into(),
                empty_read: false,
                held_at: t0(),
                held_since: None,
                applied_deactivations: 0,
            }),
        )
        .await
        .unwrap();
    let (s, b) = w
        .call("GET", &format!("{}/runs/held-1", base()), None)
        .await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("held")));
    assert_eq!(b["hold"]["deactivations"], 40);
    let (s, b) = w
        .call(
            "POST",
            &format!("{}/runs/held-1/reject", base()),
            Some(json!({"by": "ann"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["status"].as_str(), b["rejected_by"].as_str()),
        (Some("rejected"), Some("ann"))
    );
    let (s, b) = w
        .call("POST", &format!("{}/runs/held-1/confirm", base()), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"], "not_held");
    let (s, _) = w
        .call("POST", &format!("{}/runs/nope/confirm", base()), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mirror_users_filter_and_show_their_host_user() {
    let w = world().await;
    let t = TenantId::new(TENANT);
    let mut host = LocalUser::pre_existing(
        AccountId(ACCOUNT.into()),
        "l1",
        "user2@contoso.com",
        LocalStatus::Pending,
        t0(),
    );
    host.link = Some(entra_sync_core::provision::DirectoryLink {
        tenant_id: t.clone(),
        object_id: "u002".into(),
    });
    host.fields.insert("department".into(), "Sales".into());
    host.fields.insert("badge".into(), "B-2".into());
    w.store
        .put_local_users(std::slice::from_ref(&host))
        .await
        .unwrap();

    let (s, b) = w
        .call(
            "GET",
            &format!("{}/users?department=sales&status=enabled&limit=200", base()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["object_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["u000", "u002", "u004", "u006", "u008", "u010"]);
    let u2 = &b["items"][1];
    assert_eq!(u2["host_user"]["fields"]["badge"], "B-2");
    assert_eq!(u2["host_user"]["status"], "pending");
    let (_, b) = w
        .call("GET", &format!("{}/users?status=disabled", base()), None)
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 3);
    let (_, b) = w
        .call("GET", &format!("{}/users?email_prefix=USER1", base()), None)
        .await;
    assert_eq!(
        b["items"].as_array().unwrap().len(),
        3,
        "user1, user10, user11"
    );
    let (s, b) = w
        .call("GET", &format!("{}/users?status=gone", base()), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["message"].as_str().unwrap().contains("status"));
    let (s, b) = w.call("GET", &format!("{}/groups", base()), None).await;
    assert_eq!(
        (s, b["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );

    // Host users: by status, activate, delete, and the sign-in lookup.
    let (_, b) = w
        .call(
            "GET",
            &format!("/v1/accounts/{ACCOUNT}/host-users?status=active"),
            None,
        )
        .await;
    assert!(b["items"].as_array().unwrap().is_empty());
    let (s, b) = w
        .call(
            "POST",
            &format!("/v1/accounts/{ACCOUNT}/sign-in-lookup"),
            Some(json!({"email": "USER2@contoso.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["may_sign_in"], false);
    let (s, b) = w
        .call(
            "POST",
            &format!("/v1/accounts/{ACCOUNT}/host-users/l1/activate"),
            None,
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{b}"
    );
    let (s, b) = w
        .call(
            "POST",
            &format!("/v1/accounts/{ACCOUNT}/host-users/l1/activate"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (_, b) = w
        .call(
            "GET",
            &format!("/v1/accounts/{ACCOUNT}/host-users?status=active"),
            None,
        )
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    let (s, b) = w
        .call(
            "DELETE",
            &format!("/v1/accounts/{ACCOUNT}/host-users/l1"),
            None,
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("deleted_locally"))
    );
    let (s, _) = w
        .call(
            "POST",
            &format!("/v1/accounts/{ACCOUNT}/sign-in-lookup"),
            Some(json!({"email": "nobody@contoso.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = w
        .call(
            "DELETE",
            &format!("/v1/accounts/{ACCOUNT}/host-users/missing"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// The write half: actions once per Idempotency-Key, approvals, the audit trail, workflows

const SALES: &str = "5a1e5000-0000-4000-8000-000000000010";

/// Actions on: `kinds` enabled (the default approvals: reset password, delete, block sign-in),
/// a security group "Sales" in the mirror and the directory, every permission granted.
async fn with_actions(w: &World, kinds: &[ActionKind]) {
    let t = TenantId::new(TENANT);
    let mut settings = entra_sync_core::settings::ConnectionSettings {
        version: 1,
        ..Default::default()
    };
    settings.actions.enabled = kinds.iter().copied().collect();
    w.store.put_settings(&t, &settings, 0).await.unwrap();
    w.store
        .put_groups(
            &t,
            &[StoredGroup {
                group: DirectoryGroup {
                    id: SALES.into(),
                    display_name: Some("Sales".into()),
                    security_enabled: Some(true),
                    mail_enabled: Some(false),
                    ..Default::default()
                },
                presence: Presence::Present,
                version: Version::new(1, 0),
            }],
        )
        .await
        .unwrap();
    for i in 0..12 {
        w.writer.add_user(&t, &format!("u{i:03}"));
    }
    w.writer.add_group(
        &t,
        SALES,
        GroupTraits {
            security_enabled: Some(true),
            mail_enabled: Some(false),
            ..Default::default()
        },
    );
    w.writer.grant_all(&t);
}

impl World {
    async fn post_keyed(
        &self,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut r = self.req("POST", path, Some(body));
        if let Some(k) = key {
            r.headers_mut()
                .insert("idempotency-key", k.parse().unwrap());
        }
        self.send(r).await
    }

    /// What the actions function's queue consumer does: run every queued message.
    async fn drain_actions(&self) {
        for m in self.queue.drain() {
            handle_action_message(&self.actions, &m).await;
        }
    }
}

fn add_sales(user: &str) -> Value {
    json!({"requested_by": "helpdesk@host",
           "action": {"kind": "add_group_member", "user": user, "group": "Sales"}})
}

#[tokio::test]
async fn an_action_is_submitted_once_per_idempotency_key() {
    let w = world().await;
    with_actions(&w, &[ActionKind::AddGroupMember]).await;
    let t = TenantId::new(TENANT);
    let actions = format!("{}/actions", base());
    // No key: refused, nothing stored or queued.
    let (s, b, _) = w
        .post_keyed(&actions, None, add_sales("user1@contoso.com"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("Idempotency-Key"),
        "{b}"
    );
    assert!(w.queue.is_empty());
    // With a key: stored and queued, 202 with the action's address.
    let (s, first, h) = w
        .post_keyed(&actions, Some("k-1"), add_sales("user1@contoso.com"))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let id = first["action"]["id"].as_str().unwrap().to_owned();
    assert_eq!(first["action"]["status"], "queued");
    assert_eq!(first["action"]["target"]["user_id"], "u001");
    assert_eq!(first["action"]["target"]["group_id"], SALES);
    assert_eq!(first["action"]["origin"]["via"], "api");
    assert_eq!(h[header::LOCATION], format!("{actions}/{id}").as_str());
    // The same key again, bare or quoted as the IETF draft writes it: the same action.
    for key in ["k-1", "\"k-1\""] {
        let (s, again, _) = w
            .post_keyed(&actions, Some(key), add_sales("user1@contoso.com"))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{again}");
        assert_eq!(again["action"]["id"], id.as_str());
    }
    // The same key for another request: refused, naming the key.
    let (s, b, _) = w
        .post_keyed(&actions, Some("k-1"), add_sales("user2@contoso.com"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"], "idempotency_key_reused");
    // The queue may hold the action more than once (a replay enqueues again in case the first
    // enqueue was lost); the directory is written once.
    assert!(!w.queue.is_empty());
    w.drain_actions().await;
    assert_eq!(w.writer.calls(&t, ActionKind::AddGroupMember), 1);
    assert_eq!(
        w.writer.members(&t, SALES).unwrap(),
        vec!["u001".to_owned()]
    );
    let (s, shown) = w.call("GET", &format!("{actions}/{id}"), None).await;
    assert_eq!(
        (s, shown["status"].as_str()),
        (StatusCode::OK, Some("succeeded"))
    );
    // And a replay after it ran answers with the finished action, writing nothing.
    let (s, again, _) = w
        .post_keyed(&actions, Some("k-1"), add_sales("user1@contoso.com"))
        .await;
    assert_eq!(
        (s, again["action"]["status"].as_str()),
        (StatusCode::ACCEPTED, Some("succeeded"))
    );
    w.drain_actions().await;
    assert_eq!(w.writer.calls(&t, ActionKind::AddGroupMember), 1);
}

#[tokio::test]
async fn approvals_a_password_reset_run_by_its_requester_and_the_audit_trail() {
    let w = world().await;
    with_actions(
        &w,
        &[
            ActionKind::AddGroupMember,
            ActionKind::BlockSignIn,
            ActionKind::ResetPassword,
        ],
    )
    .await;
    let t = TenantId::new(TENANT);
    let actions = format!("{}/actions", base());
    // Block sign-in waits for an approver.
    let block = json!({"requested_by": "helpdesk@host",
                       "action": {"kind": "block_sign_in", "user": "user2@contoso.com"}});
    let (s, b, _) = w.post_keyed(&actions, Some("block-2"), block).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["action"]["status"], "pending_approval");
    assert!(b["action"]["expires_at"].is_string(), "{b}");
    let block_id = b["action"]["id"].as_str().unwrap().to_owned();
    assert!(w.queue.is_empty(), "nothing runs before the approval");
    // The requester cannot approve their own request.
    let (s, b) = w
        .call(
            "POST",
            &format!("{actions}/{block_id}/approve"),
            Some(json!({"by": "helpdesk@host"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    // Pending approvals are listed by status; a bad status is named.
    let (s, b) = w
        .call("GET", &format!("{actions}?status=pending_approval"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    let (s, b) = w
        .call("GET", &format!("{actions}?status=waiting"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().contains("status"));
    // Someone else approves: queued, run by the executor.
    let (s, b) = w
        .call(
            "POST",
            &format!("{actions}/{block_id}/approve"),
            Some(json!({"by": "manager@host", "comment": "left the company"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "queued");
    assert_eq!(b["decision"]["by"], "manager@host");
    w.drain_actions().await;
    assert_eq!(w.writer.applied(&t, ActionKind::BlockSignIn), 1);

    // A password reset: approved, then run by its requester only; the password once.
    let reset = json!({"requested_by": "helpdesk@host",
                       "action": {"kind": "reset_password", "user": "user3@contoso.com"}});
    let (s, b, _) = w.post_keyed(&actions, Some("reset-3"), reset).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let reset_id = b["action"]["id"].as_str().unwrap().to_owned();
    let (s, b) = w
        .call(
            "POST",
            &format!("{actions}/{reset_id}/approve"),
            Some(json!({"by": "manager@host"})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    let run = format!("{actions}/{reset_id}/run");
    let (s, b) = w
        .call("POST", &run, Some(json!({"runner": "someone@host"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "only the requester runs it: {b}");
    assert!(!b.to_string().contains("temporary_password\":\""), "{b}");
    let (s, b, h) = w
        .send(w.req("POST", &run, Some(json!({"runner": "helpdesk@host"}))))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["action"]["status"], "succeeded");
    let password = b["temporary_password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 16, "a strong password");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    // Never again: not on a second run, not in the record, the list or the audit trail.
    let (s, b) = w
        .call("POST", &run, Some(json!({"runner": "helpdesk@host"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["temporary_password"].is_null(), "{b}");
    let (_, listed) = w.call("GET", &actions, None).await;
    assert!(!listed.to_string().contains(&password));
    assert_eq!(w.writer.calls(&t, ActionKind::ResetPassword), 1);

    // Cancel before it runs; reject; the audit trail per user, a page at a time.
    let (_, b, _) = w
        .post_keyed(&actions, Some("add-4"), add_sales("user4@contoso.com"))
        .await;
    let add_id = b["action"]["id"].as_str().unwrap().to_owned();
    let (s, b) = w
        .call(
            "POST",
            &format!("{actions}/{add_id}/cancel"),
            Some(json!({"by": "helpdesk@host"})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    w.drain_actions().await;
    assert_eq!(w.writer.calls(&t, ActionKind::AddGroupMember), 0);
    let block5 = json!({"requested_by": "helpdesk@host",
                        "action": {"kind": "block_sign_in", "user": "user5@contoso.com"}});
    let (_, b, _) = w.post_keyed(&actions, Some("block-5"), block5).await;
    let id5 = b["action"]["id"].as_str().unwrap().to_owned();
    let (s, b) = w
        .call(
            "POST",
            &format!("{actions}/{id5}/reject"),
            Some(json!({"by": "manager@host"})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("rejected"))
    );
    let (s, b) = w
        .call("GET", &format!("{actions}?user_id=u005"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{actions}?limit=1&cursor={c}"),
            None => format!("{actions}?limit=1"),
        };
        let (s, b) = w.call("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for item in b["items"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()));
        }
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "every action once across the pages");
}

#[tokio::test]
async fn refusals_name_the_problem_and_do_nothing() {
    let w = world().await;
    with_actions(&w, &[ActionKind::AddGroupMember]).await;
    let t = TenantId::new(TENANT);
    let actions = format!("{}/actions", base());
    let cases = [
        // Not enabled for the connection: 403 naming the kind.
        (
            json!({"requested_by": "h", "action": {"kind": "delete_user", "user": "user1@contoso.com"}}),
            StatusCode::FORBIDDEN,
            "not_permitted",
        ),
        // An unknown user, an unknown group: 422 naming them.
        (
            add_sales("nobody@contoso.com"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_target",
        ),
        (
            json!({"requested_by": "h", "action": {"kind": "add_group_member", "user": "user1@contoso.com", "group": "Marketing"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_target",
        ),
        // A misspelt kind or field, a missing requester: 400.
        (
            json!({"requested_by": "h", "action": {"kind": "add_member", "user": "user1@contoso.com"}}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"requested_by": "h", "action": {"kind": "revoke_sessions", "user": "user1@contoso.com", "group": "Sales"}}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"action": {"kind": "revoke_sessions", "user": "user1@contoso.com"}}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (s, b, _) = w
            .post_keyed(&actions, Some(&format!("bad-{i}")), body.clone())
            .await;
        assert_eq!(
            (s, b["error"].as_str()),
            (status, Some(code)),
            "{body}: {b}"
        );
        assert!(!b["message"].as_str().unwrap().contains("Some("), "{b}");
    }
    // A key too long or with spaces.
    let long = "k".repeat(201);
    let (s, b, _) = w
        .post_keyed(&actions, Some(&long), add_sales("user1@contoso.com"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("idempotency key"),
        "{b}"
    );
    assert!(w.queue.is_empty());
    assert_eq!(w.writer.total_calls(), 0);
    let (_, listed) = w.call("GET", &actions, None).await;
    assert_eq!(listed["items"], json!([]));
    let _ = t;
}

#[tokio::test]
async fn workflows_start_once_per_key_and_can_be_cancelled() {
    let w = world().await;
    with_actions(
        &w,
        &[ActionKind::RevokeSessions, ActionKind::AddGroupMember],
    )
    .await;
    let t = TenantId::new(TENANT);
    let workflows = format!("{}/workflows", base());
    let lost = json!({"template": "lost_device", "requested_by": "helpdesk@host", "user": "user6@contoso.com"});
    let (s, b, _) = w.post_keyed(&workflows, None, lost.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, first, h) = w.post_keyed(&workflows, Some("wf-1"), lost.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["template"], "lost_device");
    assert_eq!(first["via"], "api");
    assert_eq!(h[header::LOCATION], format!("{workflows}/{id}").as_str());
    let (s, again, _) = w.post_keyed(&workflows, Some("wf-1"), lost).await;
    assert_eq!(
        (s, again["id"].as_str()),
        (StatusCode::ACCEPTED, Some(id.as_str()))
    );
    w.drain_actions().await;
    assert_eq!(
        w.writer.calls(&t, ActionKind::RevokeSessions),
        1,
        "one workflow, one revoke"
    );
    // Onboarding at a future date waits; cancel it before the date.
    let later = json!({"template": "onboarding", "requested_by": "hr@host", "user": "user7@contoso.com",
                       "groups": ["Sales"], "at": "2030-01-05T08:00:00Z"});
    let (s, b, _) = w.post_keyed(&workflows, Some("wf-2"), later).await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::ACCEPTED, Some("scheduled")),
        "{b}"
    );
    assert_eq!(b["due_at"], "2030-01-05T08:00:00Z");
    let id2 = b["id"].as_str().unwrap().to_owned();
    let (s, b) = w.call("GET", &format!("{workflows}/{id2}"), None).await;
    assert_eq!(
        (s, b["steps"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    let (s, b) = w
        .call(
            "POST",
            &format!("{workflows}/{id2}/cancel"),
            Some(json!({"by": "hr@host"})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{b}"
    );
    let (s, b) = w
        .call(
            "POST",
            &format!("{workflows}/{id2}/cancel"),
            Some(json!({"by": "hr@host"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = w
        .call("POST", &format!("{workflows}/{id2}/retry"), None)
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "only a failed workflow is retried: {b}"
    );
    let (s, b) = w.call("GET", &format!("{workflows}?limit=1"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert!(b["next_cursor"].is_string());
    let (s, _) = w
        .call("GET", &format!("{workflows}/not-a-workflow"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hr_endpoints_are_managed_with_the_secret_shown_once() {
    let w = world().await;
    let hooks = format!("/v1/accounts/{ACCOUNT}/hr-endpoints");
    // A Standard Webhooks endpoint: its secret is generated and in this answer only.
    let (s, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"source": "standard", "tenant_id": TENANT})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let secret = b["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{b}");
    assert_eq!(b["endpoint"]["path"], format!("/hooks/{ACCOUNT}/standard"));
    assert_eq!(b["endpoint"]["enabled"], true);
    let (s, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"source": "standard", "tenant_id": TENANT})),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{b}"
    );
    // BambooHR generates its own key: without it, refused naming the field.
    let (s, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"source": "bamboohr", "tenant_id": TENANT})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().contains("secret"), "{b}");
    for bad in [
        json!({"source": "workday", "tenant_id": TENANT}),
        json!({"source": "standard", "tenant_id": "not-a-guid"}),
        json!({"source": "standard", "tenant_id": TENANT, "colour": "red"}),
    ] {
        let (s, b) = w.call("POST", &hooks, Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }
    // Another account's connection is not found.
    let (s, _) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"source": "hibob", "tenant_id": OTHER_TENANT, "secret": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Rotate: a new secret, the previous one still listed in its grace period.
    let (s, b) = w
        .call(
            "POST",
            &format!("{hooks}/standard/rotate"),
            Some(json!({"grace_hours": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let rotated = b["secret"].as_str().unwrap().to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(b["endpoint"]["secrets"].as_array().unwrap().len(), 2);
    assert!(b["endpoint"]["secrets"][1]["valid_until"].is_string());
    let (s, b) = w
        .call(
            "POST",
            &format!("{hooks}/standard/rotate"),
            Some(json!({"grace_hours": 9999})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Disable, enable, the credential, the list, the log: never a secret.
    let (s, b) = w
        .call("POST", &format!("{hooks}/standard/disable"), None)
        .await;
    assert_eq!((s, b["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    let (s, b) = w
        .call("POST", &format!("{hooks}/standard/enable"), None)
        .await;
    assert_eq!((s, b["enabled"].as_bool()), (StatusCode::OK, Some(true)));
    let (s, b) = w
        .call(
            "PUT",
            &format!("{hooks}/standard/api-credential"),
            Some(json!({"api_credential": "sender-api-key"})),
        )
        .await;
    assert_eq!(
        (s, b["has_api_credential"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{b}"
    );
    let mut seen = String::new();
    for path in [
        hooks.clone(),
        format!("{hooks}/standard"),
        format!("{hooks}/standard/deliveries"),
    ] {
        let (s, b) = w.call("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        seen.push_str(&b.to_string());
    }
    for hidden in [&secret, &rotated, "sender-api-key"] {
        assert!(!seen.contains(hidden), "a secret in an answer");
    }
    let (s, _) = w.call("GET", &format!("{hooks}/workday"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = w.call("GET", &format!("{hooks}/hibob"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no HiBob endpoint yet");
    // The review list of the connection: empty; an unknown item is not found.
    let reviews = format!("{}/hr-reviews", base());
    let (s, b) = w.call("GET", &format!("{reviews}?status=all"), None).await;
    assert_eq!((s, b["items"].clone()), (StatusCode::OK, json!([])));
    let (s, b) = w
        .call("GET", &format!("{reviews}?status=closed"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = w
        .call(
            "POST",
            &format!("{reviews}/no-such-item/resolve"),
            Some(json!({"user_id": "u001", "by": "hr@host"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn outbound_webhook_endpoints_are_managed_with_the_secret_shown_once() {
    let w = world().await;
    let hooks = format!("/v1/accounts/{ACCOUNT}/webhook-endpoints");
    let (s, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"url": "https://hooks.example.com/in", "event_types": ["user.created"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let secret = b["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{b}");
    let id = b["endpoint"]["id"].as_str().unwrap().to_owned();
    assert_eq!(b["endpoint"]["enabled"], true);
    assert_eq!(b["endpoint"]["event_types"], json!(["user.created"]));
    let (s, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"url": "https://hooks.example.com/second"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Created at the same time (the test clock stands still): ordered by id.
    let mut order = [id.clone(), b["endpoint"]["id"].as_str().unwrap().to_owned()];
    order.sort();
    // Refused, in plain words, and nothing stored.
    for (bad, says) in [
        (json!({"url": "http://hooks.example.com/in"}), "https"),
        (
            json!({"url": "https://127.0.0.1/in"}),
            "not a public address",
        ),
        (
            json!({"url": "https://169.254.169.254/latest"}),
            "not a public address",
        ),
        (json!({"url": "https://[::1]/in"}), "not a public address"),
        (
            json!({"url": "https://internal.example.com/in"}),
            "not a public address",
        ),
        (json!({"url": "https://unknown.example.com/in"}), "resolved"),
        (
            json!({"url": "https://hooks.example.com/in", "event_types": ["user.renamed"]}),
            "event_types",
        ),
        (
            json!({"url": "https://hooks.example.com/in", "colour": "red"}),
            "colour",
        ),
    ] {
        let (s, b) = w.call("POST", &hooks, Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        let m = b["message"].as_str().unwrap();
        assert!(m.contains(says), "{bad}: {m}");
        assert!(!m.contains("Url(") && !m.contains("NotPublic"), "{m}");
    }
    // Listed oldest first, a page at a time.
    let (s, b) = w.call("GET", &format!("{hooks}?limit=1"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"][0]["id"], order[0].as_str());
    let next = b["next_cursor"].as_str().unwrap().to_owned();
    let (_, b) = w
        .call("GET", &format!("{hooks}?limit=1&cursor={next}"), None)
        .await;
    assert_eq!(b["items"][0]["id"], order[1].as_str());
    assert_eq!(b["next_cursor"], Value::Null);
    let (s, _) = w.call("GET", &format!("{hooks}?cursor=bad"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Another account's endpoint is not found through this account.
    let theirs = OutboundEndpoint::new(
        OutboundEndpoint::new_id(),
        AccountId("acct-2".into()),
        "https://hooks.example.com/theirs".into(),
        None,
        t0(),
    );
    w.outbound.create_endpoint(&theirs).await.unwrap();
    for (m, p) in [
        ("GET", String::new()),
        ("POST", "/rotate".into()),
        ("POST", "/disable".into()),
        ("GET", "/deliveries".into()),
    ] {
        let (s, _) = w.call(m, &format!("{hooks}/{}{p}", theirs.id), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}");
    }
    assert_eq!(
        w.outbound.get_endpoint(&theirs.id).await.unwrap(),
        Some(theirs)
    );
    // Rotate: a new secret, the previous one still signing.
    let (s, b) = w.call("POST", &format!("{hooks}/{id}/rotate"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let rotated = b["secret"].as_str().unwrap().to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(b["endpoint"]["secrets"].as_array().unwrap().len(), 2);
    // Disable (its event recorded), enable.
    let (s, b) = w.call("POST", &format!("{hooks}/{id}/disable"), None).await;
    assert_eq!((s, b["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    assert!(b["disabled_reason"].is_string(), "{b}");
    let recorded = w.outbound.recorded();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].event_type(), "webhook_endpoint.disabled");
    let (s, b) = w.call("POST", &format!("{hooks}/{id}/enable"), None).await;
    assert_eq!(
        (s, b["enabled"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{b}"
    );
    // Never a secret in what is read back.
    let mut seen = String::new();
    for path in [
        hooks.clone(),
        format!("{hooks}/{id}"),
        format!("{hooks}/{id}/deliveries"),
    ] {
        let (s, b) = w.call("GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        seen.push_str(&b.to_string());
    }
    for hidden in [&secret, &rotated] {
        assert!(!seen.contains(hidden.as_str()), "a secret in an answer");
    }
}

#[tokio::test]
async fn outbound_webhook_deliveries_page_newest_first_and_are_redelivered() {
    let w = world().await;
    let hooks = format!("/v1/accounts/{ACCOUNT}/webhook-endpoints");
    let (_, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"url": "https://hooks.example.com/in"})),
        )
        .await;
    let id = b["endpoint"]["id"].as_str().unwrap().to_owned();
    let events: Vec<_> = ["u1", "u2", "u3"]
        .iter()
        .map(|u| {
            entra_sync_core::events::ChangeEvent::new(
                &TenantId::new(TENANT),
                *u,
                1,
                entra_sync_core::events::ChangeKind::DirectoryUserCreated {},
            )
            .account(Some(AccountId(ACCOUNT.into())))
        })
        .collect();
    assert_eq!(w.outbound.fan_out(&events, None, t0()).unwrap(), 3);
    let log = format!("{hooks}/{id}/deliveries");
    let (s, b) = w.call("GET", &format!("{log}?limit=2"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first: Vec<String> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        first,
        [events[2].id().to_string(), events[1].id().to_string()],
        "newest first"
    );
    assert_eq!(b["items"][0]["state"], "pending");
    let next = b["next_cursor"].as_str().unwrap().to_owned();
    let (_, b) = w
        .call("GET", &format!("{log}?limit=2&cursor={next}"), None)
        .await;
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert_eq!(b["items"][0]["event_id"], events[0].id().to_string());
    assert_eq!(b["next_cursor"], Value::Null);
    // A failed delivery is due again after a redelivery.
    let dl = b["items"][0]["id"].as_str().unwrap().to_owned();
    let mut d = w.outbound.get_delivery(&dl).await.unwrap().unwrap();
    d.state = DeliveryState::Failed { at: t0() };
    d.failures = 8;
    w.outbound.put_delivery(&d).await.unwrap();
    let (s, b) = w.call("POST", &format!("{log}/{dl}/redeliver"), None).await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{b}"
    );
    let d = w.outbound.get_delivery(&dl).await.unwrap().unwrap();
    assert_eq!(d.failures, 0);
    assert_eq!(
        d.state,
        DeliveryState::Pending {
            next_attempt_at: t0()
        }
    );
    // Unknown, or another endpoint's delivery: not found.
    let (_, other) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"url": "https://hooks.example.com/other"})),
        )
        .await;
    let other = other["endpoint"]["id"].as_str().unwrap().to_owned();
    for path in [
        format!("{log}/dl_none/redeliver"),
        format!("{hooks}/{other}/deliveries/{dl}/redeliver"),
    ] {
        let (s, _) = w.call("POST", &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_local_test_setting_alone_allows_http_to_loopback() {
    let w = world_full(
        None,
        Some(UrlPolicy {
            allow_insecure_loopback: true,
        }),
    )
    .await;
    let hooks = format!("/v1/accounts/{ACCOUNT}/webhook-endpoints");
    let (s, b) = w
        .call(
            "POST",
            &hooks,
            Some(json!({"url": "http://127.0.0.1:9/in"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let strict = world().await;
    let (s, _) = strict
        .call(
            "POST",
            &hooks,
            Some(json!({"url": "http://127.0.0.1:9/in"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_an_endpoint_store_every_outbound_webhook_route_answers_501() {
    let w = world_full(None, None).await;
    let routes: Vec<RouteSpec> = route_specs()
        .into_iter()
        .filter(|s| s.path.contains("/webhook-endpoints"))
        .collect();
    assert_eq!(routes.len(), 8);
    for spec in routes {
        let path = concrete(spec.path);
        let body = (spec.method == "POST").then(|| json!({"url": "https://hooks.example.com/in"}));
        let (s, b) = w.call(spec.method, &path, body).await;
        assert_eq!(
            s,
            StatusCode::NOT_IMPLEMENTED,
            "{} {path}: {b}",
            spec.method
        );
        assert_eq!(b["error"], "not_implemented");
        assert_eq!(
            b["message"],
            "Outbound webhooks are not configured on this deployment."
        );
    }
}
