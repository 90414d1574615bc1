use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{TenantId, Version};
use entra_sync_core::ports::Listing;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

/// WAL pages between automatic checkpoints (see [`open_database`]).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;
/// The size the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 16 * 1024 * 1024;

/// Open (and migrate) a SQLite database file with the settings every embedded store uses.
pub fn open_database(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(internal)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(internal)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(internal)?;
    // A checkpoint every 10,000 pages (40 MiB of WAL) instead of SQLite's 1,000: a full sync
    // rewrites the same hot pages (runs, cursors, the outbox's tail, index roots) in every
    // transaction, and each checkpoint copies them back and syncs twice under the store's
    // lock. Measured on a 10,000-user full sync: about a third less wall time. The WAL is
    // cut back to 16 MiB after a checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(internal)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)
        .map_err(internal)?;
    Ok(conn)
}

pub(super) fn migrate(
    conn: &mut rusqlite::Connection,
    migrations: &[&str],
) -> Result<(), StoreError> {
    let done: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(internal)?;
    if done > migrations.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {done} is newer than this program ({})",
            migrations.len()
        )));
    }
    for (i, sql) in migrations.iter().enumerate().skip(done) {
        let tx = conn.transaction().map_err(internal)?;
        tx.execute_batch(sql).map_err(internal)?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(internal)?;
        tx.commit().map_err(internal)?;
    }
    Ok(())
}

/// Apply a list of migrations to a connection (shared with the queue database).
pub(crate) fn migrate_with(
    conn: &mut rusqlite::Connection,
    migrations: &[&str],
) -> Result<(), StoreError> {
    migrate(conn, migrations)
}

pub(crate) fn internal(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    match busy(&e) {
        true => StoreError::Unavailable(Box::new(e)),
        false => StoreError::Internal(Box::new(e)),
    }
}

pub(super) fn busy(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(Box::new(e)))
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Run `f` on a shared connection off the async runtime (SQLite calls block).
pub(crate) async fn on_connection<T, F>(
    conn: &Arc<Mutex<rusqlite::Connection>>,
    f: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
{
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    })
    .await
    .map_err(|e| StoreError::Internal(Box::new(e)))?
}

/// What a versioned write records in the outbox: the core's event of (stored, written).
pub(super) type Derive<T> =
    fn(&TenantId, Option<&T>, &T) -> Option<entra_sync_core::events::ChangeEvent>;

impl SqliteStore {
    pub(super) async fn get_many<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        key_col: &'static str,
        tenant: &TenantId,
        keys: Vec<String>,
    ) -> Result<Vec<T>, StoreError> {
        let tenant = tenant.0.clone();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT body FROM {table} WHERE tenant_id = ?1 AND {key_col} = ?2"
                ))
                .map_err(internal)?;
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                let body: Option<String> = stmt
                    .query_row(params![tenant, k], |r| r.get(0))
                    .optional()
                    .map_err(internal)?;
                if let Some(b) = body {
                    out.push(from_json(&b)?);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Conditional upsert of versioned rows: (key, cycle, page, body).
    /// Upsert versioned items (a newer version wins) and record, in the same transaction, the
    /// event `derive` gives for each write that landed (from the stored item before and the
    /// item written).
    pub(super) async fn put_versioned<T>(
        &self,
        table: &'static str,
        key_col: &'static str,
        tenant: &TenantId,
        items: Vec<(String, Version, T)>,
        derive: Derive<T>,
    ) -> Result<u64, StoreError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let rows = items
            .into_iter()
            .map(|(key, v, item)| Ok((key, v.cycle, v.page, to_json(&item)?, item)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tenant_id = tenant.clone();
        self.with(move |c| {
            let tenant = tenant_id.0.clone();
            let tx = c.transaction().map_err(internal)?;
            let mut landed = 0u64;
            let mut events = Vec::new();
            {
                let mut read = tx
                    .prepare_cached(&format!(
                        "SELECT body FROM {table} WHERE tenant_id = ?1 AND {key_col} = ?2"
                    ))
                    .map_err(internal)?;
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {table} (tenant_id, {key_col}, cycle, page, body)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (tenant_id, {key_col}) DO UPDATE
                         SET cycle = excluded.cycle, page = excluded.page, body = excluded.body
                         WHERE ({table}.cycle, {table}.page) < (excluded.cycle, excluded.page)"
                    ))
                    .map_err(internal)?;
                for (key, cycle, page, body, item) in &rows {
                    let before: Option<String> = read
                        .query_row(params![tenant, key], |r| r.get(0))
                        .optional()
                        .map_err(internal)?;
                    let wrote = stmt
                        .execute(params![tenant, key, to_i64(*cycle), page, body])
                        .map_err(internal)? as u64;
                    if wrote > 0 {
                        let before: Option<T> = before.as_deref().map(from_json).transpose()?;
                        events.extend(derive(&tenant_id, before.as_ref(), item));
                    }
                    landed += wrote;
                }
            }
            super::outbox::record(&tx, events, Utc::now())?;
            tx.commit().map_err(internal)?;
            Ok(landed)
        })
        .await
    }

    pub(super) async fn list_rows<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        key_col: &'static str,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<T>, StoreError> {
        self.list_rows_in(table, "tenant_id", tenant.0.clone(), key_col, after, limit)
            .await
    }

    /// One page of `table` rows whose `part_col` is `part`, in `key_col` order after `after`.
    pub(crate) async fn list_rows_in<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        part_col: &'static str,
        part: String,
        key_col: &'static str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<T>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {key_col}, body FROM {table}
                     WHERE {part_col} = ?1 AND {key_col} > ?2 ORDER BY {key_col} LIMIT ?3"
                ))
                .map_err(internal)?;
            let fetch = to_i64(limit as u64 + 1);
            let rows = stmt
                .query_map(params![part, after, fetch], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(internal)?;
            crate::sqlite::rows::page_of(rows, limit)
        })
        .await
    }
}
