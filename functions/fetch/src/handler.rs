//! Translate fetch requests into `run_fetch` calls, and their outcomes into the SQS batch
//! response: the one place a fetch failure is classified and logged.
//!
//! * Paused (page budget spent): a continuation request goes back on the fetch queue, and the
//!   next invocation resumes from the checkpoint.
//! * Busy (another fetch holds the lease): acknowledged; the running fetch covers the request.
//! * Permanent failures (unknown or disconnected directory, missing permission): acknowledged;
//!   the run records the failure in plain words and a retry would fail the same way.
//! * Retryable failures (throttling, transient Graph or AWS errors, an expired token's resync):
//!   reported in `batchItemFailures`; SQS redelivers after the visibility timeout.
//! * Malformed requests: reported, so after `maxReceiveCount` they rest in the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use entra_sync_core::error::{ErrorClass, SyncError};
use entra_sync_core::ports::{FetchRequest, FetchRequests};
use entra_sync_core::services::{FetchDeps, FetchOptions, FetchOutcome, run_fetch};
use tracing::{Instrument, error, info, info_span, warn};

/// The ports fetch uses: the directory, connections, cursors, lease, runs, the page queue, the
/// mirror and events (to commit a round reconcile already finished), and the fetch queue (to
/// continue itself).
#[derive(Clone)]
pub struct Deps {
    pub fetch: FetchDeps,
    pub requests: Arc<dyn FetchRequests>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// Directory pages per invocation before handing over to a continuation.
    pub max_pages: u32,
    /// How long the lease lasts: at least the function timeout.
    pub lease_ttl: Duration,
}

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestResult {
    Done(FetchOutcome),
    /// Paused and a continuation request was sent.
    Continued,
    /// Another fetch of this directory is running.
    AlreadyRunning,
    /// Acknowledged without success: retrying cannot help.
    GaveUp(ErrorClass),
    /// Reported as failed: SQS delivers it again.
    Retry,
    Malformed,
}

impl RequestResult {
    fn acknowledged(&self) -> bool {
        !matches!(self, RequestResult::Retry | RequestResult::Malformed)
    }
}

/// Handle a batch; `holder` names this invocation (the Lambda request id) for the lease.
pub async fn handle(
    deps: &Deps,
    settings: &Settings,
    holder: &str,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    // One directory after the other: each fetch already reads its two streams side by side,
    // and the batch size is 1 in the template.
    for message in &event.records {
        let result = handle_message(deps, settings, holder, message).await;
        if !result.acknowledged()
            && let Some(id) = &message.message_id
        {
            response.add_failure(id.clone());
        }
    }
    response
}

