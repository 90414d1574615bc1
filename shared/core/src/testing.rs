//! Dependency sets for tests of the sync half, built from one store of any kind (the memory,
//! SQLite and DynamoDB stores, or a test's wrapper around one). Service, handler and end-to-end
//! tests use [`DepsBuilder`] instead of assembling `FetchDeps`, `ReconcileDeps`,
//! `ScheduleDeps` or `ProjectDeps` by hand; the write half's tests use
//! [`crate::actions::testing`].
//!
//! ```
//! # use std::sync::Arc;
//! # use entra_sync_core::memory::{CollectingEvents, MemoryStore};
//! # use entra_sync_core::testing::DepsBuilder;
//! let store = Arc::new(MemoryStore::new());
//! let events = Arc::new(CollectingEvents::new());
//! let deps = DepsBuilder::on(&store).events(events.clone());
//! let reconcile = deps.reconcile();
//! assert!(reconcile.projection.is_none(), "mirror only unless asked");
//! ```

use std::sync::Arc;

use crate::idempotency::IdempotencyConfig;
use crate::memory::CollectingEvents;
use crate::memory_idempotency::MemoryIdempotency;
use crate::ports::{
    Clock, DirectoryReader, EventSink, FetchRequests, IdempotencyStore, SystemClock, WorkQueue,
};
use crate::services::claim::Claims;
use crate::services::{
    FetchDeps, ProjectDeps, ProjectionPorts, ReconcileDeps, ScheduleDeps, StorePorts, SyncDeps,
    SyncStore,
};

/// The ports of a test world on one store: events into `events` (a collecting sink unless
/// set), time from `clock` (the wall clock unless set), the mirror only unless
/// [`DepsBuilder::projected`].
#[derive(Clone)]
pub struct DepsBuilder<S> {
    store: Arc<S>,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    projection: Option<ProjectionPorts>,
}

impl<S: SyncStore> DepsBuilder<S> {
    pub fn on(store: &Arc<S>) -> Self {
        Self {
            store: store.clone(),
            events: Arc::new(CollectingEvents::new()),
            clock: Arc::new(SystemClock),
            projection: None,
        }
    }

    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Project the host product's users into `ports` (a test's own local users, say) when a
    /// run's reads are complete.
    pub fn projection(mut self, ports: ProjectionPorts) -> Self {
        self.projection = Some(ports);
        self
    }

    /// The ports reconcile and commit use.
    pub fn sync(&self) -> SyncDeps {
        SyncDeps {
            projection: self.projection.clone(),
            ..SyncDeps::mirror_only(&self.store, self.events.clone(), self.clock.clone())
        }
    }

    pub fn reconcile(&self) -> ReconcileDeps {
        self.sync()
    }

    /// Fetch reading `directory` and sending pages to `queue`.
    pub fn fetch(
        &self,
        directory: Arc<dyn DirectoryReader>,
        queue: Arc<dyn WorkQueue>,
    ) -> FetchDeps {
        FetchDeps::new(&self.store, directory, queue, self.sync())
    }

    /// Message claims on fresh in-memory idempotency records, on this world's clock.
    pub fn claims(&self) -> Claims {
        self.claims_on(Arc::new(MemoryIdempotency::new()))
    }

    /// Message claims on `records` (the store's own, where it has them), on this world's clock.
    pub fn claims_on(&self, records: Arc<dyn IdempotencyStore>) -> Claims {
        Claims::new(records, IdempotencyConfig::default(), self.clock.clone())
    }
}

impl<S: StorePorts> DepsBuilder<S> {
    /// Project the host product's users (from this store) when a run's reads are complete.
    pub fn projected(mut self) -> Self {
        self.projection = Some(ProjectionPorts::from_store(&self.store));
        self
    }

    /// The projection services' ports (settings, preview, import, confirm, reject).
    pub fn project(&self) -> ProjectDeps {
        ProjectDeps::from_store(&self.store, self.clock.clone())
    }

    /// The scheduler's ports, sending fetch requests to `requests`.
    pub fn schedule(&self, requests: Arc<dyn FetchRequests>) -> ScheduleDeps {
        ScheduleDeps::from_store(&self.store, requests, self.clock.clone())
    }
}

/// Counts the warnings and errors logged while it is the thread's default subscriber
/// (`tracing::subscriber::set_default`), for tests that check a failure is logged once, where
/// it is decided.
#[derive(Clone, Default)]
pub struct LoggedProblems(Arc<std::sync::atomic::AtomicUsize>);

impl LoggedProblems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Warnings and errors logged so far.
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl tracing::Subscriber for LoggedProblems {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() <= tracing::Level::WARN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
