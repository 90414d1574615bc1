//! A small run of `entra-sync bench`'s machinery (child-process syncs against the emulator),
//! so the benchmark never rots. Its figures are not asserted against targets: those belong in
//! the benchmark's table, not in a timed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use entra_sync_core::page::RoundMode;
use entra_sync_local::bench::{BenchOptions, render_markdown, run_bench};

#[tokio::test]
async fn bench_smoke_measures_full_incremental_idle_and_naive() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BenchOptions {
        sizes: vec![300],
        latency: Duration::from_millis(2),
        naive_max_users: 1_000,
        naive_concurrency: 4,
        workers: 2,
        exe: env!("CARGO_BIN_EXE_entra-sync").into(),
        work_dir: dir.path().to_owned(),
        seed: 7,
        churn_changes: None,
    };
    let results = run_bench(&opts, |_| {}).await.unwrap();
    let r = &results[0];
    assert_eq!(r.full.mode, Some(RoundMode::Full));
    assert!(r.full.matches && r.incremental_churn.matches && r.incremental_idle.matches);
    assert_eq!(r.incremental_churn.mode, Some(RoundMode::Incremental));
    assert!(r.full.users_pages >= 2 && r.full.groups_pages >= 1);
    assert!(r.full.peak_rss_kib > 0, "the child reports its memory");
    assert!(r.reconcile_ms_per_1000 > 0.0, "reconcile alone is measured");
    // Nothing changed: no store writes, a handful of requests.
    assert_eq!(r.incremental_idle.writes, 0);
    assert!(r.incremental_idle.graph_requests < r.full.graph_requests);
    let naive = r.naive.as_ref().unwrap();
    assert!(naive.requests > 300, "one request per user at least");
    assert!(naive.requests > r.full.graph_requests);
    let table = render_markdown(&results, &opts);
    assert!(table.contains("| 300 |"));
    assert!(table.contains("Naive baseline"));
}

/// A churn the circuit breaker holds (as 1 % churn of 100,000 users does with the default
/// breaker) is reported and confirmed, and the bench goes on to the end.
#[tokio::test]
async fn a_held_churn_run_is_reported_confirmed_and_the_bench_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BenchOptions {
        sizes: vec![300],
        latency: Duration::from_millis(1),
        naive_max_users: 0,
        naive_concurrency: 1,
        workers: 2,
        exe: env!("CARGO_BIN_EXE_entra-sync").into(),
        work_dir: dir.path().to_owned(),
        seed: 7,
        // Every user changed once on average: far more leavers than the breaker's 10 %.
        churn_changes: Some(300),
    };
    let results = run_bench(&opts, |_| {}).await.unwrap();
    let r = &results[0];
    let held = r
        .incremental_churn
        .held
        .as_ref()
        .expect("the churn run is held by the default breaker");
    assert!(held.deactivations > 0, "{held:?}");
    assert!(held.confirm_wall > Duration::ZERO);
    // Confirmed: the run after it has nothing left to do.
    assert_eq!(r.incremental_idle.writes, 0);
    assert!(r.incremental_idle.held.is_none());
    let table = render_markdown(&results, &opts);
    assert!(table.contains("held ("), "{table}");
    assert!(table.contains("confirmed in"), "{table}");
}

/// The actions benchmark runs end to end: every action succeeds, one Graph write each, and the
/// write budget keeps the emulator (enforcing Graph's write limit) from answering 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_benchmark_writes_once_per_action_without_429s() {
    use entra_sync_local::bench_actions::{ActionBenchOptions, run_action_bench};
    let rows = run_action_bench(&ActionBenchOptions {
        actions: 30,
        tenants: 2,
        latency: std::time::Duration::ZERO,
        concurrency: 8,
    })
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.not_succeeded, 0, "{r:?}");
        assert_eq!(r.throttled_429, 0, "{r:?}");
        assert_eq!(
            r.graph_writes,
            (r.tenants * r.actions_per_tenant) as u64,
            "{r:?}"
        );
    }
}

/// The events section runs end to end: every recorded event reaches events.jsonl, every timed
/// one reaches the webhook endpoint on 127.0.0.1, and the table has a row per scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_benchmark_delivers_every_event_and_prints_its_table() {
    use entra_sync_local::bench_events::{EventBenchOptions, render_event_table, run_event_bench};
    let dir = tempfile::tempdir().unwrap();
    let rows = run_event_bench(
        &EventBenchOptions {
            events: 40,
            samples: 5,
        },
        dir.path(),
    )
    .await
    .unwrap();
    let shape: Vec<(&str, usize, bool, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.scenario.as_str(),
                r.events,
                r.events_per_second.is_some(),
                r.p50_ms.is_some() && r.p99_ms.is_some(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                "record (one action write each) + deliver to events.jsonl",
                40,
                true,
                false
            ),
            ("commit -> events.jsonl", 5, false, true),
            ("commit -> webhook on 127.0.0.1", 5, false, true),
        ]
    );
    let table = render_event_table(&rows);
    assert_eq!(table.lines().count(), 2 + rows.len(), "{table}");
    assert!(
        table.contains("| commit -> webhook on 127.0.0.1 | 5 |"),
        "{table}"
    );
}
