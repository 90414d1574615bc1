//! The write half's stores on SQLite (tables `actions` and `workflows` and the lookup indexes
//! of migration 5 in schema.rs): actions and their audit trail, workflows and their due list,
//! and the name lookups over the mirror.
//!
//! * An action row keeps the record as JSON in `body` beside the columns the listings and the
//!   condition need: `listing_key` (newest first = descending), `user_id`, `status` (its
//!   snake_case word) and `rev`. Indexes serve each listing order: (tenant, listing key),
//!   (tenant, user, listing key) and (tenant, status, listing key). The columns are rewritten
//!   by every update, so a status change moves the action between the status listings in the
//!   same statement.
//! * A workflow row has `due_at` (the time of a `scheduled` workflow, else NULL) under a
//!   partial index: the due list reads only scheduled rows, oldest first, across tenants.
//! * Creates are `INSERT ... ON CONFLICT DO NOTHING` and read the stored row back in the same
//!   IMMEDIATE transaction when it was there; updates are `UPDATE ... WHERE rev = expected`, and
//!   no changed row is a `Conflict`.
//! * Cursors are the listing key of a page's last item (opaque to callers).

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use entra_sync_core::actions::ports::{
    ActionFilter, ActionStore, WorkflowStore, action_listing_key, workflow_listing_key,
};
use entra_sync_core::actions::{ActionRecord, Workflow, WorkflowStatus};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::Listing;
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::de::DeserializeOwned;

use crate::sqlite::{SqliteStore, from_json, internal, to_i64, to_json};

/// The sortable text of a due time: RFC 3339 in UTC with nanoseconds, fixed width, so text
/// order is time order and no precision is lost (a workflow due a millisecond after `now` is
/// not due yet).
pub(crate) fn due_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn due_of(w: &Workflow) -> Option<String> {
    match w.status {
        WorkflowStatus::Scheduled { at } => Some(due_text(at)),
        _ => None,
    }
}

const DUE: &str = "SELECT tenant_id, id FROM workflows
     WHERE due_at IS NOT NULL AND due_at <= ?1
     ORDER BY due_at, tenant_id, id LIMIT ?2";

/// The query of one listing page: `clauses` joined by AND, newest first.
fn listing_sql(table: &str, clauses: &[&str], limit: usize) -> String {
    format!(
        "SELECT listing_key, body FROM {table} WHERE {} ORDER BY listing_key DESC LIMIT {limit}",
        clauses.join(" AND ")
    )
}

