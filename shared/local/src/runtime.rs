//! Wiring of the local program: the same core services the Lambda functions run, on the
//! embedded adapters. Only this wiring differs between the two deployments.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use entra_sync_core::error::{StoreError, SyncError};
use entra_sync_core::idempotency::IdempotencyConfig;
use entra_sync_core::model::TenantId;
use entra_sync_core::outbound::OutboundPolicy;
use entra_sync_core::outbound::ssrf::UrlPolicy;
use entra_sync_core::page::PageMessage;
use entra_sync_core::ports::{
    Clock, DirectoryReader, EventSink, MirrorStore, RunStore, SystemClock,
};
use entra_sync_core::run::{RunStatus, RunUpdate, SyncRun};
use entra_sync_core::services::claim::{ClaimError, Claims};
use entra_sync_core::services::{
    DELIVERY_KEY_PREFIX, DeliveryOutcome, FetchDeps, FetchOptions, ProjectDeps, ProjectionPorts,
    ReconcileDeps, SyncDeps, payload_hash, plain_words, reconcile_delivery, run_fetch,
};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info};

use crate::events::EventLog;
use crate::queue::{Delivery, HandlerResult, LocalQueue, QueueConfig};
use crate::sqlite::SqliteStore;
use crate::vault::FileVault;

/// Errors of the local program's wiring.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot use data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] entra_sync_core::error::VaultError),
    #[error(transparent)]
    VaultOpen(#[from] crate::vault::OpenError),
    /// Another process holds the data directory's lock.
    #[error("{}", busy_message(path, holder.as_ref()))]
    Busy {
        path: PathBuf,
        holder: Option<LockHolder>,
    },
    /// A command named a directory (tenant) the data directory does not hold.
    #[error("no directory {tenant} in {}; {}", path.display(), connected_words(candidates))]
    NoDirectory {
        tenant: String,
        path: PathBuf,
        candidates: Vec<Candidate>,
    },
    /// A command on a data directory that does not exist (nothing is created).
    #[error("no data directory at {}; {}", path.display(), connect_hint(path))]
    NoDataDir { path: PathBuf },
    /// A command on a data directory that holds no store.
    #[error("{} holds no entra-sync store; {}", path.display(), connect_hint(path))]
    NoData { path: PathBuf },
    /// A store in which no directory is connected.
    #[error("no directory is connected in {}; {}", path.display(), connect_hint(path))]
    NoConnection { path: PathBuf },
    /// Several directories are connected and the command did not name one.
    #[error(
        "{} directories are connected in {}; name one with --tenant-id: {}",
        candidates.len(),
        path.display(),
        candidate_list(candidates)
    )]
    SeveralDirectories {
        path: PathBuf,
        candidates: Vec<Candidate>,
    },
    /// The demo only uses a directory it created.
    #[error("{}", not_a_demo_directory(path, *holds_store))]
    NotADemoDirectory { path: PathBuf, holds_store: bool },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("{0}")]
    Failed(String),
}

/// A directory connected in a data directory, as a command names it to people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub tenant_id: TenantId,
    /// The tenant's name (or the connection's label before the name is known).
    pub name: String,
}

impl Candidate {
    fn of(c: &entra_sync_core::model::Connection) -> Self {
        Self {
            tenant_id: c.tenant_id.clone(),
            name: c.tenant_name.clone().unwrap_or_else(|| c.label.clone()),
        }
    }
}

