//! The write half on one machine: the action services on the embedded adapters (SQLite store
//! and idempotency records, the durable local action queue, the event log), the worker that
//! consumes the action queue, and the tick that expires overdue approvals and starts workflow
//! steps whose date has come.
//!
//! Who runs what (docs/actions.md, "Local program"):
//! * `entra-sync serve` runs the worker for as long as it serves, and the tick every
//!   [`TICK_EVERY`].
//! * `entra-sync act`, `actions ...` and `workflow ...` run the tick at their start and end;
//!   without a running `serve` they also run the queue to completion in-process
//!   ([`run_queue_until_idle`]), so an action asked for is done when the command returns.
//! * `entra-sync sync` runs the tick after the sync.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use entra_sync_core::actions::budget::WriteBudget;
use entra_sync_core::directory_write::DirectoryWriter;
use entra_sync_core::ports::{Secret, SecretVault};
use entra_sync_core::services::actions::{
    ActionDeps, ActionError, ActionsConfig, expire_overdue, handle_action_message,
    run_due_workflows,
};
use entra_sync_core::services::claim::Claims;
use entra_sync_graph::{GraphClient, GraphConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::action_queue::LocalActionQueue;
use crate::queue::QueueConfig;
use crate::runtime::{DataDir, LocalApp, LocalError};

/// How often `serve` runs the tick.
pub const TICK_EVERY: Duration = Duration::from_secs(10);

/// Workflows started per tick at most (the next tick takes the rest).
const DUE_PER_TICK: usize = 100;

impl DataDir {
    /// The durable action queue (its own file: page workers never see action messages).
    pub fn action_queue(&self) -> PathBuf {
        self.root.join("actions.sqlite")
    }

    /// Where `serve` notes how the directory is reached (see [`DirectoryAccess`]).
    pub fn directory_access_file(&self) -> PathBuf {
        self.root.join("directory.json")
    }
}

/// How the local program reaches Microsoft Graph for a data directory, as `serve` noted it,
/// so `act` and the other action commands need no flags next to a running `serve`. Holds no
/// secret: the client secret is in the vault (`secret_in_vault`) or the environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryAccess {
    pub graph_url: url::Url,
    pub login_url: url::Url,
    pub client_id: String,
    /// The client secret is the vault's `app/client-secret` (the emulator's app).
    #[serde(default)]
    pub secret_in_vault: bool,
    /// The consent callback `serve` receives Microsoft's answers on.
    #[serde(default)]
    pub redirect_uri: Option<url::Url>,
}

impl DirectoryAccess {
    /// Note it in the data directory (written to a temporary file, then renamed).
    pub fn save(&self, dir: &DataDir) -> Result<(), LocalError> {
        let path = dir.directory_access_file();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let data_dir = |source| LocalError::DataDir {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| LocalError::Failed(format!("cannot write {}: {e}", path.display())))?;
        std::fs::write(&tmp, body).map_err(data_dir)?;
        std::fs::rename(&tmp, &path).map_err(data_dir)
    }

    /// What `serve` noted, if it did.
    pub fn load(dir: &DataDir) -> Result<Option<Self>, LocalError> {
        let path = dir.directory_access_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                LocalError::Failed(format!(
                    "{} cannot be read ({e}); delete it and pass --client-id, --graph-url and --login-url",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LocalError::DataDir { path, source }),
        }
    }

    /// The Graph client, with the secret from the vault or `secret`.
    pub async fn client(
        &self,
        app: &LocalApp,
        secret: Option<Secret>,
    ) -> Result<GraphClient, LocalError> {
        let secret = match (secret, self.secret_in_vault) {
            (Some(s), _) => s,
            (None, true) => {
                app.vault
                    .get_secret(entra_sync_core::ports::APP_CLIENT_SECRET)
                    .await?
            }
            (None, false) => {
                return Err(LocalError::Failed(
                    "the client secret is read from the environment variable ENTRA_SYNC_CLIENT_SECRET (or name another with --client-secret-env)".into(),
                ));
            }
        };
        let config = GraphConfig::new(
            self.graph_url.clone(),
            self.login_url.clone(),
            self.client_id.clone(),
            secret,
        );
        GraphClient::new(config).map_err(|e| LocalError::Failed(format!("graph client: {e}")))
    }
}

