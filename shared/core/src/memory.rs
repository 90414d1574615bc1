//! In-memory adapters of every port: the hand-written fakes for domain and handler tests, and
//! the reference the SQLite and DynamoDB adapters are checked against by the contract suite.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::cursor::CursorRecord;
use crate::error::{EventError, QueueError, StoreError, VaultError};
use crate::events::ChangeEvent;
use crate::keys::edge_listing_key;
use crate::model::{
    AccountId, Connection, StoredGroup, StoredMembership, StoredUser, Stream, TenantId,
};
use crate::page::PageMessage;
use crate::ports::{
    Clock, ConnectionStore, CursorStore, EventSink, FetchRequest, FetchRequests, LeaseStore,
    Listing, LocalUserStore, MirrorStore, Revision, RunStore, Secret, SecretVault, SettingsStore,
    WorkQueue,
};
use crate::provision::LocalUser;
use crate::run::{RunUpdate, SyncRun};
use crate::settings::ConnectionSettings;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another test thread panicked; the data is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Key = (TenantId, String);

#[derive(Default)]
struct State {
    connections: BTreeMap<TenantId, Connection>,
    cursors: HashMap<(TenantId, Stream), (CursorRecord, Revision)>,
    applied: HashSet<(TenantId, Stream, u64, u32)>,
    leases: HashMap<TenantId, (String, DateTime<Utc>)>,
    users: BTreeMap<Key, StoredUser>,
    groups: BTreeMap<Key, StoredGroup>,
    /// Keyed "group/member" within the tenant.
    edges: BTreeMap<Key, StoredMembership>,
    runs: BTreeMap<Key, SyncRun>,
    settings: BTreeMap<TenantId, ConnectionSettings>,
    /// Keyed (account, local id).
    local_users: BTreeMap<(AccountId, String), LocalUser>,
    /// Conditional puts that landed, for tests that count writes.
    writes: u64,
}

/// Every store port in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Conditional puts that landed so far.
    pub fn writes(&self) -> u64 {
        lock(&self.state).writes
    }
}

fn list<T: Clone>(
    map: &BTreeMap<Key, T>,
    tenant: &TenantId,
    after: Option<&str>,
    limit: usize,
) -> Listing<T> {
    use std::ops::Bound;
    let start = match after {
        Some(a) => Bound::Excluded((tenant.clone(), a.to_owned())),
        None => Bound::Included((tenant.clone(), String::new())),
    };
    let mut items = Vec::new();
    let mut last = None;
    for ((t, k), v) in map.range((start, Bound::Unbounded)) {
        if t != tenant {
            break;
        }
        if items.len() == limit {
            return Listing { items, next: last };
        }
        items.push(v.clone());
        last = Some(k.clone());
    }
    Listing { items, next: None }
}

fn put_versioned<T: Clone>(
    map: &mut BTreeMap<Key, T>,
    key: Key,
    value: &T,
    version: impl Fn(&T) -> crate::model::Version,
) -> bool {
    match map.get(&key) {
        Some(old) if version(old) >= version(value) => false,
        _ => {
            map.insert(key, value.clone());
            true
        }
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn get_connection(&self, tenant: &TenantId) -> Result<Option<Connection>, StoreError> {
        Ok(lock(&self.state).connections.get(tenant).cloned())
    }
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        lock(&self.state)
            .connections
            .insert(connection.tenant_id.clone(), connection.clone());
        Ok(())
    }
    async fn replace_connection(
        &self,
        connection: &Connection,
        expected: Option<&Connection>,
    ) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        if st.connections.get(&connection.tenant_id) != expected {
            return Err(StoreError::Conflict(format!(
                "connection {}",
                connection.tenant_id
            )));
        }
        st.connections
            .insert(connection.tenant_id.clone(), connection.clone());
        Ok(())
    }
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(lock(&self.state).connections.values().cloned().collect())
    }
}

