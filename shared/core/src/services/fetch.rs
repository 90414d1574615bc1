//! Fetch: read one directory's delta rounds page by page and hand each page to the work queue,
//! checkpointing the cursor after every enqueue, so a crash or timeout resumes mid-round
//! (docs/reliability.md):
//!
//! 1. enqueue the page first (its message id is stable, so a crash that re-enqueues is harmless);
//! 2. then advance the checkpoint (`nextLink`, page number) with a conditional write;
//! 3. the deltaLink is only promoted once reconcile has applied every page ([`try_commit`]).
//!
//! A crashed or timed-out fetch resumes mid-round from the checkpoint. A token Graph rejects, or
//! a link that cannot be followed (another host than the configured Graph URL), leads to one
//! orderly full round; any other failure leaves the previous watermark in place. A failed run
//! keeps its id and entry: the next fetch continues its round under a new run.
//!
//! A connection that needs reauthorization is tried by hand at once and by the scheduler when
//! its retry is due; each failed token attempt pushes the next retry further out, and the first
//! attempt that reads a page clears the flag and says so in the run's notes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;
use tracing::{Instrument, info, info_span, warn};

use super::commit::try_commit;
use super::connect::{clear_reauthorization, mark_needs_reauthorization};
use super::deps::{SyncDeps, SyncStore};
use crate::cursor::{CursorRecord, CursorState, FullReason};
use crate::error::{DirectoryError, ErrorClass, SyncError};
use crate::events::{ChangeEvent, ChangeKind};
use crate::model::{ConnectionStatus, Stream, TenantId};
use crate::page::{FetchedPage, PageItems, PageLink, PageMessage, PageRequest};
use crate::ports::{ConnectionStore, DirectoryReader, LeaseStore, Revision, WorkQueue};
use crate::run::{RunStatus, RunUpdate, SyncRun, Trigger};

/// The ports fetch uses: the directory, the connections, the lease and the page queue, and
/// the ports reconcile uses (cursors, runs; the mirror and events to commit a round reconcile
/// already finished).
#[derive(Clone)]
pub struct FetchDeps {
    pub directory: Arc<dyn DirectoryReader>,
    pub connections: Arc<dyn ConnectionStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub sync: SyncDeps,
}

impl FetchDeps {
    /// Fetch on `store`'s connections and lease, reading `directory` into `queue`, with
    /// `sync` for everything it shares with reconcile.
    pub fn new<S: SyncStore>(
        store: &Arc<S>,
        directory: Arc<dyn DirectoryReader>,
        queue: Arc<dyn WorkQueue>,
        sync: SyncDeps,
    ) -> Self {
        Self {
            directory,
            connections: store.clone(),
            leases: store.clone(),
            queue,
            sync,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Who holds the lease (a Lambda request id, a process id).
    pub holder: String,
    /// How long the lease lasts; longer than one invocation.
    pub lease_ttl: Duration,
    /// Stop after this many pages in one call and resume on the next (Lambda time budget).
    pub max_pages: Option<u32>,
    pub trigger: Trigger,
    /// Start a full round even if a deltaLink exists.
    pub force_full: bool,
    /// A run recorded before the fetch started ("sync now"): a new round runs under it.
    pub run_id: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            holder: "local".to_owned(),
            lease_ttl: Duration::minutes(15),
            max_pages: None,
            trigger: Trigger::Manual,
            force_full: false,
            run_id: None,
        }
    }
}

/// How a fetch call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Every round is read and committed (reconcile was faster than us).
    Committed,
    /// Every page is enqueued; reconcile commits when it has applied them.
    Enqueued,
    /// The page budget ran out; call again to resume from the checkpoint.
    Paused,
}

#[derive(Clone, Debug)]
pub struct FetchReport {
    pub run_id: String,
    pub outcome: FetchOutcome,
    pub pages_enqueued: u32,
    /// Directory pages read (each proves the app's token works).
    pub pages_read: u32,
    /// Streams that fell back to a full round because Graph rejected the token or a link
    /// could not be followed.
    pub resyncs: u32,
}

