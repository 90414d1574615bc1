//! [`ActionStore`] and [`WorkflowStore`] on the DynamoDB table (docs/data-model.md, "Actions and
//! workflows", has the items and every access pattern).
//!
//! * An action is one item `T#<tenant>#A#<id>` / `ACTION` (`rev`, `user_id`, `action_status`,
//!   body) with a `gsi1` entry `T#<tenant>#ACTIONS` / listing key: the tenant's audit trail,
//!   newest first. A workflow is `T#<tenant>#W#<id>` / `WORKFLOW` (`rev`, `due_at` while
//!   scheduled, body) with the `gsi1` entry `T#<tenant>#WORKFLOWS` / listing key.
//! * The filtered listings and the due list are index items in the table itself, read with
//!   consistent queries: `T#<tenant>#AU#<user>` / listing key (a user's actions),
//!   `T#<tenant>#AS#<status>` / listing key (actions in a status), and `DUE` /
//!   `<due time>#<tenant>#<workflow id>` (scheduled workflows of every tenant, oldest first).
//!   Each carries the record's id (`ref_id`), the `rev` of the write that made it and when it
//!   was written (`created_ms`).
//! * Writes put the new index items first (condition: absent or older `rev`), then the record
//!   (conditional: `attribute_not_exists(pk)` to create, `rev = :expected` to update, returning
//!   the old item), then delete the index items the new state superseded (condition: `rev <`
//!   the new one, so a later write that set the old value again keeps its item). A write that
//!   loses its condition removes the index items it wrote that do not describe the stored
//!   record. No TransactWriteItems: it would double every write, and this order already keeps
//!   every stored state listed; a crash leaves at most an index item nobody trusts.
//! * Readers verify every index hit against the record it names and skip those that do not
//!   describe it: the record decides, an index item only points. The due list also deletes the
//!   stale entries it meets (the scheduler that reads it writes workflows anyway), so an entry a
//!   crashed writer left behind is read once, not on every tick.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, SecondsFormat, Utc};
use entra_sync_core::actions::ports::{
    ActionFilter, ActionStore, WorkflowStore, action_listing_key, workflow_listing_key,
};
use entra_sync_core::actions::{ActionRecord, Workflow, WorkflowStatus};
use entra_sync_core::committed::CommittedChange;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::Listing;
use serde::de::DeserializeOwned;

use super::{Item, SERVICE};
use crate::dynamo::{
    DynamoStore, GSI1, body, conditional, get_n, get_s, key_item, n, retryable, s, to_json,
};
use crate::error::{AwsCallError, Class};

const ACTION_SK: &str = "ACTION";
const WORKFLOW_SK: &str = "WORKFLOW";
/// The partition of the due list. It lists workflows of every tenant for the one scheduler
/// that runs them, so it cannot lead with a tenant; its items hold ids and times only.
pub const DUE_PK: &str = "DUE";
/// A due entry whose workflow never appeared is removed after this long (a create that died
/// between its entry and the workflow item).
const ORPHAN_GRACE: chrono::Duration = chrono::Duration::hours(1);

fn action_pk(t: &TenantId, id: &str) -> String {
    format!("T#{t}#A#{id}")
}

fn workflow_pk(t: &TenantId, id: &str) -> String {
    format!("T#{t}#W#{id}")
}

fn user_actions_pk(t: &TenantId, user: &str) -> String {
    format!("T#{t}#AU#{user}")
}

fn status_actions_pk(t: &TenantId, status: &str) -> String {
    format!("T#{t}#AS#{status}")
}

/// The sortable text of a due time: RFC 3339 in UTC with nanoseconds, fixed width, so text
/// order is time order and no precision is lost.
fn due_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn due_sk(due: &str, t: &TenantId, id: &str) -> String {
    format!("{due}#{t}#{id}")
}

fn due_of(w: &Workflow) -> Option<String> {
    match w.status {
        WorkflowStatus::Scheduled { at } => Some(due_text(at)),
        _ => None,
    }
}

/// The committed write of an action item (`ACTION`), for the table's stream: its old and new
/// bodies. Index and due items, and a deleted action, give `None`.
pub(crate) fn action_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    if get_s(new, "sk")? != ACTION_SK {
        return Ok(None);
    }
    Ok(Some(CommittedChange::Action {
        before: old.map(body).transpose()?.map(Box::new),
        after: Box::new(body(new)?),
    }))
}

