//! `entra-sync`: the whole product on one machine. Wires the embedded adapters; the logic lives
//! in the library and in `entra-sync-core`.
// A command-line program talks to its user on stderr; stdout goes through `outln!`, which
// survives a closed pipe.
#![allow(clippy::print_stderr)]
#![deny(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::{ConnectionStore, RunStore, Secret};
use entra_sync_core::run::{RunStatus, SyncRun};
use entra_sync_core::services::FetchOptions;
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_local::bench::{BenchOptions, SyncReport, render_markdown, run_bench};
use entra_sync_local::cli::{self, DATA_DIR, DEMO_DATA_DIR, Hints, SERVE_DATA_DIR};
use entra_sync_local::demo::{DemoOptions, DemoStep, DemoSummary, connect, run_demo};
use entra_sync_local::outln;
use entra_sync_local::runtime::{
    DataDir, Export, LocalApp, LocalError, SyncSettings, choose_connection, tenant_id_arg,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "entra-sync",
    version,
    about = "Microsoft Entra ID directory sync, on one machine"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "ENTRA_SYNC_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `entra_sync_core=debug`.
    #[arg(long, global = true, default_value = "warn", env = "ENTRA_SYNC_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Emulated tenant -> connect -> full sync -> changes -> incremental sync -> summary.
    Demo(DemoArgs),
    /// Sync one directory (full the first time, incremental after).
    Sync(Box<SyncArgs>),
    /// Print the stored users, groups and memberships of one directory (lines, or --json).
    Export(ExportArgs),
    /// Print the activity log (sync runs) of one directory.
    Runs(RunsArgs),
    /// Measure full and incremental syncs against the paging floor and the naive way.
    Bench(BenchArgs),
    /// Serve the connect routes (admin consent, connections) on this machine; with
    /// `--emulator`, against an emulated tenant you can consent to in a browser.
    Serve(Box<ServeArgs>),
    /// HR webhook endpoints, their delivery log and the review list.
    Hooks(entra_sync_local::hooks_cli::HooksArgs),
    /// Outbound webhooks: the account's endpoints, their delivery log, redelivery, and
    /// sending what is due (see docs/events.md).
    Events(entra_sync_local::events_cli::EventsArgs),
    #[command(flatten)]
    Admin(entra_sync_local::admin::AdminCommand),
    /// Act on the directory: add-group-member, block-sign-in, reset-password, ... (see
    /// docs/actions.md). Prints the action and its status.
    Act(Box<entra_sync_local::act::ActArgs>),
    /// Enable action kinds, and list, approve, reject, cancel, retry or run actions.
    #[command(subcommand)]
    Actions(entra_sync_local::act::ActionsCommand),
    /// Start, list, show, cancel or retry workflows (onboarding, offboarding, lost-device).
    #[command(subcommand)]
    Workflow(entra_sync_local::act::WorkflowCommand),
    /// The admin API's key (`serve` creates one at its first start).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Replace the API key and print the new one (the old one stops working at the next
    /// `serve`; only the new key's SHA-256 digest is stored).
    Rotate {
        #[arg(long, default_value = SERVE_DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// Tenant sizes (users), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    sizes: Vec<usize>,
    /// Latency the emulator adds to every Graph request, in milliseconds.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Run the naive baseline up to this many users (it makes one request per user).
    #[arg(long, default_value_t = 10_000)]
    naive_max_users: usize,
    /// Parallel requests of the naive baseline.
    #[arg(long, default_value_t = 8)]
    naive_concurrency: usize,
    /// Directory changes before the incremental sync (default: 1 % of the users). A churn with
    /// more leavers than the circuit breaker allows is held, reported and confirmed.
    #[arg(long)]
    churn_changes: Option<usize>,
    /// Reconcile workers of each sync.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Scratch directory for the syncs' data.
    #[arg(long, default_value = ".entra-sync/bench")]
    work_dir: PathBuf,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Actions per tenant of the actions section (one tenant alone, then --action-tenants at
    /// once, against the emulator enforcing Graph's 20 writes/s); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    actions: usize,
    /// Tenants of the actions section's "at once" scenario.
    #[arg(long, default_value_t = 5)]
    action_tenants: usize,
    /// Only the sections that need no sync (actions, HR webhooks, events).
    #[arg(long)]
    only_actions: bool,
    /// Iterations per case of the HR webhooks section (verification + enqueue of a 10 KB body,
    /// p50/p99/max; the target is a p99 under 5 ms); 0 skips it.
    #[arg(long, default_value_t = 3000)]
    webhook_iterations: usize,
    /// Events of the events section's throughput scenario (recorded in the local outbox, then
    /// delivered to events.jsonl); 0 skips the section.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Events timed one at a time from commit to delivery (events.jsonl, and a webhook on
    /// 127.0.0.1) in the events section.
    #[arg(long, default_value_t = 300)]
    event_samples: usize,
}

#[derive(Args)]
struct DemoArgs {
    /// Where the store, queue, vault and emulator state live. A second run continues there.
    /// The demo only uses a directory it created (never a real store), and has its own
    /// variable: it never reads ENTRA_SYNC_DATA_DIR.
    #[arg(long, default_value = DEMO_DATA_DIR, env = "ENTRA_SYNC_DEMO_DIR")]
    data_dir: PathBuf,
    /// Users in the emulated tenant.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Groups in the emulated tenant.
    #[arg(long, default_value_t = 500)]
    groups: usize,
    /// Seed of the synthetic tenant and of the changes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory changes between the two syncs (default: 2 % of users, at least 10).
    #[arg(long)]
    changes: Option<usize>,
    /// Latency the emulator adds to every Graph request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Start from scratch: delete the demo's own files in its data directory first (a
    /// directory the demo did not create is refused, and nothing else is ever deleted).
    #[arg(long)]
    fresh: bool,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args)]
struct Tuning {
    /// Reconcile workers.
    #[arg(long, default_value_t = 4, env = "ENTRA_SYNC_WORKERS")]
    workers: usize,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
struct SyncArgs {
    /// The directory (tenant) id, a GUID: the one to connect at its first sync; may be left
    /// out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    tenant_id: Option<String>,
    /// The app registration's client (application) id.
    #[arg(long, env = "ENTRA_SYNC_CLIENT_ID")]
    client_id: String,
    /// Environment variable holding the client secret.
    #[arg(
        long,
        default_value = "ENTRA_SYNC_CLIENT_SECRET",
        conflicts_with = "client_secret_file"
    )]
    client_secret_env: String,
    /// File holding the client secret (instead of an environment variable).
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// Microsoft Graph base URL (national clouds: https://graph.microsoft.us, ...).
    #[arg(
        long,
        default_value = "https://graph.microsoft.com",
        env = "ENTRA_SYNC_GRAPH_URL"
    )]
    graph_url: url::Url,
    /// Login (authority) base URL.
    #[arg(
        long,
        default_value = "https://login.microsoftonline.com",
        env = "ENTRA_SYNC_LOGIN_URL"
    )]
    login_url: url::Url,
    #[arg(long, default_value = DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    data_dir: PathBuf,
    /// Read everything again even if a delta link exists.
    #[arg(long)]
    full: bool,
    /// Write the run, its wall time and this process's peak memory and CPU as JSON here
    /// (used by `entra-sync bench`).
    #[arg(long, hide = true)]
    report_json: Option<PathBuf>,
    /// Test setting: let the outbound webhooks delivered at the end of the sync use http:// to
    /// a loopback address (127.0.0.1, [::1]); every other private address stays refused.
    #[arg(long, env = "ENTRA_SYNC_WEBHOOKS_ALLOW_INSECURE_LOOPBACK")]
    allow_insecure_loopback: bool,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args)]
