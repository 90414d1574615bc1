//! Committing a round: once every page is applied, sweep (full rounds) and promote the
//! deltaLink. Called by reconcile after each page and by fetch after the last page, so whichever
//! finishes last commits; the conditional cursor write makes a double commit harmless.

use tracing::{info, warn};

use super::deps::SyncDeps;
use super::project::{ProjectDeps, ProjectError, ProjectOutcome, project_run};

use crate::committed::{RUN_FINISHED, RUN_HELD};
use crate::cursor::CursorState;
use crate::error::{StoreError, SyncError};
use crate::events::{ChangeEvent, ChangeKind};
use crate::model::{AccountId, Stream, TenantId};
use crate::page::RoundMode;
use crate::plan::{Plan, sweep_groups, sweep_memberships, sweep_users};
use crate::ports::Pages;
use crate::run::{RunStatus, RunUpdate};

/// The ports a commit needs: the set reconcile uses, which fetch embeds.
pub type CommitDeps = SyncDeps;

const SWEEP_BATCH: usize = 1000;

/// Commit the round of `stream` if all its pages are applied. Returns whether this call
/// committed it.
pub async fn try_commit(
    deps: &CommitDeps,
    tenant: &TenantId,
    stream: Stream,
) -> Result<bool, SyncError> {
    let Some((record, rev)) = deps.cursors.load_cursor(tenant, stream).await? else {
        return Ok(false);
    };
    let CursorState::Applying {
        cycle,
        ref run_id,
        mode,
        pages,
        ..
    } = record.state
    else {
        return Ok(false);
    };
    let applied = deps.cursors.applied_pages(tenant, stream, cycle).await?;
    if applied < pages {
        return Ok(false);
    }
    let run_id = run_id.clone();
    if mode == RoundMode::Full {
        let swept = sweep(deps, tenant, stream, cycle).await?;
        if swept.write_count() > 0 {
            deps.runs
                .update_run(tenant, &run_id, &RunUpdate::AddCounts(swept.counts))
                .await?;
        }
    }
    let Some(next) = record.commit(deps.clock.now()) else {
        return Ok(false);
    };
    match deps
        .cursors
        .save_cursor(tenant, stream, &next, Some(rev))
        .await
    {
        Ok(_) => {}
        // Someone else committed (or moved the cursor on) first.
        Err(StoreError::Conflict(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let run = deps
        .runs
        .update_run(tenant, &run_id, &RunUpdate::StreamCommitted(stream))
        .await?;
    info!(tenant = %tenant, stream = %stream, cycle, pages, run_id = %run_id, "round committed");
    if run.users.committed && run.groups.committed && !run.is_finished() {
        finish_run(deps, tenant, &run_id).await?;
    }
    Ok(true)
}

/// Both streams are committed: project the mirror onto the host product's users (which the
/// circuit breaker may hold) and finish the run.
async fn finish_run(deps: &CommitDeps, tenant: &TenantId, run_id: &str) -> Result<(), SyncError> {
    let account = run_account(deps, tenant).await;
    let completed = match &deps.projection {
        None => {
            deps.runs
                .update_run(
                    tenant,
                    run_id,
                    &RunUpdate::Finish {
                        status: RunStatus::Succeeded,
                        at: deps.clock.now(),
                    },
                )
                .await?;
            true
        }
        Some(ports) => {
            let project = ProjectDeps::new(
                ports,
                deps.mirror.clone(),
                deps.runs.clone(),
                deps.cursors.clone(),
                deps.clock.clone(),
            );
            match project_run(&project, tenant, run_id).await {
                Ok(ProjectOutcome::Applied(_)) => true,
                Ok(ProjectOutcome::Held(hold)) => {
                    let now = deps.clock.now();
                    deps.events
                        .publish(&[ChangeEvent::new(
                            tenant,
                            run_id,
                            RUN_HELD,
                            ChangeKind::SyncHeld {
                                run_id: run_id.to_owned(),
                                deactivations_held: hold.deactivations,
                                deactivations_applied: hold.applied_deactivations,
                                held_since: hold.since(),
                                held_for_seconds: hold.held_for(now).num_seconds(),
                            },
                        )
                        .account(account.clone())
                        .at(now)])
                        .await?;
                    false
                }
                Ok(ProjectOutcome::ClaimedElsewhere) => false,
                Err(ProjectError::Sync(e)) => {
                    // The rounds are committed, so a redelivered page will not come back here:
                    // close the run with the reason. The next run projects everything again.
                    let error = format!(
                        "the directory was read, but updating users failed: {}; the next run updates them",
                        super::plain_words(&e)
                    );
                    deps.runs
                        .update_run(
                            tenant,
                            run_id,
                            &RunUpdate::Finish {
                                status: RunStatus::Failed { error },
                                at: deps.clock.now(),
                            },
                        )
                        .await?;
                    return Err(e);
                }
                Err(e) => {
                    // The run is finished as failed with the reason; the mirror is up to date.
                    warn!(tenant = %tenant, run_id, error = %e, "users not projected");
                    false
                }
            }
        }
    };
    if completed {
        deps.events
            .publish(&[ChangeEvent::new(
                tenant,
                run_id,
                RUN_FINISHED,
                ChangeKind::SyncCompleted {
                    run_id: run_id.to_owned(),
                },
            )
            .account(account)
            .at(deps.clock.now())])
            .await?;
    }
    Ok(())
}

/// The account of the tenant's connection, for the envelope of run events (none when the
/// connection is unknown to these ports).
pub(crate) async fn run_account(deps: &CommitDeps, tenant: &TenantId) -> Option<AccountId> {
    let ports = deps.projection.as_ref()?;
    match ports.connections.get_connection(tenant).await {
        Ok(c) => c.map(|c| c.account_id),
        Err(_) => None,
    }
}

/// Mark-and-sweep after a complete full read: what the read did not touch is gone. Runs only
/// after every page of the round is applied, so a failed or partial read never removes anyone.
async fn sweep(
    deps: &CommitDeps,
    tenant: &TenantId,
    stream: Stream,
    cycle: u64,
) -> Result<Plan, SyncError> {
    let mut total = Plan::default();
    match stream {
        Stream::Users => {
            let mut pages = Pages::default();
            while let Some(after) = pages.next_after() {
                let page = deps.mirror.list_users(tenant, after, SWEEP_BATCH).await?;
                let plan = sweep_users(tenant, &page.items, cycle);
                let landed = deps.mirror.put_users(tenant, &plan.users).await?;
                merge(&mut total, plan, landed);
                pages.advance(page.next);
            }
        }
        Stream::Groups => {
            let mut pages = Pages::default();
            while let Some(after) = pages.next_after() {
                let page = deps.mirror.list_groups(tenant, after, SWEEP_BATCH).await?;
                let plan = sweep_groups(tenant, &page.items, cycle);
                let landed = deps.mirror.put_groups(tenant, &plan.groups).await?;
                merge(&mut total, plan, landed);
                pages.advance(page.next);
            }
            let mut pages = Pages::default();
            while let Some(after) = pages.next_after() {
                let page = deps
                    .mirror
                    .list_memberships(tenant, after, SWEEP_BATCH)
                    .await?;
                let plan = sweep_memberships(tenant, &page.items, cycle);
                let landed = deps
                    .mirror
                    .put_memberships(tenant, &plan.memberships)
                    .await?;
                merge(&mut total, plan, landed);
                pages.advance(page.next);
            }
        }
    }
    if !total.events.is_empty() {
        crate::events::stamp(&mut total.events, deps.clock.now());
        deps.events.publish(&total.events).await?;
    }
    Ok(total)
}

fn merge(total: &mut Plan, plan: Plan, landed: u64) {
    total.counts.add(&plan.counts);
    total.counts.writes += landed;
    total.users.extend(plan.users);
    total.groups.extend(plan.groups);
    total.memberships.extend(plan.memberships);
    total.events.extend(plan.events);
}
