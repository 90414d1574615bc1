//! Decisions on an action: an approver's yes or no, a cancel, a retry of a failed action, and
//! the sweep that expires requests nobody decided in time. Each is a pure transition of the
//! record ([`crate::actions::record`]) stored with a conditional write, so an approver and the
//! expiry sweep (or two approvers) never both win.

use super::submit::enqueue;
use super::workflows::advance_for;
use super::{ActionDeps, ActionError, get_action, store};
use crate::actions::ports::ActionFilter;
use crate::actions::record::{ActionRecord, ActionStatus};
use crate::model::{AccountId, TenantId};
use crate::ports::Pages;

/// Approve or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Clone, Debug)]
pub struct DecideRequest {
    pub account: AccountId,
    pub tenant: TenantId,
    pub action_id: String,
    pub decision: Decision,
    /// The approver (never the requester).
    pub by: String,
    pub comment: Option<String>,
}

/// An approver decides on a pending action. An approved action goes to the executor (a
/// password reset waits for its requester to run it); a workflow waiting for it resumes.
pub async fn decide_action(
    deps: &ActionDeps,
    req: DecideRequest,
) -> Result<ActionRecord, ActionError> {
    if req.by.trim().is_empty() {
        return Err(ActionError::Invalid(vec![
            "by: must name the approver".into(),
        ]));
    }
    let mut r = get_action(deps, &req.account, &req.tenant, &req.action_id).await?;
    let now = deps.clock.now();
    if r.expire(now) {
        // Overdue: record the expiry, then refuse the decision with its reason.
        let stored = store(deps, r).await?;
        advance_for(deps, &stored).await;
        return Err(ActionError::Transition(
            crate::actions::record::TransitionError::ApprovalExpired {
                at: match stored.history.last() {
                    Some(h) => h.at,
                    None => now,
                },
            },
        ));
    }
    let comment = req.comment.map(|c| c.trim().chars().take(500).collect());
    match req.decision {
        Decision::Approve => r.approve(req.by.trim(), now, comment)?,
        Decision::Reject => r.reject(req.by.trim(), now, comment)?,
    }
    let stored = store(deps, r).await?;
    if stored.status == ActionStatus::Queued {
        enqueue(deps, &stored).await?;
    }
    advance_for(deps, &stored).await;
    Ok(stored)
}

/// Cancel an action that has not started.
pub async fn cancel_action(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
    by: &str,
) -> Result<ActionRecord, ActionError> {
    let mut r = get_action(deps, account, tenant, id).await?;
    r.cancel(by.trim(), deps.clock.now())?;
    let stored = store(deps, r).await?;
    advance_for(deps, &stored).await;
    Ok(stored)
}

/// Queue a failed action again.
pub async fn retry_action(
    deps: &ActionDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
    by: &str,
) -> Result<ActionRecord, ActionError> {
    let mut r = get_action(deps, account, tenant, id).await?;
    r.retry(by.trim(), deps.clock.now())?;
    let stored = store(deps, r).await?;
    if stored.status == ActionStatus::Queued {
        enqueue(deps, &stored).await?;
    }
    Ok(stored)
}

/// Expire every pending request of `tenant` whose approval window passed, and put queued
/// actions that were never delivered back on the queue. Returns how many expired.
pub async fn expire_overdue(deps: &ActionDeps, tenant: &TenantId) -> Result<usize, ActionError> {
    let now = deps.clock.now();
    let mut expired = 0;
    let filter = ActionFilter {
        user_id: None,
        status: Some("pending_approval".into()),
    };
    let mut pages = Pages::default();
    while let Some(after) = pages.next_after() {
        let page = deps
            .actions
            .list_actions(tenant, &filter, after, 200)
            .await?;
        for mut r in page.items {
            if r.expire(now) {
                match store(deps, r).await {
                    Ok(stored) => {
                        expired += 1;
                        advance_for(deps, &stored).await;
                    }
                    // Decided meanwhile: the decision stands.
                    Err(ActionError::Store(crate::error::StoreError::Conflict(_))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        pages.advance(page.next);
    }
    redeliver_stale(deps, tenant, now).await?;
    Ok(expired)
}

/// How long a queued action may wait before the sweep assumes its message was lost.
const STALE_QUEUED: chrono::Duration = chrono::Duration::minutes(15);

async fn redeliver_stale(
    deps: &ActionDeps,
    tenant: &TenantId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ActionError> {
    let filter = ActionFilter {
        user_id: None,
        status: Some("queued".into()),
    };
    let mut pages = Pages::default();
    while let Some(after) = pages.next_after() {
        let page = deps
            .actions
            .list_actions(tenant, &filter, after, 200)
            .await?;
        for r in page.items {
            let since = r.history.last().map_or(r.requested_at, |h| h.at);
            if now - since >= STALE_QUEUED {
                enqueue(deps, &r).await?;
            }
        }
        pages.advance(page.next);
    }
    Ok(())
}