/// The committed write of a workflow item (`WORKFLOW`), for the table's stream.
pub(crate) fn workflow_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    if get_s(new, "sk")? != WORKFLOW_SK {
        return Ok(None);
    }
    Ok(Some(CommittedChange::Workflow {
        before: old.map(body).transpose()?.map(Box::new),
        after: Box::new(body(new)?),
    }))
}

/// What an index item says about the record it names.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// It describes the record as stored.
    Valid,
    /// It does not, and never will again unless rewritten: delete it, on the condition that
    /// its `rev` is still at most `upto` (`None`: unconditionally, its key can never fit).
    Stale { upto: Option<u64> },
    /// The record is absent, or older than the entry: a write is in flight (or died). Skip.
    Pending,
}

/// The rule every index item is judged by. `key_fits`: the entry's key could belong to the
/// record (its listing key or id); `value_fits`: the record has the indexed value now.
fn check(entry_rev: u64, record_rev: Option<u64>, key_fits: bool, value_fits: bool) -> Check {
    match record_rev {
        None => Check::Pending,
        Some(_) if !key_fits => Check::Stale { upto: None },
        Some(_) if value_fits => Check::Valid,
        Some(r) if entry_rev <= r => Check::Stale { upto: Some(r) },
        Some(_) => Check::Pending,
    }
}

/// The outcome of a conditional put that returns the item it replaced or kept.
pub(crate) enum Put {
    /// Written; `old` is the item it replaced, if there was one.
    Landed { old: Option<Item> },
    /// The condition failed; `stored` is the item as it is (absent: there is none).
    Refused { stored: Option<Item> },
}

/// A record's conditional write, with the stored record decoded when the condition failed.
pub(crate) enum Written<T> {
    /// Written; `old` is the item it replaced, if there was one.
    Landed { old: Option<Item> },
    /// The condition failed; `stored` is the record as it is (absent: there is none).
    Refused { stored: Option<T> },
}

fn non_empty(item: Option<Item>) -> Option<Item> {
    item.filter(|i| !i.is_empty())
}

fn decode<T: DeserializeOwned>(item: Option<&Item>) -> Result<Option<T>, StoreError> {
    item.map(body).transpose()
}

fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

impl DynamoStore {
    /// Put a new record's `item` unless its key exists.
    pub(crate) async fn put_new<T: DeserializeOwned>(
        &self,
        item: Item,
    ) -> Result<Written<T>, StoreError> {
        self.put_record(item, "attribute_not_exists(pk)", vec![])
            .await
    }

    /// Replace a record's `item` if its stored `rev` is `expected_rev`.
    pub(crate) async fn put_if_rev<T: DeserializeOwned>(
        &self,
        item: Item,
        expected_rev: u64,
    ) -> Result<Written<T>, StoreError> {
        self.put_record(item, "rev = :e", vec![(":e", n(expected_rev))])
            .await
    }

    async fn put_record<T: DeserializeOwned>(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Written<T>, StoreError> {
        Ok(match self.put_returning(item, condition, values).await? {
            Put::Landed { old } => Written::Landed { old },
            Put::Refused { stored } => Written::Refused {
                stored: decode(stored.as_ref())?,
            },
        })
    }

    /// The record under (`pk`, `sk`), if there is one.
    pub(crate) async fn get_record<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let item = self.get_item(pk, sk.to_owned()).await?;
        decode(item.as_ref())
    }

    /// A conditional PutItem that returns the replaced item when it lands and the stored item
    /// when its condition fails (both at no extra capacity cost).
    pub(crate) async fn put_returning(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Put, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        // `cycle` and `page` are DynamoDB reserved words.
        if condition.contains("#cycle") {
            req = req.expression_attribute_names("#cycle", "cycle");
        }
        if condition.contains("#page") {
            req = req.expression_attribute_names("#page", "page");
        }
        match req.send().await {
            Ok(out) => Ok(Put::Landed {
                old: non_empty(out.attributes),
            }),
            Err(e) => {
                if let Some(PutItemError::ConditionalCheckFailedException(c)) = e.as_service_error()
                {
                    return Ok(Put::Refused {
                        stored: non_empty(c.item.clone()),
                    });
                }
                Err(AwsCallError::from_sdk(SERVICE, "PutItem", e, |e| retryable!(e)).into_store())
            }
        }
    }

