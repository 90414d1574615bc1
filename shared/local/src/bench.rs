//! `entra-sync bench`: how close a sync comes to the limit Graph sets (the paging floor), and
//! how it compares with the naive way, against the emulator with per-request latency and
//! Graph's throttling budgets enforced.
//!
//! Each sync runs in a child process (`entra-sync sync --report-json`), so its wall time, CPU
//! and peak memory are the sync's alone; the emulator runs in this process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use entra_sync_core::model::TenantId;
use entra_sync_core::page::RoundMode;
use entra_sync_core::run::{RunStatus, SyncRun};
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec, ThrottleBudget};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::procstat::ProcStats;
use crate::runtime::{DataDir, LocalApp, LocalError, SyncSettings};
use crate::verify::compare;

/// What `sync --report-json` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncReport {
    pub run: SyncRun,
    pub wall_ms: u64,
    pub stats: ProcStats,
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub sizes: Vec<usize>,
    pub latency: Duration,
    /// The naive baseline runs only up to this many users (it needs one request per user).
    pub naive_max_users: usize,
    /// Parallel requests of the naive baseline (hand-written scripts use a small pool).
    pub naive_concurrency: usize,
    pub workers: usize,
    /// The `entra-sync` executable that runs each sync.
    pub exe: PathBuf,
    /// Scratch space for the syncs' data directories.
    pub work_dir: PathBuf,
    pub seed: u64,
    /// Changes before the incremental sync; `None`: 1 % of the users (at least one).
    pub churn_changes: Option<usize>,
}

/// One sync as measured.
#[derive(Clone, Debug, Default)]
pub struct SyncMeasure {
    pub mode: Option<RoundMode>,
    pub wall: Duration,
    pub graph_requests: u64,
    pub throttled: u64,
    pub writes: u64,
    pub users_pages: u64,
    pub groups_pages: u64,
    pub cpu_ms: u64,
    pub peak_rss_kib: u64,
    pub matches: bool,
    /// The circuit breaker held the run (the bench then confirms it, as an admin would).
    pub held: Option<HeldMeasure>,
}

