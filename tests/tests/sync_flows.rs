//! End-to-end flows on one machine: emulator (Graph + login on loopback) -> Graph client ->
//! fetch -> durable queue -> reconcile -> SQLite, checked against the emulator's directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use entra_sync_core::cursor::CursorState;
use entra_sync_core::memory::{CollectingEvents, CollectingQueue, ManualClock, MemoryStore};
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::page::RoundMode;
use entra_sync_core::ports::{CursorStore, Secret};
use entra_sync_core::run::RunStatus;
use entra_sync_core::services::{
    FetchDeps, FetchOptions, FetchOutcome, ReconcileDeps, reconcile_page, run_fetch,
};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, RouteMatch, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_local::demo::connect;
use entra_sync_local::runtime::{DataDir, LocalApp, SyncSettings, export_mirror};
use entra_sync_local::verify::compare;

struct Setup {
    emulator: Emulator,
    tenant: TenantId,
    client: Arc<GraphClient>,
}

async fn setup(config: EmulatorConfig, spec: TenantSpec) -> Setup {
    let emulator = Emulator::start(config).await.unwrap();
    let info = emulator.add_tenant(&spec);
    let app = emulator.app();
    let mut gc = GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url()).unwrap(),
        url::Url::parse(&emulator.login_base_url()).unwrap(),
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    );
    // Keep retries quick but real: the emulator's Retry-After is honoured as given.
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    Setup {
        tenant: TenantId::new(info.tenant_id),
        client: Arc::new(GraphClient::new(gc).unwrap()),
        emulator,
    }
}

fn small_config() -> EmulatorConfig {
    EmulatorConfig {
        user_page_size: 37,
        group_page_size: 11,
        member_slice: 50,
        ..EmulatorConfig::default()
    }
}

async fn sync_local(app: &LocalApp, s: &Setup) -> entra_sync_core::run::SyncRun {
    app.sync(
        s.client.clone(),
        &s.tenant,
        &FetchOptions::default(),
        &SyncSettings::default(),
        |_| {},
    )
    .await
    .unwrap()
}

async fn assert_matches(app: &LocalApp, s: &Setup) {
    let stored = app.export(&s.tenant).await.unwrap();
    let v = compare(
        &stored,
        &s.emulator.tenant(s.tenant.as_str()).unwrap().snapshot(),
    );
    assert!(
        v.matches(),
        "store differs from directory: {:?}",
        v.differences
    );
    assert!(v.users_expected > 0 && v.memberships_expected > 0);
}

#[tokio::test]
async fn incremental_sync_after_churn_leaves_the_store_equal_to_the_directory() {
    let s = setup(small_config(), TenantSpec::new(7, 400, 40)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &s.client, &s.tenant).await.unwrap();

    let before = s.emulator.counters().requests;
    let full = sync_local(&app, &s).await;
    let full_requests = s.emulator.counters().requests - before;
    assert_eq!(full.status, RunStatus::Succeeded);
    assert_eq!(full.users.mode, Some(RoundMode::Full));
    assert_eq!(full.counts.created, 400);
    assert_matches(&app, &s).await;

    let churn = s
        .emulator
        .tenant(s.tenant.as_str())
        .unwrap()
        .random_churn(99, 60);
    assert!(churn.total() > 0);
    let before = s.emulator.counters().requests;
    let inc = sync_local(&app, &s).await;
    let inc_requests = s.emulator.counters().requests - before;
    assert_eq!(inc.status, RunStatus::Succeeded);
    assert_eq!(inc.users.mode, Some(RoundMode::Incremental));
    assert!(
        inc.counts.created + inc.counts.updated + inc.counts.removed + inc.counts.deactivated > 0
    );
    assert_matches(&app, &s).await;
    assert!(
        inc_requests * 3 < full_requests,
        "incremental {inc_requests} requests vs full {full_requests}"
    );

    // Nothing changed: an incremental round writes nothing.
    let idle = sync_local(&app, &s).await;
    assert_eq!(idle.status, RunStatus::Succeeded);
    assert_eq!(idle.counts.writes, 0);
    assert_matches(&app, &s).await;
}

#[tokio::test]
async fn the_store_persists_across_restarts_and_the_next_sync_is_incremental() {
    let s = setup(small_config(), TenantSpec::new(8, 150, 20)).await;
    let dir = tempfile::tempdir().unwrap();
    {
        let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
        connect(&app, &s.client, &s.tenant).await.unwrap();
        assert_eq!(sync_local(&app, &s).await.status, RunStatus::Succeeded);
    }
    s.emulator
        .tenant(s.tenant.as_str())
        .unwrap()
        .random_churn(5, 30);
    // A new process: everything is reopened from the data directory.
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    let run = sync_local(&app, &s).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.users.mode, Some(RoundMode::Incremental));
    assert_eq!(run.groups.mode, Some(RoundMode::Incremental));
    assert_matches(&app, &s).await;
}

