use std::collections::HashMap;

use async_trait::async_trait;
use entra_sync_core::committed::CommittedChange;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{Connection, TenantId};
use entra_sync_core::ports::ConnectionStore;

use super::*;
use crate::error::{AwsCallError, Class};

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn get_connection(&self, tenant: &TenantId) -> Result<Option<Connection>, StoreError> {
        self.get_item(tenant_pk(tenant), "CONNECTION".to_owned())
            .await?
            .map(|i| body(&i))
            .transpose()
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let item = connection_item(connection)?;
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

    async fn replace_connection(
        &self,
        connection: &Connection,
        expected: Option<&Connection>,
    ) -> Result<(), StoreError> {
        let conflict = || StoreError::Conflict(format!("connection {}", connection.tenant_id));
        let item = connection_item(connection)?;
        let landed = match expected {
            None => {
                self.put_if(item, "attribute_not_exists(pk)", vec![])
                    .await?
            }
            Some(expected) => {
                // Compare by value (records of older versions lack newer fields), then write
                // on the condition that the body is still the one compared.
                let stored = self
                    .get_item(tenant_pk(&connection.tenant_id), "CONNECTION".to_owned())
                    .await?;
                let Some(stored) = stored else {
                    return Err(conflict());
                };
                if body::<Connection>(&stored)? != *expected {
                    return Err(conflict());
                }
                let raw = get_s(&stored, "body")?.to_owned();
                self.put_if(item, "#body = :b", vec![(":b", s(raw))])
                    .await?
            }
        };
        if landed { Ok(()) } else { Err(conflict()) }
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

/// The write a stream record of a connection item describes, or `None` for any other item (or
/// a deleted one).
pub(crate) fn connection_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    if get_s(new, "sk")? != "CONNECTION" {
        return Ok(None);
    }
    Ok(Some(CommittedChange::Connection {
        before: old.map(body).transpose()?,
        after: body(new)?,
    }))
}

fn connection_item(connection: &Connection) -> Result<Item, StoreError> {
    let t = &connection.tenant_id;
    Ok(HashMap::from([
        ("pk".to_owned(), s(tenant_pk(t))),
        ("sk".to_owned(), s("CONNECTION")),
        ("tenant".to_owned(), s(t.as_str())),
        ("body".to_owned(), s(to_json(connection)?)),
        ("gsi1pk".to_owned(), s("CONNECTIONS")),
        ("gsi1sk".to_owned(), s(t.as_str())),
    ]))
}
