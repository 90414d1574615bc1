//! What the API's action and workflow routes read and answer: their own types (with OpenAPI
//! schemas), built from the write half's records. Stored bookkeeping (the payload hash, the
//! revision) is never part of an answer.

use chrono::{DateTime, Utc};
use entra_sync_core::actions::record::{ActionRecord, ActionStatus, HistoryEntry, Origin, Target};
use entra_sync_core::actions::workflow::{
    AppRef, Step, StepStatus, Template, Workflow, WorkflowOrigin, WorkflowStatus,
};
use entra_sync_core::actions::{ActionKind, ActionSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// An action kind, as its documented word.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKindView {
    AddGroupMember,
    RemoveGroupMember,
    AssignAppRole,
    RemoveAppRole,
    RevokeSessions,
    BlockSignIn,
    UnblockSignIn,
    ResetPassword,
    DeleteUser,
    RestoreUser,
}

/// What to do, and to whom. A user is named by object id, user principal name or email; a
/// group by object id or display name (resolved from the mirror: an ambiguous name is refused
/// listing the candidates).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionSpecBody {
    pub kind: ActionKindView,
    pub user: String,
    /// `add_group_member`, `remove_group_member`: the group.
    pub group: Option<String>,
    /// `assign_app_role`, `remove_app_role`: the Enterprise Application's service principal id.
    pub service_principal_id: Option<String>,
    /// `assign_app_role`, `remove_app_role`: the app role id (absent: the default access role,
    /// or every assignment of the app for a removal).
    pub app_role_id: Option<String>,
}

impl From<&ActionSpec> for ActionSpecBody {
    fn from(spec: &ActionSpec) -> Self {
        let mut body = ActionSpecBody {
            kind: kind_view(spec.kind()),
            user: String::new(),
            group: None,
            service_principal_id: None,
            app_role_id: None,
        };
        match spec {
            ActionSpec::AddGroupMember { user, group }
            | ActionSpec::RemoveGroupMember { user, group } => {
                body.user = user.clone();
                body.group = Some(group.clone());
            }
            ActionSpec::AssignAppRole {
                user,
                service_principal_id,
                app_role_id,
            }
            | ActionSpec::RemoveAppRole {
                user,
                service_principal_id,
                app_role_id,
            } => {
                body.user = user.clone();
                body.service_principal_id = Some(service_principal_id.clone());
                body.app_role_id = app_role_id.clone();
            }
            ActionSpec::RevokeSessions { user }
            | ActionSpec::BlockSignIn { user }
            | ActionSpec::UnblockSignIn { user }
            | ActionSpec::ResetPassword { user }
            | ActionSpec::DeleteUser { user }
            | ActionSpec::RestoreUser { user } => body.user = user.clone(),
        }
        body
    }
}

/// Submit an action. Send an `Idempotency-Key` header with it: the same key answers with the
/// same action without acting twice.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubmitActionBody {
    /// Who asks (recorded in the audit trail; an approver must be someone else).
    pub requested_by: String,
    /// The action, read by the same parser as every other way in (unknown fields refused).
    #[schema(value_type = ActionSpecBody)]
    pub action: Value,
}

/// An approver's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    /// The approver (never the requester).
    pub by: String,
    /// Why (kept in the audit trail, at most 500 characters).
    #[serde(default)]
    pub comment: Option<String>,
}

/// Who cancels or retries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ByBody {
    pub by: String,
}

/// Run an approved password reset: only its requester may, and only they see the password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunActionBody {
    /// The person running it: the action's requester.
    pub runner: String,
}

/// The targets, resolved to object ids when the action was submitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub user_id: String,
    pub user_name: Option<String>,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub service_principal_id: Option<String>,
    pub app_role_id: Option<String>,
}

impl From<Target> for TargetView {
    fn from(t: Target) -> Self {
        TargetView {
            user_id: t.user_id,
            user_name: t.user_name,
            group_id: t.group_id,
            group_name: t.group_name,
            service_principal_id: t.service_principal_id,
            app_role_id: t.app_role_id,
        }
    }
}

/// Who or what asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct OriginView {
    /// `api`, `cli` or `workflow`.
    pub via: &'static str,
    /// For `workflow`: the workflow and its step (from 0).
    pub workflow_id: Option<String>,
    pub step: Option<u32>,
}

impl From<Origin> for OriginView {
    fn from(o: Origin) -> Self {
        let (via, workflow_id, step) = match o {
            Origin::Api => ("api", None, None),
            Origin::Cli => ("cli", None, None),
            Origin::Workflow { workflow_id, step } => ("workflow", Some(workflow_id), Some(step)),
        };
        OriginView {
            via,
            workflow_id,
            step,
        }
    }
}

/// An approver's decision, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    pub by: String,
    pub at: DateTime<Utc>,
    pub approved: bool,
    pub comment: Option<String>,
}