/// The action services of one data directory: their ports and the action queue.
#[derive(Clone)]
pub struct LocalActions {
    pub deps: ActionDeps,
    pub queue: LocalActionQueue,
}

impl LocalApp {
    /// The action services on this data directory, writing to the directory through `writer`.
    pub fn actions(&self, writer: Arc<dyn DirectoryWriter>) -> Result<LocalActions, LocalError> {
        let queue =
            LocalActionQueue::open(&self.data_dir().action_queue(), QueueConfig::default())?;
        let deps = ActionDeps {
            connections: self.store.clone(),
            settings: self.store.clone(),
            mirror: self.store.clone(),
            cursors: self.store.clone(),
            lookup: self.store.clone(),
            actions: self.store.clone(),
            workflows: self.store.clone(),
            queue: Arc::new(queue.clone()),
            writer,
            claims: Claims::new(
                self.store.clone(),
                entra_sync_core::idempotency::IdempotencyConfig::default(),
                self.clock.clone(),
            ),
            budget: Arc::new(WriteBudget::default()),
            clock: self.clock.clone(),
            config: ActionsConfig::default(),
        };
        Ok(LocalActions { deps, queue })
    }
}

/// What one tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Approval requests that expired.
    pub expired: usize,
    /// Workflows whose date came and that moved on.
    pub workflows_moved: usize,
}

/// Expire overdue approvals of every connected directory and move on the workflows whose date
/// has come.
pub async fn tick(deps: &ActionDeps) -> Result<Tick, ActionError> {
    let mut t = Tick::default();
    for c in deps.connections.list_connections().await? {
        t.expired += expire_overdue(deps, &c.tenant_id).await?;
    }
    t.workflows_moved = run_due_workflows(deps, DUE_PER_TICK).await?;
    if t != Tick::default() {
        info!(
            expired = t.expired,
            workflows = t.workflows_moved,
            "action tick"
        );
    }
    Ok(t)
}

/// Run the action queue's worker until `stop` turns true (what `serve` does).
pub async fn run_worker(actions: &LocalActions, workers: usize, stop: watch::Receiver<bool>) {
    let deps = actions.deps.clone();
    let handler = move |m| {
        let deps = deps.clone();
        async move { handle_action_message(&deps, &m).await }
    };
    actions.queue.run_workers(workers, handler, stop).await;
}

/// Run the tick every [`TICK_EVERY`] until `stop` turns true.
pub async fn run_ticks(deps: &ActionDeps, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = tick(deps).await {
            warn!(error = %e, "action tick failed; the next one tries again");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK_EVERY) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// How a [`run_queue_until_idle`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRun {
    /// No message is left.
    Empty,
    /// Messages wait for a later retry (throttling, a brief outage) beyond the wait allowed.
    Waiting { messages: u64 },
}

/// Run the action queue in this process until it is empty (each finished action moves its
/// workflow on, which may queue the next step's actions: those run too), or until `wait` has
/// passed with messages still waiting for their retry. Claims of a process that died are
/// released first.
pub async fn run_queue_until_idle(
    actions: &LocalActions,
    wait: Duration,
) -> Result<QueueRun, LocalError> {
    actions.queue.queue().release_claims().await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = {
        let actions = actions.clone();
        tokio::spawn(async move { run_worker(&actions, 2, stop_rx).await })
    };
    let deadline = tokio::time::Instant::now() + wait;
    let result = loop {
        let depth = actions.queue.queue().depth().await;
        match depth {
            Ok(0) => break Ok(QueueRun::Empty),
            Ok(n) if tokio::time::Instant::now() >= deadline => {
                break Ok(QueueRun::Waiting { messages: n });
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break Err(LocalError::from(e)),
        }
    };
    let _ = stop_tx.send(true);
    if let Err(e) = worker.await {
        warn!(error = %e, "action worker ended abnormally");
    }
    result
}