#[async_trait]
impl CursorStore for MemoryStore {
    async fn load_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
    ) -> Result<Option<(CursorRecord, Revision)>, StoreError> {
        Ok(lock(&self.state)
            .cursors
            .get(&(tenant.clone(), stream))
            .cloned())
    }

    async fn save_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
        record: &CursorRecord,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let mut s = lock(&self.state);
        let key = (tenant.clone(), stream);
        let current = s.cursors.get(&key).map(|(_, r)| *r);
        if current != expected {
            return Err(StoreError::Conflict(format!("cursor {tenant}/{stream}")));
        }
        let next = Revision(current.map_or(1, |r| r.0 + 1));
        s.cursors.insert(key, (record.clone(), next));
        Ok(next)
    }

    async fn mark_page_applied(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
        page: u32,
    ) -> Result<bool, StoreError> {
        Ok(lock(&self.state)
            .applied
            .insert((tenant.clone(), stream, cycle, page)))
    }

    async fn applied_pages(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
    ) -> Result<u32, StoreError> {
        let s = lock(&self.state);
        let n = s
            .applied
            .iter()
            .filter(|(t, st, c, _)| t == tenant && *st == stream && *c == cycle)
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut s = lock(&self.state);
        match s.leases.get(tenant) {
            Some((h, exp)) if h != holder && *exp > now => Ok(false),
            _ => {
                s.leases.insert(tenant.clone(), (holder.to_owned(), until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        if s.leases.get(tenant).is_some_and(|(h, _)| h == holder) {
            s.leases.remove(tenant);
        }
        Ok(())
    }
}

#[async_trait]
impl MirrorStore for MemoryStore {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError> {
        let s = lock(&self.state);
        Ok(ids
            .iter()
            .filter_map(|id| s.users.get(&(tenant.clone(), id.clone())).cloned())
            .collect())
    }

    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError> {
        let mut s = lock(&self.state);
        let mut n = 0;
        for u in users {
            if put_versioned(&mut s.users, (tenant.clone(), u.user.id.clone()), u, |x| {
                x.version
            }) {
                n += 1;
            }
        }
        s.writes += n;
        Ok(n)
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError> {
        Ok(list(&lock(&self.state).users, tenant, after, limit))
    }

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError> {
        let s = lock(&self.state);
        Ok(ids
            .iter()
            .filter_map(|id| s.groups.get(&(tenant.clone(), id.clone())).cloned())
            .collect())
    }

    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError> {
        let mut s = lock(&self.state);
        let mut n = 0;
        for g in groups {
            if put_versioned(
                &mut s.groups,
                (tenant.clone(), g.group.id.clone()),
                g,
                |x| x.version,
            ) {
                n += 1;
            }
        }
        s.writes += n;
        Ok(n)
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError> {
        Ok(list(&lock(&self.state).groups, tenant, after, limit))
    }

    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let s = lock(&self.state);
        Ok(keys
            .iter()
            .filter_map(|(g, m)| {
                s.edges
                    .get(&(tenant.clone(), edge_listing_key(g, m)))
                    .cloned()
            })
            .collect())
    }

    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError> {
        let mut s = lock(&self.state);
        let mut n = 0;
        for e in edges {
            let key = (tenant.clone(), edge_listing_key(&e.group_id, &e.member.id));
            if put_versioned(&mut s.edges, key, e, |x| x.version) {
                n += 1;
            }
        }
        s.writes += n;
        Ok(n)
    }

    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let s = lock(&self.state);
        let prefix = format!("{group_id}/");
        Ok(s.edges
            .range((tenant.clone(), prefix.clone())..)
            .take_while(|((t, k), _)| t == tenant && k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError> {
        Ok(list(&lock(&self.state).edges, tenant, after, limit))
    }
}

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn get_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ConnectionSettings>, StoreError> {
        Ok(lock(&self.state).settings.get(tenant).cloned())
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &ConnectionSettings,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        let stored = st.settings.get(tenant).map_or(0, |s| s.version);
        if stored != expected || settings.version != expected + 1 {
            return Err(StoreError::Conflict(format!(
                "settings of {tenant} are at version {stored}, not {expected}"
            )));
        }
        st.settings.insert(tenant.clone(), settings.clone());
        st.writes += 1;
        Ok(())
    }
}

#[async_trait]
impl LocalUserStore for MemoryStore {
    async fn get_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Option<LocalUser>, StoreError> {
        Ok(lock(&self.state)
            .local_users
            .get(&(account.clone(), local_id.to_owned()))
            .cloned())
    }

    async fn find_by_emails(
        &self,
        account: &AccountId,
        emails: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        let wanted: HashSet<&str> = emails.iter().map(String::as_str).collect();
        Ok(lock(&self.state)
            .local_users
            .iter()
            .filter(|((a, _), u)| a == account && wanted.contains(u.email.as_str()))
            .map(|(_, u)| u.clone())
            .collect())
    }

    async fn find_linked(
        &self,
        tenant: &TenantId,
        object_ids: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        let wanted: HashSet<&str> = object_ids.iter().map(String::as_str).collect();
        Ok(lock(&self.state)
            .local_users
            .values()
            .filter(|u| {
                u.link.as_ref().is_some_and(|l| {
                    &l.tenant_id == tenant && wanted.contains(l.object_id.as_str())
                })
            })
            .cloned()
            .collect())
    }

    async fn put_local_users(&self, users: &[LocalUser]) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        for u in users {
            let key = (u.account_id.clone(), u.local_id.clone());
            let mut u = u.clone();
            u.revision = st.local_users.get(&key).map_or(0, |s| s.revision) + 1;
            st.local_users.insert(key, u);
            st.writes += 1;
        }
        Ok(())
    }

    async fn list_local_users(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<LocalUser>, StoreError> {
        use std::ops::Bound;
        let st = lock(&self.state);
        let start = match after {
            Some(a) => Bound::Excluded((account.clone(), a.to_owned())),
            None => Bound::Included((account.clone(), String::new())),
        };
        let mut items: Vec<LocalUser> = st
            .local_users
            .range((start, Bound::Unbounded))
            .take_while(|((a, _), _)| a == account)
            .take(limit.saturating_add(1))
            .map(|(_, u)| u.clone())
            .collect();
        let next = match items.len() > limit {
            true => {
                items.truncate(limit);
                items.last().map(|u| u.local_id.clone())
            }
            false => None,
        };
        Ok(Listing { items, next })
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        lock(&self.state)
            .runs
            .entry((run.tenant_id.clone(), run.run_id.clone()))
            .or_insert_with(|| run.clone());
        Ok(())
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
        update: &RunUpdate,
    ) -> Result<SyncRun, StoreError> {
        let mut s = lock(&self.state);
        let run = s
            .runs
            .get_mut(&(tenant.clone(), run_id.to_owned()))
            .ok_or_else(|| StoreError::Corrupt(format!("run {run_id} not found")))?;
        update.apply(run);
        Ok(run.clone())
    }

    async fn get_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
    ) -> Result<Option<SyncRun>, StoreError> {
        Ok(lock(&self.state)
            .runs
            .get(&(tenant.clone(), run_id.to_owned()))
            .cloned())
    }

    async fn list_runs_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<SyncRun>, StoreError> {
        let runs = self.list_runs(tenant, usize::MAX).await?;
        let start = match after {
            None => 0,
            Some(a) => match runs.iter().position(|r| r.run_id == a) {
                Some(i) => i + 1,
                None => runs.len(),
            },
        };
        let mut items: Vec<SyncRun> = runs
            .into_iter()
            .skip(start)
            .take(limit.saturating_add(1))
            .collect();
        let next = match items.len() > limit {
            true => {
                items.truncate(limit);
                items.last().map(|r| r.run_id.clone())
            }
            false => None,
        };
        Ok(Listing { items, next })
    }

    async fn list_runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let s = lock(&self.state);
        let mut runs: Vec<SyncRun> = s
            .runs
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, r)| r.clone())
            .collect();
        runs.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then(b.run_id.cmp(&a.run_id))
        });
        runs.truncate(limit);
        Ok(runs)
    }
}

