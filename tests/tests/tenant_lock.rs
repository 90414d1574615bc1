//! A tenant must never lock for good: the operator and directory faults that used to wedge a
//! connection, each reproduced through the local program's wiring (emulator on loopback ->
//! Graph client -> fetch -> durable queue -> reconcile -> SQLite) and recovered from.
//!
//! * revoked then restored consent: the connection is quarantined (flagged, retried 1 h, 2 h ...
//!   later by the scheduler), a manual sync tries at once, the first success clears the flag;
//! * a mistyped client id or an unknown tenant: a configuration error in plain words that does
//!   not flag the connection;
//! * a stored delta link on another host form (`127.0.0.1` vs `localhost`): an orderly full
//!   round instead of a wedge, and `--full` recovers any wedged round;
//! * a failed run keeps its own id; a closed port is named with its URL and OS error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use entra_sync_core::error::{DirectoryError, SyncError};
use entra_sync_core::memory::ManualClock;
use entra_sync_core::model::{Connection, ConnectionStatus, Stream, TenantId};
use entra_sync_core::page::{FetchedPage, PageRequest, RoundMode};
use entra_sync_core::ports::{Clock, ConnectionStore, DirectoryReader, RunStore, Secret};
use entra_sync_core::run::{RunStatus, SyncRun, Trigger};
use entra_sync_core::services::FetchOptions;
use entra_sync_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, RouteMatch, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_local::demo::connect;
use entra_sync_local::runtime::{DataDir, LocalApp, LocalError, SyncSettings};
use entra_sync_local::verify::compare;
use url::Url;

struct World {
    emulator: Emulator,
    tenant: TenantId,
    app: LocalApp,
    clock: Arc<ManualClock>,
    client: Arc<GraphClient>,
    _dir: tempfile::TempDir,
}

fn graph_config(emulator: &Emulator, graph: &str, client_id: &str) -> GraphConfig {
    let mut gc = GraphConfig::new(
        Url::parse(graph).unwrap(),
        Url::parse(&emulator.login_base_url()).unwrap(),
        client_id,
        Secret::new(emulator.app().client_secret),
    );
    gc.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    gc
}

