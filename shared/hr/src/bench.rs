//! The verification benchmark: how long the webhook path below HTTP takes per delivery
//! (signature verification, payload parsing, the delivery-log write and the enqueue) for a
//! 10 KB body, over the in-memory adapters, as p50 / p99 / max. A table for `entra-sync
//! bench` or `cargo run -p entra-sync-hr --example webhook_bench --release`; tests assert no
//! timings.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use entra_sync_core::memory::{ManualClock, MemoryVault};
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{Secret, SecretVault};
use entra_sync_core::services::webhooks::{Incoming, ReceiveDeps, receive};
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::Answer;
use entra_sync_core::webhooks::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use entra_sync_core::webhooks::memory::{CollectingDeliveryQueue, MemoryWebhooks};
use entra_sync_core::webhooks::verify::{self, Headers, SigningKey, sign};

/// The body size measured.
pub const BODY_BYTES: usize = 10 * 1024;

/// One measured case.
#[derive(Clone, Debug)]
pub struct BenchRow {
    pub case: &'static str,
    pub iterations: usize,
    pub body_bytes: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Requests that did not get the expected answer (must be 0 for the numbers to mean anything).
    pub unexpected: usize,
}

/// Every case.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<52} {:>6} {:>7} {:>10} {:>10} {:>10} {:>5}",
            "case", "n", "bytes", "p50", "p99", "max", "bad"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<52} {:>6} {:>7} {:>10} {:>10} {:>10} {:>5}",
                r.case,
                r.iterations,
                r.body_bytes,
                micros(r.p50),
                micros(r.p99),
                micros(r.max),
                r.unexpected
            )?;
        }
        Ok(())
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn row(
    case: &'static str,
    body_bytes: usize,
    mut samples: Vec<Duration>,
    unexpected: usize,
) -> BenchRow {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: f64| {
        samples
            .get(((n as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    BenchRow {
        case,
        iterations: samples.len(),
        body_bytes,
        p50: at(0.50),
        p99: at(0.99),
        max: samples.last().copied().unwrap_or_default(),
        unexpected,
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A BambooHR field-based batch of about [`BODY_BYTES`], different for each `i` (so each is a
/// new delivery, not a duplicate).
pub fn bamboohr_body(i: usize) -> Vec<u8> {
    let mut employees = Vec::new();
    let mut n = 0;
    loop {
        let e = format!(
            r#"{{"id":"{i}-{n}","action":"Updated","changedFields":["Department"],"fields":{{"Employee #":"E{i}-{n}","Department":"Sales","Work Email":"person{n}@contoso.com","First Name":"Person","Last Name":"Number {n}","Job Title":"Account executive"}}}}"#
        );
        employees.push(e);
        n += 1;
        let len: usize = employees.iter().map(|e| e.len() + 1).sum::<usize>() + 16;
        if len >= BODY_BYTES {
            break;
        }
    }
    format!(r#"{{"employees":[{}]}}"#, employees.join(",")).into_bytes()
}

/// A HiBob v2 event padded to about [`BODY_BYTES`] with the changed fields list.
pub fn hibob_body(i: usize) -> Vec<u8> {
    let mut fields = Vec::new();
    while fields.iter().map(|f: &String| f.len() + 1).sum::<usize>() < BODY_BYTES - 200 {
        fields.push(format!(
            r#"{{"fieldId":"/work/custom/field_{}"}}"#,
            fields.len()
        ));
    }
    format!(
        r#"{{"companyId":636192,"type":"employee.updated","triggeredBy":"system","triggeredAt":"2026-12-01T09:00:00","version":"v2","data":{{"employeeId":"{i}","fieldUpdates":[{}]}}}}"#,
        fields.join(",")
    )
    .into_bytes()
}

async fn world(source: Source, secret: &str) -> (ReceiveDeps, Arc<CollectingDeliveryQueue>) {
    let hooks = Arc::new(MemoryWebhooks::new());
    let vault = Arc::new(MemoryVault::default());
    let queue = Arc::new(CollectingDeliveryQueue::new());
    let endpoint = WebhookEndpoint::new(
        EndpointKey {
            account_id: AccountId("acct-bench".into()),
            source,
        },
        TenantId::new("t-bench"),
        t0(),
    );
    let _ = vault
        .put_secret(&endpoint.secrets[0].name, &Secret::new(secret))
        .await;
    let _ = hooks.create_endpoint(&endpoint).await;
    let deps = ReceiveDeps {
        endpoints: hooks.clone(),
        vault,
        deliveries: hooks,
        queue: queue.clone(),
        clock: Arc::new(ManualClock::new(t0())),
        limits: Default::default(),
    };
    (deps, queue)
}

async fn receive_case(
    case: &'static str,
    source: Source,
    secret: &str,
    iterations: usize,
) -> BenchRow {
    let (deps, queue) = world(source, secret).await;
    let key = match SigningKey::from_secret(source, secret) {
        Ok(k) => k,
        Err(_) => return row(case, 0, vec![], iterations),
    };
    let ts = t0().timestamp();
    let mut samples = Vec::with_capacity(iterations);
    let mut unexpected = 0;
    let mut bytes = 0;
    for i in 0..iterations {
        let body = match source {
            Source::BambooHr => bamboohr_body(i),
            _ => hibob_body(i),
        };
        bytes = body.len();
        let headers = match source {
            Source::BambooHr => Headers::from_pairs([
                ("X-BambooHR-Signature", sign::bamboohr(&key, ts, &body)),
                ("X-BambooHR-Timestamp", ts.to_string()),
            ]),
            _ => Headers::from_pairs([("Bob-Signature", sign::hibob(&key, &body))]),
        };
        let req = Incoming {
            account: "acct-bench",
            source: source.as_str(),
            content_type: Some("application/json"),
            headers: &headers,
            body: &body,
        };
        let start = Instant::now();
        let answer = receive(&deps, req).await;
        samples.push(start.elapsed());
        if !matches!(answer, Answer::Accepted { .. }) {
            unexpected += 1;
        }
        if i % 256 == 0 {
            queue.drain();
        }
    }
    row(case, bytes, samples, unexpected)
}

/// Run every case `iterations` times.
pub async fn run(iterations: usize) -> BenchReport {
    let iterations = iterations.max(1);
    let mut report = BenchReport::default();
    // Verification alone: a 10 KB body, two secrets (a rotation in progress, the current one
    // matching second), two signatures in the header.
    let body = bamboohr_body(0);
    let old = SigningKey::from_bytes(b"old-secret-old-secret-old-secret");
    let new = SigningKey::from_bytes(b"new-secret-new-secret-new-secret");
    let ts = t0().timestamp();
    let header = format!(
        "{} {}",
        sign::standard(&old, "msg_bench", ts, &body),
        sign::standard(&new, "msg_bench", ts, &body)
    );
    let headers = Headers::from_pairs([
        ("webhook-id", "msg_bench".to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", header),
    ]);
    let keys = [new.clone(), old.clone()];
    let mut samples = Vec::with_capacity(iterations);
    let mut unexpected = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        let ok = verify::verify(Source::Standard, &headers, &body, &keys, t0()).is_ok();
        samples.push(start.elapsed());
        unexpected += usize::from(!ok);
    }
    report.rows.push(row(
        "standard webhooks: verify only (2 keys, 2 signatures)",
        body.len(),
        samples,
        unexpected,
    ));
    report.rows.push(
        receive_case(
            "bamboohr: verify + parse 40 employees + store + enqueue",
            Source::BambooHr,
            "bamboo-private-key",
            iterations,
        )
        .await,
    );
    report.rows.push(
        receive_case(
            "hibob: verify + parse + store + enqueue",
            Source::HiBob,
            "hibob-secret",
            iterations,
        )
        .await,
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_case_gets_the_expected_answer() {
        // No timing assertion: only that the measured path is the accepted one.
        let report = run(20).await;
        assert_eq!(report.rows.len(), 3);
        for r in &report.rows {
            assert_eq!(r.unexpected, 0, "{}", r.case);
            assert_eq!(r.iterations, 20);
            assert!(
                r.body_bytes >= BODY_BYTES - 256,
                "{} has {} bytes",
                r.case,
                r.body_bytes
            );
        }
        assert!(report.to_string().contains("p99"));
    }
}