fn candidate_list(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|c| match c.name.trim() {
            "" => c.tenant_id.to_string(),
            name => format!("{} ({name})", c.tenant_id),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn connected_words(candidates: &[Candidate]) -> String {
    match candidates {
        [] => "no directory is connected there".to_owned(),
        _ => format!("connected: {}", candidate_list(candidates)),
    }
}

/// What to do about a data directory without a connected directory: connect one there, or
/// name the data directory in use.
fn connect_hint(path: &Path) -> String {
    let hints = crate::cli::Hints::new(path);
    format!(
        "connect a directory with `{}` (or sync one with `{}`), or pass --data-dir with the data directory in use",
        hints.command("serve"),
        hints.command("sync --tenant-id <guid> --client-id <app id>")
    )
}

/// The directory a command is about, among the `connections` of the data directory at
/// `path`: the one named, else the only one. Returns it and whether others are connected.
pub fn choose_connection(
    connections: Vec<entra_sync_core::model::Connection>,
    tenant: Option<&TenantId>,
    path: &Path,
) -> Result<(entra_sync_core::model::Connection, bool), LocalError> {
    let several = connections.len() > 1;
    let candidates = || connections.iter().map(Candidate::of).collect::<Vec<_>>();
    match tenant {
        Some(t) => match connections.iter().position(|c| &c.tenant_id == t) {
            Some(i) => {
                let mut connections = connections;
                Ok((connections.swap_remove(i), several))
            }
            None => Err(LocalError::NoDirectory {
                tenant: t.to_string(),
                path: path.to_owned(),
                candidates: candidates(),
            }),
        },
        None if several => Err(LocalError::SeveralDirectories {
            path: path.to_owned(),
            candidates: candidates(),
        }),
        None => connections
            .into_iter()
            .next()
            .map(|c| (c, false))
            .ok_or_else(|| LocalError::NoConnection {
                path: path.to_owned(),
            }),
    }
}

/// Files of one data directory.
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn store(&self) -> PathBuf {
        self.root.join("store.sqlite")
    }
    pub fn queue(&self) -> PathBuf {
        self.root.join("queue.sqlite")
    }
    pub fn vault(&self) -> PathBuf {
        self.root.join("vault.json")
    }
    pub fn vault_key(&self) -> PathBuf {
        self.root.join("vault.key")
    }
    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    /// The file every command that writes the directory locks (see [`DirLock`]).
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    fn full_read_file(&self, tenant: &TenantId) -> PathBuf {
        self.root.join(format!("full-read-requested.{tenant}"))
    }

    /// Keep a request for a full read of `tenant` for the next sync (a `sync --full` that
    /// found the directory busy). Written without the lock, atomically (temporary file, then
    /// a rename); each request has its own token.
    pub fn request_full_read(&self, tenant: &TenantId) -> Result<(), LocalError> {
        let path = self.full_read_file(tenant);
        let token = format!(
            "{} {}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let data_dir = |source| LocalError::DataDir {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, token).map_err(data_dir)?;
        std::fs::rename(&tmp, &path).map_err(data_dir)
    }

    /// The token of a kept full-read request of `tenant`, if there is one.
    pub fn full_read_request(&self, tenant: &TenantId) -> Result<Option<String>, LocalError> {
        let path = self.full_read_file(tenant);
        match std::fs::read_to_string(&path) {
            Ok(token) => Ok(Some(token)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LocalError::DataDir { path, source }),
        }
    }

    /// The request with this token was served; a newer request (another token) stays.
    pub fn clear_full_read_request(
        &self,
        tenant: &TenantId,
        token: &str,
    ) -> Result<(), LocalError> {
        if self.full_read_request(tenant)?.as_deref() != Some(token) {
            return Ok(());
        }
        let path = self.full_read_file(tenant);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(LocalError::DataDir { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Whether a store exists here (read-only commands never create one).
    pub fn has_store(&self) -> bool {
        self.store().is_file()
    }

    /// Fail unless a store exists here: "no data directory at D" when the directory is
    /// missing, "D holds no entra-sync store" when it has none. Creates nothing.
    pub fn require_store(&self) -> Result<(), LocalError> {
        if self.has_store() {
            Ok(())
        } else if self.root.is_dir() {
            Err(LocalError::NoData {
                path: self.root.clone(),
            })
        } else {
            Err(LocalError::NoDataDir {
                path: self.root.clone(),
            })
        }
    }

    /// The connected directories of an existing store, read without the lock; creates
    /// nothing (see [`DataDir::require_store`]).
    pub async fn connections(&self) -> Result<Vec<entra_sync_core::model::Connection>, LocalError> {
        use entra_sync_core::ports::ConnectionStore;
        self.require_store()?;
        Ok(SqliteStore::open(&self.store())?.list_connections().await?)
    }
}

fn not_a_demo_directory(path: &Path, holds_store: bool) -> String {
    let what = if holds_store {
        "holds an entra-sync store that the demo did not create"
    } else {
        "is not empty and was not created by the demo"
    };
    format!(
        "{} {what} (it has no {} file), so the demo neither uses it nor deletes anything in it; nothing was changed. Give the demo a new or empty directory with --data-dir or ENTRA_SYNC_DEMO_DIR (default .entra-sync/demo).",
        path.display(),
        crate::demo::DEMO_MARKER
    )
}

/// Who holds a data directory's lock, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// The `entra-sync` command (`sync`, `demo`, `serve`, ...).
    pub command: String,
}

fn busy_message(path: &Path, holder: Option<&LockHolder>) -> String {
    let pid = holder.map_or_else(|| "pid unknown".to_owned(), |h| format!("pid {}", h.pid));
    match holder.map(|h| h.command.as_str()) {
        Some("sync") | None => format!(
            "another sync of this directory ({}) is running ({pid}); run it again when that one has finished",
            path.display()
        ),
        Some(command) => format!(
            "another entra-sync command (`entra-sync {command}`, {pid}) is using this directory ({}); run it again when that one has finished",
            path.display()
        ),
    }
}

/// The exclusive lock of one data directory, held by every command that writes it (sync,
/// demo, serve, import, settings set, confirm, reject, users add/activate/delete) for as long
/// as it runs. An advisory lock on the file `lock` (std's `File::try_lock`): the operating
/// system releases it when the process ends, however it ends, so a killed process never leaves
/// the directory locked. The file names the holder (pid and command) for the refusal message.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Take the lock of `dir` (creating the directory), or fail with [`LocalError::Busy`].
    pub fn acquire(dir: &DataDir, command: &str) -> Result<Self, LocalError> {
        use std::io::{Read, Write};
        std::fs::create_dir_all(&dir.root).map_err(|source| LocalError::DataDir {
            path: dir.root.clone(),
            source,
        })?;
        let path = dir.lock_file();
        let data_dir = |source| LocalError::DataDir {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(data_dir)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(data_dir)?;
                file.write_all(format!("{}\n{command}\n", std::process::id()).as_bytes())
                    .map_err(data_dir)?;
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let mut lines = text.lines();
                let holder = match (lines.next().map(str::parse::<u32>), lines.next()) {
                    (Some(Ok(pid)), Some(command)) => Some(LockHolder {
                        pid,
                        command: command.to_owned(),
                    }),
                    _ => None,
                };
                Err(LocalError::Busy {
                    path: dir.root.clone(),
                    holder,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(data_dir(e)),
        }
    }
}

/// A `--tenant-id` value: the directory (tenant) id, a GUID, checked before it goes into any
/// URL or path. Returns it in lower case.
pub fn parse_tenant_id(s: &str) -> Result<TenantId, LocalError> {
    let t = s.trim();
    match uuid::Uuid::try_parse(t) {
        Ok(u) if t.len() == 36 => Ok(TenantId::new(u.hyphenated().to_string())),
        _ => {
            let shown: String = t.chars().take(60).collect();
            Err(LocalError::Failed(format!(
                "the directory (tenant) id must be a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47, not \"{}\" (find it in the Entra admin center, Overview)",
                shown.escape_default()
            )))
        }
    }
}

/// [`parse_tenant_id`] for clap's `value_parser`.
pub fn tenant_id_arg(s: &str) -> Result<String, String> {
    parse_tenant_id(s)
        .map(|t| t.to_string())
        .map_err(|e| e.to_string())
}

/// What a command does with a data directory it opens with [`open_directory`].
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// Reads only: needs no lock.
    Read,
    /// Writes the store: takes the directory's lock for this command (named in the refusal
    /// another writer gets).
    Write(&'a str),
}

/// A data directory opened with [`open_directory`].
pub struct OpenedDirectory {
    pub app: LocalApp,
    /// The directory (tenant) the command is about.
    pub connection: entra_sync_core::model::Connection,
    /// Whether other directories are connected in the data directory too (then the commands a
    /// message suggests need `--tenant-id`).
    pub several: bool,
}

/// Open an existing data directory and find the directory (tenant) a command is about: the
/// one named, or the only one connected ([`choose_connection`]). Never creates the data
/// directory or a store: a missing one is "no data directory at D".
pub async fn open_directory(
    data_dir: &Path,
    tenant: Option<&str>,
    access: Access<'_>,
) -> Result<OpenedDirectory, LocalError> {
    use entra_sync_core::ports::ConnectionStore;
    let dir = DataDir::new(data_dir);
    let tenant = tenant.map(parse_tenant_id).transpose()?;
    dir.require_store()?;
    let app = match access {
        Access::Read => LocalApp::open(&dir, &SyncSettings::default())?,
        Access::Write(command) => {
            LocalApp::open_for_writing(&dir, &SyncSettings::default(), command)?
        }
    };
    let connections = app.store.list_connections().await?;
    let (connection, several) = choose_connection(connections, tenant.as_ref(), &dir.root)?;
    Ok(OpenedDirectory {
        app,
        connection,
        several,
    })
}

/// Tuning of a local sync.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// Reconcile workers.
    pub workers: usize,
    pub queue: QueueConfig,
    /// How often progress is reported.
    pub progress_every: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            queue: QueueConfig::default(),
            progress_every: Duration::from_millis(100),
        }
    }
}

/// The longest a command's end spends delivering due outbound webhooks; what is left waits for
/// the next command or `serve` (a POST cut short stays claimed for the claim lease, then is
/// sent again with the same `webhook-id`).
pub const CLOSE_WEBHOOK_BUDGET: Duration = Duration::from_secs(5);

/// The outbox's delivery to `events.jsonl`, run when a data directory is opened and when the
/// last handle on it is dropped; then, for a command that set its webhook policy, the
/// outbound webhooks that are due (so `entra-sync sync` without `serve` delivers them too).
struct DeliverOnClose {
    store: Arc<SqliteStore>,
    log: Arc<EventLog>,
    vault: Arc<FileVault>,
    clock: Arc<dyn Clock>,
    /// The webhook policy used at close; `None` (not set by the command): none sent.
    webhooks: std::sync::Mutex<Option<entra_sync_core::outbound::OutboundPolicy>>,
}

impl DeliverOnClose {
    fn try_deliver(&self) -> Result<usize, LocalError> {
        self.store
            .deliver_outbox_lines(|lines| {
                self.log
                    .append_lines(lines)
                    .map_err(crate::sqlite::OutboxError::Sink)
            })
            .map_err(|e| LocalError::Failed(format!("event delivery: {e}")))
    }

    /// Deliver; a failure leaves the events pending for the next attempt and is logged here,
    /// where it is decided that nothing else can be done now.
    fn deliver(&self) {
        if let Err(e) = self.try_deliver() {
            tracing::warn!(error = %e, "change events left in the outbox for the next start");
        }
    }
}

impl DeliverOnClose {
    /// Deliver the due outbound webhooks, for at most [`CLOSE_WEBHOOK_BUDGET`], on a runtime
    /// of its own on its own thread (a drop may happen inside or outside a tokio runtime).
    fn deliver_webhooks(&self) {
        let policy = *self
            .webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(policy) = policy else {
            return;
        };
        let poster = match crate::outbound::ReqwestPoster::new(&policy) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "outbound webhooks left for the next command");
                return;
            }
        };
        let worker = crate::outbound::OutboundWorker {
            store: self.store.clone(),
            vault: self.vault.clone(),
            poster: Arc::new(poster),
            policy,
        };
        let now = self.clock.now();
        let outcome = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async {
                        match tokio::time::timeout(CLOSE_WEBHOOK_BUDGET, worker.deliver_due(now))
                            .await
                        {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("out of time".to_owned()),
                        }
                    })
                })
                .join()
        });
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbound webhooks left for the next command or serve");
            }
            Err(_) => tracing::warn!("outbound webhook delivery at close stopped"),
        }
    }
}

