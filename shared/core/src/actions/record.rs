//! One action request and everything that happened to it: the audit record. Its status changes
//! only through the pure transitions below; the service stores the result with a conditional
//! write on `rev`, so two workers (or an approver and the expiry sweep) never both win.
//!
//! ```text
//!  submit ─┬─(needs approval)──▶ pending_approval ──approve──▶ queued (approved, for a reset password)
//!          │                         ├──reject──▶ rejected
//!          │                         └──expiry passes──▶ expired
//!          └─────────────────────▶ queued ──start──▶ running ──▶ succeeded | failed
//!  cancel: pending_approval | approved | queued ──▶ cancelled;  retry: failed ──▶ queued
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::kind::{ActionKind, ActionSpec};
use crate::model::{AccountId, TenantId};

/// Who or what asked for the action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Origin {
    /// The admin HTTP API (the host product's backend or console).
    Api,
    /// The local `entra-sync act` command.
    Cli,
    /// A step of a workflow.
    Workflow { workflow_id: String, step: u32 },
}

/// The targets of an action as object ids, resolved from the mirror when it was submitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub user_id: String,
    /// The user's principal name (or email), for people reading the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role_id: Option<String>,
}

/// Where an action stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waits for an approver until `expires_at`.
    PendingApproval {
        expires_at: DateTime<Utc>,
    },
    /// Approved, and waiting for its requester to run it: a password reset's temporary password
    /// is shown once to the person who runs it, so it is never run (and its password never
    /// held) by anybody else.
    Approved,
    /// Waiting for the executor.
    Queued,
    /// The executor is calling the directory (since `since`).
    Running {
        since: DateTime<Utc>,
    },
    /// Done. `already_in_effect`: the directory already was in the asked-for state (already a
    /// member, not a member, ...), which counts as success.
    Succeeded {
        already_in_effect: bool,
    },
    /// Stopped with a reason in plain words. `retryable`: a `retry` may succeed (throttling,
    /// an outage); otherwise the request itself must change.
    Failed {
        reason: String,
        retryable: bool,
    },
    Rejected,
    Expired,
    Cancelled,
}

impl ActionStatus {
    /// The documented snake_case word.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionStatus::PendingApproval { .. } => "pending_approval",
            ActionStatus::Approved => "approved",
            ActionStatus::Queued => "queued",
            ActionStatus::Running { .. } => "running",
            ActionStatus::Succeeded { .. } => "succeeded",
            ActionStatus::Failed { .. } => "failed",
            ActionStatus::Rejected => "rejected",
            ActionStatus::Expired => "expired",
            ActionStatus::Cancelled => "cancelled",
        }
    }

    /// Nothing will happen to the action any more (a failed one may still be retried by hand).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ActionStatus::Succeeded { .. }
                | ActionStatus::Failed { .. }
                | ActionStatus::Rejected
                | ActionStatus::Expired
                | ActionStatus::Cancelled
        )
    }
}

/// An approver's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    pub at: DateTime<Utc>,
    pub approved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One line of an action's history (the audit trail shows them in order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// The status word the action entered.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An action and its audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Derived from (tenant, idempotency key): the same key always names the same action.
    pub id: String,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    /// The caller's idempotency key.
    pub key: String,
    /// SHA-256 (hex) of the request's canonical JSON: the same key with another request is
    /// refused.
    pub payload_hash: String,
    pub spec: ActionSpec,
    pub target: Target,
    pub requested_by: String,
    pub origin: Origin,
    pub requested_at: DateTime<Utc>,
    pub status: ActionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Directory calls made for it (a retried failure adds one).
    #[serde(default)]
    pub attempts: u32,
    /// Microsoft Graph's `request-id` of the last directory call, for support cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Optimistic-concurrency revision; every stored change bumps it.
    #[serde(default)]
    pub rev: u64,
}