async fn world() -> World {
    let emulator = Emulator::start(EmulatorConfig {
        user_page_size: 23,
        group_page_size: 7,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let info = emulator.add_tenant(&TenantSpec::new(31, 80, 8));
    let dir = tempfile::tempdir().unwrap();
    let mut app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    app.clock = clock.clone();
    let client = Arc::new(
        GraphClient::new(graph_config(
            &emulator,
            &emulator.graph_base_url(),
            &emulator.app().client_id,
        ))
        .unwrap(),
    );
    let tenant = TenantId::new(info.tenant_id);
    connect(&app, &client, &tenant).await.unwrap();
    World {
        emulator,
        tenant,
        app,
        clock,
        client,
        _dir: dir,
    }
}

impl World {
    async fn sync_with(
        &self,
        directory: Arc<dyn DirectoryReader>,
        trigger: Trigger,
        force_full: bool,
    ) -> Result<SyncRun, LocalError> {
        // Run ids start with their start time: one second apart, the activity log (newest
        // first) lists them in order.
        self.clock.advance(chrono::Duration::seconds(1));
        self.app
            .sync(
                directory,
                &self.tenant,
                &FetchOptions {
                    trigger,
                    force_full,
                    ..FetchOptions::default()
                },
                &SyncSettings::default(),
                |_| {},
            )
            .await
    }

    /// `entra-sync sync`: a manual run.
    async fn manual(&self) -> Result<SyncRun, LocalError> {
        self.sync_with(self.client.clone(), Trigger::Manual, false)
            .await
    }

    /// The fetch the scheduler requested.
    async fn scheduled(&self) -> Result<SyncRun, LocalError> {
        self.sync_with(self.client.clone(), Trigger::Scheduled, false)
            .await
    }

    async fn connection(&self) -> Connection {
        self.app
            .store
            .get_connection(&self.tenant)
            .await
            .unwrap()
            .unwrap()
    }

    async fn runs(&self) -> Vec<SyncRun> {
        self.app.store.list_runs(&self.tenant, 100).await.unwrap()
    }

    async fn assert_store_matches_directory(&self) {
        let stored = self.app.export(&self.tenant).await.unwrap();
        let v = compare(
            &stored,
            &self
                .emulator
                .tenant(self.tenant.as_str())
                .unwrap()
                .snapshot(),
        );
        assert!(v.matches(), "store differs: {:?}", v.differences);
    }

    fn revoke(&self) {
        self.emulator
            .tenant(self.tenant.as_str())
            .unwrap()
            .revoke_consent();
    }

    fn restore(&self) {
        self.emulator
            .tenant(self.tenant.as_str())
            .unwrap()
            .grant_consent();
    }
}

/// The retry schedule of a connection that needs reauthorization: (attempts, next attempt).
fn retry_of(c: &Connection) -> (u32, Option<chrono::DateTime<Utc>>) {
    match &c.status {
        ConnectionStatus::NeedsReauthorization { retry, .. } => {
            (retry.attempts, retry.next_attempt_at)
        }
        other => panic!("expected needs reauthorization, got {other}"),
    }
}

fn failed_error(run: &SyncRun) -> &str {
    match &run.status {
        RunStatus::Failed { error } => error,
        other => panic!("expected a failed run, got {other:?}"),
    }
}

fn not_syncable(e: LocalError) -> String {
    match e {
        LocalError::Sync(e @ SyncError::ConnectionNotSyncable { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test]
async fn revoked_then_restored_consent_recovers_with_a_manual_full_sync() {
    let w = world().await;
    assert_eq!(w.manual().await.unwrap().status, RunStatus::Succeeded);

    w.revoke();
    let err = w.manual().await.unwrap_err();
    assert!(err.to_string().contains("reauthorized"), "{err}");
    let t0 = w.clock.now();
    let c = w.connection().await;
    assert_eq!(retry_of(&c), (1, Some(t0 + chrono::Duration::hours(1))));
    let failed = w.runs().await.remove(0);
    let text = failed_error(&failed);
    assert!(
        text.contains("consent again") && text.contains("next automatic attempt"),
        "{text}"
    );

    // The scheduler's fetch before the retry is due is refused locally, in plain words,
    // without a request.
    let before = w.emulator.counters().requests;
    let why = not_syncable(w.scheduled().await.unwrap_err());
    assert!(
        why.contains("needs reauthorization") && why.contains("manual sync"),
        "{why}"
    );
    assert!(
        !why.contains('{') && !why.contains("NeedsReauthorization"),
        "{why}"
    );
    assert_eq!(w.emulator.counters().requests, before);

    // Consent is restored in the directory (no reconnect through the app): a manual
    // `sync --full` tries at once and the first success clears the flag.
    w.restore();
    let run = w
        .sync_with(w.client.clone(), Trigger::Manual, true)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.users.mode, Some(RoundMode::Full));
    assert_eq!(w.connection().await.status, ConnectionStatus::Connected);
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("works again") && n.contains("1 failed attempt")),
        "{:?}",
        run.notes
    );
    w.assert_store_matches_directory().await;
    assert_eq!(w.scheduled().await.unwrap().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn scheduled_retries_back_off_and_the_first_due_success_clears_the_flag() {
    let w = world().await;
    assert_eq!(w.scheduled().await.unwrap().status, RunStatus::Succeeded);
    w.revoke();
    assert!(w.scheduled().await.is_err());
    let t0 = w.clock.now();
    assert_eq!(
        retry_of(&w.connection().await),
        (1, Some(t0 + chrono::Duration::hours(1)))
    );

    // Not due yet: refused, nothing counted. Due: tried, failed again, twice the wait.
    w.clock.advance(chrono::Duration::minutes(59));
    not_syncable(w.scheduled().await.unwrap_err());
    assert_eq!(retry_of(&w.connection().await).0, 1);
    w.clock.advance(chrono::Duration::minutes(1));
    assert!(w.scheduled().await.is_err());
    let t1 = w.clock.now();
    assert_eq!(
        retry_of(&w.connection().await),
        (2, Some(t1 + chrono::Duration::hours(2)))
    );
    w.clock.advance(chrono::Duration::hours(2));
    assert!(w.scheduled().await.is_err());
    let t2 = w.clock.now();
    assert_eq!(
        retry_of(&w.connection().await),
        (3, Some(t2 + chrono::Duration::hours(4)))
    );
    // One activity entry per attempt (three failed runs, each with its own id), none
    // between attempts.
    let failed: Vec<String> = w
        .runs()
        .await
        .into_iter()
        .filter(|r| matches!(r.status, RunStatus::Failed { .. }))
        .map(|r| r.run_id)
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");

    w.restore();
    w.clock.advance(chrono::Duration::hours(4));
    let run = w.scheduled().await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(w.connection().await.status, ConnectionStatus::Connected);
    assert!(
        run.notes.iter().any(|n| n.contains("3 failed attempt")),
        "{:?}",
        run.notes
    );
    w.assert_store_matches_directory().await;
}

#[tokio::test]
async fn a_mistyped_client_id_or_an_unknown_tenant_is_a_configuration_error_not_a_lock() {
    let w = world().await;
    assert_eq!(w.manual().await.unwrap().status, RunStatus::Succeeded);

    let typo = Arc::new(
        GraphClient::new(graph_config(
            &w.emulator,
            &w.emulator.graph_base_url(),
            "00000000-0000-0000-0000-00000000beef",
        ))
        .unwrap(),
    );
    let err = w
        .sync_with(typo.clone(), Trigger::Manual, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            LocalError::Sync(SyncError::Directory(DirectoryError::Misconfigured { code }))
                if code == "AADSTS700016"
        ),
        "{err}"
    );
    assert!(err.to_string().contains("client id"), "{err}");
    let text = failed_error(&w.runs().await[0]).to_owned();
    assert!(
        text.contains("configuration") && text.contains("not flagged") && !text.contains("revoked"),
        "{text}"
    );
    // Our configuration, not the customer's consent: the connection is not flagged, and the
    // scheduler's next fetch (a second mistake) is tried, not refused.
    assert_eq!(w.connection().await.status, ConnectionStatus::Connected);
    assert!(matches!(
        w.sync_with(typo, Trigger::Scheduled, false).await,
        Err(LocalError::Sync(SyncError::Directory(
            DirectoryError::Misconfigured { .. }
        )))
    ));
    assert_eq!(w.connection().await.status, ConnectionStatus::Connected);
    // With the right client id the next sync simply works.
    assert_eq!(w.scheduled().await.unwrap().status, RunStatus::Succeeded);

    // A tenant the login endpoint does not know (AADSTS90002).
    let unknown = TenantId::new("4f6b8d2a-1c3e-4a5b-9d7f-0e2c4a6b8d10");
    w.app
        .store
        .put_connection(&Connection {
            tenant_id: unknown.clone(),
            ..w.connection().await
        })
        .await
        .unwrap();
    let err = w
        .app
        .sync(
            w.client.clone(),
            &unknown,
            &FetchOptions::default(),
            &SyncSettings::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not know this tenant")
            && err.to_string().contains("AADSTS90002"),
        "{err}"
    );
    assert_eq!(
        w.app
            .store
            .get_connection(&unknown)
            .await
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Connected
    );
}

#[tokio::test]
async fn a_delta_link_on_another_host_form_starts_a_full_round_naming_both_hosts() {
    let w = world().await;
    let numeric = w.emulator.graph_base_url();
    assert!(numeric.starts_with("http://127.0.0.1:"), "{numeric}");
    assert_eq!(w.manual().await.unwrap().status, RunStatus::Succeeded);

    // The same Graph (and login), configured by name: the stored links point to 127.0.0.1.
    let named = numeric.replace("127.0.0.1", "localhost");
    let mut gc = graph_config(&w.emulator, &named, &w.emulator.app().client_id);
    gc.login_base_url = Url::parse(
        &w.emulator
            .login_base_url()
            .replace("127.0.0.1", "localhost"),
    )
    .unwrap();
    let by_name = Arc::new(GraphClient::new(gc).unwrap());
    w.emulator
        .tenant(w.tenant.as_str())
        .unwrap()
        .random_churn(5, 20);
    let run = w
        .sync_with(by_name.clone(), Trigger::Scheduled, false)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.users.mode, Some(RoundMode::Full));
    assert_eq!(run.groups.mode, Some(RoundMode::Full));
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains(&numeric) && n.contains(&named)),
        "the note names both hosts: {:?}",
        run.notes
    );
    w.assert_store_matches_directory().await;
    // From then on the links are on the configured host: incremental again.
    let run = w
        .sync_with(by_name, Trigger::Scheduled, false)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.users.mode, Some(RoundMode::Incremental));
}

