//! Records kept as JSON rows with a revision, the shape of the write half's tables (actions,
//! workflows) and of the HR webhooks' tables:
//!
//! * Every row keeps the record as JSON in `body`, beside its key columns, `rev` (the
//!   condition of updates) and, for listings, `listing_key` (newest first = descending).
//! * Creates are `INSERT ... ON CONFLICT DO NOTHING`; when the row was there, the stored one
//!   is read back in the same IMMEDIATE transaction and returned. Updates are
//!   `UPDATE ... WHERE rev = expected`; no changed row is a `Conflict`.
//! * A table whose writes have change events (actions, workflows) writes through the
//!   `*_deriving` forms: the events of the write, derived from the stored row before it and the
//!   new one, go to the outbox in the write's transaction.

use entra_sync_core::error::StoreError;
use entra_sync_core::events::ChangeEvent;
use entra_sync_core::ports::Listing;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params_from_iter};
use serde::de::DeserializeOwned;

use crate::sqlite::{SqliteStore, from_json, internal};

pub(crate) fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

pub(crate) fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// A row: its key columns (the primary key) and the other columns, `body` last.
pub(crate) struct Row {
    pub(crate) table: &'static str,
    pub(crate) key: Vec<(&'static str, Value)>,
    pub(crate) columns: Vec<(&'static str, Value)>,
}

fn where_key(key: &[(&'static str, Value)], first: usize) -> String {
    key.iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{c} = ?{}", first + i))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn get_body<T: DeserializeOwned>(
    c: &rusqlite::Connection,
    table: &str,
    key: &[(&'static str, Value)],
) -> Result<Option<T>, StoreError> {
    let sql = format!("SELECT body FROM {table} WHERE {}", where_key(key, 1));
    let body: Option<String> = c
        .query_row(&sql, params_from_iter(key.iter().map(|(_, v)| v)), |r| {
            r.get(0)
        })
        .optional()
        .map_err(internal)?;
    body.map(|b| from_json(&b)).transpose()
}

/// A page of at most `limit` records from `(key, body)` rows read with one row more than the
/// page holds: that row, when there, says another page follows (its cursor is the last key).
pub(crate) fn page_of<T: DeserializeOwned>(
    rows: impl Iterator<Item = rusqlite::Result<(String, String)>>,
    limit: usize,
) -> Result<Listing<T>, StoreError> {
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (key, body) = row.map_err(internal)?;
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(from_json(&body)?);
        last = Some(key);
    }
    Ok(Listing {
        items,
        next: if more { last } else { None },
    })
}

/// The query of one listing page, newest first: `conditions` (each a column and an operator,
/// `"tenant_id ="`) joined by AND, with numbered placeholders.
pub(crate) fn listing_sql(table: &str, conditions: &[&str], limit: usize) -> String {
    let clauses: Vec<String> = conditions
        .iter()
        .enumerate()
        .map(|(i, sql)| format!("{sql} ?{}", i + 1))
        .collect();
    format!(
        "SELECT listing_key, body FROM {table} WHERE {} ORDER BY listing_key DESC LIMIT {limit}",
        clauses.join(" AND ")
    )
}

/// `UPDATE` of `row`'s columns, conditional on its `rev`: the columns, then the key, then the
/// expected revision (see [`update_values`]).
fn update_sql(row: &Row) -> String {
    let sets: Vec<String> = row
        .columns
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{c} = ?{}", i + 1))
        .collect();
    let n = row.columns.len();
    format!(
        "UPDATE {} SET {} WHERE {} AND rev = ?{}",
        row.table,
        sets.join(", "),
        where_key(&row.key, n + 1),
        n + row.key.len() + 1
    )
}

fn update_values(row: &Row, expected_rev: u64) -> Vec<Value> {
    row.columns
        .iter()
        .chain(&row.key)
        .map(|(_, v)| v.clone())
        .chain(std::iter::once(int(expected_rev)))
        .collect()
}

impl SqliteStore {
    /// Insert `row` unless its key exists; then return the stored record.
    pub(crate) async fn create_row<T: DeserializeOwned + Send + 'static>(
        &self,
        row: Row,
    ) -> Result<Option<T>, StoreError> {
        self.create_row_deriving(row, Vec::new).await
    }

    /// [`Self::create_row`], recording the events `derive` gives in the outbox in the same
    /// transaction when the row was inserted (an existing row is no change: no events).
    pub(crate) async fn create_row_deriving<T, D>(
        &self,
        row: Row,
        derive: D,
    ) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
        D: FnOnce() -> Vec<ChangeEvent> + Send + 'static,
    {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let cols: Vec<&str> = row
                .key
                .iter()
                .chain(&row.columns)
                .map(|(c, _)| *c)
                .collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let conflict: Vec<&str> = row.key.iter().map(|(c, _)| *c).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
                row.table,
                cols.join(", "),
                marks.join(", "),
                conflict.join(", ")
            );
            let added = tx
                .execute(
                    &sql,
                    params_from_iter(row.key.iter().chain(&row.columns).map(|(_, v)| v)),
                )
                .map_err(internal)?;
            let stored = match added {
                1 => {
                    super::outbox::record(&tx, derive(), chrono::Utc::now())?;
                    None
                }
                _ => get_body(&tx, row.table, &row.key)?,
            };
            tx.commit().map_err(internal)?;
            Ok(stored)
        })
        .await
    }

    /// Replace `row` if its stored `rev` is `expected_rev`; else `Conflict` naming `what`.
    pub(crate) async fn update_row(
        &self,
        row: Row,
        expected_rev: u64,
        what: String,
    ) -> Result<(), StoreError> {
        self.with(move |c| {
            match c
                .execute(
                    &update_sql(&row),
                    params_from_iter(update_values(&row, expected_rev)),
                )
                .map_err(internal)?
            {
                0 => Err(StoreError::Conflict(what)),
                _ => Ok(()),
            }
        })
        .await
    }

    /// [`Self::update_row`] of a record of type `T`, recording the events `derive` gives for
    /// (the stored record before, the new one) in the outbox in the same transaction.
    pub(crate) async fn update_row_deriving<T, D>(
        &self,
        row: Row,
        expected_rev: u64,
        what: String,
        derive: D,
    ) -> Result<(), StoreError>
    where
        T: DeserializeOwned + Send + 'static,
        D: FnOnce(Option<&T>) -> Vec<ChangeEvent> + Send + 'static,
    {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let before: Option<T> = get_body(&tx, row.table, &row.key)?;
            let changed = tx
                .execute(
                    &update_sql(&row),
                    params_from_iter(update_values(&row, expected_rev)),
                )
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::Conflict(what));
            }
            super::outbox::record(&tx, derive(before.as_ref()), chrono::Utc::now())?;
            tx.commit().map_err(internal)
        })
        .await
    }

    pub(crate) async fn get_row<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        key: Vec<(&'static str, Value)>,
    ) -> Result<Option<T>, StoreError> {
        self.with(move |c| get_body(c, table, &key)).await
    }

    /// One page of `table`, newest first: rows matching `conditions` whose listing key is
    /// below `after`.
    pub(crate) async fn newest_first<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        mut conditions: Vec<(&'static str, Value)>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<T>, StoreError> {
        let limit = limit.max(1);
        if let Some(a) = after {
            conditions.push(("listing_key <", text(a)));
        }
        self.with(move |c| {
            let columns: Vec<&str> = conditions.iter().map(|(sql, _)| *sql).collect();
            let sql = listing_sql(table, &columns, limit + 1);
            let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
            let rows = stmt
                .query_map(params_from_iter(conditions.iter().map(|(_, v)| v)), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(internal)?;
            page_of(rows, limit)
        })
        .await
    }
}
