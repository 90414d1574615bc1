//! Projection: the host product's users derived from the mirror through the connection's
//! filters, mapping and provisioning rules; the import preview; manual imports; the circuit
//! breaker with its confirm and reject; settings edits (which re-project at once, from the
//! mirror, without reading the directory).
//!
//! Every entry point runs the same scan over the mirror with `provision::decide`; they differ
//! only in which decisions they apply and whether they write. That is why a preview and the
//! import that follows agree exactly.
//!
//! One use case per file: `run` (a sync run's projection and the circuit breaker), `holds`
//! (confirm and reject a held run), `import` (preview and manual import), `settings` (checking
//! and saving settings edits), `local_users` (the host product's own changes and the sign-in
//! lookup). Beside them: `context` (what a scan loads once), `scan` (the pass over the mirror)
//! and `emails` (the email rules that cross users within one pass, pure).

mod context;
mod emails;
mod holds;
mod host_events;
mod import;
mod local_users;
mod run;
mod scan;
mod settings;

use std::sync::Arc;

use crate::error::{StoreError, SyncError};
use crate::model::{Stream, TenantId};
use crate::ports::{
    Clock, ConnectionStore, CursorStore, LocalUserStore, MirrorStore, RunStore, SettingsStore,
};
use crate::settings::SettingsError;

pub use holds::{confirm_held, reject_held};
pub use host_events::{PublishingLocalUsers, stamp_host_users};
pub use import::{ImportMode, ImportReport, Preview, PreviewItem, import, preview};
pub use local_users::{
    LocalUserError, SignInLookup, activate_local_user, add_local_user, set_local_status,
    sign_in_lookup,
};
pub use run::{ProjectOutcome, project_run};
pub use settings::{
    SettingsEdit, check_settings_edit, group_problems, load_settings, save_settings,
};

/// The ports a projection needs besides those every sync has.
#[derive(Clone)]
pub struct ProjectionPorts {
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub local_users: Arc<dyn LocalUserStore>,
}

/// Every port the projection services use.
#[derive(Clone)]
pub struct ProjectDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub local_users: Arc<dyn LocalUserStore>,
    pub mirror: Arc<dyn MirrorStore>,
    pub runs: Arc<dyn RunStore>,
    /// A rejected hold asks for a full re-read of the directory.
    pub cursors: Arc<dyn CursorStore>,
    pub clock: Arc<dyn Clock>,
}

impl ProjectDeps {
    pub fn new(
        ports: &ProjectionPorts,
        mirror: Arc<dyn MirrorStore>,
        runs: Arc<dyn RunStore>,
        cursors: Arc<dyn CursorStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections: ports.connections.clone(),
            settings: ports.settings.clone(),
            local_users: ports.local_users.clone(),
            mirror,
            runs,
            cursors,
            clock,
        }
    }
}

/// Why a projection service refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no connection for tenant {0}")]
    NotConnected(TenantId),
    #[error("the connection of tenant {tenant} is {state}: {what}")]
    Unavailable {
        tenant: TenantId,
        state: &'static str,
        what: String,
    },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(
        "the settings changed since you loaded them (you edited version {expected}, the stored one is newer); reload and try again"
    )]
    SettingsConflict { expected: u64 },
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run {run_id} is {status}, not held; only a held run can be confirmed or rejected")]
    NotHeld { run_id: String, status: String },
    /// A reject could not record the full re-read: a fetch kept moving the cursor.
    #[error(
        "a sync of tenant {tenant} is moving its {stream} read right now, so the full re-read was not recorded; the run is still held: reject it again in a moment"
    )]
    CursorBusy { tenant: TenantId, stream: Stream },
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for ProjectError {
    fn from(e: StoreError) -> Self {
        ProjectError::Sync(SyncError::from(e))
    }
}
