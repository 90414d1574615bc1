use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::LeaseStore;
use rusqlite::params;

use super::*;

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let t = tenant.0.clone();
        let h = holder.to_owned();
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO leases (tenant_id, holder, until_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                     WHERE leases.holder = excluded.holder OR leases.until_ms <= ?4",
                    params![t, h, until.timestamp_millis(), now.timestamp_millis()],
                )
                .map_err(internal)?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_lease(&self, tenant: &TenantId, holder: &str) -> Result<(), StoreError> {
        let t = tenant.0.clone();
        let h = holder.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM leases WHERE tenant_id = ?1 AND holder = ?2",
                params![t, h],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}