/// A run the circuit breaker held, and its confirm.
#[derive(Clone, Debug, Default)]
pub struct HeldMeasure {
    pub run_id: String,
    /// Deactivations the hold withheld.
    pub deactivations: u64,
    /// The threshold that tripped, in words.
    pub threshold: String,
    /// `entra-sync confirm` of the run, in a child process (process start included).
    pub confirm_wall: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct NaiveMeasure {
    pub wall: Duration,
    pub requests: u64,
    pub throttled: u64,
    /// Every user and membership rewritten, as such scripts do.
    pub writes: u64,
}

#[derive(Clone, Debug)]
pub struct SizeResult {
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
    pub full: SyncMeasure,
    pub incremental_churn: SyncMeasure,
    pub churn_changes: usize,
    pub incremental_idle: SyncMeasure,
    pub naive: Option<NaiveMeasure>,
    pub latency: Duration,
    /// Reconcile alone (plan + in-memory store, one task, pages already parsed) per 1,000 users.
    pub reconcile_ms_per_1000: f64,
}

impl SizeResult {
    /// Pages of both streams one after the other, times the latency.
    pub fn floor_sequential(&self) -> Duration {
        self.latency
            * u32::try_from(self.full.users_pages + self.full.groups_pages).unwrap_or(u32::MAX)
    }
    /// The longer stream's pages times the latency: the floor when both streams are read
    /// side by side (as fetch does), since each stream's pages must be read in order.
    pub fn floor(&self) -> Duration {
        self.latency
            * u32::try_from(self.full.users_pages.max(self.full.groups_pages)).unwrap_or(u32::MAX)
    }
}

/// Graph's identity read budget for a tenant of this many users (resource units per 10 s for
/// one app in one tenant: 3,500 under 50 users, 5,000 up to 500, 8,000 above).
fn read_budget(users: usize) -> ThrottleBudget {
    let units = match users {
        0..50 => 3_500,
        50..=500 => 5_000,
        _ => 8_000,
    };
    ThrottleBudget::new(units, Duration::from_secs(10))
}

/// Run the benchmark; `progress` gets a line per step.
pub async fn run_bench(
    opts: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<Vec<SizeResult>, LocalError> {
    let mut results = Vec::new();
    for &users in &opts.sizes {
        let groups = (users / 20).max(2);
        let config = EmulatorConfig {
            latency: opts.latency,
            read_budget: Some(read_budget(users)),
            write_budget: Some(ThrottleBudget::new(3_000, Duration::from_secs(150))),
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(config)
            .await
            .map_err(|e| LocalError::Failed(format!("cannot start the emulator: {e}")))?;
        progress(&format!("{users} users: generating the tenant"));
        let info = emulator.add_tenant(&TenantSpec::new(opts.seed, users, groups));
        let handle = emulator
            .tenant(&info.tenant_id)
            .ok_or_else(|| LocalError::Failed("emulated tenant missing".into()))?;
        let memberships = handle.snapshot().memberships.len();
        let data = opts.work_dir.join(format!("bench-{users}"));
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|source| LocalError::DataDir {
                path: data.clone(),
                source,
            })?;
        }
        let tenant = TenantId::new(info.tenant_id.clone());

        progress(&format!("{users} users: full sync"));
        let full = child_sync(opts, &emulator, &tenant, &data).await?;
        let churn_changes = opts.churn_changes.unwrap_or((users / 100).max(1));
        handle.random_churn(opts.seed.wrapping_add(1), churn_changes);
        progress(&format!(
            "{users} users: incremental sync after {churn_changes} changes"
        ));
        let mut incremental_churn = child_sync(opts, &emulator, &tenant, &data).await?;
        if let Some(held) = &mut incremental_churn.held {
            // Reported, then confirmed as an admin would, so the next run starts from an
            // applied state.
            progress(&format!(
                "{users} users: the run was held ({} deactivations, {}); confirming it",
                held.deactivations, held.threshold
            ));
            held.confirm_wall = child_confirm(opts, &tenant, &data, &held.run_id).await?;
        }
        progress(&format!("{users} users: incremental sync, nothing changed"));
        let incremental_idle = child_sync(opts, &emulator, &tenant, &data).await?;

        progress(&format!("{users} users: reconcile CPU"));
        let reconcile_ms_per_1000 =
            reconcile_cpu(&emulator, &tenant, opts.latency).await? / (users.max(1) as f64 / 1000.0);

        let naive = if users <= opts.naive_max_users {
            progress(&format!("{users} users: naive baseline"));
            Some(naive_sync(opts, &emulator, &info.tenant_id).await?)
        } else {
            None
        };
        emulator.shutdown().await;
        results.push(SizeResult {
            users,
            groups,
            memberships,
            full,
            incremental_churn,
            churn_changes,
            incremental_idle,
            naive,
            latency: opts.latency,
            reconcile_ms_per_1000,
        });
    }
    Ok(results)
}

/// Milliseconds the reconcile service spends applying one full read of the tenant, with the
/// pages already fetched and parsed and an in-memory store: the planning cost alone. Runs on
/// one task with nothing else to wait for, so wall time is CPU time.
async fn reconcile_cpu(
    emulator: &Emulator,
    tenant: &TenantId,
    latency: Duration,
) -> Result<f64, LocalError> {
    use std::sync::Arc;

    use entra_sync_core::cursor::CursorRecord;
    use entra_sync_core::memory::{CollectingEvents, MemoryStore};
    use entra_sync_core::model::Stream;
    use entra_sync_core::page::{PageMessage, PageRequest};
    use entra_sync_core::ports::{CursorStore, RunStore, Secret, SystemClock};
    use entra_sync_core::run::{SyncRun, Trigger};
    use entra_sync_core::services::{SyncDeps, reconcile_page};
    use entra_sync_graph::{GraphClient, GraphConfig};

    let fail = |e: &dyn std::fmt::Display| LocalError::Failed(format!("reconcile CPU: {e}"));
    emulator.set_latency(Duration::ZERO);
    let app = emulator.app();
    let url = |s: String| url::Url::parse(&s).map_err(|e| fail(&e));
    let client = GraphClient::new(GraphConfig::new(
        url(emulator.graph_base_url())?,
        url(emulator.login_base_url())?,
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    ))
    .map_err(|e| fail(&e))?;
    let store = Arc::new(MemoryStore::new());
    let run = SyncRun::new(
        "bench".into(),
        tenant.clone(),
        Trigger::Manual,
        chrono::Utc::now(),
    );
    store.create_run(&run).await?;
    let mut messages = Vec::new();
    for stream in Stream::ALL {
        // A cursor in its first round, so reconcile accepts cycle 1.
        let (record, _) = CursorRecord::default().begin_round("bench");
        store.save_cursor(tenant, stream, &record, None).await?;
        let mut pages = std::pin::pin!(client.delta_pages(tenant, stream, PageRequest::Initial));
        let mut seq = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail(&e))?;
            messages.push(PageMessage {
                tenant_id: tenant.clone(),
                run_id: "bench".into(),
                cycle: 1,
                page_seq: seq,
                mode: RoundMode::Full,
                items: page.items,
            });
            seq += 1;
        }
    }
    emulator.set_latency(latency);
    let deps = SyncDeps::mirror_only(
        &store,
        Arc::new(CollectingEvents::new()),
        Arc::new(SystemClock),
    );
    let started = Instant::now();
    for m in &messages {
        reconcile_page(&deps, m).await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// One `entra-sync sync` in a child process, then a check of its store against the directory.
async fn child_sync(
    opts: &BenchOptions,
    emulator: &Emulator,
    tenant: &TenantId,
    data: &Path,
) -> Result<SyncMeasure, LocalError> {
    let app = emulator.app();
    let report_path = data.with_extension("report.json");
    let before = emulator.counters();
    // Each child writes its own report: never read the previous one's.
    let _ = std::fs::remove_file(&report_path);
    let status = tokio::process::Command::new(&opts.exe)
        .arg("sync")
        .args(["--tenant-id", tenant.as_str()])
        .args(["--client-id", &app.client_id])
        .args(["--graph-url", &emulator.graph_base_url()])
        .args(["--login-url", &emulator.login_base_url()])
        .arg("--data-dir")
        .arg(data)
        .args(["--workers", &opts.workers.to_string()])
        .arg("--no-progress")
        .arg("--report-json")
        .arg(&report_path)
        // The secret goes through the environment, never the command line.
        .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| LocalError::Failed(format!("cannot run {}: {e}", opts.exe.display())))?;
    // A held run exits 1 too, with its report written: read the report first.
    if !status.success() && !report_path.exists() {
        return Err(LocalError::Failed(format!(
            "the sync child failed ({status})"
        )));
    }
    let report: SyncReport =
        serde_json::from_slice(&std::fs::read(&report_path).map_err(|source| {
            LocalError::DataDir {
                path: report_path.clone(),
                source,
            }
        })?)
        .map_err(|e| LocalError::Failed(format!("bad sync report: {e}")))?;
    let held = match &report.run.status {
        RunStatus::Held { hold } => Some(HeldMeasure {
            run_id: report.run.run_id.clone(),
            deactivations: hold.deactivations,
            threshold: hold.threshold.clone(),
            confirm_wall: Duration::ZERO,
        }),
        _ => None,
    };
    if report.run.status != RunStatus::Succeeded && held.is_none() {
        return Err(LocalError::Failed(format!(
            "the sync did not succeed: {}",
            crate::run_line(&report.run, &crate::cli::Hints::new(data))
        )));
    }
    let after = emulator.counters();
    let app_local = LocalApp::open(&DataDir::new(data), &SyncSettings::default())?;
    let stored = app_local.export(tenant).await?;
    let snapshot = emulator
        .tenant(tenant.as_str())
        .ok_or_else(|| LocalError::Failed("emulated tenant missing".into()))?
        .snapshot();
    let matches = compare(&stored, &snapshot).matches();
    let run = &report.run;
    Ok(SyncMeasure {
        mode: run.users.mode,
        // The child's own measure: the sync, without process start-up.
        wall: Duration::from_millis(report.wall_ms),
        graph_requests: after.requests - before.requests,
        throttled: after.throttled_429 - before.throttled_429,
        writes: run.counts.writes,
        users_pages: run.users.pages_total.unwrap_or(run.users.pages_fetched),
        groups_pages: run.groups.pages_total.unwrap_or(run.groups.pages_fetched),
        cpu_ms: report.stats.cpu_ms,
        peak_rss_kib: report.stats.peak_rss_kib,
        matches,
        held,
    })
}

