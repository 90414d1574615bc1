//! Service tests against the in-memory adapters and a scripted directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::cursor::CursorState;
use entra_sync_core::error::{DirectoryError, SyncError};
use entra_sync_core::memory::{CollectingEvents, CollectingQueue, ManualClock, MemoryStore};
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryGroup, DirectoryUser, MemberRef, MemberType,
    Stream, TenantId,
};
use entra_sync_core::page::{
    FetchedPage, GroupDelta, ManagerChange, PageItems, PageLink, PageRequest, UserDelta,
};
use entra_sync_core::ports::{
    ConnectionStore, CursorStore, DirectoryReader, MirrorStore, RunStore,
};
use entra_sync_core::run::RunStatus;
use entra_sync_core::services::{
    FetchDeps, FetchOptions, FetchOutcome, ReconcileDeps, reconcile_page, run_fetch,
};
use entra_sync_core::testing::DepsBuilder;

type Script = HashMap<(Stream, String), Result<FetchedPage, fn() -> DirectoryError>>;

/// Answers each (stream, request) from a script; "initial" names the first page of a full round.
#[derive(Default)]
struct ScriptedDirectory {
    script: Mutex<Script>,
    calls: Mutex<u64>,
}

impl ScriptedDirectory {
    fn page(&self, stream: Stream, key: &str, items: PageItems, link: PageLink) {
        self.script
            .lock()
            .unwrap()
            .insert((stream, key.to_owned()), Ok(FetchedPage { items, link }));
    }
    fn fail(&self, stream: Stream, key: &str, err: fn() -> DirectoryError) {
        self.script
            .lock()
            .unwrap()
            .insert((stream, key.to_owned()), Err(err));
    }
}

#[async_trait]
impl DirectoryReader for ScriptedDirectory {
    async fn fetch_page(
        &self,
        _tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        *self.calls.lock().unwrap() += 1;
        let key = match request {
            PageRequest::Initial => "initial".to_owned(),
            PageRequest::Link(l) => l.clone(),
        };
        match self.script.lock().unwrap().get(&(stream, key.clone())) {
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(f)) => Err(f()),
            None => Err(DirectoryError::InvalidResponse(format!(
                "unscripted {stream} {key}"
            ))),
        }
    }
    fn requests_sent(&self, _tenant: &TenantId) -> u64 {
        *self.calls.lock().unwrap()
    }
}

fn user(id: &str, enabled: bool) -> UserDelta {
    UserDelta::Upsert {
        user: DirectoryUser {
            id: id.into(),
            display_name: Some(format!("User {id}")),
            account_enabled: Some(enabled),
            ..Default::default()
        },
        manager: ManagerChange::NotReported,
    }
}

fn group(id: &str, members: &[&str]) -> GroupDelta {
    GroupDelta::Upsert {
        group: DirectoryGroup {
            id: id.into(),
            display_name: Some(id.into()),
            ..Default::default()
        },
        members_added: members
            .iter()
            .map(|m| MemberRef {
                id: (*m).into(),
                member_type: MemberType::User,
            })
            .collect(),
        members_removed: vec![],
    }
}

fn next(l: &str) -> PageLink {
    PageLink::Next(l.into())
}
fn delta(l: &str) -> PageLink {
    PageLink::Delta(l.into())
}

struct World {
    tenant: TenantId,
    dir: Arc<ScriptedDirectory>,
    store: Arc<MemoryStore>,
    queue: Arc<CollectingQueue>,
    fetch: FetchDeps,
    reconcile: ReconcileDeps,
}

