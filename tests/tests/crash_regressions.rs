//! Explicit regression tests for what the convergence harness found: each one crashes a worker
//! at every step of one piece of work and checks the redelivered work still converges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use entra_sync_core::memory::{CollectingEvents, CollectingQueue, ManualClock, MemoryStore};
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, Stream, TenantId};
use entra_sync_core::ports::{ConnectionStore, RunStore, Secret};
use entra_sync_core::services::{
    FetchDeps, FetchOptions, FetchOutcome, ReconcileDeps, reconcile_page, run_fetch,
};
use entra_sync_core::testing::DepsBuilder;
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
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let fetch = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock.clone())
        .fetch(
            client.clone(),
            Arc::new(FaultyQueue::new(queue.clone(), crashes.clone(), audit)),
        );
    let reconcile = DepsBuilder::on(&store)
        .events(events)
        .clock(clock)
        .reconcile();
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

/// The users stream of a scripted directory: a first page `p` whose content a re-read changes
/// (as a replayed nextLink can: objects change while a round is read), and a second page `q`.
/// The groups stream is one empty page.
const SHORT_NAME: usize = 100;

struct ShrinkingPage {
    reads_of_first: std::sync::atomic::AtomicU32,
}

fn big_user(id: &str, name_len: usize) -> entra_sync_core::page::UserDelta {
    entra_sync_core::page::UserDelta::Upsert {
        user: entra_sync_core::model::DirectoryUser {
            id: id.into(),
            display_name: Some(format!("{id}-{}", "n".repeat(name_len))),
            account_enabled: Some(true),
            ..Default::default()
        },
        manager: entra_sync_core::page::ManagerChange::NotReported,
    }
}

#[async_trait::async_trait]
impl entra_sync_core::ports::DirectoryReader for ShrinkingPage {
    async fn fetch_page(
        &self,
        _tenant: &TenantId,
        stream: Stream,
        request: &entra_sync_core::page::PageRequest,
    ) -> Result<entra_sync_core::page::FetchedPage, entra_sync_core::error::DirectoryError> {
        use entra_sync_core::page::{FetchedPage, PageItems, PageLink, PageRequest};
        use std::sync::atomic::Ordering;
        Ok(match (stream, request) {
            (Stream::Groups, _) => FetchedPage {
                items: PageItems::empty(Stream::Groups),
                link: PageLink::Delta("groups-delta".into()),
            },
            (Stream::Users, PageRequest::Initial) => {
                // First read: a, b, c with long names (one message each at the queue's limit);
                // every later read: the same users with short names (two messages).
                let long = self.reads_of_first.fetch_add(1, Ordering::SeqCst) == 0;
                let len = if long { 600 } else { SHORT_NAME };
                FetchedPage {
                    items: PageItems::Users(vec![
                        big_user("a", len),
                        big_user("b", len),
                        big_user("c", len),
                    ]),
                    link: PageLink::Next("users-page-2".into()),
                }
            }
            (Stream::Users, PageRequest::Link(_)) => FetchedPage {
                items: PageItems::Users(vec![big_user("d", 10)]),
                link: PageLink::Delta("users-delta".into()),
            },
        })
    }
    fn requests_sent(&self, _tenant: &TenantId) -> u64 {
        0
    }
}

/// A queue that accepts a users page and then reports failure once, as a fetch that dies after
/// SQS took the batch but before it could checkpoint.
struct DiesAfterEnqueue {
    inner: Arc<entra_sync_core::memory::LimitedQueue>,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl entra_sync_core::ports::WorkQueue for DiesAfterEnqueue {
    async fn enqueue(
        &self,
        messages: Vec<entra_sync_core::page::PageMessage>,
    ) -> Result<(), entra_sync_core::error::QueueError> {
        let users = messages
            .first()
            .is_some_and(|m| m.stream() == Stream::Users);
        self.inner.enqueue(messages).await?;
        if users && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(entra_sync_core::error::QueueError::Rejected(
                "the fetch died here".into(),
            ));
        }
        Ok(())
    }
    fn max_message_bytes(&self) -> Option<usize> {
        self.inner.max_message_bytes()
    }
}