/// Fetch into a collecting queue with in-memory stores, so the test decides delivery.
struct Harness {
    fetch: FetchDeps,
    reconcile: ReconcileDeps,
    queue: Arc<CollectingQueue>,
    store: Arc<MemoryStore>,
    events: Arc<CollectingEvents>,
}

/// Every event a flow of this file produced matches its schema in `events/schemas/`.
impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            entra_sync_tests::event_schemas::assert_valid(&self.events.history());
        }
    }
}

async fn harness(s: &Setup) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(CollectingQueue::new());
    let events = Arc::new(CollectingEvents::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let fetch = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock.clone())
        .fetch(s.client.clone(), queue.clone());
    let reconcile = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock)
        .reconcile();
    use entra_sync_core::ports::ConnectionStore;
    store
        .put_connection(&entra_sync_core::model::Connection {
            tenant_id: s.tenant.clone(),
            account_id: entra_sync_core::model::AccountId("acct".into()),
            label: "test".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: entra_sync_core::model::ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    Harness {
        fetch,
        reconcile,
        queue,
        store,
        events,
    }
}

#[tokio::test]
async fn every_page_applied_twice_and_out_of_order_gives_the_same_state() {
    let s = setup(small_config(), TenantSpec::new(11, 300, 30)).await;
    let h = harness(&s).await;
    for round in 0..2 {
        if round == 1 {
            s.emulator
                .tenant(s.tenant.as_str())
                .unwrap()
                .random_churn(3, 50);
        }
        run_fetch(&h.fetch, &s.tenant, &FetchOptions::default())
            .await
            .unwrap();
        let mut msgs = h.queue.drain();
        let min_pages = if round == 0 { 10 } else { 2 };
        assert!(msgs.len() >= min_pages, "round {round} spans several pages");
        // Deliver newest first, then everything again in fetch order.
        msgs.reverse();
        let again: Vec<_> = msgs.iter().rev().cloned().collect();
        for m in msgs.iter().chain(again.iter()) {
            reconcile_page(&h.reconcile, m).await.unwrap();
        }
        let writes_before = h.store.writes();
        for m in &again {
            reconcile_page(&h.reconcile, m).await.unwrap();
        }
        assert_eq!(
            h.store.writes(),
            writes_before,
            "a third delivery writes nothing"
        );
        let v = compare(
            &export_mirror(h.store.as_ref(), &s.tenant).await.unwrap(),
            &s.emulator.tenant(s.tenant.as_str()).unwrap().snapshot(),
        );
        assert!(v.matches(), "round {round}: {:?}", v.differences);
    }
}

#[tokio::test]
async fn a_fetch_stopped_mid_round_resumes_from_its_checkpoint() {
    let s = setup(small_config(), TenantSpec::new(12, 200, 10)).await;
    let h = harness(&s).await;
    let opts = FetchOptions {
        max_pages: Some(2),
        ..FetchOptions::default()
    };
    let first = run_fetch(&h.fetch, &s.tenant, &opts).await.unwrap();
    assert_eq!(first.outcome, FetchOutcome::Paused);
    assert_eq!(first.pages_enqueued, 2);
    let (c, _) = h
        .store
        .load_cursor(&s.tenant, Stream::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(c.state, CursorState::InRound { next_page: 2, .. }));
    let users_before = s.emulator.counters().users_delta;
    // Resume until done: the same run, no page fetched twice.
    let mut pages = first.pages_enqueued;
    loop {
        let r = run_fetch(&h.fetch, &s.tenant, &opts).await.unwrap();
        assert_eq!(r.run_id, first.run_id);
        pages += r.pages_enqueued;
        if r.outcome != FetchOutcome::Paused {
            break;
        }
    }
    let users_pages = (200usize).div_ceil(37) as u64;
    assert_eq!(
        s.emulator.counters().users_delta - users_before,
        users_pages - 2
    );
    let msgs = h.queue.drain();
    assert_eq!(msgs.len() as u32, pages);
    for m in &msgs {
        reconcile_page(&h.reconcile, m).await.unwrap();
    }
    let v = compare(
        &export_mirror(h.store.as_ref(), &s.tenant).await.unwrap(),
        &s.emulator.tenant(s.tenant.as_str()).unwrap().snapshot(),
    );
    assert!(v.matches(), "{:?}", v.differences);
}

#[tokio::test]
async fn an_expired_delta_token_leads_to_one_full_resync_that_converges() {
    let s = setup(small_config(), TenantSpec::new(13, 120, 12)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &s.client, &s.tenant).await.unwrap();
    sync_local(&app, &s).await;
    let t = s.emulator.tenant(s.tenant.as_str()).unwrap();
    t.random_churn(21, 40);
    // Eight days later every delta token is stale.
    s.emulator.advance_clock(Duration::from_secs(8 * 24 * 3600));
    let run = sync_local(&app, &s).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.users.mode, Some(RoundMode::Full));
    assert_matches(&app, &s).await;
    // Back to incremental afterwards.
    let next = sync_local(&app, &s).await;
    assert_eq!(next.users.mode, Some(RoundMode::Incremental));
}

