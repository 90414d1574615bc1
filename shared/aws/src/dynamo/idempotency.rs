//! Idempotency records on the DynamoDB table, as AWS Lambda Powertools keeps them: one item per
//! key (`pk = T#<tenant>#IDEM#<key>`, `sk = IDEM`) with `status` (`INPROGRESS` / `COMPLETED`),
//! `payload_hash`, `in_progress_until_ms`, `expires_at_ms`, the stored `result`, and `expires_at`
//! (epoch seconds, the table's TTL attribute, so DynamoDB removes expired records).
//!
//! `begin` is one conditional PutItem:
//! `attribute_not_exists(pk) OR expires_at_ms < :now OR (#status = INPROGRESS AND in_progress_until_ms < :now)`
//! — free, expired, or an abandoned claim. When the condition fails, a consistent GetItem reads the
//! live record and the core's rules answer (`IdempotencyRecord::answer`). `complete` is an
//! UpdateItem conditioned on the record existing; `release` a DeleteItem conditioned on it being
//! still in progress (a completed answer is never dropped).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::idempotency::{Begin, Claim, IdempotencyRecord, RecordStatus};
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::IdempotencyStore;

use super::SERVICE;
use crate::dynamo::{
    DynamoStore, conditional, epoch_secs, get_n, get_s, key_item, n, s, tenant_pk,
};
use crate::error::{AwsCallError, Class};

const SK: &str = "IDEM";
/// A record that disappears between the failed condition and the read (released or expired in
/// between) is claimed again, at most this often.
const MAX_ATTEMPTS: u32 = 3;

fn pk(tenant: &TenantId, key: &str) -> String {
    format!("{}#IDEM#{key}", tenant_pk(tenant))
}

fn from_ms(ms: u64) -> Result<DateTime<Utc>, StoreError> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| StoreError::Corrupt(format!("idempotency time {ms}")))
}

fn decode(item: &HashMap<String, AttributeValue>) -> Result<IdempotencyRecord, StoreError> {
    let status = get_s(item, "status")?;
    Ok(IdempotencyRecord {
        status: RecordStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("idempotency status {status}")))?,
        payload_hash: get_s(item, "payload_hash")?.to_owned(),
        expires_at: from_ms(get_n(item, "expires_at_ms")?)?,
        in_progress_until: from_ms(get_n(item, "in_progress_until_ms")?)?,
        result: match item.get("result") {
            Some(AttributeValue::S(r)) => Some(r.clone()),
            _ => None,
        },
    })
}

/// TTL in whole seconds, rounded up so DynamoDB never removes a record before it expires.
fn ttl_secs(t: DateTime<Utc>) -> i64 {
    epoch_secs(t) + i64::from(t.timestamp_subsec_millis() > 0)
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn begin(&self, tenant: &TenantId, claim: &Claim) -> Result<Begin, StoreError> {
        let pk = pk(tenant, &claim.key);
        for _ in 0..MAX_ATTEMPTS {
            let item = HashMap::from([
                ("pk".to_owned(), s(pk.clone())),
                ("sk".to_owned(), s(SK)),
                ("tenant".to_owned(), s(tenant.as_str())),
                ("status".to_owned(), s(RecordStatus::InProgress.as_str())),
                ("payload_hash".to_owned(), s(claim.payload_hash.clone())),
                (
                    "in_progress_until_ms".to_owned(),
                    n(claim.in_progress_until.timestamp_millis()),
                ),
                (
                    "expires_at_ms".to_owned(),
                    n(claim.expires_at.timestamp_millis()),
                ),
                ("expires_at".to_owned(), n(ttl_secs(claim.expires_at))),
            ]);
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(
                    "attribute_not_exists(pk) OR expires_at_ms < :now \
                     OR (#status = :in_progress AND in_progress_until_ms < :now)",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":now", n(claim.now.timestamp_millis()))
                .expression_attribute_values(":in_progress", s(RecordStatus::InProgress.as_str()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(Begin::Started),
                Err(e) => {
                    let err = AwsCallError::from_sdk(SERVICE, "PutItem", e, |e| conditional!(e));
                    if err.class != Class::ConditionFailed {
                        return Err(err.into_store());
                    }
                }
            }
            // A live record exists: read it and answer from it.
            if let Some(item) = self.get_item(pk.clone(), SK.to_owned()).await? {
                let record = decode(&item)?;
                if record.is_live(claim.now) {
                    return Ok(record.answer(claim));
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "idempotency record {}",
            claim.key
        )))
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk(tenant, key), SK.to_owned())))
            .update_expression(
                "SET #status = :completed, #result = :result, expires_at_ms = :e, expires_at = :ttl",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#result", "result")
            .expression_attribute_values(":completed", s(RecordStatus::Completed.as_str()))
            .expression_attribute_values(":result", s(result))
            .expression_attribute_values(":e", n(expires_at.timestamp_millis()))
            .expression_attribute_values(":ttl", n(ttl_secs(expires_at)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => Err(
                AwsCallError::from_sdk(SERVICE, "UpdateItem", e, |e| conditional!(e)).into_store(),
            ),
        }
    }

    async fn release(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk(tenant, key), SK.to_owned())))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(RecordStatus::InProgress.as_str()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match AwsCallError::from_sdk(SERVICE, "DeleteItem", e, |e| conditional!(e)) {
                // Completed (or gone): nothing to release.
                err if err.class == Class::ConditionFailed => Ok(()),
                err => Err(err.into_store()),
            },
        }
    }
}
