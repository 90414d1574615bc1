//! Connecting a directory end to end: the connect routes on the local adapters (SQLite store,
//! file vault), the Graph client and the emulator's admin-consent page, as a browser walks it:
//! start -> consent page -> redirect -> callback. Then the lifecycle: revoked consent or a
//! blocking policy -> NeedsReauthorization (retried on its own clock, no activity entry between
//! attempts) -> reconsent recovers; disconnect keeps users, stops schedules and frees the
//! tenant for another account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use entra_sync_core::memory::{CollectingFetchRequests, ManualClock};
use entra_sync_core::model::{AccountId, ConnectionStatus, TenantId};
use entra_sync_core::ports::{
    Clock, ConnectionStore, LocalUserStore, MirrorStore, RunStore, Secret, SecretVault,
};
use entra_sync_core::run::{RunStatus, Trigger};
use entra_sync_core::services::connect::tenant_secret_names;
use entra_sync_core::services::{FetchOptions, schedule_fetches};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{ConsentOutcome, Emulator, EmulatorConfig, TenantSpec, TokenBlock};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_http::connect::ConnectConfig;
use entra_sync_local::runtime::{DataDir, LocalApp, LocalError, SyncSettings};
use entra_sync_local::serve::connect_router;
use tower::ServiceExt;
use url::Url;

const REDIRECT: &str = "https://connect.example.com/connect/callback";

struct World {
    emulator: Emulator,
    app: LocalApp,
    clock: Arc<ManualClock>,
    graph: GraphClient,
    routes: Router,
    tenants: Vec<TenantId>,
    _dir: tempfile::TempDir,
}

