//! The host product's users on SQLite (table `local_users`, see migration 3 in schema.rs), with
//! indexes on (account, email) and (link tenant, link object).
//!
//! * `put_local_users` upserts every user in one transaction. The email and link are columns of
//!   the user's row, so an upsert that changes them moves the user in the indexes as well: no
//!   index entry outlives the value it was made from.

use std::collections::BTreeSet;

use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{Listing, LocalUserStore};
use entra_sync_core::provision::LocalUser;
use entra_sync_core::services::stamp_host_users;
use rusqlite::{OptionalExtension, params};

use crate::sqlite::{SqliteStore, from_json, internal, to_json};

/// Distinct keys, so a repeated key neither costs a second lookup nor returns a user twice.
fn distinct(keys: &[String]) -> Vec<String> {
    keys.iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[async_trait]
impl LocalUserStore for SqliteStore {
    async fn get_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Option<LocalUser>, StoreError> {
        let a = account.0.clone();
        let id = local_id.to_owned();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM local_users WHERE account_id = ?1 AND local_id = ?2",
                    params![a, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            body.as_deref().map(from_json).transpose()
        })
        .await
    }

    async fn find_by_emails(
        &self,
        account: &AccountId,
        emails: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        let a = account.0.clone();
        let emails = distinct(emails);
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    // No ORDER BY: with one, SQLite's planner walks the primary key of the
                    // whole account to skip a sort (a full scan per email; 27 s for a
                    // 10,000-user projection). The email index finds the few rows directly.
                    "SELECT body FROM local_users INDEXED BY local_users_email
                     WHERE account_id = ?1 AND email = ?2",
                )
                .map_err(internal)?;
            let mut out = Vec::new();
            for e in &emails {
                let rows = stmt
                    .query_map(params![a, e], |r| r.get::<_, String>(0))
                    .map_err(internal)?;
                for body in rows {
                    out.push(from_json(&body.map_err(internal)?)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find_linked(
        &self,
        tenant: &TenantId,
        object_ids: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        let t = tenant.as_str().to_owned();
        let ids = distinct(object_ids);
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM local_users WHERE link_tenant = ?1 AND link_object = ?2
                     ORDER BY account_id, local_id",
                )
                .map_err(internal)?;
            let mut out = Vec::new();
            for id in &ids {
                let rows = stmt
                    .query_map(params![t, id], |r| r.get::<_, String>(0))
                    .map_err(internal)?;
                for body in rows {
                    out.push(from_json(&body.map_err(internal)?)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_local_users(&self, users: &[LocalUser]) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let users = users.to_vec();
        self.with(move |c| {
            let tx = c.transaction().map_err(internal)?;
            let events = {
                // The stored users first: each write gets the next revision and the `user.*`
                // event of its change, recorded in this transaction (see outbox.rs).
                let mut read = tx
                    .prepare_cached(
                        "SELECT body FROM local_users WHERE account_id = ?1 AND local_id = ?2",
                    )
                    .map_err(internal)?;
                let mut stored = Vec::with_capacity(users.len());
                for u in &users {
                    let body: Option<String> = read
                        .query_row(params![u.account_id.0, u.local_id], |r| r.get(0))
                        .optional()
                        .map_err(internal)?;
                    stored.push(body.as_deref().map(from_json).transpose()?);
                }
                let (users, events) = stamp_host_users(&stored, &users);
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO local_users
                           (account_id, local_id, email, link_tenant, link_object, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (account_id, local_id) DO UPDATE
                         SET email = excluded.email, link_tenant = excluded.link_tenant,
                             link_object = excluded.link_object, body = excluded.body",
                    )
                    .map_err(internal)?;
                for u in &users {
                    stmt.execute(params![
                        u.account_id.0,
                        u.local_id,
                        u.email,
                        u.link.as_ref().map(|l| l.tenant_id.as_str().to_owned()),
                        u.link.as_ref().map(|l| l.object_id.clone()),
                        to_json(u)?
                    ])
                    .map_err(internal)?;
                }
                events
            };
            super::outbox::record(&tx, events, chrono::Utc::now())?;
            tx.commit().map_err(internal)
        })
        .await
    }

    async fn list_local_users(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<LocalUser>, StoreError> {
        self.list_rows_in(
            "local_users",
            "account_id",
            account.0.clone(),
            "local_id",
            after,
            limit,
        )
        .await
    }
}
