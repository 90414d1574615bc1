//! Ports: one small trait per capability. A service receives only the ports it uses, so its
//! dependency list reads like the IAM policy of the function that runs it.
//!
//! Adapters live outside the core: `entra-sync-graph` (directory), `entra-sync-local` (SQLite,
//! in-process queue, file vault) and, later, the AWS adapters. Adapters translate; they never decide.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cursor::CursorRecord;
use crate::error::{DirectoryError, EventError, QueueError, StoreError, VaultError};
use crate::events::ChangeEvent;
use crate::model::{
    AccountId, Connection, StoredGroup, StoredMembership, StoredUser, Stream, TenantId,
};
use crate::page::{FetchedPage, PageMessage, PageRequest};
use crate::provision::LocalUser;
use crate::run::{RunUpdate, SyncRun, Trigger};
use crate::settings::ConnectionSettings;

/// Reads delta pages from the directory (Microsoft Graph).
#[async_trait]
pub trait DirectoryReader: Send + Sync {
    /// One page of a delta round: the first page of a full round, or the page behind a link
    /// Graph gave us. Retries of throttling and transient failures happen inside; what comes
    /// out is final for this call.
    async fn fetch_page(
        &self,
        tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError>;

    /// HTTP requests this reader has sent for `tenant` so far (retries and token requests
    /// included): the activity log and benchmarks report it.
    fn requests_sent(&self, tenant: &TenantId) -> u64;
}

/// Connections (one per tenant).
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn get_connection(&self, tenant: &TenantId) -> Result<Option<Connection>, StoreError>;
    /// Unconditional write (tests and tools; the services write with [`Self::replace_connection`]).
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Conditional write: lands only if the stored connection of the tenant is still
    /// `expected` (`None`: no connection is stored), else `StoreError::Conflict`. Of two
    /// accounts connecting one tenant at once, exactly one creates it; a status change read
    /// before a concurrent disconnect cannot overwrite it.
    async fn replace_connection(
        &self,
        connection: &Connection,
        expected: Option<&Connection>,
    ) -> Result<(), StoreError>;
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError>;
}

/// An opaque revision for optimistic concurrency on cursor records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Revision(pub u64);

/// Delta cursors and the per-page "applied" markers of the round in progress.
#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn load_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
    ) -> Result<Option<(CursorRecord, Revision)>, StoreError>;

    /// Conditional write: succeeds only if the stored revision is still `expected` (`None`: no
    /// record yet). Returns the new revision, or `StoreError::Conflict`.
    async fn save_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
        record: &CursorRecord,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError>;

    /// Record that page `page` of `cycle` is applied. Returns `true` the first time only.
    async fn mark_page_applied(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
        page: u32,
    ) -> Result<bool, StoreError>;

    /// How many distinct pages of `cycle` are applied.
    async fn applied_pages(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
    ) -> Result<u32, StoreError>;
}

/// The per-directory fetch lease: one fetch of a directory at a time.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Take the lease if it is free, expired, or already ours. Returns whether we hold it.
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    async fn release_lease(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError>;
}

/// One page of a listing, in key order; `next` continues it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a listing read page by page stands: the `after` of the next page, or the end. The one
/// loop over [`Listing`] pages, for loops whose body does more than collect:
///
/// ```ignore
/// let mut pages = Pages::default();
/// while let Some(after) = pages.next_after() {
///     let page = mirror.list_users(tenant, after, 500).await?;
///     // ... page.items ...
///     pages.advance(page.next);
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Pages {
    after: Option<String>,
    done: bool,
}

impl Pages {
    /// The `after` of the next page to read (`Some(None)`: the first page), or `None` once the
    /// last page was read.
    pub fn next_after(&self) -> Option<Option<&str>> {
        (!self.done).then_some(self.after.as_deref())
    }

    /// Take in the `next` of the page just read.
    pub fn advance(&mut self, next: Option<String>) {
        self.done = next.is_none();
        self.after = next;
    }
}

/// Read a listing to its end: `read(after)` reads one page, `each` gets every page's items.
pub async fn for_each_page<T, E, F, Fut>(mut read: F, mut each: impl FnMut(Vec<T>)) -> Result<(), E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Listing<T>, E>>,
{
    let mut pages = Pages::default();
    while let Some(after) = pages.next_after() {
        let page = read(after.map(str::to_owned)).await?;
        each(page.items);
        pages.advance(page.next);
    }
    Ok(())
}

/// The mirror of the directory. Every put is conditional per item: it lands only when the item
/// is absent or its stored version is older than the written one. Puts return how many landed.
#[async_trait]
pub trait MirrorStore: Send + Sync {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError>;
    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError>;
    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError>;

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError>;
    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError>;
    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError>;

