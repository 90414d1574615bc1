//! The convergence harness (issue 7; the guarantees it checks are in docs/reliability.md).
//!
//! For any generated directory history, synced while faults are injected, the stored state
//! equals what one clean full sync of the final directory produces; no older replay ever
//! overwrites newer state; no write crosses tenants.
//!
//! Each case: two tenants of one emulator (5-40 users, 2-8 groups, pages of 2-7 objects so
//! large groups split across pages) synced into one store through fault-injecting ports, over
//! 1-3 rounds of seeded directory churn (creates, updates, disables, soft deletes, restores,
//! purges, manager and membership changes, group creates and deletes). Faults: 429 storms
//! (a `Retry-After` of 0 the client honours inline, or one longer than the client's policy
//! that surfaces as `Throttled`), 5xx, dropped connections, expired / 410 / `resyncRequired`
//! delta tokens, the emulator clock moved past the 7-day token lifetime (mid-round too),
//! worker crashes before or after any store or queue call, pages delivered twice, out of order
//! and late (kept back into later rounds), and fetches paused by a page budget.
//!
//! `ENTRA_SYNC_SOAK_CASES=N` runs N cases instead of the default 1,000. Failing cases are
//! persisted to `tests/proptest-regressions/convergence.txt` and replayed first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use entra_sync_core::cursor::CursorState;
use entra_sync_core::memory::{CollectingEvents, CollectingQueue, ManualClock, MemoryStore};
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryGroup, DirectoryUser, MemberType, Stream,
    TenantId,
};
use entra_sync_core::page::PageMessage;
use entra_sync_core::ports::{ConnectionStore, CursorStore, Secret};
use entra_sync_core::services::{
    FetchOptions, FetchOutcome, ReconcileOutcome, reconcile_page, run_fetch,
};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, RouteMatch, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_local::runtime::{Export, export_mirror};
use entra_sync_local::verify::compare;
use entra_sync_tests::faulty::{Audit, Crash, Crashes, FaultyQueue, FaultyStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};

// ---------------------------------------------------------------------------------------------
// Shared, long-lived parts: one runtime, a few emulators (page shapes differ per emulator), one
// Graph client each. Cases add fresh tenants to them.

struct Env {
    emulator: Emulator,
    client: Arc<GraphClient>,
}

struct Shared {
    rt: tokio::runtime::Runtime,
    envs: Vec<Env>,
}

fn emulator_configs() -> Vec<EmulatorConfig> {
    let base = EmulatorConfig::default();
    vec![
        EmulatorConfig {
            user_page_size: 3,
            group_page_size: 2,
            member_slice: 4,
            ..base.clone()
        },
        EmulatorConfig {
            user_page_size: 5,
            group_page_size: 3,
            member_slice: 7,
            empty_page_every: Some(3),
            ..base.clone()
        },
        EmulatorConfig {
            user_page_size: 7,
            group_page_size: 4,
            member_slice: 5,
            duplicate_every: Some(4),
            ..base
        },
    ]
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let envs = rt.block_on(async {
            let mut envs = Vec::new();
            for config in emulator_configs() {
                let emulator = Emulator::start(config).await.expect("emulator");
                let app = emulator.app();
                let mut gc = GraphConfig::new(
                    url::Url::parse(&emulator.graph_base_url()).unwrap(),
                    url::Url::parse(&emulator.login_base_url()).unwrap(),
                    app.client_id.clone(),
                    Secret::new(app.client_secret.clone()),
                );
                // Real retries, no real waiting: backoff in milliseconds, and a Retry-After
                // above half a second goes back to the caller as `Throttled` at once.
                gc.retry = RetryPolicy {
                    max_attempts: 4,
                    base_delay: Duration::from_millis(1),
                    max_delay: Duration::from_millis(4),
                    max_retry_after: Duration::from_millis(500),
                    ..RetryPolicy::default()
                };
                gc.request_timeout = Duration::from_secs(10);
                let client = Arc::new(GraphClient::new(gc).expect("client"));
                envs.push(Env { emulator, client });
            }
            envs
        });
        Shared { rt, envs }
    })
}

// ---------------------------------------------------------------------------------------------
// Figures: what the harness did, for docs/reliability.md.

