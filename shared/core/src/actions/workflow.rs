//! Workflows: ordered steps of actions, made from a template with parameters, run by the
//! action executor. A step may wait for a date (a start or end date); a step's actions run
//! before the next step starts; a failed step stops the workflow with its reason.
//!
//! The pure part lives here: templates -> steps, and [`Workflow::next_move`], which says what
//! the engine does next given the statuses of the current step's actions. The engine
//! (`services::actions::advance_workflow`) only does the I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::kind::{ActionSpec, is_guid, truncate};
use super::record::ActionStatus;
use crate::model::{AccountId, TenantId};

/// The templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// Day-1 onboarding: add to groups, assign apps (at the start date, if given).
    Onboarding,
    /// Offboarding: revoke sessions -> remove app assignments -> remove from groups -> block
    /// sign-in (at the end date, if given).
    Offboarding,
    /// Lost device: revoke sessions now.
    LostDevice,
}

impl Template {
    pub const ALL: [Template; 3] = [
        Template::Onboarding,
        Template::Offboarding,
        Template::LostDevice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Template::Onboarding => "onboarding",
            Template::Offboarding => "offboarding",
            Template::LostDevice => "lost_device",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|t| t.as_str() == norm)
    }
}

/// An app to assign: its service principal and, optionally, the role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRef {
    pub service_principal_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role_id: Option<String>,
}

/// A template's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowParams {
    /// The user (object id, UPN or email).
    pub user: String,
    /// Onboarding: groups to add the user to (ids or display names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Onboarding: apps to assign.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppRef>,
    /// When the workflow's steps run: the start date (onboarding) or end date (offboarding).
    /// Absent: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// What a step does: actions known up front, or ones expanded from the directory when the
/// step runs (the user's app assignments and groups at that moment, not when the workflow was
/// started weeks before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum StepSpec {
    Actions {
        actions: Vec<ActionSpec>,
    },
    /// Remove every app role assignment the user has.
    RemoveAllApps {
        user: String,
    },
    /// Remove the user from every group it is a direct member of that the app may change.
    RemoveFromAllGroups {
        user: String,
    },
}

impl StepSpec {
    pub fn describe(&self) -> String {
        match self {
            StepSpec::Actions { actions } => {
                let kinds: Vec<&str> = actions.iter().map(|a| a.kind().as_str()).collect();
                kinds.join(", ")
            }
            StepSpec::RemoveAllApps { .. } => "remove every app assignment".into(),
            StepSpec::RemoveFromAllGroups { .. } => "remove from every group".into(),
        }
    }
}

/// Where a step stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Its actions were submitted (ids in `action_ids`).
    Submitted,
    Done,
    Failed {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub spec: StepSpec,
    /// Not before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    pub status: StepStatus,
    #[serde(default)]
    pub action_ids: Vec<String>,
    /// Bumped by a retry, so the retried step's actions get new idempotency keys.
    #[serde(default)]
    pub attempt: u32,
}

/// Where a workflow stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Waits for `at` (its next step is future-dated).
    Scheduled {
        at: DateTime<Utc>,
    },
    /// A step's actions are queued or running.
    Running,
    /// A step's action waits for an approver; the workflow resumes when it is approved.
    WaitingApproval {
        action_id: String,
    },
    /// A step failed; `retry` runs it again, `cancel` ends the workflow.
    Failed {
        step: u32,
        reason: String,
    },
    Completed,
    Cancelled,
}

impl WorkflowStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkflowStatus::Scheduled { .. } => "scheduled",
            WorkflowStatus::Running => "running",
            WorkflowStatus::WaitingApproval { .. } => "waiting_approval",
            WorkflowStatus::Failed { .. } => "failed",
            WorkflowStatus::Completed => "completed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, WorkflowStatus::Completed | WorkflowStatus::Cancelled)
    }
}

/// Who started a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum WorkflowOrigin {
    Api,
    Cli,
    /// An HR system's webhook delivery.
    HrWebhook {
        delivery_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: String,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub template: Template,
    pub params: WorkflowParams,
    pub requested_by: String,
    pub origin: WorkflowOrigin,
    pub created_at: DateTime<Utc>,
    pub steps: Vec<Step>,
    pub status: WorkflowStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rev: u64,
}