/// One page of `table`, newest first: rows matching `conditions` (SQL with `?` placeholders
/// and their values) whose listing key is below `after`.
fn newest_first<T: DeserializeOwned>(
    c: &rusqlite::Connection,
    table: &str,
    mut conditions: Vec<(&str, String)>,
    after: Option<String>,
    limit: usize,
) -> Result<Listing<T>, StoreError> {
    let limit = limit.max(1);
    if let Some(a) = after {
        conditions.push(("listing_key < ?", a));
    }
    let clauses: Vec<&str> = conditions.iter().map(|(sql, _)| *sql).collect();
    let sql = listing_sql(table, &clauses, limit + 1);
    let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
    let rows = stmt
        .query_map(params_from_iter(conditions.iter().map(|(_, v)| v)), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(internal)?;
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

#[async_trait]
impl ActionStore for SqliteStore {
    async fn create_action(
        &self,
        record: &ActionRecord,
    ) -> Result<Option<ActionRecord>, StoreError> {
        let row = (
            record.tenant_id.as_str().to_owned(),
            record.id.clone(),
            action_listing_key(record),
            record.target.user_id.clone(),
            record.status.as_str(),
            to_i64(record.rev),
            to_json(record)?,
        );
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let (tenant, id, key, user, status, rev, body) = row;
            let added = tx
                .execute(
                    "INSERT INTO actions (tenant_id, id, listing_key, user_id, status, rev, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant_id, id) DO NOTHING",
                    params![tenant, id, key, user, status, rev, body],
                )
                .map_err(internal)?;
            let stored = match added {
                1 => None,
                _ => {
                    let body: String = tx
                        .query_row(
                            "SELECT body FROM actions WHERE tenant_id = ?1 AND id = ?2",
                            params![tenant, id],
                            |r| r.get(0),
                        )
                        .map_err(internal)?;
                    Some(from_json(&body)?)
                }
            };
            tx.commit().map_err(internal)?;
            Ok(stored)
        })
        .await
    }

    async fn get_action(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ActionRecord>, StoreError> {
        let (t, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM actions WHERE tenant_id = ?1 AND id = ?2",
                    params![t, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn update_action(
        &self,
        record: &ActionRecord,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let row = (
            record.tenant_id.as_str().to_owned(),
            record.id.clone(),
            action_listing_key(record),
            record.target.user_id.clone(),
            record.status.as_str(),
            to_i64(record.rev),
            to_json(record)?,
        );
        self.with(move |c| {
            let (tenant, id, key, user, status, rev, body) = row;
            let changed = c
                .execute(
                    "UPDATE actions SET listing_key = ?3, user_id = ?4, status = ?5, rev = ?6,
                     body = ?7 WHERE tenant_id = ?1 AND id = ?2 AND rev = ?8",
                    params![
                        tenant,
                        id,
                        key,
                        user,
                        status,
                        rev,
                        body,
                        to_i64(expected_rev)
                    ],
                )
                .map_err(internal)?;
            match changed {
                0 => Err(StoreError::Conflict(format!("action {id}"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn list_actions(
        &self,
        tenant: &TenantId,
        filter: &ActionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ActionRecord>, StoreError> {
        let mut conditions = vec![("tenant_id = ?", tenant.as_str().to_owned())];
        if let Some(u) = &filter.user_id {
            conditions.push(("user_id = ?", u.clone()));
        }
        if let Some(s) = &filter.status {
            conditions.push(("status = ?", s.clone()));
        }
        let after = after.map(str::to_owned);
        self.with(move |c| newest_first(c, "actions", conditions, after, limit))
            .await
    }
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn create_workflow(&self, workflow: &Workflow) -> Result<Option<Workflow>, StoreError> {
        let row = (
            workflow.tenant_id.as_str().to_owned(),
            workflow.id.clone(),
            workflow_listing_key(workflow),
            due_of(workflow),
            to_i64(workflow.rev),
            to_json(workflow)?,
        );
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(internal)?;
            let (tenant, id, key, due, rev, body) = row;
            let added = tx
                .execute(
                    "INSERT INTO workflows (tenant_id, id, listing_key, due_at, rev, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant_id, id) DO NOTHING",
                    params![tenant, id, key, due, rev, body],
                )
                .map_err(internal)?;
            let stored = match added {
                1 => None,
                _ => {
                    let body: String = tx
                        .query_row(
                            "SELECT body FROM workflows WHERE tenant_id = ?1 AND id = ?2",
                            params![tenant, id],
                            |r| r.get(0),
                        )
                        .map_err(internal)?;
                    Some(from_json(&body)?)
                }
            };
            tx.commit().map_err(internal)?;
            Ok(stored)
        })
        .await
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        let (t, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM workflows WHERE tenant_id = ?1 AND id = ?2",
                    params![t, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            body.map(|b| from_json(&b)).transpose()
        })
        .await
    }

    async fn update_workflow(
        &self,
        workflow: &Workflow,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let row = (
            workflow.tenant_id.as_str().to_owned(),
            workflow.id.clone(),
            workflow_listing_key(workflow),
            due_of(workflow),
            to_i64(workflow.rev),
            to_json(workflow)?,
        );
        self.with(move |c| {
            let (tenant, id, key, due, rev, body) = row;
            let changed = c
                .execute(
                    "UPDATE workflows SET listing_key = ?3, due_at = ?4, rev = ?5, body = ?6
                     WHERE tenant_id = ?1 AND id = ?2 AND rev = ?7",
                    params![tenant, id, key, due, rev, body, to_i64(expected_rev)],
                )
                .map_err(internal)?;
            match changed {
                0 => Err(StoreError::Conflict(format!("workflow {id}"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn list_workflows(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Workflow>, StoreError> {
        let conditions = vec![("tenant_id = ?", tenant.as_str().to_owned())];
        let after = after.map(str::to_owned);
        self.with(move |c| newest_first(c, "workflows", conditions, after, limit))
            .await
    }

    async fn due_workflows(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(TenantId, String)>, StoreError> {
        let now = due_text(now);
        let limit = to_i64(limit as u64);
        self.with(move |c| {
            let mut stmt = c.prepare_cached(DUE).map_err(internal)?;
            let rows = stmt
                .query_map(params![now, limit], |r| {
                    Ok((
                        TenantId::new(r.get::<_, String>(0)?),
                        r.get::<_, String>(1)?,
                    ))
                })
                .map_err(internal)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(internal)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sqlite::lookup::{GROUPS_BY_NAME, GROUPS_OF_USER, USERS_BY_HANDLE};

    /// The query plan of `sql` (parameters unbound: the plan does not depend on them).
    fn plan(c: &rusqlite::Connection, sql: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        let rows = stmt
            .query_map(params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join("\n")
    }

    /// The lookups and listings are served by their indexes, never by a walk over the tenant's
    /// rows (a query that stops matching its index's expression, or asks for an order the index
    /// does not give, would fall back silently), and the listings and the due list read in
    /// index order instead of sorting.
    #[test]
    fn lookups_listings_and_the_due_list_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        let c = crate::sqlite::open_database(&path).unwrap();
        let by_user = listing_sql(
            "actions",
            &["tenant_id = ?", "user_id = ?", "listing_key < ?"],
            11,
        );
        let by_status = listing_sql("actions", &["tenant_id = ?", "status = ?"], 11);
        let all = listing_sql("actions", &["tenant_id = ?", "listing_key < ?"], 11);
        let workflows = listing_sql("workflows", &["tenant_id = ?"], 11);
        let cases: [(&str, &[&str], bool); 8] = [
            (USERS_BY_HANDLE, &["users_by_upn", "users_by_mail"], false),
            (GROUPS_BY_NAME, &["groups_by_name"], false),
            (GROUPS_OF_USER, &["memberships_by_member"], false),
            (&by_user, &["actions_by_user"], true),
            (&by_status, &["actions_by_status"], true),
            (&all, &["actions_by_time"], true),
            (&workflows, &["workflows_by_time"], true),
            (DUE, &["workflows_due"], true),
        ];
        for (sql, indexes, ordered_by_index) in cases {
            let p = plan(&c, sql);
            for index in indexes {
                assert!(p.contains(index), "{index} not used:\n{p}\n{sql}");
            }
            if ordered_by_index {
                assert!(
                    !p.contains("TEMP B-TREE"),
                    "sorts instead of reading in index order:\n{p}"
                );
            }
        }
    }

    #[test]
    fn due_texts_sort_as_times_to_the_nanosecond() {
        let t = DateTime::from_timestamp(1_796_115_600, 0).unwrap();
        let later = t + chrono::Duration::nanoseconds(1);
        assert!(due_text(t) < due_text(later));
        assert!(due_text(later) < due_text(t + chrono::Duration::seconds(1)));
        assert_eq!(due_text(t).len(), due_text(later).len());
    }
}
