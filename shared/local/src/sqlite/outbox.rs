//! The outbox: change events recorded in the same transaction as the change they describe
//! (the mirror writes, host-user writes, run status changes), so a committed change always
//! has its event and a rolled-back one never has. The events are derived by the core's pure
//! functions of (stored before, stored after) (`entra_sync_core::committed`); this file only
//! stores and hands them out.
//!
//! Delivery is at least once: [`SqliteStore::deliver_outbox`] hands pending rows in commit
//! order to a sink and marks them delivered afterwards (creating their outbound webhook
//! deliveries in the same transaction, see outbound.rs), so a crash in between delivers them
//! again (with the same event ids) on the next call.

use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::events::ChangeEvent;
use rusqlite::{Transaction, params};

use super::{SqliteStore, from_json, internal, to_json};

/// Record `events` in the transaction `tx`, stamped at `now` unless they carry a time. An
/// event whose id is already recorded is the same change: kept once.
pub(crate) fn record(
    tx: &Transaction<'_>,
    events: impl IntoIterator<Item = ChangeEvent>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached("INSERT OR IGNORE INTO outbox (id, body) VALUES (?1, ?2)")
        .map_err(internal)?;
    for mut e in events {
        if e.occurred_at == DateTime::<Utc>::UNIX_EPOCH {
            e.occurred_at = now;
        }
        stmt.execute(params![e.id().to_string(), to_json(&e)?])
            .map_err(internal)?;
    }
    Ok(())
}

/// Most rows handed to the sink at once.
const DELIVERY_BATCH: usize = 500;

impl SqliteStore {
    /// Hand every undelivered event, in commit order, to `deliver` (a batch at a time) and
    /// mark each batch delivered once `deliver` returned. Returns how many were delivered.
    /// Blocking: call it from a blocking context (see [`Self::deliver_outbox_async`]).
    pub fn deliver_outbox<E>(
        &self,
        mut deliver: impl FnMut(&[ChangeEvent]) -> Result<(), E>,
    ) -> Result<usize, OutboxError<E>> {
        let mut total = 0;
        loop {
            let batch: Vec<(i64, ChangeEvent)> = self
                .with_blocking(|c| {
                    let mut stmt = c
                        .prepare_cached(
                            "SELECT seq, body FROM outbox WHERE delivered_at IS NULL
                             ORDER BY seq LIMIT ?1",
                        )
                        .map_err(internal)?;
                    let rows = stmt
                        .query_map(params![DELIVERY_BATCH as i64], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                        })
                        .map_err(internal)?;
                    let mut out = Vec::new();
                    for row in rows {
                        let (seq, body) = row.map_err(internal)?;
                        out.push((seq, from_json(&body)?));
                    }
                    Ok(out)
                })
                .map_err(OutboxError::Store)?;
            if batch.is_empty() {
                return Ok(total);
            }
            let events: Vec<ChangeEvent> = batch.iter().map(|(_, e)| e.clone()).collect();
            deliver(&events).map_err(OutboxError::Sink)?;
            let last = batch.last().map_or(0, |(s, _)| *s);
            let first = batch.first().map_or(0, |(s, _)| *s);
            // Marked delivered and fanned out to the outbound webhook endpoints in one
            // transaction: a crash before it delivers the batch again (and fans it out
            // again, once per endpoint and event), a crash after it has every delivery row.
            self.with_blocking(|c| {
                let now = Utc::now();
                let tx = c.transaction().map_err(internal)?;
                tx.execute(
                    "UPDATE outbox SET delivered_at = ?3
                     WHERE seq BETWEEN ?1 AND ?2 AND delivered_at IS NULL",
                    params![first, last, now.to_rfc3339()],
                )
                .map_err(internal)?;
                super::outbound::fan_out(&tx, &events, now)?;
                tx.commit().map_err(internal)
            })
            .map_err(OutboxError::Store)?;
            total += events.len();
        }
    }

    /// Events recorded and not delivered yet.
    pub fn pending_outbox(&self) -> Result<u64, StoreError> {
        self.with_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(internal)
        })
    }
}

/// Why a delivery stopped: the store, or the sink (whose rows stay pending).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError<E> {
    #[error("the outbox could not be read or marked: {0}")]
    Store(#[source] StoreError),
    #[error("the event sink refused the events: {0}")]
    Sink(#[source] E),
}
