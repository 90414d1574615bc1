//! In-memory adapters of the write half's ports: the reference the SQLite and DynamoDB adapters
//! are checked against (tests/src/contract_actions.rs), and the fakes of service tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::ports::{
    ActionFilter, ActionMessage, ActionQueue, ActionStore, TargetLookup, WorkflowStore,
    action_listing_key, workflow_listing_key,
};
use super::record::ActionRecord;
use super::workflow::{Workflow, WorkflowStatus};
use crate::error::{QueueError, StoreError};
use crate::model::{StoredGroup, StoredUser, TenantId};
use crate::ports::{Listing, MirrorStore, for_each_page};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Newest-first page of `items` (keyed by listing key) after `after`.
fn page<T: Clone>(
    items: &BTreeMap<String, T>,
    after: Option<&str>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Listing<T> {
    let limit = limit.max(1);
    let mut out = Vec::new();
    let mut last = None;
    let upper = after.map(str::to_string);
    let range: Box<dyn Iterator<Item = (&String, &T)>> = match &upper {
        Some(u) => Box::new(items.range(..u.clone()).rev()),
        None => Box::new(items.iter().rev()),
    };
    let mut more = false;
    for (k, v) in range {
        if !keep(v) {
            continue;
        }
        if out.len() == limit {
            more = true;
            break;
        }
        out.push(v.clone());
        last = Some(k.clone());
    }
    Listing {
        items: out,
        next: if more { last } else { None },
    }
}

/// Actions and workflows in maps.
#[derive(Default)]
pub struct MemoryActions {
    actions: Mutex<BTreeMap<(TenantId, String), ActionRecord>>,
    workflows: Mutex<BTreeMap<(TenantId, String), Workflow>>,
}

impl MemoryActions {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ActionStore for MemoryActions {
    async fn create_action(
        &self,
        record: &ActionRecord,
    ) -> Result<Option<ActionRecord>, StoreError> {
        let mut all = lock(&self.actions);
        let key = (record.tenant_id.clone(), record.id.clone());
        if let Some(existing) = all.get(&key) {
            return Ok(Some(existing.clone()));
        }
        all.insert(key, record.clone());
        Ok(None)
    }

    async fn get_action(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ActionRecord>, StoreError> {
        Ok(lock(&self.actions)
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn update_action(
        &self,
        record: &ActionRecord,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let mut all = lock(&self.actions);
        let key = (record.tenant_id.clone(), record.id.clone());
        match all.get(&key) {
            Some(stored) if stored.rev == expected_rev => {
                all.insert(key, record.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!("action {}", record.id))),
        }
    }

    async fn list_actions(
        &self,
        tenant: &TenantId,
        filter: &ActionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ActionRecord>, StoreError> {
        let keyed: BTreeMap<String, ActionRecord> = lock(&self.actions)
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, r)| (action_listing_key(r), r.clone()))
            .collect();
        Ok(page(&keyed, after, limit, |r| filter.matches(r)))
    }
}

#[async_trait]
impl WorkflowStore for MemoryActions {
    async fn create_workflow(&self, workflow: &Workflow) -> Result<Option<Workflow>, StoreError> {
        let mut all = lock(&self.workflows);
        let key = (workflow.tenant_id.clone(), workflow.id.clone());
        if let Some(existing) = all.get(&key) {
            return Ok(Some(existing.clone()));
        }
        all.insert(key, workflow.clone());
        Ok(None)
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        Ok(lock(&self.workflows)
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn update_workflow(
        &self,
        workflow: &Workflow,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let mut all = lock(&self.workflows);
        let key = (workflow.tenant_id.clone(), workflow.id.clone());
        match all.get(&key) {
            Some(stored) if stored.rev == expected_rev => {
                all.insert(key, workflow.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!("workflow {}", workflow.id))),
        }
    }

    async fn list_workflows(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Workflow>, StoreError> {
        let keyed: BTreeMap<String, Workflow> = lock(&self.workflows)
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, w)| (workflow_listing_key(w), w.clone()))
            .collect();
        Ok(page(&keyed, after, limit, |_| true))
    }

    async fn due_workflows(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(TenantId, String)>, StoreError> {
        let mut due: Vec<(DateTime<Utc>, TenantId, String)> = lock(&self.workflows)
            .values()
            .filter_map(|w| match w.status {
                WorkflowStatus::Scheduled { at } if at <= now => {
                    Some((at, w.tenant_id.clone(), w.id.clone()))
                }
                _ => None,
            })
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, t, id)| (t, id))
            .collect())
    }
}

/// An action queue that collects what is enqueued (tests drain it).
#[derive(Default)]
pub struct CollectingActionQueue {
    messages: Mutex<Vec<ActionMessage>>,
}

impl CollectingActionQueue {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn drain(&self) -> Vec<ActionMessage> {
        std::mem::take(&mut *lock(&self.messages))
    }
    pub fn len(&self) -> usize {
        lock(&self.messages).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ActionQueue for CollectingActionQueue {
    async fn enqueue_actions(&self, messages: Vec<ActionMessage>) -> Result<(), QueueError> {
        lock(&self.messages).extend(messages);
        Ok(())
    }
}

/// Name lookups by walking the mirror's listings: the reference behaviour, fine for the
/// in-memory store and small directories; the SQLite and DynamoDB stores answer from indexes.
pub struct ScanningLookup {
    pub mirror: Arc<dyn MirrorStore>,
}

const SCAN_PAGE: usize = 1000;

#[async_trait]
impl TargetLookup for ScanningLookup {
    async fn users_by_handle(
        &self,
        tenant: &TenantId,
        handle: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let mut out = Vec::new();
        for_each_page(
            |after: Option<String>| async move {
                self.mirror
                    .list_users(tenant, after.as_deref(), SCAN_PAGE)
                    .await
            },
            |items| {
                out.extend(items.into_iter().filter(|u| {
                    [&u.user.user_principal_name, &u.user.mail]
                        .into_iter()
                        .any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(handle)))
                }))
            },
        )
        .await?;
        Ok(out)
    }

    async fn groups_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<StoredGroup>, StoreError> {
        let mut out = Vec::new();
        for_each_page(
            |after: Option<String>| async move {
                self.mirror
                    .list_groups(tenant, after.as_deref(), SCAN_PAGE)
                    .await
            },
            |items| {
                out.extend(items.into_iter().filter(|g| {
                    g.group
                        .display_name
                        .as_deref()
                        .is_some_and(|d| d.trim().eq_ignore_ascii_case(name.trim()))
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
        let mut out = Vec::new();
        for_each_page(
            |after: Option<String>| async move {
                self.mirror
                    .list_memberships(tenant, after.as_deref(), SCAN_PAGE)
                    .await
            },
            |items| {
                out.extend(
                    items
                        .into_iter()
                        .filter(|m| m.present && m.member.id == user_id)
                        .map(|m| m.group_id),
                )
            },
        )
        .await?;
        Ok(out)
    }
}
