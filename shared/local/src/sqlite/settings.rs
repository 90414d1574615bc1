//! Per-connection settings on SQLite (table `settings`, see migration 3 in schema.rs) with their
//! version condition: `put_settings` is one statement, an `INSERT ... ON CONFLICT DO NOTHING`
//! for the first save (expected 0), an `UPDATE ... WHERE version = expected` afterwards; no row
//! changed means the condition failed.

use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::SettingsStore;
use entra_sync_core::settings::ConnectionSettings;
use rusqlite::{OptionalExtension, params};

use crate::sqlite::{SqliteStore, from_json, internal, to_json};

/// A settings version as SQLite's integer; one beyond its range is refused, never clamped.
fn version_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("settings version {v} too large")))
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ConnectionSettings>, StoreError> {
        let t = tenant.as_str().to_owned();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM settings WHERE tenant_id = ?1", [t], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(internal)?;
            body.as_deref().map(from_json).transpose()
        })
        .await
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
        let t = tenant.as_str().to_owned();
        let version = version_i64(settings.version)?;
        let expected_i = version_i64(expected)?;
        let body = to_json(settings)?;
        let landed = self
            .with(move |c| {
                let changed = match expected_i {
                    0 => c.execute(
                        "INSERT INTO settings (tenant_id, version, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tenant_id) DO NOTHING",
                        params![t, version, body],
                    ),
                    _ => c.execute(
                        "UPDATE settings SET version = ?2, body = ?3
                         WHERE tenant_id = ?1 AND version = ?4",
                        params![t, version, body, expected_i],
                    ),
                }
                .map_err(internal)?;
                Ok(changed == 1)
            })
            .await?;
        match landed {
            true => Ok(()),
            false => Err(conflict()),
        }
    }
}