impl FetchReport {
    fn new(run_id: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            outcome: FetchOutcome::Enqueued,
            pages_enqueued: 0,
            pages_read: 0,
            resyncs: 0,
        }
    }
}

/// Run one fetch of one directory.
pub async fn run_fetch(
    deps: &FetchDeps,
    tenant: &TenantId,
    opts: &FetchOptions,
) -> Result<FetchReport, SyncError> {
    let result = fetch_directory(deps, tenant, opts).await;
    if let Some(asked) = &opts.run_id {
        settle_requested_run(deps, tenant, asked, &result).await;
    }
    result
}

/// A "sync now" recorded run `asked` before its request reached the fetch. When the fetch ran
/// under another run (it continued a round in progress), or did not run and will not be
/// retried (another fetch holds the directory, or it cannot succeed), nothing would ever finish
/// `asked`: it would show as running for good, and every later "sync now" of the directory
/// would answer with it. It is finished as skipped, saying why.
async fn settle_requested_run(
    deps: &FetchDeps,
    tenant: &TenantId,
    asked: &str,
    result: &Result<FetchReport, SyncError>,
) {
    let reason = match result {
        Ok(report) if report.run_id == asked => return,
        Ok(report) => format!(
            "Another sync of this directory was under way; run {} continued it and reads the changes this request asked for.",
            report.run_id
        ),
        Err(SyncError::Busy(_)) => "Another sync of this directory was running at the same moment; it reads the changes this request asked for.".to_owned(),
        Err(e) if e.class() == ErrorClass::Permanent => plain_words(e),
        // A retried request runs under this run again.
        Err(_) => return,
    };
    match deps.sync.runs.get_run(tenant, asked).await {
        Ok(Some(run)) if !run.is_finished() => {}
        Ok(_) => return,
        Err(e) => {
            warn!(tenant = %tenant, run_id = %asked, error = %e, "the requested run could not be read");
            return;
        }
    }
    let finish = RunUpdate::Finish {
        status: RunStatus::Skipped { reason },
        at: deps.sync.clock.now(),
    };
    if let Err(e) = deps.sync.runs.update_run(tenant, asked, &finish).await {
        warn!(tenant = %tenant, run_id = %asked, error = %e, "the requested run could not be finished");
    }
}

async fn fetch_directory(
    deps: &FetchDeps,
    tenant: &TenantId,
    opts: &FetchOptions,
) -> Result<FetchReport, SyncError> {
    let conn = deps
        .connections
        .get_connection(tenant)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(tenant.to_string()))?;
    let now = deps.sync.clock.now();
    if let Some(why) = conn.fetch_refusal(opts.trigger, now) {
        return Err(SyncError::ConnectionNotSyncable {
            tenant: tenant.to_string(),
            why,
        });
    }
    if !deps
        .leases
        .acquire_lease(tenant, &opts.holder, now + opts.lease_ttl, now)
        .await?
    {
        return Err(SyncError::Busy(tenant.to_string()));
    }
    let access = AccessCheck {
        flagged: matches!(conn.status, ConnectionStatus::NeedsReauthorization { .. }),
        done: AtomicBool::new(false),
    };
    let result = fetch_locked(deps, tenant, opts, &access)
        .instrument(info_span!("fetch", tenant = %tenant))
        .await;
    if let Err(e) = deps.leases.release_lease(tenant, &opts.holder).await {
        // The lease expires on its own; the fetch result matters more.
        warn!(tenant = %tenant, error = %e, "lease release failed");
    }
    result
}

/// A fetch of a connection that needs reauthorization: the first page read proves the token
/// works, and clears the flag before that page is enqueued (so the projection at the end of
/// the run finds the connection usable).
struct AccessCheck {
    flagged: bool,
    done: AtomicBool,
}

