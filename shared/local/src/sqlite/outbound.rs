//! Outbound webhooks on SQLite (tables `outbound_endpoints` and `outbound_deliveries` of
//! migration 8 in schema.rs). JSON rows beside the columns the queries need: an endpoint's
//! account and whether it is enabled, a delivery's endpoint and the time it is due (`due_ms`,
//! unix milliseconds, `NULL` once delivered or failed).
//!
//! Deliveries are created by [`fan_out`] in the transaction that marks outbox rows delivered
//! (see outbox.rs), so every committed event has its deliveries before any POST, and a crash
//! before that transaction fans the same events out again (one delivery per (endpoint,
//! event), `INSERT OR IGNORE`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::events::ChangeEvent;
use entra_sync_core::model::AccountId;
use entra_sync_core::outbound::ports::{DueDelivery, OutboundStore};
use entra_sync_core::outbound::{DeliveryState, OutboundDelivery, OutboundEndpoint};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, from_json, internal, outbox, to_i64, to_json};

fn due_ms(d: &OutboundDelivery) -> Option<i64> {
    match d.state {
        DeliveryState::Pending { next_attempt_at } => Some(next_attempt_at.timestamp_millis()),
        _ => None,
    }
}

fn write_delivery(tx: &rusqlite::Connection, d: &OutboundDelivery) -> Result<(), StoreError> {
    let body = to_json(d)?;
    let updated = tx
        .prepare_cached("UPDATE outbound_deliveries SET due_ms = ?2, body = ?3 WHERE id = ?1")
        .map_err(internal)?
        .execute(params![d.id, due_ms(d), body])
        .map_err(internal)?;
    if updated == 0 {
        // A delivery the fan-out did not create (the store port allows it): it points at its
        // event's newest outbox row.
        tx.prepare_cached(
            "INSERT INTO outbound_deliveries (id, endpoint_id, event_id, event_seq, due_ms, body)
             VALUES (?1, ?2, ?3, (SELECT MAX(seq) FROM outbox WHERE id = ?3), ?4, ?5)",
        )
        .map_err(internal)?
        .execute(params![d.id, d.endpoint_id, d.event_id, due_ms(d), body])
        .map_err(internal)?;
    }
    Ok(())
}

fn write_endpoint(
    tx: &Transaction<'_>,
    e: &OutboundEndpoint,
    expected_rev: u64,
) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE outbound_endpoints SET enabled = ?2, rev = ?3, body = ?4
             WHERE id = ?1 AND rev = ?5",
        )
        .map_err(internal)?
        .execute(params![
            e.id,
            e.is_enabled(),
            to_i64(e.rev),
            to_json(e)?,
            to_i64(expected_rev)
        ])
        .map_err(internal)?;
    Ok(n == 1)
}

/// Create the deliveries of the stored events `lines` (outbox bodies) for every enabled
/// endpoint that wants them, due at `now`. Called in the transaction that marks the events
/// delivered from the outbox; the events are read only when an endpoint is enabled.
pub(crate) fn fan_out(
    tx: &Transaction<'_>,
    seqs: &[i64],
    lines: &[String],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let endpoints: Vec<OutboundEndpoint> = {
        let mut stmt = tx
            .prepare_cached("SELECT body FROM outbound_endpoints WHERE enabled = 1")
            .map_err(internal)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(internal)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(from_json(&r.map_err(internal)?)?);
        }
        out
    };
    if endpoints.is_empty() {
        return Ok(0);
    }
    let events = lines
        .iter()
        .map(|l| from_json(l))
        .collect::<Result<Vec<ChangeEvent>, _>>()?;
    let accounts: BTreeMap<String, AccountId> = {
        let mut stmt = tx
            .prepare_cached("SELECT tenant_id, json_extract(body, '$.account_id') FROM connections")
            .map_err(internal)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(internal)?;
        let mut out = BTreeMap::new();
        for r in rows {
            if let (t, Some(a)) = r.map_err(internal)? {
                out.insert(t, AccountId(a));
            }
        }
        out
    };
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO outbound_deliveries
                 (id, endpoint_id, event_id, event_seq, due_ms, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(internal)?;
    let mut created = 0;
    for (e, seq) in events.iter().zip(seqs) {
        let tenant_account = accounts.get(&e.tenant_id.0);
        for ep in endpoints.iter().filter(|ep| ep.wants(e, tenant_account)) {
            let d = OutboundDelivery::new(&ep.id, e, now);
            created += insert
                .execute(params![
                    d.id,
                    d.endpoint_id,
                    d.event_id,
                    seq,
                    due_ms(&d),
                    to_json(&d)?
                ])
                .map_err(internal)?;
        }
    }
    Ok(created)
}

fn read_deliveries(
    c: &rusqlite::Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<OutboundDelivery>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(internal)?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(internal)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(from_json(&r.map_err(internal)?)?);
    }
    Ok(out)
}

