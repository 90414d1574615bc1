//! The embedded store: every store port on one SQLite file (WAL mode, migrations by
//! `PRAGMA user_version`). Items are stored as JSON beside the columns the conditions need.
//!
//! Conditional puts are single statements (`INSERT ... ON CONFLICT DO UPDATE ... WHERE stored
//! version < new version`), so an older replay can never overwrite a newer state even with
//! several writers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::error::StoreError;
use entra_sync_core::memory::edge_listing_key;
use entra_sync_core::model::{
    Connection, StoredGroup, StoredMembership, StoredUser, Stream, TenantId, Version,
};
use entra_sync_core::ports::{
    ConnectionStore, CursorStore, LeaseStore, Listing, MirrorStore, Revision, RunStore,
};
use entra_sync_core::run::{RunUpdate, SyncRun};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE connections (
    tenant_id TEXT PRIMARY KEY,
    body      TEXT NOT NULL
);
CREATE TABLE cursors (
    tenant_id TEXT NOT NULL,
    stream    TEXT NOT NULL,
    revision  INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, stream)
);
CREATE TABLE applied_pages (
    tenant_id TEXT NOT NULL,
    stream    TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream, cycle, page)
) WITHOUT ROWID;
CREATE TABLE leases (
    tenant_id TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  INTEGER NOT NULL
);
CREATE TABLE users (
    tenant_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE groups (
    tenant_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE memberships (
    tenant_id TEXT NOT NULL,
    edge      TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, edge)
);
CREATE TABLE runs (
    tenant_id  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    started_at TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);
"#,
    // 2: idempotency records (src/idempotency.rs).
    r#"
CREATE TABLE idempotency (
    tenant_id            TEXT NOT NULL,
    key                  TEXT NOT NULL,
    status               TEXT NOT NULL,
    payload_hash         TEXT NOT NULL,
    expires_at_ms        INTEGER NOT NULL,
    in_progress_until_ms INTEGER NOT NULL,
    result               TEXT,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency (expires_at_ms);
"#,
    // 3: the projection's stores (src/projection_store.rs): settings and the host product's users.
    r#"
CREATE TABLE settings (
    tenant_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE TABLE local_users (
    account_id  TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    email       TEXT NOT NULL,
    link_tenant TEXT,
    link_object TEXT,
    body        TEXT NOT NULL,
    PRIMARY KEY (account_id, local_id)
);
CREATE INDEX local_users_email ON local_users (account_id, email);
CREATE INDEX local_users_link ON local_users (link_tenant, link_object);
"#,
    // 4: pending admin consents (src/consent_store.rs), taken once by the callback.
    r#"
CREATE TABLE consent_states (
    state      TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL,
    body       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX consent_states_expiry ON consent_states (expires_ms);
"#,
    // 5: the write half (src/actions_store.rs): actions with their audit trail, workflows with
    // their due list, and the indexes the name lookups need on the mirror's tables. The mirror
    // keeps its rows as JSON and one put path serves users, groups and edges, so the lookups
    // use expression indexes over the JSON instead of extra columns: SQLite keeps them in step
    // on every write, and no writer has to remember them. A query uses such an index only when
    // it repeats the indexed expression exactly (actions_store.rs does, and a test checks the
    // query plans).
    r#"
CREATE TABLE actions (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX actions_by_time ON actions (tenant_id, listing_key);
CREATE INDEX actions_by_user ON actions (tenant_id, user_id, listing_key);
CREATE INDEX actions_by_status ON actions (tenant_id, status, listing_key);
CREATE TABLE workflows (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    due_at      TEXT,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workflows_by_time ON workflows (tenant_id, listing_key);
CREATE INDEX workflows_due ON workflows (due_at, tenant_id, id) WHERE due_at IS NOT NULL;
CREATE INDEX users_by_upn ON users
    (tenant_id, lower(json_extract(body, '$.user.user_principal_name')));
CREATE INDEX users_by_mail ON users (tenant_id, lower(json_extract(body, '$.user.mail')));
CREATE INDEX groups_by_name ON groups
    (tenant_id, lower(trim(json_extract(body, '$.group.display_name'), char(32, 9, 10, 11, 12, 13))));
CREATE INDEX memberships_by_member ON memberships (tenant_id, json_extract(body, '$.member.id'));
"#,
    // 6: the HR webhooks (src/webhooks_store.rs): endpoints, the delivery log per endpoint, the
    // review list per tenant, the state per HR person, and the mirror's users by employee id.
    r#"
CREATE TABLE hr_endpoints (
    account_id TEXT NOT NULL,
    source     TEXT NOT NULL,
    rev        INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (account_id, source)
);
CREATE TABLE hr_deliveries (
    account_id  TEXT NOT NULL,
    source      TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (account_id, source, id)
);
CREATE INDEX hr_deliveries_by_time ON hr_deliveries (account_id, source, listing_key);
CREATE TABLE hr_reviews (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    open        INTEGER NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX hr_reviews_by_time ON hr_reviews (tenant_id, listing_key);
CREATE INDEX hr_reviews_open ON hr_reviews (tenant_id, open, listing_key);
CREATE TABLE hr_people (
    tenant_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, source, provider_id)
);
CREATE INDEX users_by_employee_id ON users
    (tenant_id, lower(trim(json_extract(body, '$.user.employee_id'))));
"#,
];

/// Open (and migrate) a SQLite database file with the settings every embedded store uses.
pub fn open_database(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(internal)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(internal)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(internal)?;
    Ok(conn)
}

fn migrate(conn: &mut rusqlite::Connection, migrations: &[&str]) -> Result<(), StoreError> {
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

fn busy(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(Box::new(e)))
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_i64(v: u64) -> i64 {
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

    async fn get_many<T: DeserializeOwned + Send + 'static>(
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
    async fn put_versioned<'a, T: Serialize + 'a>(
        &self,
        table: &'static str,
        key_col: &'static str,
        tenant: &TenantId,
        items: impl Iterator<Item = (String, Version, &'a T)>,
    ) -> Result<u64, StoreError> {
        let rows = items
            .map(|(key, v, item)| Ok((key, v.cycle, v.page, to_json(item)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tenant = tenant.0.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(internal)?;
            let mut landed = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {table} (tenant_id, {key_col}, cycle, page, body)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (tenant_id, {key_col}) DO UPDATE
                         SET cycle = excluded.cycle, page = excluded.page, body = excluded.body
                         WHERE ({table}.cycle, {table}.page) < (excluded.cycle, excluded.page)"
                    ))
                    .map_err(internal)?;
                for (key, cycle, page, body) in &rows {
                    landed += stmt
                        .execute(params![tenant, key, to_i64(*cycle), page, body])
                        .map_err(internal)? as u64;
                }
            }
            tx.commit().map_err(internal)?;
            Ok(landed)
        })
        .await
    }

    async fn list_rows<T: DeserializeOwned + Send + 'static>(
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
            let mut items = Vec::new();
            let mut last = None;
            let mut more = false;
            for row in rows {
                let (k, b) = row.map_err(internal)?;
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(from_json(&b)?);
                last = Some(k);
            }
            Ok(Listing {
                items,
                next: if more { last } else { None },
            })
        })
        .await
    }
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn get_connection(&self, tenant: &TenantId) -> Result<Option<Connection>, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM connections WHERE tenant_id = ?1",
                    [t],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let t = connection.tenant_id.0.clone();
        let body = to_json(connection)?;
        self.with(move |c| {
            c.execute(
                "INSERT INTO connections (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![t, body],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn replace_connection(
        &self,
        connection: &Connection,
        expected: Option<&Connection>,
    ) -> Result<(), StoreError> {
        let t = connection.tenant_id.0.clone();
        let body = to_json(connection)?;
        let expected = expected.cloned();
        self.with(move |c| {
            // Compare and write inside one immediate transaction: SQLite serialises writers,
            // across processes too. The stored body is decoded before the comparison, so
            // records written by older versions (without newer fields) compare by value.
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let stored: Option<String> = tx
                .query_row(
                    "SELECT body FROM connections WHERE tenant_id = ?1",
                    [&t],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            let stored: Option<Connection> = stored.map(|b| from_json(&b)).transpose()?;
            if stored != expected {
                return Err(StoreError::Conflict(format!("connection {t}")));
            }
            tx.execute(
                "INSERT INTO connections (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![t, body],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached("SELECT body FROM connections ORDER BY tenant_id")
                .map_err(internal)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(from_json(&r.map_err(internal)?)?);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl CursorStore for SqliteStore {
    async fn load_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
    ) -> Result<Option<(CursorRecord, Revision)>, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            let row: Option<(i64, String)> = c
                .query_row(
                    "SELECT revision, body FROM cursors WHERE tenant_id = ?1 AND stream = ?2",
                    params![t, stream.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(internal)?;
            match row {
                Some((rev, body)) => Ok(Some((
                    from_json(&body)?,
                    Revision(u64::try_from(rev).unwrap_or(0)),
                ))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn save_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
        record: &CursorRecord,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let t = tenant.0.clone();
        let body = to_json(record)?;
        self.with(move |c| {
            let changed = match expected {
                None => c
                    .execute(
                        "INSERT INTO cursors (tenant_id, stream, revision, body)
                         VALUES (?1, ?2, 1, ?3) ON CONFLICT DO NOTHING",
                        params![t, stream.as_str(), body],
                    )
                    .map_err(internal)?,
                Some(Revision(rev)) => c
                    .execute(
                        "UPDATE cursors SET revision = revision + 1, body = ?4
                         WHERE tenant_id = ?1 AND stream = ?2 AND revision = ?3",
                        params![t, stream.as_str(), to_i64(rev), body],
                    )
                    .map_err(internal)?,
            };
            if changed == 0 {
                return Err(StoreError::Conflict(format!("cursor {t}/{stream}")));
            }
            Ok(Revision(expected.map_or(1, |r| r.0 + 1)))
        })
        .await
    }

    async fn mark_page_applied(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
        page: u32,
    ) -> Result<bool, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO applied_pages (tenant_id, stream, cycle, page)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![t, stream.as_str(), to_i64(cycle), page],
                )
                .map_err(internal)?;
            Ok(n == 1)
        })
        .await
    }

    async fn applied_pages(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
    ) -> Result<u32, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM applied_pages WHERE tenant_id = ?1 AND stream = ?2 AND cycle = ?3",
                params![t, stream.as_str(), to_i64(cycle)],
                |r| r.get::<_, u32>(0),
            )
            .map_err(internal)
        })
        .await
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let t = tenant.0.clone();
        let h = holder.to_owned();
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO leases (tenant_id, holder, until_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                     WHERE leases.holder = excluded.holder OR leases.until_ms <= ?4",
                    params![t, h, until.timestamp_millis(), now.timestamp_millis()],
                )
                .map_err(internal)?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_lease(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError> {
        let t = tenant.0.clone();
        let h = holder.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM leases WHERE tenant_id = ?1 AND holder = ?2",
                params![t, h],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl MirrorStore for SqliteStore {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError> {
        self.get_many("users", "id", tenant, ids.to_vec()).await
    }

    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError> {
        let items = users.iter().map(|u| (u.user.id.clone(), u.version, u));
        self.put_versioned("users", "id", tenant, items).await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError> {
        self.list_rows("users", "id", tenant, after, limit).await
    }

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError> {
        self.get_many("groups", "id", tenant, ids.to_vec()).await
    }

    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError> {
        let items = groups.iter().map(|g| (g.group.id.clone(), g.version, g));
        self.put_versioned("groups", "id", tenant, items).await
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError> {
        self.list_rows("groups", "id", tenant, after, limit).await
    }

    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let keys = keys.iter().map(|(g, m)| edge_listing_key(g, m)).collect();
        self.get_many("memberships", "edge", tenant, keys).await
    }

    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError> {
        let items = edges
            .iter()
            .map(|e| (edge_listing_key(&e.group_id, &e.member.id), e.version, e));
        self.put_versioned("memberships", "edge", tenant, items)
            .await
    }

    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let t = tenant.0.clone();
        let lo = format!("{group_id}/");
        // '0' is the character after '/', so [lo, hi) is exactly the group's prefix.
        let hi = format!("{group_id}0");
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM memberships WHERE tenant_id = ?1 AND edge >= ?2 AND edge < ?3",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(params![t, lo, hi], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(from_json(&r.map_err(internal)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError> {
        self.list_rows("memberships", "edge", tenant, after, limit)
            .await
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let t = run.tenant_id.0.clone();
        let id = run.run_id.clone();
        let started = run.started_at.to_rfc3339();
        let body = to_json(run)?;
        self.with(move |c| {
            c.execute(
                "INSERT INTO runs (tenant_id, run_id, started_at, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![t, id, started, body],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
        update: &RunUpdate,
    ) -> Result<SyncRun, StoreError> {
        let t = tenant.0.clone();
        let id = run_id.to_owned();
        let update = update.clone();
        self.with(move |c| {
            // Read-modify-write inside one immediate transaction: SQLite serialises writers.
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM runs WHERE tenant_id = ?1 AND run_id = ?2",
                    params![t, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            let mut run: SyncRun = match body {
                Some(b) => from_json(&b)?,
                None => return Err(StoreError::Corrupt(format!("run {id} not found"))),
            };
            update.apply(&mut run);
            tx.execute(
                "UPDATE runs SET body = ?3 WHERE tenant_id = ?1 AND run_id = ?2",
                params![t, id, to_json(&run)?],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(run)
        })
        .await
    }

    async fn get_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
    ) -> Result<Option<SyncRun>, StoreError> {
        let mut v = self
            .get_many("runs", "run_id", tenant, vec![run_id.to_owned()])
            .await?;
        Ok(v.pop())
    }

    async fn list_runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let t = tenant.0.clone();
        let limit = to_i64(limit as u64);
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM runs WHERE tenant_id = ?1 ORDER BY started_at DESC, run_id DESC LIMIT ?2",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(params![t, limit], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(from_json(&r.map_err(internal)?)?);
            }
            Ok(out)
        })
        .await
    }
}