#[derive(Default)]
struct Stats {
    cases: AtomicU64,
    rounds: AtomicU64,
    tenants_synced: AtomicU64,
    fetch_calls: AtomicU64,
    fetch_failures: AtomicU64,
    fetch_paused: AtomicU64,
    resyncs: AtomicU64,
    deliveries: AtomicU64,
    concurrent_steps: AtomicU64,
    delivery_failures: AtomicU64,
    duplicates: AtomicU64,
    late: AtomicU64,
    out_of_order: AtomicU64,
    abandoned: AtomicU64,
    crash_before: AtomicU64,
    crash_after: AtomicU64,
    throttle_inline: AtomicU64,
    throttle_surfaced: AtomicU64,
    server_error: AtomicU64,
    dropped_connection: AtomicU64,
    expire_tokens: AtomicU64,
    resync_gone: AtomicU64,
    resync_required: AtomicU64,
    clock_past_7_days: AtomicU64,
    graph_faults_fired: AtomicU64,
    writes_landed: AtomicU64,
    divergences: AtomicU64,
}

fn stats() -> &'static Stats {
    static STATS: OnceLock<Stats> = OnceLock::new();
    STATS.get_or_init(Stats::default)
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// The generated case.

#[derive(Clone, Copy, Debug)]
enum GraphFaultKind {
    /// 429 with `Retry-After: 0`: the client waits (0 s) and retries inline.
    ThrottleInline,
    /// 429 with a `Retry-After` above the client's limit: `Throttled` reaches fetch.
    ThrottleSurfaced,
    ServerError(u16),
    DropConnection,
    ExpireDeltaTokens,
    ResyncGone,
    ResyncRequired,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    UsersDelta,
    GroupsDelta,
    Token,
    Any,
}

#[derive(Clone, Debug)]
struct GraphFault {
    target: Target,
    kind: GraphFaultKind,
    after: u32,
    times: u32,
}

#[derive(Clone, Debug)]
struct RoundSpec {
    /// Seeded churn per tenant: (seed, changes).
    churn: [(u64, usize); 2],
    graph_faults: Vec<GraphFault>,
    /// Store/queue call numbers (counted from the start of the round) that crash.
    crashes: Vec<(u64, bool)>,
    /// Move the emulator clock 8 days on at this driver step.
    clock_jump_at: Option<u8>,
    /// Percent chance a delivered page is delivered again later in the round.
    dup_pct: u8,
    /// Percent chance a delivered page is also kept back for a later round.
    late_pct: u8,
    /// Page budget per fetch call (Lambda time budget).
    max_pages: Option<u32>,
}

#[derive(Clone, Debug)]
struct TenantShape {
    seed: u64,
    users: usize,
    groups: usize,
}

#[derive(Clone, Debug)]
struct CaseSpec {
    env: usize,
    tenants: [TenantShape; 2],
    rounds: Vec<RoundSpec>,
    /// Seeds the delivery order.
    order_seed: u64,
}

fn graph_fault() -> impl Strategy<Value = GraphFault> {
    let target = prop_oneof![
        4 => Just(Target::UsersDelta),
        4 => Just(Target::GroupsDelta),
        1 => Just(Target::Token),
        2 => Just(Target::Any),
    ];
    let kind = prop_oneof![
        3 => Just(GraphFaultKind::ThrottleInline),
        2 => Just(GraphFaultKind::ThrottleSurfaced),
        2 => prop_oneof![Just(500u16), Just(502), Just(503), Just(504)]
            .prop_map(GraphFaultKind::ServerError),
        2 => Just(GraphFaultKind::DropConnection),
        1 => Just(GraphFaultKind::ExpireDeltaTokens),
        1 => Just(GraphFaultKind::ResyncGone),
        1 => Just(GraphFaultKind::ResyncRequired),
    ];
    (target, kind, 0u32..12, 1u32..=6).prop_map(|(target, kind, after, times)| GraphFault {
        target,
        kind,
        after,
        times,
    })
}

fn round_spec() -> impl Strategy<Value = RoundSpec> {
    (
        [(any::<u64>(), 0usize..=25), (any::<u64>(), 0usize..=25)],
        prop::collection::vec(graph_fault(), 0..=4),
        prop::collection::vec((1u64..=300, any::<bool>()), 0..=4),
        prop::option::weighted(0.15, 0u8..40),
        0u8..=40,
        0u8..=25,
        prop::option::weighted(0.3, 1u32..=4),
    )
        .prop_map(
            |(churn, graph_faults, crashes, clock_jump_at, dup_pct, late_pct, max_pages)| {
                RoundSpec {
                    churn,
                    graph_faults,
                    crashes,
                    clock_jump_at,
                    dup_pct,
                    late_pct,
                    max_pages,
                }
            },
        )
}