#[async_trait]
impl OutboundStore for SqliteStore {
    async fn create_endpoint(&self, endpoint: &OutboundEndpoint) -> Result<(), StoreError> {
        let e = endpoint.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO outbound_endpoints (id, account_id, enabled, rev, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    e.id,
                    e.account_id.0,
                    e.is_enabled(),
                    to_i64(e.rev),
                    to_json(&e)?
                ],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<OutboundEndpoint>, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM outbound_endpoints WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OutboundEndpoint>, StoreError> {
        let account = account.0.clone();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM outbound_endpoints WHERE account_id = ?1
                     ORDER BY json_extract(body, '$.created_at'), id",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map([account], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(from_json(&r.map_err(internal)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn update_endpoint(
        &self,
        endpoint: &OutboundEndpoint,
        expected_rev: u64,
        events: &[ChangeEvent],
    ) -> Result<(), StoreError> {
        let e = endpoint.clone();
        let events = events.to_vec();
        self.with(move |c| {
            let tx = c.transaction().map_err(internal)?;
            if !write_endpoint(&tx, &e, expected_rev)? {
                return Err(StoreError::Conflict(format!("endpoint {}", e.id)));
            }
            outbox::record(&tx, events, e.updated_at)?;
            tx.commit().map_err(internal)
        })
        .await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.with(move |c| {
            let tx = c.transaction().map_err(internal)?;
            let rows: Vec<(String, String, String)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT d.body, e.body, o.body FROM outbound_deliveries d
                         JOIN outbound_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
                         JOIN outbox o ON o.seq = d.event_seq
                         WHERE d.due_ms IS NOT NULL AND d.due_ms <= ?1
                         ORDER BY d.due_ms, d.seq LIMIT ?2",
                    )
                    .map_err(internal)?;
                let rows = stmt
                    .query_map(params![now.timestamp_millis(), to_i64(limit as u64)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(internal)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(r.map_err(internal)?);
                }
                out
            };
            let mut out = Vec::new();
            for (d, e, body) in rows {
                let mut delivery: OutboundDelivery = from_json(&d)?;
                let endpoint: OutboundEndpoint = from_json(&e)?;
                // The lease: stored as due later, handed out as due now.
                let claimed = delivery.clone();
                delivery.state = DeliveryState::Pending {
                    next_attempt_at: lease_until,
                };
                write_delivery(&tx, &delivery)?;
                out.push(DueDelivery {
                    delivery: claimed,
                    endpoint,
                    body,
                });
            }
            tx.commit().map_err(internal)?;
            Ok(out)
        })
        .await
    }

    async fn record_attempt(
        &self,
        delivery: &OutboundDelivery,
        endpoint: &OutboundEndpoint,
        endpoint_rev: u64,
        events: &[ChangeEvent],
    ) -> Result<(), StoreError> {
        let d = delivery.clone();
        let e = endpoint.clone();
        let events = events.to_vec();
        self.with(move |c| {
            let tx = c.transaction().map_err(internal)?;
            write_delivery(&tx, &d)?;
            if write_endpoint(&tx, &e, endpoint_rev)? {
                outbox::record(&tx, events, e.updated_at)?;
            }
            tx.commit().map_err(internal)
        })
        .await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<OutboundDelivery>, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            Ok(read_deliveries(
                c,
                "SELECT body FROM outbound_deliveries WHERE id = ?1",
                [id],
            )?
            .pop())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboundDelivery>, StoreError> {
        let id = endpoint_id.to_owned();
        let before = before.map(str::to_owned);
        self.with(move |c| {
            // An unknown `before` lists nothing (COALESCE to 0), like the memory store.
            read_deliveries(
                c,
                "SELECT body FROM outbound_deliveries WHERE endpoint_id = ?1
                 AND (?3 IS NULL OR seq < COALESCE(
                     (SELECT seq FROM outbound_deliveries WHERE id = ?3), 0))
                 ORDER BY seq DESC LIMIT ?2",
                params![id, to_i64(limit as u64), before],
            )
        })
        .await
    }

    async fn put_delivery(&self, delivery: &OutboundDelivery) -> Result<(), StoreError> {
        let d = delivery.clone();
        self.with(move |c| write_delivery(c, &d)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use entra_sync_core::events::{ChangeKind, Envelope};
    use entra_sync_core::model::TenantId;

    /// A data directory written before migration 9 (deliveries found their event by its id)
    /// keeps its pending deliveries: after the upgrade each is claimed with its event's body.
    #[tokio::test]
    async fn a_pending_delivery_from_before_migration_9_is_claimed_with_its_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let now = Utc::now();
        let event = ChangeEvent::new(
            &TenantId::new("t1"),
            "u1",
            7,
            ChangeKind::DirectoryUserCreated {},
        )
        .account(Some(AccountId("acme".into())))
        .at(now);
        let endpoint = OutboundEndpoint::new(
            "ep_1".into(),
            AccountId("acme".into()),
            "https://hooks.example/in".into(),
            None,
            now,
        );
        let delivery = OutboundDelivery::new(&endpoint.id, &event, now);
        let body = to_json(&Envelope::from(event.clone())).unwrap();
        {
            let mut c = crate::sqlite::open_database(&path).unwrap();
            crate::sqlite::migrate_with(&mut c, &super::super::schema::MIGRATIONS[..8]).unwrap();
            // Another event first, so the delivery's event is not the first row.
            c.execute(
                "INSERT INTO outbox (id, body, delivered_at) VALUES ('other', '{}', ?1)",
                params![now.to_rfc3339()],
            )
            .unwrap();
            c.execute(
                "INSERT INTO outbox (id, body, delivered_at) VALUES (?1, ?2, ?3)",
                params![delivery.event_id, body, now.to_rfc3339()],
            )
            .unwrap();
            c.execute(
                "INSERT INTO outbound_endpoints (id, account_id, enabled, rev, body)
                 VALUES (?1, 'acme', 1, ?2, ?3)",
                params![
                    endpoint.id,
                    to_i64(endpoint.rev),
                    to_json(&endpoint).unwrap()
                ],
            )
            .unwrap();
            c.execute(
                "INSERT INTO outbound_deliveries (id, endpoint_id, event_id, due_ms, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    delivery.id,
                    delivery.endpoint_id,
                    delivery.event_id,
                    due_ms(&delivery),
                    to_json(&delivery).unwrap()
                ],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let due = store
            .claim_due(now, now + chrono::Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].delivery.id, delivery.id);
        assert_eq!(due[0].body, body);
    }
}
