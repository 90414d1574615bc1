//! Executing an action: one directory write per action (per attempt), claimed so that two
//! deliveries of its message never both call the directory, within the tenant's write budget,
//! with the permission checked first and the mirror updated at once after a success.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::permissions::{check_permission, refresh_permissions};
use super::workflows::advance_for;
use super::{ActionDeps, ActionError, store, usable};
use crate::actions::kind::{ActionKind, ActionSpec};
use crate::actions::password::temporary_password;
use crate::actions::ports::ActionMessage;
use crate::actions::record::{ActionRecord, ActionStatus};
use crate::directory_write::{AppRoleRef, WriteError, WriteOutcome};
use crate::model::{
    MemberRef, MemberType, Presence, RemovalReason, StoredMembership, Stream, TenantId, Version,
};
use crate::ports::Secret;
use crate::services::claim::{ClaimError, Claimed};
use crate::services::project::load_settings;

/// An action this call ran to its end.
#[derive(Debug)]
pub struct Executed {
    pub record: ActionRecord,
    /// A password reset's temporary password: returned once, to the caller that ran it, and
    /// never stored, logged or put in an event.
    pub temporary_password: Option<Secret>,
}

/// What an execution came to.
#[derive(Debug)]
pub enum ExecuteOutcome {
    /// This call ran the action; it succeeded or failed for good.
    Done(Executed),
    /// The action had already ended (or was cancelled, rejected, expired): nothing was done.
    AlreadyFinal(ActionRecord),
    /// The action waits for something else (an approver; for a password reset, its
    /// requester): nothing was done.
    NotReady(ActionRecord),
    /// Another worker holds the action until `until`.
    Busy { until: DateTime<Utc> },
    /// The directory throttled the call or failed for a moment: the action is queued again,
    /// to run after `after`.
    RetryLater {
        after: Duration,
        record: ActionRecord,
    },
}

/// Run action `id` of `tenant`. `runner` is the person running it by hand (a password reset is
/// only run by its requester); the executor passes `None`.
pub async fn execute_action(
    deps: &ActionDeps,
    tenant: &TenantId,
    id: &str,
    runner: Option<&str>,
) -> Result<ExecuteOutcome, ActionError> {
    let record =
        deps.actions
            .get_action(tenant, id)
            .await?
            .ok_or_else(|| ActionError::UnknownAction {
                tenant: tenant.clone(),
                id: id.to_string(),
            })?;
    if record.status.is_final() {
        return Ok(ExecuteOutcome::AlreadyFinal(record));
    }
    let startable = match (&record.status, record.kind()) {
        (ActionStatus::PendingApproval { .. }, _) => false,
        (ActionStatus::Approved | ActionStatus::Queued, ActionKind::ResetPassword) => {
            runner.is_some()
        }
        (ActionStatus::Queued | ActionStatus::Running { .. }, _) => true,
        _ => false,
    };
    if !startable {
        return Ok(ExecuteOutcome::NotReady(record));
    }
    let key = format!("exec#{}#{}", record.id, record.attempts);
    let hash = record.payload_hash.clone();
    let claimed = deps
        .claims
        .run_once(
            tenant,
            &key,
            &hash,
            |o: &ExecuteOutcome| match o {
                ExecuteOutcome::Done(e) => e.record.status.as_str().to_string(),
                _ => "retry".to_string(),
            },
            || run(deps, record, runner),
        )
        .await;
    match claimed {
        Ok(Claimed::Ran(outcome)) => Ok(outcome),
        Ok(Claimed::AlreadyDone(_)) | Ok(Claimed::Mismatch) => {
            // Another delivery finished this attempt a moment ago: answer with what is stored.
            let now = deps.actions.get_action(tenant, id).await?.ok_or_else(|| {
                ActionError::UnknownAction {
                    tenant: tenant.clone(),
                    id: id.to_string(),
                }
            })?;
            Ok(match now.status.is_final() {
                true => ExecuteOutcome::AlreadyFinal(now),
                false => ExecuteOutcome::NotReady(now),
            })
        }
        Ok(Claimed::Busy { until }) => Ok(ExecuteOutcome::Busy { until }),
        Err(ClaimError::Store(e)) => Err(e.into()),
        Err(ClaimError::Work(e)) => Err(e),
    }
}

