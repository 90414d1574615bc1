//! The ports of the write half: the action and workflow records (the audit trail), the action
//! queue, and the mirror lookups that resolve a target's name.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::ActionRecord;
use super::workflow::Workflow;
use crate::error::{QueueError, StoreError};
use crate::model::{StoredGroup, StoredUser, TenantId};
use crate::ports::Listing;

/// Which actions a listing returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionFilter {
    /// Only actions on this user (object id).
    pub user_id: Option<String>,
    /// Only actions in this status (its snake_case word, e.g. `pending_approval`).
    pub status: Option<String>,
}

impl ActionFilter {
    pub fn matches(&self, r: &ActionRecord) -> bool {
        self.user_id
            .as_deref()
            .is_none_or(|u| r.target.user_id == u)
            && self
                .status
                .as_deref()
                .is_none_or(|s| r.status.as_str() == s)
    }
}

/// The listing key of an action: newest first means descending order of this key, and the
/// cursor of a page is the key of its last item.
pub fn action_listing_key(r: &ActionRecord) -> String {
    format!("{:020}#{}", r.requested_at.timestamp_millis().max(0), r.id)
}

/// The listing key of a workflow (newest first, like actions).
pub fn workflow_listing_key(w: &Workflow) -> String {
    format!("{:020}#{}", w.created_at.timestamp_millis().max(0), w.id)
}

/// Actions and their audit trail, per tenant.
#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Store a new action unless one with the same id exists; then that one is returned and
    /// nothing is written (two submits of one key race to one record).
    async fn create_action(
        &self,
        record: &ActionRecord,
    ) -> Result<Option<ActionRecord>, StoreError>;

    async fn get_action(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ActionRecord>, StoreError>;

    /// Replace the action if its stored `rev` is still `expected_rev` (the caller bumps
    /// `record.rev`); otherwise `StoreError::Conflict`.
    async fn update_action(
        &self,
        record: &ActionRecord,
        expected_rev: u64,
    ) -> Result<(), StoreError>;

    /// Newest first; `after` is the previous page's `next`.
    async fn list_actions(
        &self,
        tenant: &TenantId,
        filter: &ActionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ActionRecord>, StoreError>;
}

/// Workflows, per tenant, and the cross-tenant list of those waiting for a date.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    async fn create_workflow(&self, workflow: &Workflow) -> Result<Option<Workflow>, StoreError>;
    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Workflow>, StoreError>;
    /// Conditional on the stored `rev`, like [`ActionStore::update_action`]. Keeps the due
    /// index in step: a `scheduled` workflow is listed by [`Self::due_workflows`] once its time
    /// comes, any other is not.
    async fn update_workflow(
        &self,
        workflow: &Workflow,
        expected_rev: u64,
    ) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_workflows(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Workflow>, StoreError>;
    /// Scheduled workflows of every tenant whose time is at or before `now`, oldest first.
    async fn due_workflows(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(TenantId, String)>, StoreError>;
}

/// One action for the executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionMessage {
    pub tenant_id: TenantId,
    pub action_id: String,
    /// The target user: with the tenant it forms the FIFO message group, so one user's actions
    /// never overtake each other while different users proceed in parallel.
    pub user_id: String,
}

impl ActionMessage {
    pub fn group_id(&self) -> String {
        format!("{}:{}", self.tenant_id, self.user_id)
    }

    /// The queue's deduplication id: the same action enqueued twice is one message.
    pub fn dedup_id(&self) -> String {
        format!("{}:{}", self.tenant_id, self.action_id)
    }
}

/// The action queue (SQS FIFO in AWS, the durable local queue on one machine).
#[async_trait]
pub trait ActionQueue: Send + Sync {
    async fn enqueue_actions(&self, messages: Vec<ActionMessage>) -> Result<(), QueueError>;
}

/// Lookups of mirrored objects by the names people use. Case-insensitive; removed objects are
/// included (the resolver decides what they mean).
#[async_trait]
pub trait TargetLookup: Send + Sync {
    /// Users whose user principal name or mail is `handle`.
    async fn users_by_handle(
        &self,
        tenant: &TenantId,
        handle: &str,
    ) -> Result<Vec<StoredUser>, StoreError>;
    /// Groups whose display name is `name`.
    async fn groups_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<StoredGroup>, StoreError>;
    /// Ids of the groups `user_id` is a direct member of (present edges only).
    async fn groups_of_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError>;
}
