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
use entra_sync_core::events::{ChangeEvent, Envelope};
use rusqlite::{Transaction, params};

use super::{SqliteStore, from_json, internal, to_json};

/// Record `events` in the transaction `tx`, stamped at `now` unless they carry a time. The
/// same change recorded twice is delivered twice under its one id (consumers drop repeats by
/// id); the writes that record events do so only when they landed, so that is rare.
pub(crate) fn record(
    tx: &Transaction<'_>,
    events: impl IntoIterator<Item = ChangeEvent>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached("INSERT INTO outbox (id, body) VALUES (?1, ?2)")
        .map_err(internal)?;
    for mut e in events {
        if e.occurred_at == DateTime::<Utc>::UNIX_EPOCH {
            e.occurred_at = now;
        }
        // The envelope is the stored form and exactly the line events.jsonl gets: its id is
        // computed once here, and delivery copies the body as it is.
        let envelope = Envelope::from(e);
        stmt.execute(params![envelope.id.to_string(), to_json(&envelope)?])
            .map_err(internal)?;
    }
    Ok(())
}

/// Most rows handed to the sink at once.
const DELIVERY_BATCH: usize = 500;

impl SqliteStore {
    /// Hand every undelivered event, in commit order, to `deliver` (a batch at a time) and
    /// mark each batch delivered once `deliver` returned. Returns how many were delivered.
    /// Blocking: call it from a blocking context.
    pub fn deliver_outbox<E>(
        &self,
        mut deliver: impl FnMut(&[ChangeEvent]) -> Result<(), E>,
    ) -> Result<usize, OutboxError<E>> {
        self.deliver_outbox_lines(|lines| {
            let events = lines
                .iter()
                .map(|l| from_json(l))
                .collect::<Result<Vec<ChangeEvent>, _>>()
                .map_err(OutboxError::Store)?;
            deliver(&events).map_err(OutboxError::Sink)
        })
    }

    /// [`Self::deliver_outbox`] for a sink that takes the stored envelopes as they are (one
    /// JSON object per event, the form `events.jsonl` holds): nothing is parsed or
    /// serialised again unless an outbound webhook endpoint needs the events.
    pub fn deliver_outbox_lines<E>(
        &self,
        mut deliver: impl FnMut(&[String]) -> Result<(), OutboxError<E>>,
    ) -> Result<usize, OutboxError<E>> {
        let mut total = 0;
        loop {
            let (seqs, lines): (Vec<i64>, Vec<String>) = self
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
                    rows.collect::<Result<_, _>>().map_err(internal)
                })
                .map_err(OutboxError::Store)?;
            let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
                return Ok(total);
            };
            deliver(&lines)?;
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
                super::outbound::fan_out(&tx, &seqs, &lines, now)?;
                tx.commit().map_err(internal)
            })
            .map_err(OutboxError::Store)?;
            total += lines.len();
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