    /// DeleteItem under `condition` (none: unconditional). A failed condition is no error:
    /// the item is needed after all. Returns whether it was deleted.
    pub(crate) async fn delete_if(
        &self,
        pk: String,
        sk: String,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(pk, sk)))
            .set_condition_expression(condition.map(str::to_owned));
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        if condition.is_some_and(|c| c.contains("#cycle")) {
            req = req.expression_attribute_names("#cycle", "cycle");
        }
        if condition.is_some_and(|c| c.contains("#page")) {
            req = req.expression_attribute_names("#page", "page");
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => match AwsCallError::from_sdk(SERVICE, "DeleteItem", e, |e| conditional!(e)) {
                err if err.class == Class::ConditionFailed => Ok(false),
                err => Err(err.into_store()),
            },
        }
    }

    /// One page of a query in sort-key order: the table's partition `pk = value` (consistent)
    /// or `gsi1`'s. `below`: only sort keys under it.
    async fn query_page(
        &self,
        on_index: bool,
        value: String,
        below: Option<String>,
        forward: bool,
        limit: usize,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let (pk, sk) = match on_index {
            true => ("gsi1pk", "gsi1sk"),
            false => ("pk", "sk"),
        };
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#p", pk)
            .expression_attribute_values(":p", s(value))
            .scan_index_forward(forward)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        req = match below {
            Some(b) => req
                .key_condition_expression("#p = :p AND #s < :b")
                .expression_attribute_names("#s", sk)
                .expression_attribute_values(":b", s(b)),
            None => req.key_condition_expression("#p = :p"),
        };
        req = match on_index {
            true => req.index_name(GSI1),
            false => req.consistent_read(true),
        };
        let out = req.send().await.map_err(|e| {
            AwsCallError::from_sdk(SERVICE, "Query", e, |e| retryable!(e)).into_store()
        })?;
        Ok((
            out.items.unwrap_or_default(),
            non_empty(out.last_evaluated_key),
        ))
    }

    /// The items of `keys`, by key (consistent).
    async fn items_by_key(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<HashMap<(String, String), Item>, StoreError> {
        let mut out = HashMap::new();
        for item in self.batch_get(keys).await? {
            let k = (
                get_s(&item, "pk")?.to_owned(),
                get_s(&item, "sk")?.to_owned(),
            );
            out.insert(k, item);
        }
        Ok(out)
    }

    /// Put an index item unless a newer one (by `rev`) is there.
    async fn put_entry(&self, item: Item, rev: u64) -> Result<(), StoreError> {
        self.put_if(
            item,
            "attribute_not_exists(pk) OR rev < :r",
            vec![(":r", n(rev))],
        )
        .await?;
        Ok(())
    }

    /// Delete an index item judged stale.
    async fn drop_entry(
        &self,
        pk: String,
        sk: String,
        upto: Option<u64>,
    ) -> Result<(), StoreError> {
        match upto {
            Some(r) => {
                self.delete_if(pk, sk, Some("rev <= :r"), vec![(":r", n(r))])
                    .await?
            }
            None => self.delete_if(pk, sk, None, vec![]).await?,
        };
        Ok(())
    }

    /// Delete the index item a write superseded (unless a later write made it again).
    async fn drop_superseded(
        &self,
        pk: String,
        sk: String,
        new_rev: u64,
    ) -> Result<(), StoreError> {
        self.delete_if(pk, sk, Some("rev < :r"), vec![(":r", n(new_rev))])
            .await?;
        Ok(())
    }
}

/// An index item in the table: `ref_id` names the record, `rev` the write that made it.
fn entry(tenant: &TenantId, pk: String, sk: String, ref_id: &str, rev: u64) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("tenant".to_owned(), s(tenant.as_str())),
        ("ref_id".to_owned(), s(ref_id)),
        ("rev".to_owned(), n(rev)),
        ("created_ms".to_owned(), n(Utc::now().timestamp_millis())),
    ])
}

