//! The use cases of the write half: submit an action (idempotent per key), approve / reject /
//! cancel / retry it, execute it against the directory (once per key, within the tenant's
//! write budget), expire overdue approvals, run workflows, and list the audit trail.
//! docs/actions.md is the reader's guide.

mod decide;
mod execute;
mod permissions;
mod submit;
mod workflows;

use std::sync::Arc;

use chrono::Duration;

pub use decide::{
    DecideRequest, Decision, cancel_action, decide_action, expire_overdue, retry_action,
};
pub use execute::{
    ExecuteOutcome, Executed, MessageVerdict, execute_action, handle_action_message,
};
pub use permissions::record_on as record_granted_permissions;
pub use submit::{SubmitRequest, action_id, key_problems, submit_action};
pub use workflows::{
    StartWorkflow, advance_workflow, cancel_workflow, retry_workflow, run_due_workflows,
    start_workflow,
};

use super::claim::Claims;
use crate::actions::budget::WriteBudget;
use crate::actions::policy::Refusal;
use crate::actions::ports::{ActionFilter, ActionQueue, ActionStore, TargetLookup, WorkflowStore};
use crate::actions::record::{ActionRecord, TransitionError};
use crate::actions::resolve::TargetError;
use crate::actions::workflow::{ParamsError, Workflow};
use crate::directory_write::{DirectoryWriter, WriteError};
use crate::error::StoreError;
use crate::model::{AccountId, Connection, ConnectionStatus, TenantId};
use crate::ports::{Clock, ConnectionStore, CursorStore, Listing, MirrorStore, SettingsStore};

/// The ports the write half uses. The actions function holds all of them; the admin API's
/// routes use the same struct (an on-demand action runs synchronously).
#[derive(Clone)]
pub struct ActionDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    /// Provisional writes after a successful action; the targets' current state.
    pub mirror: Arc<dyn MirrorStore>,
    /// The streams' cycles, which version the provisional writes.
    pub cursors: Arc<dyn CursorStore>,
    pub lookup: Arc<dyn TargetLookup>,
    pub actions: Arc<dyn ActionStore>,
    pub workflows: Arc<dyn WorkflowStore>,
    pub queue: Arc<dyn ActionQueue>,
    pub writer: Arc<dyn DirectoryWriter>,
    pub claims: Claims,
    pub budget: Arc<WriteBudget>,
    pub clock: Arc<dyn Clock>,
    pub config: ActionsConfig,
}

/// Tunables of the write half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionsConfig {
    /// How long a completed submit keeps answering its key from the idempotency record (the
    /// action record itself answers after that, for as long as it exists).
    pub key_ttl: Duration,
    /// Directory calls an action may take for transient failures before it fails (it can still
    /// be retried by hand).
    pub max_attempts: u32,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            key_ttl: Duration::days(7),
            max_attempts: 5,
        }
    }
}

