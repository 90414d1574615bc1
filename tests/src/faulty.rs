//! Port wrappers for the convergence harness: they crash a worker between any two steps and
//! audit every write that lands.
//!
//! - [`Crashes`] counts every call made through the wrapped store and queue ports. The harness
//!   arms it with call numbers; the call with that number fails with an "unavailable" error,
//!   either *before* reaching the inner port (nothing happened) or *after* it (the write landed
//!   but the worker died before it could see the answer: e.g. a store write before the queue
//!   ack, or an enqueue before the cursor checkpoint). The service returns the error mid-way and
//!   the harness retries or redelivers the work, as Lambda and SQS would.
//! - [`Audit`] checks, for every put that reaches the mirror, that a write only ever replaced an
//!   older version (no replay overwrote newer state), and that every call names the tenant whose
//!   work is being processed (no write crossed tenants). It records violations instead of
//!   panicking so the harness reports them together with the case that produced them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::error::{QueueError, StoreError};
use entra_sync_core::model::{
    Connection, StoredGroup, StoredMembership, StoredUser, Stream, TenantId, Version,
};
use entra_sync_core::page::PageMessage;
use entra_sync_core::ports::{
    ConnectionStore, CursorStore, LeaseStore, Listing, MirrorStore, Revision, RunStore, WorkQueue,
};
use entra_sync_core::run::{RunUpdate, SyncRun};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every store port the services use, in one bound.
pub trait StorePorts: ConnectionStore + CursorStore + LeaseStore + MirrorStore + RunStore {}
impl<T: ConnectionStore + CursorStore + LeaseStore + MirrorStore + RunStore + ?Sized> StorePorts
    for T
{
}

/// Where, relative to the inner call, a crash happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Crash {
    /// The call fails without reaching the port.
    Before,
    /// The call takes effect, then the caller sees a failure.
    After,
}

#[derive(Debug, Default)]
struct CrashState {
    calls: u64,
    at: BTreeMap<u64, Crash>,
    fired_before: u64,
    fired_after: u64,
}

/// The crash schedule shared by the wrapped ports.
#[derive(Debug, Default)]
pub struct Crashes {
    state: Mutex<CrashState>,
}

/// The error a crashed call returns.
#[derive(Debug, thiserror::Error)]
#[error("injected crash at call {0}")]
pub struct InjectedCrash(pub u64);

impl Crashes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restart the call count at zero and crash at each given call number (1-based).
    pub fn arm(&self, points: impl IntoIterator<Item = (u64, Crash)>) {
        let mut s = lock(&self.state);
        s.calls = 0;
        s.at = points.into_iter().collect();
    }

    /// No more crashes.
    pub fn disarm(&self) {
        lock(&self.state).at.clear();
    }

    /// Crashes that happened so far: (before, after).
    pub fn fired(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.fired_before, s.fired_after)
    }

    /// Calls counted since the last `arm`.
    pub fn calls(&self) -> u64 {
        lock(&self.state).calls
    }

    fn next(&self) -> (u64, Option<Crash>) {
        let mut s = lock(&self.state);
        s.calls += 1;
        let n = s.calls;
        let crash = s.at.remove(&n);
        match crash {
            Some(Crash::Before) => s.fired_before += 1,
            Some(Crash::After) => s.fired_after += 1,
            None => {}
        }
        (n, crash)
    }
}

tokio::task_local! {
    /// The tenant whose work the current future does (set per future, so concurrent
    /// deliveries joined in one task each keep their own).
    static CONTEXT: TenantId;
}

#[derive(Debug, Default)]
struct AuditState {
    violations: Vec<String>,
    landed: u64,
    checked: u64,
}

/// The write auditor (see the module docs).
#[derive(Debug, Default)]
pub struct Audit {
    state: Mutex<AuditState>,
}

