//! Scheduling: one fetch request per connected directory, each delayed by a jitter derived from
//! the tenant id, so thousands of tenants do not hit Graph (and the store) in the same second
//! (LIMITS.md section 9) and a tenant keeps the same slot from one period to the next.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::connect::skip_reason;
use crate::error::SyncError;
use crate::model::{ConnectionStatus, TenantId};
use crate::ports::{Clock, ConnectionStore, FetchRequest, FetchRequests, RunStore, SettingsStore};
use crate::run::{RunStatus, SyncRun, Trigger};

/// The ports scheduling uses: list connections, send fetch requests, and write the activity
/// entry of a connection it skips.
#[derive(Clone)]
pub struct ScheduleDeps {
    pub connections: Arc<dyn ConnectionStore>,
    /// Each connection's schedule (hourly, or daily at an hour).
    pub settings: Arc<dyn SettingsStore>,
    pub requests: Arc<dyn FetchRequests>,
    pub runs: Arc<dyn RunStore>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Fetch requests sent.
    pub requested: usize,
    /// Connections that cannot sync (needs reauthorization, disconnected).
    pub skipped: usize,
    /// Connections whose schedule is daily and not due in this tick.
    pub not_due: usize,
}

/// A stable delay in `[0, max_jitter)` for `tenant` (FNV-1a of the id; no randomness, so the
/// schedule is reproducible and tests can check it).
pub fn jitter_for(tenant: &TenantId, max_jitter: Duration) -> Duration {
    let secs = max_jitter.as_secs();
    if secs == 0 {
        return Duration::ZERO;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Duration::from_secs(h % secs)
}

/// Request one fetch of every directory that can sync. A connection that needs
/// reauthorization gets a `Skipped` entry in its activity log saying what to do (one per
/// call); a disconnected one is skipped silently (its feature set is off until it reconnects).
pub async fn schedule_fetches(
    deps: &ScheduleDeps,
    max_jitter: Duration,
) -> Result<ScheduleReport, SyncError> {
    let connections = deps.connections.list_connections().await?;
    let mut requests = Vec::new();
    let mut skipped = 0;
    let mut not_due = 0;
    let now = deps.clock.now();
    for c in connections {
        if !c.can_sync() {
            skipped += 1;
            if matches!(c.status, ConnectionStatus::NeedsReauthorization { .. })
                && let Some(reason) = skip_reason(&c.status)
            {
                let id = format!(
                    "{}-skipped-{}",
                    now.format("%Y%m%dT%H%M%SZ"),
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                );
                let mut run = SyncRun::new(id, c.tenant_id.clone(), Trigger::Scheduled, now);
                run.status = RunStatus::Skipped { reason };
                run.finished_at = Some(now);
                // The skip itself is what matters; a lost activity entry must not stop the
                // other tenants' fetches.
                if let Err(e) = deps.runs.create_run(&run).await {
                    warn!(tenant = %c.tenant_id, error = %e, "could not record the skipped run");
                }
            }
            continue;
        }
        // A failed settings read must not stop the other tenants: sync on the default schedule.
        let schedule = match deps.settings.get_settings(&c.tenant_id).await {
            Ok(s) => s.map(|s| s.schedule).unwrap_or_default(),
            Err(e) => {
                warn!(tenant = %c.tenant_id, error = %e, "could not read the settings; syncing on the default schedule");
                Default::default()
            }
        };
        if !schedule.is_due(now) {
            not_due += 1;
            continue;
        }
        let delay = jitter_for(&c.tenant_id, max_jitter);
        requests.push((
            FetchRequest {
                tenant_id: c.tenant_id,
                trigger: Trigger::Scheduled,
                force_full: false,
            },
            delay,
        ));
    }
    let requested = requests.len();
    if !requests.is_empty() {
        deps.requests.request_fetches(requests).await?;
    }
    info!(requested, skipped, not_due, "fetches scheduled");
    Ok(ScheduleReport {
        requested,
        skipped,
        not_due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_stable_per_tenant_and_below_the_bound() {
        let max = Duration::from_secs(900);
        let a = TenantId::new("11111111-1111-1111-1111-111111111111");
        let b = TenantId::new("22222222-2222-2222-2222-222222222222");
        assert_eq!(jitter_for(&a, max), jitter_for(&a, max));
        assert!(jitter_for(&a, max) < max);
        assert_ne!(jitter_for(&a, max), jitter_for(&b, max));
        assert_eq!(jitter_for(&a, Duration::ZERO), Duration::ZERO);
    }
}
