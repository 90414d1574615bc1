//! [`OutboundStore`] and [`DeliveryFanOut`] on the DynamoDB table: the outbound webhook
//! endpoints of the host product's accounts and their deliveries (docs/data-model.md,
//! "Outbound webhooks", has the items and every access pattern).
//!
//! * An endpoint is `OUT#EP#<id>` / `OUTBOUND_ENDPOINT` (`account`, `rev`, body), listed per
//!   account through its `gsi1` entry `A#<account>#OUTBOUND#ENDPOINTS` / creation time + id.
//!   Creates are `attribute_not_exists(pk)`; every update is a put on the condition `rev = :e`
//!   (the rev read). The `webhook_endpoint.disabled` event of a write is derived from the
//!   item's stream record (its old and new images), like every other event on AWS, so the
//!   event exists exactly when the write landed; `update_endpoint` and `record_attempt` take
//!   the events the core computed and write nothing more for them (the core's
//!   `outbound::endpoint_event` gives the same event, same id, from the stored record).
//! * A delivery is `OUT#DL#<id>` / `OUTBOUND_DELIVERY` (`endpoint`, body, the event's body in
//!   `event`). Its id is derived from (endpoint, event), and fan-out creates it with
//!   `attribute_not_exists(pk)`: an event fanned out again (a replayed stream batch) finds it
//!   and keeps it as it is. Its `gsi1` entry `OUT#EP#<endpoint>#DELIVERIES` / creation time +
//!   position + id is the endpoint's log, newest first.
//! * A pending delivery also carries the sparse due index `gsi2`: `OUT#DUE#<shard>` (one of
//!   [`DUE_SHARDS`], by the delivery id) / due time in milliseconds + id, projecting
//!   `endpoint`, and `due_at` (the exact time). A delivered or failed one has neither, so
//!   [`OutboundStore::claim_due`] reads only due deliveries, oldest first, from a few index
//!   partitions, never the table. A claim is a conditional `UpdateItem` that moves the entry
//!   to the lease's end on the condition that it is still where the index showed it: of two
//!   workers, one gets the delivery; an index read that lags is refused the same way.
//! * An attempt's result is one `TransactWriteItems`: the delivery, and the endpoint on the
//!   condition of its `rev`. When only that condition fails (an admin changed the endpoint
//!   meanwhile) the delivery is written alone and the endpoint left as the admin left it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put as PutRequest, ReturnValue, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::events::ChangeEvent;
use entra_sync_core::model::AccountId;
use entra_sync_core::outbound::ports::{DeliveryFanOut, DueDelivery, OutboundStore};
use entra_sync_core::outbound::{DeliveryState, NewDelivery, OutboundDelivery, OutboundEndpoint};

use super::{Item, SERVICE, shard_of};
use crate::dynamo::{DynamoStore, body, conditional, get_s, key_item, n, retryable, s, to_json};
use crate::error::{AwsCallError, Class};

/// The due index.
pub const GSI2: &str = "gsi2";
/// Partitions of the due index (by delivery id), read together by a claim.
pub const DUE_SHARDS: u32 = 4;
const ENDPOINT_SK: &str = "OUTBOUND_ENDPOINT";
const DELIVERY_SK: &str = "OUTBOUND_DELIVERY";
const ENDPOINT_PK_PREFIX: &str = "OUT#EP#";
/// Due index entries read per query page.
const DUE_PAGE: usize = 100;

fn endpoint_pk(id: &str) -> String {
    format!("{ENDPOINT_PK_PREFIX}{id}")
}

fn endpoints_partition(account: &AccountId) -> String {
    format!("A#{account}#OUTBOUND#ENDPOINTS")
}

fn delivery_pk(id: &str) -> String {
    format!("OUT#DL#{id}")
}

fn deliveries_partition(endpoint_id: &str) -> String {
    format!("OUT#EP#{endpoint_id}#DELIVERIES")
}

fn due_partition(shard: u32) -> String {
    format!("OUT#DUE#{shard}")
}

/// Microseconds, zero-padded: sorts as the time does.
fn time_key(t: DateTime<Utc>) -> String {
    format!("{:017}", t.timestamp_micros().max(0))
}

fn due_key(due: DateTime<Utc>, id: &str) -> String {
    format!("{:015}#{id}", due.timestamp_millis().max(0))
}

/// The highest due key of a delivery due at `now` (`~` sorts after every id character).
fn due_bound(now: DateTime<Utc>) -> String {
    format!("{:015}#~", now.timestamp_millis().max(0))
}

fn due_at(d: &OutboundDelivery) -> Option<DateTime<Utc>> {
    match d.state {
        DeliveryState::Pending { next_attempt_at } => Some(next_attempt_at),
        _ => None,
    }
}

