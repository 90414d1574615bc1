//! Every store port on one DynamoDB table (single-table design; docs/data-model.md has the keys,
//! the index and every access pattern).
//!
//! * Keys are strings `pk`/`sk`; the tenant id leads every partition key (`T#<tenant>...`), and
//!   each user, group and group's edges have their own partition, so a large tenant's writes
//!   spread over many partitions.
//! * One sparse, KEYS_ONLY global index `gsi1` lists a tenant's users, groups and edges in key
//!   order (write-sharded: `T#<tenant>#USERS#<shard>`, merged on read), its runs by start time
//!   and the connections. Listings read the items themselves back from the table with strongly
//!   consistent reads, so a decision (the sweep) never rests on a lagging index projection.
//! * Mirror puts are conditional per item: `attribute_not_exists(pk) OR cycle < :c OR
//!   (cycle = :c AND page < :p)`, so an older (cycle, page) never overwrites a newer one.
//! * Cursors carry a `revision` for optimistic concurrency; the lease and the applied-page
//!   markers carry an `expires_at` TTL attribute.
//!
//! Items keep their core value as JSON in `body` (the encoding the SQLite store uses too), beside
//! the attributes that conditions and keys need.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, ScalarAttributeType,
    Select, TableStatus,
};
use chrono::{DateTime, Utc};
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::error::StoreError;
use entra_sync_core::memory::edge_listing_key;
use entra_sync_core::model::{
    Connection, StoredGroup, StoredMembership, StoredUser, Stream, TenantId, Version,
};
use entra_sync_core::ports::{
    ConnectionStore, CursorStore, LeaseStore, Listing, MirrorStore, Revision, RunStore,
};
use entra_sync_core::run::{RunUpdate, SyncRun};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AwsCallError, Class};

type Item = HashMap<String, AttributeValue>;

const SERVICE: &str = "dynamodb";
/// The listing index.
pub const GSI1: &str = "gsi1";
/// Partitions each tenant's listing of users, groups and edges is spread over.
pub const DEFAULT_LISTING_SHARDS: u32 = 8;
/// Parallel conditional puts per call.
const PUT_CONCURRENCY: usize = 16;
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Attempts for unprocessed batch keys and contended run updates.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// Applied-page markers outlive any round by far; TTL removes them afterwards.
const MARKER_TTL: chrono::Duration = chrono::Duration::days(30);
/// The lease item is removed by TTL a day after it expired (TTL deletes are lazy anyway; the
/// condition on `until_ms` is what decides).
const LEASE_TTL_SLACK: chrono::Duration = chrono::Duration::days(1);
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

/// FNV-1a: a stable shard for a listing key (not security relevant).
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(h % u64::from(shards.max(1))).unwrap_or(0)
}

/// The kinds of mirror item, with their key layout.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Group,
    Edge,
}

impl Kind {
    fn listing(self) -> &'static str {
        match self {
            Kind::User => "USERS",
            Kind::Group => "GROUPS",
            Kind::Edge => "EDGES",
        }
    }
}

pub(crate) fn tenant_pk(t: &TenantId) -> String {
    format!("T#{t}")
}

/// (pk, sk) of a mirror item; `key` is the user id, group id or "group/member" edge key.
fn mirror_key(t: &TenantId, kind: Kind, key: &str) -> (String, String) {
    match kind {
        Kind::User => (format!("T#{t}#U#{key}"), "USER".to_owned()),
        Kind::Group => (format!("T#{t}#G#{key}"), "GROUP".to_owned()),
        Kind::Edge => {
            let (g, m) = key.split_once('/').unwrap_or((key, ""));
            (format!("T#{t}#G#{g}"), format!("M#{m}"))
        }
    }
}