async fn world() -> World {
    let tenant = TenantId::new("tenant-1");
    let dir = Arc::new(ScriptedDirectory::default());
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(CollectingQueue::new());
    let events = Arc::new(CollectingEvents::new());
    let start: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    store
        .put_connection(&Connection {
            tenant_id: tenant.clone(),
            account_id: AccountId("acct".into()),
            label: "Test".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: start,
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let fetch = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock.clone())
        .fetch(dir.clone(), queue.clone());
    let reconcile = DepsBuilder::on(&store)
        .events(events)
        .clock(clock)
        .reconcile();
    World {
        tenant,
        dir,
        store,
        queue,
        fetch,
        reconcile,
    }
}

async fn present_users(w: &World) -> Vec<String> {
    let l = w.store.list_users(&w.tenant, None, 1000).await.unwrap();
    l.items
        .into_iter()
        .filter(|u| u.presence.is_present())
        .map(|u| u.user.id)
        .collect()
}

fn script_initial(w: &World) {
    w.dir.page(
        Stream::Users,
        "initial",
        PageItems::Users(vec![user("a", true), user("b", true)]),
        next("u1"),
    );
    w.dir
        .page(Stream::Users, "u1", PageItems::Users(vec![]), next("u2"));
    w.dir.page(
        Stream::Users,
        "u2",
        PageItems::Users(vec![user("c", true)]),
        delta("ud1"),
    );
    w.dir.page(
        Stream::Groups,
        "initial",
        PageItems::Groups(vec![group("g", &["a", "b"])]),
        next("g1"),
    );
    w.dir.page(
        Stream::Groups,
        "g1",
        PageItems::Groups(vec![group("g", &["c"])]),
        delta("gd1"),
    );
}

#[tokio::test]
async fn full_sync_delivered_twice_and_reversed_commits_once_with_the_right_state() {
    let w = world().await;
    script_initial(&w);
    let report = run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(report.pages_enqueued, 5);
    assert_eq!(report.outcome, FetchOutcome::Enqueued);
    let mut msgs = w.queue.drain();
    // Nothing committed before reconcile has applied every page.
    let (c, _) = w
        .store
        .load_cursor(&w.tenant, Stream::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(c.state, CursorState::Applying { pages: 3, .. }));
    msgs.reverse();
    let twice: Vec<_> = msgs.iter().chain(msgs.iter()).cloned().collect();
    for m in &twice {
        reconcile_page(&w.reconcile, m).await.unwrap();
    }
    assert_eq!(present_users(&w).await, vec!["a", "b", "c"]);
    let edges = w
        .store
        .list_memberships(&w.tenant, None, 100)
        .await
        .unwrap();
    assert_eq!(edges.items.iter().filter(|e| e.present).count(), 3);
    let (c, _) = w
        .store
        .load_cursor(&w.tenant, Stream::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(c.state, CursorState::Idle { ref delta_link, .. } if delta_link == "ud1"));
    let run = w
        .store
        .get_run(&w.tenant, &report.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.created, 3, "duplicates are not double-counted");
    assert_eq!(run.counts.pages_applied, 5);
}

#[tokio::test]
async fn a_failed_read_mid_round_deactivates_nobody_and_resumes_from_the_checkpoint() {
    let w = world().await;
    script_initial(&w);
    run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    for m in w.queue.drain() {
        reconcile_page(&w.reconcile, &m).await.unwrap();
    }
    // Incremental round: first page fine, the second fails hard.
    w.dir.page(
        Stream::Users,
        "ud1",
        PageItems::Users(vec![user("a", false)]),
        next("ud1-p2"),
    );
    w.dir
        .fail(Stream::Users, "ud1-p2", || DirectoryError::Transient {
            status: Some(500),
            url: None,
            source: None,
        });
    let err = run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SyncError::Directory(DirectoryError::Transient { .. })
    ));
    for m in w.queue.drain() {
        reconcile_page(&w.reconcile, &m).await.unwrap();
    }
    assert_eq!(
        present_users(&w).await,
        vec!["a", "b", "c"],
        "nobody removed"
    );
    let (c, _) = w
        .store
        .load_cursor(&w.tenant, Stream::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(c.state, CursorState::InRound { ref next, next_page: 1, .. } if *next == entra_sync_core::cursor::ResumePoint::Link("ud1-p2".into()))
    );
    // The directory recovers: the next fetch resumes at the checkpoint, not from the start.
    w.dir.page(
        Stream::Users,
        "ud1-p2",
        PageItems::Users(vec![]),
        delta("ud2"),
    );
    w.dir.page(
        Stream::Groups,
        "gd1",
        PageItems::Groups(vec![]),
        delta("gd2"),
    );
    run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    for m in w.queue.drain() {
        reconcile_page(&w.reconcile, &m).await.unwrap();
    }
    let (c, _) = w
        .store
        .load_cursor(&w.tenant, Stream::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(c.state, CursorState::Idle { ref delta_link, .. } if delta_link == "ud2"));
}

