//! Per-connection settings on the DynamoDB table (docs/data-model.md, "Settings and local
//! users"): one item `T#<tenant>` / `SETTINGS` with `version`; `put_settings` is one PutItem
//! conditioned on `attribute_not_exists(pk)` (expected 0) or `version = :expected`.

use std::collections::HashMap;

use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::SettingsStore;
use entra_sync_core::settings::ConnectionSettings;

use crate::dynamo::{DynamoStore, body, n, s, tenant_pk, to_json};

const SETTINGS_SK: &str = "SETTINGS";

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn get_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ConnectionSettings>, StoreError> {
        self.get_item(tenant_pk(tenant), SETTINGS_SK.to_owned())
            .await?
            .map(|i| body(&i))
            .transpose()
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &ConnectionSettings,
        expected: u64,
    ) -> Result<(), StoreError> {
        let conflict = || {
            StoreError::Conflict(format!(
                "settings of {tenant} are not at version {expected}, or version {} does not follow it",
                settings.version
            ))
        };
        if expected.checked_add(1) != Some(settings.version) {
            return Err(conflict());
        }
        let item = HashMap::from([
            ("pk".to_owned(), s(tenant_pk(tenant))),
            ("sk".to_owned(), s(SETTINGS_SK)),
            ("tenant".to_owned(), s(tenant.as_str())),
            ("version".to_owned(), n(settings.version)),
            ("body".to_owned(), s(to_json(settings)?)),
        ]);
        let landed = match expected {
            0 => {
                self.put_if(item, "attribute_not_exists(pk)", vec![])
                    .await?
            }
            e => {
                self.put_if(item, "version = :e", vec![(":e", n(e))])
                    .await?
            }
        };
        match landed {
            true => Ok(()),
            false => Err(conflict()),
        }
    }
}