/// `entra-sync confirm RUN` in a child process: its wall time.
async fn child_confirm(
    opts: &BenchOptions,
    tenant: &TenantId,
    data: &Path,
    run_id: &str,
) -> Result<Duration, LocalError> {
    let started = Instant::now();
    let status = tokio::process::Command::new(&opts.exe)
        .args(["confirm", run_id])
        .args(["--tenant-id", tenant.as_str()])
        .args(["--by", "entra-sync bench"])
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| LocalError::Failed(format!("cannot run {}: {e}", opts.exe.display())))?;
    if !status.success() {
        return Err(LocalError::Failed(format!(
            "confirming the held run {run_id} failed ({status})"
        )));
    }
    Ok(started.elapsed())
}

/// The way hand-written scripts do it: list every user, then ask for each user's groups, and
/// rewrite everything. Retry-After is honoured so the comparison is fair.
async fn naive_sync(
    opts: &BenchOptions,
    emulator: &Emulator,
    tenant: &str,
) -> Result<NaiveMeasure, LocalError> {
    let http = reqwest::Client::new();
    let fail = |e: reqwest::Error| LocalError::Failed(format!("naive baseline: {e}"));
    let app = emulator.app();
    let before = emulator.counters();
    let started = Instant::now();
    let token: serde_json::Value = http
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            emulator.login_base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .map_err(fail)?
        .json()
        .await
        .map_err(fail)?;
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap_or_default()
    );
    let graph = emulator.graph_base_url();
    let get = |url: String| {
        let http = http.clone();
        let bearer = bearer.clone();
        async move { get_all(&http, &bearer, url).await }
    };
    let users = get(format!(
        "{graph}/v1.0/users?$top=999&$select=id,displayName,mail,userPrincipalName,accountEnabled,department"
    ))
    .await?;
    let ids: Vec<String> = users
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    let mut memberships = 0u64;
    let mut lookups = futures::stream::iter(
        ids.iter()
            .map(|id| get(format!("{graph}/v1.0/users/{id}/memberOf?$select=id"))),
    )
    .buffer_unordered(opts.naive_concurrency.max(1));
    while let Some(groups) = lookups.next().await {
        memberships += groups?.len() as u64;
    }
    let after = emulator.counters();
    Ok(NaiveMeasure {
        wall: started.elapsed(),
        requests: after.requests - before.requests,
        throttled: after.throttled_429 - before.throttled_429,
        writes: users.len() as u64 + memberships,
    })
}

