use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::context::{Context, load_context};
use super::scan::{Pick, ScanOutput, Withhold, Write, scan, write_scanned};
use super::{ProjectDeps, ProjectError};
use crate::error::StoreError;
use crate::model::TenantId;
use crate::run::{BreakerHold, ProvisioningCounts, RunStatus, RunUpdate, SyncRun, Trigger};

/// What the breaker decides about a scan: nothing, or a hold and what it holds back.
pub(super) struct Verdict {
    pub(super) threshold: String,
    pub(super) empty_read: bool,
    pub(super) withhold: Withhold,
}

/// The breaker's check. An empty read holds everything (nothing is written at all). Otherwise,
/// when the deactivations trip the threshold, the ones Graph reported for each user pass if
/// they alone stay within it, and the rest wait for a confirm.
pub(super) fn breaker(ctx: &Context, out: &ScanOutput) -> Option<Verdict> {
    if out.empty_read() {
        return Some(Verdict {
            threshold: "the directory returned no users at all".to_owned(),
            empty_read: true,
            withhold: Withhold::Deactivations,
        });
    }
    let t = &ctx.settings.breaker;
    let threshold = t.tripped_by(out.deactivations, out.active_before)?;
    let withhold = match t.tripped_by(out.reported_deactivations, out.active_before) {
        None => Withhold::Inferred,
        Some(_) => Withhold::Deactivations,
    };
    Some(Verdict {
        threshold,
        empty_read: false,
        withhold,
    })
}

pub(super) async fn new_run(
    deps: &ProjectDeps,
    tenant: &TenantId,
    trigger: Trigger,
) -> Result<SyncRun, StoreError> {
    let now = deps.clock.now();
    let run = SyncRun::new(crate::run::new_run_id(now), tenant.clone(), trigger, now);
    deps.runs.create_run(&run).await?;
    Ok(run)
}

pub(super) async fn finish(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
    counts: ProvisioningCounts,
    settings_version: u64,
) -> Result<SyncRun, StoreError> {
    deps.runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Provisioned {
                counts,
                settings_version,
            },
        )
        .await?;
    deps.runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Finish {
                status: RunStatus::Succeeded,
                at: deps.clock.now(),
            },
        )
        .await
}

/// How a run's projection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectOutcome {
    Applied(ProvisioningCounts),
    /// The circuit breaker held the run: nothing was written.
    Held(BreakerHold),
    /// Another worker holds the projection of this run.
    ClaimedElsewhere,
}

/// How long a projection claim lasts before another worker may take it over.
const CLAIM_STALE_AFTER_MINUTES: i64 = 15;