/// The emulator behind a switch that makes every deltaLink request fail permanently (a
/// link Graph keeps refusing): the round that starts from it can never finish by itself.
struct RefusesDeltaLinks {
    inner: Arc<GraphClient>,
    refuse: AtomicBool,
}

#[async_trait]
impl DirectoryReader for RefusesDeltaLinks {
    async fn fetch_page(
        &self,
        tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        if self.refuse.load(Ordering::SeqCst)
            && matches!(request, PageRequest::Link(l) if l.contains("deltatoken"))
        {
            return Err(DirectoryError::Permanent {
                status: 400,
                code: "Request_BadRequest".into(),
            });
        }
        self.inner.fetch_page(tenant, stream, request).await
    }

    fn requests_sent(&self, tenant: &TenantId) -> u64 {
        self.inner.requests_sent(tenant)
    }
}

#[tokio::test]
async fn full_always_recovers_a_round_that_cannot_finish() {
    let w = world().await;
    let reader = Arc::new(RefusesDeltaLinks {
        inner: w.client.clone(),
        refuse: AtomicBool::new(false),
    });
    assert_eq!(
        w.sync_with(reader.clone(), Trigger::Manual, false)
            .await
            .unwrap()
            .status,
        RunStatus::Succeeded
    );
    reader.refuse.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        assert!(
            w.sync_with(reader.clone(), Trigger::Manual, false)
                .await
                .is_err()
        );
    }
    // The directory still refuses the link, but a requested full read does not need it.
    w.emulator
        .tenant(w.tenant.as_str())
        .unwrap()
        .random_churn(9, 15);
    let run = w
        .sync_with(reader.clone(), Trigger::Manual, true)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.users.mode, Some(RoundMode::Full));
    w.assert_store_matches_directory().await;
}

