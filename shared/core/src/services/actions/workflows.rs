//! Running workflows: start one from a template, move it on whenever one of its actions
//! changes (or its date comes), retry a failed step, cancel it. [`Workflow::next_move`] decides;
//! this module submits the step's actions (idempotently, one key per step action) and stores
//! the workflow with conditional writes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::submit::{SubmitRequest, submit_action};
use super::{ActionDeps, ActionError, cancel_action, get_workflow, owned_connection, usable};
use crate::actions::kind::ActionSpec;
use crate::actions::record::{ActionRecord, ActionStatus, Origin};
use crate::actions::resolve::{UserName, not_a_target, pick_user};
use crate::actions::workflow::{
    NextMove, StepSpec, StepStatus, Template, Workflow, WorkflowOrigin, WorkflowParams,
    WorkflowStatus, step_action_key, steps_for,
};
use crate::error::StoreError;
use crate::model::{AccountId, TenantId};

/// A workflow as a caller starts it.
#[derive(Clone, Debug)]
pub struct StartWorkflow {
    pub account: AccountId,
    pub tenant: TenantId,
    pub template: Template,
    pub params: WorkflowParams,
    pub requested_by: String,
    pub origin: WorkflowOrigin,
    /// Makes the start idempotent (an HR delivery id, an API idempotency key); `None`: a new
    /// workflow every time.
    pub key: Option<String>,
}

fn workflow_id(tenant: &TenantId, key: Option<&str>) -> String {
    match key {
        Some(k) => {
            let ns = uuid::Uuid::from_bytes(*b"entra-sync:workf");
            uuid::Uuid::new_v5(&ns, format!("{tenant}\n{k}").as_bytes()).to_string()
        }
        None => uuid::Uuid::new_v4().to_string(),
    }
}

/// Start a workflow: its steps run now, or wait for their date.
pub async fn start_workflow(
    deps: &ActionDeps,
    req: StartWorkflow,
) -> Result<Workflow, ActionError> {
    let connection = owned_connection(deps, &req.account, &req.tenant).await?;
    usable(&connection)?;
    if req.requested_by.trim().is_empty() {
        return Err(ActionError::Invalid(vec![
            "requested_by: must name who asks".into(),
        ]));
    }
    let steps = steps_for(req.template, &req.params)?;
    // The user must exist now (a typo should fail at once, not on the end date).
    let name = req.params.user.trim();
    let candidates = match UserName::parse(name)? {
        UserName::ObjectId(id) => {
            deps.mirror
                .get_users(&req.tenant, &[id.to_ascii_lowercase()])
                .await?
        }
        UserName::Handle(h) => deps.lookup.users_by_handle(&req.tenant, h).await?,
    };
    pick_user(
        name,
        crate::actions::kind::ActionKind::RevokeSessions,
        candidates,
    )?;
    let now = deps.clock.now();
    let wf = Workflow {
        id: workflow_id(&req.tenant, req.key.as_deref()),
        tenant_id: req.tenant.clone(),
        account_id: req.account.clone(),
        template: req.template,
        params: req.params,
        requested_by: req.requested_by.trim().to_string(),
        origin: req.origin,
        created_at: now,
        steps,
        status: WorkflowStatus::Running,
        finished_at: None,
        rev: 0,
    };
    if let Some(existing) = deps.workflows.create_workflow(&wf).await? {
        return Ok(existing);
    }
    advance_workflow(deps, &req.tenant, &wf.id).await
}

