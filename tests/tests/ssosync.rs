//! The ssosync lesson: a directory read that fails, times out or returns nothing part-way through
//! a run deactivates nobody and removes nothing, and the activity log records the run as failed.
//! The dangerous case is a full resync (it may sweep what it did not see), so every test forces
//! one over a store that already mirrors the directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::page::{FetchedPage, PageItems, PageRequest};
use entra_sync_core::ports::{DirectoryReader, RunStore, Secret};
use entra_sync_core::run::{RunStatus, SyncRun};
use entra_sync_core::services::FetchOptions;
use entra_sync_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, RouteMatch, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_local::demo::connect;
use entra_sync_local::runtime::{DataDir, Export, LocalApp, SyncSettings};
use entra_sync_local::verify::compare;

struct World {
    emulator: Emulator,
    tenant: TenantId,
    client: Arc<GraphClient>,
    app: LocalApp,
    _dir: tempfile::TempDir,
}

/// A tenant mirrored by one clean full sync; the client gives up on a request after 300 ms.
async fn world(seed: u64) -> World {
    let emulator = Emulator::start(EmulatorConfig {
        user_page_size: 10,
        group_page_size: 3,
        member_slice: 8,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let info = emulator.add_tenant(&TenantSpec::new(seed, 60, 8));
    let app_creds = emulator.app();
    let mut gc = GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url()).unwrap(),
        url::Url::parse(&emulator.login_base_url()).unwrap(),
        app_creds.client_id.clone(),
        Secret::new(app_creds.client_secret.clone()),
    );
    gc.request_timeout = Duration::from_millis(300);
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let client = Arc::new(GraphClient::new(gc).unwrap());
    let tenant = TenantId::new(info.tenant_id);
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    connect(&app, &client, &tenant).await.unwrap();
    let w = World {
        emulator,
        tenant,
        client,
        app,
        _dir: dir,
    };
    let run = sync(&w, w.client.clone(), false).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_matches(&w).await;
    w
}

async fn sync(
    w: &World,
    directory: Arc<dyn DirectoryReader>,
    force_full: bool,
) -> Result<SyncRun, entra_sync_local::runtime::LocalError> {
    w.app
        .sync(
            directory,
            &w.tenant,
            &FetchOptions {
                force_full,
                ..FetchOptions::default()
            },
            &SyncSettings::default(),
            |_| {},
        )
        .await
}

async fn assert_matches(w: &World) {
    let v = compare(
        &w.app.export(&w.tenant).await.unwrap(),
        &w.emulator.tenant(w.tenant.as_str()).unwrap().snapshot(),
    );
    assert!(v.matches(), "store differs: {:?}", v.differences);
}

/// What a downstream system acts on: who exists and is enabled, which groups exist, who is in
/// which group.
#[derive(Debug, PartialEq)]
struct Effective {
    users: BTreeMap<String, (bool, Option<bool>)>,
    groups: BTreeMap<String, bool>,
    members: BTreeMap<(String, String), bool>,
}

fn effective(e: &Export) -> Effective {
    Effective {
        users: e
            .users
            .iter()
            .map(|u| {
                (
                    u.user.id.clone(),
                    (u.presence.is_present(), u.user.account_enabled),
                )
            })
            .collect(),
        groups: e
            .groups
            .iter()
            .map(|g| (g.group.id.clone(), g.presence.is_present()))
            .collect(),
        members: e
            .memberships
            .iter()
            .map(|m| ((m.group_id.clone(), m.member.id.clone()), m.present))
            .collect(),
    }
}

/// The run failed (as an error or a failed run), nothing anyone acts on changed, and the
/// activity log's newest run says it failed.
async fn assert_nothing_lost(
    w: &World,
    before: &Effective,
    result: Result<SyncRun, entra_sync_local::runtime::LocalError>,
) {
    if let Ok(run) = &result {
        assert!(
            matches!(run.status, RunStatus::Failed { .. }),
            "the run did not fail: {run:?}"
        );
    }
    let after = effective(&w.app.export(&w.tenant).await.unwrap());
    assert_eq!(before.users.len(), after.users.len());
    assert!(
        before
            .users
            .values()
            .filter(|(p, e)| *p && *e == Some(true))
            .count()
            > 10
    );
    assert_eq!(&after, before, "a failed read changed what the mirror says");
    let runs = w.app.store.list_runs(&w.tenant, 1).await.unwrap();
    assert!(
        matches!(runs[0].status, RunStatus::Failed { .. }),
        "the activity log records a failed run: {:?}",
        runs[0].status
    );
    assert_eq!(runs[0].counts.deactivated, 0);
    assert_eq!(runs[0].counts.removed, 0);
}

