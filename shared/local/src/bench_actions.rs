//! The actions benchmark: N actions per tenant through the real executor path (submit ->
//! queue -> claim -> write budget -> Graph client) against the emulator enforcing Graph's write
//! limit (3,000 writes per 150 s per app per tenant, a burst of 20), one tenant alone and
//! several at once. It reports the sustained writes per second per tenant and the 429s the
//! emulator answered. The stores are the in-memory adapters: what is measured is the write
//! path against the directory's budget, not a store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use entra_sync_core::actions::ActionSpec;
use entra_sync_core::actions::budget::{BudgetConfig, WriteBudget};
use entra_sync_core::actions::kind::ActionKind;
use entra_sync_core::actions::memory::{CollectingActionQueue, MemoryActions, ScanningLookup};
use entra_sync_core::actions::record::Origin;
use entra_sync_core::idempotency::IdempotencyConfig;
use entra_sync_core::memory::MemoryStore;
use entra_sync_core::memory_idempotency::MemoryIdempotency;
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryUser, Presence, StoredUser, TenantId, Version,
};
use entra_sync_core::ports::{ConnectionStore, MirrorStore, Secret, SettingsStore, SystemClock};
use entra_sync_core::services::actions::{
    ActionDeps, ActionsConfig, MessageVerdict, SubmitRequest, handle_action_message, submit_action,
};
use entra_sync_core::services::claim::Claims;
use entra_sync_core::settings::ConnectionSettings;
use entra_sync_emulator::{
    DEFAULT_APP_PERMISSIONS, Emulator, EmulatorConfig, TenantSpec, ThrottleBudget,
};
use entra_sync_graph::{GraphClient, GraphConfig};
use futures::StreamExt;

/// What to run.
#[derive(Clone, Debug)]
pub struct ActionBenchOptions {
    /// Actions per tenant.
    pub actions: usize,
    /// Tenants of the "at once" scenario.
    pub tenants: usize,
    /// Latency the emulator adds to every request.
    pub latency: Duration,
    /// Actions in flight per tenant.
    pub concurrency: usize,
}

impl Default for ActionBenchOptions {
    fn default() -> Self {
        Self {
            actions: 1000,
            tenants: 5,
            latency: Duration::from_millis(20),
            concurrency: 32,
        }
    }
}

/// One scenario's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ActionBenchRow {
    pub scenario: String,
    pub tenants: usize,
    pub actions_per_tenant: usize,
    /// Seconds from the first to the last write of the slowest tenant.
    pub wall_seconds: f64,
    /// The slowest tenant's sustained writes per second.
    pub min_writes_per_second: f64,
    /// Writes Graph (the emulator) counted, all tenants.
    pub graph_writes: u64,
    /// 429 answers the emulator gave.
    pub throttled_429: u64,
    /// Actions that did not end `succeeded`.
    pub not_succeeded: usize,
}

/// Run both scenarios: one tenant alone, then `tenants` at once.
pub async fn run_action_bench(opts: &ActionBenchOptions) -> anyhow::Result<Vec<ActionBenchRow>> {
    let mut rows = Vec::new();
    rows.push(scenario("one tenant", 1, opts).await?);
    rows.push(
        scenario(
            &format!("{} tenants at once", opts.tenants),
            opts.tenants,
            opts,
        )
        .await?,
    );
    Ok(rows)
}

struct Tenant {
    deps: ActionDeps,
    queue: Arc<CollectingActionQueue>,
    tenant: TenantId,
}

async fn scenario(
    name: &str,
    tenants: usize,
    opts: &ActionBenchOptions,
) -> anyhow::Result<ActionBenchRow> {
    let emulator = Emulator::start(EmulatorConfig {
        latency: opts.latency,
        write_budget: Some(ThrottleBudget::graph_writes()),
        ..EmulatorConfig::default()
    })
    .await?;
    let creds = emulator.app();
    let client = Arc::new(GraphClient::new(GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url())?,
        url::Url::parse(&emulator.login_base_url())?,
        creds.client_id.clone(),
        Secret::new(creds.client_secret.clone()),
    ))?);
    // One budget for the process, as one executor has: tenants are keyed inside it.
    let budget = Arc::new(WriteBudget::new(BudgetConfig::default()));
    let mut setups = Vec::new();
    for i in 0..tenants {
        let info = emulator.add_tenant(&TenantSpec::new(
            1000 + i as u64,
            opts.actions.clamp(10, 2000),
            1,
        ));
        let handle = emulator
            .tenant(&info.tenant_id)
            .ok_or_else(|| anyhow::anyhow!("emulated tenant missing"))?;
        handle.set_granted_permissions(DEFAULT_APP_PERMISSIONS.iter().copied());
        setups.push(setup(&handle, client.clone(), budget.clone(), opts.actions).await?);
    }
    emulator.reset_counters();
    let results =
        futures::future::join_all(setups.iter().map(|t| drive(t, opts.concurrency))).await;
    let counters = emulator.counters();
    emulator.shutdown().await;
    let mut min_rate = f64::INFINITY;
    let mut wall: f64 = 0.0;
    let mut not_succeeded = 0;
    for r in results {
        let (elapsed, failed) = r?;
        let secs = elapsed.as_secs_f64().max(1e-9);
        min_rate = min_rate.min(opts.actions as f64 / secs);
        wall = wall.max(secs);
        not_succeeded += failed;
    }
    Ok(ActionBenchRow {
        scenario: name.to_string(),
        tenants,
        actions_per_tenant: opts.actions,
        wall_seconds: wall,
        min_writes_per_second: min_rate,
        graph_writes: counters.writes,
        throttled_429: counters.throttled_429,
        not_succeeded,
    })
}

