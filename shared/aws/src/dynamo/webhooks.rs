//! The HR webhook store ports on the DynamoDB table: [`WebhookEndpointStore`],
//! [`DeliveryStore`], [`ReviewStore`], [`HrPersonStore`] and [`EmployeeLookup`]
//! (docs/data-model.md, "HR webhooks", has the items and every access pattern).
//!
//! * An endpoint is `A#<account>#HOOKS` / `EP#<source>` (`account`, `rev`, body): the account
//!   leads, because the webhook route knows only the account and the source of the path; an
//!   account's endpoints (at most one per source) share one partition and are listed with one
//!   consistent Query. The record names its signing secrets in the vault (Secrets Manager) and
//!   never holds their values.
//! * A delivery is `A#<account>#HOOK#<source>#D#<id>` / `DELIVERY` (`rev`, body) with the
//!   `gsi1` entry `A#<account>#HOOK#<source>#DELIVERIES` / listing key: the endpoint's log,
//!   newest first.
//! * A review item is `T#<tenant>#REVIEW#<id>` / `REVIEW` (`rev`, body); its `gsi1` entry is
//!   `T#<tenant>#REVIEWS#OPEN` while open and `T#<tenant>#REVIEWS#CLOSED` once resolved or
//!   dismissed, so the open list is one index partition and the full list merges the two.
//! * An HR person is `T#<tenant>#HR#<source>#<HR id>` / `PERSON` (`rev`, body).
//! * Creates are `attribute_not_exists(pk)` with `ReturnValuesOnConditionCheckFailure
//!   ALL_OLD`: of concurrent creates exactly one lands, and the others get the stored record
//!   back at no extra read ("stored once"). Updates are conditional on the `rev` read.
//! * Listings read keys from `gsi1` and the records back with consistent reads; the record
//!   decides (an open listing keeps only items that are open as stored).
//! * The employee-id lookup reads the handle items that the mirror's user put path keeps
//!   (`T#<tenant>#UE#<employee id>` / `U#<user id>`, see lookup.rs) and keeps only users whose
//!   stored `employeeId` still matches.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, StoredUser, TenantId};
use entra_sync_core::ports::{Listing, MirrorStore};
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::{Delivery, delivery_listing_key};
use entra_sync_core::webhooks::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use entra_sync_core::webhooks::mapping::HrPerson;
use entra_sync_core::webhooks::ports::{DeliveryStore, EmployeeLookup, HrPersonStore, ReviewStore};
use entra_sync_core::webhooks::review::{ReviewItem, ReviewStatus, review_listing_key};
use serde::de::DeserializeOwned;

use super::actions::Put;
use super::lookup::{employee_handle_pk, employee_key};
use super::{Item, SERVICE};
use crate::dynamo::{DynamoStore, GSI1, body, get_s, n, retryable, s, to_json};
use crate::error::{AwsCallError, Class};

const ENDPOINT_SK_PREFIX: &str = "EP#";
const DELIVERY_SK: &str = "DELIVERY";
const REVIEW_SK: &str = "REVIEW";
const PERSON_SK: &str = "PERSON";
/// Keys read per index query page.
const INDEX_PAGE: usize = 200;

fn endpoints_pk(account: &AccountId) -> String {
    format!("A#{account}#HOOKS")
}

fn endpoint_sk(source: Source) -> String {
    format!("{ENDPOINT_SK_PREFIX}{source}")
}

fn hook_prefix(e: &EndpointKey) -> String {
    format!("A#{}#HOOK#{}", e.account_id, e.source)
}

fn delivery_pk(e: &EndpointKey, id: &str) -> String {
    format!("{}#D#{id}", hook_prefix(e))
}

fn deliveries_partition(e: &EndpointKey) -> String {
    format!("{}#DELIVERIES", hook_prefix(e))
}

fn review_pk(t: &TenantId, id: &str) -> String {
    format!("T#{t}#REVIEW#{id}")
}

fn reviews_partition(t: &TenantId, open: bool) -> String {
    match open {
        true => format!("T#{t}#REVIEWS#OPEN"),
        false => format!("T#{t}#REVIEWS#CLOSED"),
    }
}

fn person_pk(t: &TenantId, source: Source, provider_id: &str) -> String {
    format!("T#{t}#HR#{source}#{provider_id}")
}