pub(crate) fn key_item(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Every store port on one DynamoDB table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    shards: u32,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            shards: DEFAULT_LISTING_SHARDS,
        }
    }

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
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(internal)?)
            .attribute_definitions(attr("sk").map_err(internal)?)
            .attribute_definitions(attr("gsi1pk").map_err(internal)?)
            .attribute_definitions(attr("gsi1sk").map_err(internal)?)
            .key_schema(key("pk", KeyType::Hash).map_err(internal)?)
            .key_schema(key("sk", KeyType::Range).map_err(internal)?)
            .global_secondary_indexes(gsi)
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
        // `cycle` and `page` are DynamoDB reserved words.
        if condition.contains("#cycle") {
            req = req.expression_attribute_names("#cycle", "cycle");
        }
        if condition.contains("#page") {
            req = req.expression_attribute_names("#page", "page");
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
            req = match after {
                Some(a) => req
                    .key_condition_expression("gsi1pk = :p AND gsi1sk > :a")
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

    /// A tenant's users, groups or edges in key order: the smallest `limit` keys after
    /// `after` from every shard, merged, then the items read back consistently.
    async fn list_mirror<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        kind: Kind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<T>, StoreError> {
        let limit = limit.max(1);
        let per_shard = futures::future::try_join_all((0..self.shards).map(|shard| {
            self.query_index(
                format!("T#{tenant}#{}#{shard}", kind.listing()),
                after,
                limit,
                true,
            )
        }))
        .await?;
        let mut more = false;
        let mut rows = Vec::new();
        for (r, m) in per_shard {
            more |= m;
            rows.extend(r);
        }
        rows.sort();
        rows.dedup();
        if rows.len() > limit {
            more = true;
            rows.truncate(limit);
        }
        let next = if more {
            rows.last().map(|(k, _, _)| k.clone())
        } else {
            None
        };
        let items = self
            .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await?;
        Ok(Listing { items, next })
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

    /// Conditional versioned puts, in parallel; returns how many landed.
    async fn put_mirror<'a, T: Serialize + 'a>(
        &self,
        tenant: &TenantId,
        kind: Kind,
        rows: impl Iterator<Item = (String, Version, &'a T)>,
    ) -> Result<u64, StoreError> {
        let mut prepared = Vec::new();
        for (key, version, value) in rows {
            let (pk, sk) = mirror_key(tenant, kind, &key);
            let shard = shard_of(&key, self.shards);
            let item = HashMap::from([
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
                ("tenant".to_owned(), s(tenant.as_str())),
                ("cycle".to_owned(), n(version.cycle)),
                ("page".to_owned(), n(version.page)),
                ("body".to_owned(), s(to_json(value)?)),
                (
                    "gsi1pk".to_owned(),
                    s(format!("T#{tenant}#{}#{shard}", kind.listing())),
                ),
                ("gsi1sk".to_owned(), s(key)),
            ]);
            prepared.push((item, version));
        }
        let landed: Vec<bool> = futures::stream::iter(prepared)
            .map(|(item, v)| {
                self.put_if(
                    item,
                    "attribute_not_exists(pk) OR #cycle < :c OR (#cycle = :c AND #page < :p)",
                    vec![(":c", n(v.cycle)), (":p", n(v.page))],
                )
            })
            .buffer_unordered(PUT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(landed.into_iter().filter(|l| *l).count() as u64)
    }

    async fn get_mirror<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        kind: Kind,
        keys: impl Iterator<Item = String>,
    ) -> Result<Vec<T>, StoreError> {
        let keys = keys.map(|k| mirror_key(tenant, kind, &k)).collect();
        self.batch_get(keys).await?.iter().map(body).collect()
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

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn get_connection(&self, tenant: &TenantId) -> Result<Option<Connection>, StoreError> {
        self.get_item(tenant_pk(tenant), "CONNECTION".to_owned())
            .await?
            .map(|i| body(&i))
            .transpose()
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let t = &connection.tenant_id;
        let item = HashMap::from([
            ("pk".to_owned(), s(tenant_pk(t))),
            ("sk".to_owned(), s("CONNECTION")),
            ("tenant".to_owned(), s(t.as_str())),
            ("body".to_owned(), s(to_json(connection)?)),
            ("gsi1pk".to_owned(), s("CONNECTIONS")),
            ("gsi1sk".to_owned(), s(t.as_str())),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "PutItem", e, |e| conditional!(e)).into_store()
            })?;
        Ok(())
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (rows, more) = self
                .query_index("CONNECTIONS".to_owned(), after.as_deref(), 500, true)
                .await?;
            after = rows.last().map(|(k, _, _)| k.clone());
            let page: Vec<Connection> = self
                .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
                .await?;
            out.extend(page);
            if !more || after.is_none() {
                return Ok(out);
            }
        }
    }
}

fn cursor_sk(stream: Stream) -> String {
    format!("CURSOR#{stream}")
}

fn marker_pk(tenant: &TenantId, stream: Stream, cycle: u64) -> String {
    format!("T#{tenant}#APPLIED#{stream}#{cycle}")
}

#[async_trait]
impl CursorStore for DynamoStore {
    async fn load_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
    ) -> Result<Option<(CursorRecord, Revision)>, StoreError> {
        match self.get_item(tenant_pk(tenant), cursor_sk(stream)).await? {
            Some(item) => Ok(Some((body(&item)?, Revision(get_n(&item, "revision")?)))),
            None => Ok(None),
        }
    }

    async fn save_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
        record: &CursorRecord,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let next = Revision(expected.map_or(1, |r| r.0 + 1));
        let item = HashMap::from([
            ("pk".to_owned(), s(tenant_pk(tenant))),
            ("sk".to_owned(), s(cursor_sk(stream))),
            ("tenant".to_owned(), s(tenant.as_str())),
            ("revision".to_owned(), n(next.0)),
            ("body".to_owned(), s(to_json(record)?)),
        ]);
        let landed = match expected {
            None => {
                self.put_if(item, "attribute_not_exists(pk)", vec![])
                    .await?
            }
            Some(Revision(r)) => {
                self.put_if(item, "revision = :r", vec![(":r", n(r))])
                    .await?
            }
        };
        if landed {
            Ok(next)
        } else {
            Err(StoreError::Conflict(format!("cursor {tenant}/{stream}")))
        }
    }

    async fn mark_page_applied(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
        page: u32,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(marker_pk(tenant, stream, cycle))),
            ("sk".to_owned(), s(format!("P#{page:010}"))),
            ("tenant".to_owned(), s(tenant.as_str())),
            (
                "expires_at".to_owned(),
                n(epoch_secs(Utc::now() + MARKER_TTL)),
            ),
        ]);
        self.put_if(item, "attribute_not_exists(pk)", vec![]).await
    }

    async fn applied_pages(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
    ) -> Result<u32, StoreError> {
        let mut count: u64 = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(marker_pk(tenant, stream, cycle)))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
                })?;
            count += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(u32::try_from(count).unwrap_or(u32::MAX)),
            }
        }
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(tenant_pk(tenant))),
            ("sk".to_owned(), s("LEASE")),
            ("tenant".to_owned(), s(tenant.as_str())),
            ("holder".to_owned(), s(holder)),
            ("until_ms".to_owned(), n(until.timestamp_millis())),
            (
                "expires_at".to_owned(),
                n(epoch_secs(until + LEASE_TTL_SLACK)),
            ),
        ]);
        self.put_if(
            item,
            "attribute_not_exists(pk) OR holder = :h OR until_ms <= :now",
            vec![(":h", s(holder)), (":now", n(now.timestamp_millis()))],
        )
        .await
    }

    async fn release_lease(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(tenant_pk(tenant), "LEASE".to_owned())))
            .condition_expression("holder = :h")
            .expression_attribute_values(":h", s(holder))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match AwsCallError::from_sdk(SERVICE, "DeleteItem", e, |e| conditional!(e)) {
                // Someone else holds it (ours expired and was taken): nothing to release.
                err if err.class == Class::ConditionFailed => Ok(()),
                err => Err(err.into_store()),
            },
        }
    }
}