fn tenant_shape() -> impl Strategy<Value = TenantShape> {
    (any::<u64>(), 5usize..=40, 2usize..=8).prop_map(|(seed, users, groups)| TenantShape {
        seed,
        users,
        groups,
    })
}

fn case_spec() -> impl Strategy<Value = CaseSpec> {
    (
        0usize..emulator_configs().len(),
        [tenant_shape(), tenant_shape()],
        prop::collection::vec(round_spec(), 1..=3),
        any::<u64>(),
    )
        .prop_map(|(env, tenants, rounds, order_seed)| CaseSpec {
            env,
            tenants,
            rounds,
            order_seed,
        })
}

/// SplitMix64: a tiny seeded generator for delivery decisions (reproducible from the case).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }
    fn pct(&mut self, p: u8) -> bool {
        self.next() % 100 < u64::from(p)
    }
}

// ---------------------------------------------------------------------------------------------
// One case.

/// What the mirror says exists: present users, groups and edges (versions and tombstones are
/// bookkeeping and differ between histories by design).
#[derive(Debug, PartialEq, Eq)]
struct Projection {
    users: BTreeMap<String, DirectoryUser>,
    groups: BTreeMap<String, DirectoryGroup>,
    edges: BTreeSet<(String, String, MemberType)>,
}

fn project(e: &Export) -> Projection {
    Projection {
        users: e
            .users
            .iter()
            .filter(|u| u.presence.is_present())
            .map(|u| (u.user.id.clone(), u.user.clone()))
            .collect(),
        groups: e
            .groups
            .iter()
            .filter(|g| g.presence.is_present())
            .map(|g| (g.group.id.clone(), g.group.clone()))
            .collect(),
        edges: e
            .memberships
            .iter()
            .filter(|m| m.present)
            .map(|m| {
                (
                    m.group_id.clone(),
                    m.member.id.clone(),
                    m.member.member_type,
                )
            })
            .collect(),
    }
}

fn connection(tenant: &TenantId) -> Connection {
    Connection {
        tenant_id: tenant.clone(),
        account_id: AccountId("acct".into()),
        label: "test".into(),
        tenant_name: None,
        verified_domains: vec![],
        status: ConnectionStatus::Connected,
        connected_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        granted_permissions: Default::default(),
    }
}

async fn all_idle(store: &dyn CursorStore, tenant: &TenantId) -> bool {
    for stream in Stream::ALL {
        match store.load_cursor(tenant, stream).await.unwrap() {
            Some((r, _)) if matches!(r.state, CursorState::Idle { .. }) => {}
            _ => return false,
        }
    }
    true
}

/// One clean full sync of the directory as it is now, into a fresh store, no faults.
async fn clean_full_sync(client: &Arc<GraphClient>, tenant: &TenantId) -> Export {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(CollectingQueue::new());
    let events = Arc::new(CollectingEvents::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    store.put_connection(&connection(tenant)).await.unwrap();
    let fetch = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock.clone())
        .fetch(client.clone(), queue.clone());
    let reconcile = DepsBuilder::on(&store)
        .events(events)
        .clock(clock)
        .reconcile();
    run_fetch(&fetch, tenant, &FetchOptions::default())
        .await
        .expect("clean full sync");
    for m in queue.drain() {
        reconcile_page(&reconcile, &m).await.unwrap();
    }
    assert!(all_idle(store.as_ref(), tenant).await, "clean sync commits");
    export_mirror(store.as_ref(), tenant).await.unwrap()
}