async fn run(
    deps: &ActionDeps,
    mut record: ActionRecord,
    runner: Option<&str>,
) -> Result<ExecuteOutcome, ActionError> {
    let now = deps.clock.now();
    record.start(runner, now)?;
    let mut record = match store(deps, record).await {
        Ok(r) => r,
        Err(ActionError::Store(crate::error::StoreError::Conflict(_))) => {
            return Ok(ExecuteOutcome::Busy { until: now });
        }
        Err(e) => return Err(e),
    };
    let tenant = record.tenant_id.clone();

    // Checks that need no directory call: the connection, the policy, the granted permission.
    if let Some(reason) = precheck(deps, &record).await? {
        record.finish(deps.clock.now(), Err((reason, false)), None);
        return finished(deps, record, None).await;
    }

    deps.budget.acquire(&tenant).await;
    let mut password = None;
    let result = match &record.spec {
        ActionSpec::ResetPassword { .. } => match temporary_password() {
            Ok(p) => {
                let r = deps
                    .writer
                    .reset_password(&tenant, &record.target.user_id, &p)
                    .await;
                password = Some(p);
                r
            }
            Err(_) => return Err(ActionError::Random),
        },
        _ => call(deps, &record).await,
    };
    let now = deps.clock.now();
    match result {
        Ok(outcome) => {
            let already = !outcome.is_applied();
            record.finish(now, Ok(already), outcome.request_id().map(str::to_string));
            if let Err(e) = mirror_provisionally(deps, &record).await {
                // The directory changed; the next sync shows it. Not a reason to fail the action.
                tracing::warn!(error = %e, action = %record.id, "mirror not updated after the action");
            }
            let password = match record.kind() {
                ActionKind::ResetPassword => password,
                _ => None,
            };
            finished(deps, record, password).await
        }
        Err(e) => {
            if matches!(e, WriteError::MissingPermission { .. }) {
                // The record said granted, Graph says not (revoked since): read it again, so
                // the next action is refused before it calls Graph.
                if let Err(refresh) = refresh_permissions(deps, &tenant).await {
                    tracing::warn!(error = %refresh, tenant = %tenant, "granted permissions not read again after a refusal");
                }
            }
            let request_id = e.request_id().map(str::to_string);
            let retry_after = match &e {
                WriteError::Throttled { retry_after, .. } => {
                    let wait = retry_after.unwrap_or(Duration::from_secs(5));
                    deps.budget.pause(&tenant, wait);
                    Some(wait)
                }
                WriteError::Transient { .. } => Some(backoff(record.attempts)),
                _ => None,
            };
            match retry_after {
                Some(after)
                    if record.attempts < deps.config.max_attempts
                        && record.kind() != ActionKind::ResetPassword =>
                {
                    if request_id.is_some() {
                        record.graph_request_id = request_id;
                    }
                    record.requeue(
                        now,
                        format!("{e}; retrying in {} s", after.as_secs().max(1)),
                    );
                    let stored = store(deps, record).await?;
                    Ok(ExecuteOutcome::RetryLater {
                        after,
                        record: stored,
                    })
                }
                _ => {
                    record.finish(now, Err((e.to_string(), e.is_retryable())), request_id);
                    finished(deps, record, None).await
                }
            }
        }
    }
}

/// Store a finished action (its `action.updated` event comes from that write) and move its
/// workflow on.
async fn finished(
    deps: &ActionDeps,
    record: ActionRecord,
    temporary_password: Option<Secret>,
) -> Result<ExecuteOutcome, ActionError> {
    let stored = store(deps, record).await?;
    advance_for(deps, &stored).await;
    Ok(ExecuteOutcome::Done(Executed {
        record: stored,
        temporary_password,
    }))
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(u64::from(attempts.max(1)).pow(2) * 5).min(Duration::from_secs(300))
}