/// One line of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    pub at: DateTime<Utc>,
    /// The status the action entered.
    pub status: String,
    pub by: Option<String>,
    pub note: Option<String>,
}

impl From<HistoryEntry> for HistoryView {
    fn from(h: HistoryEntry) -> Self {
        HistoryView {
            at: h.at,
            status: h.status,
            by: h.by,
            note: h.note,
        }
    }
}

/// An action and its audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryActionView {
    /// Derived from the directory and the idempotency key.
    pub id: String,
    pub tenant_id: String,
    /// The idempotency key it was submitted with.
    pub idempotency_key: String,
    pub kind: ActionKindView,
    /// `pending_approval`, `approved` (a password reset waiting for its requester to run it),
    /// `queued`, `running`, `succeeded`, `failed`, `rejected`, `expired` or `cancelled`.
    pub status: &'static str,
    /// `pending_approval`: when the request expires undecided.
    pub expires_at: Option<DateTime<Utc>>,
    /// `succeeded`: the directory already was in the asked-for state.
    pub already_in_effect: Option<bool>,
    /// `failed`: why, in plain words, and whether a retry may succeed.
    pub reason: Option<String>,
    pub retryable: Option<bool>,
    /// What the caller asked, as they named it.
    pub request: ActionSpecBody,
    pub target: TargetView,
    pub requested_by: String,
    pub origin: OriginView,
    pub requested_at: DateTime<Utc>,
    pub decision: Option<DecisionView>,
    /// Directory calls made for it.
    pub attempts: u32,
    /// Microsoft Graph's `request-id` of the last directory call, for support cases.
    pub graph_request_id: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub history: Vec<HistoryView>,
}

/// The view's kind word of a core kind (the two enums spell the same words).
fn kind_view(k: ActionKind) -> ActionKindView {
    match k {
        ActionKind::AddGroupMember => ActionKindView::AddGroupMember,
        ActionKind::RemoveGroupMember => ActionKindView::RemoveGroupMember,
        ActionKind::AssignAppRole => ActionKindView::AssignAppRole,
        ActionKind::RemoveAppRole => ActionKindView::RemoveAppRole,
        ActionKind::RevokeSessions => ActionKindView::RevokeSessions,
        ActionKind::BlockSignIn => ActionKindView::BlockSignIn,
        ActionKind::UnblockSignIn => ActionKindView::UnblockSignIn,
        ActionKind::ResetPassword => ActionKindView::ResetPassword,
        ActionKind::DeleteUser => ActionKindView::DeleteUser,
        ActionKind::RestoreUser => ActionKindView::RestoreUser,
    }
}

impl From<ActionRecord> for DirectoryActionView {
    fn from(r: ActionRecord) -> Self {
        let (mut expires_at, mut already_in_effect, mut reason, mut retryable) =
            (None, None, None, None);
        match &r.status {
            ActionStatus::PendingApproval { expires_at: e } => expires_at = Some(*e),
            ActionStatus::Succeeded {
                already_in_effect: a,
            } => already_in_effect = Some(*a),
            ActionStatus::Failed {
                reason: why,
                retryable: again,
            } => {
                reason = Some(why.clone());
                retryable = Some(*again);
            }
            _ => {}
        }
        DirectoryActionView {
            kind: kind_view(r.kind()),
            status: r.status.as_str(),
            request: ActionSpecBody::from(&r.spec),
            id: r.id,
            tenant_id: r.tenant_id.to_string(),
            idempotency_key: r.key,
            expires_at,
            already_in_effect,
            reason,
            retryable,
            target: r.target.into(),
            requested_by: r.requested_by,
            origin: r.origin.into(),
            requested_at: r.requested_at,
            decision: r.decision.map(|d| DecisionView {
                by: d.by,
                at: d.at,
                approved: d.approved,
                comment: d.comment,
            }),
            attempts: r.attempts,
            graph_request_id: r.graph_request_id,
            finished_at: r.finished_at,
            history: r.history.into_iter().map(HistoryView::from).collect(),
        }
    }
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryActionList {
    pub items: Vec<DirectoryActionView>,
    pub next_cursor: Option<String>,
}

/// An action that was run now: a password reset's temporary password is in this answer once
/// and never again (it is not stored anywhere).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionRunView {
    pub action: DirectoryActionView,
    /// A password reset's temporary password; the user must change it at the next sign-in.
    pub temporary_password: Option<String>,
}

/// A workflow template.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateView {
    /// Add to groups, assign apps (at `at`, the start date, if given).
    Onboarding,
    /// Revoke sessions, remove app assignments, remove from groups, block sign-in (at `at`, the
    /// end date, if given).
    Offboarding,
    /// Revoke sessions now.
    LostDevice,
}

