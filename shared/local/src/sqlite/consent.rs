//! [`ConsentStateStore`] on the SQLite store: `DELETE ... RETURNING` takes a pending consent
//! in one statement, so it is take-once even with several connections. Expired rows are
//! purged whenever a new consent starts.

use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::ports::{ConsentStateStore, PendingConsent};
use rusqlite::{OptionalExtension, params};

use crate::sqlite::{SqliteStore, internal};

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

#[async_trait]
impl ConsentStateStore for SqliteStore {
    async fn put_consent_state(&self, pending: &PendingConsent) -> Result<(), StoreError> {
        let state = pending.state.expose().to_owned();
        let expires_ms = pending.expires_at.timestamp_millis();
        let now_ms = pending.created_at.timestamp_millis();
        let body = serde_json::to_string(pending).map_err(|e| StoreError::Internal(Box::new(e)))?;
        self.with(move |c| {
            c.execute(
                "DELETE FROM consent_states WHERE expires_ms < ?1",
                params![now_ms],
            )
            .map_err(internal)?;
            let added = c
                .execute(
                    "INSERT INTO consent_states (state, expires_ms, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (state) DO NOTHING",
                    params![state, expires_ms, body],
                )
                .map_err(internal)?;
            match added {
                1 => Ok(()),
                _ => Err(StoreError::Conflict("consent state".to_owned())),
            }
        })
        .await
    }

    async fn take_consent_state(&self, state: &str) -> Result<Option<PendingConsent>, StoreError> {
        let state = state.to_owned();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row(
                    "DELETE FROM consent_states WHERE state = ?1 RETURNING body",
                    [state],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            body.map(|b| serde_json::from_str(&b).map_err(corrupt))
                .transpose()
        })
        .await
    }
}
