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
//! * Both are JSON rows with a revision (rows.rs): creates return the stored row when it was
//!   there, updates are conditional on `rev`.
//! * Cursors are the listing key of a page's last item (opaque to callers).
//! * Every create and update records its `action.updated` / `workflow.updated` event (the
//!   core's pure functions of the stored row before and the new one) in the outbox, in the
//!   write's transaction: a committed status change always has its event.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use entra_sync_core::actions::ports::{
    ActionFilter, ActionStore, WorkflowStore, action_listing_key, workflow_listing_key,
};
use entra_sync_core::actions::{ActionRecord, Workflow, WorkflowStatus};
use entra_sync_core::committed::{action_event, workflow_event};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::Listing;
use rusqlite::params;
use rusqlite::types::Value;

use crate::sqlite::rows::{Row, int, text};
use crate::sqlite::{SqliteStore, internal, to_i64, to_json};

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

fn action_key(tenant: &TenantId, id: &str) -> Vec<(&'static str, Value)> {
    vec![("tenant_id", text(tenant.as_str())), ("id", text(id))]
}

fn action_row(r: &ActionRecord) -> Result<Row, StoreError> {
    Ok(Row {
        table: "actions",
        key: action_key(&r.tenant_id, &r.id),
        columns: vec![
            ("listing_key", text(action_listing_key(r))),
            ("user_id", text(r.target.user_id.clone())),
            ("status", text(r.status.as_str())),
            ("rev", int(r.rev)),
            ("body", text(to_json(r)?)),
        ],
    })
}

fn workflow_row(w: &Workflow) -> Result<Row, StoreError> {
    Ok(Row {
        table: "workflows",
        key: action_key(&w.tenant_id, &w.id),
        columns: vec![
            ("listing_key", text(workflow_listing_key(w))),
            ("due_at", due_of(w).map_or(Value::Null, Value::Text)),
            ("rev", int(w.rev)),
            ("body", text(to_json(w)?)),
        ],
    })
}

#[async_trait]
impl ActionStore for SqliteStore {
    async fn create_action(
        &self,
        record: &ActionRecord,
    ) -> Result<Option<ActionRecord>, StoreError> {
        let derived = record.clone();
        self.create_row_deriving(action_row(record)?, move || {
            action_event(None, &derived).into_iter().collect()
        })
        .await
    }

    async fn get_action(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ActionRecord>, StoreError> {
        self.get_row("actions", action_key(tenant, id)).await
    }

    async fn update_action(
        &self,
        record: &ActionRecord,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let what = format!("action {}", record.id);
        let derived = record.clone();
        self.update_row_deriving(action_row(record)?, expected_rev, what, move |before| {
            action_event(before, &derived).into_iter().collect()
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
        let mut conditions = vec![("tenant_id =", text(tenant.as_str()))];
        if let Some(u) = &filter.user_id {
            conditions.push(("user_id =", text(u.clone())));
        }
        if let Some(s) = &filter.status {
            conditions.push(("status =", text(s.clone())));
        }
        self.newest_first("actions", conditions, after, limit).await
    }
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn create_workflow(&self, workflow: &Workflow) -> Result<Option<Workflow>, StoreError> {
        let derived = workflow.clone();
        self.create_row_deriving(workflow_row(workflow)?, move || {
            workflow_event(None, &derived).into_iter().collect()
        })
        .await
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        self.get_row("workflows", action_key(tenant, id)).await
    }

    async fn update_workflow(
        &self,
        workflow: &Workflow,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let what = format!("workflow {}", workflow.id);
        let derived = workflow.clone();
        self.update_row_deriving(workflow_row(workflow)?, expected_rev, what, move |before| {
            workflow_event(before, &derived).into_iter().collect()
        })
        .await
    }

    async fn list_workflows(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Workflow>, StoreError> {
        let conditions = vec![("tenant_id =", text(tenant.as_str()))];
        self.newest_first("workflows", conditions, after, limit)
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
    use crate::sqlite::rows::listing_sql;
    use rusqlite::params_from_iter;

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
            &["tenant_id =", "user_id =", "listing_key <"],
            11,
        );
        let by_status = listing_sql("actions", &["tenant_id =", "status ="], 11);
        let all = listing_sql("actions", &["tenant_id =", "listing_key <"], 11);
        let workflows = listing_sql("workflows", &["tenant_id ="], 11);
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