/// A queue that just collects messages; tests decide when and in which order to deliver them.
#[derive(Default)]
pub struct CollectingQueue {
    messages: Mutex<Vec<PageMessage>>,
}

impl CollectingQueue {
    pub fn new() -> Self {
        Self::default()
    }
    /// Take every message enqueued so far.
    pub fn drain(&self) -> Vec<PageMessage> {
        std::mem::take(&mut *lock(&self.messages))
    }
}

#[async_trait]
impl WorkQueue for CollectingQueue {
    async fn enqueue(&self, messages: Vec<PageMessage>) -> Result<(), QueueError> {
        lock(&self.messages).extend(messages);
        Ok(())
    }
}

/// A queue that collects messages and says it carries at most `max_bytes` per message, so
/// fetch splits large pages for it as it does for SQS.
pub struct LimitedQueue {
    pub max_bytes: usize,
    pub inner: CollectingQueue,
}

#[async_trait]
impl WorkQueue for LimitedQueue {
    async fn enqueue(&self, messages: Vec<PageMessage>) -> Result<(), QueueError> {
        for m in &messages {
            let len = serde_json::to_vec(m).map_or(usize::MAX, |b| b.len());
            if len > self.max_bytes {
                return Err(QueueError::Rejected(format!(
                    "message {} is {len} bytes",
                    m.message_id()
                )));
            }
        }
        self.inner.enqueue(messages).await
    }
    fn max_message_bytes(&self) -> Option<usize> {
        Some(self.max_bytes)
    }
}

