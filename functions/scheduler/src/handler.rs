//! Translate the scheduled event into `schedule_fetches`, and its failure into a Lambda
//! `Diagnostic` whose `error_type` says whether a retry can help. [`invoke`] is that edge: the
//! one place a scheduler failure is logged (the service and [`handle`] only return it).

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use entra_sync_core::error::{ErrorClass, SyncError};
use entra_sync_core::services::{ScheduleDeps, ScheduleReport, schedule_fetches};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use tracing::error;

/// The ports the scheduler uses: list connections, read their schedules, send fetch requests.
pub type Deps = ScheduleDeps;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Fetches spread over `[0, max_jitter)` (SQS delays at most 15 minutes).
    pub max_jitter: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Response {
    pub requested: usize,
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event is not an EventBridge event: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl HandlerError {
    pub fn class(&self) -> ErrorClass {
        match self {
            HandlerError::Malformed(_) => ErrorClass::Permanent,
            HandlerError::Sync(e) => e.class(),
        }
    }
}

/// The one conversion of a scheduler failure for the Lambda runtime.
impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.class().as_str().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// One invocation as the Lambda runtime sees it: [`handle`], and a failure logged once and
/// answered as a [`Diagnostic`].
pub async fn invoke(
    deps: &Deps,
    settings: &Settings,
    event: serde_json::Value,
) -> Result<Response, Diagnostic> {
    handle(deps, settings, event).await.map_err(|e| {
        error!(error = %e, class = e.class().as_str(), "scheduling failed");
        Diagnostic::from(e)
    })
}

/// Handle one invocation. The event's content does not matter beyond being a scheduled
/// EventBridge event: every connection that can sync is requested.
pub async fn handle(
    deps: &Deps,
    settings: &Settings,
    event: serde_json::Value,
) -> Result<Response, HandlerError> {
    let event: EventBridgeEvent = serde_json::from_value(event).map_err(HandlerError::Malformed)?;
    tracing::debug!(source = %event.source, detail_type = %event.detail_type, "schedule fired");
    let ScheduleReport {
        requested, skipped, ..
    } = schedule_fetches(deps, settings.max_jitter).await?;
    Ok(Response { requested, skipped })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use chrono::DateTime;
    use entra_sync_core::memory::{CollectingFetchRequests, ManualClock, MemoryStore};
    use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, ReauthRetry, TenantId};
    use entra_sync_core::ports::{ConnectionStore, RunStore};
    use entra_sync_core::run::Trigger;
    use entra_sync_core::testing::DepsBuilder;

    use super::*;

    /// A fetch queue that refuses every request.
    struct Refusing;

    #[async_trait::async_trait]
    impl entra_sync_core::ports::FetchRequests for Refusing {
        async fn request_fetches(
            &self,
            _requests: Vec<(entra_sync_core::ports::FetchRequest, Duration)>,
        ) -> Result<(), entra_sync_core::error::QueueError> {
            Err(entra_sync_core::error::QueueError::Rejected("full".into()))
        }
    }

    #[tokio::test]
    async fn a_failed_schedule_is_logged_once_where_it_becomes_the_diagnostic() {
        let (_, _, store, clock) = world().await;
        let deps = DepsBuilder::on(&store)
            .clock(clock)
            .schedule(Arc::new(Refusing));
        let logged = entra_sync_core::testing::LoggedProblems::new();
        let _guard = tracing::subscriber::set_default(logged.clone());
        assert!(handle(&deps, &settings(), sample("happy")).await.is_err());
        assert_eq!(
            logged.count(),
            0,
            "handle returns the error without logging it"
        );
        let err = invoke(&deps, &settings(), sample("happy"))
            .await
            .unwrap_err();
        assert_eq!(err.error_type, "Permanent");
        assert_eq!(logged.count(), 1, "invoke logs it once");
    }

    fn conn(id: &str, status: ConnectionStatus) -> Connection {
        Connection {
            tenant_id: TenantId::new(id),
            account_id: AccountId("acct".into()),
            label: id.into(),
            tenant_name: None,
            verified_domains: vec![],
            status,
            connected_at: DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
            granted_permissions: Default::default(),
        }
    }

    fn now() -> DateTime<chrono::Utc> {
        DateTime::from_timestamp(1_767_229_200, 0).unwrap()
    }

    /// Two connected directories, one that needs reauthorization (its next retry half an hour
    /// away), one disconnected.
    async fn world() -> (
        Deps,
        Arc<CollectingFetchRequests>,
        Arc<MemoryStore>,
        Arc<ManualClock>,
    ) {
        let store = Arc::new(MemoryStore::new());
        for (id, status) in [
            ("tenant-a", ConnectionStatus::Connected),
            ("tenant-b", ConnectionStatus::Connected),
            (
                "tenant-c",
                ConnectionStatus::NeedsReauthorization {
                    reason: "consent revoked".into(),
                    retry: ReauthRetry {
                        since: Some(now() - chrono::Duration::minutes(30)),
                        attempts: 1,
                        next_attempt_at: Some(now() + chrono::Duration::minutes(30)),
                    },
                },
            ),
            ("tenant-d", ConnectionStatus::Disconnected),
        ] {
            store.put_connection(&conn(id, status)).await.unwrap();
        }
        let requests = Arc::new(CollectingFetchRequests::new());
        let clock = Arc::new(ManualClock::new(now()));
        (
            DepsBuilder::on(&store)
                .clock(clock.clone())
                .schedule(requests.clone()),
            requests,
            store,
            clock,
        )
    }

    fn settings() -> Settings {
        Settings {
            max_jitter: Duration::from_secs(900),
        }
    }

    fn sample(name: &str) -> serde_json::Value {
        let text = match name {
            "happy" => include_str!("../../../events/scheduler/happy.json"),
            "malformed" => include_str!("../../../events/scheduler/malformed.json"),
            _ => include_str!("../../../events/scheduler/edge.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[tokio::test]
    async fn scheduled_event_requests_one_jittered_fetch_per_connected_directory() {
        let (deps, requests, store, _) = world().await;
        let r = handle(&deps, &settings(), sample("happy")).await.unwrap();
        assert_eq!(
            r,
            Response {
                requested: 2,
                skipped: 2
            }
        );
        let sent = requests.take();
        let tenants: Vec<&str> = sent.iter().map(|(r, _)| r.tenant_id.as_str()).collect();
        assert_eq!(tenants, vec!["tenant-a", "tenant-b"]);
        assert!(sent.iter().all(|(r, d)| r.trigger == Trigger::Scheduled
            && !r.force_full
            && *d < Duration::from_secs(900)));
        assert_ne!(sent[0].1, sent[1].1, "tenants get different slots");
        // Between its attempts a quarantined directory gets no activity entry (the fetch of
        // each attempt is its entry), nor does a disconnected one.
        for t in ["tenant-a", "tenant-c", "tenant-d"] {
            assert!(
                store
                    .list_runs(&TenantId::new(t), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[tokio::test]
    async fn a_directory_that_needs_reauthorization_is_retried_once_its_retry_is_due() {
        let (deps, requests, store, clock) = world().await;
        handle(&deps, &settings(), sample("happy")).await.unwrap();
        assert!(
            requests
                .take()
                .iter()
                .all(|(r, _)| r.tenant_id.as_str() != "tenant-c")
        );
        clock.advance(chrono::Duration::minutes(30));
        let r = handle(&deps, &settings(), sample("happy")).await.unwrap();
        assert_eq!(r.requested, 3);
        let sent = requests.take();
        let retry: Vec<_> = sent
            .iter()
            .filter(|(r, _)| r.tenant_id.as_str() == "tenant-c")
            .collect();
        assert_eq!(retry.len(), 1);
        assert_eq!(retry[0].0.trigger, Trigger::Scheduled);
        // A record stored before retries existed has no schedule: it is due at once.
        store
            .put_connection(&conn(
                "tenant-c",
                ConnectionStatus::NeedsReauthorization {
                    reason: "consent revoked".into(),
                    retry: ReauthRetry::default(),
                },
            ))
            .await
            .unwrap();
        clock.advance(chrono::Duration::minutes(1));
        handle(&deps, &settings(), sample("happy")).await.unwrap();
        assert!(
            requests
                .take()
                .iter()
                .any(|(r, _)| r.tenant_id.as_str() == "tenant-c")
        );
        assert!(
            store
                .list_runs(&TenantId::new("tenant-c"), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn malformed_event_is_a_permanent_failure_and_requests_nothing() {
        let (deps, requests, _, _) = world().await;
        let err = handle(&deps, &settings(), sample("malformed"))
            .await
            .unwrap_err();
        assert_eq!(Diagnostic::from(err).error_type, "Permanent");
        assert!(requests.take().is_empty());
    }

    #[tokio::test]
    async fn a_manual_event_with_extra_detail_and_no_connections_requests_nothing() {
        let requests = Arc::new(CollectingFetchRequests::new());
        let store = Arc::new(MemoryStore::new());
        let deps = Deps {
            connections: store.clone(),
            settings: store,
            requests: requests.clone(),
            clock: Arc::new(ManualClock::new(DateTime::from_timestamp(0, 0).unwrap())),
        };
        let r = handle(&deps, &settings(), sample("edge")).await.unwrap();
        assert_eq!(
            r,
            Response {
                requested: 0,
                skipped: 0
            }
        );
        assert!(requests.take().is_empty());
    }
}
