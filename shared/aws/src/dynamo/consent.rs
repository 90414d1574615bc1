//! [`ConsentStateStore`] on the DynamoDB table: one item per pending consent, removed by TTL
//! (`expires_at`, epoch seconds) if never used, and taken once with a conditional
//! `DeleteItem` that returns the old item: of two concurrent takes, only one gets it.
//!
//! Keys: `pk = CONSENT#<state>`, `sk = CONSENT`. The tenant is not known before the callback, so
//! these are the only items whose key does not lead with a tenant; they carry no tenant data.
//!
//! [`ConsoleTicketStore`] works the same way (a console sign-in ticket is another take-once,
//! short-lived secret): `pk = CONSOLE_TICKET#<sha-256 of the ticket>`, `sk = CONSOLE_TICKET`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use entra_sync_core::error::StoreError;
use entra_sync_core::ports::{
    ConsentStateStore, ConsoleTicket, ConsoleTicketStore, PendingConsent,
};

use super::SERVICE;
use crate::dynamo::{DynamoStore, body, conditional, key_item, n, s, to_json};
use crate::error::{AwsCallError, Class};

/// TTL deletion is lazy; keep the item a day past its expiry at most (the caller checks
/// `expires_at` anyway).
const TTL_SLACK_SECS: i64 = 24 * 3600;

fn consent_pk(state: &str) -> String {
    format!("CONSENT#{state}")
}

#[async_trait]
impl ConsentStateStore for DynamoStore {
    async fn put_consent_state(&self, pending: &PendingConsent) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(consent_pk(pending.state.expose()))),
            ("sk".to_owned(), s("CONSENT")),
            ("body".to_owned(), s(to_json(pending)?)),
            (
                "expires_at".to_owned(),
                n(pending.expires_at.timestamp() + TTL_SLACK_SECS),
            ),
        ]);
        // A state is 244 random bits: a collision is not a case to handle, but never overwrite.
        match self
            .put_if(item, "attribute_not_exists(pk)", Vec::new())
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict("consent state".to_owned())),
        }
    }

    async fn take_consent_state(&self, state: &str) -> Result<Option<PendingConsent>, StoreError> {
        self.take_once(consent_pk(state), "CONSENT").await
    }
}

fn ticket_pk(digest: &str) -> String {
    format!("CONSOLE_TICKET#{digest}")
}

#[async_trait]
impl ConsoleTicketStore for DynamoStore {
    async fn put_console_ticket(&self, ticket: &ConsoleTicket) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(ticket_pk(&ticket.digest))),
            ("sk".to_owned(), s("CONSOLE_TICKET")),
            ("body".to_owned(), s(to_json(ticket)?)),
            (
                "expires_at".to_owned(),
                n(ticket.expires_at.timestamp() + TTL_SLACK_SECS),
            ),
        ]);
        match self
            .put_if(item, "attribute_not_exists(pk)", Vec::new())
            .await?
        {
            true => Ok(()),
            false => Err(StoreError::Conflict("console ticket".to_owned())),
        }
    }

    async fn take_console_ticket(&self, digest: &str) -> Result<Option<ConsoleTicket>, StoreError> {
        self.take_once(ticket_pk(digest), "CONSOLE_TICKET").await
    }
}

impl DynamoStore {
    /// Delete the item and return its body, if it was there: one conditional `DeleteItem`
    /// returning the old item, so of two concurrent takes only one gets it.
    async fn take_once<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk, sk.to_owned())))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(|item| body(&item)).transpose(),
            Err(e) => {
                let err = AwsCallError::from_sdk(SERVICE, "DeleteItem", e, |e| conditional!(e));
                match err.class {
                    // Absent: never stored, already taken, or removed by TTL.
                    Class::ConditionFailed => Ok(None),
                    _ => Err(err.into_store()),
                }
            }
        }
    }
}