pub async fn handle_message(
    deps: &Deps,
    settings: &Settings,
    holder: &str,
    message: &SqsMessage,
) -> RequestResult {
    let message_id = message.message_id.as_deref().unwrap_or("");
    let request: FetchRequest = match message
        .body
        .as_deref()
        .map(serde_json::from_str::<FetchRequest>)
    {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            error!(message_id, error = %e, "malformed fetch request");
            return RequestResult::Malformed;
        }
        None => {
            error!(message_id, "fetch request without a body");
            return RequestResult::Malformed;
        }
    };
    let span = info_span!("fetch_request", message_id, tenant = %request.tenant_id);
    async {
        let options = FetchOptions {
            holder: holder.to_owned(),
            lease_ttl: chrono::Duration::from_std(settings.lease_ttl)
                .unwrap_or(chrono::Duration::minutes(15)),
            max_pages: Some(settings.max_pages),
            trigger: request.trigger,
            force_full: request.force_full,
            run_id: request.run_id.clone(),
        };
        match run_fetch(&deps.fetch, &request.tenant_id, &options).await {
            Ok(report) if report.outcome == FetchOutcome::Paused => {
                let next = FetchRequest {
                    force_full: false,
                    ..request.clone()
                };
                match deps.requests.request_fetches(vec![(next, Duration::ZERO)]).await {
                    Ok(()) => {
                        info!(run_id = %report.run_id, pages = report.pages_enqueued, "fetch paused; continuation requested");
                        RequestResult::Continued
                    }
                    Err(e) => {
                        // The checkpoint holds; the redelivered request resumes from it.
                        warn!(error = %e, "continuation could not be requested; will be retried");
                        RequestResult::Retry
                    }
                }
            }
            Ok(report) => RequestResult::Done(report.outcome),
            Err(SyncError::Busy(_)) => {
                info!("another fetch of this directory is running; request dropped");
                RequestResult::AlreadyRunning
            }
            Err(e) => match e.class() {
                ErrorClass::Permanent => {
                    error!(error = %e, class = "Permanent", "fetch cannot succeed; request dropped");
                    RequestResult::GaveUp(ErrorClass::Permanent)
                }
                class => {
                    warn!(error = %e, class = class.as_str(), "fetch failed; will be retried");
                    RequestResult::Retry
                }
            },
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use async_trait::async_trait;
    use entra_sync_core::error::DirectoryError;
    use entra_sync_core::memory::{CollectingFetchRequests, CollectingQueue, MemoryStore};
    use entra_sync_core::model::{
        AccountId, Connection, ConnectionStatus, DirectoryUser, Stream, TenantId,
    };
    use entra_sync_core::page::{
        FetchedPage, ManagerChange, PageItems, PageLink, PageRequest, UserDelta,
    };
    use entra_sync_core::ports::{ConnectionStore, DirectoryReader, LeaseStore};

    use entra_sync_core::testing::DepsBuilder;

    use super::*;

    /// Two pages of users (initial -> next -> delta), one empty page of groups.
    struct TwoPages;

    #[async_trait]
    impl DirectoryReader for TwoPages {
        async fn fetch_page(
            &self,
            _tenant: &TenantId,
            stream: Stream,
            request: &PageRequest,
        ) -> Result<FetchedPage, DirectoryError> {
            let user = |id: &str| UserDelta::Upsert {
                user: DirectoryUser {
                    id: id.into(),
                    ..Default::default()
                },
                manager: ManagerChange::NotReported,
            };
            Ok(match (stream, request) {
                (Stream::Users, PageRequest::Initial) => FetchedPage {
                    items: PageItems::Users(vec![user("u1")]),
                    link: PageLink::Next("users-2".into()),
                },
                (Stream::Users, _) => FetchedPage {
                    items: PageItems::Users(vec![user("u2")]),
                    link: PageLink::Delta("users-delta".into()),
                },
                (Stream::Groups, _) => FetchedPage {
                    items: PageItems::empty(Stream::Groups),
                    link: PageLink::Delta("groups-delta".into()),
                },
            })
        }
        fn requests_sent(&self, _tenant: &TenantId) -> u64 {
            0
        }
    }

    /// A directory that does not answer.
    struct Unreachable;

    #[async_trait]
    impl DirectoryReader for Unreachable {
        async fn fetch_page(
            &self,
            _tenant: &TenantId,
            _stream: Stream,
            _request: &PageRequest,
        ) -> Result<FetchedPage, DirectoryError> {
            Err(DirectoryError::Transient {
                status: Some(503),
                url: None,
                source: None,
            })
        }
        fn requests_sent(&self, _tenant: &TenantId) -> u64 {
            0
        }
    }

    struct World {
        deps: Deps,
        store: Arc<MemoryStore>,
        pages: Arc<CollectingQueue>,
        requests: Arc<CollectingFetchRequests>,
    }

    async fn world() -> World {
        let store = Arc::new(MemoryStore::new());
        store
            .put_connection(&Connection {
                tenant_id: TenantId::new("tenant-a"),
                account_id: AccountId("acct".into()),
                label: "A".into(),
                tenant_name: None,
                verified_domains: vec![],
                status: ConnectionStatus::Connected,
                connected_at: chrono::Utc::now(),
                granted_permissions: Default::default(),
            })
            .await
            .unwrap();
        let pages = Arc::new(CollectingQueue::new());
        let requests = Arc::new(CollectingFetchRequests::new());
        let deps = Deps {
            fetch: DepsBuilder::on(&store).fetch(Arc::new(TwoPages), pages.clone()),
            requests: requests.clone(),
        };
        World {
            deps,
            store,
            pages,
            requests,
        }
    }

    fn settings(max_pages: u32) -> Settings {
        Settings {
            max_pages,
            lease_ttl: Duration::from_secs(900),
        }
    }

    fn sample(text: &str) -> SqsEvent {
        serde_json::from_str(text).unwrap()
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_scheduled_request_enqueues_every_page_of_the_directory() {
        let w = world().await;
        let r = handle(
            &w.deps,
            &settings(100),
            "req-1",
            sample(include_str!("../../../events/fetch/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        assert_eq!(w.pages.drain().len(), 3, "two user pages, one group page");
        assert!(w.requests.take().is_empty(), "nothing left to continue");
    }

    #[tokio::test]
    async fn a_failed_fetch_is_logged_once_by_the_handler_that_decides_its_retry() {
        let mut w = world().await;
        w.deps.fetch.directory = Arc::new(Unreachable);
        let logged = entra_sync_core::testing::LoggedProblems::new();
        let _guard = tracing::subscriber::set_default(logged.clone());
        let event = sample(include_str!("../../../events/fetch/happy.json"));
        let r = handle_message(&w.deps, &settings(100), "req-1", &event.records[0]).await;
        assert_eq!(r, RequestResult::Retry);
        assert_eq!(logged.count(), 1, "one warning for one failed fetch");
    }

    #[tokio::test]
    async fn a_malformed_request_fails_alone() {
        let w = world().await;
        let r = handle(
            &w.deps,
            &settings(100),
            "req-1",
            sample(include_str!("../../../events/fetch/malformed.json")),
        )
        .await;
        assert_eq!(failures(&r), vec!["5b7e9d10-0000-4000-8000-000000000001"]);
        assert_eq!(w.pages.drain().len(), 3, "the valid request still ran");
    }

    #[tokio::test]
    async fn an_unknown_directory_is_dropped_and_a_forced_resync_runs() {
        let w = world().await;
        let r = handle(
            &w.deps,
            &settings(100),
            "req-1",
            sample(include_str!("../../../events/fetch/edge.json")),
        )
        .await;
        assert!(
            failures(&r).is_empty(),
            "retrying an unknown tenant cannot help"
        );
        assert_eq!(w.pages.drain().len(), 3);
    }

    #[tokio::test]
    async fn a_spent_page_budget_requests_a_continuation_that_resumes() {
        let w = world().await;
        let r = handle(
            &w.deps,
            &settings(1),
            "req-1",
            sample(include_str!("../../../events/fetch/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        assert_eq!(w.pages.drain().len(), 1);
        let next = w.requests.take();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0.tenant_id.as_str(), "tenant-a");
        assert_eq!(next[0].1, Duration::ZERO);
        // The continuation picks up at the checkpoint.
        let r = handle(
            &w.deps,
            &settings(100),
            "req-2",
            sample(include_str!("../../../events/fetch/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        assert_eq!(w.pages.drain().len(), 2);
    }

    #[tokio::test]
    async fn a_directory_that_needs_reauthorization_waits_for_its_retry_but_sync_now_runs_at_once()
    {
        use entra_sync_core::model::ReauthRetry;
        let w = world().await;
        let tenant = TenantId::new("tenant-a");
        // A scheduled request that arrives before the retry is due: acknowledged, nothing read.
        let next = chrono::Utc::now() + chrono::Duration::hours(1);
        let c = w.store.get_connection(&tenant).await.unwrap().unwrap();
        w.store
            .put_connection(&Connection {
                status: ConnectionStatus::NeedsReauthorization {
                    reason: "the app's consent was revoked (AADSTS7000229)".into(),
                    retry: ReauthRetry {
                        since: Some(next - chrono::Duration::hours(1)),
                        attempts: 1,
                        next_attempt_at: Some(next),
                    },
                },
                ..c
            })
            .await
            .unwrap();
        let r = handle(
            &w.deps,
            &settings(100),
            "req-1",
            sample(include_str!("../../../events/fetch/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty(), "retrying early cannot help");
        assert!(w.pages.drain().is_empty());
        // "Sync now" tries at once; the directory answers, so the flag is cleared.
        let r = handle(
            &w.deps,
            &settings(100),
            "req-2",
            sample(include_str!("../../../events/fetch/sync-now.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        assert_eq!(w.pages.drain().len(), 3);
        let c = w.store.get_connection(&tenant).await.unwrap().unwrap();
        assert_eq!(c.status, ConnectionStatus::Connected);
    }

    #[tokio::test]
    async fn a_request_while_another_fetch_holds_the_lease_is_acknowledged_and_does_nothing() {
        let w = world().await;
        let now = chrono::Utc::now();
        assert!(
            w.store
                .acquire_lease(
                    &TenantId::new("tenant-a"),
                    "other",
                    now + chrono::Duration::minutes(10),
                    now
                )
                .await
                .unwrap()
        );
        let r = handle(
            &w.deps,
            &settings(100),
            "req-1",
            sample(include_str!("../../../events/fetch/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        assert!(w.pages.drain().is_empty());
    }

    fn request(body: &FetchRequest) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some("m-sync-now".into());
        m.body = Some(serde_json::to_string(body).unwrap());
        m
    }

    /// "Sync now" records its run before the request reaches fetch. When fetch continues the
    /// round of a failed run under a new run, or another fetch holds the directory, the recorded
    /// run is finished as skipped (with why), instead of showing as running for good and
    /// answering every later "sync now" of the directory.
    #[tokio::test]
    async fn a_sync_now_run_that_fetch_does_not_run_under_is_finished_as_skipped() {
        use entra_sync_core::ports::RunStore;
        use entra_sync_core::run::{RunStatus, RunUpdate, SyncRun, Trigger};
        use entra_sync_core::services::sync_now::running_sync;
        let w = world().await;
        let tenant = TenantId::new("tenant-a");
        // A scheduled fetch stops after one page; its run then fails (the round stays open).
        let r = handle(
            &w.deps,
            &settings(1),
            "req-1",
            sample(include_str!("../../../events/fetch/happy.json")),
        )
        .await;
        assert!(failures(&r).is_empty());
        w.requests.take();
        let first = w.store.list_runs(&tenant, 5).await.unwrap()[0]
            .run_id
            .clone();
        let failed = RunUpdate::Finish {
            status: RunStatus::Failed {
                error: "the reconcile timed out".into(),
            },
            at: chrono::Utc::now(),
        };
        w.store.update_run(&tenant, &first, &failed).await.unwrap();
        // "Sync now" records its run and asks for a fetch under it.
        let now = chrono::Utc::now();
        let asked = SyncRun::new("sync-now-1".into(), tenant.clone(), Trigger::Manual, now);
        w.store.create_run(&asked).await.unwrap();
        let req = FetchRequest {
            tenant_id: tenant.clone(),
            trigger: Trigger::Manual,
            force_full: false,
            run_id: Some("sync-now-1".into()),
        };
        let r = handle_message(&w.deps, &settings(100), "req-2", &request(&req)).await;
        assert!(r.acknowledged());
        let runs = w.store.list_runs(&tenant, 10).await.unwrap();
        let continuing = runs
            .iter()
            .find(|r| r.continues.as_deref() == Some(first.as_str()))
            .expect("a run continues the failed round");
        let stored = w
            .store
            .get_run(&tenant, "sync-now-1")
            .await
            .unwrap()
            .unwrap();
        match &stored.status {
            RunStatus::Skipped { reason } => {
                assert!(reason.contains(&continuing.run_id), "{reason}")
            }
            other => panic!("the requested run is {other:?}"),
        }
        // A later "sync now" is not answered with the skipped run.
        let running = running_sync(w.store.as_ref(), &tenant).await.unwrap();
        assert_ne!(running.map(|r| r.run_id).as_deref(), Some("sync-now-1"));
        // Another fetch holds the directory: the request is dropped and its run says why.
        assert!(
            w.store
                .acquire_lease(&tenant, "other", now + chrono::Duration::minutes(10), now)
                .await
                .unwrap()
        );
        let asked = SyncRun::new("sync-now-2".into(), tenant.clone(), Trigger::Manual, now);
        w.store.create_run(&asked).await.unwrap();
        let req = FetchRequest {
            run_id: Some("sync-now-2".into()),
            ..req
        };
        let r = handle_message(&w.deps, &settings(100), "req-3", &request(&req)).await;
        assert_eq!(r, RequestResult::AlreadyRunning);
        let stored = w
            .store
            .get_run(&tenant, "sync-now-2")
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&stored.status, RunStatus::Skipped { reason } if reason.contains("Another sync")),
            "{:?}",
            stored.status
        );
    }
}