/// Why the action must not reach the directory, if it must not.
async fn precheck(deps: &ActionDeps, r: &ActionRecord) -> Result<Option<String>, ActionError> {
    let connection = deps.connections.get_connection(&r.tenant_id).await?;
    let Some(connection) = connection else {
        return Ok(Some("the directory is no longer connected".into()));
    };
    if let Err(e) = usable(&connection) {
        return Ok(Some(e.to_string()));
    }
    let settings = load_settings(deps.settings.as_ref(), &r.tenant_id).await?;
    match check_permission(deps, &connection, &settings.actions, r.kind()).await {
        Ok(verdict) => Ok(verdict.err().map(|e| e.to_string())),
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => Ok(Some(e.to_string())),
    }
}

/// The directory call of every kind but a password reset.
async fn call(deps: &ActionDeps, r: &ActionRecord) -> Result<WriteOutcome, WriteError> {
    let w = deps.writer.as_ref();
    let tenant = &r.tenant_id;
    let user = r.target.user_id.as_str();
    let group = || r.target.group_id.as_deref().unwrap_or_default();
    match r.kind() {
        ActionKind::AddGroupMember => w.add_group_member(tenant, group(), user).await,
        ActionKind::RemoveGroupMember => w.remove_group_member(tenant, group(), user).await,
        ActionKind::AssignAppRole => w.assign_app_role(tenant, user, &app_role(r)).await,
        ActionKind::RemoveAppRole => {
            let role = app_role(r);
            let assignments = w.app_role_assignments(tenant, user).await?;
            let mine: Vec<_> = assignments
                .iter()
                .filter(|a| {
                    a.resource_id
                        .eq_ignore_ascii_case(&role.service_principal_id)
                        && role
                            .app_role_id
                            .as_deref()
                            .is_none_or(|id| a.app_role_id.eq_ignore_ascii_case(id))
                })
                .collect();
            let mut last = WriteOutcome::AlreadyInEffect { request_id: None };
            let mut any_applied = false;
            for a in mine {
                let o = w.remove_app_role_assignment(tenant, user, &a.id).await?;
                any_applied |= o.is_applied();
                last = o;
            }
            Ok(match any_applied {
                true => WriteOutcome::Applied {
                    request_id: last.request_id().map(str::to_string),
                },
                false => last,
            })
        }
        ActionKind::RevokeSessions => w.revoke_sign_in_sessions(tenant, user).await,
        ActionKind::BlockSignIn => w.block_sign_in(tenant, user).await,
        ActionKind::UnblockSignIn => w.unblock_sign_in(tenant, user).await,
        ActionKind::DeleteUser => w.delete_user(tenant, user).await,
        ActionKind::RestoreUser => w.restore_user(tenant, user).await,
        // Handled by the caller, which holds the password.
        ActionKind::ResetPassword => Err(WriteError::InvalidInput {
            reason: "a password reset needs its password".into(),
        }),
    }
}

fn app_role(r: &ActionRecord) -> AppRoleRef {
    AppRoleRef {
        service_principal_id: r.target.service_principal_id.clone().unwrap_or_default(),
        app_role_id: r.target.app_role_id.clone(),
    }
}

/// Provisional writes of one cycle take pages from here up to just below the sweep's, far above
/// any real page of a round.
const PROVISIONAL_BASE: u32 = u32::MAX - (1 << 20);

/// The version of a provisional mirror write: after every page of the stream's latest cycle
/// but before its sweep, so the next round's pages (a higher cycle) replace it with what the
/// directory reports, a page of the current round read before the write cannot undo it, and a
/// full round in progress does not sweep it. `stored` is the object's version now: a second
/// provisional write in the same cycle (unblock after block, remove after add) goes one page
/// above the first, so it lands too.
async fn provisional_version(
    deps: &ActionDeps,
    tenant: &TenantId,
    stream: Stream,
    stored: Option<Version>,
) -> Result<Version, ActionError> {
    let cycle = deps
        .cursors
        .load_cursor(tenant, stream)
        .await?
        .map_or(0, |(c, _)| c.last_cycle);
    let page = match stored {
        Some(v) if v.cycle == cycle && v.page >= PROVISIONAL_BASE => {
            v.page.saturating_add(1).min(u32::MAX - 1)
        }
        _ => PROVISIONAL_BASE,
    };
    Ok(Version::new(cycle, page))
}