#[tokio::test]
async fn expired_delta_token_forces_one_full_resync_that_sweeps_what_is_gone() {
    let w = world().await;
    script_initial(&w);
    run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    let old_round = w.queue.drain();
    for m in &old_round {
        reconcile_page(&w.reconcile, m).await.unwrap();
    }
    w.dir
        .fail(Stream::Users, "ud1", || DirectoryError::ResyncRequired {
            code: "syncStateNotFound".into(),
        });
    // The new full read no longer contains "b".
    w.dir.page(
        Stream::Users,
        "initial",
        PageItems::Users(vec![user("a", true), user("c", true)]),
        delta("ud9"),
    );
    w.dir.page(
        Stream::Groups,
        "gd1",
        PageItems::Groups(vec![]),
        delta("gd2"),
    );
    let report = run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(report.resyncs, 1);
    for m in w.queue.drain() {
        reconcile_page(&w.reconcile, &m).await.unwrap();
    }
    assert_eq!(present_users(&w).await, vec!["a", "c"]);
    // A late page from the first round cannot bring "b" back.
    for m in &old_round {
        reconcile_page(&w.reconcile, m).await.unwrap();
    }
    assert_eq!(present_users(&w).await, vec!["a", "c"]);
    let run = w
        .store
        .get_run(&w.tenant, &report.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.counts.deactivated, 1);
}

#[tokio::test]
async fn a_second_fetch_while_one_holds_the_lease_is_refused() {
    use entra_sync_core::ports::LeaseStore;
    let w = world().await;
    let now = Utc::now();
    assert!(
        w.store
            .acquire_lease(&w.tenant, "other", now + chrono::Duration::hours(1), now)
            .await
            .unwrap()
    );
    let err = run_fetch(&w.fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Busy(_)));
}

/// One signal per stream (the two streams are read at once).
type Asked = Arc<[tokio::sync::Notify; 2]>;

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Users => 0,
        Stream::Groups => 1,
    }
}

/// Wakes whoever waits for a request of a link (not a first page) of the stream.
struct Watched {
    inner: Arc<ScriptedDirectory>,
    asked: Asked,
}

#[async_trait]
impl DirectoryReader for Watched {
    async fn fetch_page(
        &self,
        tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        if matches!(request, PageRequest::Link(_)) {
            // Wakes only an enqueue waiting right now (no permit is kept for a later one).
            self.asked[slot(stream)].notify_waiters();
        }
        self.inner.fetch_page(tenant, stream, request).await
    }
    fn requests_sent(&self, tenant: &TenantId) -> u64 {
        self.inner.requests_sent(tenant)
    }
}

/// A queue whose enqueue takes as long as the wire: it finishes when the next page has been
/// asked for, or after a bounded wait. It counts the pages whose next request overlapped it.
struct SlowQueue {
    inner: Arc<CollectingQueue>,
    asked: Asked,
    overlapped: Mutex<u32>,
}

#[async_trait]
impl entra_sync_core::ports::WorkQueue for SlowQueue {
    async fn enqueue(
        &self,
        messages: Vec<entra_sync_core::page::PageMessage>,
    ) -> Result<(), entra_sync_core::error::QueueError> {
        let stream = messages[0].items.stream();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            self.asked[slot(stream)].notified(),
        )
        .await;
        if waited.is_ok() {
            *self.overlapped.lock().unwrap() += 1;
        }
        self.inner.enqueue(messages).await
    }
}

#[tokio::test]
async fn the_next_page_is_asked_for_while_the_previous_one_is_enqueued() {
    let w = world().await;
    script_initial(&w);
    let asked: Asked = Arc::new([tokio::sync::Notify::new(), tokio::sync::Notify::new()]);
    let queue = Arc::new(SlowQueue {
        inner: w.queue.clone(),
        asked: asked.clone(),
        overlapped: Mutex::new(0),
    });
    let fetch = DepsBuilder::on(&w.store).fetch(
        Arc::new(Watched {
            inner: w.dir.clone(),
            asked,
        }),
        queue.clone(),
    );
    let report = run_fetch(&fetch, &w.tenant, &FetchOptions::default())
        .await
        .unwrap();
    assert_eq!(report.pages_enqueued, 5);
    // Three pages have a next page (users: initial and u1; groups: initial): each one's
    // successor was requested while it was being enqueued. The last page of each stream has
    // none, so nothing is asked beyond the round.
    assert_eq!(*queue.overlapped.lock().unwrap(), 3);
    assert_eq!(w.dir.requests_sent(&w.tenant), 5, "each page asked once");
    // The checkpoint order is unchanged: every page enqueued, the cursors at the end.
    let (c, _) = w
        .store
        .load_cursor(&w.tenant, Stream::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(c.state, CursorState::Applying { pages: 3, .. }));
}
