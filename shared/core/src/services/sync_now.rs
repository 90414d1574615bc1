//! "Sync now": a person asks for a sync of one directory at once. One at a time per directory:
//! while a sync run of the directory is running, the request answers with that run instead of
//! starting another. Otherwise a run is recorded (running, trigger `manual`) and a fetch request
//! naming it is sent, so the caller gets the run's id at once and can follow its progress.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::error::{QueueError, StoreError};
use crate::model::TenantId;
use crate::ports::{Clock, ConnectionStore, FetchRequest, FetchRequests, RunStore};
use crate::run::{RunStatus, RunUpdate, SyncRun, Trigger, new_run_id};

/// The ports "sync now" uses.
#[derive(Clone)]
pub struct SyncNowDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub runs: Arc<dyn RunStore>,
    pub requests: Arc<dyn FetchRequests>,
    pub clock: Arc<dyn Clock>,
}

/// What a "sync now" did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequested {
    pub run: SyncRun,
    /// `false`: a sync was already running and `run` is that one.
    pub started: bool,
}

/// Why a "sync now" was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncNowError {
    #[error("no connection for tenant {0}")]
    NotConnected(TenantId),
    #[error("the directory cannot be synced now: {0}")]
    NotSyncable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the sync could not be queued: {0}")]
    Queue(#[from] QueueError),
}

impl SyncNowError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncNowError::Store(e) => e.is_retryable(),
            SyncNowError::Queue(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// How many of the newest runs are looked at for one still running.
const RECENT_RUNS: usize = 20;

/// The sync run of `tenant` that is running now, if any (an import or a settings change is not
/// a sync: it reads no directory).
pub async fn running_sync(
    runs: &dyn RunStore,
    tenant: &TenantId,
) -> Result<Option<SyncRun>, StoreError> {
    Ok(runs
        .list_runs(tenant, RECENT_RUNS)
        .await?
        .into_iter()
        .find(|r| {
            matches!(r.status, RunStatus::Running)
                && matches!(
                    r.trigger,
                    Trigger::Scheduled | Trigger::Manual | Trigger::Resync
                )
        }))
}

/// Start a sync of `tenant` now, or answer with the one running.
pub async fn request_sync(
    deps: &SyncNowDeps,
    tenant: &TenantId,
) -> Result<SyncRequested, SyncNowError> {
    let connection = deps
        .connections
        .get_connection(tenant)
        .await?
        .ok_or_else(|| SyncNowError::NotConnected(tenant.clone()))?;
    let now = deps.clock.now();
    if let Some(why) = connection.fetch_refusal(Trigger::Manual, now) {
        return Err(SyncNowError::NotSyncable(why));
    }
    if let Some(run) = running_sync(deps.runs.as_ref(), tenant).await? {
        return Ok(SyncRequested {
            run,
            started: false,
        });
    }
    let run = SyncRun::new(new_run_id(now), tenant.clone(), Trigger::Manual, now);
    deps.runs.create_run(&run).await?;
    let request = FetchRequest {
        tenant_id: tenant.clone(),
        trigger: Trigger::Manual,
        force_full: false,
        run_id: Some(run.run_id.clone()),
    };
    if let Err(e) = deps
        .requests
        .request_fetches(vec![(request, Duration::ZERO)])
        .await
    {
        // Nothing will run it: the activity log says so instead of showing it running.
        deps.runs
            .update_run(
                tenant,
                &run.run_id,
                &RunUpdate::Finish {
                    status: RunStatus::Failed {
                        error: "The sync could not be started (its request was not queued). Nothing changed; try again in a moment.".to_owned(),
                    },
                    at: deps.clock.now(),
                },
            )
            .await?;
        return Err(e.into());
    }
    info!(tenant = %tenant, run_id = %run.run_id, "sync requested");
    Ok(SyncRequested { run, started: true })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::DateTime;

    use super::*;
    use crate::memory::{CollectingFetchRequests, ManualClock, MemoryStore};
    use crate::model::{AccountId, Connection, ConnectionStatus};

    fn deps() -> (SyncNowDeps, Arc<MemoryStore>, Arc<CollectingFetchRequests>) {
        let store = Arc::new(MemoryStore::new());
        let requests = Arc::new(CollectingFetchRequests::default());
        let deps = SyncNowDeps {
            connections: store.clone(),
            runs: store.clone(),
            requests: requests.clone(),
            clock: Arc::new(ManualClock::new(
                DateTime::from_timestamp(1_770_000_000, 0).unwrap(),
            )),
        };
        (deps, store, requests)
    }

    fn connection(status: ConnectionStatus) -> Connection {
        Connection {
            tenant_id: TenantId::new("t1"),
            account_id: AccountId("acct".into()),
            label: "Contoso".into(),
            tenant_name: None,
            verified_domains: Vec::new(),
            status,
            connected_at: DateTime::from_timestamp(1_760_000_000, 0).unwrap(),
            granted_permissions: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_second_request_gets_the_running_sync_and_sends_nothing() {
        let (deps, store, requests) = deps();
        store
            .put_connection(&connection(ConnectionStatus::Connected))
            .await
            .unwrap();
        let t = TenantId::new("t1");
        let first = request_sync(&deps, &t).await.unwrap();
        assert!(first.started);
        assert_eq!(first.run.status, RunStatus::Running);
        let sent = requests.take();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0.run_id.as_deref(), Some(first.run.run_id.as_str()));
        let stored = store.get_run(&t, &first.run.run_id).await.unwrap().unwrap();
        assert_eq!(stored.trigger, Trigger::Manual);

        let second = request_sync(&deps, &t).await.unwrap();
        assert!(!second.started);
        assert_eq!(second.run.run_id, first.run.run_id);
        assert!(requests.take().is_empty());

        // Once it finished, the next request starts a new one.
        store
            .update_run(
                &t,
                &first.run.run_id,
                &RunUpdate::Finish {
                    status: RunStatus::Succeeded,
                    at: deps.clock.now(),
                },
            )
            .await
            .unwrap();
        let third = request_sync(&deps, &t).await.unwrap();
        assert!(third.started);
        assert_eq!(requests.take().len(), 1);
    }

    #[tokio::test]
    async fn a_disconnected_directory_is_refused_and_records_nothing() {
        let (deps, store, requests) = deps();
        store
            .put_connection(&connection(ConnectionStatus::Disconnected))
            .await
            .unwrap();
        let t = TenantId::new("t1");
        assert!(matches!(
            request_sync(&deps, &t).await,
            Err(SyncNowError::NotSyncable(_))
        ));
        assert!(requests.take().is_empty());
        assert!(store.list_runs(&t, 10).await.unwrap().is_empty());
        assert!(matches!(
            request_sync(&deps, &TenantId::new("t2")).await,
            Err(SyncNowError::NotConnected(_))
        ));
    }
}
