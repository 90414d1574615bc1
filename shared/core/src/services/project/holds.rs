use tracing::info;

use super::context::load_context;
use super::run::{ProjectOutcome, Verdict, apply_unless_held};
use super::scan::Withhold;
use super::{ProjectDeps, ProjectError};
use crate::cursor::FullReason;
use crate::error::StoreError;
use crate::model::{Stream, TenantId};
use crate::ports::CursorStore;
use crate::run::{BreakerHold, RunStatus, RunUpdate, SyncRun};

pub(super) async fn held_run(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<BreakerHold, ProjectError> {
    let run = deps
        .runs
        .get_run(tenant, run_id)
        .await?
        .ok_or_else(|| ProjectError::RunNotFound(run_id.to_owned()))?;
    match run.status {
        RunStatus::Held { hold } => Ok(hold),
        other => Err(ProjectError::NotHeld {
            run_id: run_id.to_owned(),
            status: match other {
                RunStatus::Running => "running",
                RunStatus::Succeeded => "succeeded",
                RunStatus::Failed { .. } => "failed",
                RunStatus::Held { .. } => "held",
                RunStatus::Rejected { .. } => "rejected",
                RunStatus::Skipped { .. } => "skipped",
            }
            .to_owned(),
        }),
    }
}

/// Confirm a held run: apply its projection. If the directory changed since and the run would
/// now deactivate more users than the admin confirmed, it is held again with the new numbers.
pub async fn confirm_held(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
    by: &str,
) -> Result<ProjectOutcome, ProjectError> {
    let hold = held_run(deps, tenant, run_id).await?;
    let ctx = load_context(deps, tenant).await?;
    let outcome = apply_unless_held(deps, &ctx, run_id, Some(hold.since()), |dry| {
        (dry.deactivations > hold.deactivations).then(|| Verdict {
            threshold: format!(
                "{} confirmed {} deactivations, the directory now gives {}",
                by, hold.deactivations, dry.deactivations
            ),
            empty_read: dry.empty_read(),
            withhold: match ctx
                .settings
                .breaker
                .tripped_by(dry.reported_deactivations, dry.active_before)
            {
                None if !dry.empty_read() => Withhold::Inferred,
                _ => Withhold::Deactivations,
            },
        })
    })
    .await?;
    if let ProjectOutcome::Applied(c) = &outcome {
        info!(tenant = %tenant, run_id, by, deactivated = c.deactivated, "held run confirmed");
    }
    Ok(outcome)
}

/// Reject a held run: nothing is applied, and the next run reads the whole directory again (the
/// read may have been wrong). If the users are still missing then, the breaker asks again.
/// When the full re-read cannot be recorded (a fetch keeps moving the cursor), the run stays
/// held and the reject fails with [`ProjectError::CursorBusy`]: try again.
pub async fn reject_held(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
    by: &str,
) -> Result<SyncRun, ProjectError> {
    held_run(deps, tenant, run_id).await?;
    for stream in Stream::ALL {
        require_full_read(deps.cursors.as_ref(), tenant, stream).await?;
    }
    let now = deps.clock.now();
    let run = deps
        .runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Finish {
                status: RunStatus::Rejected {
                    by: by.to_owned(),
                    at: now,
                },
                at: now,
            },
        )
        .await?;
    info!(tenant = %tenant, run_id, by, "held run rejected; next run reads the whole directory");
    Ok(run)
}

/// How often a reject tries to record the full re-read against a fetch moving the cursor.
const CURSOR_ATTEMPTS: usize = 5;

