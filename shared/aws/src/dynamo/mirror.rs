use std::collections::HashMap;

use async_trait::async_trait;
use entra_sync_core::committed::CommittedChange;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{StoredGroup, StoredMembership, StoredUser, TenantId, Version};
use entra_sync_core::ports::{Listing, MirrorStore};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AwsCallError, Class};
use entra_sync_core::keys::{edge_listing_key, stable_hash};

use super::*;

/// Parallel conditional puts per call.
const PUT_CONCURRENCY: usize = 16;

/// The listing shard of a key: its stable hash, so a key keeps its shard across deployments.
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    u32::try_from(stable_hash(key) % u64::from(shards.max(1))).unwrap_or(0)
}

/// The kinds of mirror item, with their key layout.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Group,
    Edge,
}

impl Kind {
    fn listing(self) -> &'static str {
        match self {
            Kind::User => "USERS",
            Kind::Group => "GROUPS",
            Kind::Edge => "EDGES",
        }
    }
}

/// (pk, sk) of a mirror item; `key` is the user id, group id or "group/member" edge key.
fn mirror_key(t: &TenantId, kind: Kind, key: &str) -> (String, String) {
    match kind {
        Kind::User => (format!("T#{t}#U#{key}"), "USER".to_owned()),
        Kind::Group => (format!("T#{t}#G#{key}"), "GROUP".to_owned()),
        Kind::Edge => {
            let (g, m) = key.split_once('/').unwrap_or((key, ""));
            (format!("T#{t}#G#{g}"), format!("M#{m}"))
        }
    }
}

/// The write a stream record of a mirror item describes (its old and new images), or `None`
/// when the item is no mirror user, group or edge, or was deleted (mirror items are never
/// deleted: a removal is a versioned write).
pub(crate) fn mirror_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    let sk = get_s(new, "sk")?;
    let pk = get_s(new, "pk")?;
    let tenant = || get_s(new, "tenant").map(TenantId::new);
    let change = if sk == "USER" && pk.contains("#U#") {
        CommittedChange::User {
            tenant: tenant()?,
            before: old.map(body).transpose()?,
            after: body(new)?,
        }
    } else if sk == "GROUP" && pk.contains("#G#") {
        CommittedChange::Group {
            tenant: tenant()?,
            before: old.map(body).transpose()?,
            after: body(new)?,
        }
    } else if sk.starts_with("M#") && pk.contains("#G#") {
        CommittedChange::Membership {
            tenant: tenant()?,
            before: old.map(body).transpose()?,
            after: body(new)?,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(change))
}

impl DynamoStore {
    /// The `gsi1` partitions that list a tenant's membership edges (one per shard).
    pub(crate) fn edge_listing_partitions(&self, tenant: &TenantId) -> Vec<String> {
        (0..self.shards)
            .map(|shard| format!("T#{tenant}#{}#{shard}", Kind::Edge.listing()))
            .collect()
    }

    /// A tenant's users, groups or edges in key order: the smallest `limit` keys after
    /// `after` from every shard, merged, then the items read back consistently.
    async fn list_mirror<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        kind: Kind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<T>, StoreError> {
        let limit = limit.max(1);
        let per_shard = futures::future::try_join_all((0..self.shards).map(|shard| {
            self.query_index(
                format!("T#{tenant}#{}#{shard}", kind.listing()),
                after,
                limit,
                true,
            )
        }))
        .await?;
        let mut more = false;
        let mut rows = Vec::new();
        for (r, m) in per_shard {
            more |= m;
            rows.extend(r);
        }
        rows.sort();
        rows.dedup();
        if rows.len() > limit {
            more = true;
            rows.truncate(limit);
        }
        let next = if more {
            rows.last().map(|(k, _, _)| k.clone())
        } else {
            None
        };
        let items = self
            .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await?;
        Ok(Listing { items, next })
    }