/// Project the mirror for a run whose reads are complete (both streams committed) or for a
/// settings change. Holds the run when the breaker trips; otherwise applies and finishes it.
pub async fn project_run(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<ProjectOutcome, ProjectError> {
    let token = uuid::Uuid::new_v4().to_string();
    let run = deps
        .runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::ClaimProjection {
                token: token.clone(),
                at: deps.clock.now(),
                stale_after: chrono::Duration::minutes(CLAIM_STALE_AFTER_MINUTES),
            },
        )
        .await?;
    if run
        .projection_claim
        .as_ref()
        .is_none_or(|c| c.token != token)
        || run.is_finished()
    {
        return Ok(ProjectOutcome::ClaimedElsewhere);
    }
    let ctx = match load_context(deps, tenant).await {
        Ok(ctx) => ctx,
        Err(e @ (ProjectError::Unavailable { .. } | ProjectError::NotConnected(_))) => {
            deps.runs
                .update_run(
                    tenant,
                    run_id,
                    &RunUpdate::Finish {
                        status: RunStatus::Failed {
                            error: format!("{e}; nothing was changed"),
                        },
                        at: deps.clock.now(),
                    },
                )
                .await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let since = open_hold_since(deps, tenant, run_id).await?;
    let outcome = apply_unless_held(deps, &ctx, run_id, since, |dry| breaker(&ctx, dry)).await?;
    supersede_older_holds(deps, tenant, run_id).await?;
    match &outcome {
        ProjectOutcome::Held(hold) => warn!(
            tenant = %tenant,
            run_id,
            deactivations = hold.deactivations,
            applied_deactivations = hold.applied_deactivations,
            active_before = hold.active_before,
            empty_read = hold.empty_read,
            held_since = %hold.since(),
            held_for_minutes = hold.held_for(deps.clock.now()).num_minutes(),
            "circuit breaker held the run"
        ),
        ProjectOutcome::Applied(c) => info!(
            tenant = %tenant,
            run_id,
            created = c.created,
            linked = c.linked,
            updated = c.updated,
            deactivated = c.deactivated,
            disabled_in_directory = c.disabled_in_directory,
            frozen = c.frozen,
            skipped = c.skipped,
            "users projected"
        ),
        ProjectOutcome::ClaimedElsewhere => {}
    }
    Ok(outcome)
}

/// The projection of a run as the sync rules pick it: scan once; if `hold_if` says so, write
/// what the hold lets through and hold the run (an empty read writes nothing); otherwise write
/// what the scan decided and finish the run. `since`: when the open question was first asked
/// (an older hold this run continues).
pub(super) async fn apply_unless_held(
    deps: &ProjectDeps,
    ctx: &Context,
    run_id: &str,
    since: Option<DateTime<Utc>>,
    hold_if: impl FnOnce(&ScanOutput) -> Option<Verdict>,
) -> Result<ProjectOutcome, ProjectError> {
    let tenant = &ctx.connection.tenant_id;
    let pick = Pick::Sync(ctx.settings.provisioning.automatic);
    let dry = scan(deps, ctx, &pick, Write::Buffer, Withhold::Nothing, false).await?;
    let Some(verdict) = hold_if(&dry) else {
        let out = write_scanned(deps, ctx, &pick, dry, Withhold::Nothing).await?;
        finish(deps, tenant, run_id, out.counts, ctx.settings.version).await?;
        return Ok(ProjectOutcome::Applied(out.counts));
    };
    let active_before = dry.active_before;
    let (counts, applied) = match verdict.empty_read {
        true => (
            ProvisioningCounts {
                held: dry.deactivations,
                ..ProvisioningCounts::default()
            },
            0,
        ),
        false => {
            let out = write_scanned(deps, ctx, &pick, dry, verdict.withhold).await?;
            (out.counts, out.deactivations)
        }
    };
    let now = deps.clock.now();
    let hold = BreakerHold {
        deactivations: counts.held,
        active_before,
        threshold: verdict.threshold,
        empty_read: verdict.empty_read,
        held_at: now,
        held_since: Some(since.unwrap_or(now).min(now)),
        applied_deactivations: applied,
    };
    deps.runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Provisioned {
                counts,
                settings_version: ctx.settings.version,
            },
        )
        .await?;
    deps.runs
        .update_run(tenant, run_id, &RunUpdate::Hold(hold.clone()))
        .await?;
    Ok(ProjectOutcome::Held(hold))
}

/// When the oldest held run other than `run_id` was first held: a newer hold continues it.
pub(super) async fn open_hold_since(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(deps
        .runs
        .list_runs(tenant, 50)
        .await?
        .into_iter()
        .filter(|r| r.run_id != run_id)
        .filter_map(|r| match r.status {
            RunStatus::Held { hold } => Some(hold.since()),
            _ => None,
        })
        .min())
}

/// Older held runs are moot once a newer run held or applied: confirming them would apply
/// today's projection anyway. They are closed so the activity log shows one open question.
pub(super) async fn supersede_older_holds(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<(), StoreError> {
    for r in deps.runs.list_runs(tenant, 50).await? {
        if r.run_id != run_id && matches!(r.status, RunStatus::Held { .. }) {
            deps.runs
                .update_run(
                    tenant,
                    &r.run_id,
                    &RunUpdate::Finish {
                        status: RunStatus::Rejected {
                            by: format!("superseded by run {run_id}"),
                            at: deps.clock.now(),
                        },
                        at: deps.clock.now(),
                    },
                )
                .await?;
        }
    }
    Ok(())
}