impl Drop for DeliverOnClose {
    fn drop(&mut self) {
        self.deliver();
        self.deliver_webhooks();
    }
}

/// Every embedded adapter of one data directory.
#[derive(Clone)]
pub struct LocalApp {
    pub store: Arc<SqliteStore>,
    pub queue: LocalQueue,
    pub vault: Arc<FileVault>,
    /// What the services publish to: nothing is kept, since the store records every event in
    /// its outbox from its own commits (they reach the log through [`LocalApp::deliver_events`]).
    pub events: Arc<dyn EventSink>,
    /// `events.jsonl`.
    pub event_log: Arc<EventLog>,
    pub clock: Arc<dyn Clock>,
    /// Delivers the outbox when the last clone of this app is dropped (a command's end).
    _deliver_on_close: Arc<DeliverOnClose>,
    /// The data directory's lock, when opened for writing (released with the last clone).
    lock: Option<Arc<DirLock>>,
    /// The data directory (named in messages about its files).
    root: Arc<PathBuf>,
}

impl LocalApp {
    /// Open (creating if needed) the data directory, without its lock (tests, and commands
    /// that only read). Commands that write use [`LocalApp::open_for_writing`].
    pub fn open(dir: &DataDir, settings: &SyncSettings) -> Result<Self, LocalError> {
        std::fs::create_dir_all(&dir.root).map_err(|source| LocalError::DataDir {
            path: dir.root.clone(),
            source,
        })?;
        // The vault first: a key mistake fails before any other file is touched.
        let vault = Arc::new(FileVault::open(&dir.vault(), &dir.vault_key())?);
        let store = Arc::new(SqliteStore::open(&dir.store())?);
        let event_log = Arc::new(EventLog::open(Some(&dir.events())).map_err(|source| {
            LocalError::DataDir {
                path: dir.events(),
                source,
            }
        })?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let close = Arc::new(DeliverOnClose {
            store: store.clone(),
            log: event_log.clone(),
            vault: vault.clone(),
            clock: clock.clone(),
            webhooks: std::sync::Mutex::new(None),
        });
        // Events committed before a crash (or by a command that ended before delivering)
        // are delivered now.
        close.deliver();
        Ok(Self {
            store,
            queue: LocalQueue::open(&dir.queue(), settings.queue.clone())?,
            vault,
            // Every change event comes from the outbox, written in the change's transaction;
            // the services' own copies are dropped.
            events: Arc::new(entra_sync_core::committed::FromCommitsOnly),
            event_log,
            _deliver_on_close: close,
            clock,
            lock: None,
            root: Arc::new(dir.root.clone()),
        })
    }

    /// Take the data directory's lock for `command`, then open it. The returned app (and
    /// every clone) holds the lock; a second writer of the directory gets
    /// [`LocalError::Busy`] instead of racing this one on the cursors.
    pub fn open_for_writing(
        dir: &DataDir,
        settings: &SyncSettings,
        command: &str,
    ) -> Result<Self, LocalError> {
        let lock = DirLock::acquire(dir, command)?;
        Self::open_locked(dir, settings, lock)
    }

    /// Open the data directory whose lock the caller took.
    pub fn open_locked(
        dir: &DataDir,
        settings: &SyncSettings,
        lock: DirLock,
    ) -> Result<Self, LocalError> {
        let mut app = Self::open(dir, settings)?;
        app.lock = Some(Arc::new(lock));
        Ok(app)
    }

    /// The URL rule of the outbound webhooks delivered when the last handle on this app is
    /// dropped (a command's end). Only commands that call this deliver at their end (`sync`,
    /// `serve`): a command without the test setting's flag would record refusals for a
    /// loopback test endpoint. `allow_insecure_loopback` is the local test setting.
    pub fn set_close_webhook_urls(&self, urls: UrlPolicy) {
        *self
            ._deliver_on_close
            .webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(OutboundPolicy {
            urls,
            ..Default::default()
        });
    }

    /// Whether this app holds its data directory's lock.
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }

