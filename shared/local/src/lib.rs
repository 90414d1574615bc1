//! Embedded adapters of the core ports (SQLite store, durable in-process queue, encrypted file
//! vault), the wiring that runs the core services on them, and the demo.

pub mod admin;
pub mod bench;
pub mod bench_actions;
pub mod consent_store;
pub mod demo;
pub mod events;
pub mod idempotency;
pub mod procstat;
mod projection_store;
pub mod queue;
pub mod runtime;
pub mod serve;
pub mod sqlite;
pub mod vault;
pub mod verify;

/// One line per run for people: status (held runs say what to do), trigger, directory reads
/// and what happened to the host product's users.
pub fn run_line(run: &entra_sync_core::run::SyncRun) -> String {
    use entra_sync_core::run::RunStatus;
    let status = match &run.status {
        RunStatus::Running => "running".to_owned(),
        RunStatus::Succeeded => "succeeded".to_owned(),
        RunStatus::Failed { error } => format!("failed: {error}"),
        RunStatus::Held { hold } => format!(
            "HELD by the circuit breaker: {} of {} users wait for their deactivation ({}; {} reported disabled or deleted in the directory were deactivated), {}; run `entra-sync confirm {}` or `entra-sync reject {}`",
            hold.deactivations,
            hold.active_before,
            hold.threshold,
            hold.applied_deactivations,
            hold.describe_age(chrono::Utc::now()),
            run.run_id,
            run.run_id
        ),
        RunStatus::Rejected { by, .. } => format!("rejected by {by}"),
        RunStatus::Skipped { reason } => format!("skipped: {reason}"),
    };
    let c = &run.counts;
    let p = &run.provisioning;
    format!(
        "{} {} ({:?}, started {}): directory: {} pages, {} Graph requests, {} created, {} updated, {} removed; users: {} created, {} linked, {} updated, {} deactivated, {} reactivated, {} disabled in directory, {} frozen, {} skipped, {} failed",
        run.run_id,
        status,
        run.trigger,
        run.started_at.format("%Y-%m-%d %H:%M:%S"),
        c.pages_applied,
        run.graph_requests,
        c.created,
        c.updated,
        c.removed,
        p.created,
        p.linked,
        p.updated,
        p.deactivated,
        p.reactivated,
        p.disabled_in_directory,
        p.frozen,
        p.skipped,
        p.failed
    )
}

/// Print [`run_line`] on stdout.
#[allow(clippy::print_stdout)]
pub fn print_run_line(run: &entra_sync_core::run::SyncRun) {
    println!("{}", run_line(run));
}
