use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::Select;
use chrono::Utc;
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::ports::{CursorStore, Revision};

use super::*;
use crate::error::{AwsCallError, Class};

/// Applied-page markers outlive any round by far; TTL removes them afterwards.
const MARKER_TTL: chrono::Duration = chrono::Duration::days(30);

fn cursor_sk(stream: Stream) -> String {
    format!("CURSOR#{stream}")
}

pub(super) fn marker_pk(tenant: &TenantId, stream: Stream, cycle: u64) -> String {
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