/// Why a use case of the write half did not do what was asked, in plain words. The HTTP and
/// CLI edges map these to statuses and exit codes in one place each.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Unknown tenant, or a tenant of another account (the same answer, so nobody learns which
    /// tenants exist).
    #[error("no directory {tenant} is connected to this account")]
    UnknownConnection { tenant: TenantId },
    #[error("directory {tenant} cannot take actions: {reason}")]
    NotConnected { tenant: TenantId, reason: String },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(
        "the idempotency key \"{key}\" was used before for a different request; send a new key for a new request"
    )]
    KeyReused { key: String },
    #[error("a request with the idempotency key \"{key}\" is being processed; retry in a moment")]
    KeyBusy { key: String },
    #[error("no action {id} in directory {tenant}")]
    UnknownAction { tenant: TenantId, id: String },
    #[error("no workflow {id} in directory {tenant}")]
    UnknownWorkflow { tenant: TenantId, id: String },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Workflow(String),
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("{0}")]
    Directory(#[from] WriteError),
    #[error("the store is unavailable")]
    Store(#[from] StoreError),
    #[error("the operating system's random source failed")]
    Random,
}

impl ActionError {
    /// A stable snake_case code for the edges (API `error` field, CLI `--json`, Lambda
    /// answers); the message is the Display text.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::Invalid(_) | ActionError::Params(_) => "invalid_request",
            ActionError::UnknownConnection { .. }
            | ActionError::UnknownAction { .. }
            | ActionError::UnknownWorkflow { .. } => "not_found",
            ActionError::NotConnected { .. } => "not_connected",
            ActionError::Refused(_) => "not_permitted",
            ActionError::Target(_) => "invalid_target",
            ActionError::KeyReused { .. } => "idempotency_key_reused",
            ActionError::KeyBusy { .. } => "in_progress",
            ActionError::Transition(_) | ActionError::Workflow(_) => "conflict",
            ActionError::Directory(_) => "directory_error",
            ActionError::Store(_) | ActionError::Random => "unavailable",
        }
    }

    /// Worth trying the same request again later (unchanged).
    pub fn is_retryable(&self) -> bool {
        match self {
            ActionError::KeyBusy { .. } => true,
            ActionError::Store(e) => e.is_retryable(),
            ActionError::Directory(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// The connection of `tenant` if it belongs to `account` (else `UnknownConnection`).
pub(crate) async fn owned_connection(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
) -> Result<Connection, ActionError> {
    match deps.connections.get_connection(tenant).await? {
        Some(c) if &c.account_id == account => Ok(c),
        _ => Err(ActionError::UnknownConnection {
            tenant: tenant.clone(),
        }),
    }
}

/// Whether a connection can take actions now, in plain words when it cannot.
pub(crate) fn usable(c: &Connection) -> Result<(), ActionError> {
    let reason = match &c.status {
        ConnectionStatus::Connected => return Ok(()),
        ConnectionStatus::NeedsReauthorization { reason, .. } => {
            format!("it needs to be reauthorized ({reason}); reconnect it, then retry")
        }
        ConnectionStatus::Disconnected => "it was disconnected".to_string(),
    };
    Err(ActionError::NotConnected {
        tenant: c.tenant_id.clone(),
        reason,
    })
}

/// The action `id` of `tenant`, if it belongs to `account`.
pub async fn get_action(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
) -> Result<ActionRecord, ActionError> {
    owned_connection(deps, account, tenant).await?;
    deps.actions
        .get_action(tenant, id)
        .await?
        .ok_or_else(|| ActionError::UnknownAction {
            tenant: tenant.clone(),
            id: id.to_string(),
        })
}

/// The audit trail of one connection (or of one user in it), newest first, a page at a time.
pub async fn list_actions(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    filter: &ActionFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<ActionRecord>, ActionError> {
    owned_connection(deps, account, tenant).await?;
    Ok(deps
        .actions
        .list_actions(tenant, filter, after, limit.clamp(1, MAX_PAGE))
        .await?)
}

/// The workflows of one connection, newest first.
pub async fn list_workflows(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<Workflow>, ActionError> {
    owned_connection(deps, account, tenant).await?;
    Ok(deps
        .workflows
        .list_workflows(tenant, after, limit.clamp(1, MAX_PAGE))
        .await?)
}

/// One workflow.
pub async fn get_workflow(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
) -> Result<Workflow, ActionError> {
    owned_connection(deps, account, tenant).await?;
    deps.workflows
        .get_workflow(tenant, id)
        .await?
        .ok_or_else(|| ActionError::UnknownWorkflow {
            tenant: tenant.clone(),
            id: id.to_string(),
        })
}

/// The largest page a listing returns.
pub const MAX_PAGE: usize = 200;

/// Store a changed record (conditional on the revision it was read at); returns it as stored.
pub(crate) async fn store(
    deps: &ActionDeps,
    mut r: ActionRecord,
) -> Result<ActionRecord, ActionError> {
    let expected = r.rev;
    r.rev += 1;
    deps.actions.update_action(&r, expected).await?;
    Ok(r)
}

#[cfg(test)]
mod tests;