    /// Edges by (group id, member id).
    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError>;
    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError>;
    /// Every edge (present or tombstone) of one group.
    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError>;
    /// All edges, keyed "group id/member id" for `after`.
    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError>;
}

/// The activity log.
#[async_trait]
pub trait RunStore: Send + Sync {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError>;
    /// Apply an update atomically and return the run as it now is.
    async fn update_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
        update: &RunUpdate,
    ) -> Result<SyncRun, StoreError>;
    async fn get_run(&self, tenant: &TenantId, run_id: &str)
    -> Result<Option<SyncRun>, StoreError>;
    /// Newest first.
    async fn list_runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError>;
    /// One page of the activity log, newest first (by start time, then run id, descending):
    /// the runs after `after`, the run id a previous page gave as `next`. A run id the tenant
    /// has no run of gives an empty page.
    async fn list_runs_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<SyncRun>, StoreError>;
}

/// Per-connection settings (filters, mapping, rules), versioned.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// `None` when never saved (the defaults apply).
    async fn get_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ConnectionSettings>, StoreError>;

    /// Conditional write: lands only if the stored version is `expected` (0: none stored yet)
    /// and `settings.version` is `expected + 1`; otherwise `StoreError::Conflict`.
    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &ConnectionSettings,
        expected: u64,
    ) -> Result<(), StoreError>;
}

/// The host product's users (the projection of the mirror), keyed by (account, local id).
#[async_trait]
pub trait LocalUserStore: Send + Sync {
    async fn get_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Option<LocalUser>, StoreError>;

    /// Users of `account` whose canonical email is one of `emails` (lower-case).
    async fn find_by_emails(
        &self,
        account: &AccountId,
        emails: &[String],
    ) -> Result<Vec<LocalUser>, StoreError>;

    /// Users linked to these directory users of `tenant`.
    async fn find_linked(
        &self,
        tenant: &TenantId,
        object_ids: &[String],
    ) -> Result<Vec<LocalUser>, StoreError>;

    /// Insert or replace, by (account, local id). Each user is stored at the revision after
    /// the stored one (1 for a new user), whatever `revision` it carries: the sequence of its
    /// `user.*` events.
    async fn put_local_users(&self, users: &[LocalUser]) -> Result<(), StoreError>;

    /// Users of one account in local-id order.
    async fn list_local_users(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<LocalUser>, StoreError>;
}

/// The queue between fetch and reconcile. At-least-once: a message may be delivered more than
/// once and out of order; consumers are idempotent.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn enqueue(&self, messages: Vec<PageMessage>) -> Result<(), QueueError>;

    /// The largest message body (JSON bytes) this queue carries, if it has a limit. Fetch splits
    /// a directory page that would not fit into consecutive page numbers before enqueueing.
    fn max_message_bytes(&self) -> Option<usize> {
        None
    }
}

/// A request to fetch one directory, as the scheduler (or a fetch that ran out of time) sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub tenant_id: TenantId,
    pub trigger: Trigger,
    /// Start a full round even if a deltaLink exists (an operator's forced resync).
    #[serde(default)]
    pub force_full: bool,
    /// The run "sync now" already recorded (so its id could be answered at once): the fetch
    /// runs under it unless it continues a round in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// Where fetch requests go (an SQS queue in AWS), each after its own delay so tenants spread
/// over the scheduling period.
#[async_trait]
pub trait FetchRequests: Send + Sync {
    async fn request_fetches(
        &self,
        requests: Vec<(FetchRequest, std::time::Duration)>,
    ) -> Result<(), QueueError>;
}

/// A secret value. `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The only way to read the value; call it at the point of use.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The vault name of the app registration's client secret, the one secret every deployment has
/// (in Secrets Manager under the deployment's prefix: `entra-sync/<stage>/app/client-secret`).
pub const APP_CLIENT_SECRET: &str = "app/client-secret";
/// The name of the admin console's session key (at least 32 bytes; on AWS the template
/// generates it). Every instance of the API signs and checks console sessions with it.
pub const CONSOLE_SESSION_KEY: &str = "console/session-key";

/// Credentials and tokens, by name. Values are encrypted at rest by every adapter.
#[async_trait]
pub trait SecretVault: Send + Sync {
    async fn get_secret(&self, name: &str) -> Result<Secret, VaultError>;
    async fn put_secret(&self, name: &str, value: &Secret) -> Result<(), VaultError>;
    async fn delete_secret(&self, name: &str) -> Result<(), VaultError>;
}

/// Where change events go (EventBridge, webhooks, or memory for the local program).
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), EventError>;
}