/// Collects fetch requests with their delays.
#[derive(Default)]
pub struct CollectingFetchRequests {
    requests: Mutex<Vec<(FetchRequest, std::time::Duration)>>,
}

impl CollectingFetchRequests {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn take(&self) -> Vec<(FetchRequest, std::time::Duration)> {
        std::mem::take(&mut *lock(&self.requests))
    }
}

#[async_trait]
impl FetchRequests for CollectingFetchRequests {
    async fn request_fetches(
        &self,
        requests: Vec<(FetchRequest, std::time::Duration)>,
    ) -> Result<(), QueueError> {
        lock(&self.requests).extend(requests);
        Ok(())
    }
}

/// Collects events.
#[derive(Default)]
pub struct CollectingEvents {
    events: Mutex<Vec<ChangeEvent>>,
    /// Every event ever published, `take` or not (for checks at the end of a test).
    history: Mutex<Vec<ChangeEvent>>,
}

impl CollectingEvents {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn take(&self) -> Vec<ChangeEvent> {
        std::mem::take(&mut *lock(&self.events))
    }
    /// Every event published so far, including those already taken.
    pub fn history(&self) -> Vec<ChangeEvent> {
        lock(&self.history).clone()
    }
    pub fn len(&self) -> usize {
        lock(&self.events).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventSink for CollectingEvents {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
        lock(&self.events).extend_from_slice(events);
        lock(&self.history).extend_from_slice(events);
        Ok(())
    }
}

/// Secrets in memory (tests only: nothing is encrypted).
#[derive(Default)]
pub struct MemoryVault {
    secrets: Mutex<HashMap<String, Secret>>,
}

#[async_trait]
impl SecretVault for MemoryVault {
    async fn get_secret(&self, name: &str) -> Result<Secret, VaultError> {
        lock(&self.secrets)
            .get(name)
            .cloned()
            .ok_or_else(|| VaultError::NotFound(name.to_owned()))
    }
    async fn put_secret(&self, name: &str, value: &Secret) -> Result<(), VaultError> {
        lock(&self.secrets).insert(name.to_owned(), value.clone());
        Ok(())
    }
    async fn delete_secret(&self, name: &str) -> Result<(), VaultError> {
        lock(&self.secrets).remove(name);
        Ok(())
    }
}

/// A clock tests move by hand.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }
    pub fn advance(&self, by: chrono::Duration) {
        let mut n = lock(&self.now);
        *n += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
}

/// Idempotency records in memory (their own file: `memory_idempotency.rs`).
pub use crate::memory_idempotency::MemoryIdempotency;