impl From<TemplateView> for Template {
    fn from(t: TemplateView) -> Self {
        match t {
            TemplateView::Onboarding => Template::Onboarding,
            TemplateView::Offboarding => Template::Offboarding,
            TemplateView::LostDevice => Template::LostDevice,
        }
    }
}

impl From<Template> for TemplateView {
    fn from(t: Template) -> Self {
        match t {
            Template::Onboarding => TemplateView::Onboarding,
            Template::Offboarding => TemplateView::Offboarding,
            Template::LostDevice => TemplateView::LostDevice,
        }
    }
}

/// An app to assign.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRefView {
    pub service_principal_id: String,
    /// Absent: the app's default access role.
    #[serde(default)]
    pub app_role_id: Option<String>,
}

impl From<AppRef> for AppRefView {
    fn from(a: AppRef) -> Self {
        AppRefView {
            service_principal_id: a.service_principal_id,
            app_role_id: a.app_role_id,
        }
    }
}

/// Start a workflow. Send an `Idempotency-Key` header with it: the same key answers with the
/// workflow it started.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartWorkflowBody {
    pub template: TemplateView,
    /// Who asks.
    pub requested_by: String,
    /// The user (object id, user principal name or email).
    pub user: String,
    /// Onboarding: groups to add the user to (ids or display names).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Onboarding: apps to assign.
    #[serde(default)]
    pub apps: Vec<AppRefView>,
    /// When the steps run (the start or end date); absent: now.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// One step of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// What the step does, in words.
    pub does: String,
    /// Not before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// `pending`, `submitted`, `done` or `failed`.
    pub status: &'static str,
    /// `failed`: why.
    pub reason: Option<String>,
    /// The actions it submitted.
    pub action_ids: Vec<String>,
    /// Bumped by each retry.
    pub attempt: u32,
}

impl From<Step> for StepView {
    fn from(s: Step) -> Self {
        let does = s.spec.describe();
        let (status, reason) = match s.status {
            StepStatus::Pending => ("pending", None),
            StepStatus::Submitted => ("submitted", None),
            StepStatus::Done => ("done", None),
            StepStatus::Failed { reason } => ("failed", Some(reason)),
        };
        StepView {
            does,
            run_at: s.run_at,
            status,
            reason,
            action_ids: s.action_ids,
            attempt: s.attempt,
        }
    }
}

/// A workflow and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowView {
    pub id: String,
    pub tenant_id: String,
    pub template: TemplateView,
    pub user: String,
    pub groups: Vec<String>,
    pub apps: Vec<AppRefView>,
    pub at: Option<DateTime<Utc>>,
    pub requested_by: String,
    /// `api`, `cli` or `hr_webhook`.
    pub via: &'static str,
    /// For `hr_webhook`: the delivery that started it.
    pub delivery_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `scheduled`, `running`, `waiting_approval`, `failed`, `completed` or `cancelled`.
    pub status: &'static str,
    /// `scheduled`: when the next step is due.
    pub due_at: Option<DateTime<Utc>>,
    /// `waiting_approval`: the action that waits.
    pub waiting_for: Option<String>,
    /// `failed`: the step (from 0) and why.
    pub failed_step: Option<u32>,
    pub reason: Option<String>,
    pub steps: Vec<StepView>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Workflow> for WorkflowView {
    fn from(w: Workflow) -> Self {
        let status = w.status.as_str();
        let (mut due_at, mut waiting_for, mut failed_step, mut reason) = (None, None, None, None);
        match w.status {
            WorkflowStatus::Scheduled { at } => due_at = Some(at),
            WorkflowStatus::WaitingApproval { action_id } => waiting_for = Some(action_id),
            WorkflowStatus::Failed { step, reason: why } => {
                failed_step = Some(step);
                reason = Some(why);
            }
            WorkflowStatus::Running | WorkflowStatus::Completed | WorkflowStatus::Cancelled => {}
        }
        let (via, delivery_id) = match w.origin {
            WorkflowOrigin::Api => ("api", None),
            WorkflowOrigin::Cli => ("cli", None),
            WorkflowOrigin::HrWebhook { delivery_id } => ("hr_webhook", Some(delivery_id)),
        };
        WorkflowView {
            id: w.id,
            tenant_id: w.tenant_id.to_string(),
            template: w.template.into(),
            user: w.params.user,
            groups: w.params.groups,
            apps: w.params.apps.into_iter().map(AppRefView::from).collect(),
            at: w.params.at,
            requested_by: w.requested_by,
            via,
            delivery_id,
            created_at: w.created_at,
            status,
            due_at,
            waiting_for,
            failed_step,
            reason,
            steps: w.steps.into_iter().map(StepView::from).collect(),
            finished_at: w.finished_at,
        }
    }
}

/// A page of workflows, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub items: Vec<WorkflowView>,
    pub next_cursor: Option<String>,
}
