//! `user.*` events for every write of the host product's users, whoever makes it (a sync's
//! projection, an import, a confirm, the host product through the admin API or the CLI): a
//! decorator of the [`LocalUserStore`] port that reads what was stored, writes (every store
//! stores a user at the revision after the stored one: the events' sequence), and publishes
//! what changed.
//!
//! Best effort on the publishing side: the write is the truth, and a lost event is logged.
//! The local program instead records these events in the same transaction as the write
//! (its outbox), so none is lost there.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::events::{ChangeEvent, host_user_change};
use crate::model::{AccountId, TenantId};
use crate::ports::{EventSink, Listing, LocalUserStore};
use crate::provision::LocalUser;

/// Prepare writes of host users: each gets the revision after the stored one (as every
/// [`LocalUserStore`] stores it), and the events that describe them. Pure.
pub fn stamp_host_users(
    stored: &[Option<LocalUser>],
    users: &[LocalUser],
) -> (Vec<LocalUser>, Vec<ChangeEvent>) {
    let mut out = Vec::with_capacity(users.len());
    let mut events = Vec::new();
    for (before, u) in stored.iter().zip(users) {
        let mut after = u.clone();
        after.revision = before.as_ref().map_or(0, |b| b.revision) + 1;
        if let Some(e) = host_user_change(before.as_ref(), &after) {
            events.push(e);
        }
        out.push(after);
    }
    (out, events)
}

/// A [`LocalUserStore`] that publishes a `user.*` event for each change it writes.
pub struct PublishingLocalUsers {
    inner: Arc<dyn LocalUserStore>,
    events: Arc<dyn EventSink>,
}

impl PublishingLocalUsers {
    pub fn new(inner: Arc<dyn LocalUserStore>, events: Arc<dyn EventSink>) -> Self {
        Self { inner, events }
    }
}

#[async_trait]
impl LocalUserStore for PublishingLocalUsers {
    async fn get_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Option<LocalUser>, StoreError> {
        self.inner.get_local_user(account, local_id).await
    }

    async fn find_by_emails(
        &self,
        account: &AccountId,
        emails: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        self.inner.find_by_emails(account, emails).await
    }

    async fn find_linked(
        &self,
        tenant: &TenantId,
        object_ids: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        self.inner.find_linked(tenant, object_ids).await
    }

    async fn put_local_users(&self, users: &[LocalUser]) -> Result<(), StoreError> {
        let mut stored = Vec::with_capacity(users.len());
        for u in users {
            stored.push(
                self.inner
                    .get_local_user(&u.account_id, &u.local_id)
                    .await?,
            );
        }
        // The store stamps the same revisions (the one after the stored one) itself.
        let (_, events) = stamp_host_users(&stored, users);
        self.inner.put_local_users(users).await?;
        if !events.is_empty()
            && let Err(e) = self.events.publish(&events).await
        {
            tracing::warn!(error = %e, count = events.len(), "host user events not published");
        }
        Ok(())
    }

    async fn list_local_users(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<LocalUser>, StoreError> {
        self.inner.list_local_users(account, after, limit).await
    }
}
