//! The HR webhooks' stores on SQLite (tables `hr_endpoints`, `hr_deliveries`, `hr_reviews`,
//! `hr_people` and the `employeeId` index of migration 6 in schema.rs): the endpoint records,
//! the delivery log, the review list, what we keep per HR person, and the directory lookup by
//! employee id.
//!
//! * The records are JSON rows with a revision (rows.rs: create-or-return, conditional
//!   update, newest-first pages).
//! * Endpoint records hold vault names only: the signing secrets and API credentials live in
//!   the vault.
//! * The employee id lookup reads an expression index over the mirror's user rows
//!   (`lower(trim(employee_id))`), so it never walks the mirror. `lower` folds ASCII only and
//!   `trim` strips spaces, like the in-memory reference for the ids HR systems use.

use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, StoredUser, TenantId};
use entra_sync_core::ports::Listing;
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::{Delivery, delivery_listing_key};
use entra_sync_core::webhooks::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use entra_sync_core::webhooks::mapping::HrPerson;
use entra_sync_core::webhooks::ports::{DeliveryStore, EmployeeLookup, HrPersonStore, ReviewStore};
use entra_sync_core::webhooks::review::{ReviewItem, ReviewStatus, review_listing_key};
use rusqlite::types::Value;

use crate::sqlite::rows::{Row, int, text};
use crate::sqlite::{SqliteStore, from_json, internal, to_json};

fn endpoint_key(k: &EndpointKey) -> Vec<(&'static str, Value)> {
    vec![
        ("account_id", text(k.account_id.0.clone())),
        ("source", text(k.source.as_str())),
    ]
}

fn endpoint_row(e: &WebhookEndpoint) -> Result<Row, StoreError> {
    Ok(Row {
        table: "hr_endpoints",
        key: endpoint_key(&e.key),
        columns: vec![("rev", int(e.rev)), ("body", text(to_json(e)?))],
    })
}

#[async_trait]
impl WebhookEndpointStore for SqliteStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.create_row(endpoint_row(endpoint)?).await
    }

    async fn get_endpoint(&self, key: &EndpointKey) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.get_row("hr_endpoints", endpoint_key(key)).await
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let what = format!("endpoint {}", endpoint.key);
        self.update_row(endpoint_row(endpoint)?, expected_rev, what)
            .await
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let account = account.0.clone();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM hr_endpoints WHERE account_id = ?1 ORDER BY source",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map([account], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            rows.map(|b| from_json(&b.map_err(internal)?)).collect()
        })
        .await
    }
}

fn delivery_key(endpoint: &EndpointKey, id: &str) -> Vec<(&'static str, Value)> {
    let mut k = endpoint_key(endpoint);
    k.push(("id", text(id)));
    k
}

fn delivery_row(d: &Delivery) -> Result<Row, StoreError> {
    Ok(Row {
        table: "hr_deliveries",
        key: delivery_key(&d.endpoint, &d.id),
        columns: vec![
            ("listing_key", text(delivery_listing_key(d))),
            ("rev", int(d.rev)),
            ("body", text(to_json(d)?)),
        ],
    })
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn create_delivery(&self, delivery: &Delivery) -> Result<Option<Delivery>, StoreError> {
        self.create_row(delivery_row(delivery)?).await
    }

    async fn get_delivery(
        &self,
        endpoint: &EndpointKey,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        self.get_row("hr_deliveries", delivery_key(endpoint, id))
            .await
    }

    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let what = format!("delivery {}", delivery.id);
        self.update_row(delivery_row(delivery)?, expected_rev, what)
            .await
    }

    async fn list_deliveries(
        &self,
        endpoint: &EndpointKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Delivery>, StoreError> {
        let conditions = vec![
            ("account_id =", text(endpoint.account_id.0.clone())),
            ("source =", text(endpoint.source.as_str())),
        ];
        self.newest_first("hr_deliveries", conditions, after, limit)
            .await
    }
}

fn review_key(tenant: &TenantId, id: &str) -> Vec<(&'static str, Value)> {
    vec![("tenant_id", text(tenant.as_str())), ("id", text(id))]
}

fn review_row(r: &ReviewItem) -> Result<Row, StoreError> {
    Ok(Row {
        table: "hr_reviews",
        key: review_key(&r.tenant_id, &r.id),
        columns: vec![
            ("listing_key", text(review_listing_key(r))),
            (
                "open",
                Value::Integer(i64::from(r.status == ReviewStatus::Open)),
            ),
            ("rev", int(r.rev)),
            ("body", text(to_json(r)?)),
        ],
    })
}

#[async_trait]
impl ReviewStore for SqliteStore {
    async fn create_review(&self, item: &ReviewItem) -> Result<Option<ReviewItem>, StoreError> {
        self.create_row(review_row(item)?).await
    }

    async fn get_review(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ReviewItem>, StoreError> {
        self.get_row("hr_reviews", review_key(tenant, id)).await
    }

    async fn update_review(&self, item: &ReviewItem, expected_rev: u64) -> Result<(), StoreError> {
        let what = format!("review {}", item.id);
        self.update_row(review_row(item)?, expected_rev, what).await
    }

    async fn list_reviews(
        &self,
        tenant: &TenantId,
        open_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ReviewItem>, StoreError> {
        let mut conditions = vec![("tenant_id =", text(tenant.as_str()))];
        if open_only {
            conditions.push(("open =", Value::Integer(1)));
        }
        self.newest_first("hr_reviews", conditions, after, limit)
            .await
    }
}

fn person_key(tenant: &TenantId, source: Source, provider_id: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("tenant_id", text(tenant.as_str())),
        ("source", text(source.as_str())),
        ("provider_id", text(provider_id)),
    ]
}

#[async_trait]
impl HrPersonStore for SqliteStore {
    async fn get_person(
        &self,
        tenant: &TenantId,
        source: Source,
        provider_id: &str,
    ) -> Result<Option<HrPerson>, StoreError> {
        self.get_row("hr_people", person_key(tenant, source, provider_id))
            .await
    }

