//! Explicit regression tests for what the convergence harness found: each one crashes a worker
//! at every step of one piece of work and checks the redelivered work still converges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use entra_sync_core::memory::{CollectingEvents, CollectingQueue, ManualClock, MemoryStore};
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, Stream, TenantId};
use entra_sync_core::ports::{ConnectionStore, Secret};
use entra_sync_core::services::{
    FetchDeps, FetchOptions, FetchOutcome, ReconcileDeps, reconcile_page, run_fetch,
};
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_local::runtime::export_mirror;
use entra_sync_local::verify::compare;
use entra_sync_tests::faulty::{Audit, Crash, Crashes, FaultyQueue, FaultyStore};

struct World {
    tenant: TenantId,
    inner: Arc<MemoryStore>,
    crashes: Arc<Crashes>,
    queue: Arc<CollectingQueue>,
    fetch: FetchDeps,
    reconcile: ReconcileDeps,
}

async fn client(emu: &Emulator) -> Arc<GraphClient> {
    let app = emu.app();
    let gc = GraphConfig::new(
        url::Url::parse(&emu.graph_base_url()).unwrap(),
        url::Url::parse(&emu.login_base_url()).unwrap(),
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    );
    Arc::new(GraphClient::new(gc).unwrap())
}

async fn world(emu: &Emulator, client: &Arc<GraphClient>, spec: &TenantSpec) -> World {
    let tenant = TenantId::new(emu.add_tenant(spec).tenant_id);
    let inner = Arc::new(MemoryStore::new());
    let crashes = Arc::new(Crashes::new());
    let audit = Arc::new(Audit::new());
    let store = Arc::new(FaultyStore::new(
        inner.clone(),
        crashes.clone(),
        audit.clone(),
    ));
    let queue = Arc::new(CollectingQueue::new());
    let events = Arc::new(CollectingEvents::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    inner
        .put_connection(&Connection {
            tenant_id: tenant.clone(),
            account_id: AccountId("acct".into()),
            label: "test".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let fetch = FetchDeps {
        directory: client.clone(),
        connections: store.clone(),
        cursors: store.clone(),
        leases: store.clone(),
        runs: store.clone(),
        queue: Arc::new(FaultyQueue::new(queue.clone(), crashes.clone(), audit)),
        mirror: store.clone(),
        events: events.clone(),
        clock: clock.clone(),
    };
    let reconcile = ReconcileDeps {
        cursors: store.clone(),
        mirror: store.clone(),
        runs: store,
        events,
        clock,
    };
    World {
        tenant,
        inner,
        crashes,
        queue,
        fetch,
        reconcile,
    }
}

async fn sync_cleanly(w: &World) {
    let r = run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    assert_ne!(r.outcome, FetchOutcome::Paused);
    for m in w.queue.drain() {
        reconcile_page(&w.reconcile, &m).await.unwrap();
    }
}

#[tokio::test]
async fn a_crash_at_any_step_of_applying_a_group_deletion_still_removes_its_members() {
    let emu = Emulator::start(EmulatorConfig {
        user_page_size: 5,
        group_page_size: 2,
        member_slice: 4,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = client(&emu).await;
    let mut spec = TenantSpec::new(77, 12, 3);
    spec.domains = Vec::new();
    let mut crashed_mid_page = 0;
    for crash in [Crash::Before, Crash::After] {
        for n in 1..=25u64 {
            let w = world(&emu, &client, &spec).await;
            sync_cleanly(&w).await;
            let t = emu.tenant(w.tenant.as_str()).unwrap();
            let group = t
                .group_ids()
                .into_iter()
                .find(|g| t.members(g).is_some_and(|m| !m.is_empty()))
                .unwrap();
            t.delete_group(&group).unwrap();
            run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
                .await
                .unwrap();
            let msgs: Vec<_> = w
                .queue
                .drain()
                .into_iter()
                .filter(|m| m.stream() == Stream::Groups)
                .collect();
            // The worker dies at call `n` of applying the page; then the page is redelivered
            // until it is applied.
            w.crashes.arm([(n, crash)]);
            for m in &msgs {
                if reconcile_page(&w.reconcile, m).await.is_err() {
                    crashed_mid_page += 1;
                }
            }
            w.crashes.disarm();
            for m in &msgs {
                reconcile_page(&w.reconcile, m).await.unwrap();
            }
            // Any commit the crash interrupted is finished by the next fetch.
            run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
                .await
                .unwrap();
            for m in w.queue.drain() {
                reconcile_page(&w.reconcile, &m).await.unwrap();
            }
            let v = compare(
                &export_mirror(w.inner.as_ref(), &w.tenant).await.unwrap(),
                &t.snapshot(),
            );
            assert!(
                v.matches(),
                "crash {crash:?} at call {n}: {:?}",
                v.differences
            );
        }
    }
    assert!(crashed_mid_page > 10, "the crashes hit the page");
    emu.shutdown().await;
}