#[tokio::test]
async fn a_410_gone_mid_round_falls_back_to_a_full_round() {
    let s = setup(small_config(), TenantSpec::new(14, 100, 8)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &s.client, &s.tenant).await.unwrap();
    sync_local(&app, &s).await;
    s.emulator
        .tenant(s.tenant.as_str())
        .unwrap()
        .random_churn(2, 20);
    s.emulator
        .faults()
        .inject(Fault::new(RouteMatch::GroupsDelta, FaultKind::ResyncGone).times(1));
    let run = sync_local(&app, &s).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.groups.mode, Some(RoundMode::Full));
    assert_matches(&app, &s).await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_the_sync_converges() {
    let s = setup(small_config(), TenantSpec::new(15, 150, 10)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &s.client, &s.tenant).await.unwrap();
    let faults = s.emulator.faults();
    faults.inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Throttle {
                retry_after_secs: 1,
            },
        )
        .after(1)
        .times(2),
    );
    faults.inject(
        Fault::new(
            RouteMatch::GroupsDelta,
            FaultKind::Unavailable {
                status: 503,
                retry_after_secs: None,
            },
        )
        .times(2),
    );
    faults.inject(
        Fault::new(RouteMatch::UsersDelta, FaultKind::DropConnection)
            .after(3)
            .times(1),
    );
    let run = sync_local(&app, &s).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(s.emulator.counters().throttled_429 >= 2);
    assert!(s.client.throttled_responses(&s.tenant) >= 2);
    assert_matches(&app, &s).await;
}

#[tokio::test]
async fn a_failed_read_deactivates_nobody_and_the_next_run_completes_it() {
    let s = setup(small_config(), TenantSpec::new(16, 120, 6)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &s.client, &s.tenant).await.unwrap();
    sync_local(&app, &s).await;
    let t = s.emulator.tenant(s.tenant.as_str()).unwrap();
    t.random_churn(4, 30);
    // More 500s than the client retries: the run fails part-way.
    s.emulator.faults().inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Unavailable {
                status: 500,
                retry_after_secs: None,
            },
        )
        .times(50),
    );
    let before = app.export(&s.tenant).await.unwrap();
    let present_before = before
        .users
        .iter()
        .filter(|u| u.presence.is_present())
        .count();
    let err = app
        .sync(
            s.client.clone(),
            &s.tenant,
            &FetchOptions::default(),
            &SyncSettings::default(),
            |_| {},
        )
        .await;
    assert!(err.is_err(), "the read failed");
    let after = app.export(&s.tenant).await.unwrap();
    let present_after = after
        .users
        .iter()
        .filter(|u| u.presence.is_present())
        .count();
    assert!(present_after >= present_before.saturating_sub(30).max(1));
    let runs = {
        use entra_sync_core::ports::RunStore;
        app.store.list_runs(&s.tenant, 5).await.unwrap()
    };
    assert!(
        matches!(runs[0].status, RunStatus::Failed { .. }),
        "the activity log says it failed"
    );
    s.emulator.faults().clear();
    let run = sync_local(&app, &s).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    // The failed run keeps its id and status in the activity log; the next run has its own id
    // and continues the failed run's round (it does not start the read over).
    assert_ne!(run.run_id, runs[0].run_id, "the next run has its own id");
    assert_eq!(
        run.continues.as_deref(),
        Some(runs[0].run_id.as_str()),
        "the next run continues the failed run's round"
    );
    let failed = {
        use entra_sync_core::ports::RunStore;
        app.store.get_run(&s.tenant, &runs[0].run_id).await.unwrap()
    };
    assert!(
        matches!(failed.map(|r| r.status), Some(RunStatus::Failed { .. })),
        "the failed run stays failed in the activity log"
    );
    assert_matches(&app, &s).await;
}

#[tokio::test]
async fn a_malformed_queue_message_is_set_aside_without_blocking_the_others() {
    let s = setup(small_config(), TenantSpec::new(17, 80, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &s.client, &s.tenant).await.unwrap();
    app.queue
        .enqueue_raw("poison-1", "{not json")
        .await
        .unwrap();
    let run = sync_local(&app, &s).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_matches(&app, &s).await;
    let dead = app.queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, "poison-1");
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("malformed")
    );
}

#[tokio::test]
async fn the_client_counts_its_requests_like_the_emulator_does() {
    let s = setup(small_config(), TenantSpec::new(18, 50, 4)).await;
    let before = s.emulator.counters().requests;
    let h = harness(&s).await;
    run_fetch(&h.fetch, &s.tenant, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        s.client.requests_sent(&s.tenant),
        s.emulator.counters().requests - before
    );
}
