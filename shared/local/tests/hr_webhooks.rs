//! HR webhooks end to end through the local program: `entra-sync sync` fills the mirror from
//! an emulated tenant, `entra-sync hooks create` makes the endpoints, `entra-sync serve`
//! receives signed deliveries on 127.0.0.1, its webhook worker processes them and its action
//! worker runs the workflows' actions; the emulator shows the result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use entra_sync_core::actions::ActionKind;
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::ports::{ConnectionStore, SettingsStore};
use entra_sync_core::settings::ConnectionSettings;
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::mapping::HrSettings;
use entra_sync_core::webhooks::verify::{SigningKey, sign};
use entra_sync_emulator::{DEFAULT_APP_PERMISSIONS, Emulator, EmulatorConfig, NewUser, TenantSpec};
use entra_sync_local::runtime::{DataDir, DirLock, LocalApp, SyncSettings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(120);
const BAMBOO_KEY: &str = "bamboo-private-key-for-the-e2e-test";
const OTHER_TENANT: &str = "0b7e2f7c-1a4d-4c55-9e1f-5a3c2d1e0f99";

fn program(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTRA_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("ENTRA_SYNC_DATA_DIR", dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command) -> Output {
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("entra-sync did not finish")
        .unwrap();
    assert!(
        out.status.success(),
        "entra-sync failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn json(cmd: Command) -> serde_json::Value {
    let out = run(cmd).await;
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

fn hooks(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = program(dir);
    cmd.arg("hooks").args(args);
    cmd
}

struct Served {
    child: tokio::process::Child,
    base: String,
}

async fn serve(dir: &Path, emulator: &Emulator) -> Served {
    let app = emulator.app();
    let mut cmd = program(dir);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--client-id", &app.client_id])
        .args(["--graph-url", &emulator.graph_base_url()])
        .args(["--login-url", &emulator.login_base_url()])
        .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret)
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("Serving the connect routes on ") {
                return url.trim().to_owned();
            }
        }
        panic!("serve ended before it listened");
    })
    .await
    .expect("serve did not start");
    // Keep reading so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served { child, base }
}

fn bamboo_termination(employee: &str, email: &str, date: &str) -> String {
    format!(
        r#"{{"employees":[{{"id":"{employee}-b","action":"Updated","changedFields":["Termination Date"],"fields":{{"Employee #":"{employee}","Work Email":"{email}","Termination Date":"{date}"}}}}]}}"#
    )
}

