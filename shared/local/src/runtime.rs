//! Wiring of the local program: the same core services the Lambda functions run, on the
//! embedded adapters. Only this wiring differs between the two deployments.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use entra_sync_core::error::{StoreError, SyncError};
use entra_sync_core::model::TenantId;
use entra_sync_core::page::PageMessage;
use entra_sync_core::ports::{Clock, DirectoryReader, MirrorStore, RunStore, SystemClock};
use entra_sync_core::run::{RunStatus, RunUpdate, SyncRun};
use entra_sync_core::services::{
    FetchDeps, FetchOptions, ProjectDeps, ProjectionPorts, ReconcileDeps, plain_words,
    reconcile_page, run_fetch,
};
use serde::Serialize;
use tokio::sync::watch;
use tracing::error;

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
    Sync(#[from] SyncError),
    #[error("{0}")]
    Failed(String),
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

/// Every embedded adapter of one data directory.
#[derive(Clone)]
pub struct LocalApp {
    pub store: Arc<SqliteStore>,
    pub queue: LocalQueue,
    pub vault: Arc<FileVault>,
    pub events: Arc<EventLog>,
    pub clock: Arc<dyn Clock>,
}

impl LocalApp {
    /// Open (creating if needed) the data directory.
    pub fn open(dir: &DataDir, settings: &SyncSettings) -> Result<Self, LocalError> {
        std::fs::create_dir_all(&dir.root).map_err(|source| LocalError::DataDir {
            path: dir.root.clone(),
            source,
        })?;
        Ok(Self {
            store: Arc::new(SqliteStore::open(&dir.store())?),
            queue: LocalQueue::open(&dir.queue(), settings.queue.clone())?,
            vault: Arc::new(FileVault::open(&dir.vault(), &dir.vault_key())?),
            events: Arc::new(EventLog::open(Some(&dir.events())).map_err(|source| {
                LocalError::DataDir {
                    path: dir.events(),
                    source,
                }
            })?),
            clock: Arc::new(SystemClock),
        })
    }

    /// The stores the projection of the host product's users needs.
    pub fn projection_ports(&self) -> ProjectionPorts {
        ProjectionPorts {
            connections: self.store.clone(),
            settings: self.store.clone(),
            local_users: self.store.clone(),
        }
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
        FetchDeps {
            directory,
            connections: self.store.clone(),
            cursors: self.store.clone(),
            leases: self.store.clone(),
            runs: self.store.clone(),
            queue: Arc::new(self.queue.clone()),
            mirror: self.store.clone(),
            events: self.events.clone(),
            clock: self.clock.clone(),
            projection: Some(self.projection_ports()),
        }
    }

    pub fn reconcile_deps(&self) -> ReconcileDeps {
        ReconcileDeps {
            cursors: self.store.clone(),
            mirror: self.store.clone(),
            runs: self.store.clone(),
            events: self.events.clone(),
            clock: self.clock.clone(),
            projection: Some(self.projection_ports()),
        }
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
        // Claims of a previous process that died are void.
        self.queue.release_claims().await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let deps = self.reconcile_deps();
        let handler = move |d: Delivery| {
            let deps = deps.clone();
            async move {
                let result = handle_delivery(&deps, &d).await;
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
                        "{} page(s) could not be applied and were set aside (first: {}); nothing was deactivated.",
                        dead.len(),
                        dead[0].last_error.as_deref().unwrap_or("unknown error")
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
    let mut after = None;
    loop {
        let page = list(after.take()).await?;
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Everything the mirror holds for one tenant.
#[derive(Debug, Default, Serialize)]
pub struct Export {
    pub users: Vec<entra_sync_core::model::StoredUser>,
    pub groups: Vec<entra_sync_core::model::StoredGroup>,
    pub memberships: Vec<entra_sync_core::model::StoredMembership>,
}

/// The one place a queue delivery's failure is classified (and logged, by the queue).
async fn handle_delivery(deps: &ReconcileDeps, d: &Delivery) -> HandlerResult {
    let msg: PageMessage = match serde_json::from_str(&d.body) {
        Ok(m) => m,
        Err(e) => return HandlerResult::Poison(format!("malformed page message: {e}")),
    };
    match reconcile_page(deps, &msg).await {
        Ok(_) => HandlerResult::Done,
        Err(e) if e.is_retryable() => HandlerResult::Retry(plain_words(&e)),
        Err(e) => HandlerResult::Poison(plain_words(&e)),
    }
}

/// Make sure a path's parent exists.
pub fn ensure_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p),
        _ => Ok(()),
    }
}