fn decode<T: DeserializeOwned>(item: Option<&Item>) -> Result<Option<T>, StoreError> {
    item.map(body).transpose()
}

fn endpoint_item(e: &WebhookEndpoint) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(endpoints_pk(&e.key.account_id))),
        ("sk".to_owned(), s(endpoint_sk(e.key.source))),
        ("account".to_owned(), s(e.key.account_id.0.clone())),
        ("tenant".to_owned(), s(e.tenant_id.as_str())),
        ("rev".to_owned(), n(e.rev)),
        ("body".to_owned(), s(to_json(e)?)),
    ]))
}

fn delivery_item(d: &Delivery) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(delivery_pk(&d.endpoint, &d.id))),
        ("sk".to_owned(), s(DELIVERY_SK)),
        ("account".to_owned(), s(d.endpoint.account_id.0.clone())),
        ("tenant".to_owned(), s(d.tenant_id.as_str())),
        ("rev".to_owned(), n(d.rev)),
        ("body".to_owned(), s(to_json(d)?)),
        ("gsi1pk".to_owned(), s(deliveries_partition(&d.endpoint))),
        ("gsi1sk".to_owned(), s(delivery_listing_key(d))),
    ]))
}

fn review_item(r: &ReviewItem) -> Result<Item, StoreError> {
    let open = r.status == ReviewStatus::Open;
    Ok(HashMap::from([
        ("pk".to_owned(), s(review_pk(&r.tenant_id, &r.id))),
        ("sk".to_owned(), s(REVIEW_SK)),
        ("tenant".to_owned(), s(r.tenant_id.as_str())),
        ("rev".to_owned(), n(r.rev)),
        ("body".to_owned(), s(to_json(r)?)),
        (
            "gsi1pk".to_owned(),
            s(reviews_partition(&r.tenant_id, open)),
        ),
        ("gsi1sk".to_owned(), s(review_listing_key(r))),
    ]))
}

fn person_item(p: &HrPerson) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (
            "pk".to_owned(),
            s(person_pk(&p.tenant_id, p.source, &p.provider_id)),
        ),
        ("sk".to_owned(), s(PERSON_SK)),
        ("tenant".to_owned(), s(p.tenant_id.as_str())),
        ("rev".to_owned(), n(p.rev)),
        ("body".to_owned(), s(to_json(p)?)),
    ]))
}

/// One row of a `gsi1` partition: (listing key, pk, sk).
type IndexRow = (String, String, String);

impl DynamoStore {
    /// Create unless the key exists: `None` when it landed, else the stored record.
    async fn create_once<T: DeserializeOwned>(
        &self,
        item: Item,
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, StoreError> {
        match self
            .put_returning(item, "attribute_not_exists(pk)", vec![])
            .await?
        {
            Put::Landed { .. } => Ok(None),
            Put::Refused { stored } => match decode(stored.as_ref())? {
                Some(r) => Ok(Some(r)),
                // The condition failed yet nothing is stored: only a concurrent delete could
                // do that, and nothing deletes these records.
                None => Err(StoreError::Conflict(what())),
            },
        }
    }

    /// Replace on the condition that the stored `rev` is `expected`; else `Conflict`.
    async fn replace_at_rev(
        &self,
        item: Item,
        expected: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        match self
            .put_returning(item, "rev = :e", vec![(":e", n(expected))])
            .await?
        {
            Put::Landed { .. } => Ok(()),
            Put::Refused { .. } => Err(StoreError::Conflict(what())),
        }
    }

    /// Up to `limit` rows of one `gsi1` partition, newest (highest listing key) first, below
    /// `below`.
    async fn index_desc(
        &self,
        partition: String,
        below: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        let mut rows = Vec::new();
        let mut start: Option<Item> = None;
        while rows.len() < limit {
            let want = (limit - rows.len()).min(INDEX_PAGE);
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .expression_attribute_values(":p", s(partition.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            req = match below {
                Some(b) => req
                    .key_condition_expression("gsi1pk = :p AND gsi1sk < :b")
                    .expression_attribute_values(":b", s(b)),
                None => req.key_condition_expression("gsi1pk = :p"),
            };
            let out = req.send().await.map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
            })?;
            for item in out.items.unwrap_or_default() {
                rows.push((
                    get_s(&item, "gsi1sk")?.to_owned(),
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                ));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(rows)
    }

    /// Every item of one table partition (consistent).
    async fn partition_items(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
                })?;
            out.extend(res.items.unwrap_or_default());
            match res.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

/// The page of `limit` out of `found` (listing key, record), which holds up to `limit + 1`
/// newest-first records: `next` only when more follow.
fn page<T>(mut found: Vec<(String, T)>, limit: usize) -> Listing<T> {
    let more = found.len() > limit;
    found.truncate(limit);
    let next = match more {
        true => found.last().map(|(k, _)| k.clone()),
        false => None,
    };
    Listing {
        items: found.into_iter().map(|(_, r)| r).collect(),
        next,
    }
}

#[async_trait]
impl WebhookEndpointStore for DynamoStore {
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.create_once(endpoint_item(endpoint)?, || {
            format!("webhook endpoint {}", endpoint.key)
        })
        .await
    }

    async fn get_endpoint(&self, key: &EndpointKey) -> Result<Option<WebhookEndpoint>, StoreError> {
        let item = self
            .get_item(endpoints_pk(&key.account_id), endpoint_sk(key.source))
            .await?;
        decode(item.as_ref())
    }

    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        self.replace_at_rev(endpoint_item(endpoint)?, expected_rev, || {
            format!("webhook endpoint {}", endpoint.key)
        })
        .await
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let items = self.partition_items(endpoints_pk(account)).await?;
        items
            .iter()
            .filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with(ENDPOINT_SK_PREFIX)))
            .map(body)
            .collect()
    }
}

