//! Scheduling: one fetch request per connected directory, each delayed by a jitter derived from
//! the tenant id, so thousands of tenants do not hit Graph (and the store) in the same second
//! and a tenant keeps the same slot from one period to the next.
//!
//! A connection that needs reauthorization is quarantined, not abandoned: it is requested again
//! when its retry is due (1 h, 2 h, 4 h ... up to 24 h after each failed attempt, see
//! [`crate::model::ReauthRetry`]), and the fetch of that attempt is its activity-log entry.
//! Between attempts the scheduler writes nothing for it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::error::SyncError;
use crate::model::{ConnectionStatus, TenantId};
use crate::ports::{Clock, ConnectionStore, FetchRequest, FetchRequests, SettingsStore};
use crate::run::Trigger;

/// The ports scheduling uses: list connections, read their schedules and send fetch requests.
/// It writes no activity entries: a quarantined connection's entries are written by the fetch
/// of each retry attempt.
#[derive(Clone)]
pub struct ScheduleDeps {
    pub connections: Arc<dyn ConnectionStore>,
    /// Each connection's schedule (hourly, or daily at an hour).
    pub settings: Arc<dyn SettingsStore>,
    pub requests: Arc<dyn FetchRequests>,
    pub clock: Arc<dyn Clock>,
}

impl ScheduleDeps {
    /// Scheduling on `store`'s connections and settings, sending requests to `requests`.
    pub fn from_store<S: ConnectionStore + SettingsStore + 'static>(
        store: &Arc<S>,
        requests: Arc<dyn FetchRequests>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections: store.clone(),
            settings: store.clone(),
            requests,
            clock,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Fetch requests sent (reauthorization retries included).
    pub requested: usize,
    /// Of those, retries of connections that need reauthorization.
    pub reauthorization_retries: usize,
    /// Connections not requested: disconnected, or waiting for their next reauthorization
    /// attempt.
    pub skipped: usize,
    /// Connections whose schedule is daily and not due in this tick.
    pub not_due: usize,
}

/// A stable delay in `[0, max_jitter)` for `tenant` (the stable hash of the id; no randomness, so the
/// schedule is reproducible and tests can check it).
pub fn jitter_for(tenant: &TenantId, max_jitter: Duration) -> Duration {
    let secs = max_jitter.as_secs();
    if secs == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(crate::keys::stable_hash(tenant.as_str()) % secs)
}

/// Request one fetch of every directory that can sync, and one of every directory that needs
/// reauthorization and whose retry is due (its own clock, not the sync schedule: access is
/// what is being tried). Disconnected directories and quarantined ones between attempts are
/// skipped without an activity entry.
pub async fn schedule_fetches(
    deps: &ScheduleDeps,
    max_jitter: Duration,
) -> Result<ScheduleReport, SyncError> {
    let connections = deps.connections.list_connections().await?;
    let mut requests = Vec::new();
    let mut skipped = 0;
    let mut not_due = 0;
    let mut retries = 0;
    let now = deps.clock.now();
    for c in connections {
        match &c.status {
            ConnectionStatus::Connected => {}
            ConnectionStatus::NeedsReauthorization { retry, .. } if retry.is_due(now) => {
                retries += 1;
                info!(tenant = %c.tenant_id, attempt = retry.attempts + 1, "reauthorization retry requested");
                requests.push((
                    FetchRequest {
                        tenant_id: c.tenant_id.clone(),
                        trigger: Trigger::Scheduled,
                        force_full: false,
                        run_id: None,
                    },
                    jitter_for(&c.tenant_id, max_jitter),
                ));
                continue;
            }
            ConnectionStatus::NeedsReauthorization { .. } | ConnectionStatus::Disconnected => {
                skipped += 1;
                continue;
            }
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
                run_id: None,
            },
            delay,
        ));
    }
    let requested = requests.len();
    if !requests.is_empty() {
        deps.requests.request_fetches(requests).await?;
    }
    info!(
        requested,
        reauthorization_retries = retries,
        skipped,
        not_due,
        "fetches scheduled"
    );
    Ok(ScheduleReport {
        requested,
        reauthorization_retries: retries,
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
