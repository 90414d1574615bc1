//! The events benchmark: change events through the local outbox, on a data directory of its
//! own (SQLite store, `events.jsonl`, the outbound webhook worker of `serve`).
//!
//! * Throughput: `events` action writes, each committing its `action.updated` event to the
//!   outbox in its own transaction, then one delivery of them all to `events.jsonl`; events
//!   per second over both.
//! * Commit to delivery: one write at a time, delivered at once after its commit; the time
//!   from the write's commit to (a) its delivery to `events.jsonl` and (b) its outbound webhook
//!   reaching an endpoint on 127.0.0.1 (the local test setting that allows http to loopback),
//!   through the outbox, the fan-out to the endpoint and one pass of the delivery worker.
//!   `serve` runs these deliveries on a timer (the outbox every 250 ms, webhooks every second),
//!   which adds up to that interval to what is measured here: this is the pipeline's own cost.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use entra_sync_core::actions::ActionRecord;
use entra_sync_core::actions::ports::ActionStore;
use entra_sync_core::outbound::OutboundPolicy;
use entra_sync_core::outbound::service::{NewEndpoint, create_endpoint};
use entra_sync_core::outbound::ssrf::UrlPolicy;

use crate::runtime::{DataDir, LocalApp, SyncSettings};

/// What to run.
#[derive(Clone, Debug)]
pub struct EventBenchOptions {
    /// Events of the throughput scenario.
    pub events: usize,
    /// Events timed one at a time in each commit-to-delivery scenario.
    pub samples: usize,
}

impl Default for EventBenchOptions {
    fn default() -> Self {
        Self {
            events: 10_000,
            samples: 300,
        }
    }
}

/// One scenario's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EventBenchRow {
    pub scenario: String,
    pub events: usize,
    /// Events per second (throughput scenario only).
    pub events_per_second: Option<f64>,
    /// Commit to delivery, milliseconds (latency scenarios only).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Run the three scenarios on a fresh data directory under `work_dir`.
pub async fn run_event_bench(
    opts: &EventBenchOptions,
    work_dir: &Path,
) -> anyhow::Result<Vec<EventBenchRow>> {
    let root = work_dir.join("events");
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("clearing {}", root.display()))?;
    }
    let app = LocalApp::open(&DataDir::new(&root), &SyncSettings::default())?;
    let template = sample_action().await?;
    let mut next = 0usize;
    let action = |next: &mut usize| {
        *next += 1;
        let mut r = template.clone();
        r.id = format!("bench-{next:08}");
        r.key = r.id.clone();
        r
    };

    // Throughput: record every event, then deliver them all.
    let started = Instant::now();
    for _ in 0..opts.events {
        app.store.create_action(&action(&mut next)).await?;
    }
    let delivered = app.deliver_events().await?;
    anyhow::ensure!(
        delivered == opts.events,
        "{delivered} of {} events delivered",
        opts.events
    );
    let throughput = EventBenchRow {
        scenario: "record (one action write each) + deliver to events.jsonl".into(),
        events: opts.events,
        events_per_second: Some(opts.events as f64 / started.elapsed().as_secs_f64().max(1e-9)),
        p50_ms: None,
        p99_ms: None,
    };

    // Commit to events.jsonl, one event at a time.
    let mut to_log = Vec::with_capacity(opts.samples);
    for _ in 0..opts.samples {
        app.store.create_action(&action(&mut next)).await?;
        let committed = Instant::now();
        app.deliver_events().await?;
        to_log.push(committed.elapsed());
    }

    // Commit to an outbound webhook on 127.0.0.1.
    let receiver = Receiver::start().await?;
    let policy = OutboundPolicy {
        urls: UrlPolicy {
            allow_insecure_loopback: true,
        },
        ..Default::default()
    };
    create_endpoint(
        app.store.as_ref(),
        app.vault.as_ref(),
        &crate::outbound::SystemResolver,
        &policy,
        NewEndpoint {
            account: template.account_id.clone(),
            url: receiver.url.clone(),
            event_types: None,
        },
        Utc::now(),
    )
    .await?;
    let worker = app.outbound_worker(policy)?;
    let mut to_webhook = Vec::with_capacity(opts.samples);
    for _ in 0..opts.samples {
        let r = action(&mut next);
        let id = entra_sync_core::committed::action_event(None, &r)
            .map(|e| e.id().to_string())
            .context("an action write has an event")?;
        app.store.create_action(&r).await?;
        let committed = Instant::now();
        app.deliver_events().await?;
        worker.deliver_due(Utc::now()).await?;
        let got = receiver
            .received(&id)
            .with_context(|| format!("the webhook of event {id} did not arrive"))?;
        to_webhook.push(got.saturating_duration_since(committed));
    }
    drop(app);
    let _ = std::fs::remove_dir_all(&root);
    Ok(vec![
        throughput,
        latency_row("commit -> events.jsonl", to_log),
        latency_row("commit -> webhook on 127.0.0.1", to_webhook),
    ])
}

fn latency_row(scenario: &str, mut samples: Vec<Duration>) -> EventBenchRow {
    samples.sort();
    let ms = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map(|d| d.as_secs_f64() * 1000.0)
    };
    EventBenchRow {
        scenario: scenario.into(),
        events: samples.len(),
        events_per_second: None,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
    }
}

/// A realistic action record to copy: one submitted through the action services on the
/// in-memory ports (an add-to-group request, queued).
async fn sample_action() -> anyhow::Result<ActionRecord> {
    use entra_sync_core::actions::ActionKind;
    use entra_sync_core::actions::testing::{SALES, add_ann_to, req, world};
    let w = world(&[ActionKind::AddGroupMember]).await;
    Ok(
        entra_sync_core::services::actions::submit_action(&w.deps, req("bench", add_ann_to(SALES)))
            .await?,
    )
}

/// A webhook endpoint on 127.0.0.1 that notes when each event id arrived.
struct Receiver {
    url: String,
    got: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let got: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let at = Instant::now();
                    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok())
                        && let Ok(mut m) = seen.lock()
                    {
                        m.entry(id.to_owned()).or_insert(at);
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, got })
    }

    fn received(&self, id: &str) -> Option<Instant> {
        self.got.lock().ok()?.get(id).copied()
    }
}

/// The Markdown table of the rows.
pub fn render_event_table(rows: &[EventBenchRow]) -> String {
    let mut out = String::from(
        "| scenario | events | events/s | p50 commit to delivery (ms) | p99 (ms) |\n|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.events,
            opt(r.events_per_second, 0),
            opt(r.p50_ms, 2),
            opt(r.p99_ms, 2)
        ));
    }
    out
}