#[async_trait]
impl DeliveryStore for DynamoStore {
    async fn create_delivery(&self, delivery: &Delivery) -> Result<Option<Delivery>, StoreError> {
        self.create_once(delivery_item(delivery)?, || {
            format!("delivery {}", delivery.id)
        })
        .await
    }

    async fn get_delivery(
        &self,
        endpoint: &EndpointKey,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let item = self
            .get_item(delivery_pk(endpoint, id), DELIVERY_SK.to_owned())
            .await?;
        decode(item.as_ref())
    }

    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        self.replace_at_rev(delivery_item(delivery)?, expected_rev, || {
            format!("delivery {}", delivery.id)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: &EndpointKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Delivery>, StoreError> {
        let limit = limit.max(1);
        let rows = self
            .index_desc(deliveries_partition(endpoint), after, limit + 1)
            .await?;
        let keys: Vec<(String, String)> = rows
            .iter()
            .map(|(_, pk, sk)| (pk.clone(), sk.clone()))
            .collect();
        let records: Vec<Delivery> = self.read_in_order(keys).await?;
        let found = records
            .into_iter()
            .map(|d| (delivery_listing_key(&d), d))
            .collect();
        Ok(page(found, limit))
    }
}

#[async_trait]
impl ReviewStore for DynamoStore {
    async fn create_review(&self, item: &ReviewItem) -> Result<Option<ReviewItem>, StoreError> {
        self.create_once(review_item(item)?, || format!("review {}", item.id))
            .await
    }

    async fn get_review(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ReviewItem>, StoreError> {
        let item = self
            .get_item(review_pk(tenant, id), REVIEW_SK.to_owned())
            .await?;
        decode(item.as_ref())
    }

    async fn update_review(&self, item: &ReviewItem, expected_rev: u64) -> Result<(), StoreError> {
        self.replace_at_rev(review_item(item)?, expected_rev, || {
            format!("review {}", item.id)
        })
        .await
    }

    async fn list_reviews(
        &self,
        tenant: &TenantId,
        open_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ReviewItem>, StoreError> {
        let limit = limit.max(1);
        let want = limit + 1;
        let mut found: Vec<(String, ReviewItem)> = Vec::new();
        let mut below = after.map(str::to_owned);
        // Read index pages until `want` records qualify or the partitions end: the index is
        // eventually consistent, so the records read back decide (an item resolved a moment
        // ago may still be in the open partition, and is left out).
        loop {
            let mut rows = self
                .index_desc(reviews_partition(tenant, true), below.as_deref(), want)
                .await?;
            if !open_only {
                rows.extend(
                    self.index_desc(reviews_partition(tenant, false), below.as_deref(), want)
                        .await?,
                );
            }
            // Newest first across both partitions; an item moving between them counts once.
            let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
            for (k, pk, sk) in rows {
                merged.insert(k, (pk, sk));
            }
            let batch: Vec<(String, (String, String))> =
                merged.into_iter().rev().take(want - found.len()).collect();
            let exhausted = batch.len() < want - found.len();
            let Some(last) = batch.last().map(|(k, _)| k.clone()) else {
                break;
            };
            let records: Vec<ReviewItem> = self
                .read_in_order(batch.into_iter().map(|(_, key)| key).collect())
                .await?;
            found.extend(
                records
                    .into_iter()
                    .filter(|r| !open_only || r.status == ReviewStatus::Open)
                    .map(|r| (review_listing_key(&r), r)),
            );
            if exhausted || found.len() >= want {
                break;
            }
            below = Some(last);
        }
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found.dedup_by(|a, b| a.0 == b.0);
        Ok(page(found, limit))
    }
}

#[async_trait]
impl HrPersonStore for DynamoStore {
    async fn get_person(
        &self,
        tenant: &TenantId,
        source: Source,
        provider_id: &str,
    ) -> Result<Option<HrPerson>, StoreError> {
        let item = self
            .get_item(person_pk(tenant, source, provider_id), PERSON_SK.to_owned())
            .await?;
        decode(item.as_ref())
    }

    async fn put_person(&self, person: &HrPerson, expected_rev: u64) -> Result<(), StoreError> {
        // `expected_rev` 0 creates (or replaces a record stored at rev 0, as the reference
        // adapter does); any other value replaces exactly that stored revision.
        let condition = match expected_rev {
            0 => "attribute_not_exists(pk) OR rev = :e",
            _ => "rev = :e",
        };
        match self
            .put_returning(
                person_item(person)?,
                condition,
                vec![(":e", n(expected_rev))],
            )
            .await?
        {
            Put::Landed { .. } => Ok(()),
            Put::Refused { .. } => Err(StoreError::Conflict(format!(
                "hr person {}",
                person.provider_id
            ))),
        }
    }
}

#[async_trait]
impl EmployeeLookup for DynamoStore {
    async fn users_by_employee_id(
        &self,
        tenant: &TenantId,
        employee_id: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let Some(key) = employee_key(employee_id) else {
            return Ok(Vec::new());
        };
        let entries = self
            .partition_items(employee_handle_pk(tenant, &key))
            .await?;
        let ids = entries
            .iter()
            .map(|e| get_s(e, "user_id").map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let want = employee_id.trim();
        let mut users: Vec<StoredUser> = self
            .get_users(tenant, &ids)
            .await?
            .into_iter()
            .filter(|u| {
                u.user
                    .employee_id
                    .as_deref()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(want))
            })
            .collect();
        users.sort_by(|a, b| a.user.id.cmp(&b.user.id));
        Ok(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_lead_with_the_account_or_the_tenant_they_belong_to() {
        let e = EndpointKey {
            account_id: AccountId("acct-1".into()),
            source: Source::HiBob,
        };
        let t = TenantId::new("t1");
        assert_eq!(endpoints_pk(&e.account_id), "A#acct-1#HOOKS");
        assert_eq!(endpoint_sk(Source::HiBob), "EP#hibob");
        assert_eq!(delivery_pk(&e, "d1"), "A#acct-1#HOOK#hibob#D#d1");
        assert_eq!(deliveries_partition(&e), "A#acct-1#HOOK#hibob#DELIVERIES");
        assert!(review_pk(&t, "r").starts_with("T#t1#"));
        assert!(reviews_partition(&t, true).starts_with("T#t1#"));
        assert_ne!(reviews_partition(&t, true), reviews_partition(&t, false));
        assert_eq!(person_pk(&t, Source::BambooHr, "42"), "T#t1#HR#bamboohr#42");
    }

    #[test]
    fn a_page_has_a_next_only_when_more_follow() {
        let rows = |n: usize| (0..n).map(|i| (format!("k{i}"), i)).collect::<Vec<_>>();
        let p = page(rows(3), 2);
        assert_eq!(p.items, vec![0, 1]);
        assert_eq!(p.next.as_deref(), Some("k1"));
        assert!(page(rows(2), 2).next.is_none());
    }
}