/// Show a successful action in the mirror at once (a provisional write the next delta
/// confirms or corrects; never a second source of truth). Its events come from the mirror
/// store's committed write, like every other mirror change.
async fn mirror_provisionally(deps: &ActionDeps, r: &ActionRecord) -> Result<(), ActionError> {
    let tenant = &r.tenant_id;
    let user_id = r.target.user_id.clone();
    match r.kind() {
        ActionKind::AddGroupMember | ActionKind::RemoveGroupMember => {
            let Some(group_id) = r.target.group_id.clone() else {
                return Ok(());
            };
            let present = r.kind() == ActionKind::AddGroupMember;
            let stored = deps
                .mirror
                .get_memberships(tenant, &[(group_id.clone(), user_id.clone())])
                .await?
                .pop()
                .map(|e| e.version);
            let edge = StoredMembership {
                group_id: group_id.clone(),
                member: MemberRef {
                    id: user_id.clone(),
                    member_type: MemberType::User,
                },
                present,
                version: provisional_version(deps, tenant, Stream::Groups, stored).await?,
            };
            deps.mirror.put_memberships(tenant, &[edge]).await?;
        }
        ActionKind::BlockSignIn
        | ActionKind::UnblockSignIn
        | ActionKind::DeleteUser
        | ActionKind::RestoreUser => {
            let Some(mut u) = deps
                .mirror
                .get_users(tenant, std::slice::from_ref(&user_id))
                .await?
                .pop()
            else {
                return Ok(());
            };
            match r.kind() {
                ActionKind::BlockSignIn => u.user.account_enabled = Some(false),
                ActionKind::UnblockSignIn => u.user.account_enabled = Some(true),
                ActionKind::DeleteUser => {
                    u.presence = Presence::Removed {
                        reason: RemovalReason::SoftDeleted,
                    };
                }
                _ => u.presence = Presence::Present,
            }
            u.version = provisional_version(deps, tenant, Stream::Users, Some(u.version)).await?;
            deps.mirror.put_users(tenant, &[u]).await?;
        }
        ActionKind::AssignAppRole
        | ActionKind::RemoveAppRole
        | ActionKind::RevokeSessions
        | ActionKind::ResetPassword => {}
    }
    Ok(())
}

/// What a queue consumer does with an action message.
#[derive(Debug, PartialEq, Eq)]
pub enum MessageVerdict {
    /// Done (or nothing to do): acknowledge.
    Ack,
    /// Deliver again after `after` (or the queue's own visibility timeout).
    Retry { after: Option<Duration> },
    /// The message can never be processed (unknown action): move it aside.
    DeadLetter,
}

/// Consume one action message: the executor's loop body, shared by the actions Lambda and the
/// local runtime.
pub async fn handle_action_message(deps: &ActionDeps, message: &ActionMessage) -> MessageVerdict {
    match execute_action(deps, &message.tenant_id, &message.action_id, None).await {
        Ok(ExecuteOutcome::Done(e)) => {
            tracing::info!(
                action = %e.record.id,
                kind = e.record.kind().as_str(),
                status = e.record.status.as_str(),
                "action executed"
            );
            MessageVerdict::Ack
        }
        Ok(ExecuteOutcome::AlreadyFinal(_) | ExecuteOutcome::NotReady(_)) => MessageVerdict::Ack,
        Ok(ExecuteOutcome::Busy { until }) => MessageVerdict::Retry {
            after: (until - deps.clock.now()).to_std().ok(),
        },
        Ok(ExecuteOutcome::RetryLater { after, .. }) => {
            MessageVerdict::Retry { after: Some(after) }
        }
        Err(ActionError::UnknownAction { .. }) => {
            tracing::error!(action = %message.action_id, "action message names no stored action");
            MessageVerdict::DeadLetter
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, action = %message.action_id, "action not executed; will be retried");
            MessageVerdict::Retry { after: None }
        }
        Err(e) => {
            tracing::error!(error = %e, action = %message.action_id, "action cannot be executed");
            MessageVerdict::DeadLetter
        }
    }
}