async fn post_bamboo(http: &reqwest::Client, base: &str, body: &str) -> reqwest::Response {
    let ts = chrono::Utc::now().timestamp();
    let key = SigningKey::from_secret(Source::BambooHr, BAMBOO_KEY).unwrap();
    http.post(format!("{base}/hooks/local/bamboohr"))
        .header("content-type", "application/json")
        .header("x-bamboohr-timestamp", ts.to_string())
        .header(
            "x-bamboohr-signature",
            sign::bamboohr(&key, ts, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn post_standard(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
    body: &str,
) -> reqwest::StatusCode {
    let ts = chrono::Utc::now().timestamp();
    let key = SigningKey::from_secret(Source::Standard, secret).unwrap();
    http.post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            sign::standard(&key, id, ts, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
}

/// `cond` polled until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < until {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("never happened: {what}");
}

/// The offboarding kinds, enabled without approval (the test plays no approver).
async fn configure(dir: &Path) -> (TenantId, AccountId) {
    let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
    let connections = app.store.list_connections().await.unwrap();
    assert_eq!(connections.len(), 1);
    let tenant = connections[0].tenant_id.clone();
    let account = connections[0].account_id.clone();
    let stored = app.store.get_settings(&tenant).await.unwrap();
    let old = stored.as_ref().map_or(0, |s| s.version);
    let mut s: ConnectionSettings = stored.unwrap_or_default();
    s.version = old + 1;
    s.actions.enabled = [
        ActionKind::RevokeSessions,
        ActionKind::RemoveAppRole,
        ActionKind::RemoveGroupMember,
        ActionKind::BlockSignIn,
    ]
    .into_iter()
    .collect();
    s.actions.approval_required.clear();
    s.hr = HrSettings::default();
    app.store.put_settings(&tenant, &s, old).await.unwrap();
    // A second account with its own connection, for the isolation check.
    app.store
        .put_connection(&Connection {
            tenant_id: TenantId::new(OTHER_TENANT),
            account_id: AccountId("other".into()),
            label: "other".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    (tenant, account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_bamboohr_termination_offboards_the_user_through_the_local_program() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let info = emulator.add_tenant(&TenantSpec::new(21, 10, 2));
    let t = emulator.tenant(&info.tenant_id).unwrap();
    t.set_granted_permissions(DEFAULT_APP_PERMISSIONS.iter().copied());
    let mut ann = NewUser::new("Ann Leaver", format!("ann@{}", info.default_domain));
    ann.properties
        .insert("employeeId".into(), serde_json::json!("E100"));
    let ann_id = t.create_user(ann);
    let group = t.group_ids()[0].clone();
    t.add_member(&group, &ann_id).unwrap();

    // 1. The mirror, from the emulator.
    let app = emulator.app();
    let mut sync = program(dir);
    sync.args(["sync", "--no-progress", "--tenant-id", &info.tenant_id])
        .args(["--client-id", &app.client_id])
        .args(["--graph-url", &emulator.graph_base_url()])
        .args(["--login-url", &emulator.login_base_url()])
        .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret);
    run(sync).await;
    let (tenant, account) = configure(dir).await;
    assert_eq!(account.0, "local", "sync connects under the local account");

    // 2. The endpoints: BambooHR's key given, Standard Webhooks secrets generated (once).
    let mut create = hooks(
        dir,
        &[
            "create",
            "--source",
            "bamboohr",
            "--secret-env",
            "E2E_BAMBOO_KEY",
        ],
    );
    create
        .args(["--tenant-id", tenant.as_str()])
        .env("E2E_BAMBOO_KEY", BAMBOO_KEY);
    let out = run(create).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(BAMBOO_KEY), "a given key is never printed");
    let mut std_a = hooks(dir, &["create", "--source", "standard", "--json"]);
    std_a.args(["--tenant-id", tenant.as_str()]);
    let secret_a = json(std_a).await["secret"].as_str().unwrap().to_owned();
    let mut std_b = hooks(dir, &["create", "--source", "standard", "--json"]);
    std_b.args(["--tenant-id", OTHER_TENANT]);
    let secret_b = json(std_b).await["secret"].as_str().unwrap().to_owned();
    let mut list = hooks(dir, &["list", "--json"]);
    list.args(["--tenant-id", tenant.as_str()]);
    let listed = json(list).await.to_string();
    assert!(listed.contains("bamboohr") && listed.contains("standard"));
    assert!(
        !listed.contains(BAMBOO_KEY) && !listed.contains(&secret_a),
        "listings name secrets, never show them"
    );

    // Changing commands take the data directory's lock; listings only read.
    {
        let held = DirLock::acquire(&DataDir::new(dir), "sync").unwrap();
        let mut disable = hooks(dir, &["disable", "--source", "bamboohr"]);
        disable.args(["--tenant-id", tenant.as_str()]);
        let out = tokio::time::timeout(DEADLINE, disable.output())
            .await
            .unwrap()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("another sync of this directory"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut list = hooks(dir, &["list"]);
        list.args(["--tenant-id", tenant.as_str()]);
        run(list).await;
        drop(held);
    }

    // 3. serve receives.
    let served = serve(dir, &emulator).await;
    let http = reqwest::Client::new();
    let termination = bamboo_termination("E100", "ann@nowhere.example", "2026-01-15");
    let res = post_bamboo(&http, &served.base, &termination).await;
    assert_eq!(res.status(), 202);
    let accepted: serde_json::Value = res.json().await.unwrap();
    let delivery_id = accepted["delivery_id"].as_str().unwrap().to_owned();

    // Concurrent duplicates of a new delivery: one is accepted, the others are duplicates.
    let unmatched = bamboo_termination("E999", "nobody@nowhere.example", "2026-01-20");
    let sends = (0..6).map(|_| post_bamboo(&http, &served.base, &unmatched));
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 200),
        "{statuses:?}"
    );

    // Tenant isolation: account A's secret never verifies on account B's endpoint.
    let hire = r#"{"type":"hire","data":{"employee_id":"B1","start_date":"2027-01-04"}}"#;
    let b_url = format!("{}/hooks/other/standard", served.base);
    assert_eq!(
        post_standard(&http, &b_url, &secret_a, "msg_1", hire).await,
        401
    );
    assert_eq!(
        post_standard(&http, &b_url, &secret_b, "msg_1", hire).await,
        202
    );

    // 4. The worker processes: the termination starts an offboarding, the unknown person
    //    is held for review (once, although sent six times).
    eventually("the termination is processed", || {
        let mut d = hooks(dir, &["deliveries", "--source", "bamboohr", "--json"]);
        d.args(["--tenant-id", tenant.as_str()]);
        let id = delivery_id.clone();
        async move {
            let all = json(d).await;
            all.as_array()
                .unwrap()
                .iter()
                .any(|d| d["id"] == id.as_str() && d["processing"]["status"] == "done")
        }
    })
    .await;
    let mut d = hooks(dir, &["deliveries", "--source", "bamboohr", "--json"]);
    d.args(["--tenant-id", tenant.as_str()]);
    let log = json(d).await;
    let accepted_rows = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "accepted")
        .count();
    assert_eq!(accepted_rows, 2, "{log}");
    let row = log
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == delivery_id.as_str())
        .unwrap();
    assert!(
        row["workflow_ids"].as_array().is_some_and(|w| w.len() == 1),
        "the termination starts one offboarding: {row}"
    );
    eventually("the unmatched person is on the review list", || {
        let mut r = hooks(dir, &["reviews", "--json"]);
        r.args(["--tenant-id", tenant.as_str()]);
        async move {
            let items = json(r).await;
            let items = items.as_array().unwrap().clone();
            items.len() == 1 && items[0]["message"].as_str().unwrap().contains("E999")
        }
    })
    .await;
    // A changing command works beside the running `serve` (which holds the lock).
    let mut create = hooks(
        dir,
        &[
            "create",
            "--source",
            "hibob",
            "--secret-env",
            "E2E_HIBOB_KEY",
        ],
    );
    create
        .args(["--tenant-id", tenant.as_str()])
        .env("E2E_HIBOB_KEY", "hibob-key-for-the-e2e-test");
    run(create).await;

    // 5. The offboarding's actions run in `serve` (its action worker takes the steps the
    //    delivery's workflow queued): Ann ends blocked and out of her group.
    eventually("Ann is blocked and out of her group", || {
        let blocked = t.user(&ann_id).unwrap()["accountEnabled"] == false;
        let member = t
            .members(&group)
            .unwrap()
            .iter()
            .any(|(id, _)| *id == ann_id);
        async move { blocked && !member }
    })
    .await;
    let mut served = served;
    served.child.start_kill().unwrap();
    let _ = served.child.wait().await;
    emulator.shutdown().await;
}
