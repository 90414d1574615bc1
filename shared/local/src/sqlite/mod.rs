//! The embedded store: every store port on one SQLite file (WAL mode, migrations by
//! `PRAGMA user_version`). Items are stored as JSON beside the columns the conditions need.
//!
//! Conditional puts are single statements (`INSERT ... ON CONFLICT DO UPDATE ... WHERE stored
//! version < new version`), so an older replay can never overwrite a newer state even with
//! several writers.
//!
//! One file per port, named as on the DynamoDB side (`shared/aws/src/dynamo/`): `connections`,
//! `cursors`, `leases`, `mirror`, `runs`, `settings`, `local_users`, `idempotency`, `consent`,
//! `actions` (actions and workflows), `lookup` (the actions' target lookup), `webhooks` (the
//! HR webhooks' endpoints, deliveries, reviews and people), `outbox` (change events) and
//! `outbound` (the outbound webhooks' endpoints and deliveries); `schema` holds the
//! migrations and `db` what the ports share (opening, migrating, the blocking-call bridge,
//! versioned puts, listings).

mod actions;
mod connections;
mod consent;
mod cursors;
mod db;
mod idempotency;
mod leases;
mod local_users;
mod lookup;
mod mirror;
mod outbound;
mod outbox;
mod rows;
mod runs;
mod schema;
mod settings;
mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex};

use entra_sync_core::error::StoreError;

use db::migrate;
pub use db::open_database;
pub(crate) use db::{from_json, to_i64, to_json};
pub(crate) use db::{internal, migrate_with, on_connection};
pub use outbox::OutboxError;
use schema::MIGRATIONS;

/// Every store port on one SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteStore {
    /// Open or create the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_database(path)?;
        migrate(&mut conn, MIGRATIONS)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        on_connection(&self.conn, f).await
    }

    /// Run `f` on the connection on this thread (for callers outside the async runtime: the
    /// outbox delivery when a data directory is opened or closed).
    pub(crate) fn with_blocking<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}