/// The index items an action is listed by.
enum ActionEntry {
    User(String),
    Status(String),
}

impl ActionEntry {
    fn pk(&self, t: &TenantId) -> String {
        match self {
            ActionEntry::User(u) => user_actions_pk(t, u),
            ActionEntry::Status(st) => status_actions_pk(t, st),
        }
    }

    /// Whether the record is listed under this entry's value now.
    fn fits(&self, r: &ActionRecord) -> bool {
        match self {
            ActionEntry::User(u) => r.target.user_id == *u,
            ActionEntry::Status(st) => r.status.as_str() == st,
        }
    }

    /// Judge the entry (`listing_key`, `rev`) against the stored record.
    fn check(&self, listing_key: &str, rev: u64, stored: Option<&ActionRecord>) -> Check {
        check(
            rev,
            stored.map(|r| r.rev),
            stored.is_some_and(|r| action_listing_key(r) == listing_key),
            stored.is_some_and(|r| self.fits(r)),
        )
    }
}

fn action_entries(r: &ActionRecord) -> [ActionEntry; 2] {
    [
        ActionEntry::User(r.target.user_id.clone()),
        ActionEntry::Status(r.status.as_str().to_owned()),
    ]
}

impl DynamoStore {
    fn action_item(&self, r: &ActionRecord) -> Result<Item, StoreError> {
        let t = &r.tenant_id;
        Ok(HashMap::from([
            ("pk".to_owned(), s(action_pk(t, &r.id))),
            ("sk".to_owned(), s(ACTION_SK)),
            ("tenant".to_owned(), s(t.as_str())),
            ("rev".to_owned(), n(r.rev)),
            ("user_id".to_owned(), s(r.target.user_id.clone())),
            ("action_status".to_owned(), s(r.status.as_str())),
            ("body".to_owned(), s(to_json(r)?)),
            ("gsi1pk".to_owned(), s(format!("T#{t}#ACTIONS"))),
            ("gsi1sk".to_owned(), s(action_listing_key(r))),
        ]))
    }

    async fn put_action_entries(
        &self,
        r: &ActionRecord,
        which: &[ActionEntry],
    ) -> Result<(), StoreError> {
        let key = action_listing_key(r);
        futures::future::try_join_all(which.iter().map(|e| {
            let item = entry(&r.tenant_id, e.pk(&r.tenant_id), key.clone(), &r.id, r.rev);
            self.put_entry(item, r.rev)
        }))
        .await?;
        Ok(())
    }