/// Move workflow `id` on as far as it can go now. Safe to call any number of times, from any
/// number of workers: every step's actions are submitted under their own keys, and the
/// workflow is stored conditionally.
pub async fn advance_workflow(
    deps: &ActionDeps,
    tenant: &TenantId,
    id: &str,
) -> Result<Workflow, ActionError> {
    // Bounded: each round either stores progress, or returns; conflicts re-read.
    for _ in 0..64 {
        let Some(mut wf) = deps.workflows.get_workflow(tenant, id).await? else {
            return Err(ActionError::UnknownWorkflow {
                tenant: tenant.clone(),
                id: id.to_string(),
            });
        };
        let statuses = current_statuses(deps, &wf).await?;
        let now = deps.clock.now();
        let before = wf.status.clone();
        let mv = wf.next_move(now, &statuses);
        let done = match mv {
            NextMove::Submit { step } => {
                match submit_step(deps, &wf, step).await {
                    Ok(ids) => {
                        wf.steps[step].status = StepStatus::Submitted;
                        wf.steps[step].action_ids = ids;
                        wf.status = WorkflowStatus::Running;
                    }
                    Err(reason) => fail(&mut wf, step, reason, now),
                }
                false
            }
            NextMove::WaitUntil { at } => {
                wf.status = WorkflowStatus::Scheduled { at };
                true
            }
            NextMove::WaitForActions => {
                wf.status = WorkflowStatus::Running;
                true
            }
            NextMove::WaitForApproval { action_id } => {
                wf.status = WorkflowStatus::WaitingApproval { action_id };
                true
            }
            NextMove::StepDone { step } => {
                wf.steps[step].status = StepStatus::Done;
                false
            }
            NextMove::StepFailed { step, reason } => {
                fail(&mut wf, step, reason, now);
                true
            }
            NextMove::Complete => {
                wf.status = WorkflowStatus::Completed;
                wf.finished_at = Some(now);
                true
            }
            NextMove::Stopped => return Ok(wf),
        };
        let unchanged = done && wf.status == before;
        if unchanged {
            return Ok(wf);
        }
        let expected = wf.rev;
        wf.rev += 1;
        match deps.workflows.update_workflow(&wf, expected).await {
            Ok(()) => {
                if done {
                    return Ok(wf);
                }
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ActionError::Workflow(format!(
        "workflow {id} kept changing under this worker; it continues when its next action finishes"
    )))
}

fn fail(wf: &mut Workflow, step: usize, reason: String, now: DateTime<Utc>) {
    wf.steps[step].status = StepStatus::Failed {
        reason: reason.clone(),
    };
    wf.status = WorkflowStatus::Failed {
        step: step as u32,
        reason,
    };
    wf.finished_at = Some(now);
}

async fn current_statuses(
    deps: &ActionDeps,
    wf: &Workflow,
) -> Result<Vec<Option<ActionStatus>>, ActionError> {
    let Some(i) = wf.current_step() else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for id in &wf.steps[i].action_ids {
        out.push(
            deps.actions
                .get_action(&wf.tenant_id, id)
                .await?
                .map(|r| r.status),
        );
    }
    Ok(out)
}

/// Submit the actions of step `step` (expanding it from the directory first if needed).
/// Returns their ids, or why the step cannot run.
async fn submit_step(deps: &ActionDeps, wf: &Workflow, step: usize) -> Result<Vec<String>, String> {
    let s = &wf.steps[step];
    let specs = expand(deps, wf, &s.spec).await.map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    for (n, spec) in specs.into_iter().enumerate() {
        let req = SubmitRequest {
            account: wf.account_id.clone(),
            tenant: wf.tenant_id.clone(),
            key: step_action_key(&wf.id, step, s.attempt, n),
            spec,
            requested_by: wf.requested_by.clone(),
            origin: Origin::Workflow {
                workflow_id: wf.id.clone(),
                step: step as u32,
            },
        };
        let record = submit_action(deps, req).await.map_err(|e| e.to_string())?;
        ids.push(record.id);
    }
    Ok(ids)
}

/// The concrete actions of a step. "Remove every app" and "remove from every group" are read
/// when the step runs (weeks after the workflow started, the user's assignments may differ).
async fn expand(
    deps: &ActionDeps,
    wf: &Workflow,
    spec: &StepSpec,
) -> Result<Vec<ActionSpec>, ActionError> {
    let tenant = &wf.tenant_id;
    match spec {
        StepSpec::Actions { actions } => Ok(actions.clone()),
        StepSpec::RemoveAllApps { user } => {
            let user_id = resolve_user_id(deps, tenant, user).await?;
            let assignments = deps.writer.app_role_assignments(tenant, &user_id).await?;
            let apps: BTreeSet<String> = assignments
                .into_iter()
                .map(|a| a.resource_id.to_ascii_lowercase())
                .collect();
            Ok(apps
                .into_iter()
                .map(|sp| ActionSpec::RemoveAppRole {
                    user: user_id.clone(),
                    service_principal_id: sp,
                    app_role_id: None,
                })
                .collect())
        }
        StepSpec::RemoveFromAllGroups { user } => {
            let user_id = resolve_user_id(deps, tenant, user).await?;
            let group_ids = deps.lookup.groups_of_user(tenant, &user_id).await?;
            let groups = deps.mirror.get_groups(tenant, &group_ids).await?;
            Ok(groups
                .into_iter()
                .filter(|g| g.presence.is_present() && not_a_target(&g.group).is_none())
                .map(|g| ActionSpec::RemoveGroupMember {
                    user: user_id.clone(),
                    group: g.group.id,
                })
                .collect())
        }
    }
}

async fn resolve_user_id(
    deps: &ActionDeps,
    tenant: &TenantId,
    name: &str,
) -> Result<String, ActionError> {
    let candidates = match UserName::parse(name)? {
        UserName::ObjectId(id) => {
            deps.mirror
                .get_users(tenant, &[id.to_ascii_lowercase()])
                .await?
        }
        UserName::Handle(h) => deps.lookup.users_by_handle(tenant, h).await?,
    };
    Ok(pick_user(
        name,
        crate::actions::kind::ActionKind::RevokeSessions,
        candidates,
    )?
    .user
    .id)
}

/// After an action changed: move its workflow on, if it belongs to one. Failures are logged:
/// the workflow moves on the next time one of its actions changes or the due sweep runs.
pub(crate) async fn advance_for(deps: &ActionDeps, r: &ActionRecord) {
    if let Origin::Workflow { workflow_id, .. } = &r.origin
        && let Err(e) = Box::pin(advance_workflow(deps, &r.tenant_id, workflow_id)).await
    {
        tracing::warn!(error = %e, workflow = %workflow_id, "workflow not advanced");
    }
}

/// Advance every workflow whose date has come (the scheduler's tick). Returns how many moved.
pub async fn run_due_workflows(deps: &ActionDeps, limit: usize) -> Result<usize, ActionError> {
    let due = deps
        .workflows
        .due_workflows(deps.clock.now(), limit)
        .await?;
    let mut moved = 0;
    for (tenant, id) in due {
        match advance_workflow(deps, &tenant, &id).await {
            Ok(_) => moved += 1,
            Err(e) => tracing::warn!(error = %e, workflow = %id, "due workflow not advanced"),
        }
    }
    Ok(moved)
}

/// Cancel a workflow and the not-yet-started actions of its current step.
pub async fn cancel_workflow(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
    by: &str,
) -> Result<Workflow, ActionError> {
    let mut wf = get_workflow(deps, account, tenant, id).await?;
    if wf.status.is_final() {
        return Err(ActionError::Workflow(format!(
            "the workflow is {} and cannot be cancelled",
            wf.status.as_str()
        )));
    }
    if let Some(i) = wf.current_step() {
        for action_id in wf.steps[i].action_ids.clone() {
            // Running or finished ones cannot be cancelled; that is fine.
            let _ = cancel_action(deps, account, tenant, &action_id, by).await;
        }
    }
    wf.status = WorkflowStatus::Cancelled;
    wf.finished_at = Some(deps.clock.now());
    let expected = wf.rev;
    wf.rev += 1;
    deps.workflows.update_workflow(&wf, expected).await?;
    Ok(wf)
}

/// Run a failed workflow's failed step again.
pub async fn retry_workflow(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
) -> Result<Workflow, ActionError> {
    let mut wf = get_workflow(deps, account, tenant, id).await?;
    wf.retry().map_err(ActionError::Workflow)?;
    let expected = wf.rev;
    wf.rev += 1;
    deps.workflows.update_workflow(&wf, expected).await?;
    advance_workflow(deps, tenant, id).await
}
