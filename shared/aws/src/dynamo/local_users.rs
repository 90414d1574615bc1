//! The host product's users on the DynamoDB table (docs/data-model.md, "Settings and local
//! users"), with the index items that find users by email and by directory link.
//!
//! * A local user: one item per user, `A#<account>#LU#<local id>` / `LOCALUSER`, with `rev` (N)
//!   for optimistic concurrency, `email`, `body`, and a sharded `gsi1` entry for the listing.
//! * Email index: `A#<account>#EMAIL#<email>` / `LU#<local id>`; link index:
//!   `T#<tenant>#LINK#<object id>` / `LU#<account>#<local id>`. Both carry `account`,
//!   `local_id` and the `rev` of the user write that made them.
//! * `put_local_users` reads the stored users (BatchGetItem), writes the index items the new
//!   emails and links need (BatchWriteItem, 25 per call), then each user item with a PutItem
//!   conditioned on the `rev` it read (16 in parallel), and only then deletes the index items of
//!   a changed email or link, conditioned on `rev < ` the landed revision (a later write that
//!   set the old value again keeps its item). A user whose email and link stay costs one
//!   PutItem. A lost race re-reads the user and plans again. No TransactWriteItems: it would
//!   double the write cost, and the order above already keeps every stored email and link
//!   findable; the worst a crash leaves is an index item nobody trusts (see below).
//! * Lookups query the index partitions (consistent reads), then read the users back with
//!   BatchGetItem and keep only those whose stored email or link still matches.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use entra_sync_core::committed::CommittedChange;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{Listing, LocalUserStore};
use entra_sync_core::provision::{DirectoryLink, LocalUser};
use futures::{StreamExt, TryStreamExt};

use super::{Item, SERVICE};
use crate::dynamo::{
    DEFAULT_LISTING_SHARDS, DynamoStore, MAX_ATTEMPTS, backoff, body, conditional, get_n, get_s,
    key_item, n, retry_unprocessed, retryable, s, shard_of, tenant_pk, to_json,
};
use crate::error::{AwsCallError, Class};

const USER_SK: &str = "LOCALUSER";
/// Users written (or index partitions queried) in parallel per call.
const CONCURRENCY: usize = 16;
/// BatchWriteItem takes at most 25 items.
const BATCH_WRITE_MAX: usize = 25;

fn user_key(account: &AccountId, local_id: &str) -> (String, String) {
    (format!("A#{account}#LU#{local_id}"), USER_SK.to_owned())
}

fn email_key(account: &AccountId, email: &str, local_id: &str) -> (String, String) {
    (email_pk(account, email), format!("LU#{local_id}"))
}

fn email_pk(account: &AccountId, email: &str) -> String {
    format!("A#{account}#EMAIL#{email}")
}

fn link_key(l: &DirectoryLink, account: &AccountId, local_id: &str) -> (String, String) {
    (
        link_pk(&l.tenant_id, &l.object_id),
        format!("LU#{account}#{local_id}"),
    )
}

fn link_pk(tenant: &TenantId, object_id: &str) -> String {
    format!("{}#LINK#{object_id}", tenant_pk(tenant))
}

fn listing_pk(account: &AccountId, shard: u32) -> String {
    format!("A#{account}#LOCALUSERS#{shard}")
}

fn distinct(keys: &[String]) -> Vec<String> {
    keys.iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Internal(Box::new(e))
}

/// The write a stream record of a host user's item describes, or `None` for any other item
/// (its email and link index items included, or a deleted one).
pub(crate) fn local_user_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    if get_s(new, "sk")? != USER_SK {
        return Ok(None);
    }
    Ok(Some(CommittedChange::HostUser {
        before: old.map(body).transpose()?,
        after: body(new)?,
    }))
}

/// An index item: its key, which user it points at, and the user's revision that wrote it.
fn index_item((pk, sk): (String, String), user: &LocalUser, rev: u64) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("account".to_owned(), s(user.account_id.0.clone())),
        ("local_id".to_owned(), s(user.local_id.clone())),
        ("rev".to_owned(), n(rev)),
    ])
}

/// One user's write: the user item at `rev` (conditioned on `expected`), the index items its
/// new email or link needs, and the index items of the old ones to remove once it landed.
struct Plan {
    user: LocalUser,
    rev: u64,
    expected: Option<u64>,
    add: Vec<Item>,
    remove: Vec<(String, String)>,
}