/// Time, injectable so tests control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Idempotency records (Powertools style; see [`crate::idempotency`]): one record per key,
/// in progress while the work runs, completed with its answer afterwards, both expiring.
/// Keys are scoped by tenant (the tenant leads every stored key).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claim `claim.key` unless a live record answers instead. Atomic: of two concurrent
    /// `begin`s on a free key, exactly one gets `Started`.
    async fn begin(
        &self,
        tenant: &TenantId,
        claim: &crate::idempotency::Claim,
    ) -> Result<crate::idempotency::Begin, StoreError>;

    /// The work is done: store its answer; the record lives until `expires_at`.
    async fn complete(
        &self,
        tenant: &TenantId,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The work failed: drop the in-progress claim so a retry can start at once. A completed
    /// record is left alone.
    async fn release(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError>;
}

/// An admin-consent flow in progress: what the start request asked for, kept server-side under
/// its single-use `state` until the callback consumes it: the `state` is the CSRF defence of
/// the consent flow, so it is kept server-side, expires, and works once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConsent {
    /// The random, single-use `state` value (CSRF token). `Debug` never prints it.
    pub state: Secret,
    pub account_id: crate::model::AccountId,
    /// The label the connection gets.
    pub label: String,
    /// Set when reconnecting: the consent must come back from this tenant.
    pub expected_tenant: Option<TenantId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Pending admin consents, keyed by their `state`. Take-once: `take_consent_state` removes the
/// item atomically, so of two callbacks carrying the same state at most one gets it.
#[async_trait]
pub trait ConsentStateStore: Send + Sync {
    async fn put_consent_state(&self, pending: &PendingConsent) -> Result<(), StoreError>;
    /// Remove and return the pending consent stored under `state`. Expired items may still be
    /// returned (TTL deletion is lazy); the caller checks `expires_at`.
    async fn take_consent_state(&self, state: &str) -> Result<Option<PendingConsent>, StoreError>;
}

/// A one-time console sign-in ticket, as stored: the SHA-256 digest of the ticket (hex; the
/// store never holds a usable ticket), the account its session opens, and its expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleTicket {
    pub digest: String,
    pub account_id: crate::model::AccountId,
    pub expires_at: DateTime<Utc>,
}

/// Console sign-in tickets, keyed by their digest. Take-once, like [`ConsentStateStore`]: of two
/// sign-ins with the same ticket at most one gets it.
#[async_trait]
pub trait ConsoleTicketStore: Send + Sync {
    async fn put_console_ticket(&self, ticket: &ConsoleTicket) -> Result<(), StoreError>;
    /// Remove and return the ticket stored under `digest`. Expired tickets may still be returned
    /// (TTL deletion is lazy); the caller checks `expires_at`.
    async fn take_console_ticket(&self, digest: &str) -> Result<Option<ConsoleTicket>, StoreError>;
}

/// What the directory says about itself once the app holds a token for it (`/organization`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantDetails {
    pub tenant_id: TenantId,
    pub name: Option<String>,
    pub verified_domains: Vec<crate::model::VerifiedDomain>,
}

/// The directory as the connect flow sees it: prove a consent by getting an app token for the
/// tenant and reading its details; forget the tokens of a disconnected tenant.
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    async fn tenant_details(&self, tenant: &TenantId) -> Result<TenantDetails, DirectoryError>;
    /// Drop every token held in this process for `tenant`.
    async fn forget_tenant(&self, tenant: &TenantId);
}

#[cfg(test)]
mod page_tests {
    use super::*;

    /// A listing of 1..=4 in pages of `size`, keyed by the last item's number.
    fn page(after: Option<&str>, size: u32) -> Listing<u32> {
        let start = after.map_or(0, |a| a.parse::<u32>().unwrap_or(0));
        let items: Vec<u32> = (start + 1..=4).take(size as usize).collect();
        let next = match items.last() {
            Some(&last) if last < 4 => Some(last.to_string()),
            _ => None,
        };
        Listing { items, next }
    }

    #[tokio::test]
    async fn every_page_is_read_once_in_order_until_next_is_none() {
        let mut asked = Vec::new();
        let mut got = Vec::new();
        for_each_page(
            |after: Option<String>| {
                asked.push(after.clone());
                let p = page(after.as_deref(), 3);
                async move { Ok::<_, StoreError>(p) }
            },
            |items| got.extend(items),
        )
        .await
        .unwrap();
        assert_eq!(asked, [None, Some("3".to_owned())]);
        assert_eq!(got, [1, 2, 3, 4]);
    }

    #[test]
    fn pages_end_after_the_page_without_next() {
        let mut pages = Pages::default();
        assert_eq!(pages.next_after(), Some(None));
        pages.advance(Some("k".to_owned()));
        assert_eq!(pages.next_after(), Some(Some("k")));
        pages.advance(None);
        assert_eq!(pages.next_after(), None);
    }
}
