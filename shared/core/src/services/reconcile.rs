//! Reconcile: apply one page to the mirror. Safe under at-least-once delivery: a replayed page,
//! or an older page delivered after a newer one, plans no write; pages of abandoned rounds are
//! dropped.
//!
//! A queue consumer applies each delivery through [`reconcile_delivery`], which claims it first
//! ([`Claims`]): a delivery another worker already applied is acknowledged without work, and one
//! another worker is applying right now (a standard SQS queue delivers a message twice at
//! times, and any queue delivers it again after a visibility timeout while a slow worker still
//! runs) is answered `Busy`, to be retried once that worker is done. Without the claim both
//! workers would plan from the same state and both publish the page's change events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use super::claim::{ClaimError, Claimed, Claims};
use super::commit::try_commit;
use super::deps::SyncDeps;
use crate::error::SyncError;
use crate::model::Version;
use crate::page::{GroupDelta, PageItems, PageMessage};
use crate::plan::{Plan, edge_key, plan_groups, plan_users};
use crate::run::RunUpdate;

/// The ports reconcile uses: cursors (read, applied markers, commit), the mirror, runs and
/// events; the same set a commit uses, since reconcile commits the round after each page.
pub type ReconcileDeps = SyncDeps;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconcileOutcome {
    Applied {
        writes: u64,
        /// False when this page had been applied before (a redelivery).
        first_time: bool,
        /// Whether applying it completed (and committed) the round.
        committed: bool,
    },
    /// From a round that a later full round replaced: nothing to do.
    Abandoned,
}

/// What became of one claimed delivery of a page message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// This worker applied the page.
    Applied(ReconcileOutcome),
    /// This delivery was applied before (a redelivery): acknowledge it without work.
    AlreadyApplied,
    /// Another worker is applying this delivery right now, at most until `until`: retry later.
    Busy { until: DateTime<Utc> },
    /// The delivery id was claimed before for another body (a caller's bug): not applied.
    Mismatch,
}

/// The idempotency key of a delivery: `reconcile#` and the delivery id.
pub fn delivery_key(delivery_id: &str) -> String {
    format!("{DELIVERY_KEY_PREFIX}{delivery_id}")
}

/// What every reconcile delivery key starts with.
pub const DELIVERY_KEY_PREFIX: &str = "reconcile#";