impl Audit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `work` (a fetch, one page message) on behalf of `tenant`: every call it makes
    /// through the wrapped ports must name that tenant. Calls outside any scope are not
    /// tenant-checked.
    pub async fn scope<F: Future>(tenant: TenantId, work: F) -> F::Output {
        CONTEXT.scope(tenant, work).await
    }

    pub fn violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }

    /// Mirror writes that landed, and puts checked.
    pub fn counts(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.landed, s.checked)
    }

    fn violation(&self, what: String) {
        let mut s = lock(&self.state);
        if s.violations.len() < 20 {
            s.violations.push(what);
        }
    }

    /// A call on behalf of `tenant`: it must be the tenant being processed.
    pub fn check_tenant(&self, op: &str, tenant: &TenantId) {
        if let Ok(ctx) = CONTEXT.try_with(TenantId::clone)
            && ctx != *tenant
        {
            self.violation(format!(
                "cross-tenant call: {op} for {tenant} while processing {ctx}"
            ));
        }
    }

    /// Compare what a put saw before and after with what it wrote.
    fn check_put<K, T>(
        &self,
        kind: &str,
        tenant: &TenantId,
        written: &[(K, T)],
        before: &HashMap<K, T>,
        after: &HashMap<K, T>,
        version: impl Fn(&T) -> Version,
    ) where
        K: Hash + Eq + Debug,
        T: PartialEq + Debug,
    {
        let mut landed = 0;
        for (key, w) in written {
            let b = before.get(key);
            let a = after.get(key);
            if a != b {
                landed += 1;
                match (b, a) {
                    (Some(b), Some(a)) if version(a) <= version(b) => self.violation(format!(
                        "{kind} {tenant}/{key:?}: stored version went from {:?} to {:?}",
                        version(b),
                        version(a)
                    )),
                    (_, None) => self.violation(format!("{kind} {tenant}/{key:?} vanished")),
                    _ => {}
                }
            }
            if let Some(b) = b
                && version(b) >= version(w)
                && a != Some(b)
            {
                self.violation(format!(
                    "{kind} {tenant}/{key:?}: a write of version {:?} replaced newer state of version {:?}",
                    version(w),
                    version(b)
                ));
            }
        }
        let mut s = lock(&self.state);
        s.landed += landed;
        s.checked += 1;
    }
}

fn crashed(n: u64) -> StoreError {
    StoreError::Unavailable(Box::new(InjectedCrash(n)))
}

/// A store whose every call can crash, and whose mirror writes are audited.
pub struct FaultyStore<S: ?Sized> {
    inner: Arc<S>,
    crashes: Arc<Crashes>,
    audit: Arc<Audit>,
}

impl<S: StorePorts + ?Sized> FaultyStore<S> {
    pub fn new(inner: Arc<S>, crashes: Arc<Crashes>, audit: Arc<Audit>) -> Self {
        Self {
            inner,
            crashes,
            audit,
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Run `call` under the crash schedule.
    async fn guarded<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        // Every call is a point where another worker may run: concurrent deliveries joined
        // in one task interleave here, call by call, deterministically.
        tokio::task::yield_now().await;
        let (n, crash) = self.crashes.next();
        if crash == Some(Crash::Before) {
            return Err(crashed(n));
        }
        let out = call.await?;
        if crash == Some(Crash::After) {
            return Err(crashed(n));
        }
        Ok(out)
    }
}

fn by_key<K: Hash + Eq, T: Clone>(items: &[T], key: impl Fn(&T) -> K) -> HashMap<K, T> {
    items.iter().map(|t| (key(t), t.clone())).collect()
}

fn user_key(u: &StoredUser) -> String {
    u.user.id.clone()
}

fn group_key(g: &StoredGroup) -> String {
    g.group.id.clone()
}

fn edge_key(e: &StoredMembership) -> (String, String) {
    (e.group_id.clone(), e.member.id.clone())
}

#[async_trait]
impl<S: StorePorts + ?Sized> ConnectionStore for FaultyStore<S> {
    async fn get_connection(&self, tenant: &TenantId) -> Result<Option<Connection>, StoreError> {
        self.audit.check_tenant("get_connection", tenant);
        self.guarded(self.inner.get_connection(tenant)).await
    }
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.audit
            .check_tenant("put_connection", &connection.tenant_id);
        self.guarded(self.inner.put_connection(connection)).await
    }
    async fn replace_connection(
        &self,
        connection: &Connection,
        expected: Option<&Connection>,
    ) -> Result<(), StoreError> {
        self.audit
            .check_tenant("replace_connection", &connection.tenant_id);
        self.guarded(self.inner.replace_connection(connection, expected))
            .await
    }
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.guarded(self.inner.list_connections()).await
    }
}

