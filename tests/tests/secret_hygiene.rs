//! Secret hygiene: everything the program logs (every target, TRACE, as text and as JSON), every
//! error it returns (`Display`, `Debug`, the CLI's `error: {e:#}` line, the activity log's
//! failure text) and every file of its data directory is scanned for the client secret, a wrong
//! secret the tests tried, and every access token the emulator issued. Any hit fails the test.
//!
//! The flows: connect and a full sync with the secret kept in the vault, throttling and an
//! access token that expires mid-way, an incremental sync, a wrong client secret, and revoked
//! consent, then a reconsent through the connect routes (refused by a policy, then granted).
//!
//! This file is its own test binary with one test, because the log capture is a process-global
//! subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entra_sync_core::error::SyncError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::{RunStore, Secret, SecretVault};
use entra_sync_core::run::RunStatus;
use entra_sync_core::services::{FetchOptions, plain_words};
use entra_sync_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, RouteMatch, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_local::demo::connect;
use entra_sync_local::runtime::{DataDir, LocalApp, LocalError, SyncSettings};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Everything written by the log layers.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Text (with span fields) and JSON (with the span list), every target, TRACE; `log` records
/// (reqwest) come through `try_init`'s log bridge.
fn install_capture() -> Capture {
    let capture = Capture::default();
    tracing_subscriber::registry()
        .with(LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(capture.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(true)
                .with_current_span(true)
                .with_writer(capture.clone()),
        )
        .try_init()
        .expect("the only subscriber of this test binary");
    capture
}

fn client(emulator: &Emulator, secret: Secret) -> (Arc<GraphClient>, String) {
    let mut gc = GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url()).unwrap(),
        url::Url::parse(&emulator.login_base_url()).unwrap(),
        emulator.app().client_id.clone(),
        secret,
    );
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    let debug = format!("{gc:?}");
    let client = Arc::new(GraphClient::new(gc).unwrap());
    let debug = format!("{debug}\n{client:?}");
    (client, debug)
}

/// What a user of the CLI or the activity log would read about a failure.
fn error_texts(e: &LocalError) -> String {
    let mut out = format!("{e}\n{e:?}\n");
    if let LocalError::Sync(s) = e {
        out.push_str(&plain_words(s));
        out.push('\n');
    }
    // The CLI prints `error: {e:#}` of an anyhow error built from it.
    let e = anyhow::Error::from(LocalError::Failed(e.to_string()));
    out.push_str(&format!("error: {e:#}\n{e:?}\n"));
    out
}

fn sync_error_texts(e: &SyncError) -> String {
    format!("{e}\n{e:?}\n{}\n", plain_words(e))
}

async fn sync(
    app: &LocalApp,
    client: &Arc<GraphClient>,
    tenant: &TenantId,
) -> Result<RunStatus, LocalError> {
    app.sync(
        client.clone(),
        tenant,
        &FetchOptions::default(),
        &SyncSettings::default(),
        |_| {},
    )
    .await
    .map(|r| r.status)
}

/// Every occurrence of a needle in the haystack, as (needle index, context).
fn hits(haystack: &str, needles: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, n) in needles.iter().enumerate() {
        if let Some(at) = haystack.find(n.as_str()) {
            // The context around the hit, with the value itself left out of the report.
            let before: String = haystack[..at]
                .chars()
                .rev()
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let after: String = haystack[at + n.len()..].chars().take(80).collect();
            out.push((i, format!("{before}<needle {i}>{after}")));
        }
    }
    out
}

fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_access_token_reaches_logs_errors_or_files() {
    let capture = install_capture();
    let emulator = Emulator::start(EmulatorConfig {
        user_page_size: 20,
        group_page_size: 5,
        member_slice: 10,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let info = emulator.add_tenant(&TenantSpec::new(31, 80, 8));
    let tenant = TenantId::new(info.tenant_id.clone());
    let handle = emulator.tenant(&info.tenant_id).unwrap();
    let secret = emulator.app().client_secret.clone();
    let wrong_secret = "wrong8Q~not-the-app-secret-0d41c2".to_owned();
    let mut texts = String::new();

    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();

    // 1. Connect with the secret kept in the vault (as the demo does), then a full sync through
    //    throttling, 5xx and a dropped connection.
    app.vault
        .put_secret("client-secret", &Secret::new(secret.clone()))
        .await
        .unwrap();
    let from_vault = app.vault.get_secret("client-secret").await.unwrap();
    texts.push_str(&format!("{from_vault:?} {from_vault}\n"));
    let (good, debug) = client(&emulator, from_vault);
    texts.push_str(&debug);
    connect(&app, &good, &tenant).await.unwrap();
    let faults = emulator.faults();
    faults.inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Throttle {
                retry_after_secs: 0,
            },
        )
        .after(1)
        .times(3),
    );
    faults.inject(
        Fault::new(
            RouteMatch::GroupsDelta,
            FaultKind::Unavailable {
                status: 503,
                retry_after_secs: Some(0),
            },
        )
        .times(2),
    );
    faults.inject(Fault::new(
        RouteMatch::Token,
        FaultKind::Throttle {
            retry_after_secs: 0,
        },
    ));
    faults.inject(Fault::new(RouteMatch::UsersDelta, FaultKind::DropConnection).after(2));
    assert_eq!(
        sync(&app, &good, &tenant).await.unwrap(),
        RunStatus::Succeeded
    );
    assert!(
        emulator.counters().throttled_429 >= 3,
        "throttling happened"
    );

    // 2. The access token expires; an incremental sync gets a new one.
    handle.random_churn(5, 20);
    emulator.advance_clock(Duration::from_secs(2 * 3600));
    assert_eq!(
        sync(&app, &good, &tenant).await.unwrap(),
        RunStatus::Succeeded
    );

    // 3. A throttle longer than the client waits surfaces as an error.
    handle.random_churn(6, 5);
    faults.inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Throttle {
                retry_after_secs: 3600,
            },
        )
        .times(50),
    );
    match sync(&app, &good, &tenant).await {
        Ok(status) => texts.push_str(&format!("{status:?}\n")),
        Err(e) => texts.push_str(&error_texts(&e)),
    }
    faults.clear();

    // 4. A wrong client secret: connecting and syncing both fail.
    let (wrong, debug) = client(&emulator, Secret::new(wrong_secret.clone()));
    texts.push_str(&debug);
    let e = connect(&app, &wrong, &tenant).await.unwrap_err();
    texts.push_str(&error_texts(&e));
    let e = sync(&app, &wrong, &tenant).await.unwrap_err();
    texts.push_str(&error_texts(&e));
    let org = wrong.organization(&tenant).await.unwrap_err();
    texts.push_str(&format!("{org}\n{org:?}\n"));

    // 5. Consent revoked: the held token stops working and no new one is issued.
    handle.random_churn(7, 5);
    handle.revoke_consent();
    match sync(&app, &good, &tenant).await {
        Ok(status) => texts.push_str(&format!("{status:?}\n")),
        Err(e) => texts.push_str(&error_texts(&e)),
    }
    let org = good.organization(&tenant).await.unwrap_err();
    texts.push_str(&format!("{org}\n{org:?}\n"));
    texts.push_str(&sync_error_texts(&SyncError::Directory(org)));

    // 6. The connect routes: a reconsent through the consent page (the response bodies and the
    //    callback pages go into the scan), one refused by a Conditional Access policy first.
    //    The single-use state travels in URLs by design, but never into a log or a page.
    let mut states = Vec::new();
    {
        use axum::body::Body;
        use axum::http::Request;
        use tower::ServiceExt;
        let redirect = "https://connect.example.com/connect/callback";
        let config = entra_sync_http::connect::ConnectConfig {
            login_base_url: url::Url::parse(&emulator.login_base_url()).unwrap(),
            client_id: emulator.app().client_id.clone(),
            redirect_uri: Some(url::Url::parse(redirect).unwrap()),
            scope: good.config().scope(),
            state_ttl: chrono::Duration::minutes(10),
            return_url: None,
        };
        let routes = entra_sync_local::serve::connect_router(&app, good.as_ref().clone(), config);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let call = |req: Request<Body>| {
            let routes = routes.clone();
            async move {
                let resp = routes.oneshot(req).await.unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let mut pages = String::new();
        for blocked in [true, false] {
            handle.set_token_block(
                blocked.then_some(entra_sync_emulator::TokenBlock::ConditionalAccess),
            );
            let req = Request::post(format!("/accounts/local/connections/{tenant}/reconnect"))
                .header("content-type", "application/json")
                .body(Body::empty())
                .unwrap();
            let (_, body) = call(req).await;
            let start: serde_json::Value = serde_json::from_str(&body).unwrap();
            texts.push_str(&format!("{start}\n"));
            let consent_url = url::Url::parse(start["consent_url"].as_str().unwrap()).unwrap();
            states.extend(
                consent_url
                    .query_pairs()
                    .filter(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned()),
            );
            let back = http.get(consent_url).send().await.unwrap();
            let location = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
            let req = Request::get(format!(
                "{}?{}",
                location.path(),
                location.query().unwrap_or("")
            ))
            .body(Body::empty())
            .unwrap();
            let (status, body) = call(req).await;
            pages.push_str(&body);
            assert_eq!(status.is_success(), !blocked, "{pages}");
        }
        assert!(pages.contains("Conditional Access") && pages.contains("Directory connected"));
        assert_eq!(states.len(), 2);
        let page_hits = hits(&pages, &states);
        assert!(page_hits.is_empty(), "a state in a page: {page_hits:?}");
        texts.push_str(&pages);
        let req = Request::get("/accounts/local/connections")
            .body(Body::empty())
            .unwrap();
        texts.push_str(&call(req).await.1);
    }

    // The activity log, as `runs` prints it.
    let runs = app.store.list_runs(&tenant, 50).await.unwrap();
    assert!(runs.len() >= 3);
    assert!(
        runs.iter()
            .any(|r| matches!(r.status, RunStatus::Failed { .. })),
        "the failing flows recorded failed runs: {runs:?}"
    );
    for r in &runs {
        texts.push_str(&format!("{r:?}\n"));
    }

    // The scan is live: it finds a value planted in the log.
    tracing::info!(probe = "hygiene-probe-5c1e", "probe");

    let tokens = emulator.issued_tokens();
    assert!(tokens.len() >= 2, "tokens issued: {}", tokens.len());
    let mut needles = vec![secret.clone(), wrong_secret.clone()];
    needles.extend(tokens.iter().cloned());
    // Also the opaque part alone, in case a prefix were stripped or split.
    needles.extend(
        tokens
            .iter()
            .filter_map(|t| t.strip_prefix("emu.").map(str::to_owned)),
    );

    let log = capture.text();
    assert!(
        log.len() > 10_000,
        "the log was captured ({} bytes)",
        log.len()
    );
    for expected in [
        "page reconciled",
        "access token acquired",
        "\"level\":\"TRACE\"",
        "hygiene-probe-5c1e",
    ] {
        assert!(log.contains(expected), "the log has {expected:?}");
    }
    assert_eq!(
        hits(&log, &["hygiene-probe-5c1e".to_owned()]).len(),
        1,
        "the scanner finds what is there"
    );

    let log_hits = hits(&log, &needles);
    assert!(log_hits.is_empty(), "secrets in the log: {log_hits:?}");
    let state_hits = hits(&log, &states);
    assert!(
        state_hits.is_empty(),
        "consent states in the log: {state_hits:?}"
    );
    assert!(log.contains("consent callback connected a directory"));
    let text_hits = hits(&texts, &needles);
    assert!(text_hits.is_empty(), "secrets in errors: {text_hits:?}");
    assert!(
        texts.contains("reauthoriz") || texts.contains("consent"),
        "{texts}"
    );

    // Files: the vault holds the secret sealed, never in clear; nothing else holds it at all.
    let vault = std::fs::read(DataDir::new(dir.path()).vault()).unwrap();
    assert!(!vault.is_empty());
    let files = files_under(dir.path());
    assert!(files.len() >= 4, "store, queue, vault, key, events");
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        let file_hits = hits(&text, &needles);
        assert!(
            file_hits.is_empty(),
            "{} holds a secret or token: {file_hits:?}",
            path.display()
        );
    }
    emulator.shutdown().await;
}