/// The digest a delivery's claim records of its body (SHA-256, hex).
pub fn payload_hash(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The answer stored for an applied delivery (ids and counts only).
fn stored_answer(outcome: &ReconcileOutcome) -> String {
    match outcome {
        ReconcileOutcome::Applied {
            writes,
            first_time,
            committed,
        } => serde_json::json!({
            "applied": true,
            "writes": writes,
            "first_time": first_time,
            "committed": committed,
        }),
        ReconcileOutcome::Abandoned => serde_json::json!({ "applied": false }),
    }
    .to_string()
}

/// Apply one delivery of a page message once. `delivery_id` names the delivery (an SQS message
/// id; for a queue whose ids repeat, its id and the body's digest), `body` is the message as it
/// arrived and `msg` the page parsed from it. The claim is released when applying fails, so the
/// retry runs at once; the caller decides what the failure means for the delivery.
pub async fn reconcile_delivery(
    deps: &ReconcileDeps,
    claims: &Claims,
    delivery_id: &str,
    body: &str,
    msg: &PageMessage,
) -> Result<DeliveryOutcome, ClaimError<SyncError>> {
    let claimed = claims
        .run_once(
            &msg.tenant_id,
            &delivery_key(delivery_id),
            &payload_hash(body),
            stored_answer,
            || reconcile_page(deps, msg),
        )
        .await?;
    Ok(match claimed {
        Claimed::Ran(outcome) => DeliveryOutcome::Applied(outcome),
        Claimed::AlreadyDone(_) => DeliveryOutcome::AlreadyApplied,
        Claimed::Busy { until } => DeliveryOutcome::Busy { until },
        Claimed::Mismatch => DeliveryOutcome::Mismatch,
    })
}

/// Apply one page.
pub async fn reconcile_page(
    deps: &ReconcileDeps,
    msg: &PageMessage,
) -> Result<ReconcileOutcome, SyncError> {
    let tenant = &msg.tenant_id;
    let stream = msg.stream();
    let accepts = deps
        .cursors
        .load_cursor(tenant, stream)
        .await?
        .is_some_and(|(r, _)| r.accepts_cycle(msg.cycle));
    if !accepts {
        debug!(tenant = %tenant, stream = %stream, cycle = msg.cycle, "page of an abandoned round dropped");
        return Ok(ReconcileOutcome::Abandoned);
    }
    let version = Version::new(msg.cycle, msg.page_seq);
    let mut plan = match &msg.items {
        PageItems::Users(entries) => {
            let mut ids: Vec<String> = entries.iter().map(|e| e.id().to_owned()).collect();
            ids.sort_unstable();
            ids.dedup();
            let current: HashMap<_, _> = deps
                .mirror
                .get_users(tenant, &ids)
                .await?
                .into_iter()
                .map(|u| (u.user.id.clone(), u))
                .collect();
            plan_users(tenant, entries, msg.mode, version, &current)
        }
        PageItems::Groups(entries) => {
            let mut ids: Vec<String> = entries.iter().map(|e| e.id().to_owned()).collect();
            ids.sort_unstable();
            ids.dedup();
            let groups: HashMap<_, _> = deps
                .mirror
                .get_groups(tenant, &ids)
                .await?
                .into_iter()
                .map(|g| (g.group.id.clone(), g))
                .collect();
            let mut keys = Vec::new();
            let mut edges = HashMap::new();
            for entry in entries {
                match entry {
                    GroupDelta::Upsert {
                        group,
                        members_added,
                        members_removed,
                    } => keys.extend(
                        members_added
                            .iter()
                            .chain(members_removed)
                            .map(|m| edge_key(&group.id, &m.id)),
                    ),
                    GroupDelta::Removed { id, .. } => {
                        for e in deps.mirror.memberships_of_group(tenant, id).await? {
                            edges.insert(edge_key(&e.group_id, &e.member.id), e);
                        }
                    }
                }
            }
            keys.sort_unstable();
            keys.dedup();
            for e in deps.mirror.get_memberships(tenant, &keys).await? {
                edges.insert(edge_key(&e.group_id, &e.member.id), e);
            }
            plan_groups(tenant, entries, msg.mode, version, &groups, &edges)
        }
    };
    let writes = write_plan(deps, msg, &plan).await?;
    // Events before the marker: a crash in between redelivers the page, whose replay plans
    // nothing, so no event is sent twice for a write that landed.
    if !plan.events.is_empty() {
        crate::events::stamp(&mut plan.events, deps.clock.now());
        deps.events.publish(&plan.events).await?;
    }
    let first_time = deps
        .cursors
        .mark_page_applied(tenant, stream, msg.cycle, msg.page_seq)
        .await?;
    if first_time {
        let mut counts = plan.counts;
        counts.writes = writes;
        counts.pages_applied = 1;
        deps.runs
            .update_run(tenant, &msg.run_id, &RunUpdate::AddCounts(counts))
            .await?;
    }
    let committed = try_commit(deps, tenant, stream).await?;
    info!(
        tenant = %tenant,
        stream = %stream,
        cycle = msg.cycle,
        page = msg.page_seq,
        entries = msg.items.len(),
        writes,
        created = plan.counts.created,
        updated = plan.counts.updated,
        deactivated = plan.counts.deactivated,
        skipped = plan.counts.skipped,
        "page reconciled"
    );
    Ok(ReconcileOutcome::Applied {
        writes,
        first_time,
        committed,
    })
}

async fn write_plan(
    deps: &ReconcileDeps,
    msg: &PageMessage,
    plan: &Plan,
) -> Result<u64, SyncError> {
    let tenant = &msg.tenant_id;
    let mut landed = 0;
    if !plan.users.is_empty() {
        landed += deps.mirror.put_users(tenant, &plan.users).await?;
    }
    if !plan.groups.is_empty() {
        landed += deps.mirror.put_groups(tenant, &plan.groups).await?;
    }
    if !plan.memberships.is_empty() {
        landed += deps
            .mirror
            .put_memberships(tenant, &plan.memberships)
            .await?;
    }
    Ok(landed)
}
