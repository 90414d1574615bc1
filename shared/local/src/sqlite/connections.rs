use async_trait::async_trait;
use entra_sync_core::committed::connection_event;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{Connection, TenantId};
use entra_sync_core::ports::ConnectionStore;
use rusqlite::{OptionalExtension, params};

use super::*;

fn stored_connection(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
) -> Result<Option<Connection>, StoreError> {
    let stored: Option<String> = tx
        .query_row(
            "SELECT body FROM connections WHERE tenant_id = ?1",
            [tenant],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    stored.map(|b| from_json(&b)).transpose()
}

/// The `connection.*` event of this write, in its transaction (see outbox.rs).
fn record_connection(
    tx: &rusqlite::Transaction<'_>,
    before: Option<&Connection>,
    after: &Connection,
) -> Result<(), StoreError> {
    let now = chrono::Utc::now();
    super::outbox::record(tx, connection_event(before, after, now), now)
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
        let after = connection.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let stored = stored_connection(&tx, &t)?;
            tx.execute(
                "INSERT INTO connections (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![t, body],
            )
            .map_err(internal)?;
            record_connection(&tx, stored.as_ref(), &after)?;
            tx.commit().map_err(internal)
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
        let after = connection.clone();
        self.with(move |c| {
            // Compare and write inside one immediate transaction: SQLite serialises writers,
            // across processes too. The stored body is decoded before the comparison, so
            // records written by older versions (without newer fields) compare by value.
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let stored = stored_connection(&tx, &t)?;
            if stored != expected {
                return Err(StoreError::Conflict(format!("connection {t}")));
            }
            tx.execute(
                "INSERT INTO connections (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![t, body],
            )
            .map_err(internal)?;
            record_connection(&tx, stored.as_ref(), &after)?;
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