    async fn put_person(&self, person: &HrPerson, expected_rev: u64) -> Result<(), StoreError> {
        let row = Row {
            table: "hr_people",
            key: person_key(&person.tenant_id, person.source, &person.provider_id),
            columns: vec![("rev", int(person.rev)), ("body", text(to_json(person)?))],
        };
        let what = format!("hr person {}", person.provider_id);
        if expected_rev == 0 {
            // A create: only when no record is stored.
            return match self.create_row::<HrPerson>(row).await? {
                None => Ok(()),
                Some(_) => Err(StoreError::Conflict(what)),
            };
        }
        self.update_row(row, expected_rev, what).await
    }
}

/// The lookup's query; it repeats the indexed expression of migration 6 exactly, so SQLite
/// answers it from the index.
const USERS_BY_EMPLOYEE_ID: &str = "SELECT body FROM users WHERE tenant_id = ?1
       AND lower(trim(json_extract(body, '$.user.employee_id'))) = ?2";

#[async_trait]
impl EmployeeLookup for SqliteStore {
    async fn users_by_employee_id(
        &self,
        tenant: &TenantId,
        employee_id: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let want = employee_id.trim().to_ascii_lowercase();
        if want.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tenant.as_str().to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(USERS_BY_EMPLOYEE_ID).map_err(internal)?;
            let rows = stmt
                .query_map([tenant, want], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            rows.map(|b| from_json(&b.map_err(internal)?)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use entra_sync_core::model::{DirectoryUser, StoredUser, Version};
    use entra_sync_core::ports::MirrorStore;
    use entra_sync_core::webhooks::contract;
    use rusqlite::params_from_iter;

    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn the_sqlite_adapters_keep_the_webhook_contract() {
        let (_d, s) = store();
        contract::endpoints(&s).await;
        contract::deliveries(&s).await;
        contract::reviews(&s).await;
        contract::people(&s).await;
    }

    fn user(id: &str, employee_id: Option<&str>) -> StoredUser {
        StoredUser {
            user: DirectoryUser {
                id: id.into(),
                employee_id: employee_id.map(str::to_owned),
                ..Default::default()
            },
            presence: entra_sync_core::model::Presence::Present,
            version: Version::new(1, 0),
        }
    }

    #[tokio::test]
    async fn employee_ids_are_found_case_insensitively_per_tenant() {
        let (_d, s) = store();
        let t = TenantId::new("t-e");
        let other = TenantId::new("t-f");
        s.put_users(
            &t,
            &[
                user("u1", Some("E100")),
                user("u2", Some(" e100 ")),
                user("u3", Some("E1000")),
                user("u4", None),
            ],
        )
        .await
        .unwrap();
        s.put_users(&other, &[user("u9", Some("E100"))])
            .await
            .unwrap();
        let mut ids: Vec<String> = s
            .users_by_employee_id(&t, "e100")
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.user.id)
            .collect();
        ids.sort();
        assert_eq!(ids, vec!["u1", "u2"]);
        assert!(s.users_by_employee_id(&t, "E2").await.unwrap().is_empty());
        assert!(s.users_by_employee_id(&t, " ").await.unwrap().is_empty());
    }

    /// The lookup and the listings read their indexes, never walk a tenant's rows (a query
    /// that stops repeating the indexed expression would fall back silently).
    #[test]
    fn the_employee_lookup_and_listings_use_their_indexes() {
        let (dir, s) = store();
        drop(s);
        let c = crate::sqlite::open_database(&dir.path().join("store.db")).unwrap();
        let plan = |sql: &str| {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            stmt.query_map(params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("\n")
        };
        let p = plan(USERS_BY_EMPLOYEE_ID);
        assert!(p.contains("users_by_employee_id"), "{p}");
        let p = plan(
            "SELECT listing_key, body FROM hr_reviews WHERE tenant_id = ?1 AND open = ?2 \
             ORDER BY listing_key DESC LIMIT 10",
        );
        assert!(
            p.contains("hr_reviews_open") && !p.contains("TEMP B-TREE"),
            "{p}"
        );
        let p = plan(
            "SELECT listing_key, body FROM hr_deliveries WHERE account_id = ?1 AND source = ?2 \
             AND listing_key < ?3 ORDER BY listing_key DESC LIMIT 10",
        );
        assert!(
            p.contains("hr_deliveries_by_time") && !p.contains("TEMP B-TREE"),
            "{p}"
        );
    }

    #[tokio::test]
    async fn the_contract_holds_after_reopening_the_file() {
        let (dir, s) = store();
        contract::endpoints(&s).await;
        drop(s);
        let again = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        let key = EndpointKey {
            account_id: AccountId("acct-c1".into()),
            source: Source::Standard,
        };
        assert!(!again.get_endpoint(&key).await.unwrap().unwrap().enabled);
    }
}