fn endpoint_item(e: &OutboundEndpoint) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(endpoint_pk(&e.id))),
        ("sk".to_owned(), s(ENDPOINT_SK)),
        ("account".to_owned(), s(e.account_id.0.clone())),
        ("rev".to_owned(), n(e.rev)),
        ("body".to_owned(), s(to_json(e)?)),
        ("gsi1pk".to_owned(), s(endpoints_partition(&e.account_id))),
        (
            "gsi1sk".to_owned(),
            s(format!("{}#{}", time_key(e.created_at), e.id)),
        ),
    ]))
}

fn new_delivery_item(new: &NewDelivery) -> Result<Item, StoreError> {
    let d = &new.delivery;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(delivery_pk(&d.id))),
        ("sk".to_owned(), s(DELIVERY_SK)),
        ("endpoint".to_owned(), s(d.endpoint_id.clone())),
        ("event_id".to_owned(), s(d.event_id.clone())),
        ("body".to_owned(), s(to_json(d)?)),
        ("event".to_owned(), s(new.body.clone())),
        ("gsi1pk".to_owned(), s(deliveries_partition(&d.endpoint_id))),
        (
            "gsi1sk".to_owned(),
            s(format!(
                "{}#{:08}#{}",
                time_key(d.created_at),
                new.position,
                d.id
            )),
        ),
    ]);
    if let Some(due) = due_at(d) {
        item.extend(due_attributes(&d.id, due));
    }
    Ok(item)
}

fn due_attributes(id: &str, due: DateTime<Utc>) -> [(String, AttributeValue); 3] {
    [
        (
            "gsi2pk".to_owned(),
            s(due_partition(shard_of(id, DUE_SHARDS))),
        ),
        ("gsi2sk".to_owned(), s(due_key(due, id))),
        ("due_at".to_owned(), s(to_rfc3339(due))),
    ]
}

fn to_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A delivery as stored: its body, due at `due_at` while pending (a claim moves `due_at` to
/// the lease's end without rewriting the body).
fn delivery_from(item: &Item) -> Result<OutboundDelivery, StoreError> {
    let mut d: OutboundDelivery = body(item)?;
    if let (DeliveryState::Pending { .. }, Some(AttributeValue::S(at))) =
        (&d.state, item.get("due_at"))
    {
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|_| StoreError::Corrupt("a delivery has a bad due_at".to_owned()))?;
        d.state = DeliveryState::Pending {
            next_attempt_at: at.with_timezone(&Utc),
        };
    }
    Ok(d)
}

/// The update that stores a delivery's body and its due index entry (or removes the entry
/// once it is no longer pending), on the condition that the delivery exists.
fn delivery_update(table: &str, d: &OutboundDelivery) -> Result<Update, StoreError> {
    let mut req = Update::builder()
        .table_name(table)
        .set_key(Some(key_item(delivery_pk(&d.id), DELIVERY_SK.to_owned())))
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#body", "body")
        .expression_attribute_names("#gp", "gsi2pk")
        .expression_attribute_names("#gk", "gsi2sk")
        .expression_attribute_names("#due", "due_at")
        .expression_attribute_values(":b", s(to_json(d)?));
    req = match due_at(d) {
        Some(due) => {
            let [(_, gp), (_, gk), (_, da)] = due_attributes(&d.id, due);
            req.update_expression("SET #body = :b, #gp = :gp, #gk = :gk, #due = :da")
                .expression_attribute_values(":gp", gp)
                .expression_attribute_values(":gk", gk)
                .expression_attribute_values(":da", da)
        }
        None => req.update_expression("SET #body = :b REMOVE #gp, #gk, #due"),
    };
    req.build().map_err(|e| StoreError::Internal(Box::new(e)))
}

/// The endpoint's stored record, decoded from a stream image (the publisher derives the
/// endpoint's `webhook_endpoint.disabled` from it).
pub(crate) fn endpoint_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<entra_sync_core::committed::CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    if get_s(new, "sk")? != ENDPOINT_SK {
        return Ok(None);
    }
    Ok(Some(
        entra_sync_core::committed::CommittedChange::OutboundEndpoint {
            before: old.map(body).transpose()?,
            after: body(new)?,
        },
    ))
}

/// One due index entry: (due key, delivery pk, endpoint id).
type DueEntry = (String, String, String);

impl DynamoStore {
    async fn put_endpoint_at_rev(
        &self,
        endpoint: &OutboundEndpoint,
        expected_rev: u64,
    ) -> Result<bool, StoreError> {
        self.put_if(
            endpoint_item(endpoint)?,
            "rev = :e",
            vec![(":e", n(expected_rev))],
        )
        .await
    }