#[async_trait]
impl<S: StorePorts + ?Sized> CursorStore for FaultyStore<S> {
    async fn load_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
    ) -> Result<Option<(CursorRecord, Revision)>, StoreError> {
        self.audit.check_tenant("load_cursor", tenant);
        self.guarded(self.inner.load_cursor(tenant, stream)).await
    }
    async fn save_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
        record: &CursorRecord,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        self.audit.check_tenant("save_cursor", tenant);
        self.guarded(self.inner.save_cursor(tenant, stream, record, expected))
            .await
    }
    async fn mark_page_applied(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
        page: u32,
    ) -> Result<bool, StoreError> {
        self.audit.check_tenant("mark_page_applied", tenant);
        self.guarded(self.inner.mark_page_applied(tenant, stream, cycle, page))
            .await
    }
    async fn applied_pages(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
    ) -> Result<u32, StoreError> {
        self.audit.check_tenant("applied_pages", tenant);
        self.guarded(self.inner.applied_pages(tenant, stream, cycle))
            .await
    }
}

#[async_trait]
impl<S: StorePorts + ?Sized> LeaseStore for FaultyStore<S> {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.audit.check_tenant("acquire_lease", tenant);
        self.guarded(self.inner.acquire_lease(tenant, holder, until, now))
            .await
    }
    async fn release_lease(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError> {
        self.audit.check_tenant("release_lease", tenant);
        self.guarded(self.inner.release_lease(tenant, holder)).await
    }
}

#[async_trait]
impl<S: StorePorts + ?Sized> MirrorStore for FaultyStore<S> {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError> {
        self.audit.check_tenant("get_users", tenant);
        self.guarded(self.inner.get_users(tenant, ids)).await
    }

    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError> {
        self.audit.check_tenant("put_users", tenant);
        self.guarded(async {
            let ids: Vec<String> = users.iter().map(user_key).collect();
            let before = by_key(&self.inner.get_users(tenant, &ids).await?, user_key);
            let n = self.inner.put_users(tenant, users).await?;
            let after = by_key(&self.inner.get_users(tenant, &ids).await?, user_key);
            let written: Vec<_> = users.iter().map(|u| (user_key(u), u.clone())).collect();
            self.audit
                .check_put("user", tenant, &written, &before, &after, |u| u.version);
            Ok(n)
        })
        .await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError> {
        self.audit.check_tenant("list_users", tenant);
        self.guarded(self.inner.list_users(tenant, after, limit))
            .await
    }

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError> {
        self.audit.check_tenant("get_groups", tenant);
        self.guarded(self.inner.get_groups(tenant, ids)).await
    }

    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError> {
        self.audit.check_tenant("put_groups", tenant);
        self.guarded(async {
            let ids: Vec<String> = groups.iter().map(group_key).collect();
            let before = by_key(&self.inner.get_groups(tenant, &ids).await?, group_key);
            let n = self.inner.put_groups(tenant, groups).await?;
            let after = by_key(&self.inner.get_groups(tenant, &ids).await?, group_key);
            let written: Vec<_> = groups.iter().map(|g| (group_key(g), g.clone())).collect();
            self.audit
                .check_put("group", tenant, &written, &before, &after, |g| g.version);
            Ok(n)
        })
        .await
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError> {
        self.audit.check_tenant("list_groups", tenant);
        self.guarded(self.inner.list_groups(tenant, after, limit))
            .await
    }

    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError> {
        self.audit.check_tenant("get_memberships", tenant);
        self.guarded(self.inner.get_memberships(tenant, keys)).await
    }

    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError> {
        self.audit.check_tenant("put_memberships", tenant);
        self.guarded(async {
            let keys: Vec<(String, String)> = edges.iter().map(edge_key).collect();
            let before = by_key(&self.inner.get_memberships(tenant, &keys).await?, edge_key);
            let n = self.inner.put_memberships(tenant, edges).await?;
            let after = by_key(&self.inner.get_memberships(tenant, &keys).await?, edge_key);
            let written: Vec<_> = edges.iter().map(|e| (edge_key(e), e.clone())).collect();
            self.audit
                .check_put("membership", tenant, &written, &before, &after, |e| {
                    e.version
                });
            Ok(n)
        })
        .await
    }

    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError> {
        self.audit.check_tenant("memberships_of_group", tenant);
        self.guarded(self.inner.memberships_of_group(tenant, group_id))
            .await
    }

    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError> {
        self.audit.check_tenant("list_memberships", tenant);
        self.guarded(self.inner.list_memberships(tenant, after, limit))
            .await
    }
}

#[async_trait]
impl<S: StorePorts + ?Sized> RunStore for FaultyStore<S> {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.audit.check_tenant("create_run", &run.tenant_id);
        self.guarded(self.inner.create_run(run)).await
    }
    async fn update_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
        update: &RunUpdate,
    ) -> Result<SyncRun, StoreError> {
        self.audit.check_tenant("update_run", tenant);
        self.guarded(self.inner.update_run(tenant, run_id, update))
            .await
    }
    async fn get_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
    ) -> Result<Option<SyncRun>, StoreError> {
        self.audit.check_tenant("get_run", tenant);
        self.guarded(self.inner.get_run(tenant, run_id)).await
    }
    async fn list_runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        self.audit.check_tenant("list_runs", tenant);
        self.guarded(self.inner.list_runs(tenant, limit)).await
    }
    async fn list_runs_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<SyncRun>, StoreError> {
        self.audit.check_tenant("list_runs_page", tenant);
        self.guarded(self.inner.list_runs_page(tenant, after, limit))
            .await
    }
}