/// What the engine does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextMove {
    /// Submit (expand first, if needed) step `step`.
    Submit { step: usize },
    /// Nothing to do before `at`.
    WaitUntil { at: DateTime<Utc> },
    /// The current step's actions are queued or running: wait for the executor.
    WaitForActions,
    /// An action waits for an approver.
    WaitForApproval { action_id: String },
    /// Step `step` is done (all its actions succeeded): mark it and look again.
    StepDone { step: usize },
    /// Step `step` failed with this reason.
    StepFailed { step: usize, reason: String },
    /// Every step is done.
    Complete,
    /// The workflow is over (completed, cancelled) or stopped (failed).
    Stopped,
}

/// Why parameters do not fit a template, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct ParamsError {
    pub problems: Vec<String>,
}

impl WorkflowParams {
    fn problems(&self, template: Template) -> Vec<String> {
        let mut p = Vec::new();
        if self.user.trim().is_empty() {
            p.push("user: must name a user (object id, user principal name or email)".into());
        }
        match template {
            Template::Onboarding => {
                if self.groups.is_empty() && self.apps.is_empty() {
                    p.push("onboarding needs at least one of groups or apps".into());
                }
                for (i, g) in self.groups.iter().enumerate() {
                    if g.trim().is_empty() {
                        p.push(format!("groups[{i}] is empty"));
                    }
                }
                for (i, a) in self.apps.iter().enumerate() {
                    if !is_guid(&a.service_principal_id) {
                        p.push(format!(
                            "apps[{i}].service_principal_id must be a GUID, got \"{}\"",
                            truncate(&a.service_principal_id, 60)
                        ));
                    }
                    if let Some(r) = &a.app_role_id
                        && !is_guid(r)
                    {
                        p.push(format!("apps[{i}].app_role_id must be a GUID"));
                    }
                }
            }
            Template::Offboarding | Template::LostDevice => {
                if !self.groups.is_empty() || !self.apps.is_empty() {
                    p.push(format!(
                        "{} takes no groups or apps (it removes all of them)",
                        template.as_str()
                    ));
                }
                if template == Template::LostDevice && self.at.is_some() {
                    p.push("lost_device runs now; it takes no date".into());
                }
            }
        }
        p
    }
}

/// The steps of `template` for `params`.
pub fn steps_for(template: Template, params: &WorkflowParams) -> Result<Vec<Step>, ParamsError> {
    let problems = params.problems(template);
    if !problems.is_empty() {
        return Err(ParamsError { problems });
    }
    let user = params.user.trim().to_string();
    let step = |spec: StepSpec| Step {
        spec,
        run_at: None,
        status: StepStatus::Pending,
        action_ids: vec![],
        attempt: 0,
    };
    let mut steps = match template {
        Template::Onboarding => {
            let mut steps = Vec::new();
            if !params.groups.is_empty() {
                steps.push(step(StepSpec::Actions {
                    actions: params
                        .groups
                        .iter()
                        .map(|g| ActionSpec::AddGroupMember {
                            user: user.clone(),
                            group: g.trim().to_string(),
                        })
                        .collect(),
                }));
            }
            if !params.apps.is_empty() {
                steps.push(step(StepSpec::Actions {
                    actions: params
                        .apps
                        .iter()
                        .map(|a| ActionSpec::AssignAppRole {
                            user: user.clone(),
                            service_principal_id: a.service_principal_id.clone(),
                            app_role_id: a.app_role_id.clone(),
                        })
                        .collect(),
                }));
            }
            steps
        }
        Template::Offboarding => vec![
            step(StepSpec::Actions {
                actions: vec![ActionSpec::RevokeSessions { user: user.clone() }],
            }),
            step(StepSpec::RemoveAllApps { user: user.clone() }),
            step(StepSpec::RemoveFromAllGroups { user: user.clone() }),
            step(StepSpec::Actions {
                actions: vec![ActionSpec::BlockSignIn { user }],
            }),
        ],
        Template::LostDevice => vec![step(StepSpec::Actions {
            actions: vec![ActionSpec::RevokeSessions { user }],
        })],
    };
    if let (Some(at), Some(first)) = (params.at, steps.first_mut()) {
        first.run_at = Some(at);
    }
    Ok(steps)
}

/// The idempotency key of action `n` of step `step` (attempt `attempt`) of workflow `id`: a
/// step's actions are submitted once, however often the engine runs.
pub fn step_action_key(workflow_id: &str, step: usize, attempt: u32, n: usize) -> String {
    format!("wf:{workflow_id}:{step}:{attempt}:{n}")
}

