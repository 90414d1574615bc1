//! `entra-sync events ...` through the program: an endpoint created with its secret printed
//! once (and never again), refusals in one line, `events deliver` sending a committed change
//! to a receiver on 127.0.0.1 (the loopback test setting), the delivery log, redelivery,
//! disable and enable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::ports::{ConnectionStore, LocalUserStore};
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_local::runtime::{DataDir, LocalApp, SyncSettings};
use serde_json::Value;

const TENANT: &str = "6f1c2b8e-3f7a-4d2b-9c41-0a5e8d7b1c23";

fn program(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTRA_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("ENTRA_SYNC_DATA_DIR", dir)
        .stdin(Stdio::null())
        .arg("events")
        .args(args);
    cmd
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = program(dir, args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

async fn json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args).await;
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn setup(dir: &Path) {
    let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
    app.store
        .put_connection(&Connection {
            tenant_id: TenantId::new(TENANT),
            account_id: AccountId("acct".into()),
            label: "contoso".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
}

async fn change(dir: &Path, id: &str) {
    let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
    let user = LocalUser::pre_existing(
        AccountId("acct".into()),
        id,
        &format!("{id}@contoso.example"),
        LocalStatus::Pending,
        chrono::Utc::now(),
    );
    app.store.put_local_users(&[user]).await.unwrap();
}

#[tokio::test]
async fn endpoints_are_managed_and_delivered_to_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d).await;
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(h["webhook-id"].to_str().unwrap().to_owned());
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let url = format!("http://127.0.0.1:{port}/hook");

    // Refused in one line: private, plain http without the test setting, unknown type.
    for args in [
        vec!["endpoints", "create", "--url", "https://10.0.0.1/hook"],
        vec!["endpoints", "create", "--url", url.as_str()],
        vec![
            "endpoints",
            "create",
            "--url",
            "https://hooks.example.com/",
            "--types",
            "user.exploded",
        ],
    ] {
        let out = run(d, &args).await;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("Error {"), "no Debug text: {err}");
    }

    let created = json(
        d,
        &[
            "endpoints",
            "create",
            "--url",
            &url,
            "--allow-insecure-loopback",
            "--json",
        ],
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let listed = json(d, &["endpoints", "list", "--json"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );

    change(d, "l1").await;
    let sent = json(d, &["deliver", "--allow-insecure-loopback", "--json"]).await;
    assert_eq!(sent["delivered"], 1, "{sent}");
    assert_eq!(got.lock().unwrap().len(), 1);
    let log = json(d, &["endpoints", "deliveries", &id, "--json"]).await;
    assert_eq!(log[0]["state"], "delivered", "{log}");
    assert_eq!(log[0]["attempts"][0]["status"], 200);
    // Nothing due: nothing sent again.
    let sent = json(d, &["deliver", "--allow-insecure-loopback", "--json"]).await;
    assert_eq!(sent["attempted"], 0);

    // Redelivered by hand: sent again, with the same webhook-id.
    let dl = log[0]["id"].as_str().unwrap();
    let again = json(d, &["endpoints", "redeliver", dl, "--json"]).await;
    assert_eq!(again["state"], "pending");
    json(d, &["deliver", "--allow-insecure-loopback", "--json"]).await;
    {
        let ids = got.lock().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], ids[1]);
    }

    // Disabled: nothing is sent, and events committed meanwhile are not kept for it; enabled
    // again: the next change goes out.
    let off = json(d, &["endpoints", "disable", &id, "--json"]).await;
    assert_eq!(off["state"]["status"], "disabled");
    change(d, "l2").await;
    let sent = json(d, &["deliver", "--allow-insecure-loopback", "--json"]).await;
    assert_eq!(sent["attempted"], 0);
    let on = json(
        d,
        &[
            "endpoints",
            "enable",
            &id,
            "--allow-insecure-loopback",
            "--json",
        ],
    )
    .await;
    assert_eq!(on["state"]["status"], "enabled");
    change(d, "l3").await;
    let sent = json(d, &["deliver", "--allow-insecure-loopback", "--json"]).await;
    assert_eq!(sent["delivered"], 1);

    let rotated = json(d, &["endpoints", "rotate", &id, "--json"]).await;
    assert_ne!(rotated["secret"], secret.as_str());
    let shown = json(d, &["endpoints", "show", &id, "--json"]).await;
    assert_eq!(shown["secrets"].as_array().unwrap().len(), 2);
    let out = run(
        d,
        &["endpoints", "show", "ep_00000000000000000000000000000000"],
    )
    .await;
    assert!(!out.status.success());
}