fn arm_graph_faults(emulator: &Emulator, faults: &[GraphFault]) {
    let s = stats();
    for f in faults {
        let route = match f.target {
            Target::UsersDelta => RouteMatch::UsersDelta,
            Target::GroupsDelta => RouteMatch::GroupsDelta,
            Target::Token => RouteMatch::Token,
            Target::Any => RouteMatch::Any,
        };
        let kind = match f.kind {
            GraphFaultKind::ThrottleInline => {
                bump(&s.throttle_inline);
                FaultKind::Throttle {
                    retry_after_secs: 0,
                }
            }
            GraphFaultKind::ThrottleSurfaced => {
                bump(&s.throttle_surfaced);
                FaultKind::Throttle {
                    retry_after_secs: 30,
                }
            }
            GraphFaultKind::ServerError(status) => {
                bump(&s.server_error);
                FaultKind::Unavailable {
                    status,
                    retry_after_secs: if status == 503 { Some(0) } else { None },
                }
            }
            GraphFaultKind::DropConnection => {
                bump(&s.dropped_connection);
                FaultKind::DropConnection
            }
            GraphFaultKind::ExpireDeltaTokens => {
                bump(&s.expire_tokens);
                FaultKind::ExpireDeltaTokens
            }
            GraphFaultKind::ResyncGone => {
                bump(&s.resync_gone);
                FaultKind::ResyncGone
            }
            GraphFaultKind::ResyncRequired => {
                bump(&s.resync_required);
                FaultKind::ResyncRequired
            }
        };
        emulator
            .faults()
            .inject(Fault::new(route, kind).after(f.after).times(f.times.max(1)));
    }
}

static TENANT_NO: AtomicU64 = AtomicU64::new(0);
static FIRST_FAILURE: AtomicU64 = AtomicU64::new(0);

/// Driver steps per round before the harness calls it a liveness failure.
const MAX_STEPS: usize = 400;