async fn setup(
    handle: &entra_sync_emulator::TenantHandle,
    client: Arc<GraphClient>,
    budget: Arc<WriteBudget>,
    actions: usize,
) -> anyhow::Result<Tenant> {
    let tenant = TenantId::new(handle.id());
    let store = Arc::new(MemoryStore::new());
    let account = AccountId("bench".into());
    store
        .put_connection(&Connection {
            tenant_id: tenant.clone(),
            account_id: account.clone(),
            label: "bench".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        })
        .await?;
    let users: Vec<StoredUser> = handle
        .user_ids()
        .into_iter()
        .map(|id| StoredUser {
            user: DirectoryUser {
                id,
                account_enabled: Some(true),
                ..Default::default()
            },
            presence: Presence::Present,
            version: Version::new(1, 0),
        })
        .collect();
    store.put_users(&tenant, &users).await?;
    let mut settings = ConnectionSettings {
        version: 1,
        ..Default::default()
    };
    settings.actions.enabled = [ActionKind::RevokeSessions].into_iter().collect();
    store.put_settings(&tenant, &settings, 0).await?;
    let queue = Arc::new(CollectingActionQueue::new());
    let both = Arc::new(MemoryActions::new());
    let deps = ActionDeps {
        connections: store.clone(),
        settings: store.clone(),
        mirror: store.clone(),
        cursors: store.clone(),
        lookup: Arc::new(ScanningLookup {
            mirror: store.clone(),
        }),
        actions: both.clone(),
        workflows: both,
        queue: queue.clone(),
        writer: client,
        claims: Claims::new(
            Arc::new(MemoryIdempotency::new()),
            IdempotencyConfig::default(),
            Arc::new(SystemClock),
        ),
        budget,
        clock: Arc::new(SystemClock),
        config: ActionsConfig::default(),
    };
    for (i, u) in users.iter().cycle().take(actions).enumerate() {
        submit_action(
            &deps,
            SubmitRequest {
                account: account.clone(),
                tenant: tenant.clone(),
                key: format!("bench-{i}"),
                spec: ActionSpec::RevokeSessions {
                    user: u.user.id.clone(),
                },
                requested_by: "bench".into(),
                origin: Origin::Cli,
            },
        )
        .await?;
    }
    Ok(Tenant {
        deps,
        queue,
        tenant,
    })
}

/// Execute every queued action of one tenant, `concurrency` at a time; returns the time from
/// the first to the last write and how many did not succeed.
async fn drive(t: &Tenant, concurrency: usize) -> anyhow::Result<(Duration, usize)> {
    let start = Instant::now();
    let mut pending = t.queue.drain();
    let mut rounds = 0;
    while !pending.is_empty() && rounds < 20 {
        rounds += 1;
        let verdicts: Vec<(
            entra_sync_core::actions::ports::ActionMessage,
            MessageVerdict,
        )> = futures::stream::iter(pending.into_iter().map(|m| async move {
            let v = handle_action_message(&t.deps, &m).await;
            (m, v)
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
        pending = verdicts
            .into_iter()
            .filter(|(_, v)| matches!(v, MessageVerdict::Retry { .. }))
            .map(|(m, _)| m)
            .collect();
    }
    let elapsed = start.elapsed();
    let listing = t
        .deps
        .actions
        .list_actions(&t.tenant, &Default::default(), None, usize::MAX)
        .await?;
    let failed = listing
        .items
        .iter()
        .filter(|r| r.status.as_str() != "succeeded")
        .count();
    Ok((elapsed, failed))
}

/// The Markdown table of the rows.
pub fn render_action_table(rows: &[ActionBenchRow]) -> String {
    let mut out = String::from(
        "| scenario | tenants | actions per tenant | wall (s) | writes/s (slowest tenant) | Graph writes | 429s | not succeeded |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} |\n",
            r.scenario,
            r.tenants,
            r.actions_per_tenant,
            r.wall_seconds,
            r.min_writes_per_second,
            r.graph_writes,
            r.throttled_429,
            r.not_succeeded
        ));
    }
    out
}