    async fn update_delivery(&self, d: &OutboundDelivery) -> Result<(), StoreError> {
        let u = delivery_update(&self.table, d)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(u.key))
            .update_expression(u.update_expression)
            .set_condition_expression(u.condition_expression)
            .set_expression_attribute_names(u.expression_attribute_names)
            .set_expression_attribute_values(u.expression_attribute_values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = AwsCallError::from_sdk(SERVICE, "UpdateItem", e, |e| conditional!(e));
                match err.class {
                    Class::ConditionFailed => Err(StoreError::Conflict(format!(
                        "no outbound delivery {}",
                        d.id
                    ))),
                    _ => Err(err.into_store()),
                }
            }
        }
    }

    /// Due entries of one shard, oldest first, whose endpoint is enabled (looked up in
    /// `endpoints`, read as needed): up to `limit`, paging past entries of disabled endpoints.
    async fn due_in_shard(
        &self,
        shard: u32,
        bound: &str,
        limit: usize,
        endpoints: &mut HashMap<String, Option<OutboundEndpoint>>,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI2)
                .key_condition_expression("gsi2pk = :p AND gsi2sk <= :b")
                .expression_attribute_values(":p", s(due_partition(shard)))
                .expression_attribute_values(":b", s(bound))
                .limit(i32::try_from(DUE_PAGE).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
                })?;
            let page: Vec<DueEntry> = res
                .items
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    Ok((
                        get_s(i, "gsi2sk")?.to_owned(),
                        get_s(i, "pk")?.to_owned(),
                        get_s(i, "endpoint")?.to_owned(),
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
            let unknown: Vec<(String, String)> = page
                .iter()
                .filter(|(_, _, ep)| !endpoints.contains_key(ep))
                .map(|(_, _, ep)| (endpoint_pk(ep), ENDPOINT_SK.to_owned()))
                .collect();
            if !unknown.is_empty() {
                let found: Vec<OutboundEndpoint> = self
                    .batch_get(unknown.clone())
                    .await?
                    .iter()
                    .map(body)
                    .collect::<Result<_, _>>()?;
                for (pk, _) in unknown {
                    let id = pk.trim_start_matches(ENDPOINT_PK_PREFIX).to_owned();
                    let ep = found.iter().find(|e| e.id == id).cloned();
                    endpoints.insert(id, ep);
                }
            }
            for entry in page {
                let enabled = endpoints
                    .get(&entry.2)
                    .is_some_and(|e| e.as_ref().is_some_and(OutboundEndpoint::is_enabled));
                if enabled {
                    out.push(entry);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            match res.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Move a due entry to the lease's end if it is still `seen`: the stored delivery before
    /// the move, or `None` when another worker (or a write) moved it first.
    async fn take_lease(
        &self,
        pk: &str,
        seen: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Item>, StoreError> {
        let id = pk.trim_start_matches("OUT#DL#");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk.to_owned(), DELIVERY_SK.to_owned())))
            .update_expression("SET #gk = :lk, #due = :la")
            .condition_expression("#gk = :seen")
            .expression_attribute_names("#gk", "gsi2sk")
            .expression_attribute_names("#due", "due_at")
            .expression_attribute_values(":lk", s(due_key(lease_until, id)))
            .expression_attribute_values(":la", s(to_rfc3339(lease_until)))
            .expression_attribute_values(":seen", s(seen))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes),
            Err(e) => {
                let err = AwsCallError::from_sdk(SERVICE, "UpdateItem", e, |e| conditional!(e));
                match err.class {
                    Class::ConditionFailed => Ok(None),
                    _ => Err(err.into_store()),
                }
            }
        }
    }
}

/// Whether a cancelled transaction failed only on the endpoint's `rev` condition (its second
/// item).
fn only_endpoint_condition_failed(e: &TransactWriteItemsError) -> bool {
    let TransactWriteItemsError::TransactionCanceledException(c) = e else {
        return false;
    };
    let codes: Vec<Option<&str>> = c.cancellation_reasons().iter().map(|r| r.code()).collect();
    matches!(
        codes.as_slice(),
        [None | Some("None"), Some("ConditionalCheckFailed")]
    )
}

/// Whether a cancelled transaction lost to a concurrent write or was throttled (worth another
/// try, unlike a failed condition or a validation error).
fn contended(e: &TransactWriteItemsError) -> bool {
    let TransactWriteItemsError::TransactionCanceledException(c) = e else {
        return false;
    };
    c.cancellation_reasons().iter().any(|r| {
        matches!(
            r.code(),
            Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
        )
    })
}