fn plan(user: LocalUser, current: &Current) -> Plan {
    let old = current.as_ref().map(|(u, _)| u);
    let expected = current.as_ref().map(|(_, r)| *r);
    let rev = expected.map_or(1, |r| r + 1);
    let (a, id) = (&user.account_id, user.local_id.as_str());
    let mut add = Vec::new();
    let mut remove = Vec::new();
    if old.map(|o| &o.email) != Some(&user.email) {
        if let Some(o) = old {
            remove.push(email_key(a, &o.email, id));
        }
        add.push(index_item(email_key(a, &user.email, id), &user, rev));
    }
    if old.map(|o| &o.link) != Some(&user.link) {
        if let Some(l) = old.and_then(|o| o.link.as_ref()) {
            remove.push(link_key(l, a, id));
        }
        if let Some(l) = &user.link {
            let mut index = index_item(link_key(l, a, id), &user, rev);
            index.insert("tenant".to_owned(), s(l.tenant_id.as_str()));
            add.push(index);
        }
    }
    Plan {
        user,
        rev,
        expected,
        add,
        remove,
    }
}

/// A stored user and the revision it was read at.
type Current = Option<(LocalUser, u64)>;

impl DynamoStore {
    fn local_user_item(&self, user: &LocalUser, rev: u64) -> Result<Item, StoreError> {
        let (pk, sk) = user_key(&user.account_id, &user.local_id);
        let shard = shard_of(&user.local_id, DEFAULT_LISTING_SHARDS);
        Ok(HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("account".to_owned(), s(user.account_id.0.clone())),
            ("local_id".to_owned(), s(user.local_id.clone())),
            ("email".to_owned(), s(user.email.clone())),
            ("rev".to_owned(), n(rev)),
            ("body".to_owned(), s(to_json(user)?)),
            ("gsi1pk".to_owned(), s(listing_pk(&user.account_id, shard))),
            ("gsi1sk".to_owned(), s(user.local_id.clone())),
        ]))
    }

    async fn read_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Current, StoreError> {
        let (pk, sk) = user_key(account, local_id);
        match self.get_item(pk, sk).await? {
            Some(item) => Ok(Some((body(&item)?, get_n(&item, "rev")?))),
            None => Ok(None),
        }
    }

    /// Land one planned write: the user item, conditioned on the revision it was planned
    /// over (its new index items are already written), then the removal of the old index
    /// items. A lost race re-reads the user and plans again.
    async fn land(&self, mut p: Plan) -> Result<(), StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
                let current = self
                    .read_local_user(&p.user.account_id, &p.user.local_id)
                    .await?;
                p = plan(p.user, &current);
                self.batch_put(std::mem::take(&mut p.add)).await?;
            }
            let item = self.local_user_item(&p.user, p.rev)?;
            let landed = match p.expected {
                None => {
                    self.put_if(item, "attribute_not_exists(pk)", vec![])
                        .await?
                }
                Some(r) => self.put_if(item, "rev = :r", vec![(":r", n(r))]).await?,
            };
            if landed {
                for key in std::mem::take(&mut p.remove) {
                    self.remove_index(key, p.rev).await?;
                }
                return Ok(());
            }
        }
        Err(StoreError::Conflict(format!(
            "local user {}/{}",
            p.user.account_id, p.user.local_id
        )))
    }

    /// Delete an index item a write at `rev` superseded, unless a later write (a higher
    /// revision) wrote it again.
    async fn remove_index(&self, (pk, sk): (String, String), rev: u64) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk, sk)))
            .condition_expression("rev < :r")
            .expression_attribute_values(":r", n(rev))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match AwsCallError::from_sdk(SERVICE, "DeleteItem", e, |e| conditional!(e)) {
                // Already gone, or written again by a later revision: leave it.
                err if err.class == Class::ConditionFailed => Ok(()),
                err => Err(err.into_store()),
            },
        }
    }

    /// Unconditional puts in BatchWriteItem calls of at most 25 items, a few in parallel,
    /// unprocessed items retried with backoff.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let chunks: Vec<Vec<Item>> = items
            .chunks(BATCH_WRITE_MAX)
            .map(<[Item]>::to_vec)
            .collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.batch_put_chunk(chunk))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn batch_put_chunk(&self, chunk: Vec<Item>) -> Result<(), StoreError> {
        let requests = chunk
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(internal)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        retry_unprocessed::<_, (), _, _>("BatchWriteItem", requests, |pending| async move {
            let res = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "BatchWriteItem", e, |e| retryable!(e))
                        .into_store()
                })?;
            let unprocessed = res
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
            Ok((Vec::new(), unprocessed))
        })
        .await?;
        Ok(())
    }

    /// The (account, local id) of every index item in these partitions (consistent queries,
    /// several partitions in parallel).
    async fn index_refs(&self, pks: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        let per_pk: Vec<Vec<(String, String)>> = futures::stream::iter(pks)
            .map(|pk| self.query_refs(pk))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(per_pk.into_iter().flatten().collect())
    }

    async fn query_refs(&self, pk: String) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let res = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
                })?;
            for item in res.items.unwrap_or_default() {
                out.push((
                    get_s(&item, "account")?.to_owned(),
                    get_s(&item, "local_id")?.to_owned(),
                ));
            }
            match res.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    /// Read users back by (account, local id), in local-id order, each once.
    async fn local_users_by_ref(
        &self,
        refs: Vec<(String, String)>,
    ) -> Result<Vec<LocalUser>, StoreError> {
        let keys = refs
            .iter()
            .map(|(a, id)| user_key(&AccountId(a.clone()), id))
            .collect();
        let mut users: Vec<LocalUser> = self
            .batch_get(keys)
            .await?
            .iter()
            .map(body)
            .collect::<Result<_, _>>()?;
        users.sort_by(|x, y| (&x.account_id, &x.local_id).cmp(&(&y.account_id, &y.local_id)));
        Ok(users)
    }
}