/// Follow nextLinks to the end, waiting out 429s.
async fn get_all(
    http: &reqwest::Client,
    bearer: &str,
    first: String,
) -> Result<Vec<serde_json::Value>, LocalError> {
    let fail = |e: reqwest::Error| LocalError::Failed(format!("naive baseline: {e}"));
    let mut out = Vec::new();
    let mut next = Some(first);
    let mut attempts = 0;
    while let Some(url) = next.take() {
        let resp = http
            .get(&url)
            .header("Authorization", bearer)
            .send()
            .await
            .map_err(fail)?;
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS && attempts < 20 {
            attempts += 1;
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            next = Some(url);
            continue;
        }
        let body: serde_json::Value = resp
            .error_for_status()
            .map_err(fail)?
            .json()
            .await
            .map_err(fail)?;
        if let Some(items) = body["value"].as_array() {
            out.extend(items.iter().cloned());
        }
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    Ok(out)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The results as a Markdown report, targets marked met or missed.
pub fn render_markdown(results: &[SizeResult], opts: &BenchOptions) -> String {
    let mut s = String::new();
    let lat = opts.latency.as_millis();
    s.push_str(&format!(
        "Latency per Graph request: {lat} ms. Throttling budgets enforced (reads 3,500/5,000/8,000 RU per 10 s by tenant size; writes 3,000 per 150 s). Reconcile workers: {}.\n\n",
        opts.workers
    ));
    s.push_str("### Full sync\n\n");
    s.push_str("| users | groups | memberships | pages (users + groups) | floor (s) | wall (s) | wall / floor | sequential floor (s) | Graph requests | 429s | store writes | reconcile CPU ms per 1,000 users | process CPU ms per 1,000 users | peak RSS (MiB) | state matches |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--:|\n");
    for r in results {
        let f = &r.full;
        let ratio = f.wall.as_secs_f64() / r.floor().as_secs_f64().max(1e-9);
        s.push_str(&format!(
            "| {} | {} | {} | {} + {} | {} | {} | {:.2} {} | {} | {} | {} | {} | {:.2} {} | {:.1} | {} | {} |\n",
            r.users,
            r.groups,
            r.memberships,
            f.users_pages,
            f.groups_pages,
            secs(r.floor()),
            secs(f.wall),
            ratio,
            if ratio <= 1.1 { "(met)" } else { "(missed: target 1.1)" },
            secs(r.floor_sequential()),
            f.graph_requests,
            f.throttled,
            f.writes,
            r.reconcile_ms_per_1000,
            if r.reconcile_ms_per_1000 <= 2.0 { "(met)" } else { "(missed: target 2)" },
            f.cpu_ms as f64 * 1000.0 / r.users.max(1) as f64,
            mib(f.peak_rss_kib),
            if f.matches { "yes" } else { "NO" },
        ));
    }
    s.push_str("\n### Incremental sync\n\n");
    s.push_str("| users | changes | Graph requests | store writes | wall (s) | circuit breaker | state matches | no change: Graph requests | no change: store writes |\n");
    s.push_str("|---:|---:|---:|---:|---:|:--|:--:|---:|---:|\n");
    for r in results {
        let c = &r.incremental_churn;
        let i = &r.incremental_idle;
        let breaker = match &c.held {
            None => "applied".to_owned(),
            Some(h) => format!(
                "held ({} deactivations, {}); confirmed in {} s",
                h.deactivations,
                h.threshold,
                secs(h.confirm_wall)
            ),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.users,
            r.churn_changes,
            c.graph_requests,
            c.writes,
            secs(c.wall),
            breaker,
            if c.matches && i.matches { "yes" } else { "NO" },
            i.graph_requests,
            i.writes,
        ));
    }
    s.push_str(&format!(
        "\n### Naive baseline (list users, then one memberOf call per user, {} in parallel; rewrites everything)\n\n",
        opts.naive_concurrency
    ));
    s.push_str("| users | naive wall (s) | naive requests | naive 429s | naive writes | full sync wall (s) | naive / full wall | naive / incremental requests |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        match &r.naive {
            Some(n) => s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.1}x | {:.0}x |\n",
                r.users,
                secs(n.wall),
                n.requests,
                n.throttled,
                n.writes,
                secs(r.full.wall),
                n.wall.as_secs_f64() / r.full.wall.as_secs_f64().max(1e-9),
                n.requests as f64 / r.incremental_churn.graph_requests.max(1) as f64,
            )),
            None => s.push_str(&format!(
                "| {} | not run (would need {} requests, about {} s) | | | | {} | | |\n",
                r.users,
                r.users + r.users.div_ceil(999),
                (r.users as u64 * opts.latency.as_millis() as u64)
                    / (opts.naive_concurrency.max(1) as u64 * 1000),
                secs(r.full.wall),
            )),
        }
    }
    s.push_str("\nActions throughput: not measured yet (write-back actions do not exist yet).\n");
    s
}