#[tokio::test]
async fn a_users_read_that_times_out_mid_full_resync_deactivates_nobody() {
    let w = world(41).await;
    let before = effective(&w.app.export(&w.tenant).await.unwrap());
    // The second page of users (and every retry of it) takes longer than the client waits.
    w.emulator.faults().inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Latency(Duration::from_secs(2)),
        )
        .after(1)
        .times(20),
    );
    let started = std::time::Instant::now();
    let result = sync(&w, w.client.clone(), true).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout bounds the read"
    );
    assert_nothing_lost(&w, &before, result).await;
    // Once the directory answers again, the run resumes and the mirror is right.
    w.emulator.faults().clear();
    let run = sync(&w, w.client.clone(), false).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_matches(&w).await;
}

/// The real directory, except that the users stream answers its pages with no entries (links
/// kept) and then fails.
struct EmptyThenFailing {
    inner: Arc<GraphClient>,
    empty_pages: u32,
    served: AtomicU32,
}

#[async_trait]
impl DirectoryReader for EmptyThenFailing {
    async fn fetch_page(
        &self,
        tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        if stream == Stream::Groups {
            return self.inner.fetch_page(tenant, stream, request).await;
        }
        if self.served.fetch_add(1, Ordering::SeqCst) >= self.empty_pages {
            return Err(DirectoryError::Transient {
                status: Some(503),
                url: None,
                source: None,
            });
        }
        let page = self.inner.fetch_page(tenant, stream, request).await?;
        Ok(FetchedPage {
            items: PageItems::empty(stream),
            link: page.link,
        })
    }
    fn requests_sent(&self, tenant: &TenantId) -> u64 {
        self.inner.requests_sent(tenant)
    }
}

#[tokio::test]
async fn a_full_resync_whose_users_read_returns_nothing_then_fails_deactivates_nobody() {
    let w = world(42).await;
    let before = effective(&w.app.export(&w.tenant).await.unwrap());
    let reader = Arc::new(EmptyThenFailing {
        inner: w.client.clone(),
        empty_pages: 3,
        served: AtomicU32::new(0),
    });
    let result = sync(&w, reader.clone(), true).await;
    assert!(
        reader.served.load(Ordering::SeqCst) > 3,
        "the empty pages were read and the failure reached"
    );
    assert_nothing_lost(&w, &before, result).await;
}

#[tokio::test]
async fn a_groups_read_failing_mid_full_resync_removes_no_group_or_membership() {
    let w = world(43).await;
    let handle = w.emulator.tenant(w.tenant.as_str()).unwrap();
    let before = effective(&w.app.export(&w.tenant).await.unwrap());
    w.emulator.faults().inject(
        Fault::new(
            RouteMatch::GroupsDelta,
            FaultKind::Unavailable {
                status: 500,
                retry_after_secs: None,
            },
        )
        .after(1)
        .times(100),
    );
    w.emulator.faults().inject(
        Fault::new(RouteMatch::UsersDelta, FaultKind::DropConnection)
            .after(2)
            .times(100),
    );
    let result = sync(&w, w.client.clone(), true).await;
    assert_nothing_lost(&w, &before, result).await;
    // The directory recovers and changed meanwhile: the resumed resync gets it right.
    w.emulator.faults().clear();
    handle.random_churn(9, 15);
    let run = sync(&w, w.client.clone(), false).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    // Changes made while a round is open are reported by the round after it (Graph's
    // semantics, which the emulator keeps), so one more sync brings the mirror up to date.
    let run = sync(&w, w.client.clone(), false).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_matches(&w).await;
}