#[tokio::test]
async fn a_failed_run_keeps_its_own_id_and_the_next_run_continues_its_round() {
    let w = world().await;
    // The users round fails after its first page (the 500s outlast the retries).
    w.emulator.faults().inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Unavailable {
                status: 500,
                retry_after_secs: None,
            },
        )
        .after(1)
        .times(3),
    );
    assert!(w.manual().await.is_err());
    let first = w.runs().await.remove(0);
    let text = failed_error(&first).to_owned();
    assert!(
        text.contains("HTTP 500") && text.contains("/v1.0/users/delta"),
        "{text}"
    );
    assert!(
        !text.contains("skiptoken") && !text.contains("None"),
        "{text}"
    );

    let second = w.manual().await.unwrap();
    assert_eq!(second.status, RunStatus::Succeeded);
    assert_ne!(
        second.run_id, first.run_id,
        "a new run, not the failed one again"
    );
    assert_eq!(second.continues.as_deref(), Some(first.run_id.as_str()));
    let runs = w.runs().await;
    let kept = runs.iter().find(|r| r.run_id == first.run_id).unwrap();
    assert_eq!(
        kept.status, first.status,
        "the failed run is kept as it was"
    );
    assert_eq!(kept.finished_at, first.finished_at);
    w.assert_store_matches_directory().await;
}

#[tokio::test]
async fn a_closed_port_is_named_with_the_os_error_in_the_activity_log() {
    let w = world().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut gc = graph_config(
        &w.emulator,
        &format!("http://127.0.0.1:{port}"),
        &w.emulator.app().client_id,
    );
    gc.login_base_url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let closed = Arc::new(GraphClient::new(gc).unwrap());
    let err = w
        .sync_with(closed, Trigger::Manual, false)
        .await
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(
        chain.contains(&format!("127.0.0.1:{port}")) && chain.to_lowercase().contains("refused"),
        "{chain}"
    );
    let text = failed_error(&w.runs().await[0]).to_owned();
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/"))
            && text.to_lowercase().contains("refused")
            && !text.contains("None"),
        "{text}"
    );
    // Not a consent problem: the connection is not flagged.
    assert_eq!(w.connection().await.status, ConnectionStatus::Connected);
}