#[tokio::test]
async fn a_page_re_read_after_a_crash_that_splits_differently_never_shares_a_number_with_another_page()
 {
    use entra_sync_core::memory::LimitedQueue;
    use entra_sync_core::model::Presence;
    use entra_sync_core::ports::MirrorStore;

    let tenant = TenantId::new("tenant-split");
    let store = Arc::new(MemoryStore::new());
    store
        .put_connection(&Connection {
            tenant_id: tenant.clone(),
            account_id: AccountId("acct".into()),
            label: "test".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let limited = Arc::new(LimitedQueue {
        max_bytes: 1500,
        inner: CollectingQueue::new(),
    });
    let queue = Arc::new(DiesAfterEnqueue {
        inner: limited.clone(),
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let events = Arc::new(CollectingEvents::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let fetch = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock.clone())
        .fetch(
            Arc::new(ShrinkingPage {
                reads_of_first: std::sync::atomic::AtomicU32::new(1),
            }),
            queue.clone(),
        );
    let reconcile = DepsBuilder::on(&store)
        .events(events)
        .clock(clock)
        .reconcile();

    // Round 1 (full, clean): a, b, c, d are in the mirror.
    run_fetch(&fetch, &tenant, &FetchOptions::default())
        .await
        .unwrap();
    for m in limited.inner.drain() {
        reconcile_page(&reconcile, &m).await.unwrap();
    }
    let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    assert_eq!(store.get_users(&tenant, &ids).await.unwrap().len(), 4);

    // Round 2, a forced full round: the first read of page one is long (three messages); the
    // fetch dies after enqueueing them. The re-read is short (two messages).
    let fetch = FetchDeps {
        directory: Arc::new(ShrinkingPage {
            reads_of_first: std::sync::atomic::AtomicU32::new(0),
        }),
        ..fetch
    };
    queue.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let forced = FetchOptions {
        force_full: true,
        ..FetchOptions::default()
    };
    assert!(run_fetch(&fetch, &tenant, &forced).await.is_err());
    let old_parts = limited.inner.drain();
    let old_users = |m: &&entra_sync_core::page::PageMessage| m.stream() == Stream::Users;
    assert_eq!(
        old_parts.iter().filter(old_users).count(),
        3,
        "the long page was split in three"
    );
    run_fetch(&fetch, &tenant, &FetchOptions::default())
        .await
        .unwrap();
    let new_parts = limited.inner.drain();
    let with_content: Vec<usize> = new_parts
        .iter()
        .filter(old_users)
        .filter(|m| !m.items.is_empty())
        .map(|m| m.items.len())
        .collect();
    assert_eq!(
        with_content,
        vec![2, 1, 1],
        "re-read in two parts, then page two"
    );
    // No two messages of different content share a number.
    let mut numbers: Vec<u32> = new_parts
        .iter()
        .filter(old_users)
        .map(|m| m.page_seq)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), new_parts.iter().filter(old_users).count());
    for old in old_parts.iter().filter(old_users) {
        if let Some(new) = new_parts
            .iter()
            .filter(old_users)
            .find(|n| n.page_seq == old.page_seq)
        {
            assert!(
                new.items.is_empty(),
                "page {} is reused by a part with content",
                old.page_seq
            );
        }
    }

    // Worst order: the old parts first, then the re-read page and the next page.
    for m in old_parts.iter().chain(&new_parts) {
        reconcile_page(&reconcile, m).await.unwrap();
    }
    let users = store.get_users(&tenant, &ids).await.unwrap();
    assert_eq!(users.len(), 4);
    for u in &users {
        assert_eq!(
            u.presence,
            Presence::Present,
            "{} was swept although the directory has it",
            u.user.id
        );
        if u.user.id != "d" {
            assert_eq!(
                u.user.display_name.as_deref().map(str::len),
                Some(SHORT_NAME + 2),
                "{} keeps the re-read (newer) state",
                u.user.id
            );
        }
    }
    // The manual clock stands still, so the crashed round's run and the one that continues it
    // start at the same instant and "newest" is not defined between them: look at them all.
    let runs = store.list_runs(&tenant, 10).await.unwrap();
    assert!(
        runs.iter().any(|r| r.users.committed),
        "the round still commits: {runs:?}"
    );
}
