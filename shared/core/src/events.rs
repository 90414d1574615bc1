//! Change events the host product receives instead of polling. The full catalog (and its
//! EventBridge detail types) grows with later capabilities; these are the sync events.

use serde::{Deserialize, Serialize};

use crate::model::{MemberType, TenantId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeKind {
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    UserRemovedFromDirectory,
    GroupCreated,
    GroupUpdated,
    GroupRemovedFromDirectory,
    MemberAdded {
        member_id: String,
        member_type: MemberType,
    },
    MemberRemoved {
        member_id: String,
        member_type: MemberType,
    },
    SyncCompleted {
        run_id: String,
    },
    SyncFailed {
        run_id: String,
        error: String,
    },
    /// An action changed status (requested, pending approval, approved, succeeded, failed, ...).
    /// `object_id` is the target user.
    ActionUpdated {
        action_id: String,
        action: String,
        status: String,
    },
    /// A workflow changed status. `object_id` is the workflow id.
    WorkflowUpdated {
        workflow_id: String,
        template: String,
        status: String,
    },
    /// The circuit breaker holds deactivations of this run until an admin confirms or rejects
    /// them; the rest of the run was applied. Sent by every run that is held, so a question
    /// left open shows its age: `held_since` is when it was first asked.
    SyncHeld {
        run_id: String,
        /// Deactivations waiting for a confirm.
        deactivations_held: u64,
        /// Deactivations the directory reported for each user, applied despite the hold.
        deactivations_applied: u64,
        held_since: chrono::DateTime<chrono::Utc>,
        held_for_seconds: i64,
    },
}

impl ChangeKind {
    /// The event's snake_case name (`user_created`, `action_updated`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::UserCreated => "user_created",
            ChangeKind::UserUpdated => "user_updated",
            ChangeKind::UserDeactivated => "user_deactivated",
            ChangeKind::UserReactivated => "user_reactivated",
            ChangeKind::UserRemovedFromDirectory => "user_removed_from_directory",
            ChangeKind::GroupCreated => "group_created",
            ChangeKind::GroupUpdated => "group_updated",
            ChangeKind::GroupRemovedFromDirectory => "group_removed_from_directory",
            ChangeKind::MemberAdded { .. } => "member_added",
            ChangeKind::MemberRemoved { .. } => "member_removed",
            ChangeKind::SyncCompleted { .. } => "sync_completed",
            ChangeKind::SyncFailed { .. } => "sync_failed",
            ChangeKind::SyncHeld { .. } => "sync_held",
            ChangeKind::ActionUpdated { .. } => "action_updated",
            ChangeKind::WorkflowUpdated { .. } => "workflow_updated",
        }
    }
}

/// One event: ids only, never personal data or secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub tenant_id: TenantId,
    /// The user or group the event is about (the tenant for sync events).
    pub object_id: String,
    #[serde(flatten)]
    pub kind: ChangeKind,
}