impl AccessCheck {
    async fn page_read(&self, deps: &FetchDeps, tenant: &TenantId, run_id: &str) {
        if self.flagged && !self.done.swap(true, Ordering::SeqCst) {
            note_access_restored(deps, tenant, run_id).await;
        }
    }
}

async fn fetch_locked(
    deps: &FetchDeps,
    tenant: &TenantId,
    opts: &FetchOptions,
    access: &AccessCheck,
) -> Result<FetchReport, SyncError> {
    // Resume the run of a round in progress, or start a new one.
    let mut cursors = Vec::with_capacity(Stream::ALL.len());
    for stream in Stream::ALL {
        let loaded = deps.sync.cursors.load_cursor(tenant, stream).await?;
        cursors.push((stream, loaded));
    }
    let in_progress = cursors.iter().find_map(|(_, c)| {
        c.as_ref()
            .and_then(|(r, _)| r.current_round().map(|(_, run, _)| run.to_owned()))
    });
    // Continue the run of the round in progress while it is open (a crashed or paused fetch;
    // a lost record is recreated under its id). A run that failed keeps its id and entry: a
    // new run continues its round.
    let mut started = true;
    let run = match in_progress {
        Some(id) => match deps.sync.runs.get_run(tenant, &id).await? {
            Some(run) if !run.is_finished() => {
                started = false;
                run
            }
            Some(_) => {
                let mut run = SyncRun::new(
                    crate::run::new_run_id(deps.sync.clock.now()),
                    tenant.clone(),
                    opts.trigger,
                    deps.sync.clock.now(),
                );
                run.continues = Some(id.clone());
                deps.sync.runs.create_run(&run).await?;
                for (stream, loaded) in &mut cursors {
                    let Some((record, rev)) = loaded.as_mut() else {
                        continue;
                    };
                    if record.current_round().is_some_and(|(_, r, _)| r == id)
                        && let Some(adopted) = record.adopt(&run.run_id)
                    {
                        *rev = deps
                            .sync
                            .cursors
                            .save_cursor(tenant, *stream, &adopted, Some(*rev))
                            .await?;
                        *record = adopted;
                    }
                }
                info!(tenant = %tenant, run_id = %run.run_id, continues = %id, "continuing the round of a failed run");
                run
            }
            None => {
                let run = SyncRun::new(id, tenant.clone(), opts.trigger, deps.sync.clock.now());
                deps.sync.runs.create_run(&run).await?;
                run
            }
        },
        None => {
            let id = match &opts.run_id {
                Some(id) => id.clone(),
                None => crate::run::new_run_id(deps.sync.clock.now()),
            };
            let run = SyncRun::new(id, tenant.clone(), opts.trigger, deps.sync.clock.now());
            // Creating a recorded run leaves it as it is.
            deps.sync.runs.create_run(&run).await?;
            match deps.sync.runs.get_run(tenant, &run.run_id).await? {
                Some(stored) if !stored.is_finished() => stored,
                _ => run,
            }
        }
    };
    let run_id = run.run_id.clone();
    if started {
        announce_start(deps, &run).await;
    }
    // A resumed run does not start a new round of a stream whose round of this run already
    // committed: with a page budget, that new round would take the budget on every call and
    // the other stream of the run would never finish (found by tests/tests/convergence.rs).
    cursors.retain(|(stream, loaded)| {
        let idle = loaded
            .as_ref()
            .is_some_and(|(r, _)| matches!(r.state, CursorState::Idle { .. }));
        !(idle && run.stream(*stream).committed)
    });

    let requests_before = deps.directory.requests_sent(tenant);
    let mut report = FetchReport::new(&run_id);
    let mut result = Ok(());
    if opts.max_pages.is_none() {
        // The two streams are independent rounds: read them side by side, so the wall time
        // is the longer stream's paging time rather than the sum of both.
        let per_stream = cursors.into_iter().map(|(stream, loaded)| {
            let run_id = run_id.clone();
            async move {
                let mut own = FetchReport::new(&run_id);
                let mut budget = None;
                let r = fetch_stream(
                    deps,
                    tenant,
                    stream,
                    loaded,
                    &run_id,
                    opts,
                    access,
                    &mut budget,
                    &mut own,
                )
                .instrument(info_span!("stream", stream = %stream))
                .await;
                (r, own)
            }
        });
        for (r, own) in futures::future::join_all(per_stream).await {
            report.pages_enqueued += own.pages_enqueued;
            report.pages_read += own.pages_read;
            report.resyncs += own.resyncs;
            if result.is_ok() {
                result = r;
            }
        }
    } else {
        // A page budget (a Lambda's time slice) is spent stream after stream.
        let mut budget = opts.max_pages;
        for (stream, loaded) in cursors {
            let r = fetch_stream(
                deps,
                tenant,
                stream,
                loaded,
                &run_id,
                opts,
                access,
                &mut budget,
                &mut report,
            )
            .instrument(info_span!("stream", stream = %stream))
            .await;
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            if report.outcome == FetchOutcome::Paused {
                break;
            }
        }
    }
    let spent = deps.directory.requests_sent(tenant) - requests_before;
    deps.sync
        .runs
        .update_run(tenant, &run_id, &RunUpdate::AddGraphRequests(spent))
        .await?;
    if let Err(e) = result {
        record_failure(deps, tenant, &run_id, &e).await;
        return Err(e);
    }

    if report.outcome != FetchOutcome::Paused {
        // Reconcile may have applied everything already; whoever is last commits.
        for stream in Stream::ALL {
            try_commit(&deps.sync, tenant, stream).await?;
        }
        if let Some(run) = deps.sync.runs.get_run(tenant, &run_id).await?
            && run.users.committed
            && run.groups.committed
        {
            report.outcome = FetchOutcome::Committed;
        }
    }
    info!(
        tenant = %tenant,
        run_id = %run_id,
        pages = report.pages_enqueued,
        graph_requests = spent,
        outcome = ?report.outcome,
        "fetch finished"
    );
    Ok(report)
}