/// Why a transition is not possible, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("{by} asked for this action and cannot approve it; another approver must decide")]
    SelfApproval { by: String },
    #[error("the action is {status}, not waiting for approval")]
    NotPending { status: &'static str },
    #[error("the approval window ended at {at}; the request expired")]
    ApprovalExpired { at: DateTime<Utc> },
    #[error("the action is {status} and can no longer be cancelled")]
    NotCancellable { status: &'static str },
    #[error("the action is {status}; only a failed action can be retried")]
    NotRetryable { status: &'static str },
    #[error("the action is {status} and cannot be started")]
    NotStartable { status: &'static str },
    #[error(
        "a password reset is run by the person who asked for it ({requested_by}), so that only they see the temporary password"
    )]
    NotTheRequester { requested_by: String },
}

impl ActionRecord {
    pub fn kind(&self) -> ActionKind {
        self.spec.kind()
    }

    fn enter(
        &mut self,
        status: ActionStatus,
        at: DateTime<Utc>,
        by: Option<&str>,
        note: Option<String>,
    ) {
        self.history.push(HistoryEntry {
            at,
            status: status.as_str().to_string(),
            by: by.map(str::to_string),
            note,
        });
        if status.is_final() {
            self.finished_at = Some(at);
        }
        self.status = status;
    }

    /// The status a new request starts in.
    pub fn submitted(&mut self, needs_approval: bool, expires_at: DateTime<Utc>) {
        let status = match needs_approval {
            true => ActionStatus::PendingApproval { expires_at },
            false => ActionStatus::Queued,
        };
        let by = self.requested_by.clone();
        self.enter(status, self.requested_at, Some(&by), None);
    }

    /// An approver's yes. A password reset then waits for its requester to run it; every other
    /// kind goes to the executor.
    pub fn approve(
        &mut self,
        by: &str,
        now: DateTime<Utc>,
        comment: Option<String>,
    ) -> Result<(), TransitionError> {
        self.check_decidable(by, now)?;
        self.decision = Some(Decision {
            by: by.to_string(),
            at: now,
            approved: true,
            comment: comment.clone(),
        });
        let next = match self.kind() {
            ActionKind::ResetPassword => ActionStatus::Approved,
            _ => ActionStatus::Queued,
        };
        self.enter(next, now, Some(by), comment);
        Ok(())
    }

    pub fn reject(
        &mut self,
        by: &str,
        now: DateTime<Utc>,
        comment: Option<String>,
    ) -> Result<(), TransitionError> {
        self.check_decidable(by, now)?;
        self.decision = Some(Decision {
            by: by.to_string(),
            at: now,
            approved: false,
            comment: comment.clone(),
        });
        self.enter(ActionStatus::Rejected, now, Some(by), comment);
        Ok(())
    }

    fn check_decidable(&self, by: &str, now: DateTime<Utc>) -> Result<(), TransitionError> {
        let ActionStatus::PendingApproval { expires_at } = self.status else {
            return Err(TransitionError::NotPending {
                status: self.status.as_str(),
            });
        };
        if now >= expires_at {
            return Err(TransitionError::ApprovalExpired { at: expires_at });
        }
        if same_person(by, &self.requested_by) {
            return Err(TransitionError::SelfApproval { by: by.to_string() });
        }
        Ok(())
    }

    /// Whether a pending request's window has passed at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, ActionStatus::PendingApproval { expires_at } if now >= expires_at)
    }

    /// Mark an overdue pending request expired. Returns whether it changed.
    pub fn expire(&mut self, now: DateTime<Utc>) -> bool {
        if !self.is_expired_at(now) {
            return false;
        }
        self.enter(
            ActionStatus::Expired,
            now,
            None,
            Some("no approver decided in time".into()),
        );
        true
    }

    pub fn cancel(&mut self, by: &str, now: DateTime<Utc>) -> Result<(), TransitionError> {
        match self.status {
            ActionStatus::PendingApproval { .. }
            | ActionStatus::Approved
            | ActionStatus::Queued => {
                self.enter(ActionStatus::Cancelled, now, Some(by), None);
                Ok(())
            }
            ref s => Err(TransitionError::NotCancellable { status: s.as_str() }),
        }
    }

    /// Put a failed action back in the queue.
    pub fn retry(&mut self, by: &str, now: DateTime<Utc>) -> Result<(), TransitionError> {
        match self.status {
            ActionStatus::Failed { .. } => {
                self.finished_at = None;
                let next = match (self.kind(), &self.decision) {
                    // An approved reset is run again by its requester, never by the executor.
                    (ActionKind::ResetPassword, _) => ActionStatus::Approved,
                    _ => ActionStatus::Queued,
                };
                self.enter(next, now, Some(by), Some("retry".into()));
                Ok(())
            }
            ref s => Err(TransitionError::NotRetryable { status: s.as_str() }),
        }
    }

    /// The executor (or, for a password reset, its requester) starts the directory call.
    /// A `running` action whose worker died is taken over (the directory's answers to a repeat
    /// call count as success, so running it again is safe).
    pub fn start(
        &mut self,
        runner: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        match (&self.status, self.kind()) {
            (ActionStatus::Approved, ActionKind::ResetPassword)
            | (ActionStatus::Queued, ActionKind::ResetPassword) => {
                if let Some(r) = runner
                    && !same_person(r, &self.requested_by)
                {
                    return Err(TransitionError::NotTheRequester {
                        requested_by: self.requested_by.clone(),
                    });
                }
                if runner.is_none() {
                    return Err(TransitionError::NotTheRequester {
                        requested_by: self.requested_by.clone(),
                    });
                }
            }
            (ActionStatus::Queued, _) | (ActionStatus::Running { .. }, _) => {}
            (s, _) => {
                return Err(TransitionError::NotStartable { status: s.as_str() });
            }
        }
        self.attempts += 1;
        self.enter(ActionStatus::Running { since: now }, now, runner, None);
        Ok(())
    }

    /// The directory call is over.
    pub fn finish(
        &mut self,
        now: DateTime<Utc>,
        result: Result<bool, (String, bool)>,
        graph_request_id: Option<String>,
    ) {
        if graph_request_id.is_some() {
            self.graph_request_id = graph_request_id;
        }
        let (status, note) = match result {
            Ok(already_in_effect) => (
                ActionStatus::Succeeded { already_in_effect },
                already_in_effect.then(|| "the directory was already in this state".to_string()),
            ),
            Err((reason, retryable)) => (
                ActionStatus::Failed {
                    reason: reason.clone(),
                    retryable,
                },
                Some(reason),
            ),
        };
        self.enter(status, now, None, note);
    }

    /// Back to the queue after a retryable failure the executor retries by itself (throttling).
    pub fn requeue(&mut self, now: DateTime<Utc>, note: String) {
        self.enter(ActionStatus::Queued, now, None, Some(note));
    }
}