#[async_trait]
impl OutboundStore for DynamoStore {
    async fn create_endpoint(&self, endpoint: &OutboundEndpoint) -> Result<(), StoreError> {
        match self
            .put_if(endpoint_item(endpoint)?, "attribute_not_exists(pk)", vec![])
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict(format!("endpoint {}", endpoint.id))),
        }
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<OutboundEndpoint>, StoreError> {
        self.get_item(endpoint_pk(id), ENDPOINT_SK.to_owned())
            .await?
            .as_ref()
            .map(body)
            .transpose()
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OutboundEndpoint>, StoreError> {
        let (rows, _) = self
            .query_index(endpoints_partition(account), None, usize::MAX, true)
            .await?;
        self.read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await
    }

    async fn update_endpoint(
        &self,
        endpoint: &OutboundEndpoint,
        expected_rev: u64,
        // Derived from the write's stream record (see the module's notes).
        _events: &[ChangeEvent],
    ) -> Result<(), StoreError> {
        match self.put_endpoint_at_rev(endpoint, expected_rev).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict(format!("endpoint {}", endpoint.id))),
        }
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let bound = due_bound(now);
        let mut endpoints: HashMap<String, Option<OutboundEndpoint>> = HashMap::new();
        let mut due = Vec::new();
        for shard in 0..DUE_SHARDS {
            due.extend(
                self.due_in_shard(shard, &bound, limit, &mut endpoints)
                    .await?,
            );
        }
        due.sort();
        due.truncate(limit);
        let mut out = Vec::with_capacity(due.len());
        for (seen, pk, endpoint_id) in due {
            let Some(item) = self.take_lease(&pk, &seen, lease_until).await? else {
                continue;
            };
            let Some(Some(endpoint)) = endpoints.get(&endpoint_id).cloned() else {
                continue;
            };
            out.push(DueDelivery {
                delivery: delivery_from(&item)?,
                endpoint,
                body: get_s(&item, "event")?.to_owned(),
            });
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        delivery: &OutboundDelivery,
        endpoint: &OutboundEndpoint,
        endpoint_rev: u64,
        // Derived from the endpoint write's stream record (see the module's notes).
        _events: &[ChangeEvent],
    ) -> Result<(), StoreError> {
        let put = PutRequest::builder()
            .table_name(&self.table)
            .set_item(Some(endpoint_item(endpoint)?))
            .condition_expression("rev = :e")
            .expression_attribute_values(":e", n(endpoint_rev))
            .build()
            .map_err(|e| StoreError::Internal(Box::new(e)))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(delivery_update(&self.table, delivery)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(only_endpoint_condition_failed) {
                    // The endpoint changed meanwhile: it stays as it is; the delivery is kept.
                    return self.update_delivery(delivery).await;
                }
                Err(
                    AwsCallError::from_sdk(SERVICE, "TransactWriteItems", e, |e| {
                        if e.is_transaction_in_progress_exception()
                            || e.is_internal_server_error()
                            || e.is_throttling_exception()
                            || e.is_request_limit_exceeded()
                            || e.is_provisioned_throughput_exceeded_exception()
                            || contended(e)
                        {
                            Class::Retryable
                        } else {
                            Class::Permanent
                        }
                    })
                    .into_store(),
                )
            }
        }
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<OutboundDelivery>, StoreError> {
        self.get_item(delivery_pk(id), DELIVERY_SK.to_owned())
            .await?
            .as_ref()
            .map(delivery_from)
            .transpose()
    }

    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboundDelivery>, StoreError> {
        let below = match before {
            None => None,
            Some(id) => {
                let item = self
                    .get_item(delivery_pk(id), DELIVERY_SK.to_owned())
                    .await?;
                match item {
                    // An unknown `before`, or one of another endpoint, lists nothing.
                    Some(i) if get_s(&i, "endpoint")? == endpoint_id => {
                        Some(get_s(&i, "gsi1sk")?.to_owned())
                    }
                    _ => return Ok(Vec::new()),
                }
            }
        };
        let (rows, _) = self
            .query_index(
                deliveries_partition(endpoint_id),
                below.as_deref(),
                limit,
                false,
            )
            .await?;
        let keys: Vec<(String, String)> = rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect();
        let mut by_pk: HashMap<String, Item> = HashMap::new();
        for item in self.batch_get(keys.clone()).await? {
            by_pk.insert(get_s(&item, "pk")?.to_owned(), item);
        }
        keys.iter()
            .filter_map(|(pk, _)| by_pk.get(pk))
            .map(delivery_from)
            .collect()
    }

    async fn put_delivery(&self, delivery: &OutboundDelivery) -> Result<(), StoreError> {
        self.update_delivery(delivery).await
    }
}

#[async_trait]
impl DeliveryFanOut for DynamoStore {
    async fn create_deliveries(&self, deliveries: &[NewDelivery]) -> Result<usize, StoreError> {
        let mut created = 0;
        for new in deliveries {
            if self
                .put_if(new_delivery_item(new)?, "attribute_not_exists(pk)", vec![])
                .await?
            {
                created += 1;
            }
        }
        Ok(created)
    }
}