/// A page was read, so the app's token works: a connection that needed reauthorization is
/// Connected again, and the run's notes say so.
async fn note_access_restored(deps: &FetchDeps, tenant: &TenantId, run_id: &str) {
    let retry = match clear_reauthorization(deps.connections.as_ref(), tenant).await {
        Ok(Some(retry)) => retry,
        Ok(None) => return,
        Err(e) => {
            warn!(tenant = %tenant, error = %e, "could not clear the reauthorization flag");
            return;
        }
    };
    let since = retry
        .since
        .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let note = format!(
        "Access to the directory works again: the connection needed reauthorization{since} ({} failed attempt(s)) and is connected again; syncing continues on its schedule.",
        retry.attempts
    );
    if let Err(e) = deps
        .sync
        .runs
        .update_run(tenant, run_id, &RunUpdate::Note(note))
        .await
    {
        warn!(tenant = %tenant, run_id = %run_id, error = %e, "could not note the restored access");
    }
}

/// Write the failure into the activity log, in plain words, and tell the host product. The
/// round stays at its checkpoint; the next fetch continues it under a new run. A token refused
/// because consent was revoked or a policy blocks the app quarantines the connection: the
/// scheduler retries it with growing intervals, a manual sync tries at once.
/// The failure itself is logged by the caller, which decides what it means (retry, drop, tell
/// the person who asked).
async fn record_failure(deps: &FetchDeps, tenant: &TenantId, run_id: &str, e: &SyncError) {
    let flagged = match e {
        SyncError::Directory(de) => {
            match mark_needs_reauthorization(
                deps.connections.as_ref(),
                tenant,
                de,
                deps.sync.clock.now(),
            )
            .await
            {
                Ok(c) => c,
                Err(se) => {
                    warn!(tenant = %tenant, error = %se, "could not mark the connection for reauthorization");
                    None
                }
            }
        }
        _ => None,
    };
    let mut error = plain_words(e);
    if let Some(ConnectionStatus::NeedsReauthorization { retry, .. }) = flagged.map(|c| c.status)
        && let Some(next) = retry.next_attempt_at
    {
        error.push_str(&format!(
            " Syncing is paused until then: the next automatic attempt is at {} (failed attempts so far: {}), and a manual sync tries at once.",
            next.format("%Y-%m-%d %H:%M UTC"),
            retry.attempts
        ));
    }
    let finish = RunUpdate::Finish {
        status: RunStatus::Failed {
            error: error.clone(),
        },
        at: deps.sync.clock.now(),
    };
    if let Err(le) = deps.sync.runs.update_run(tenant, run_id, &finish).await {
        warn!(tenant = %tenant, run_id = %run_id, error = %le, "could not record the failed run");
    }
    let account = super::commit::run_account(&deps.sync, tenant).await;
    let event = ChangeEvent::new(
        tenant,
        run_id,
        crate::committed::RUN_FINISHED,
        ChangeKind::SyncFailed {
            run_id: run_id.to_owned(),
            error,
        },
    )
    .account(account)
    .at(deps.sync.clock.now());
    if let Err(ee) = deps.sync.events.publish(&[event]).await {
        warn!(tenant = %tenant, error = %ee, "could not publish sync failure");
    }
}