impl Workflow {
    /// The first step that is not done.
    pub fn current_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.status != StepStatus::Done)
    }

    /// What to do next at `now`, given the statuses of the current step's actions (`None` for
    /// an action id that cannot be found, which counts as a failure).
    pub fn next_move(&self, now: DateTime<Utc>, statuses: &[Option<ActionStatus>]) -> NextMove {
        if self.status.is_final() || matches!(self.status, WorkflowStatus::Failed { .. }) {
            return NextMove::Stopped;
        }
        let Some(i) = self.current_step() else {
            return NextMove::Complete;
        };
        let step = &self.steps[i];
        match &step.status {
            StepStatus::Done => NextMove::StepDone { step: i },
            StepStatus::Failed { reason } => NextMove::StepFailed {
                step: i,
                reason: reason.clone(),
            },
            StepStatus::Pending => match step.run_at {
                Some(at) if at > now => NextMove::WaitUntil { at },
                _ => NextMove::Submit { step: i },
            },
            StepStatus::Submitted => {
                let mut waiting_for_approval = None;
                let mut busy = false;
                for (id, s) in step.action_ids.iter().zip(statuses) {
                    match s {
                        None => {
                            return NextMove::StepFailed {
                                step: i,
                                reason: format!("action {id} of this step is missing"),
                            };
                        }
                        Some(ActionStatus::Succeeded { .. }) => {}
                        Some(ActionStatus::Failed { reason, .. }) => {
                            return NextMove::StepFailed {
                                step: i,
                                reason: reason.clone(),
                            };
                        }
                        Some(
                            s @ (ActionStatus::Rejected
                            | ActionStatus::Expired
                            | ActionStatus::Cancelled),
                        ) => {
                            return NextMove::StepFailed {
                                step: i,
                                reason: format!("action {id} was {}", s.as_str()),
                            };
                        }
                        Some(ActionStatus::PendingApproval { .. }) => {
                            waiting_for_approval.get_or_insert_with(|| id.clone());
                        }
                        Some(
                            ActionStatus::Approved
                            | ActionStatus::Queued
                            | ActionStatus::Running { .. },
                        ) => {
                            busy = true;
                        }
                    }
                }
                if busy {
                    NextMove::WaitForActions
                } else if let Some(action_id) = waiting_for_approval {
                    NextMove::WaitForApproval { action_id }
                } else {
                    NextMove::StepDone { step: i }
                }
            }
        }
    }

    /// Move every not-yet-started step's date to `at` (an HR system changed the date).
    pub fn reschedule(&mut self, at: Option<DateTime<Utc>>) -> bool {
        let Some(i) = self.current_step() else {
            return false;
        };
        if self.steps[i].status != StepStatus::Pending || self.status.is_final() {
            return false;
        }
        self.steps[i].run_at = at;
        self.params.at = at;
        if let Some(at) = at {
            self.status = WorkflowStatus::Scheduled { at };
        }
        true
    }

    /// Run a failed step again (new idempotency keys for its actions).
    pub fn retry(&mut self) -> Result<(), String> {
        let WorkflowStatus::Failed { step, .. } = self.status else {
            return Err(format!(
                "the workflow is {}; only a failed workflow can be retried",
                self.status.as_str()
            ));
        };
        let s = &mut self.steps[step as usize];
        s.status = StepStatus::Pending;
        s.action_ids.clear();
        s.attempt += 1;
        s.run_at = None;
        self.status = WorkflowStatus::Running;
        self.finished_at = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn params(user: &str) -> WorkflowParams {
        WorkflowParams {
            user: user.into(),
            groups: vec![],
            apps: vec![],
            at: None,
        }
    }

    fn workflow(template: Template, p: WorkflowParams) -> Workflow {
        Workflow {
            id: "w1".into(),
            tenant_id: TenantId::new("t"),
            account_id: AccountId("a".into()),
            template,
            steps: steps_for(template, &p).unwrap(),
            params: p,
            requested_by: "alice".into(),
            origin: WorkflowOrigin::Cli,
            created_at: now(),
            status: WorkflowStatus::Running,
            finished_at: None,
            rev: 0,
        }
    }

    #[test]
    fn offboarding_runs_in_the_documented_order() {
        let w = workflow(Template::Offboarding, params("u@x.com"));
        let order: Vec<String> = w.steps.iter().map(|s| s.spec.describe()).collect();
        assert_eq!(
            order,
            vec![
                "revoke_sessions",
                "remove every app assignment",
                "remove from every group",
                "block_sign_in"
            ]
        );
    }

    #[test]
    fn onboarding_needs_something_to_do_and_valid_apps() {
        let e = steps_for(Template::Onboarding, &params("u@x.com")).unwrap_err();
        assert!(e.to_string().contains("groups or apps"), "{e}");
        let mut p = params("u@x.com");
        p.apps.push(AppRef {
            service_principal_id: "nope".into(),
            app_role_id: None,
        });
        let e = steps_for(Template::Onboarding, &p).unwrap_err();
        assert!(
            e.to_string().contains("apps[0].service_principal_id"),
            "{e}"
        );
        let mut p = params("u@x.com");
        p.groups = vec!["Sales".into(), "Ops".into()];
        let steps = steps_for(Template::Onboarding, &p).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].spec.describe(),
            "add_group_member, add_group_member"
        );
    }

    #[test]
    fn a_future_dated_workflow_waits_for_its_date() {
        let mut p = params("u@x.com");
        p.at = Some(now() + Duration::days(3));
        let w = workflow(Template::Offboarding, p);
        assert_eq!(
            w.next_move(now(), &[]),
            NextMove::WaitUntil {
                at: now() + Duration::days(3)
            }
        );
        assert_eq!(
            w.next_move(now() + Duration::days(3), &[]),
            NextMove::Submit { step: 0 }
        );
    }

    #[test]
    fn a_step_waits_for_its_actions_then_for_approval_and_fails_on_any_failure() {
        let mut w = workflow(Template::Offboarding, params("u@x.com"));
        w.steps[0].status = StepStatus::Submitted;
        w.steps[0].action_ids = vec!["a".into(), "b".into()];
        let pending = ActionStatus::PendingApproval {
            expires_at: now() + Duration::hours(1),
        };
        assert_eq!(
            w.next_move(now(), &[Some(ActionStatus::Queued), Some(pending.clone())]),
            NextMove::WaitForActions
        );
        let ok = ActionStatus::Succeeded {
            already_in_effect: false,
        };
        assert_eq!(
            w.next_move(now(), &[Some(ok.clone()), Some(pending)]),
            NextMove::WaitForApproval {
                action_id: "b".into()
            }
        );
        assert_eq!(
            w.next_move(now(), &[Some(ok.clone()), Some(ok.clone())]),
            NextMove::StepDone { step: 0 }
        );
        match w.next_move(now(), &[Some(ok), Some(ActionStatus::Rejected)]) {
            NextMove::StepFailed { step: 0, reason } => assert!(reason.contains("rejected")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            w.next_move(now(), &[None, None]),
            NextMove::StepFailed { .. }
        ));
    }

    #[test]
    fn retry_gives_the_failed_step_new_keys() {
        let mut w = workflow(Template::LostDevice, params("u@x.com"));
        w.steps[0].status = StepStatus::Failed { reason: "x".into() };
        w.status = WorkflowStatus::Failed {
            step: 0,
            reason: "x".into(),
        };
        assert_eq!(w.next_move(now(), &[]), NextMove::Stopped);
        w.retry().unwrap();
        assert_eq!(w.steps[0].attempt, 1);
        assert_ne!(
            step_action_key("w1", 0, 0, 0),
            step_action_key("w1", 0, 1, 0)
        );
        assert_eq!(w.next_move(now(), &[]), NextMove::Submit { step: 0 });
        assert!(w.retry().is_err());
    }

    #[test]
    fn a_pending_step_can_be_rescheduled_and_a_started_one_cannot() {
        let mut p = params("u@x.com");
        p.at = Some(now() + Duration::days(3));
        let mut w = workflow(Template::Offboarding, p);
        assert!(w.reschedule(Some(now() + Duration::days(5))));
        assert_eq!(w.steps[0].run_at, Some(now() + Duration::days(5)));
        w.steps[0].status = StepStatus::Submitted;
        assert!(!w.reschedule(Some(now())));
    }

    #[test]
    fn lost_device_takes_no_date() {
        let mut p = params("u@x.com");
        p.at = Some(now());
        assert!(steps_for(Template::LostDevice, &p).is_err());
    }
}
