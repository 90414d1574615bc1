//! [`TargetLookup`] on the DynamoDB table, and the handle index items the user put path keeps
//! (docs/data-model.md, "Name lookups").
//!
//! * Users by handle: one small item per user principal name and per mail,
//!   `T#<tenant>#UH#<handle>` / `U#<user id>`, and one per employee id (`employeeId`, trimmed),
//!   `T#<tenant>#UE#<employee id>` / `U#<user id>` (the HR webhooks' `EmployeeLookup`, in
//!   webhooks.rs), the handle in ASCII lower case (the lookups are ASCII case-insensitive),
//!   with the `cycle` and `page` of the user write that made it. A lookup is one consistent
//!   Query of the handle's partition plus a BatchGetItem of the users it names; only users
//!   whose stored name, mail or employee id still is the handle are returned, so an item left
//!   behind by a rename costs a read, never a wrong answer.
//! * The user put path (`put_mirror` in mirror.rs) writes the user item with `ReturnValues
//!   ALL_OLD`; when it landed, the handles the new state added get their items (condition: no
//!   item of a newer user version) and the handles it dropped lose theirs (condition: made by an
//!   older version). A user whose name and mail did not change costs nothing more. A put that
//!   did not land (a replayed or late page) gets the stored item back and makes sure its
//!   handles have their items: a crash between a landed put and its handle items is repaired
//!   by the redelivery of that page.
//! * Groups by name walk the tenant's group listing (a tenant has a few thousand groups at most);
//!   groups of a user walk the `gsi1` listing of the tenant's edges with a filter on the member
//!   (index keys only, no item reads) and read the matching edges back to keep present ones.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use entra_sync_core::actions::ports::TargetLookup;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{StoredGroup, StoredUser, TenantId, Version};
use entra_sync_core::ports::{MirrorStore, for_each_page};
use serde::Deserialize;

use super::actions::Put;
use super::{Item, SERVICE};
use crate::dynamo::{DynamoStore, GSI1, VERSION_CONDITION, get_n, get_s, n, retryable, s};
use crate::error::{AwsCallError, Class};

/// Groups read per page while looking for a name.
const SCAN_PAGE: usize = 1000;

/// The part of a stored user's body the handles come from.
#[derive(Deserialize)]
struct HandleView {
    user: HandleFields,
}

#[derive(Deserialize)]
struct HandleFields {
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    employee_id: Option<String>,
}

/// A user's handles: user principal name and mail, ASCII lower case, empty ones left out.
fn handles(upn: Option<&str>, mail: Option<&str>) -> BTreeSet<String> {
    [upn, mail]
        .into_iter()
        .flatten()
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The lookup key of an employee id: trimmed, ASCII lower case; none when empty.
pub(crate) fn employee_key(employee_id: &str) -> Option<String> {
    let k = employee_id.trim().to_ascii_lowercase();
    (!k.is_empty()).then_some(k)
}

/// The partition suffixes of a user's handle items: `UH#<name or mail>` and `UE#<employee id>`.
fn handle_keys(
    upn: Option<&str>,
    mail: Option<&str>,
    employee_id: Option<&str>,
) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = handles(upn, mail)
        .into_iter()
        .map(|h| format!("UH#{h}"))
        .collect();
    keys.extend(
        employee_id
            .and_then(employee_key)
            .map(|k| format!("UE#{k}")),
    );
    keys
}

