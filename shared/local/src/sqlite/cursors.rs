use async_trait::async_trait;
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::ports::{CursorStore, Revision};
use rusqlite::{OptionalExtension, params};

use super::*;

#[async_trait]
impl CursorStore for SqliteStore {
    async fn load_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
    ) -> Result<Option<(CursorRecord, Revision)>, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            let row: Option<(i64, String)> = c
                .query_row(
                    "SELECT revision, body FROM cursors WHERE tenant_id = ?1 AND stream = ?2",
                    params![t, stream.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(internal)?;
            match row {
                Some((rev, body)) => Ok(Some((
                    from_json(&body)?,
                    Revision(u64::try_from(rev).unwrap_or(0)),
                ))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn save_cursor(
        &self,
        tenant: &TenantId,
        stream: Stream,
        record: &CursorRecord,
        expected: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let t = tenant.0.clone();
        let body = to_json(record)?;
        self.with(move |c| {
            let changed = match expected {
                None => c
                    .execute(
                        "INSERT INTO cursors (tenant_id, stream, revision, body)
                         VALUES (?1, ?2, 1, ?3) ON CONFLICT DO NOTHING",
                        params![t, stream.as_str(), body],
                    )
                    .map_err(internal)?,
                Some(Revision(rev)) => c
                    .execute(
                        "UPDATE cursors SET revision = revision + 1, body = ?4
                         WHERE tenant_id = ?1 AND stream = ?2 AND revision = ?3",
                        params![t, stream.as_str(), to_i64(rev), body],
                    )
                    .map_err(internal)?,
            };
            if changed == 0 {
                return Err(StoreError::Conflict(format!("cursor {t}/{stream}")));
            }
            Ok(Revision(expected.map_or(1, |r| r.0 + 1)))
        })
        .await
    }

    async fn mark_page_applied(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
        page: u32,
    ) -> Result<bool, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO applied_pages (tenant_id, stream, cycle, page)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![t, stream.as_str(), to_i64(cycle), page],
                )
                .map_err(internal)?;
            Ok(n == 1)
        })
        .await
    }

    async fn applied_pages(
        &self,
        tenant: &TenantId,
        stream: Stream,
        cycle: u64,
    ) -> Result<u32, StoreError> {
        let t = tenant.0.clone();
        self.with(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM applied_pages WHERE tenant_id = ?1 AND stream = ?2 AND cycle = ?3",
                params![t, stream.as_str(), to_i64(cycle)],
                |r| r.get::<_, u32>(0),
            )
            .map_err(internal)
        })
        .await
    }
}
