//! The one dependency set of the sync services, and the store bounds that build it from any
//! store (memory, SQLite, DynamoDB).
//!
//! Reconcile and commit use exactly the same ports (reconcile commits the round after each
//! page), and fetch uses those plus four of its own (it commits a round reconcile already
//! finished). So [`SyncDeps`] is the set reconcile and commit take, and [`super::FetchDeps`]
//! embeds it beside the directory, the connections, the lease and the page queue: each
//! function's dependencies still read like its permissions.

use std::sync::Arc;

use super::project::{ProjectDeps, ProjectionPorts};
use crate::ports::{
    Clock, ConnectionStore, CursorStore, EventSink, LeaseStore, LocalUserStore, MirrorStore,
    RunStore, SettingsStore,
};

/// The store ports a sync (fetch, reconcile, commit) uses, in one bound: implemented for every
/// type that implements them all.
pub trait SyncStore:
    ConnectionStore + CursorStore + LeaseStore + MirrorStore + RunStore + 'static
{
}
impl<T: ConnectionStore + CursorStore + LeaseStore + MirrorStore + RunStore + 'static> SyncStore
    for T
{
}

/// Every store port the sync and projection services use: a [`SyncStore`] that also holds the
/// connections' settings and the host product's users. The memory, SQLite and DynamoDB stores
/// are all one.
pub trait StorePorts: SyncStore + SettingsStore + LocalUserStore {}
impl<T: SyncStore + SettingsStore + LocalUserStore> StorePorts for T {}

/// The ports reconcile and commit use (fetch embeds them).
#[derive(Clone)]
pub struct SyncDeps {
    pub cursors: Arc<dyn CursorStore>,
    pub mirror: Arc<dyn MirrorStore>,
    pub runs: Arc<dyn RunStore>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    /// The host product's users: projected when a run's reads are complete. `None`: mirror
    /// only (the run succeeds once both streams are committed).
    pub projection: Option<ProjectionPorts>,
}

impl SyncDeps {
    /// On `store`, projecting the host product's users when a run's reads are complete (as
    /// the functions and the local program run).
    pub fn from_store<S: StorePorts>(
        store: &Arc<S>,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            projection: Some(ProjectionPorts::from_store(store)),
            ..Self::mirror_only(store, events, clock)
        }
    }

    /// On `store`, the mirror only: no projection.
    pub fn mirror_only<S: SyncStore>(
        store: &Arc<S>,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            cursors: store.clone(),
            mirror: store.clone(),
            runs: store.clone(),
            events,
            clock,
            projection: None,
        }
    }
}

impl ProjectionPorts {
    /// The projection's stores, all on `store`.
    pub fn from_store<S: StorePorts>(store: &Arc<S>) -> Self {
        Self {
            connections: store.clone(),
            settings: store.clone(),
            local_users: store.clone(),
        }
    }
}

impl ProjectDeps {
    /// Every port of the projection services, on `store`.
    pub fn from_store<S: StorePorts>(store: &Arc<S>, clock: Arc<dyn Clock>) -> Self {
        Self::new(
            &ProjectionPorts::from_store(store),
            store.clone(),
            store.clone(),
            store.clone(),
            clock,
        )
    }
}