/// A queue whose enqueue can crash (before or after the messages are accepted) and whose
/// messages are tenant-checked.
pub struct FaultyQueue<Q: ?Sized> {
    inner: Arc<Q>,
    crashes: Arc<Crashes>,
    audit: Arc<Audit>,
}

impl<Q: WorkQueue + ?Sized> FaultyQueue<Q> {
    pub fn new(inner: Arc<Q>, crashes: Arc<Crashes>, audit: Arc<Audit>) -> Self {
        Self {
            inner,
            crashes,
            audit,
        }
    }
}

#[async_trait]
impl<Q: WorkQueue + ?Sized> WorkQueue for FaultyQueue<Q> {
    async fn enqueue(&self, messages: Vec<PageMessage>) -> Result<(), QueueError> {
        for m in &messages {
            self.audit.check_tenant("enqueue", &m.tenant_id);
        }
        let (n, crash) = self.crashes.next();
        if crash == Some(Crash::Before) {
            return Err(QueueError::Unavailable(Box::new(InjectedCrash(n))));
        }
        self.inner.enqueue(messages).await?;
        if crash == Some(Crash::After) {
            return Err(QueueError::Unavailable(Box::new(InjectedCrash(n))));
        }
        Ok(())
    }

    fn max_message_bytes(&self) -> Option<usize> {
        self.inner.max_message_bytes()
    }
}

/// An event sink whose publish can crash: before the events reach the inner sink (none
/// delivered) or after (all delivered, the caller sees a failure), as a publisher killed
/// around its EventBridge call.
pub struct FaultySink<E: ?Sized> {
    inner: Arc<E>,
    crashes: Arc<Crashes>,
}

impl<E: entra_sync_core::ports::EventSink + ?Sized> FaultySink<E> {
    pub fn new(inner: Arc<E>, crashes: Arc<Crashes>) -> Self {
        Self { inner, crashes }
    }
}

#[async_trait]
impl<E: entra_sync_core::ports::EventSink + ?Sized> entra_sync_core::ports::EventSink
    for FaultySink<E>
{
    async fn publish(
        &self,
        events: &[entra_sync_core::events::ChangeEvent],
    ) -> Result<(), entra_sync_core::error::EventError> {
        use entra_sync_core::error::EventError;
        let (n, crash) = self.crashes.next();
        if crash == Some(Crash::Before) {
            return Err(EventError::Unavailable(Box::new(InjectedCrash(n))));
        }
        self.inner.publish(events).await?;
        if crash == Some(Crash::After) {
            return Err(EventError::Unavailable(Box::new(InjectedCrash(n))));
        }
        Ok(())
    }
}