/// Approvers and requesters are compared case-insensitively (emails, UPNs, user names).
fn same_person(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn record(spec: ActionSpec) -> ActionRecord {
        ActionRecord {
            id: "a1".into(),
            tenant_id: TenantId::new("t"),
            account_id: AccountId("acct".into()),
            key: "k".into(),
            payload_hash: "h".into(),
            spec,
            target: Target::default(),
            requested_by: "alice@host".into(),
            origin: Origin::Cli,
            requested_at: t0(),
            status: ActionStatus::Queued,
            decision: None,
            attempts: 0,
            graph_request_id: None,
            finished_at: None,
            history: vec![],
            rev: 0,
        }
    }

    fn block() -> ActionRecord {
        let mut r = record(ActionSpec::BlockSignIn { user: "u".into() });
        r.submitted(true, t0() + Duration::hours(72));
        r
    }

    #[test]
    fn the_requester_cannot_approve_their_own_request() {
        let mut r = block();
        let e = r.approve("Alice@Host", t0(), None).unwrap_err();
        assert!(matches!(e, TransitionError::SelfApproval { .. }));
        assert!(matches!(r.status, ActionStatus::PendingApproval { .. }));
        r.approve("bob@host", t0(), Some("ok".into())).unwrap();
        assert_eq!(r.status, ActionStatus::Queued);
        assert_eq!(r.decision.as_ref().unwrap().by, "bob@host");
    }

    #[test]
    fn a_request_expires_and_cannot_be_approved_after() {
        let mut r = block();
        let late = t0() + Duration::hours(72);
        assert!(!r.expire(late - Duration::seconds(1)));
        let e = r.approve("bob", late, None).unwrap_err();
        assert!(matches!(e, TransitionError::ApprovalExpired { .. }));
        assert!(r.expire(late));
        assert_eq!(r.status, ActionStatus::Expired);
        assert!(r.finished_at.is_some());
        assert!(r.approve("bob", late, None).is_err());
    }

    #[test]
    fn rejected_is_final_and_audited() {
        let mut r = block();
        r.reject("bob", t0(), Some("not now".into())).unwrap();
        assert_eq!(r.status, ActionStatus::Rejected);
        assert!(r.start(None, t0()).is_err());
        let last = r.history.last().unwrap();
        assert_eq!(last.status, "rejected");
        assert_eq!(last.by.as_deref(), Some("bob"));
    }

    #[test]
    fn an_approved_password_reset_is_run_by_its_requester_only() {
        let mut r = record(ActionSpec::ResetPassword { user: "u".into() });
        r.submitted(true, t0() + Duration::hours(1));
        r.approve("bob", t0(), None).unwrap();
        assert_eq!(r.status, ActionStatus::Approved);
        assert!(matches!(
            r.start(None, t0()),
            Err(TransitionError::NotTheRequester { .. })
        ));
        assert!(matches!(
            r.start(Some("bob"), t0()),
            Err(TransitionError::NotTheRequester { .. })
        ));
        r.start(Some("alice@host"), t0()).unwrap();
        assert_eq!(r.attempts, 1);
    }

    #[test]
    fn a_failed_action_can_be_retried_and_a_done_one_cannot() {
        let mut r = record(ActionSpec::RevokeSessions { user: "u".into() });
        r.submitted(false, t0());
        r.start(None, t0()).unwrap();
        r.finish(t0(), Err(("throttled".into(), true)), Some("req-1".into()));
        assert!(matches!(
            r.status,
            ActionStatus::Failed {
                retryable: true,
                ..
            }
        ));
        r.retry("ops", t0()).unwrap();
        assert_eq!(r.status, ActionStatus::Queued);
        assert!(r.finished_at.is_none());
        r.start(None, t0()).unwrap();
        r.finish(t0(), Ok(true), None);
        assert_eq!(
            r.status,
            ActionStatus::Succeeded {
                already_in_effect: true
            }
        );
        assert_eq!(r.graph_request_id.as_deref(), Some("req-1"));
        assert!(r.retry("ops", t0()).is_err());
        assert!(r.cancel("ops", t0()).is_err());
        assert_eq!(r.attempts, 2);
    }

    #[test]
    fn a_running_action_whose_worker_died_can_be_taken_over() {
        let mut r = record(ActionSpec::RevokeSessions { user: "u".into() });
        r.submitted(false, t0());
        r.start(None, t0()).unwrap();
        r.start(None, t0() + Duration::minutes(20)).unwrap();
        assert_eq!(r.attempts, 2);
    }

    #[test]
    fn statuses_serialise_as_documented_words() {
        let s = serde_json::to_value(ActionStatus::Succeeded {
            already_in_effect: false,
        })
        .unwrap();
        assert_eq!(s["status"], "succeeded");
        let s = serde_json::to_value(ActionStatus::PendingApproval { expires_at: t0() }).unwrap();
        assert_eq!(s["status"], "pending_approval");
    }
}
