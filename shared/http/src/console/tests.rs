//! Router tests of the console on the in-memory ports: every screen renders with the data, no
//! page is served without a session, the login token works once, and no form is accepted
//! without the session's CSRF token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use entra_sync_core::actions::memory::CollectingActionQueue;
use entra_sync_core::directory_write::MemoryDirectoryWriter;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration};
use entra_sync_core::error::DirectoryError;
use entra_sync_core::memory::{CollectingFetchRequests, ManualClock, MemoryStore, MemoryVault};
use entra_sync_core::memory_consent::MemoryConsentStates;
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryUser, Presence, StoredUser, TenantId,
    VerifiedDomain, Version,
};
use entra_sync_core::ports::{
    ConnectionStore, LocalUserStore, MirrorStore, RunStore, TenantDetails, TenantDirectory,
};
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_core::run::{BreakerHold, RunUpdate, SyncRun, Trigger};
use entra_sync_core::services::sync_now::SyncNowDeps;
use entra_sync_core::services::{ConnectDeps, ProjectDeps};
use tower::ServiceExt;
use url::Url;

use super::*;
use crate::api::ApiState;
use crate::api::auth::ApiKey;
use crate::connect::ConnectConfig;

const TENANT: &str = "6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3";
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

fn t0() -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_770_113_700, 0).unwrap()
}

struct World {
    app: Router,
    store: Arc<MemoryStore>,
    requests: Arc<CollectingFetchRequests>,
    writer: Arc<MemoryDirectoryWriter>,
    queue: Arc<CollectingActionQueue>,
    token: String,
    /// The API key (the API's routes are served beside the console, as `serve` does).
    api_key: String,
    clock: Arc<ManualClock>,
}

fn base() -> String {
    format!("/console/accounts/{ACCOUNT}/directories/{TENANT}")
}

async fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let requests = Arc::new(CollectingFetchRequests::default());
    let clock = Arc::new(ManualClock::new(t0()));
    let t = TenantId::new(TENANT);
    store
        .put_connection(&Connection {
            tenant_id: t.clone(),
            account_id: AccountId(ACCOUNT.into()),
            label: "Contoso".into(),
            // Markup in the directory's data must come out as text.
            tenant_name: Some("Contoso <b>Ltd</b>".into()),
            verified_domains: vec![VerifiedDomain {
                name: "contoso.com".into(),
                is_default: true,
                is_initial: false,
            }],
            status: ConnectionStatus::Connected,
            connected_at: t0(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let users: Vec<StoredUser> = (0..6)
        .map(|i| StoredUser {
            user: DirectoryUser {
                id: format!("u{i:03}"),
                display_name: Some(format!("User {i}")),
                mail: Some(format!("user{i}@contoso.com")),
                department: Some("Sales".into()),
                account_enabled: Some(true),
                ..DirectoryUser::default()
            },
            presence: Presence::Present,
            version: Version::new(1, 0),
        })
        .collect();
    store.put_users(&t, &users).await.unwrap();
    let pending = LocalUser::pre_existing(
        AccountId(ACCOUNT.into()),
        "l1",
        "pending.person@contoso.com",
        LocalStatus::Pending,
        t0(),
    );
    store.put_local_users(&[pending]).await.unwrap();
    let run = SyncRun::new("held-1".into(), t.clone(), Trigger::Scheduled, t0());
    store.create_run(&run).await.unwrap();
    store
        .update_run(
            &t,
            "held-1",
            &RunUpdate::Hold(BreakerHold {
                deactivations: 41,
                active_before: 57,
                threshold: "more than 10 %".into(),
                empty_read: false,
                held_at: t0(),
                held_since: None,
                applied_deactivations: 0,
            }),
        )
        .await
        .unwrap();
    let (api_key, key) = ApiKey::generate([3; 32]);
    let writer = Arc::new(MemoryDirectoryWriter::new());
    let queue = Arc::new(CollectingActionQueue::new());
    let actions = entra_sync_core::actions::testing::memory_deps(
        &store,
        writer.clone(),
        queue.clone(),
        clock.clone(),
    );
    let api = ApiState {
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
            let (endpoints, process) =
                entra_sync_core::webhooks::memory::memory_hr_deps(&store, actions.clone());
            crate::api::hr::HrApi { endpoints, process }
        },
        actions,
        outbound: None,
        auth: Arc::new(key),
        console: crate::console::ConsoleSessions::in_memory(clock.clone()),
    };
    let (login, token) = ConsoleLogin::new(Caller::AllAccounts);
    let app = crate::app(crate::api::routes(api.clone()).merge(routes(ConsoleState {
        api,
        login: Some(login),
        default_account: AccountId(ACCOUNT.into()),
        secure_cookie: false,
    })));
    World {
        app,
        store,
        requests,
        writer,
        queue,
        token,
        api_key,
        clock,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl World {
    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut r = Request::get(path);
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        self.send(r.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Answer {
        let mut r =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        self.send(r.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    /// Sign in with the login token: the session cookie (name=value).
    async fn sign_in(&self) -> String {
        let a = self
            .get(&format!("/console/login?token={}", self.token), None)
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        assert!(set.contains("Path=/console"), "{set}");
        set.split(';').next().unwrap().to_owned()
    }
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

fn pages() -> Vec<String> {
    vec![
        "/console/".to_owned(),
        "/console/home".to_owned(),
        format!("/console/accounts/{ACCOUNT}/"),
        format!("{}/", base()),
        format!("{}/users", base()),
        format!("{}/users?status=active", base()),
        format!("{}/groups", base()),
        format!("{}/runs", base()),
        format!("{}/runs/held-1", base()),
        format!("{}/settings", base()),
        format!("{}/import", base()),
        format!("{}/import?mode=only_new", base()),
        format!("{}/actions", base()),
        format!("{}/actions?status=pending_approval", base()),
    ]
}

fn forms() -> Vec<String> {
    vec![
        format!("/console/accounts/{ACCOUNT}/connect"),
        format!("{}/reconnect", base()),
        format!("{}/disconnect", base()),
        format!("{}/users/l1/activate", base()),
        format!("{}/sync", base()),
        format!("{}/runs/held-1/confirm", base()),
        format!("{}/runs/held-1/reject", base()),
        format!("{}/settings", base()),
        format!("{}/import", base()),
        format!("{}/actions", base()),
        format!("{}/actions/a-1/decide", base()),
        format!("{}/actions/a-1/cancel", base()),
        format!("{}/actions/a-1/run", base()),
    ]
}

#[tokio::test]
async fn no_page_and_no_form_without_a_session() {
    let w = world().await;
    for path in pages() {
        for cookie in [None, Some("entra_sync_console=not-a-session")] {
            let a = w.get(&path, cookie).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
            assert!(a.body.contains("Sign in to the console"), "{path}");
            assert!(!a.body.contains("contoso"), "{path}: no data");
        }
    }
    for path in forms() {
        let a = w.post(&path, None, "csrf=x").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // The style sheet is public (it says nothing).
    assert_eq!(
        w.get("/console/static/console.css", None).await.status,
        StatusCode::OK
    );
}

impl World {
    /// A sign-in address from the API, as the host product's backend gets it.
    async fn ticket_path(&self, account: &str) -> String {
        let a = self
            .send(
                Request::post(format!("/v1/accounts/{account}/console-sessions"))
                    .header(header::AUTHORIZATION, format!("Bearer {}", self.api_key))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["account_id"], account);
        v["login_path"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn an_api_ticket_opens_one_accounts_console_once_and_the_session_ends() {
    let w = world().await;
    let path = w.ticket_path(ACCOUNT).await;
    assert!(path.starts_with("/console/login?ticket="), "{path}");
    let a = w.get(&path, None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.headers[header::LOCATION],
        format!("/console/accounts/{ACCOUNT}/")
    );
    let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("Max-Age=28800"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = w.get(&format!("{}/", base()), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The ticket works once.
    let again = w.get(&path, None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    // A session of one account sees only that account: another's pages are 404.
    let other = w.ticket_path("acct-2").await;
    let set = w.get(&other, None).await.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let other_cookie = set.split(';').next().unwrap().to_owned();
    let refused = w.get(&format!("{}/", base()), Some(&other_cookie)).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert!(!refused.body.contains("contoso"), "{}", refused.body);
    // Its home is its own account.
    let home = w.get("/console/", Some(&other_cookie)).await;
    assert_eq!(home.headers[header::LOCATION], "/console/accounts/acct-2/");
    // A ticket not used within its two minutes does not work.
    let late = w.ticket_path(ACCOUNT).await;
    w.clock.advance(Duration::minutes(3));
    assert_eq!(w.get(&late, None).await.status, StatusCode::UNAUTHORIZED);
    // After eight hours the session has ended: pages and forms ask to sign in again.
    w.clock.advance(Duration::hours(8));
    let ended = w.get(&format!("{}/", base()), Some(&cookie)).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
    assert!(ended.body.contains("has ended"), "{}", ended.body);
    let form = w
        .post(&format!("{}/sync", base()), Some(&cookie), "csrf=anything")
        .await;
    assert_eq!(form.status, StatusCode::UNAUTHORIZED);
    assert!(w.requests.take().is_empty(), "nothing ran");
}

#[tokio::test]
async fn the_login_token_signs_in_once() {
    let w = world().await;
    let wrong = w.get("/console/login?token=wrong", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let cookie = w.sign_in().await;
    let again = w
        .get(&format!("/console/login?token={}", w.token), None)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "spent");
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    let home = w.get("/console/", Some(&cookie)).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_screen_renders_the_data_escaped_under_the_console_policy() {
    let w = world().await;
    let cookie = w.sign_in().await;
    let expect: &[(&str, &[&str])] = &[
        (
            "/",
            &[
                "Contoso &lt;b&gt;Ltd&lt;/b&gt;",
                "contoso.com (default)",
                "Connected",
                "Reconnect",
                "Disconnect",
            ],
        ),
        (
            "/users",
            &[
                "pending.person@contoso.com",
                "Activate",
                "Disabled in directory",
            ],
        ),
        ("/groups", &["User Groups"]),
        ("/runs", &["Sync now", "Held", "Scheduled"]),
        (
            "/runs/held-1",
            &[
                "<strong>41</strong>",
                "<strong>57</strong>",
                "more than 10 %",
                "Confirm",
                "Reject",
            ],
        ),
        (
            "/settings",
            &[
                "Email domains",
                "value=\"all\" checked",
                "<option value=\"givenName\">",
                "Breaker",
                "max_count",
                "Create new users",
            ],
        ),
        (
            "/import",
            &[
                "Would create 6",
                "user3@contoso.com",
                "name=\"object_id\" value=\"u003\"",
            ],
        ),
    ];
    for (path, needles) in expect {
        let a = w.get(&format!("{}{path}", base()), Some(&cookie)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_eq!(
            a.headers[header::CONTENT_SECURITY_POLICY],
            CONSOLE_CSP,
            "{path}"
        );
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(!a.body.contains("<script"), "{path}");
        assert!(!a.body.contains("style="), "{path}: no inline style");
        assert!(!a.body.contains("<b>Ltd"), "{path}: escaped");
        assert!(a.body.contains("<h1>"), "{path}: a heading");
        for n in *needles {
            assert!(a.body.contains(n), "{path} lacks {n}: {}", a.body);
        }
    }
    let account = w
        .get(&format!("/console/accounts/{ACCOUNT}/"), Some(&cookie))
        .await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Connect with Microsoft"));
    // Another account's directory is not found, as in the API.
    let other = w
        .get(
            &format!("/console/accounts/acct-2/directories/{TENANT}/"),
            Some(&cookie),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(!other.body.contains("contoso.com"));
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused_and_change_nothing() {
    let w = world().await;
    let cookie = w.sign_in().await;
    let page = w
        .get(&format!("{}/runs/held-1", base()), Some(&cookie))
        .await;
    let csrf = csrf_of(&page.body);
    for path in forms() {
        for form in ["", "csrf=", "csrf=wrong", "label=x"] {
            let a = w.post(&path, Some(&cookie), form).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{path} with {form:?}");
            assert!(a.body.contains("Form refused"), "{path}");
        }
    }
    let t = TenantId::new(TENANT);
    let run = w.store.get_run(&t, "held-1").await.unwrap().unwrap();
    assert!(
        matches!(run.status, entra_sync_core::run::RunStatus::Held { .. }),
        "still held"
    );
    assert!(w.requests.take().is_empty(), "no sync requested");

    // With the token the same forms act.
    let a = w
        .post(
            &format!("{}/sync", base()),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(w.requests.take().len(), 1, "one sync requested");
    let a = w
        .post(
            &format!("{}/users/l1/activate", base()),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let active = w
        .get(&format!("{}/users?status=active", base()), Some(&cookie))
        .await;
    assert!(active.body.contains("pending.person@contoso.com"));
    let a = w
        .post(
            &format!("{}/runs/held-1/confirm", base()),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("Confirmed"), "{}", a.body);
    let run = w.store.get_run(&t, "held-1").await.unwrap().unwrap();
    assert!(!matches!(
        run.status,
        entra_sync_core::run::RunStatus::Held { .. }
    ));
}

#[tokio::test]
async fn the_settings_form_saves_a_filter_and_the_import_preview_follows_it() {
    let w = world().await;
    let cookie = w.sign_in().await;
    let page = w.get(&format!("{}/settings", base()), Some(&cookie)).await;
    let csrf = csrf_of(&page.body);
    let form = format!(
        "csrf={csrf}&version=0&email_domains_mode=any_of&email_domains_values=fabrikam.com\
         &departments_mode=all&departments_values=&office_locations_mode=all&groups_mode=all\
         &target=name&source=displayName&target=email&source=email&target=title&source=jobTitle\
         &automatic=everything&max_count=auto&max_percent=10"
    );
    let a = w
        .post(&format!("{}/settings", base()), Some(&cookie), &form)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("Saved"), "{}", a.body);
    assert!(a.body.contains("fabrikam.com"), "{}", a.body);
    assert!(
        a.body.contains("<option value=\"jobTitle\" selected>"),
        "the new mapping row: {}",
        a.body
    );
    let preview = w.get(&format!("{}/import", base()), Some(&cookie)).await;
    assert!(preview.body.contains("Would create 0"), "{}", preview.body);
    // A stale version is refused with the API's message (412), shown as a page.
    let a = w
        .post(&format!("{}/settings", base()), Some(&cookie), &form)
        .await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{}", a.body);
    assert!(a.body.contains("role=\"alert\""));
}

#[tokio::test]
async fn actions_are_requested_approved_and_a_password_shown_once() {
    use entra_sync_core::actions::ActionKind;
    use entra_sync_core::ports::SettingsStore;
    let w = world().await;
    let t = TenantId::new(TENANT);
    let mut settings = entra_sync_core::settings::ConnectionSettings {
        version: 1,
        ..Default::default()
    };
    settings.actions.enabled = [ActionKind::BlockSignIn, ActionKind::ResetPassword]
        .into_iter()
        .collect();
    w.store.put_settings(&t, &settings, 0).await.unwrap();
    for i in 0..6 {
        w.writer.add_user(&t, &format!("u{i:03}"));
    }
    w.writer.grant_all(&t);
    let cookie = w.sign_in().await;
    let page = w.get(&format!("{}/actions", base()), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Request an action") && page.body.contains("No actions."));
    let csrf = csrf_of(&page.body);
    let key = {
        let at = page.body.find("name=\"key\" value=\"").unwrap() + 18;
        page.body[at..].split('"').next().unwrap().to_owned()
    };
    // Block sign-in: waits for an approver. The same form sent twice acts once.
    let form = format!(
        "csrf={csrf}&key={key}&kind=block_sign_in&user=user2%40contoso.com&group=&service_principal_id=&requested_by=helpdesk"
    );
    for _ in 0..2 {
        let a = w
            .post(&format!("{}/actions", base()), Some(&cookie), &form)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(a.body.contains("waits for an approver"), "{}", a.body);
    }
    let pending = w
        .get(
            &format!("{}/actions?status=pending_approval", base()),
            Some(&cookie),
        )
        .await;
    assert_eq!(
        pending.body.matches("<tr><td>").count(),
        1,
        "{}",
        pending.body
    );
    assert!(pending.body.contains("user2@contoso.com") && pending.body.contains("Approve"));
    let id = {
        let at = pending.body.find("/actions/").unwrap();
        let rest = &pending.body[at + 9..];
        rest.split(['"', '/']).next().unwrap().to_owned()
    };
    // The requester cannot approve; someone else can.
    let decide = format!("{}/actions/{id}/decide", base());
    let a = w
        .post(
            &decide,
            Some(&cookie),
            &format!("csrf={csrf}&by=helpdesk&decision=approve"),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("role=\"alert\""));
    let a = w
        .post(
            &decide,
            Some(&cookie),
            &format!("csrf={csrf}&by=manager&comment=left&decision=approve"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("Approved by manager"), "{}", a.body);
    assert_eq!(w.queue.len(), 1, "queued for the executor");

    // A password reset: approved, then run by its requester; the password on that page only.
    let page = w.get(&format!("{}/actions", base()), Some(&cookie)).await;
    let key = {
        let at = page.body.find("name=\"key\" value=\"").unwrap() + 18;
        page.body[at..].split('"').next().unwrap().to_owned()
    };
    let a = w
        .post(
            &format!("{}/actions", base()),
            Some(&cookie),
            &format!("csrf={csrf}&key={key}&kind=reset_password&user=user3%40contoso.com&requested_by=helpdesk"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let at = a.body.find("/actions/").unwrap();
    let reset = a.body[at + 9..]
        .split(['"', '/'])
        .next()
        .unwrap()
        .to_owned();
    let a = w
        .post(
            &format!("{}/actions/{reset}/decide", base()),
            Some(&cookie),
            &format!("csrf={csrf}&by=manager&decision=approve"),
        )
        .await;
    assert!(a.body.contains("Run the password reset"), "{}", a.body);
    let a = w
        .post(
            &format!("{}/actions/{reset}/run", base()),
            Some(&cookie),
            &format!("csrf={csrf}&runner=helpdesk"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("Temporary password"), "{}", a.body);
    let at = a.body.find("<code>").unwrap() + 6;
    let password = a.body[at..].split('<').next().unwrap().to_owned();
    assert!(password.len() >= 16);
    let shown = w
        .get(&format!("{}/actions/{reset}", base()), Some(&cookie))
        .await;
    assert!(shown.body.contains("Succeeded"), "{}", shown.body);
    assert!(!shown.body.contains(&password), "shown once only");
    let list = w.get(&format!("{}/actions", base()), Some(&cookie)).await;
    assert!(!list.body.contains(&password));
}