#[async_trait]
impl LocalUserStore for DynamoStore {
    async fn get_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Option<LocalUser>, StoreError> {
        Ok(self
            .read_local_user(account, local_id)
            .await?
            .map(|(u, _)| u))
    }

    async fn find_by_emails(
        &self,
        account: &AccountId,
        emails: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        let wanted = distinct(emails);
        let refs = self
            .index_refs(wanted.iter().map(|e| email_pk(account, e)).collect())
            .await?;
        // The index only points; the user item decides (an index entry a concurrent writer is
        // about to delete never returns a user whose email moved on).
        Ok(self
            .local_users_by_ref(refs)
            .await?
            .into_iter()
            .filter(|u| &u.account_id == account && wanted.binary_search(&u.email).is_ok())
            .collect())
    }

    async fn find_linked(
        &self,
        tenant: &TenantId,
        object_ids: &[String],
    ) -> Result<Vec<LocalUser>, StoreError> {
        let wanted = distinct(object_ids);
        let refs = self
            .index_refs(wanted.iter().map(|id| link_pk(tenant, id)).collect())
            .await?;
        Ok(self
            .local_users_by_ref(refs)
            .await?
            .into_iter()
            .filter(|u| {
                u.link.as_ref().is_some_and(|l| {
                    &l.tenant_id == tenant && wanted.binary_search(&l.object_id).is_ok()
                })
            })
            .collect())
    }

    async fn put_local_users(&self, users: &[LocalUser]) -> Result<(), StoreError> {
        // The last write of a key wins, as with upserts one after the other.
        let latest: BTreeMap<(&AccountId, &str), &LocalUser> = users
            .iter()
            .map(|u| ((&u.account_id, u.local_id.as_str()), u))
            .collect();
        let mut current: HashMap<(AccountId, String), (LocalUser, u64)> = HashMap::new();
        let keys = latest.keys().map(|(a, id)| user_key(a, id)).collect();
        for item in self.batch_get(keys).await? {
            let u: LocalUser = body(&item)?;
            let rev = get_n(&item, "rev")?;
            current.insert((u.account_id.clone(), u.local_id.clone()), (u, rev));
        }
        let mut plans: Vec<Plan> = latest
            .into_values()
            .map(|u| {
                let read = current.remove(&(u.account_id.clone(), u.local_id.clone()));
                let mut u = u.clone();
                u.revision = read.as_ref().map_or(0, |(s, _)| s.revision) + 1;
                plan(u, &read)
            })
            .collect();
        // The index items first: a reader only trusts an index item whose user item agrees, so
        // one written early (or left by a write that then lost its race) misleads nobody, while
        // the user item never carries an email or link its index item lacks.
        let adds = plans
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.add))
            .collect();
        self.batch_put(adds).await?;
        futures::stream::iter(plans)
            .map(|p| self.land(p))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn list_local_users(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<LocalUser>, StoreError> {
        if limit == 0 {
            return Ok(Listing {
                items: Vec::new(),
                next: None,
            });
        }
        // One more than asked from every shard: whether another page follows is then exact.
        let per_shard = futures::future::try_join_all((0..DEFAULT_LISTING_SHARDS).map(|shard| {
            self.query_index(
                listing_pk(account, shard),
                after,
                limit.saturating_add(1),
                true,
            )
        }))
        .await?;
        let mut rows: Vec<(String, String, String)> =
            per_shard.into_iter().flat_map(|(r, _)| r).collect();
        rows.sort();
        rows.dedup();
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match more {
            true => rows.last().map(|(k, _, _)| k.clone()),
            false => None,
        };
        let items = self
            .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await?;
        Ok(Listing { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_data_leads_with_the_tenant_and_users_with_the_account() {
        let t = TenantId::new("t1");
        let a = AccountId("a1".into());
        assert!(link_pk(&t, "o1").starts_with("T#t1#"));
        assert!(user_key(&a, "u1").0.starts_with("A#a1#"));
        assert!(email_pk(&a, "x@y.z").starts_with("A#a1#"));
        assert!(listing_pk(&a, 3).starts_with("A#a1#"));
        assert_ne!(
            user_key(&a, "u1").0,
            user_key(&a, "u2").0,
            "one partition per user"
        );
    }
}
