use async_trait::async_trait;
use entra_sync_core::committed::run_events;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, Connection, TenantId};
use entra_sync_core::ports::{Listing, RunStore};
use entra_sync_core::run::{RunUpdate, SyncRun};
use rusqlite::{OptionalExtension, params};

use super::*;

/// The account of the tenant's connection, for the envelope of run events.
fn account_of(
    tx: &rusqlite::Transaction<'_>,
    tenant: &TenantId,
) -> Result<Option<AccountId>, StoreError> {
    let body: Option<String> = tx
        .query_row(
            "SELECT body FROM connections WHERE tenant_id = ?1",
            params![tenant.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    Ok(match body {
        Some(b) => Some(from_json::<Connection>(&b)?.account_id),
        None => None,
    })
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let t = run.tenant_id.0.clone();
        let id = run.run_id.clone();
        let started = run.started_at.to_rfc3339();
        let body = to_json(run)?;
        let run = run.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(internal)?;
            let created = tx
                .execute(
                    "INSERT INTO runs (tenant_id, run_id, started_at, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![t, id, started, body],
                )
                .map_err(internal)?;
            if created > 0 {
                let now = chrono::Utc::now();
                let account = account_of(&tx, &run.tenant_id)?;
                super::outbox::record(&tx, run_events(None, &run, account, now), now)?;
            }
            tx.commit().map_err(internal)
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
            let before = run.clone();
            update.apply(&mut run);
            let now = chrono::Utc::now();
            let events = run_events(Some(&before), &run, account_of(&tx, &run.tenant_id)?, now);
            if !events.is_empty() {
                super::outbox::record(&tx, events, now)?;
            }
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

    async fn list_runs_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<SyncRun>, StoreError> {
        let t = tenant.0.clone();
        let after = after.map(str::to_owned);
        let take = to_i64(limit.saturating_add(1) as u64);
        let mut items: Vec<SyncRun> = self
            .with(move |c| {
                // The page starts after the named run, in the order of `list_runs`.
                let (started, id) = match &after {
                    None => (None, None),
                    Some(a) => {
                        let started: Option<String> = c
                            .query_row(
                                "SELECT started_at FROM runs WHERE tenant_id = ?1 AND run_id = ?2",
                                params![t, a],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(internal)?;
                        match started {
                            Some(s) => (Some(s), Some(a.clone())),
                            None => return Ok(Vec::new()),
                        }
                    }
                };
                let mut stmt = c
                    .prepare_cached(
                        "SELECT body FROM runs WHERE tenant_id = ?1
                         AND (?2 IS NULL OR started_at < ?2 OR (started_at = ?2 AND run_id < ?3))
                         ORDER BY started_at DESC, run_id DESC LIMIT ?4",
                    )
                    .map_err(internal)?;
                let rows = stmt
                    .query_map(params![t, started, id, take], |r| r.get::<_, String>(0))
                    .map_err(internal)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(from_json(&r.map_err(internal)?)?);
                }
                Ok(out)
            })
            .await?;
        let next = match items.len() > limit {
            true => {
                items.truncate(limit);
                items.last().map(|r| r.run_id.clone())
            }
            false => None,
        };
        Ok(Listing { items, next })
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
