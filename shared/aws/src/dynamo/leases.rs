use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::LeaseStore;

use super::*;
use crate::error::{AwsCallError, Class};

/// The lease item is removed by TTL a day after it expired (TTL deletes are lazy anyway; the
/// condition on `until_ms` is what decides).
const LEASE_TTL_SLACK: chrono::Duration = chrono::Duration::days(1);

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