/// A run starts reading: best effort (the run record is the truth). A run recorded before
/// (by "sync now") is announced by the fetch that starts reading it; announcing it again
/// gives the same event id.
async fn announce_start(deps: &FetchDeps, run: &SyncRun) {
    let tenant = &run.tenant_id;
    let account = super::commit::run_account(&deps.sync, tenant).await;
    let event = ChangeEvent::new(
        tenant,
        run.run_id.clone(),
        crate::committed::RUN_STARTED,
        ChangeKind::SyncStarted {
            run_id: run.run_id.clone(),
            trigger: run.trigger.as_str().to_owned(),
        },
    )
    .account(account)
    .at(run.started_at);
    if let Err(e) = deps.sync.events.publish(&[event]).await {
        warn!(tenant = %tenant, error = %e, "could not publish the start of a sync");
    }
}

/// What an administrator reads in the activity log.
pub fn plain_words(e: &SyncError) -> String {
    match e {
        SyncError::Directory(DirectoryError::Throttled { .. }) => {
            "Microsoft Graph is throttling requests for this directory; the sync will resume from where it stopped on the next run.".to_owned()
        }
        SyncError::Directory(de @ DirectoryError::Transient { .. }) => format!(
            "The directory did not answer ({de}{}); nothing was deactivated and the sync will resume from where it stopped.",
            de.root_cause().map(|c| format!(": {c}")).unwrap_or_default()
        ),
        SyncError::Directory(DirectoryError::NeedsReauthorization { code }) => format!(
            "The directory no longer grants access to the app: {}. An administrator of the tenant must consent again; no synced user was changed.",
            super::connect::reauthorization_reason(code)
        ),
        SyncError::Directory(de @ DirectoryError::Misconfigured { .. }) => format!(
            "The app's configuration does not match this directory: {de}. Nothing was deactivated, and the connection is not flagged for reauthorization: the next sync after the configuration is fixed works."
        ),
        SyncError::Directory(de @ DirectoryError::UnusableLink { .. }) => format!(
            "Microsoft Graph returned a link that was not followed: {de} (the app's token is only sent to the configured host). Set the Graph URL to the host the directory's links use. Nothing was deactivated."
        ),
        SyncError::Directory(DirectoryError::InsufficientPrivileges { permission }) => format!(
            "The app is missing a permission{}. Grant it in the Entra admin center and consent again.",
            permission.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
        ),
        other if other.is_retryable() => format!(
            "The sync stopped: {other}. Nothing was deactivated; it resumes on the next run."
        ),
        other => format!(
            "The sync stopped: {other}. Nothing was deactivated. This does not go away by itself: the next run fails the same way until it is fixed."
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn fetch_stream(
    deps: &FetchDeps,
    tenant: &TenantId,
    stream: Stream,
    loaded: Option<(CursorRecord, Revision)>,
    run_id: &str,
    opts: &FetchOptions,
    access: &AccessCheck,
    budget: &mut Option<u32>,
    report: &mut FetchReport,
) -> Result<(), SyncError> {
    let (mut record, mut rev) = match loaded {
        Some((r, rev)) => (r, Some(rev)),
        None => (CursorRecord::default(), None),
    };
    // A requested full read always starts one, abandoning a round in progress (whatever
    // wedged it): its pages are ignored from the new cycle on.
    if opts.force_full && !matches!(record.state, CursorState::NeedsFull { .. }) {
        record = record.require_full(FullReason::Requested);
    }
    let mut resynced = false;
    // The next page's answer, requested while the previous page was enqueued and checkpointed
    // (the wire stays busy; the checkpoint order does not change: a page is still enqueued,
    // then recorded, before the cursor moves past it). Used only if the cursor asks for that
    // very request.
    let mut prefetched: Option<(PageRequest, Result<FetchedPage, DirectoryError>)> = None;
    loop {
        let (next, fresh) = record.begin_round(run_id);
        if fresh {
            rev = Some(
                deps.sync
                    .cursors
                    .save_cursor(tenant, stream, &next, rev)
                    .await?,
            );
        }
        record = next;
        let CursorState::InRound {
            cycle,
            ref run_id,
            mode,
            ref next,
            next_page,
            reserved,
            ..
        } = record.state
        else {
            // Applying: every page is already enqueued.
            return Ok(());
        };
        if *budget == Some(0) {
            report.outcome = FetchOutcome::Paused;
            return Ok(());
        }
        let run_id = run_id.clone();
        let request = next.request();
        let fetched = match prefetched.take() {
            Some((asked, answer)) if asked == request => answer,
            _ => deps.directory.fetch_page(tenant, stream, &request).await,
        };
        let page = match fetched {
            Ok(p) => p,
            // A link that cannot be followed (a Graph URL configured with another host form
            // than the stored links, `localhost` for `127.0.0.1`): abandon the round for a
            // full one from the configured host, as after an expired token.
            Err(e @ DirectoryError::UnusableLink { .. }) if !resynced => {
                warn!(tenant = %tenant, stream = %stream, error = %e, "delta link cannot be followed; starting a full round");
                resynced = true;
                report.resyncs += 1;
                let note = format!(
                    "The {stream} round was abandoned and the whole directory is read again: {e} (the app's token is only sent to the configured host). Nothing is deactivated before that read is complete."
                );
                deps.sync
                    .runs
                    .update_run(tenant, &run_id, &RunUpdate::Note(note))
                    .await?;
                record = record.require_full(FullReason::LinkUnusable);
                rev = Some(
                    deps.sync
                        .cursors
                        .save_cursor(tenant, stream, &record, rev)
                        .await?,
                );
                continue;
            }
            Err(DirectoryError::ResyncRequired { code }) if !resynced => {
                warn!(tenant = %tenant, stream = %stream, code = %code, "delta token rejected; starting a full round");
                resynced = true;
                report.resyncs += 1;
                record = record.require_full(FullReason::TokenExpired);
                rev = Some(
                    deps.sync
                        .cursors
                        .save_cursor(tenant, stream, &record, rev)
                        .await?,
                );
                continue;
            }
            // The checkpoint stays where it is: a later call resumes, nothing is deactivated.
            Err(e) => return Err(e.into()),
        };
        report.pages_read += 1;
        access.page_read(deps, tenant, &run_id).await;
        let last = matches!(page.link, PageLink::Delta(_));
        // Numbers a crashed earlier attempt at this page reserved come first, as empty pages
        // (an old part still queued under the same number is applied or deduplicated beside
        // its filler; either way the number counts once). The page itself follows them.
        let first = next_page.saturating_add(reserved);
        let msg = PageMessage {
            tenant_id: tenant.clone(),
            run_id: run_id.clone(),
            cycle,
            page_seq: first,
            mode,
            items: page.items,
        };
        // A page too large for one queue message becomes consecutive page numbers; the
        // checkpoint below advances past all of them, so "every page applied" still counts
        // exactly what was enqueued.
        let parts = match deps.queue.max_message_bytes() {
            Some(max) => msg.split_to_fit(max),
            None => vec![msg],
        };
        let mut messages: Vec<PageMessage> = (next_page..first)
            .map(|page_seq| PageMessage {
                tenant_id: tenant.clone(),
                run_id: run_id.clone(),
                cycle,
                page_seq,
                mode,
                items: PageItems::empty(stream),
            })
            .collect();
        messages.extend(parts);
        let parts = u32::try_from(messages.len()).unwrap_or(u32::MAX).max(1);
        let last_seq = next_page.saturating_add(parts - 1);
        // A queue that splits pages: reserve the numbers before enqueueing. If this fetch dies
        // after enqueueing some, the re-read page may split into fewer parts; without the
        // reservation its parts and the next page's would reuse numbers of the old parts, and
        // an old part sharing a (cycle, page) version with a newer one could be applied in its
        // place (and count for it, committing the round early). A queue without a size limit
        // never splits, so a re-read page lands on its one number again and needs none.
        if parts > 1 || deps.queue.max_message_bytes().is_some() {
            let Some(reserving) = record.reserve(parts) else {
                return Err(SyncError::InvalidInput(
                    "cursor left the round while fetching".to_owned(),
                ));
            };
            rev = Some(
                deps.sync
                    .cursors
                    .save_cursor(tenant, stream, &reserving, rev)
                    .await?,
            );
            record = reserving;
        }
        if let Some(b) = budget.as_mut() {
            *b = b.saturating_sub(1);
        }
        let advanced = match &page.link {
            PageLink::Next(url) => record.checkpoint_next_by(url.clone(), parts),
            PageLink::Delta(url) => record.checkpoint_last_by(url.clone(), parts),
        };
        let Some(advanced) = advanced else {
            return Err(SyncError::InvalidInput(
                "cursor left the round while fetching".to_owned(),
            ));
        };
        // Enqueue, record, checkpoint: in this order, as before.
        let bookkeeping = async {
            deps.queue.enqueue(messages).await?;
            deps.sync
                .runs
                .update_run(
                    tenant,
                    &run_id,
                    &RunUpdate::PageFetched {
                        stream,
                        cycle,
                        mode,
                        last,
                        page_seq: last_seq,
                    },
                )
                .await?;
            let saved = deps
                .sync
                .cursors
                .save_cursor(tenant, stream, &advanced, rev)
                .await?;
            Ok::<_, SyncError>(saved)
        };
        // Meanwhile the next page is asked for, when there is one and the budget allows it.
        let ahead = match &page.link {
            PageLink::Next(url) if *budget != Some(0) => Some(PageRequest::Link(url.clone())),
            _ => None,
        };
        let saved = match ahead {
            Some(asked) => {
                let (saved, answer) = futures::join!(
                    bookkeeping,
                    deps.directory.fetch_page(tenant, stream, &asked)
                );
                prefetched = Some((asked, answer));
                saved?
            }
            None => bookkeeping.await?,
        };
        report.pages_enqueued += parts;
        rev = Some(saved);
        record = advanced;
        if last {
            return Ok(());
        }
    }
}