    /// After a refused write: remove the entries `mine` wrote that do not describe `stored`.
    async fn drop_lost_action_entries(
        &self,
        mine: &ActionRecord,
        which: &[ActionEntry],
        stored: Option<&ActionRecord>,
    ) -> Result<(), StoreError> {
        let key = action_listing_key(mine);
        for e in which {
            let pk = e.pk(&mine.tenant_id);
            match (stored, e.check(&key, mine.rev, stored)) {
                (_, Check::Stale { upto }) => self.drop_entry(pk, key.clone(), upto).await?,
                // Nothing is stored: the write that made this entry was the only one.
                (None, _) => {
                    self.delete_if(pk, key.clone(), Some("rev = :r"), vec![(":r", n(mine.rev))])
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ActionStore for DynamoStore {
    async fn create_action(
        &self,
        record: &ActionRecord,
    ) -> Result<Option<ActionRecord>, StoreError> {
        let entries = action_entries(record);
        self.put_action_entries(record, &entries).await?;
        match self.put_new(self.action_item(record)?).await? {
            Written::Landed { .. } => Ok(None),
            Written::Refused { stored } => {
                self.drop_lost_action_entries(record, &entries, stored.as_ref())
                    .await?;
                match stored {
                    Some(s) => Ok(Some(s)),
                    None => Err(StoreError::Conflict(format!("action {}", record.id))),
                }
            }
        }
    }

    async fn get_action(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ActionRecord>, StoreError> {
        self.get_record(action_pk(tenant, id), ACTION_SK).await
    }

    async fn update_action(
        &self,
        record: &ActionRecord,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        // The status entry first: the stored state is always listed under its status. The user
        // entry was written by the create (an action's target does not change after submit).
        let status = [ActionEntry::Status(record.status.as_str().to_owned())];
        self.put_action_entries(record, &status).await?;
        let landed = self
            .put_if_rev(self.action_item(record)?, expected_rev)
            .await?;
        let old = match landed {
            Written::Landed { old } => old,
            Written::Refused { stored } => {
                self.drop_lost_action_entries(record, &status, stored.as_ref())
                    .await?;
                return Err(StoreError::Conflict(format!("action {}", record.id)));
            }
        };
        let key = action_listing_key(record);
        let t = &record.tenant_id;
        if let Some(old) = old {
            if let Some(was) = opt_s(&old, "action_status")
                && was != record.status.as_str()
            {
                self.drop_superseded(status_actions_pk(t, &was), key.clone(), record.rev)
                    .await?;
            }
            if let Some(was) = opt_s(&old, "user_id")
                && was != record.target.user_id
            {
                self.put_action_entries(
                    record,
                    &[ActionEntry::User(record.target.user_id.clone())],
                )
                .await?;
                self.drop_superseded(user_actions_pk(t, &was), key, record.rev)
                    .await?;
            }
        }
        Ok(())
    }

    async fn list_actions(
        &self,
        tenant: &TenantId,
        filter: &ActionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ActionRecord>, StoreError> {
        // The narrowest source: a user's actions, else a status, else the whole audit trail;
        // the other filter (if both are given) is applied to the records read.
        let source = match (&filter.user_id, &filter.status) {
            (Some(u), _) => Some(ActionEntry::User(u.clone())),
            (None, Some(st)) => Some(ActionEntry::Status(st.clone())),
            (None, None) => None,
        };
        let limit = limit.max(1);
        let want = limit + 1;
        let mut found: Vec<(String, ActionRecord)> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (rows, last) = match &source {
                Some(e) => {
                    self.query_page(
                        false,
                        e.pk(tenant),
                        after.map(str::to_owned),
                        false,
                        want - found.len(),
                        start.take(),
                    )
                    .await?
                }
                None => {
                    self.query_page(
                        true,
                        format!("T#{tenant}#ACTIONS"),
                        after.map(str::to_owned),
                        false,
                        want - found.len(),
                        start.take(),
                    )
                    .await?
                }
            };
            // (listing key, record key, entry rev) per row, in listing order.
            let mut hits = Vec::with_capacity(rows.len());
            for row in &rows {
                match &source {
                    Some(_) => hits.push((
                        get_s(row, "sk")?.to_owned(),
                        (
                            action_pk(tenant, get_s(row, "ref_id")?),
                            ACTION_SK.to_owned(),
                        ),
                        Some(get_n(row, "rev")?),
                    )),
                    None => hits.push((
                        get_s(row, "gsi1sk")?.to_owned(),
                        (get_s(row, "pk")?.to_owned(), get_s(row, "sk")?.to_owned()),
                        None,
                    )),
                }
            }
            let stored = self
                .items_by_key(hits.iter().map(|(_, k, _)| k.clone()).collect())
                .await?;
            for (listing_key, k, entry_rev) in hits {
                let record: Option<ActionRecord> = decode(stored.get(&k))?;
                let listed = match (&source, entry_rev, &record) {
                    (Some(e), Some(rev), _) => {
                        e.check(&listing_key, rev, record.as_ref()) == Check::Valid
                    }
                    (_, _, Some(r)) => action_listing_key(r) == listing_key,
                    _ => false,
                };
                if let Some(r) = record
                    && listed
                    && filter.matches(&r)
                {
                    found.push((listing_key, r));
                }
            }
            match last {
                Some(l) if found.len() < want => start = Some(l),
                _ => break,
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next = match more {
            true => found.last().map(|(k, _)| k.clone()),
            false => None,
        };
        Ok(Listing {
            items: found.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
}

/// Whether a workflow is due under the due entry `due`.
fn due_fits(w: &Workflow, due: &str) -> bool {
    due_of(w).as_deref() == Some(due)
}

impl DynamoStore {
    fn workflow_item(&self, w: &Workflow) -> Result<Item, StoreError> {
        let t = &w.tenant_id;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(workflow_pk(t, &w.id))),
            ("sk".to_owned(), s(WORKFLOW_SK)),
            ("tenant".to_owned(), s(t.as_str())),
            ("rev".to_owned(), n(w.rev)),
            ("body".to_owned(), s(to_json(w)?)),
            ("gsi1pk".to_owned(), s(format!("T#{t}#WORKFLOWS"))),
            ("gsi1sk".to_owned(), s(workflow_listing_key(w))),
        ]);
        if let Some(due) = due_of(w) {
            item.insert("due_at".to_owned(), s(due));
        }
        Ok(item)
    }

    async fn put_due_entry(&self, w: &Workflow) -> Result<(), StoreError> {
        if let Some(due) = due_of(w) {
            let sk = due_sk(&due, &w.tenant_id, &w.id);
            self.put_entry(
                entry(&w.tenant_id, DUE_PK.to_owned(), sk, &w.id, w.rev),
                w.rev,
            )
            .await?;
        }
        Ok(())
    }

    /// After a refused write: remove the due entry `mine` wrote unless it describes `stored`.
    async fn drop_lost_due_entry(
        &self,
        mine: &Workflow,
        stored: Option<&Workflow>,
    ) -> Result<(), StoreError> {
        let Some(due) = due_of(mine) else {
            return Ok(());
        };
        let sk = due_sk(&due, &mine.tenant_id, &mine.id);
        match stored {
            Some(w) => {
                if let Check::Stale { upto } = check(mine.rev, Some(w.rev), true, due_fits(w, &due))
                {
                    self.drop_entry(DUE_PK.to_owned(), sk, upto).await?;
                }
            }
            None => {
                self.delete_if(
                    DUE_PK.to_owned(),
                    sk,
                    Some("rev = :r"),
                    vec![(":r", n(mine.rev))],
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl WorkflowStore for DynamoStore {
    async fn create_workflow(&self, workflow: &Workflow) -> Result<Option<Workflow>, StoreError> {
        self.put_due_entry(workflow).await?;
        match self.put_new(self.workflow_item(workflow)?).await? {
            Written::Landed { .. } => Ok(None),
            Written::Refused { stored } => {
                self.drop_lost_due_entry(workflow, stored.as_ref()).await?;
                match stored {
                    Some(s) => Ok(Some(s)),
                    None => Err(StoreError::Conflict(format!("workflow {}", workflow.id))),
                }
            }
        }
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        self.get_record(workflow_pk(tenant, id), WORKFLOW_SK).await
    }

    async fn update_workflow(
        &self,
        workflow: &Workflow,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        self.put_due_entry(workflow).await?;
        let old = match self
            .put_if_rev(self.workflow_item(workflow)?, expected_rev)
            .await?
        {
            Written::Landed { old } => old,
            Written::Refused { stored } => {
                self.drop_lost_due_entry(workflow, stored.as_ref()).await?;
                return Err(StoreError::Conflict(format!("workflow {}", workflow.id)));
            }
        };
        if let Some(was) = old.as_ref().and_then(|o| opt_s(o, "due_at"))
            && Some(&was) != due_of(workflow).as_ref()
        {
            let sk = due_sk(&was, &workflow.tenant_id, &workflow.id);
            self.drop_superseded(DUE_PK.to_owned(), sk, workflow.rev)
                .await?;
        }
        Ok(())
    }

    async fn list_workflows(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Workflow>, StoreError> {
        let limit = limit.max(1);
        let want = limit + 1;
        let mut found: Vec<(String, Workflow)> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (rows, last) = self
                .query_page(
                    true,
                    format!("T#{tenant}#WORKFLOWS"),
                    after.map(str::to_owned),
                    false,
                    want - found.len(),
                    start.take(),
                )
                .await?;
            let mut hits = Vec::with_capacity(rows.len());
            for row in &rows {
                hits.push((
                    get_s(row, "gsi1sk")?.to_owned(),
                    (get_s(row, "pk")?.to_owned(), get_s(row, "sk")?.to_owned()),
                ));
            }
            let stored = self
                .items_by_key(hits.iter().map(|(_, k)| k.clone()).collect())
                .await?;
            for (listing_key, k) in hits {
                if let Some(w) = decode::<Workflow>(stored.get(&k))? {
                    found.push((listing_key, w));
                }
            }
            match last {
                Some(l) if found.len() < want => start = Some(l),
                _ => break,
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next = match more {
            true => found.last().map(|(k, _)| k.clone()),
            false => None,
        };
        Ok(Listing {
            items: found.into_iter().map(|(_, w)| w).collect(),
            next,
        })
    }

    async fn due_workflows(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(TenantId, String)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // `<due>#...` sorts below `<now>$` exactly when due <= now ('$' follows '#'), as every
        // due text has the same width.
        let below = format!("{}$", due_text(now));
        let orphan_before = (Utc::now() - ORPHAN_GRACE).timestamp_millis();
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (rows, last) = self
                .query_page(
                    false,
                    DUE_PK.to_owned(),
                    Some(below.clone()),
                    true,
                    limit - out.len(),
                    start.take(),
                )
                .await?;
            let mut hits = Vec::with_capacity(rows.len());
            for row in &rows {
                let sk = get_s(row, "sk")?.to_owned();
                let tenant = TenantId::new(get_s(row, "tenant")?);
                let id = get_s(row, "ref_id")?.to_owned();
                let key = (workflow_pk(&tenant, &id), WORKFLOW_SK.to_owned());
                let created = get_n(row, "created_ms").unwrap_or(0);
                hits.push((sk, tenant, id, key, get_n(row, "rev")?, created));
            }
            let stored = self
                .items_by_key(hits.iter().map(|h| h.3.clone()).collect())
                .await?;
            for (sk, tenant, id, key, rev, created) in hits {
                let w: Option<Workflow> = decode(stored.get(&key))?;
                let due = sk.split('#').next().unwrap_or_default();
                let verdict = check(
                    rev,
                    w.as_ref().map(|w| w.rev),
                    true,
                    w.as_ref().is_some_and(|w| due_fits(w, due)),
                );
                match verdict {
                    Check::Valid => out.push((tenant, id)),
                    Check::Stale { upto } => self.drop_entry(DUE_PK.to_owned(), sk, upto).await?,
                    Check::Pending
                        if w.is_none()
                            && i64::try_from(created).unwrap_or(i64::MAX) < orphan_before =>
                    {
                        self.delete_if(
                            DUE_PK.to_owned(),
                            sk,
                            Some("created_ms < :c"),
                            vec![(":c", n(orphan_before))],
                        )
                        .await?;
                    }
                    Check::Pending => {}
                }
            }
            match last {
                Some(l) if out.len() < limit => start = Some(l),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_judged_by_the_record_it_names() {
        // The record is absent: a create in flight (or one that died).
        assert_eq!(check(0, None, true, true), Check::Pending);
        // Its key can never belong to the record (a create that lost to another requested_at).
        assert_eq!(check(0, Some(3), false, true), Check::Stale { upto: None });
        assert_eq!(check(7, Some(3), true, true), Check::Valid);
        // The record moved on: stale, as long as no later write made the entry again.
        assert_eq!(
            check(2, Some(3), true, false),
            Check::Stale { upto: Some(3) }
        );
        assert_eq!(
            check(3, Some(3), true, false),
            Check::Stale { upto: Some(3) }
        );
        // The entry is newer than the record: its write is in flight.
        assert_eq!(check(4, Some(3), true, false), Check::Pending);
    }

    #[test]
    fn due_keys_sort_by_time_and_stay_below_the_bound_exactly_when_due() {
        let t = TenantId::new("t1");
        let at = DateTime::from_timestamp(1_796_115_600, 0).unwrap_or_default();
        let sk = due_sk(&due_text(at), &t, "w");
        let bound = |now: DateTime<Utc>| format!("{}$", due_text(now));
        assert!(sk.as_str() < bound(at).as_str(), "due at its time");
        assert!(sk.as_str() > bound(at - chrono::Duration::nanoseconds(1)).as_str());
        let later = due_sk(&due_text(at + chrono::Duration::milliseconds(1)), &t, "a");
        assert!(sk < later);
        assert!(!DUE_PK.starts_with("T#"));
        assert!(action_pk(&t, "a").starts_with("T#t1#"));
        assert!(workflow_pk(&t, "w").starts_with("T#t1#"));
        assert!(user_actions_pk(&t, "u").starts_with("T#t1#"));
        assert!(status_actions_pk(&t, "queued").starts_with("T#t1#"));
    }
}