/// The handles and version of a user item (as written by the put path).
fn item_handles(item: &Item) -> Result<(BTreeSet<String>, Version), StoreError> {
    let view: HandleView = serde_json::from_str(get_s(item, "body")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let version = Version::new(
        get_n(item, "cycle")?,
        u32::try_from(get_n(item, "page")?).unwrap_or(u32::MAX),
    );
    Ok((
        handle_keys(
            view.user.user_principal_name.as_deref(),
            view.user.mail.as_deref(),
            view.user.employee_id.as_deref(),
        ),
        version,
    ))
}

/// The partition of a handle item; `key` is one of [`handle_keys`].
fn handle_item_pk(t: &TenantId, key: &str) -> String {
    format!("T#{t}#{key}")
}

fn handle_pk(t: &TenantId, handle: &str) -> String {
    handle_item_pk(t, &format!("UH#{handle}"))
}

/// The partition of the handle items of users with the employee id `key` ([`employee_key`]).
pub(crate) fn employee_handle_pk(t: &TenantId, key: &str) -> String {
    handle_item_pk(t, &format!("UE#{key}"))
}

fn handle_sk(user_id: &str) -> String {
    format!("U#{user_id}")
}

fn version_values(v: Version) -> Vec<(&'static str, AttributeValue)> {
    vec![(":c", n(v.cycle)), (":p", n(v.page))]
}

impl DynamoStore {
    /// The user put path: one conditional put of a user item (`VERSION_CONDITION`) that keeps
    /// the user's handle items in step. Returns whether it landed.
    pub(crate) async fn put_user_item(
        &self,
        tenant: &TenantId,
        user_id: &str,
        item: Item,
        version: Version,
    ) -> Result<bool, StoreError> {
        let (new, _) = item_handles(&item)?;
        match self
            .put_returning(item, VERSION_CONDITION, version_values(version))
            .await?
        {
            Put::Landed { old } => {
                let old = match old {
                    Some(o) => item_handles(&o)?.0,
                    None => BTreeSet::new(),
                };
                for h in new.difference(&old) {
                    self.put_handle(tenant, h, user_id, version).await?;
                }
                for h in old.difference(&new) {
                    self.delete_if(
                        handle_item_pk(tenant, h),
                        handle_sk(user_id),
                        Some("#cycle < :c OR (#cycle = :c AND #page < :p)"),
                        version_values(version),
                    )
                    .await?;
                }
                Ok(true)
            }
            Put::Refused { stored } => {
                if let Some(stored) = stored {
                    let (hs, v) = item_handles(&stored)?;
                    for h in &hs {
                        self.put_handle(tenant, h, user_id, v).await?;
                    }
                }
                Ok(false)
            }
        }
    }

    /// The handle item, unless one made by a newer user version is there.
    async fn put_handle(
        &self,
        tenant: &TenantId,
        handle: &str,
        user_id: &str,
        v: Version,
    ) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(handle_item_pk(tenant, handle))),
            ("sk".to_owned(), s(handle_sk(user_id))),
            ("tenant".to_owned(), s(tenant.as_str())),
            ("user_id".to_owned(), s(user_id)),
            ("cycle".to_owned(), n(v.cycle)),
            ("page".to_owned(), n(v.page)),
        ]);
        self.put_if(item, VERSION_CONDITION, version_values(v))
            .await?;
        Ok(())
    }

    /// Every item of a table partition (consistent), or of a `gsi1` partition under `filter`.
    async fn query_all(
        &self,
        partition: String,
        on_index: bool,
        filter: Option<(&str, AttributeValue)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":p", s(partition.clone()))
                .set_exclusive_start_key(start.take());
            req = match on_index {
                true => req.index_name(GSI1).key_condition_expression("gsi1pk = :p"),
                false => req
                    .key_condition_expression("pk = :p")
                    .consistent_read(true),
            };
            if let Some((expr, v)) = &filter {
                req = req
                    .filter_expression(*expr)
                    .expression_attribute_values(":f", v.clone());
            }
            let res = req.send().await.map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
            })?;
            out.extend(res.items.unwrap_or_default());
            match res.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl TargetLookup for DynamoStore {
    async fn users_by_handle(
        &self,
        tenant: &TenantId,
        handle: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let key = handle.to_ascii_lowercase();
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let entries = self.query_all(handle_pk(tenant, &key), false, None).await?;
        let ids = entries
            .iter()
            .map(|e| get_s(e, "user_id").map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let mut users: Vec<StoredUser> = self
            .get_users(tenant, &ids)
            .await?
            .into_iter()
            .filter(|u| {
                [&u.user.user_principal_name, &u.user.mail]
                    .into_iter()
                    .any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(handle)))
            })
            .collect();
        users.sort_by(|a, b| a.user.id.cmp(&b.user.id));
        Ok(users)
    }

    async fn groups_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<StoredGroup>, StoreError> {
        let wanted = name.trim();
        let mut out = Vec::new();
        for_each_page(
            |after: Option<String>| async move {
                self.list_groups(tenant, after.as_deref(), SCAN_PAGE).await
            },
            |items| {
                out.extend(items.into_iter().filter(|g| {
                    g.group
                        .display_name
                        .as_deref()
                        .is_some_and(|d| d.trim().eq_ignore_ascii_case(wanted))
                }))
            },
        )
        .await?;
        Ok(out)
    }

    async fn groups_of_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let member_sk = s(format!("M#{user_id}"));
        let group_prefix = format!("T#{tenant}#G#");
        let per_shard = futures::future::try_join_all(
            self.edge_listing_partitions(tenant)
                .into_iter()
                .map(|p| self.query_all(p, true, Some(("sk = :f", member_sk.clone())))),
        )
        .await?;
        let mut keys = Vec::new();
        for row in per_shard.iter().flatten() {
            if let Some(g) = get_s(row, "pk")?.strip_prefix(&group_prefix) {
                keys.push((g.to_owned(), user_id.to_owned()));
            }
        }
        let mut groups: Vec<String> = self
            .get_memberships(tenant, &keys)
            .await?
            .into_iter()
            .filter(|m| m.present && m.member.id == user_id)
            .map(|m| m.group_id)
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_lower_case_distinct_and_never_empty() {
        let h = handles(Some("Ann@Contoso.com"), Some("ANN@contoso.com"));
        assert_eq!(h.into_iter().collect::<Vec<_>>(), ["ann@contoso.com"]);
        assert!(handles(Some(""), None).is_empty());
        assert_eq!(handles(None, Some("B@x")).len(), 1);
    }

    #[test]
    fn handle_keys_lead_with_the_tenant() {
        let t = TenantId::new("t1");
        assert_eq!(handle_pk(&t, "ann@contoso.com"), "T#t1#UH#ann@contoso.com");
        assert_eq!(employee_handle_pk(&t, "e123"), "T#t1#UE#e123");
        assert_eq!(handle_sk("u1"), "U#u1");
    }

    #[test]
    fn a_user_has_a_handle_item_per_name_mail_and_employee_id() {
        let keys = handle_keys(
            Some("Ann@Contoso.com"),
            Some("ann@contoso.com"),
            Some(" E123 "),
        );
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            ["UE#e123", "UH#ann@contoso.com"]
        );
        assert!(handle_keys(None, None, Some("  ")).is_empty());
        assert_eq!(employee_key(" E-9 ").as_deref(), Some("e-9"));
    }
}