    /// Conditional versioned puts, in parallel; returns how many landed.
    async fn put_mirror<'a, T: Serialize + 'a>(
        &self,
        tenant: &TenantId,
        kind: Kind,
        rows: impl Iterator<Item = (String, Version, &'a T)>,
    ) -> Result<u64, StoreError> {
        let mut prepared = Vec::new();
        for (key, version, value) in rows {
            let (pk, sk) = mirror_key(tenant, kind, &key);
            let shard = shard_of(&key, self.shards);
            let item = HashMap::from([
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(sk)),
                ("tenant".to_owned(), s(tenant.as_str())),
                ("cycle".to_owned(), n(version.cycle)),
                ("page".to_owned(), n(version.page)),
                ("body".to_owned(), s(to_json(value)?)),
                (
                    "gsi1pk".to_owned(),
                    s(format!("T#{tenant}#{}#{shard}", kind.listing())),
                ),
                ("gsi1sk".to_owned(), s(key.clone())),
            ]);
            prepared.push((key, item, version));
        }
        let landed: Vec<bool> = futures::stream::iter(prepared)
            .map(|(key, item, v)| async move {
                match kind {
                    // Users also keep their handle items (lookup.rs) in step.
                    Kind::User => self.put_user_item(tenant, &key, item, v).await,
                    Kind::Group | Kind::Edge => {
                        self.put_if(
                            item,
                            VERSION_CONDITION,
                            vec![(":c", n(v.cycle)), (":p", n(v.page))],
                        )
                        .await
                    }
                }
            })
            .buffer_unordered(PUT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(landed.into_iter().filter(|l| *l).count() as u64)
    }

    async fn get_mirror<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        kind: Kind,
        keys: impl Iterator<Item = String>,
    ) -> Result<Vec<T>, StoreError> {
        let keys = keys.map(|k| mirror_key(tenant, kind, &k)).collect();
        self.batch_get(keys).await?.iter().map(body).collect()
    }
}

#[async_trait]
impl MirrorStore for DynamoStore {
    async fn get_users(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredUser>, StoreError> {
        self.get_mirror(tenant, Kind::User, ids.iter().cloned())
            .await
    }

    async fn put_users(&self, tenant: &TenantId, users: &[StoredUser]) -> Result<u64, StoreError> {
        self.put_mirror(
            tenant,
            Kind::User,
            users.iter().map(|u| (u.user.id.clone(), u.version, u)),
        )
        .await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredUser>, StoreError> {
        self.list_mirror(tenant, Kind::User, after, limit).await
    }

    async fn get_groups(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<StoredGroup>, StoreError> {
        self.get_mirror(tenant, Kind::Group, ids.iter().cloned())
            .await
    }

    async fn put_groups(
        &self,
        tenant: &TenantId,
        groups: &[StoredGroup],
    ) -> Result<u64, StoreError> {
        self.put_mirror(
            tenant,
            Kind::Group,
            groups.iter().map(|g| (g.group.id.clone(), g.version, g)),
        )
        .await
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredGroup>, StoreError> {
        self.list_mirror(tenant, Kind::Group, after, limit).await
    }

    async fn get_memberships(
        &self,
        tenant: &TenantId,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredMembership>, StoreError> {
        self.get_mirror(
            tenant,
            Kind::Edge,
            keys.iter().map(|(g, m)| edge_listing_key(g, m)),
        )
        .await
    }

    async fn put_memberships(
        &self,
        tenant: &TenantId,
        edges: &[StoredMembership],
    ) -> Result<u64, StoreError> {
        self.put_mirror(
            tenant,
            Kind::Edge,
            edges
                .iter()
                .map(|e| (edge_listing_key(&e.group_id, &e.member.id), e.version, e)),
        )
        .await
    }

    async fn memberships_of_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Vec<StoredMembership>, StoreError> {
        let (pk, _) = mirror_key(tenant, Kind::Group, group_id);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :m)")
                .expression_attribute_values(":p", s(pk.clone()))
                .expression_attribute_values(":m", s("M#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
                })?;
            for item in res.items.unwrap_or_default() {
                out.push(body(&item)?);
            }
            match res.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn list_memberships(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<StoredMembership>, StoreError> {
        self.list_mirror(tenant, Kind::Edge, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use entra_sync_core::model::Stream;

    use super::*;

    #[test]
    fn every_partition_key_starts_with_the_tenant() {
        let t = TenantId::new("t1");
        for kind in [Kind::User, Kind::Group, Kind::Edge] {
            let (pk, _) = mirror_key(&t, kind, "g1/u1");
            assert!(pk.starts_with("T#t1#"), "{pk}");
        }
        assert!(super::super::cursors::marker_pk(&t, Stream::Users, 3).starts_with("T#t1#"));
        assert_eq!(tenant_pk(&t), "T#t1");
    }

    #[test]
    fn an_edge_lives_in_its_group_partition() {
        let t = TenantId::new("t1");
        assert_eq!(
            mirror_key(&t, Kind::Edge, "g1/u1"),
            ("T#t1#G#g1".to_owned(), "M#u1".to_owned())
        );
        assert_eq!(mirror_key(&t, Kind::Group, "g1").0, "T#t1#G#g1");
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        for key in ["a", "b", "user-1", "g/m"] {
            let s1 = shard_of(key, 8);
            assert_eq!(s1, shard_of(key, 8));
            assert!(s1 < 8);
        }
        let spread: std::collections::HashSet<u32> =
            (0..100).map(|i| shard_of(&format!("u{i}"), 8)).collect();
        assert_eq!(spread.len(), 8);
    }
}