#[async_trait]
impl MirrorStore for DynamoStore {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError> {
        self.get_mirror(tenant, Kind::User, ids.iter().cloned())
            .await
    }

    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError> {
        self.put_mirror(
            tenant,
            Kind::User,
            users.iter().map(|u| (u.user.id.clone(), u.version, u)),
        )
        .await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError> {
        self.list_mirror(tenant, Kind::User, after, limit).await
    }

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError> {
        self.get_mirror(tenant, Kind::Group, ids.iter().cloned())
            .await
    }

    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError> {
        self.put_mirror(
            tenant,
            Kind::Group,
            groups.iter().map(|g| (g.group.id.clone(), g.version, g)),
        )
        .await
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError> {
        self.list_mirror(tenant, Kind::Group, after, limit).await
    }

    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError> {
        self.get_mirror(
            tenant,
            Kind::Edge,
            keys.iter().map(|(g, m)| edge_listing_key(g, m)),
        )
        .await
    }

    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError> {
        self.put_mirror(
            tenant,
            Kind::Edge,
            edges
                .iter()
                .map(|e| (edge_listing_key(&e.group_id, &e.member.id), e.version, e)),
        )
        .await
    }

    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let (pk, _) = mirror_key(tenant, Kind::Group, group_id);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :m)")
                .expression_attribute_values(":p", s(pk.clone()))
                .expression_attribute_values(":m", s("M#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
                })?;
            for item in res.items.unwrap_or_default() {
                out.push(body(&item)?);
            }
            match res.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError> {
        self.list_mirror(tenant, Kind::Edge, after, limit).await
    }
}

fn run_sk(run_id: &str) -> String {
    format!("RUN#{run_id}")
}

impl DynamoStore {
    fn run_item(&self, run: &SyncRun, rev: u64) -> Result<Item, StoreError> {
        let t = &run.tenant_id;
        let started = u64::try_from(run.started_at.timestamp_millis()).unwrap_or(0);
        Ok(HashMap::from([
            ("pk".to_owned(), s(tenant_pk(t))),
            ("sk".to_owned(), s(run_sk(&run.run_id))),
            ("tenant".to_owned(), s(t.as_str())),
            ("rev".to_owned(), n(rev)),
            ("body".to_owned(), s(to_json(run)?)),
            ("gsi1pk".to_owned(), s(format!("T#{t}#RUNS"))),
            (
                "gsi1sk".to_owned(),
                s(format!("{started:020}#{}", run.run_id)),
            ),
        ]))
    }
}

#[async_trait]
impl RunStore for DynamoStore {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        // Creating an existing run leaves it as it is.
        self.put_if(self.run_item(run, 1)?, "attribute_not_exists(pk)", vec![])
            .await?;
        Ok(())
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
        update: &RunUpdate,
    ) -> Result<SyncRun, StoreError> {
        // Optimistic read-modify-write: concurrent reconcilers add their counts one after the
        // other; a lost race re-reads and applies again.
        for attempt in 0..MAX_ATTEMPTS * 4 {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt.min(4))).await;
            }
            let Some(item) = self.get_item(tenant_pk(tenant), run_sk(run_id)).await? else {
                return Err(StoreError::Corrupt(format!("run {run_id} not found")));
            };
            let rev = get_n(&item, "rev")?;
            let mut run: SyncRun = body(&item)?;
            update.apply(&mut run);
            if self
                .put_if(
                    self.run_item(&run, rev + 1)?,
                    "rev = :r",
                    vec![(":r", n(rev))],
                )
                .await?
            {
                return Ok(run);
            }
        }
        Err(StoreError::Conflict(format!("run {run_id}")))
    }

    async fn get_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
    ) -> Result<Option<SyncRun>, StoreError> {
        self.get_item(tenant_pk(tenant), run_sk(run_id))
            .await?
            .map(|i| body(&i))
            .transpose()
    }

    async fn list_runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let (rows, _) = self
            .query_index(format!("T#{tenant}#RUNS"), None, limit.max(1), false)
            .await?;
        let mut runs: Vec<SyncRun> = self
            .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await?;
        runs.truncate(limit);
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_key_starts_with_the_tenant() {
        let t = TenantId::new("t1");
        for kind in [Kind::User, Kind::Group, Kind::Edge] {
            let (pk, _) = mirror_key(&t, kind, "g1/u1");
            assert!(pk.starts_with("T#t1#"), "{pk}");
        }
        assert!(marker_pk(&t, Stream::Users, 3).starts_with("T#t1#"));
        assert_eq!(tenant_pk(&t), "T#t1");
    }

    #[test]
    fn an_edge_lives_in_its_group_partition() {
        let t = TenantId::new("t1");
        assert_eq!(
            mirror_key(&t, Kind::Edge, "g1/u1"),
            ("T#t1#G#g1".to_owned(), "M#u1".to_owned())
        );
        assert_eq!(mirror_key(&t, Kind::Group, "g1").0, "T#t1#G#g1");
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        for key in ["a", "b", "user-1", "g/m"] {
            let s1 = shard_of(key, 8);
            assert_eq!(s1, shard_of(key, 8));
            assert!(s1 < 8);
        }
        let spread: std::collections::HashSet<u32> =
            (0..100).map(|i| shard_of(&format!("u{i}"), 8)).collect();
        assert_eq!(spread.len(), 8);
    }
}