async fn run_case(case: &CaseSpec) -> Result<(), TestCaseError> {
    let s = stats();
    let env = &shared().envs[case.env];
    let emu = &env.emulator;
    emu.faults().clear();
    let injected_before = emu.counters().injected_faults;

    let tenants: Vec<TenantId> = case
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut spec = TenantSpec::new(t.seed, t.users, t.groups);
            // A unique name keeps initial domains unique without the emulator's renaming.
            spec.name = format!("T{}x{i}", TENANT_NO.fetch_add(1, Ordering::Relaxed));
            spec.domains = Vec::new();
            spec.large_groups = 1.min(t.groups);
            spec.nested_groups = 1;
            TenantId::new(emu.add_tenant(&spec).tenant_id)
        })
        .collect();

    let inner = Arc::new(MemoryStore::new());
    let crashes = Arc::new(Crashes::new());
    let audit = Arc::new(Audit::new());
    let store = Arc::new(FaultyStore::new(
        inner.clone(),
        crashes.clone(),
        audit.clone(),
    ));
    let collected = Arc::new(CollectingQueue::new());
    let queue = Arc::new(FaultyQueue::new(
        collected.clone(),
        crashes.clone(),
        audit.clone(),
    ));
    let events = Arc::new(CollectingEvents::new());
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
    ));
    for t in &tenants {
        inner.put_connection(&connection(t)).await.unwrap();
    }
    let fetch = DepsBuilder::on(&store)
        .events(events.clone())
        .clock(clock.clone())
        .fetch(env.client.clone(), queue);
    let reconcile = DepsBuilder::on(&store)
        .events(events)
        .clock(clock.clone())
        .reconcile();

    let mut rng = Rng(case.order_seed);
    // Copies of delivered pages kept back for later rounds.
    let mut late: Vec<PageMessage> = Vec::new();

    for (round_no, round) in case.rounds.iter().enumerate() {
        bump(&s.rounds);
        // The directory changes (the first round syncs the generated tenant as it is).
        if round_no > 0 {
            for (i, t) in tenants.iter().enumerate() {
                let (seed, n) = round.churn[i];
                if n > 0 {
                    emu.tenant(t.as_str()).unwrap().random_churn(seed, n);
                }
            }
        }
        arm_graph_faults(emu, &round.graph_faults);
        crashes.arm(
            round
                .crashes
                .iter()
                .map(|&(n, after)| (n, if after { Crash::After } else { Crash::Before })),
        );
        let opts = FetchOptions {
            max_pages: round.max_pages,
            ..FetchOptions::default()
        };

        let mut fetch_done = [false, false];
        let mut pool: Vec<PageMessage> = Vec::new();
        let mut converged = false;
        for step in 0..MAX_STEPS {
            if round.clock_jump_at == Some(u8::try_from(step).unwrap_or(u8::MAX)) {
                bump(&s.clock_past_7_days);
                emu.advance_clock(Duration::from_secs(8 * 24 * 3600));
                clock.advance(chrono::Duration::days(8));
            }
            // Fetch whichever tenant still has reading (or committing) to do, while up to
            // three workers reconcile pages of the pool, all interleaved call by call.
            let fetching: Vec<usize> = {
                let first = rng.below(2);
                [first, 1 - first]
                    .into_iter()
                    .filter(|i| !fetch_done[*i])
                    .take(1 + rng.below(2))
                    .collect()
            };
            let mut batch: Vec<PageMessage> = Vec::new();
            for _ in 0..(1 + rng.below(3)) {
                if pool.is_empty() {
                    break;
                }
                let idx = rng.below(pool.len());
                if idx != 0 {
                    bump(&s.out_of_order);
                }
                batch.push(pool.swap_remove(idx));
            }
            if batch.len() > 1 || (!batch.is_empty() && !fetching.is_empty()) {
                bump(&s.concurrent_steps);
            }
            let fetches = futures::future::join_all(fetching.iter().map(|&i| {
                let (fetch, opts, t) = (&fetch, &opts, &tenants[i]);
                Audit::scope(
                    t.clone(),
                    async move { (i, run_fetch(fetch, t, opts).await) },
                )
            }));
            let deliveries = futures::future::join_all(batch.into_iter().map(|msg| {
                let reconcile = &reconcile;
                let t = msg.tenant_id.clone();
                Audit::scope(t, async move {
                    let r = reconcile_page(reconcile, &msg).await;
                    (msg, r)
                })
            }));
            let (fetched, delivered) = futures::join!(fetches, deliveries);
            for (i, r) in fetched {
                bump(&s.fetch_calls);
                match r {
                    Ok(report) => {
                        add(&s.resyncs, u64::from(report.resyncs));
                        if report.outcome == FetchOutcome::Paused {
                            bump(&s.fetch_paused);
                        } else {
                            fetch_done[i] = true;
                        }
                    }
                    Err(_) => bump(&s.fetch_failures),
                }
            }
            for (msg, r) in delivered {
                bump(&s.deliveries);
                match r {
                    Ok(outcome) => {
                        if outcome == ReconcileOutcome::Abandoned {
                            bump(&s.abandoned);
                        }
                        if rng.pct(round.late_pct) {
                            bump(&s.late);
                            late.push(msg.clone());
                        }
                        if rng.pct(round.dup_pct) {
                            bump(&s.duplicates);
                            pool.push(msg);
                        }
                    }
                    Err(_) => {
                        bump(&s.delivery_failures);
                        pool.push(msg);
                    }
                }
            }
            pool.extend(collected.drain());
            // Now and then a page from an earlier round arrives.
            if !late.is_empty() && round_no > 0 && rng.pct(20) {
                let msg = late.swap_remove(rng.below(late.len()));
                let t = msg.tenant_id.clone();
                let r = Audit::scope(t, reconcile_page(&reconcile, &msg)).await;
                if r.is_err() {
                    late.push(msg);
                }
            }
            if pool.is_empty() && fetch_done.iter().all(|d| *d) {
                let mut idle = true;
                for (i, t) in tenants.iter().enumerate() {
                    if !all_idle(inner.as_ref(), t).await {
                        // A crash between the last page and the commit: fetch again commits.
                        fetch_done[i] = false;
                        idle = false;
                    }
                }
                if idle {
                    converged = true;
                    break;
                }
            }
        }
        if !converged {
            let mut states = Vec::new();
            for t in &tenants {
                for stream in Stream::ALL {
                    let c = inner.load_cursor(t, stream).await.unwrap();
                    states.push(format!("{t}/{stream}: {c:?}"));
                }
                let runs = {
                    use entra_sync_core::ports::RunStore;
                    inner.list_runs(t, 3).await.unwrap()
                };
                states.push(format!("{t} runs: {runs:?}"));
            }
            prop_assert!(
                false,
                "round {round_no} did not finish within {MAX_STEPS} steps: fetch done {fetch_done:?}, \
                 {} pages in flight; {:#?}",
                pool.len(),
                states
            );
        }
    }
    crashes.disarm();
    emu.faults().clear();
    add(
        &s.graph_faults_fired,
        emu.counters()
            .injected_faults
            .saturating_sub(injected_before),
    );

    // Every page kept back arrives at last, after everything else.
    while let Some(msg) = late.pop() {
        let t = msg.tenant_id.clone();
        Audit::scope(t, reconcile_page(&reconcile, &msg))
            .await
            .unwrap();
    }
    let (before, after) = crashes.fired();
    add(&s.crash_before, before);
    add(&s.crash_after, after);
    add(&s.writes_landed, audit.counts().0);

    // (2) and (3): no older replay overwrote newer state, no call crossed tenants.
    let violations = audit.violations();
    prop_assert!(violations.is_empty(), "audit violations: {:#?}", violations);
    // (1) The store equals the directory, and equals one clean full sync of it.
    for t in &tenants {
        bump(&s.tenants_synced);
        let stored = export_mirror(inner.as_ref(), t).await.unwrap();
        let snapshot = emu.tenant(t.as_str()).unwrap().snapshot();
        let v = compare(&stored, &snapshot);
        if !v.matches() {
            bump(&s.divergences);
        }
        prop_assert!(
            v.matches(),
            "tenant {t}: store differs from the directory: {:?}",
            v.differences
        );
        let clean = clean_full_sync(&env.client, t).await;
        let (got, want) = (project(&stored), project(&clean));
        if got != want {
            bump(&s.divergences);
        }
        prop_assert_eq!(got, want, "tenant {} differs from a clean full sync", t);
    }
    bump(&s.cases);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ENTRA_SYNC_SOAK_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn any_history_synced_under_any_faults_converges_to_a_clean_full_sync() {
    let started = Instant::now();
    let config = Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/convergence.txt",
        ))),
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&case_spec(), |case| {
        let r = shared().rt.block_on(run_case(&case));
        if r.is_err() {
            // The first failing case, counted among all cases run so far (before shrinking).
            let _ = FIRST_FAILURE.compare_exchange(
                0,
                get(&stats().cases) + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        r
    });
    let s = stats();
    eprintln!(
        "convergence: {} cases ({} rounds, {} tenant syncs) in {:.1?}; divergences: {}\n\
         fetch calls {} (failed {}, paused {}), resyncs {}, deliveries {} (failed {}), \
         steps with concurrent workers {}, \
         duplicates {}, late {}, out of order {}, abandoned-round pages {}\n\
         crashes before {} / after {} a store or queue call; graph faults armed: 429 inline {}, \
         429 surfaced {}, 5xx {}, dropped connections {}, expired tokens {}, 410 {}, \
         resyncRequired {}, clock +8 days {}; graph faults fired {}; mirror writes landed {}",
        get(&s.cases),
        get(&s.rounds),
        get(&s.tenants_synced),
        started.elapsed(),
        get(&s.divergences),
        get(&s.fetch_calls),
        get(&s.fetch_failures),
        get(&s.fetch_paused),
        get(&s.resyncs),
        get(&s.deliveries),
        get(&s.delivery_failures),
        get(&s.concurrent_steps),
        get(&s.duplicates),
        get(&s.late),
        get(&s.out_of_order),
        get(&s.abandoned),
        get(&s.crash_before),
        get(&s.crash_after),
        get(&s.throttle_inline),
        get(&s.throttle_surfaced),
        get(&s.server_error),
        get(&s.dropped_connection),
        get(&s.expire_tokens),
        get(&s.resync_gone),
        get(&s.resync_required),
        get(&s.clock_past_7_days),
        get(&s.graph_faults_fired),
        get(&s.writes_landed),
    );
    if let Err(e) = result {
        panic!(
            "case {} failed first (then shrunk): {e}",
            get(&FIRST_FAILURE)
        );
    }
    // The harness must actually exercise its fault model, or it proves nothing.
    assert!(get(&s.cases) >= u64::from(cases()));
    for (what, n) in [
        ("crashes before a call", get(&s.crash_before)),
        ("crashes after a call", get(&s.crash_after)),
        ("fetch failures", get(&s.fetch_failures)),
        ("resyncs", get(&s.resyncs)),
        ("duplicate deliveries", get(&s.duplicates)),
        ("concurrent workers", get(&s.concurrent_steps)),
        ("late deliveries", get(&s.late)),
        ("pages of abandoned rounds", get(&s.abandoned)),
        ("graph faults fired", get(&s.graph_faults_fired)),
    ] {
        assert!(n > 0, "the harness never produced {what}");
    }
}