    /// The files of this app's data directory.
    pub fn data_dir(&self) -> DataDir {
        DataDir::new(self.root.as_ref())
    }

    /// The stores the projection of the host product's users needs.
    /// The projection's ports (the store records a `user.*` event for every host-user write
    /// in the write's transaction).
    pub fn projection_ports(&self) -> ProjectionPorts {
        ProjectionPorts::from_store(&self.store)
    }

    /// Deliver the events the store recorded and has not delivered yet to `events.jsonl`, in
    /// commit order; returns how many. At least once: a crash before they are marked
    /// delivered delivers them again, with the same ids.
    pub async fn deliver_events(&self) -> Result<usize, LocalError> {
        let close = self._deliver_on_close.clone();
        tokio::task::spawn_blocking(move || close.try_deliver())
            .await
            .map_err(|e| LocalError::Failed(format!("event delivery stopped: {e}")))?
    }

    /// The outbound webhooks' delivery worker of this data directory (`policy.urls` says
    /// whether the local test setting allows http to loopback).
    pub fn outbound_worker(
        &self,
        policy: entra_sync_core::outbound::OutboundPolicy,
    ) -> Result<crate::outbound::OutboundWorker, LocalError> {
        let poster = crate::outbound::ReqwestPoster::new(&policy)
            .map_err(|e| LocalError::Failed(format!("webhook HTTP client: {e}")))?;
        Ok(crate::outbound::OutboundWorker {
            store: self.store.clone(),
            vault: self.vault.clone(),
            poster: Arc::new(poster),
            policy,
        })
    }