/// Make the next read of `stream` a full one. A conflict means a fetch is moving the cursor
/// right now: load it again and retry, a few times; then give up visibly, so the caller does
/// not promise a full read that was never recorded. No cursor yet: the first read is full
/// anyway.
async fn require_full_read(
    cursors: &dyn CursorStore,
    tenant: &TenantId,
    stream: Stream,
) -> Result<(), ProjectError> {
    for _ in 0..CURSOR_ATTEMPTS {
        let Some((record, rev)) = cursors.load_cursor(tenant, stream).await? else {
            return Ok(());
        };
        let next = record.require_full(FullReason::Requested);
        match cursors.save_cursor(tenant, stream, &next, Some(rev)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProjectError::CursorBusy {
        tenant: tenant.clone(),
        stream,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use chrono::TimeZone;

    use super::*;
    use crate::cursor::{CursorRecord, CursorState};
    use crate::memory::{ManualClock, MemoryStore};
    use crate::ports::{Revision, RunStore};
    use crate::run::{BreakerHold, SyncRun, Trigger};
    use crate::services::ProjectionPorts;

    /// A cursor store whose conditional writes conflict the first `conflicts` times, as when a
    /// fetch moves the cursor between the reject's load and its save.
    struct Contended {
        inner: Arc<MemoryStore>,
        conflicts: AtomicU32,
    }

    #[async_trait]
    impl CursorStore for Contended {
        async fn load_cursor(
            &self,
            tenant: &TenantId,
            stream: Stream,
        ) -> Result<Option<(CursorRecord, Revision)>, StoreError> {
            self.inner.load_cursor(tenant, stream).await
        }

        async fn save_cursor(
            &self,
            tenant: &TenantId,
            stream: Stream,
            record: &CursorRecord,
            expected: Option<Revision>,
        ) -> Result<Revision, StoreError> {
            let left = self.conflicts.load(Ordering::SeqCst);
            if left > 0 {
                self.conflicts.store(left - 1, Ordering::SeqCst);
                return Err(StoreError::Conflict("a fetch moved the cursor".to_owned()));
            }
            self.inner
                .save_cursor(tenant, stream, record, expected)
                .await
        }

        async fn mark_page_applied(
            &self,
            tenant: &TenantId,
            stream: Stream,
            cycle: u64,
            page: u32,
        ) -> Result<bool, StoreError> {
            self.inner
                .mark_page_applied(tenant, stream, cycle, page)
                .await
        }

        async fn applied_pages(
            &self,
            tenant: &TenantId,
            stream: Stream,
            cycle: u64,
        ) -> Result<u32, StoreError> {
            self.inner.applied_pages(tenant, stream, cycle).await
        }
    }

    /// A store with an idle cursor on both streams and one held run; the deps whose cursor
    /// writes conflict `conflicts` times.
    async fn held(conflicts: u32) -> (Arc<MemoryStore>, ProjectDeps, TenantId, String) {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .single()
            .expect("a valid time");
        let store = Arc::new(MemoryStore::new());
        let tenant = TenantId::new("tenant-1");
        for stream in Stream::ALL {
            let idle = CursorRecord {
                state: CursorState::Idle {
                    delta_link: format!("https://graph.test/{stream}/delta?token=t"),
                    committed_at: now,
                },
                last_cycle: 1,
                min_valid_cycle: 0,
            };
            store
                .save_cursor(&tenant, stream, &idle, None)
                .await
                .expect("cursor saved");
        }
        let run = SyncRun::new("run-1".to_owned(), tenant.clone(), Trigger::Scheduled, now);
        store.create_run(&run).await.expect("run created");
        let hold = BreakerHold {
            deactivations: 10,
            active_before: 20,
            threshold: "more than 10 %".to_owned(),
            empty_read: false,
            held_at: now,
            held_since: Some(now),
            applied_deactivations: 0,
        };
        store
            .update_run(&tenant, &run.run_id, &RunUpdate::Hold(hold))
            .await
            .expect("run held");
        let ports = ProjectionPorts {
            connections: store.clone(),
            settings: store.clone(),
            local_users: store.clone(),
        };
        let cursors = Arc::new(Contended {
            inner: store.clone(),
            conflicts: AtomicU32::new(conflicts),
        });
        let deps = ProjectDeps::new(
            &ports,
            store.clone(),
            store.clone(),
            cursors,
            Arc::new(ManualClock::new(now)),
        );
        (store, deps, tenant, run.run_id)
    }

    async fn needs_full(store: &MemoryStore, tenant: &TenantId, stream: Stream) -> bool {
        let (record, _) = store
            .load_cursor(tenant, stream)
            .await
            .expect("cursor loads")
            .expect("cursor exists");
        matches!(record.state, CursorState::NeedsFull { .. })
    }

    #[tokio::test]
    async fn a_reject_retries_a_moving_cursor_and_forces_the_full_read() {
        let (store, deps, tenant, run_id) = held(CURSOR_ATTEMPTS as u32 - 1).await;
        let run = reject_held(&deps, &tenant, &run_id, "admin@host")
            .await
            .expect("rejected");
        assert!(matches!(run.status, RunStatus::Rejected { .. }), "{run:?}");
        for stream in Stream::ALL {
            assert!(needs_full(&store, &tenant, stream).await, "{stream}");
        }
    }

    #[tokio::test]
    async fn a_reject_that_cannot_force_the_full_read_fails_and_keeps_the_run_held() {
        // Every attempt on the users cursor conflicts (a fetch keeps moving it).
        let (store, deps, tenant, run_id) = held(CURSOR_ATTEMPTS as u32).await;
        let err = reject_held(&deps, &tenant, &run_id, "admin@host")
            .await
            .expect_err("the full read was never recorded");
        assert!(
            matches!(
                &err,
                ProjectError::CursorBusy {
                    stream: Stream::Users,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("reject it again"), "{err}");
        assert!(!needs_full(&store, &tenant, Stream::Users).await);
        let run = store
            .get_run(&tenant, &run_id)
            .await
            .expect("run loads")
            .expect("run exists");
        assert!(matches!(run.status, RunStatus::Held { .. }), "{run:?}");
        // Once the fetch lets go, the same reject goes through.
        let run = reject_held(&deps, &tenant, &run_id, "admin@host")
            .await
            .expect("rejected");
        assert!(matches!(run.status, RunStatus::Rejected { .. }));
        assert!(needs_full(&store, &tenant, Stream::Users).await);
    }
}
