//! Idempotency records on the SQLite store (table `idempotency`, migration 2). `begin` reads and
//! writes in one IMMEDIATE transaction, so of two concurrent claims exactly one starts; the
//! decision itself is the core's (`idempotency::decide`), shared with the in-memory store.
//! Expired records are deleted by the next `begin` (SQLite has no TTL).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::idempotency::{Begin, Claim, IdempotencyRecord, RecordStatus, decide};
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::IdempotencyStore;
use rusqlite::{OptionalExtension, params};

use crate::sqlite::{SqliteStore, internal};

fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("idempotency time {ms}")))
}

impl SqliteStore {
    /// Drop `tenant`'s in-progress claims whose key starts with `prefix`: the claims of a
    /// process that died while applying. Only for a caller that knows no live worker holds such
    /// a claim (the local sync, which holds the data directory and starts its workers after
    /// this). Completed records stay. Returns how many claims were dropped.
    pub async fn release_abandoned_claims(
        &self,
        tenant: &TenantId,
        prefix: &str,
    ) -> Result<usize, StoreError> {
        let (t, p) = (tenant.as_str().to_owned(), prefix.to_owned());
        self.with(move |c| {
            c.execute(
                "DELETE FROM idempotency
                 WHERE tenant_id = ?1 AND status = ?2 AND substr(key, 1, length(?3)) = ?3",
                params![t, RecordStatus::InProgress.as_str(), p],
            )
            .map_err(internal)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn begin(&self, tenant: &TenantId, claim: &Claim) -> Result<Begin, StoreError> {
        let t = tenant.as_str().to_owned();
        let claim = claim.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let now = claim.now.timestamp_millis();
            tx.execute(
                "DELETE FROM idempotency WHERE expires_at_ms < ?1",
                [now],
            )
            .map_err(internal)?;
            let row: Option<(String, String, i64, i64, Option<String>)> = tx
                .query_row(
                    "SELECT status, payload_hash, expires_at_ms, in_progress_until_ms, result
                     FROM idempotency WHERE tenant_id = ?1 AND key = ?2",
                    params![t, claim.key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(internal)?;
            let existing = match row {
                Some((status, payload_hash, expires, until, result)) => Some(IdempotencyRecord {
                    status: RecordStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("idempotency status {status}")))?,
                    payload_hash,
                    expires_at: from_ms(expires)?,
                    in_progress_until: from_ms(until)?,
                    result,
                }),
                None => None,
            };
            let record = match decide(existing.as_ref(), &claim) {
                Ok(r) => r,
                Err(answer) => return Ok(answer),
            };
            tx.execute(
                "INSERT INTO idempotency
                   (tenant_id, key, status, payload_hash, expires_at_ms, in_progress_until_ms, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
                 ON CONFLICT (tenant_id, key) DO UPDATE SET
                   status = excluded.status, payload_hash = excluded.payload_hash,
                   expires_at_ms = excluded.expires_at_ms,
                   in_progress_until_ms = excluded.in_progress_until_ms, result = NULL",
                params![
                    t,
                    claim.key,
                    record.status.as_str(),
                    record.payload_hash,
                    record.expires_at.timestamp_millis(),
                    record.in_progress_until.timestamp_millis()
                ],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Begin::Started)
        })
        .await
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (t, k, r) = (
            tenant.as_str().to_owned(),
            key.to_owned(),
            result.to_owned(),
        );
        let n = self
            .with(move |c| {
                c.execute(
                    "UPDATE idempotency SET status = ?3, result = ?4, expires_at_ms = ?5
                     WHERE tenant_id = ?1 AND key = ?2",
                    params![
                        t,
                        k,
                        RecordStatus::Completed.as_str(),
                        r,
                        expires_at.timestamp_millis()
                    ],
                )
                .map_err(internal)
            })
            .await?;
        match n {
            0 => Err(StoreError::Conflict(format!("idempotency record {key}"))),
            _ => Ok(()),
        }
    }

    async fn release(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let (t, k) = (tenant.as_str().to_owned(), key.to_owned());
        self.with(move |c| {
            c.execute(
                "DELETE FROM idempotency WHERE tenant_id = ?1 AND key = ?2 AND status = ?3",
                params![t, k, RecordStatus::InProgress.as_str()],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}