    /// Every port the projection services (settings, preview, import, confirm, reject) use.
    pub fn project_deps(&self) -> ProjectDeps {
        ProjectDeps::new(
            &self.projection_ports(),
            self.store.clone(),
            self.store.clone(),
            self.store.clone(),
            self.clock.clone(),
        )
    }

    pub fn fetch_deps(&self, directory: Arc<dyn DirectoryReader>) -> FetchDeps {
        FetchDeps::new(
            &self.store,
            directory,
            Arc::new(self.queue.clone()),
            self.reconcile_deps(),
        )
    }

    pub fn reconcile_deps(&self) -> ReconcileDeps {
        SyncDeps {
            projection: Some(self.projection_ports()),
            ..SyncDeps::mirror_only(&self.store, self.events.clone(), self.clock.clone())
        }
    }

    /// The claims of the page messages, on the store's idempotency records.
    pub fn claims(&self) -> Claims {
        Claims::new(
            self.store.clone(),
            IdempotencyConfig::default(),
            self.clock.clone(),
        )
    }

    /// Run one sync of one directory to its end: fetch streams pages into the durable queue
    /// while a worker pool reconciles them; returns the finished run. `progress` sees the run
    /// as it advances. A sync interrupted by a crash resumes from its checkpoints next time.
    pub async fn sync(
        &self,
        directory: Arc<dyn DirectoryReader>,
        tenant: &TenantId,
        options: &FetchOptions,
        settings: &SyncSettings,
        mut progress: impl FnMut(&SyncRun),
    ) -> Result<SyncRun, LocalError> {
        // Claims of a previous process that died are void: its queue deliveries, and its
        // claims on the pages it was applying (which would hold their redelivery back).
        self.queue.release_claims().await?;
        self.store
            .release_abandoned_claims(tenant, DELIVERY_KEY_PREFIX)
            .await?;
        // A full read replaces every page set aside before: they would fail this run too.
        if options.force_full {
            let purged = self.queue.purge_dead_letters().await?;
            if purged > 0 {
                info!(tenant = %tenant, purged, "pages set aside by earlier runs dropped for a full read");
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let deps = self.reconcile_deps();
        let claims = self.claims();
        let store_file = Arc::new(self.data_dir().store());
        let handler = move |d: Delivery| {
            let deps = deps.clone();
            let claims = claims.clone();
            let store_file = store_file.clone();
            async move {
                let result = handle_delivery(&deps, &claims, &d, &store_file).await;
                (d, result)
            }
        };
        let queue = self.queue.clone();
        let workers = settings.workers;
        let pool = tokio::spawn(async move { queue.run_workers(workers, handler, stop_rx).await });

        let fetch_deps = self.fetch_deps(directory);
        let fetch = {
            let tenant = tenant.clone();
            let options = options.clone();
            tokio::spawn(async move { run_fetch(&fetch_deps, &tenant, &options).await })
        };
        let outcome = self
            .wait_for_run(tenant, fetch, settings, &mut progress)
            .await;
        let _ = stop_tx.send(true);
        if let Err(e) = pool.await {
            error!(error = %e, "reconcile workers ended abnormally");
        }
        outcome
    }

    async fn wait_for_run(
        &self,
        tenant: &TenantId,
        fetch: tokio::task::JoinHandle<Result<entra_sync_core::services::FetchReport, SyncError>>,
        settings: &SyncSettings,
        progress: &mut impl FnMut(&SyncRun),
    ) -> Result<SyncRun, LocalError> {
        let report = fetch
            .await
            .map_err(|e| LocalError::Failed(format!("fetch task ended abnormally: {e}")))??;
        loop {
            let run = self
                .store
                .get_run(tenant, &report.run_id)
                .await?
                .ok_or_else(|| LocalError::Failed(format!("run {} vanished", report.run_id)))?;
            progress(&run);
            // A held run waits for an admin; the sync itself is over.
            if run.is_finished() || matches!(run.status, RunStatus::Held { .. }) {
                return Ok(run);
            }
            // Every live message is gone but the round did not commit: some page was
            // dead-lettered. Record it and stop; `entra-sync` can redrive later.
            if self.queue.depth().await? == 0 {
                let dead = self.queue.dead_letters().await?;
                if !dead.is_empty() {
                    let error = format!(
                        "{} page(s) of this sync could not be applied and were set aside in {} (first: {}). Nothing was deactivated. Run `{}` to read the directory again; if it fails the same way, the data directory {} is damaged: restore it from a backup, or sync into a new --data-dir.",
                        dead.len(),
                        self.queue.path().display(),
                        dead[0].last_error.as_deref().unwrap_or("unknown error"),
                        crate::cli::Hints::new(self.root.as_ref())
                            .with_tenant(tenant)
                            .command("sync --full"),
                        self.root.display()
                    );
                    let run = self
                        .store
                        .update_run(
                            tenant,
                            &report.run_id,
                            &RunUpdate::Finish {
                                status: RunStatus::Failed { error },
                                at: self.clock.now(),
                            },
                        )
                        .await?;
                    progress(&run);
                    return Ok(run);
                }
            }
            tokio::time::sleep(settings.progress_every).await;
        }
    }

    /// The ids among `object_ids` that name no user present in `tenant`'s mirror, in order.
    pub async fn unknown_users(
        &self,
        tenant: &TenantId,
        object_ids: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<String>, LocalError> {
        let ids: Vec<String> = object_ids.iter().cloned().collect();
        let found: std::collections::BTreeSet<String> = self
            .store
            .get_users(tenant, &ids)
            .await?
            .into_iter()
            .filter(|u| u.presence.is_present())
            .map(|u| u.user.id)
            .collect();
        Ok(ids.into_iter().filter(|id| !found.contains(id)).collect())
    }

    /// The mirror of one tenant as JSON: users, groups and memberships (present and removed).
    pub async fn export(&self, tenant: &TenantId) -> Result<Export, LocalError> {
        Ok(export_mirror(self.store.as_ref(), tenant).await?)
    }
}

/// Everything any mirror store holds for one tenant (present and removed), following every
/// listing to its end.
pub async fn export_mirror(
    store: &dyn MirrorStore,
    tenant: &TenantId,
) -> Result<Export, StoreError> {
    Ok(Export {
        users: list_all(
            |after| async move { store.list_users(tenant, after.as_deref(), 1000).await },
        )
        .await?,
        groups: list_all(
            |after| async move { store.list_groups(tenant, after.as_deref(), 1000).await },
        )
        .await?,
        memberships: list_all(|after| async move {
            store.list_memberships(tenant, after.as_deref(), 5000).await
        })
        .await?,
    })
}

/// Follow a listing's continuation to the end and collect every item.
async fn list_all<T, F, Fut>(mut list: F) -> Result<Vec<T>, StoreError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<entra_sync_core::ports::Listing<T>, StoreError>>,
{
    let mut out = Vec::new();
    entra_sync_core::ports::for_each_page(&mut list, |items| out.extend(items)).await?;
    Ok(out)
}

/// Everything the mirror holds for one tenant.
#[derive(Debug, Default, Serialize)]
pub struct Export {
    pub users: Vec<entra_sync_core::model::StoredUser>,
    pub groups: Vec<entra_sync_core::model::StoredGroup>,
    pub memberships: Vec<entra_sync_core::model::StoredMembership>,
}

/// The one place a queue delivery's failure is classified (and logged, by the queue). A
/// permanent failure says what is wrong, and where, for the run's failure text, which adds
/// what to do.
///
/// Each delivery is claimed first, as the reconcile function claims its SQS messages: a worker
/// whose delivery became visible again (its visibility timeout passed while another worker
/// still applies it) waits for that worker instead of applying the page a second time. The
/// queue's message ids repeat (one per page of a round: a page read again after a crash is
/// enqueued under the same id), so a delivery is named by its id and its body's digest.
async fn handle_delivery(
    deps: &ReconcileDeps,
    claims: &Claims,
    d: &Delivery,
    store_file: &Path,
) -> HandlerResult {
    let msg: PageMessage = match serde_json::from_str(&d.body) {
        Ok(m) => m,
        Err(e) => {
            return HandlerResult::Poison(format!(
                "the queued page message {} is malformed and cannot be read ({e}): the queue file was damaged or written by another program",
                d.message_id
            ));
        }
    };
    let delivery_id = format!("{}#{}", d.message_id, payload_hash(&d.body));
    match reconcile_delivery(deps, claims, &delivery_id, &d.body, &msg).await {
        Ok(DeliveryOutcome::Applied(_) | DeliveryOutcome::AlreadyApplied) => HandlerResult::Done,
        Ok(DeliveryOutcome::Busy { until }) => HandlerResult::RetryAfter(
            format!(
                "the page message {} is being applied by another worker",
                d.message_id
            ),
            (until - deps.clock.now()).to_std().unwrap_or_default(),
        ),
        Ok(DeliveryOutcome::Mismatch) => HandlerResult::Poison(format!(
            "the page message {} was claimed before for another body",
            d.message_id
        )),
        Err(ClaimError::Store(e)) => HandlerResult::Retry(format!(
            "the claim of the page message {} could not be read or written: {e}",
            d.message_id
        )),
        Err(ClaimError::Work(e)) if e.is_retryable() => HandlerResult::Retry(plain_words(&e)),
        Err(ClaimError::Work(SyncError::Store(StoreError::Corrupt(what)))) => {
            HandlerResult::Poison(format!(
                "the store {} holds an item it cannot read ({what})",
                store_file.display()
            ))
        }
        Err(ClaimError::Work(e)) => HandlerResult::Poison(e.to_string()),
    }
}

/// Make sure a path's parent exists.
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use entra_sync_core::cursor::CursorRecord;
    use entra_sync_core::memory::CollectingEvents;
    use entra_sync_core::model::{StoredGroup, StoredMembership, StoredUser, Stream};
    use entra_sync_core::ports::{CursorStore, Listing};
    use entra_sync_core::run::Trigger;
    use entra_sync_core::testing::DepsBuilder;
    use tokio::sync::Notify;

    use super::*;

    /// The mirror of a store whose first user write waits until the test lets it go: the
    /// worker making it has read the mirror and planned, and is about to write.
    struct PausedWrite {
        inner: Arc<SqliteStore>,
        first: AtomicBool,
        entered: Notify,
        go: Notify,
    }

    #[async_trait]
    impl MirrorStore for PausedWrite {
        async fn get_users(
            &self,
            tenant: &TenantId,
            ids: &[String],
        ) -> Result<Vec<StoredUser>, StoreError> {
            self.inner.get_users(tenant, ids).await
        }
        async fn put_users(
            &self,
            tenant: &TenantId,
            users: &[StoredUser],
        ) -> Result<u64, StoreError> {
            if self.first.swap(false, Ordering::SeqCst) {
                self.entered.notify_one();
                self.go.notified().await;
            }
            self.inner.put_users(tenant, users).await
        }
        async fn list_users(
            &self,
            tenant: &TenantId,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Listing<StoredUser>, StoreError> {
            self.inner.list_users(tenant, after, limit).await
        }
        async fn get_groups(
            &self,
            tenant: &TenantId,
            ids: &[String],
        ) -> Result<Vec<StoredGroup>, StoreError> {
            self.inner.get_groups(tenant, ids).await
        }
        async fn put_groups(
            &self,
            tenant: &TenantId,
            groups: &[StoredGroup],
        ) -> Result<u64, StoreError> {
            self.inner.put_groups(tenant, groups).await
        }
        async fn list_groups(
            &self,
            tenant: &TenantId,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Listing<StoredGroup>, StoreError> {
            self.inner.list_groups(tenant, after, limit).await
        }
        async fn get_memberships(
            &self,
            tenant: &TenantId,
            keys: &[(String, String)],
        ) -> Result<Vec<StoredMembership>, StoreError> {
            self.inner.get_memberships(tenant, keys).await
        }
        async fn put_memberships(
            &self,
            tenant: &TenantId,
            edges: &[StoredMembership],
        ) -> Result<u64, StoreError> {
            self.inner.put_memberships(tenant, edges).await
        }
        async fn memberships_of_group(
            &self,
            tenant: &TenantId,
            group_id: &str,
        ) -> Result<Vec<StoredMembership>, StoreError> {
            self.inner.memberships_of_group(tenant, group_id).await
        }
        async fn list_memberships(
            &self,
            tenant: &TenantId,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Listing<StoredMembership>, StoreError> {
            self.inner.list_memberships(tenant, after, limit).await
        }
    }

    /// The first page of the reconcile function's sample batch: users of round 1 of run-1.
    fn page_body() -> String {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/reconcile/happy.json")).unwrap();
        event["Records"][0]["body"].as_str().unwrap().to_owned()
    }

    fn delivery(attempt: u32) -> Delivery {
        Delivery {
            message_id: "tenant-a#users#1#0".into(),
            body: page_body(),
            attempt,
        }
    }

    fn connection(tenant: &str, name: Option<&str>) -> entra_sync_core::model::Connection {
        entra_sync_core::model::Connection {
            tenant_id: TenantId::new(tenant),
            account_id: entra_sync_core::model::AccountId("local".into()),
            label: "label".into(),
            tenant_name: name.map(str::to_owned),
            verified_domains: vec![],
            status: entra_sync_core::model::ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        }
    }

    #[test]
    fn a_command_without_tenant_id_takes_the_only_directory_and_else_lists_them() {
        let d = Path::new("/d");
        let one = vec![connection("t1", Some("Contoso"))];
        let (c, several) = choose_connection(one, None, d).unwrap();
        assert_eq!((c.tenant_id.as_str(), several), ("t1", false));

        let two = vec![connection("t1", Some("Contoso")), connection("t2", None)];
        let e = choose_connection(two.clone(), None, d)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "2 directories are connected in /d; name one with --tenant-id: t1 (Contoso), t2 (label)"
        );
        let (c, several) = choose_connection(two.clone(), Some(&TenantId::new("t2")), d).unwrap();
        assert_eq!((c.tenant_id.as_str(), several), ("t2", true));
        let e = choose_connection(two, Some(&TenantId::new("t3")), d)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "no directory t3 in /d; connected: t1 (Contoso), t2 (label)"
        );

        let e = choose_connection(vec![], None, d).unwrap_err().to_string();
        assert!(e.starts_with("no directory is connected in /d; connect a directory with `entra-sync serve --data-dir /d`"), "{e}");
        let e = choose_connection(vec![], Some(&TenantId::new("t3")), d)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no directory t3 in /d; no directory is connected there");
    }

    #[test]
    fn a_missing_data_directory_or_store_is_named_and_nothing_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = DataDir::new(tmp.path().join("missing"));
        let e = missing.require_store().unwrap_err().to_string();
        assert!(e.starts_with("no data directory at "), "{e}");
        assert!(!missing.root.exists());
        let empty = DataDir::new(tmp.path());
        let e = empty.require_store().unwrap_err().to_string();
        assert!(e.contains("holds no entra-sync store"), "{e}");
        assert!(!empty.store().exists());
    }

    #[tokio::test]
    async fn two_workers_given_the_same_delivery_at_once_apply_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.sqlite");
        let store = Arc::new(SqliteStore::open(&file).unwrap());
        let t = TenantId::new("tenant-a");
        let (round, _) = CursorRecord::default().begin_round("run-1");
        store
            .save_cursor(&t, Stream::Users, &round, None)
            .await
            .unwrap();
        store
            .create_run(&SyncRun::new(
                "run-1".into(),
                t.clone(),
                Trigger::Scheduled,
                chrono::Utc::now(),
            ))
            .await
            .unwrap();
        let mirror = Arc::new(PausedWrite {
            inner: store.clone(),
            first: AtomicBool::new(true),
            entered: Notify::new(),
            go: Notify::new(),
        });
        let events = Arc::new(CollectingEvents::new());
        let world = DepsBuilder::on(&store).events(events.clone());
        let deps = ReconcileDeps {
            mirror: mirror.clone(),
            ..world.reconcile()
        };
        let claims = world.claims_on(store.clone());

        // Worker one takes the delivery and stops just before writing what it planned.
        let one = tokio::spawn({
            let (deps, claims, file) = (deps.clone(), claims.clone(), file.clone());
            async move { handle_delivery(&deps, &claims, &delivery(1), &file).await }
        });
        mirror.entered.notified().await;
        // Its visibility timeout passed: worker two gets the same delivery meanwhile.
        let two = handle_delivery(&deps, &claims, &delivery(2), &file).await;
        assert!(
            matches!(two, HandlerResult::RetryAfter(..)),
            "the second worker waits for the first: {two:?}"
        );
        mirror.go.notify_one();
        assert!(matches!(one.await.unwrap(), HandlerResult::Done));

        let published: Vec<String> = events.take().into_iter().map(|e| e.object_id).collect();
        let mut distinct = published.clone();
        distinct.sort();
        distinct.dedup();
        assert!(!published.is_empty());
        assert_eq!(
            published.len(),
            distinct.len(),
            "each change was published once: {published:?}"
        );
        // The retry of worker two's delivery is acknowledged without work.
        assert!(matches!(
            handle_delivery(&deps, &claims, &delivery(3), &file).await,
            HandlerResult::Done
        ));
        assert!(events.is_empty());
    }

    #[tokio::test]
    async fn page_claims_a_dead_process_left_behind_are_dropped_and_claimed_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
        let t = TenantId::new("tenant-a");
        let d = delivery(1);
        let key = entra_sync_core::services::delivery_key(&format!(
            "{}#{}",
            d.message_id,
            payload_hash(&d.body)
        ));
        let claims = app.claims();
        let claim = claims
            .config
            .claim(&key, payload_hash(&d.body), app.clock.now());
        assert_eq!(
            claims.store.begin(&t, &claim).await.unwrap(),
            entra_sync_core::idempotency::Begin::Started
        );
        assert_eq!(
            app.store
                .release_abandoned_claims(&t, DELIVERY_KEY_PREFIX)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            claims.store.begin(&t, &claim).await.unwrap(),
            entra_sync_core::idempotency::Begin::Started,
            "the page can be claimed again at once"
        );
    }
}
