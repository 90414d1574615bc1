use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus,
};
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DynamoStore;
use crate::error::{AwsCallError, Class};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The service name in errors.
pub(crate) const SERVICE: &str = "dynamodb";
/// The listing index.
pub const GSI1: &str = "gsi1";
/// Partitions each tenant's listing of users, groups and edges is spread over.
pub const DEFAULT_LISTING_SHARDS: u32 = 8;
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Attempts for unprocessed batch keys and contended run updates.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// The condition of every versioned mirror put: an older (cycle, page) never overwrites a newer.
pub(crate) const VERSION_CONDITION: &str =
    "attribute_not_exists(pk) OR #cycle < :c OR (#cycle = :c AND #page < :p)";
/// DescribeTable polls while a new table (or its index) is being created: 100 ms, doubling up
/// to 5 s, 70 times (about five minutes; DynamoDB usually needs seconds).
const TABLE_ACTIVE_POLLS: u32 = 70;
const TABLE_ACTIVE_FIRST_DELAY: Duration = Duration::from_millis(100);
const TABLE_ACTIVE_MAX_DELAY: Duration = Duration::from_secs(5);

/// Throttling and server errors are worth another try; anything else is not. Shared by every
/// DynamoDB adapter module of this crate.
macro_rules! retryable {
    ($e:expr) => {
        if $e.is_provisioned_throughput_exceeded_exception()
            || $e.is_request_limit_exceeded()
            || $e.is_throttling_exception()
            || $e.is_internal_server_error()
        {
            Class::Retryable
        } else {
            Class::Permanent
        }
    };
}

/// As [`retryable`], with a failed condition classified apart.
macro_rules! conditional {
    ($e:expr) => {
        if $e.is_conditional_check_failed_exception() {
            Class::ConditionFailed
        } else {
            $crate::dynamo::retryable!($e)
        }
    };
}

pub(crate) use {conditional, retryable};

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(Box::new(e)))
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!("item lacks string {name}"))),
    }
}

pub(crate) fn get_n(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("item has a bad number {name}"))),
        _ => Err(StoreError::Corrupt(format!("item lacks number {name}"))),
    }
}

pub(crate) fn body<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, "body")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn tenant_pk(t: &TenantId) -> String {
    format!("T#{t}")
}