struct RunsArgs {
    /// The directory (tenant) id, a GUID; may be left out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    tenant_id: Option<String>,
    #[arg(long, default_value = DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    data_dir: PathBuf,
    /// How many runs, newest first (at most 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// The directory (tenant) id, a GUID; may be left out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    tenant_id: Option<String>,
    #[arg(long, default_value = DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    data_dir: PathBuf,
    /// Print JSON (every stored field, removed objects included) instead of lines.
    #[arg(long)]
    json: bool,
}

fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, &cli.log);
    let result = match cli.command {
        Command::Demo(args) => demo(args).await,
        Command::Sync(args) => sync(*args).await,
        Command::Export(args) => export(args).await,
        Command::Runs(args) => runs(args).await,
        Command::Bench(args) => bench(args).await,
        Command::Serve(args) => serve(*args).await,
        Command::Hooks(args) => entra_sync_local::hooks_cli::run_hooks(args).await,
        Command::Events(args) => entra_sync_local::events_cli::run_events(args).await,
        Command::Admin(cmd) => entra_sync_local::admin::run_admin(cmd).await,
        Command::Act(args) => entra_sync_local::act::run_act(*args).await,
        Command::Actions(cmd) => entra_sync_local::act::run_actions(cmd).await,
        Command::Workflow(cmd) => entra_sync_local::act::run_workflow(cmd).await,
        Command::ApiKey(ApiKeyCommand::Rotate { data_dir }) => {
            let dir = entra_sync_local::runtime::DataDir::new(&data_dir);
            entra_sync_local::api_serve::rotate_api_key(&dir)
                .map(|key| {
                    outln!("New admin API key (shown once; restart `serve` to use it):");
                    outln!("  {key}");
                    ExitCode::SUCCESS
                })
                .map_err(Into::into)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(t: &Tuning) -> SyncSettings {
    SyncSettings {
        workers: t.workers.max(1),
        ..SyncSettings::default()
    }
}

/// A progress bar over pages: fetched from Graph, applied to the store.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Self {
            bar: enabled.then(|| {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:>14} [{bar:30}] {pos}/{len} pages applied  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }),
        }
    }

    fn update(&self, label: &str, run: &SyncRun) {
        let Some(bar) = &self.bar else { return };
        let fetched = run.users.pages_fetched + run.groups.pages_fetched;
        let total = match (run.users.pages_total, run.groups.pages_total) {
            (Some(u), Some(g)) => u + g,
            _ => fetched + 1,
        };
        bar.set_prefix(label.to_owned());
        bar.set_length(total);
        bar.set_position(run.counts.pages_applied.min(total));
        bar.set_message(format!(
            "{} fetched, {} created, {} updated, {} deactivated",
            fetched, run.counts.created, run.counts.updated, run.counts.deactivated
        ));
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn demo(args: DemoArgs) -> Result<ExitCode> {
    let opts = DemoOptions {
        data_dir: args.data_dir.clone(),
        fresh: args.fresh,
        users: args.users,
        groups: args.groups,
        seed: args.seed,
        changes: args.changes,
        latency: Duration::from_millis(args.latency_ms),
        settings: settings(&args.tuning),
    };
    let mut progress: Option<Progress> = None;
    let show = !args.tuning.no_progress;
    let summary = run_demo(&opts, |step| match step {
        DemoStep::Started {
            tenant,
            users,
            groups,
        } => {
            outln!("Emulated tenant {tenant}: {users} users, {groups} groups");
        }
        DemoStep::Connected {
            tenant_name,
            domains,
        } => {
            outln!("Connected to \"{tenant_name}\" ({domains} verified domains)");
        }
        DemoStep::SyncProgress { label, run } => {
            progress
                .get_or_insert_with(|| Progress::new(show))
                .update(label, run);
        }
        DemoStep::SyncDone(s) => {
            if let Some(p) = progress.take() {
                p.finish();
            }
            outln!(
                "{}: {} sync, {} pages in {}",
                s.label,
                mode_name(s),
                s.run.counts.pages_applied,
                wall_words(s.wall)
            );
        }
        DemoStep::Changed(c) => {
            outln!("Changed the directory: {c}");
        }
        DemoStep::Acted(line) => {
            outln!("Acted on the directory: {line}");
        }
    })
    .await?;
    print_summary(&summary, &args.data_dir);
    Ok(if summary.verification.matches() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A wall time for people (`124 ms`, `3.2 s`), not Rust's `Debug` of a `Duration`.
fn wall_words(wall: Duration) -> String {
    entra_sync_local::duration_words(
        chrono::TimeDelta::from_std(wall).unwrap_or(chrono::TimeDelta::MAX),
    )
}

fn mode_name(s: &entra_sync_local::demo::SyncSummary) -> &'static str {
    match s.mode {
        Some(entra_sync_core::page::RoundMode::Full) => "full",
        Some(entra_sync_core::page::RoundMode::Incremental) => "incremental",
        None => "no",
    }
}

fn print_summary(s: &DemoSummary, data_dir: &std::path::Path) {
    outln!();
    outln!("Summary for \"{}\" ({})", s.tenant_name, s.tenant_id);
    outln!("Settings used:");
    for line in &s.settings {
        outln!("  {line}");
    }
    outln!(
        "{:<17} {:>11} {:>6} {:>8} {:>8} {:>8} {:>11} {:>8} {:>8} {:>8} {:>9}",
        "sync",
        "mode",
        "pages",
        "graph",
        "created",
        "updated",
        "deactivated",
        "removed",
        "members+",
        "members-",
        "wall"
    );
    for x in &s.syncs {
        let c = &x.run.counts;
        outln!(
            "{:<17} {:>11} {:>6} {:>8} {:>8} {:>8} {:>11} {:>8} {:>8} {:>8} {:>9}",
            x.label,
            mode_name(x),
            c.pages_applied,
            x.graph_requests,
            c.created,
            c.updated,
            c.deactivated,
            c.removed,
            c.memberships_added,
            c.memberships_removed,
            wall_words(x.wall),
        );
    }
    outln!();
    outln!(
        "{:<17} {:>9} {:>8} {:>8} {:>11} {:>11} {:>8} {:>8}  status",
        "host users",
        "created",
        "linked",
        "updated",
        "deactivated",
        "reactivated",
        "frozen",
        "skipped"
    );
    for x in &s.syncs {
        let p = &x.run.provisioning;
        outln!(
            "{:<17} {:>9} {:>8} {:>8} {:>11} {:>11} {:>8} {:>8}  {}",
            x.label,
            p.created,
            p.linked,
            p.updated,
            p.deactivated + p.disabled_in_directory,
            p.reactivated,
            p.frozen,
            p.skipped,
            match &x.run.status {
                RunStatus::Held { .. } => format!(
                    "held by the circuit breaker (see `{}`)",
                    Hints::new(data_dir).command("runs")
                ),
                RunStatus::Succeeded => "applied".to_owned(),
                _ => "not applied".to_owned(),
            }
        );
    }
    let v = &s.verification;
    outln!();
    outln!(
        "stored: {} users, {} groups, {} memberships (directory: {}, {}, {})",
        v.users_stored,
        v.groups_stored,
        v.memberships_stored,
        v.users_expected,
        v.groups_expected,
        v.memberships_expected
    );
    outln!(
        "state matches directory: {}",
        if v.matches() { "yes" } else { "no" }
    );
    for d in &v.differences {
        outln!("  - {d}");
    }
    outln!(
        "(data in {}; run again to continue incrementally, --fresh to start over)",
        data_dir.display()
    );
}

fn read_secret(args: &SyncArgs) -> Result<Secret> {
    let value = match &args.client_secret_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the client secret from {}", path.display()))?,
        None => std::env::var(&args.client_secret_env).with_context(|| {
            format!(
                "the client secret is read from the environment variable {} (or pass --client-secret-file)",
                args.client_secret_env
            )
        })?,
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        bail!("the client secret is empty");
    }
    Ok(Secret::new(value))
}

/// The directory `sync` is about when `--tenant-id` is left out: the only one connected.
async fn only_connected(dir: &DataDir) -> Result<TenantId> {
    let none = || {
        anyhow::anyhow!(
            "no directory is connected in {} yet; name the one to connect and sync with --tenant-id <guid>",
            dir.root.display()
        )
    };
    let connections = match dir.connections().await {
        Ok(c) => c,
        Err(LocalError::NoDataDir { .. } | LocalError::NoData { .. }) => return Err(none()),
        Err(e) => return Err(e.into()),
    };
    match choose_connection(connections, None, &dir.root) {
        Ok((c, _)) => Ok(c.tenant_id),
        Err(LocalError::NoConnection { .. }) => Err(none()),
        Err(e) => Err(e.into()),
    }
}

async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let secret = read_secret(&args)?;
    let tuning = settings(&args.tuning);
    let dir = DataDir::new(&args.data_dir);
    let tenant = match &args.tenant_id {
        Some(t) => TenantId::new(t.clone()),
        None => only_connected(&dir).await?,
    };
    let app = match LocalApp::open_for_writing(&dir, &tuning, "sync") {
        Ok(app) => app,
        // The other sync goes on; a full read asked for now is kept for the next run.
        Err(busy @ LocalError::Busy { .. }) if args.full => {
            dir.request_full_read(&tenant)?;
            bail!(
                "{busy}. The full read you asked for (--full) is kept: the next sync of this directory reads everything again."
            );
        }
        Err(e) => return Err(e.into()),
    };
    // Due outbound webhooks are delivered when the sync ends (at most a few seconds).
    app.set_close_webhook_urls(entra_sync_core::outbound::ssrf::UrlPolicy {
        allow_insecure_loopback: args.allow_insecure_loopback,
    });
    let full_request = dir.full_read_request(&tenant)?;
    let config = GraphConfig::new(
        args.graph_url.clone(),
        args.login_url.clone(),
        args.client_id.clone(),
        secret,
    );
    let client = Arc::new(GraphClient::new(config).context("building the Graph client")?);
    if app.store.get_connection(&tenant).await?.is_none() {
        let c = connect(&app, &client, &tenant).await?;
        outln!(
            "Connected to \"{}\"",
            c.tenant_name.as_deref().unwrap_or(tenant.as_str())
        );
    }
    let mut hints = Hints::new(&args.data_dir);
    if app.store.list_connections().await?.len() > 1 {
        hints = hints.with_tenant(&tenant);
    }
    if full_request.is_some() && !args.full {
        outln!(
            "A full read was asked for while another sync ran: this sync reads everything again."
        );
    }
    let options = FetchOptions {
        force_full: args.full || full_request.is_some(),
        ..FetchOptions::default()
    };
    let progress = Progress::new(!args.tuning.no_progress);
    let started = std::time::Instant::now();
    let run = app
        .sync(client.clone(), &tenant, &options, &tuning, |run| {
            progress.update("sync", run)
        })
        .await?;
    let wall = started.elapsed();
    progress.finish();
    // The fetch started its full round (a crash from here on resumes that round), so a kept
    // request is served.
    if let Some(token) = &full_request {
        dir.clear_full_read_request(&tenant, token)?;
    }
    entra_sync_local::print_run_line(&run, &hints);
    // The action tick after a sync: expire overdue approvals, move on due workflows (their
    // actions run on the action queue, by `serve` or the next action command).
    let actions = app.actions(client.clone())?;
    if let Err(e) = entra_sync_local::action_worker::tick(&actions.deps).await {
        tracing::warn!(error = %e, "action tick after the sync failed");
    }
    if let Some(path) = &args.report_json {
        let report = SyncReport {
            run: run.clone(),
            wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
            stats: entra_sync_local::procstat::current(),
        };
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(match run.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

async fn export(args: ExportArgs) -> Result<ExitCode> {
    let o = cli::open_read(&args.data_dir, args.tenant_id.as_deref()).await?;
    let data = o.app.export(&o.tenant).await?;
    if args.json {
        cli::print_json(&data)?;
    } else {
        print_export(&data, &o.tenant);
    }
    Ok(ExitCode::SUCCESS)
}

/// The export for people: a summary line, then users, groups and memberships under their
/// column headers.
fn print_export(data: &Export, tenant: &TenantId) {
    use entra_sync_local::words;
    if data.users.is_empty() && data.groups.is_empty() && data.memberships.is_empty() {
        outln!("nothing is stored for directory {tenant} yet");
        return;
    }
    let removed_users = data
        .users
        .iter()
        .filter(|u| !u.presence.is_present())
        .count();
    let removed_groups = data
        .groups
        .iter()
        .filter(|g| !g.presence.is_present())
        .count();
    let removed_edges = data.memberships.iter().filter(|m| !m.present).count();
    outln!(
        "directory {tenant}: {} users ({removed_users} removed), {} groups ({removed_groups} removed), {} memberships ({removed_edges} removed)",
        data.users.len(),
        data.groups.len(),
        data.memberships.len()
    );
    let dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".to_owned());
    if !data.users.is_empty() {
        outln!();
        outln!(
            "{:<38} {:<40} {:<30} state",
            "user object id",
            "email",
            "display name"
        );
        for u in &data.users {
            outln!(
                "{:<38} {:<40} {:<30} {}",
                u.user.id,
                dash(u.user.canonical_email().as_ref()),
                dash(u.user.display_name.as_ref()),
                words(&u.presence)
            );
        }
    }
    if !data.groups.is_empty() {
        outln!();
        outln!("{:<38} {:<40} state", "group object id", "display name");
        for g in &data.groups {
            outln!(
                "{:<38} {:<40} {}",
                g.group.id,
                dash(g.group.display_name.as_ref()),
                words(&g.presence)
            );
        }
    }
    if !data.memberships.is_empty() {
        outln!();
        outln!(
            "{:<38} {:<38} {:<17} state",
            "group object id",
            "member object id",
            "member type"
        );
        for m in &data.memberships {
            outln!(
                "{:<38} {:<38} {:<17} {}",
                m.group_id,
                m.member.id,
                m.member.member_type.as_str(),
                if m.present { "present" } else { "removed" }
            );
        }
    }
}

async fn runs(args: RunsArgs) -> Result<ExitCode> {
    let o = cli::open_read(&args.data_dir, args.tenant_id.as_deref()).await?;
    let runs = o
        .app
        .store
        .list_runs(&o.tenant, usize::from(args.limit))
        .await?;
    cli::print_list(args.json, &runs, "no runs yet", |r| {
        entra_sync_local::print_run_line(r, &o.hints)
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn bench(args: BenchArgs) -> Result<ExitCode> {
    let actions_table = match args.actions {
        0 => None,
        n => {
            eprintln!(
                "actions: {n} per tenant, one tenant, then {} at once",
                args.action_tenants
            );
            let opts = entra_sync_local::bench_actions::ActionBenchOptions {
                actions: n,
                tenants: args.action_tenants.max(1),
                ..Default::default()
            };
            let rows = entra_sync_local::bench_actions::run_action_bench(&opts).await?;
            Some(format!(
                "### Actions (revoke sessions, through submit -> queue -> claim -> write budget -> Graph client; the emulator enforces 20 writes/s per tenant with a burst of 20; latency {} ms)\n\n{}",
                opts.latency.as_millis(),
                entra_sync_local::bench_actions::render_action_table(&rows)
            ))
        }
    };
    let actions_table = match args.webhook_iterations {
        0 => actions_table,
        n => {
            eprintln!("hr webhooks: {n} iterations per case");
            let report = entra_sync_hr::bench::run(n).await;
            let section = format!(
                "### HR webhooks (verify + parse + store + enqueue below HTTP, in-memory adapters; target p99 under 5 ms)\n\n```\n{report}```\n"
            );
            Some(match actions_table {
                Some(a) => format!("{a}\n{section}"),
                None => section,
            })
        }
    };
    let actions_table = match args.events {
        0 => actions_table,
        n => {
            eprintln!(
                "events: {n} through the outbox, {} timed from commit to delivery",
                args.event_samples
            );
            let opts = entra_sync_local::bench_events::EventBenchOptions {
                events: n,
                samples: args.event_samples.max(1),
            };
            std::fs::create_dir_all(&args.work_dir)
                .with_context(|| format!("creating {}", args.work_dir.display()))?;
            let rows =
                entra_sync_local::bench_events::run_event_bench(&opts, &args.work_dir).await?;
            let section = format!(
                "### Events (local outbox: SQLite store, events.jsonl, outbound webhook to 127.0.0.1; delivery run at once after each commit)\n\n{}",
                entra_sync_local::bench_events::render_event_table(&rows)
            );
            Some(match actions_table {
                Some(a) => format!("{a}\n{section}"),
                None => section,
            })
        }
    };
    if args.only_actions {
        let table = actions_table.unwrap_or_default();
        outln!("{table}");
        if let Some(out) = &args.out {
            std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.sizes.is_empty() {
        bail!("--sizes needs at least one tenant size");
    }
    let opts = BenchOptions {
        sizes: args.sizes,
        latency: Duration::from_millis(args.latency_ms),
        naive_max_users: args.naive_max_users,
        naive_concurrency: args.naive_concurrency,
        workers: args.workers.max(1),
        exe: std::env::current_exe().context("locating the entra-sync executable")?,
        work_dir: args.work_dir,
        seed: 42,
        churn_changes: args.churn_changes,
    };
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("creating {}", opts.work_dir.display()))?;
    let results = run_bench(&opts, |line| eprintln!("{line}")).await?;
    let mut table = render_markdown(&results, &opts);
    if let Some(actions) = &actions_table {
        table.push('\n');
        table.push_str(actions);
    }
    outln!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
    }
    let all_match = results
        .iter()
        .all(|r| r.full.matches && r.incremental_churn.matches && r.incremental_idle.matches);
    Ok(if all_match {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ENTRA_SYNC_LISTEN")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value = SERVE_DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    data_dir: PathBuf,
    /// Start an emulated tenant (not yet consented) and use the emulator's login and Graph.
    #[arg(long, conflicts_with = "client_id")]
    emulator: bool,
    /// Test setting: let outbound webhooks use http:// to a loopback address (127.0.0.1,
    /// [::1]); every other private address stays refused. Off by default.
    #[arg(long, env = "ENTRA_SYNC_WEBHOOKS_ALLOW_INSECURE_LOOPBACK")]
    allow_insecure_loopback: bool,
    /// Users in the emulated tenant.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Groups in the emulated tenant.
    #[arg(long, default_value_t = 20)]
    groups: usize,
    /// Seed of the emulated tenant.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The callback URL exactly as registered on the app (default: http://LISTEN/connect/callback).
    #[arg(long, env = "ENTRA_SYNC_REDIRECT_URI")]
    redirect_uri: Option<url::Url>,
    /// The app registration's client (application) id (without --emulator).
    #[arg(
        long,
        env = "ENTRA_SYNC_CLIENT_ID",
        required_unless_present = "emulator"
    )]
    client_id: Option<String>,
    /// Environment variable holding the client secret (without --emulator).
    #[arg(long, default_value = "ENTRA_SYNC_CLIENT_SECRET")]
    client_secret_env: String,
    #[arg(
        long,
        default_value = "https://graph.microsoft.com",
        env = "ENTRA_SYNC_GRAPH_URL"
    )]
    graph_url: url::Url,
    #[arg(
        long,
        default_value = "https://login.microsoftonline.com",
        env = "ENTRA_SYNC_LOGIN_URL"
    )]
    login_url: url::Url,
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    use entra_sync_local::serve::{ServeDirectory, ServeOptions, run_serve};
    let directory = match args.client_id {
        None => ServeDirectory::Emulator {
            users: args.users,
            groups: args.groups,
            seed: args.seed,
        },
        Some(client_id) => ServeDirectory::Remote {
            client_id,
            client_secret: Secret::new(
                std::env::var(&args.client_secret_env)
                    .with_context(|| format!("{} is not set", args.client_secret_env))?,
            ),
            graph_url: args.graph_url,
            login_url: args.login_url,
        },
    };
    let data_dir = args.data_dir.clone();
    let opts = ServeOptions {
        data_dir: args.data_dir,
        listen: args.listen,
        redirect_uri: args.redirect_uri,
        directory,
        allow_insecure_loopback: args.allow_insecure_loopback,
    };
    run_serve(&opts, |info| {
        outln!("Serving the connect routes on {}", info.base_url);
        outln!("  open {}/ to connect a directory", info.base_url);
        outln!("  consent callback: {}", info.redirect_uri);
        outln!(
            "  HR webhooks: POST {}/hooks/{{account}}/{{source}}",
            info.base_url
        );
        if let Some(t) = &info.emulated_tenant {
            outln!("  emulated tenant: {t} (not consented yet)");
        }
        outln!(
            "  admin API: {}/v1 (document: {}/v1/openapi.json)",
            info.base_url,
            info.base_url
        );
        outln!("  admin console (this address signs one browser in, once):");
        outln!("    {}", info.console_url);
        if let Some(key) = &info.new_api_key {
            outln!(
                "  admin API key (shown once; `{}` makes a new one):",
                Hints::new(&data_dir).command("api-key rotate")
            );
            outln!("    {key}");
        }
        outln!("Press Ctrl-C to stop.");
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
