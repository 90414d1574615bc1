use async_trait::async_trait;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{StoredGroup, StoredMembership, StoredUser, TenantId};
use entra_sync_core::ports::{Listing, MirrorStore};
use rusqlite::params;

use entra_sync_core::committed::{directory_group_event, directory_user_event, membership_event};
use entra_sync_core::keys::edge_listing_key;

use super::*;

#[async_trait]
impl MirrorStore for SqliteStore {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError> {
        self.get_many("users", "id", tenant, ids.to_vec()).await
    }

    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError> {
        let items = users
            .iter()
            .map(|u| (u.user.id.clone(), u.version, u.clone()))
            .collect();
        self.put_versioned("users", "id", tenant, items, directory_user_event)
            .await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError> {
        self.list_rows("users", "id", tenant, after, limit).await
    }

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError> {
        self.get_many("groups", "id", tenant, ids.to_vec()).await
    }

    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError> {
        let items = groups
            .iter()
            .map(|g| (g.group.id.clone(), g.version, g.clone()))
            .collect();
        self.put_versioned("groups", "id", tenant, items, directory_group_event)
            .await
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError> {
        self.list_rows("groups", "id", tenant, after, limit).await
    }

    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let keys = keys.iter().map(|(g, m)| edge_listing_key(g, m)).collect();
        self.get_many("memberships", "edge", tenant, keys).await
    }

    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError> {
        let items = edges
            .iter()
            .map(|e| {
                (
                    edge_listing_key(&e.group_id, &e.member.id),
                    e.version,
                    e.clone(),
                )
            })
            .collect();
        self.put_versioned("memberships", "edge", tenant, items, membership_event)
            .await
    }

    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let t = tenant.0.clone();
        let lo = format!("{group_id}/");
        // '0' is the character after '/', so [lo, hi) is exactly the group's prefix.
        let hi = format!("{group_id}0");
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM memberships WHERE tenant_id = ?1 AND edge >= ?2 AND edge < ?3",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(params![t, lo, hi], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(from_json(&r.map_err(internal)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError> {
        self.list_rows("memberships", "edge", tenant, after, limit)
            .await
    }
}