pub(crate) fn key_item(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

impl DynamoStore {
    /// Create the table as infra/template.yaml declares it (tests and local setups; the
    /// deployed table comes from the template), and wait until it and its index are ACTIVE:
    /// DynamoDB answers CreateTable at once with the table still CREATING, and refuses reads
    /// and writes until it is ACTIVE.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kt: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
        };
        let internal = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Internal(Box::new(e));
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key("gsi1pk", KeyType::Hash).map_err(internal)?)
            .key_schema(key("gsi1sk", KeyType::Range).map_err(internal)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(internal)?;
        // The outbound webhooks' sparse due index (outbound.rs): only pending deliveries.
        let due = GlobalSecondaryIndex::builder()
            .index_name(super::GSI2)
            .key_schema(key("gsi2pk", KeyType::Hash).map_err(internal)?)
            .key_schema(key("gsi2sk", KeyType::Range).map_err(internal)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes("endpoint")
                    .build(),
            )
            .build()
            .map_err(internal)?;
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(internal)?)
            .attribute_definitions(attr("sk").map_err(internal)?)
            .attribute_definitions(attr("gsi1pk").map_err(internal)?)
            .attribute_definitions(attr("gsi1sk").map_err(internal)?)
            .attribute_definitions(attr("gsi2pk").map_err(internal)?)
            .attribute_definitions(attr("gsi2sk").map_err(internal)?)
            .key_schema(key("pk", KeyType::Hash).map_err(internal)?)
            .key_schema(key("sk", KeyType::Range).map_err(internal)?)
            .global_secondary_indexes(gsi)
            .global_secondary_indexes(due)
            // The stream the publisher function derives change events from (stream.rs).
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(internal)?,
            )
            .send()
            .await
            .map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "CreateTable", e, |e| {
                    if e.is_internal_server_error() || e.is_limit_exceeded_exception() {
                        Class::Retryable
                    } else {
                        Class::Permanent
                    }
                })
                .into_store()
            })?;
        self.wait_until_active().await
    }

    /// Poll DescribeTable until the table and every global index are ACTIVE (bounded).
    async fn wait_until_active(&self) -> Result<(), StoreError> {
        let mut delay = TABLE_ACTIVE_FIRST_DELAY;
        for _ in 0..TABLE_ACTIVE_POLLS {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "DescribeTable", e, |e| {
                        if e.is_internal_server_error() {
                            Class::Retryable
                        } else {
                            Class::Permanent
                        }
                    })
                    .into_store()
                })?;
            let active = out.table.is_some_and(|t| {
                t.table_status == Some(TableStatus::Active)
                    && t.global_secondary_indexes
                        .unwrap_or_default()
                        .iter()
                        .all(|i| i.index_status == Some(IndexStatus::Active))
            });
            if active {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(TABLE_ACTIVE_MAX_DELAY);
        }
        Err(StoreError::Unavailable(
            format!(
                "table {} is still not ACTIVE after {TABLE_ACTIVE_POLLS} checks",
                self.table
            )
            .into(),
        ))
    }

    /// Conditional put: lands unless the condition fails. Returns whether it landed.
    pub(crate) async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        // `cycle` and `page` are DynamoDB reserved words (`body` is named the same way).
        if condition.contains("#cycle") {
            req = req.expression_attribute_names("#cycle", "cycle");
        }
        if condition.contains("#page") {
            req = req.expression_attribute_names("#page", "page");
        }
        if condition.contains("#body") {
            req = req.expression_attribute_names("#body", "body");
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => match AwsCallError::from_sdk(SERVICE, "PutItem", e, |e| conditional!(e)) {
                err if err.class == Class::ConditionFailed => Ok(false),
                err => Err(err.into_store()),
            },
        }
    }

    pub(crate) async fn get_item(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "GetItem", e, |e| retryable!(e)).into_store()
            })?;
        Ok(out.item)
    }

    /// Strongly consistent BatchGetItem of many keys (chunks of 100, unprocessed keys retried
    /// with backoff). Missing items are simply absent; order is not kept.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        let mut unique = keys;
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| key_item(pk.clone(), sk.clone()))
                .collect();
            let items = retry_unprocessed("BatchGetItem", keys, |pending| async move {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Internal(Box::new(e)))?;
                let res = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(|e| {
                        AwsCallError::from_sdk(SERVICE, "BatchGetItem", e, |e| retryable!(e))
                            .into_store()
                    })?;
                let items = res
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                let unprocessed = res
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|ka| ka.keys)
                    .unwrap_or_default();
                Ok((items, unprocessed))
            })
            .await?;
            out.extend(items);
        }
        Ok(out)
    }

    /// Query one index partition in key order: up to `limit` (gsi1sk, pk, sk) after `after`,
    /// and whether more may follow.
    pub(crate) async fn query_index(
        &self,
        gsi1pk: String,
        after: Option<&str>,
        limit: usize,
        forward: bool,
    ) -> Result<(Vec<(String, String, String)>, bool), StoreError> {
        let mut rows = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let want = limit.saturating_sub(rows.len()).max(1);
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .expression_attribute_values(":p", s(gsi1pk.clone()))
                .scan_index_forward(forward)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            // `after` in the direction read: above it forward, below it backward.
            let condition = match forward {
                true => "gsi1pk = :p AND gsi1sk > :a",
                false => "gsi1pk = :p AND gsi1sk < :a",
            };
            req = match after {
                Some(a) => req
                    .key_condition_expression(condition)
                    .expression_attribute_values(":a", s(a)),
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
                Some(k) if rows.len() < limit => start = Some(k),
                Some(_) => return Ok((rows, true)),
                None => return Ok((rows, false)),
            }
        }
    }

    /// Read items by key and decode them in the order of `keys`.
    pub(crate) async fn read_in_order<T: DeserializeOwned>(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<Vec<T>, StoreError> {
        let mut by_key: HashMap<(String, String), Item> = HashMap::new();
        for item in self.batch_get(keys.clone()).await? {
            let k = (
                get_s(&item, "pk")?.to_owned(),
                get_s(&item, "sk")?.to_owned(),
            );
            by_key.insert(k, item);
        }
        keys.iter()
            .filter_map(|k| by_key.get(k))
            .map(body)
            .collect()
    }
}

/// Send a batch call until DynamoDB has processed every element: `send` returns what it got
/// back and what came back unprocessed, which is sent again after a backoff (at most
/// [`MAX_ATTEMPTS`] calls).
pub(crate) async fn retry_unprocessed<T, R, F, Fut>(
    call: &str,
    mut pending: Vec<T>,
    mut send: F,
) -> Result<Vec<R>, StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<R>, Vec<T>), StoreError>>,
{
    let mut out = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        if attempt >= MAX_ATTEMPTS {
            return Err(StoreError::Unavailable(
                format!("{call} kept returning unprocessed items").into(),
            ));
        }
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        attempt += 1;
        let (got, rest) = send(std::mem::take(&mut pending)).await?;
        out.extend(got);
        pending = rest;
    }
    Ok(out)
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25u64.saturating_mul(1 << attempt.min(6)))
}

pub(crate) fn epoch_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}