async fn world(tenants: usize) -> World {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let ids = (0..tenants)
        .map(|i| {
            let info = emulator.add_tenant(&TenantSpec::new(11 + i as u64, 60, 6));
            // Nobody consented yet: the flow under test grants it.
            emulator.tenant(&info.tenant_id).unwrap().revoke_consent();
            TenantId::new(info.tenant_id)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    app.clock = clock.clone();
    let creds = emulator.app();
    let mut gc = GraphConfig::new(
        Url::parse(&emulator.graph_base_url()).unwrap(),
        Url::parse(&emulator.login_base_url()).unwrap(),
        creds.client_id.clone(),
        Secret::new(creds.client_secret.clone()),
    );
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let graph = GraphClient::new(gc.clone()).unwrap();
    let config = ConnectConfig {
        login_base_url: gc.login_base_url.clone(),
        client_id: creds.client_id,
        redirect_uri: Some(Url::parse(REDIRECT).unwrap()),
        scope: gc.scope(),
        state_ttl: chrono::Duration::minutes(10),
        return_url: None,
    };
    let routes = connect_router(&app, graph.clone(), config);
    World {
        emulator,
        app,
        clock,
        graph,
        routes,
        tenants: ids,
        _dir: dir,
    }
}

impl World {
    async fn call(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.routes.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, text) = self.call(req).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let (status, text) = self
            .call(Request::get(path).body(Body::empty()).unwrap())
            .await;
        (status, serde_json::from_str(&text).unwrap())
    }

    /// A consent URL for a new connection of `account`.
    async fn start(&self, account: &str, label: &str, expected: Option<&TenantId>) -> String {
        let mut body = serde_json::json!({ "label": label });
        if let Some(t) = expected {
            body["expected_tenant_id"] = t.as_str().into();
        }
        let (status, v) = self
            .post(&format!("/accounts/{account}/connections/start"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["consent_url"].as_str().unwrap().to_owned()
    }

    async fn reconnect_url(&self, account: &str, tenant: &TenantId) -> String {
        let (status, v) = self
            .post(
                &format!("/accounts/{account}/connections/{tenant}/reconnect"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["consent_url"].as_str().unwrap().to_owned()
    }

    /// The admin's browser on the consent page: where it is sent back to (path and query of
    /// our callback, which must be the configured redirect URI).
    async fn follow(&self, consent_url: &str) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(consent_url).send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
        let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        assert!(
            location.as_str().starts_with(REDIRECT),
            "the consent page returns to the configured redirect URI"
        );
        format!("{}?{}", location.path(), location.query().unwrap_or(""))
    }

    async fn callback(&self, path_and_query: &str) -> (StatusCode, String) {
        self.call(Request::get(path_and_query).body(Body::empty()).unwrap())
            .await
    }

    async fn consent(
        &self,
        account: &str,
        label: &str,
        expected: Option<&TenantId>,
    ) -> (StatusCode, String) {
        let url = self.start(account, label, expected).await;
        let back = self.follow(&url).await;
        self.callback(&back).await
    }

    async fn connection(&self, tenant: &TenantId) -> Option<entra_sync_core::model::Connection> {
        self.app.store.get_connection(tenant).await.unwrap()
    }

    async fn sync(&self, tenant: &TenantId) -> Result<entra_sync_core::run::SyncRun, LocalError> {
        self.app
            .sync(
                Arc::new(self.graph.clone()),
                tenant,
                &FetchOptions {
                    trigger: Trigger::Scheduled,
                    ..FetchOptions::default()
                },
                &SyncSettings::default(),
                |_| {},
            )
            .await
    }

    async fn schedule(&self) -> (usize, usize, Vec<TenantId>) {
        let requests = Arc::new(CollectingFetchRequests::new());
        let report = schedule_fetches(
            &DepsBuilder::on(&self.app.store)
                .clock(self.clock.clone())
                .schedule(requests.clone()),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let sent = requests
            .take()
            .into_iter()
            .map(|(r, _)| r.tenant_id)
            .collect();
        (report.requested, report.skipped, sent)
    }

    async fn stored_users(&self, tenant: &TenantId) -> usize {
        self.app
            .store
            .list_users(tenant, None, 10_000)
            .await
            .unwrap()
            .items
            .len()
    }

    async fn local_users(&self, account: &str) -> Vec<entra_sync_core::provision::LocalUser> {
        self.app
            .store
            .list_local_users(&AccountId(account.into()), None, 10_000)
            .await
            .unwrap()
            .items
    }

    fn tenant(&self, i: usize) -> entra_sync_emulator::TenantHandle {
        self.emulator.tenant(self.tenants[i].as_str()).unwrap()
    }
}

#[tokio::test]
async fn consent_connects_the_tenant_with_its_details_and_label_and_it_syncs() {
    let w = world(1).await;
    let t = &w.tenants[0];
    let (status, page) = w.consent("acct-1", "Head office", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Directory connected"));
    let c = w.connection(t).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Connected);
    assert_eq!(c.account_id, AccountId("acct-1".into()));
    assert_eq!(c.label, "Head office");
    let info = w.emulator.tenant_info(t.as_str()).unwrap();
    assert_eq!(c.tenant_name.as_deref(), Some(info.name.as_str()));
    let mut domains: Vec<String> = c.verified_domains.iter().map(|d| d.name.clone()).collect();
    let mut expected = info.verified_domains.clone();
    domains.sort();
    expected.sort();
    assert_eq!(domains, expected);
    assert!(
        w.tenant(0).has_consent(),
        "the consent page granted consent"
    );

    let (status, v) = w.get("/accounts/acct-1/connections").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["connections"][0]["tenant_id"], t.as_str());

    let run = w.sync(t).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(w.stored_users(t).await, 60);
}

#[tokio::test]
async fn replayed_forged_and_expired_states_are_refused_and_store_nothing() {
    let w = world(1).await;
    let t = &w.tenants[0];

    // Forged: a state we never issued.
    let url = w.start("acct-1", "L", None).await;
    let back = w.follow(&url).await;
    let forged = back.replace("state=", "state=ff");
    let (status, page) = w.callback(&forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not valid or was already used"), "{page}");
    assert!(w.connection(t).await.is_none());

    // No state at all.
    let stateless: String = back
        .split('&')
        .filter(|p| !p.starts_with("state="))
        .collect::<Vec<_>>()
        .join("&");
    let (status, _) = w.callback(&stateless).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(w.connection(t).await.is_none());

    // Replayed: the genuine callback works once; the same one again is refused and changes
    // nothing (not even the label).
    let (status, _) = w.callback(&back).await;
    assert_eq!(status, StatusCode::OK);
    w.app
        .store
        .put_connection(&entra_sync_core::model::Connection {
            label: "renamed".into(),
            ..w.connection(t).await.unwrap()
        })
        .await
        .unwrap();
    let (status, page) = w.callback(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"));
    assert_eq!(w.connection(t).await.unwrap().label, "renamed");

    // Expired: the callback comes 11 minutes after the start.
    let url = w.start("acct-1", "L", None).await;
    let late = w.follow(&url).await;
    w.clock.advance(chrono::Duration::minutes(11));
    let (status, page) = w.callback(&late).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(w.connection(t).await.unwrap().label, "renamed");
}

#[tokio::test]
async fn every_consent_error_is_mapped_to_a_plain_actionable_message_and_stores_nothing() {
    let w = world(1).await;
    let t = &w.tenants[0];
    let cases = [
        (ConsentOutcome::Cancel, "consent_cancelled", "cancelled"),
        (ConsentOutcome::Decline, "consent_declined", "declined"),
        (
            ConsentOutcome::DenyWithAdminConsentTrue,
            "consent_declined",
            "declined",
        ),
        (
            ConsentOutcome::ApprovalRequired,
            "approval_required",
            "approval is still pending",
        ),
        (
            ConsentOutcome::NotAdmin,
            "admin_consent_required",
            "Global Administrator",
        ),
        (
            ConsentOutcome::MissingTenant,
            "missing_tenant",
            "tenant details are missing",
        ),
    ];
    for (outcome, code, words) in cases {
        w.tenant(0).set_consent_outcome(outcome);
        let (status, page) = w.consent("acct-1", "L", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome:?}");
        assert!(page.contains(code), "{outcome:?}: {page}");
        assert!(page.contains(words), "{outcome:?}: {page}");
        assert!(
            w.connection(t).await.is_none(),
            "{outcome:?} stored nothing"
        );
    }

    // Consent given, but without the app roles: the missing permission is named.
    w.tenant(0).set_consent_outcome(ConsentOutcome::Approve);
    w.tenant(0).set_app_roles_granted(false);
    let (status, page) = w.consent("acct-1", "L", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("insufficient_privileges"));
    assert!(page.contains("Organization.Read.All"), "{page}");
    assert!(w.connection(t).await.is_none());

    // A Conditional Access policy blocks the token: said so, nothing stored.
    w.tenant(0).set_app_roles_granted(true);
    w.tenant(0)
        .set_token_block(Some(TokenBlock::ConditionalAccess));
    let (status, page) = w.consent("acct-1", "L", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Conditional Access"), "{page}");
    assert!(w.connection(t).await.is_none());

    // And once the admin fixes it, the same account connects.
    w.tenant(0).set_token_block(None);
    let (status, _) = w.consent("acct-1", "L", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_already_connected_is_refused_for_the_same_and_another_account() {
    let w = world(1).await;
    let t = &w.tenants[0];
    assert_eq!(w.consent("acct-1", "First", None).await.0, StatusCode::OK);

    let (status, page) = w.consent("acct-1", "Again", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("already connected to your account"), "{page}");

    let (status, page) = w.consent("acct-2", "Theirs", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        page.contains("already connected to another account"),
        "{page}"
    );
    assert!(
        !page.contains("acct-1") && !page.contains("First"),
        "no leak"
    );

    let c = w.connection(t).await.unwrap();
    assert_eq!(
        (c.account_id.0.as_str(), c.label.as_str()),
        ("acct-1", "First")
    );
}

#[tokio::test]
async fn reconnecting_in_another_tenant_than_expected_is_detected() {
    let w = world(2).await;
    let (a, b) = (&w.tenants[0], &w.tenants[1]);
    assert_eq!(w.consent("acct-1", "A", Some(a)).await.0, StatusCode::OK);

    // The admin signs in to tenant B although the reconnect is for A (here: the consent page
    // of `organizations`, signed in to B).
    let url = w.reconnect_url("acct-1", a).await;
    assert!(url.contains(&format!("/{a}/v2.0/adminconsent")));
    w.emulator.set_sign_in_tenant(b.as_str());
    let wrong = url.replace(&format!("/{a}/"), "/organizations/");
    let back = w.follow(&wrong).await;
    let (status, page) = w.callback(&back).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("wrong_tenant"));
    assert!(
        page.contains(b.as_str()) && page.contains(a.as_str()),
        "{page}"
    );
    assert!(w.connection(b).await.is_none(), "B was not connected");
    assert_eq!(w.connection(a).await.unwrap().label, "A");

    // A start that names the expected tenant is checked the same way.
    let url = w.start("acct-1", "B?", Some(a)).await;
    let back = w
        .follow(&url.replace(&format!("/{a}/"), "/organizations/"))
        .await;
    assert_eq!(w.callback(&back).await.0, StatusCode::CONFLICT);
}

#[tokio::test]
async fn revoked_consent_needs_reauthorization_schedules_skip_it_and_reconsent_recovers() {
    let w = world(2).await;
    let (a, b) = (&w.tenants[0], &w.tenants[1]);
    assert_eq!(w.consent("acct-1", "A", Some(a)).await.0, StatusCode::OK);
    assert_eq!(w.consent("acct-1", "B", Some(b)).await.0, StatusCode::OK);
    assert_eq!(w.sync(a).await.unwrap().status, RunStatus::Succeeded);
    let users = w.stored_users(a).await;
    assert_eq!(users, 60);

    w.tenant(0).revoke_consent();
    w.graph.forget_token(a).await;
    let err = w.sync(a).await.unwrap_err();
    assert!(err.to_string().contains("reauthorized"), "{err}");
    let c = w.connection(a).await.unwrap();
    assert!(
        matches!(&c.status, ConnectionStatus::NeedsReauthorization { reason, retry }
            if reason.contains("revoked") && reason.contains("AADSTS7000229")
                && retry.attempts == 1
                && retry.next_attempt_at == Some(w.clock.now() + chrono::Duration::hours(1))),
        "{:?}",
        c.status
    );
    assert_eq!(w.stored_users(a).await, users, "nothing was deleted");
    // The failed run is the activity entry: what happened, what to do, when it is retried.
    let runs = w.app.store.list_runs(a, 10).await.unwrap();
    let failed: Vec<_> = runs
        .iter()
        .filter(|r| matches!(r.status, RunStatus::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        matches!(&failed[0].status, RunStatus::Failed { error } if error.contains("consent again") && error.contains("next automatic attempt")),
        "{:?}",
        failed[0].status
    );

    // The next scheduled tick skips it until the retry is due, without another entry; the
    // other tenant of the same account is unaffected.
    let (requested, skipped, sent) = w.schedule().await;
    assert_eq!((requested, skipped), (1, 1));
    assert_eq!(sent, vec![b.clone()]);
    assert_eq!(
        w.app.store.list_runs(a, 10).await.unwrap().len(),
        runs.len()
    );
    // Reading the API shows the state too.
    let (_, v) = w.get(&format!("/accounts/acct-1/connections/{a}")).await;
    assert_eq!(v["status"]["status"], "needs_reauthorization");

    // Reconsent: Connected again, same label, syncing resumes.
    let url = w.reconnect_url("acct-1", a).await;
    let back = w.follow(&url).await;
    let (status, page) = w.callback(&back).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let c = w.connection(a).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Connected);
    assert_eq!(c.label, "A");
    let (requested, skipped, _) = w.schedule().await;
    assert_eq!((requested, skipped), (2, 0));
    assert_eq!(w.sync(a).await.unwrap().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_blocking_policy_also_needs_reauthorization() {
    let w = world(1).await;
    let t = &w.tenants[0];
    assert_eq!(w.consent("acct-1", "A", None).await.0, StatusCode::OK);
    w.tenant(0).set_token_block(Some(TokenBlock::AppDisabled));
    w.graph.forget_token(t).await;
    assert!(w.sync(t).await.is_err());
    assert!(matches!(
        w.connection(t).await.unwrap().status,
        ConnectionStatus::NeedsReauthorization { reason, .. } if reason.contains("disabled")
    ));
}

#[tokio::test]
async fn disconnect_removes_credentials_and_details_keeps_users_and_stops_schedules() {
    let w = world(1).await;
    let t = &w.tenants[0];
    assert_eq!(w.consent("acct-1", "A", None).await.0, StatusCode::OK);
    assert_eq!(w.sync(t).await.unwrap().status, RunStatus::Succeeded);
    let names = tenant_secret_names(t);
    w.app
        .vault
        .put_secret(&names[0], &Secret::new("per-tenant-token"))
        .await
        .unwrap();

    let (status, v) = w
        .post(
            &format!("/accounts/acct-1/connections/{t}/disconnect"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let c = w.connection(t).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Disconnected);
    assert!(c.tenant_name.is_none() && c.verified_domains.is_empty());
    assert!(matches!(
        w.app.vault.get_secret(&names[0]).await,
        Err(entra_sync_core::error::VaultError::NotFound(_))
    ));
    assert_eq!(w.stored_users(t).await, 60, "synced users are kept");
    assert_eq!(w.schedule().await.0, 0, "no fetch is scheduled");
    assert!(
        w.app
            .store
            .list_runs(t, 10)
            .await
            .unwrap()
            .iter()
            .all(|r| !matches!(r.status, RunStatus::Skipped { .. })),
        "a disconnected directory is skipped silently"
    );
    assert!(
        w.sync(t).await.is_err(),
        "a fetch that was already queued refuses to run"
    );

    // Connecting it again (same account) works.
    assert_eq!(w.consent("acct-1", "A again", None).await.0, StatusCode::OK);
    assert_eq!(
        w.connection(t).await.unwrap().status,
        ConnectionStatus::Connected
    );
}

#[tokio::test]
async fn a_tenant_disconnected_by_one_account_is_free_for_another() {
    let w = world(1).await;
    let t = &w.tenants[0];
    assert_eq!(w.consent("acct-1", "A", None).await.0, StatusCode::OK);
    assert_eq!(w.sync(t).await.unwrap().status, RunStatus::Succeeded);
    let a_users = w.local_users("acct-1").await;
    assert!(!a_users.is_empty());

    // While acct-1 holds it, connected or needing reauthorization, acct-2 is told to
    // disconnect it there first, and nothing of acct-1 is named.
    let held = |page: &str| {
        page.contains("already connected to another account")
            && page.contains("disconnect it there first")
            && !page.contains("acct-1")
    };
    let (status, page) = w.consent("acct-2", "B", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(held(&page), "{page}");
    w.tenant(0).revoke_consent();
    w.graph.forget_token(t).await;
    assert!(w.sync(t).await.is_err());
    assert!(matches!(
        w.connection(t).await.unwrap().status,
        ConnectionStatus::NeedsReauthorization { .. }
    ));
    w.tenant(0).grant_consent();
    let (status, page) = w.consent("acct-2", "B", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(held(&page), "{page}");

    // Disconnected by acct-1: free for acct-2, which then holds it.
    let (status, _) = w
        .post(
            &format!("/accounts/acct-1/connections/{t}/disconnect"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = w.consent("acct-2", "B", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let c = w.connection(t).await.unwrap();
    assert_eq!(c.account_id, AccountId("acct-2".into()));
    assert_eq!(c.status, ConnectionStatus::Connected);
    assert_eq!(c.label, "B");
    assert!(
        c.tenant_name.is_some(),
        "details read again for the new account"
    );
    let (status, _) = w.get(&format!("/accounts/acct-1/connections/{t}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "acct-1 no longer sees it");
    assert_eq!(w.consent("acct-1", "A", None).await.0, StatusCode::CONFLICT);

    // acct-2's sync provisions acct-2's own users; acct-1's stay as they were.
    assert_eq!(w.sync(t).await.unwrap().status, RunStatus::Succeeded);
    assert_eq!(w.local_users("acct-1").await, a_users);
    let b_users = w.local_users("acct-2").await;
    assert_eq!(b_users.len(), a_users.len());
    assert!(
        b_users
            .iter()
            .all(|u| u.account_id == AccountId("acct-2".into()))
    );
}

#[tokio::test]
async fn one_account_holds_many_tenants() {
    let w = world(3).await;
    for (i, t) in w.tenants.iter().enumerate() {
        let (status, _) = w.consent("msp", &format!("Customer {i}"), Some(t)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, v) = w.get("/accounts/msp/connections").await;
    assert_eq!(v["connections"].as_array().unwrap().len(), 3);
    let (_, v) = w.get("/accounts/other/connections").await;
    assert!(v["connections"].as_array().unwrap().is_empty());
}
