//! Outbound webhooks: the host product's endpoints that receive the change events, signed
//! with Standard Webhooks. Pure decisions live here (the endpoint and delivery records, the
//! retry schedule, what an attempt's outcome changes, which endpoint wants which event, the
//! SSRF rule in [`ssrf`]); the use cases, over small ports, are in [`service`]. The reader's
//! guide is the "Outbound webhooks" section of docs/events.md.

pub mod ports;
pub mod service;
pub mod ssrf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{ChangeEvent, ChangeKind};
use crate::model::{AccountId, TenantId};
use crate::webhooks::endpoint::SecretRef;
use crate::webhooks::verify::{SigningKey, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, sign};

/// The waits before each attempt, counted from the previous failed one: immediately, 5 s,
/// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 hours in all; with the jitter, a delivery
/// is given up between about 22 and 34 hours after its first attempt).
pub const SCHEDULE_SECONDS: [i64; 8] = [
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
];

/// Each wait is stretched or shortened by up to this fraction at random, so endpoints that
/// failed together are not retried together.
pub const JITTER: f64 = 0.2;

/// How long a claimed delivery is left alone before another worker may try it (a worker
/// killed during a POST leaves its delivery claimed this long).
pub fn claim_lease() -> Duration {
    Duration::seconds(60)
}

/// The wait before the attempt after `failed_attempts` failed ones; `None` once the schedule
/// is exhausted. `jitter` is a number in [-1, 1] (random in production) scaled to ±20%.
pub fn next_delay(failed_attempts: usize, jitter: f64) -> Option<Duration> {
    let base = *SCHEDULE_SECONDS.get(failed_attempts)?;
    let j = jitter.clamp(-1.0, 1.0) * JITTER;
    let ms = (base as f64 * 1000.0 * (1.0 + j)).round() as i64;
    Some(Duration::milliseconds(ms.max(0)))
}

/// The delivery settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundPolicy {
    pub urls: ssrf::UrlPolicy,
    /// An endpoint whose deliveries failed without a success for longer than this is disabled.
    pub disable_after: Duration,
    /// The time one POST may take.
    pub timeout: std::time::Duration,
    /// Endpoints delivered to at once (each endpoint's deliveries go one after the other).
    pub concurrency: usize,
    /// Deliveries claimed per pass.
    pub batch: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            urls: ssrf::UrlPolicy::default(),
            disable_after: Duration::days(5),
            timeout: std::time::Duration::from_secs(10),
            concurrency: 8,
            batch: 100,
        }
    }
}

/// Whether an endpoint receives deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EndpointState {
    Enabled,
    Disabled { reason: String, at: DateTime<Utc> },
}

/// One endpoint of an account. The record names its signing secrets in the vault and never
/// holds their values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundEndpoint {
    /// `ep_` and 32 hex digits.
    pub id: String,
    pub account_id: AccountId,
    pub url: String,
    /// The event types it receives (exact type names); `None` for every type.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    pub state: EndpointState,
    /// Current secret first, then a rotated-out one still signing during its grace period.
    pub secrets: Vec<SecretRef>,
    pub generation: u32,
    /// Since when its deliveries fail without a success in between.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change; the sequence of its events.
    #[serde(default)]
    pub rev: u64,
}

/// The vault name of secret `generation` of an endpoint.
pub fn secret_name(account: &AccountId, endpoint_id: &str, generation: u32) -> String {
    format!("outbound/{account}/{endpoint_id}/signing/{generation}")
}

/// How long a rotated-out secret still signs (beside the new one).
pub fn rotation_grace() -> Duration {
    Duration::hours(24)
}

impl OutboundEndpoint {
    pub fn new(
        id: String,
        account_id: AccountId,
        url: String,
        event_types: Option<Vec<String>>,
        now: DateTime<Utc>,
    ) -> Self {
        let first = SecretRef {
            name: secret_name(&account_id, &id, 1),
            created_at: now,
            valid_until: None,
        };
        Self {
            id,
            account_id,
            url,
            event_types,
            state: EndpointState::Enabled,
            secrets: vec![first],
            generation: 1,
            failing_since: None,
            created_at: now,
            updated_at: now,
            rev: 1,
        }
    }

    /// A new endpoint id.
    pub fn new_id() -> String {
        format!("ep_{}", Uuid::new_v4().simple())
    }

    pub fn is_enabled(&self) -> bool {
        self.state == EndpointState::Enabled
    }

    /// Whether this endpoint receives `event` (`tenant_account` is the account of the event's
    /// directory, for the events that carry none themselves).
    pub fn wants(&self, event: &ChangeEvent, tenant_account: Option<&AccountId>) -> bool {
        let account = event.account_id.as_ref().or(tenant_account);
        self.is_enabled()
            && account == Some(&self.account_id)
            && self
                .event_types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == event.event_type()))
    }

    /// The names of the secrets that sign at `now`, current first.
    pub fn signing_secret_names(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.valid_until.is_none_or(|u| now < u))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// A new current secret; the previous one keeps signing for [`rotation_grace`]. Returns
    /// the new vault name and the names no longer used (the caller deletes them).
    pub fn rotate(&mut self, now: DateTime<Utc>) -> (String, Vec<String>) {
        let until = now + rotation_grace();
        for s in &mut self.secrets {
            s.valid_until = Some(s.valid_until.map_or(until, |u| u.min(until)));
        }
        self.generation += 1;
        let name = secret_name(&self.account_id, &self.id, self.generation);
        self.secrets.insert(
            0,
            SecretRef {
                name: name.clone(),
                created_at: now,
                valid_until: None,
            },
        );
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.secrets)
            .into_iter()
            .enumerate()
            .partition(|(i, s)| *i < 2 && s.valid_until.is_none_or(|u| now < u));
        self.secrets = keep.into_iter().map(|(_, s)| s).collect();
        self.touch(now);
        (name, gone.into_iter().map(|(_, s)| s.name).collect())
    }

    /// Disable it; returns the event saying so (`None` when it was disabled already).
    pub fn disable(
        &mut self,
        reason: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Option<ChangeEvent> {
        if !self.is_enabled() {
            return None;
        }
        self.state = EndpointState::Disabled {
            reason: reason.into(),
            at: now,
        };
        self.touch(now);
        self.disabled_event()
    }

    /// The `webhook_endpoint.disabled` event of this endpoint as it stands once disabled
    /// (`None` while enabled): a function of the stored record alone, so a store that derives
    /// events from its committed writes (the DynamoDB stream on AWS, through
    /// [`endpoint_event`]) gives the event [`Self::disable`] returns, with the same id.
    pub fn disabled_event(&self) -> Option<ChangeEvent> {
        let EndpointState::Disabled { reason, at } = &self.state else {
            return None;
        };
        Some(
            ChangeEvent::new(
                &TenantId::new(""),
                self.id.clone(),
                self.rev,
                ChangeKind::WebhookEndpointDisabled {
                    endpoint_id: self.id.clone(),
                    url: self.url.clone(),
                    reason: reason.clone(),
                },
            )
            .account(Some(self.account_id.clone()))
            .at(*at),
        )
    }

    /// Enable it again; the failure window starts afresh.
    pub fn enable(&mut self, now: DateTime<Utc>) {
        if !self.is_enabled() {
            self.state = EndpointState::Enabled;
            self.failing_since = None;
            self.touch(now);
        }
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.rev += 1;
    }
}

/// The event of an endpoint write, from the record before and after it: the endpoint was
/// enabled (or new) and is now disabled. Re-enabling, rotating and the failure window's
/// bookkeeping give none.
pub fn endpoint_event(
    before: Option<&OutboundEndpoint>,
    after: &OutboundEndpoint,
) -> Option<ChangeEvent> {
    if before.is_some_and(|b| !b.is_enabled()) {
        return None;
    }
    after.disabled_event()
}

/// A delivery to create when an event is fanned out, with the event's body (the envelope as
/// JSON, what is POSTed). `position` orders the deliveries of one fan-out in the endpoint's
/// log (they share `created_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub delivery: OutboundDelivery,
    pub body: String,
    pub position: usize,
}

/// The deliveries of `events` (each with the account of its directory, for the events that
/// carry none) to the endpoints that want them, due at `now`: one per (endpoint, event), in
/// the order of the events. `endpoints` holds the endpoints of the events' accounts.
pub fn fan_out(
    events: &[(ChangeEvent, Option<AccountId>)],
    endpoints: &[OutboundEndpoint],
    now: DateTime<Utc>,
) -> Result<Vec<NewDelivery>, serde_json::Error> {
    let mut out = Vec::new();
    for (event, tenant_account) in events {
        let wanting: Vec<&OutboundEndpoint> = endpoints
            .iter()
            .filter(|ep| ep.wants(event, tenant_account.as_ref()))
            .collect();
        if wanting.is_empty() {
            continue;
        }
        let body = serde_json::to_string(event)?;
        for ep in wanting {
            out.push(NewDelivery {
                delivery: OutboundDelivery::new(&ep.id, event, now),
                body: body.clone(),
                position: out.len(),
            });
        }
    }
    Ok(out)
}

/// Where a delivery stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending {
        next_attempt_at: DateTime<Utc>,
    },
    Delivered {
        at: DateTime<Utc>,
    },
    /// The schedule is exhausted (or the endpoint was disabled while it failed); a manual
    /// redelivery starts it again.
    Failed {
        at: DateTime<Utc>,
    },
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The receiver answered with this HTTP status.
    Status { status: u16 },
    /// No answer in time.
    Timeout,
    /// No connection, or the SSRF rule refused the address (in plain words).
    Error { error: String },
}

impl AttemptOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptOutcome::Status { status } if (200..300).contains(status))
    }
}

/// One attempt: when, how it ended, how long it took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: AttemptOutcome,
    pub latency_ms: u64,
}

/// The delivery of one event to one endpoint, with its attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundDelivery {
    /// `dl_` and 32 hex digits, derived from (endpoint, event): one delivery per pair.
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    #[serde(flatten)]
    pub state: DeliveryState,
    pub attempts: Vec<Attempt>,
    /// Failed attempts since the last manual redelivery (the schedule's position).
    #[serde(default)]
    pub failures: usize,
    pub created_at: DateTime<Utc>,
}

/// The id of the delivery of `event_id` to `endpoint_id`.
pub fn delivery_id(endpoint_id: &str, event_id: &str) -> String {
    let ns = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:entra-sync:outbound-delivery");
    let id = Uuid::new_v5(&ns, format!("{endpoint_id}\n{event_id}").as_bytes());
    format!("dl_{}", id.simple())
}

/// Attempts kept per delivery (the oldest are dropped beyond it; a manual redelivery adds
/// a schedule's worth).
pub const MAX_ATTEMPTS_KEPT: usize = 50;

impl OutboundDelivery {
    /// A delivery of `event` to `endpoint`, due at once.
    pub fn new(endpoint_id: &str, event: &ChangeEvent, now: DateTime<Utc>) -> Self {
        let event_id = event.id().to_string();
        Self {
            id: delivery_id(endpoint_id, &event_id),
            endpoint_id: endpoint_id.to_owned(),
            event_id,
            event_type: event.event_type().to_owned(),
            state: DeliveryState::Pending {
                next_attempt_at: now,
            },
            attempts: Vec::new(),
            failures: 0,
            created_at: now,
        }
    }

    /// Due again now, with a fresh schedule (manual redelivery).
    pub fn redeliver(&mut self, now: DateTime<Utc>) {
        self.state = DeliveryState::Pending {
            next_attempt_at: now,
        };
        self.failures = 0;
    }
}

/// Apply an attempt's outcome to the delivery and its endpoint: delivered; or the next attempt
/// by the schedule; or failed. The endpoint is disabled when this failure exhausts the
/// schedule or when its deliveries have failed without a success for longer than
/// [`OutboundPolicy::disable_after`]; the returned event says so.
pub fn after_attempt(
    delivery: &mut OutboundDelivery,
    endpoint: &mut OutboundEndpoint,
    attempt: Attempt,
    policy: &OutboundPolicy,
    jitter: f64,
) -> Option<ChangeEvent> {
    let at = attempt.at;
    let success = attempt.outcome.is_success();
    delivery.attempts.push(attempt);
    if delivery.attempts.len() > MAX_ATTEMPTS_KEPT {
        let extra = delivery.attempts.len() - MAX_ATTEMPTS_KEPT;
        delivery.attempts.drain(..extra);
    }
    if success {
        delivery.state = DeliveryState::Delivered { at };
        if endpoint.failing_since.take().is_some() {
            endpoint.updated_at = at;
        }
        return None;
    }
    delivery.failures += 1;
    let since = *endpoint.failing_since.get_or_insert(at);
    let next = next_delay(delivery.failures, jitter);
    delivery.state = match next {
        Some(d) => DeliveryState::Pending {
            next_attempt_at: at + d,
        },
        None => DeliveryState::Failed { at },
    };
    if next.is_none() {
        return endpoint.disable(
            format!(
                "a delivery failed {} times over the whole retry schedule",
                delivery.failures
            ),
            at,
        );
    }
    if at - since > policy.disable_after {
        return endpoint.disable(
            format!(
                "deliveries failed for more than {} days without a success",
                policy.disable_after.num_days()
            ),
            at,
        );
    }
    None
}

/// The Standard Webhooks headers of a delivery: `webhook-id` (the event id),
/// `webhook-timestamp` (unix seconds) and `webhook-signature` (`v1,<base64>` per signing
/// key, space separated).
pub fn signed_headers(
    event_id: &str,
    timestamp: i64,
    body: &[u8],
    keys: &[SigningKey],
) -> Vec<(&'static str, String)> {
    let signatures: Vec<String> = keys
        .iter()
        .map(|k| sign::standard(k, event_id, timestamp, body))
        .collect();
    vec![
        (WEBHOOK_ID, event_id.to_owned()),
        (WEBHOOK_TIMESTAMP, timestamp.to_string()),
        (WEBHOOK_SIGNATURE, signatures.join(" ")),
        ("content-type", "application/json".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn endpoint() -> OutboundEndpoint {
        OutboundEndpoint::new(
            "ep_1".into(),
            AccountId("acct".into()),
            "https://hooks.example.com/x".into(),
            None,
            t0(),
        )
    }

    fn event() -> ChangeEvent {
        ChangeEvent::new(
            &TenantId::new("t"),
            "u1",
            1,
            ChangeKind::DirectoryUserCreated {},
        )
        .account(Some(AccountId("acct".into())))
    }

    fn failed(at: DateTime<Utc>) -> Attempt {
        Attempt {
            at,
            outcome: AttemptOutcome::Status { status: 500 },
            latency_ms: 3,
        }
    }

    #[test]
    fn the_schedule_is_immediate_then_5s_5min_30min_2h_5h_10h_10h_then_exhausted() {
        let want = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(next_delay(i, 0.0), Some(Duration::seconds(*w)), "{i}");
        }
        assert_eq!(next_delay(8, 0.0), None);
        let total: i64 = want.iter().sum();
        assert!((20 * 3600..34 * 3600).contains(&total));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(next_delay(2, 1.0), Some(Duration::seconds(360)));
        assert_eq!(next_delay(2, -1.0), Some(Duration::seconds(240)));
        assert_eq!(next_delay(2, 7.0), Some(Duration::seconds(360)));
        for k in 0..=20 {
            let j = f64::from(k) / 10.0 - 1.0;
            let d = next_delay(4, j).unwrap().num_milliseconds();
            assert!((5_760_000..=8_640_000).contains(&d), "{j}: {d}");
        }
    }

    #[test]
    fn a_failure_schedules_the_next_attempt_and_a_success_delivers() {
        let mut ep = endpoint();
        let mut d = OutboundDelivery::new(&ep.id, &event(), t0());
        let p = OutboundPolicy::default();
        assert_eq!(after_attempt(&mut d, &mut ep, failed(t0()), &p, 0.0), None);
        assert_eq!(
            d.state,
            DeliveryState::Pending {
                next_attempt_at: t0() + Duration::seconds(5)
            }
        );
        assert_eq!(ep.failing_since, Some(t0()));
        let ok = Attempt {
            at: t0() + Duration::seconds(5),
            outcome: AttemptOutcome::Status { status: 204 },
            latency_ms: 1,
        };
        assert_eq!(after_attempt(&mut d, &mut ep, ok, &p, 0.0), None);
        assert!(matches!(d.state, DeliveryState::Delivered { .. }));
        assert_eq!(ep.failing_since, None);
        assert_eq!(d.attempts.len(), 2);
    }

    #[test]
    fn exhausting_the_schedule_fails_the_delivery_and_disables_the_endpoint() {
        let mut ep = endpoint();
        let mut d = OutboundDelivery::new(&ep.id, &event(), t0());
        let p = OutboundPolicy::default();
        let mut at = t0();
        for _ in 0..7 {
            assert_eq!(after_attempt(&mut d, &mut ep, failed(at), &p, 0.0), None);
            let DeliveryState::Pending { next_attempt_at } = d.state else {
                panic!("{:?}", d.state)
            };
            at = next_attempt_at;
        }
        let event = after_attempt(&mut d, &mut ep, failed(at), &p, 0.0).unwrap();
        assert_eq!(d.state, DeliveryState::Failed { at });
        assert!(!ep.is_enabled());
        assert_eq!(event.event_type(), "webhook_endpoint.disabled");
        assert_eq!(event.object_id, ep.id);
        assert_eq!(event.account_id, Some(AccountId("acct".into())));
    }

    #[test]
    fn failing_longer_than_the_window_disables_the_endpoint() {
        let mut ep = endpoint();
        let p = OutboundPolicy::default();
        ep.failing_since = Some(t0());
        let mut d = OutboundDelivery::new(&ep.id, &event(), t0());
        let four_days = t0() + Duration::days(4);
        assert_eq!(
            after_attempt(&mut d, &mut ep, failed(four_days), &p, 0.0),
            None
        );
        assert!(ep.is_enabled());
        let late = t0() + Duration::days(5) + Duration::seconds(1);
        let e = after_attempt(&mut d, &mut ep, failed(late), &p, 0.0).unwrap();
        assert!(!ep.is_enabled());
        let ChangeKind::WebhookEndpointDisabled { reason, .. } = e.kind else {
            panic!()
        };
        assert!(reason.contains("5 days"), "{reason}");
        // Disabled once: the next failure says nothing more.
        assert_eq!(after_attempt(&mut d, &mut ep, failed(late), &p, 0.0), None);
    }

    #[test]
    fn an_endpoint_wants_its_accounts_events_of_its_types() {
        let mut ep = endpoint();
        let e = event();
        assert!(ep.wants(&e, None));
        let other = e.clone().account(Some(AccountId("other".into())));
        assert!(!ep.wants(&other, None));
        let directory = e.clone().account(None);
        assert!(!ep.wants(&directory, None));
        assert!(ep.wants(&directory, Some(&AccountId("acct".into()))));
        ep.event_types = Some(vec!["user.created".into()]);
        assert!(!ep.wants(&e, None));
        ep.event_types = Some(vec!["directory.user.created".into()]);
        assert!(ep.wants(&e, None));
        ep.disable("test", t0());
        assert!(!ep.wants(&e, None));
    }

    #[test]
    fn rotation_signs_with_both_secrets_during_the_grace_then_forgets_the_old_one() {
        let mut ep = endpoint();
        let first = ep.secrets[0].name.clone();
        let (second, gone) = ep.rotate(t0());
        assert!(gone.is_empty());
        assert_eq!(
            ep.signing_secret_names(t0()),
            vec![second.as_str(), first.as_str()]
        );
        let later = t0() + rotation_grace();
        assert_eq!(ep.signing_secret_names(later), vec![second.as_str()]);
        let (third, gone) = ep.rotate(later);
        assert_eq!(gone, vec![first]);
        assert_eq!(
            ep.signing_secret_names(later),
            vec![third.as_str(), second.as_str()]
        );
    }

    #[test]
    fn the_disabled_event_derived_from_the_stored_endpoint_is_the_one_disable_returns() {
        let before = endpoint();
        let mut after = before.clone();
        let returned = after.disable("by hand", t0()).unwrap();
        assert_eq!(
            endpoint_event(Some(&before), &after),
            Some(returned.clone())
        );
        assert_eq!(endpoint_event(None, &after), Some(returned));
        // Written again while disabled (a rotation, the failure window): no second event.
        let mut rotated = after.clone();
        rotated.rotate(t0());
        assert_eq!(endpoint_event(Some(&after), &rotated), None);
        // Enabled, or still enabled: none.
        let mut enabled = rotated.clone();
        enabled.enable(t0());
        assert_eq!(endpoint_event(Some(&rotated), &enabled), None);
        assert_eq!(endpoint_event(Some(&before), &before), None);
    }

    #[test]
    fn fan_out_gives_one_delivery_per_wanting_endpoint_and_event_in_event_order() {
        let on = endpoint();
        let mut typed = OutboundEndpoint::new(
            "ep_2".into(),
            AccountId("acct".into()),
            "https://hooks.example.com/y".into(),
            Some(vec!["user.created".into()]),
            t0(),
        );
        let mut off = endpoint();
        off.id = "ep_off".into();
        off.disable("by hand", t0());
        let e1 = event();
        let e2 = ChangeEvent::new(
            &TenantId::new("t"),
            "u2",
            1,
            ChangeKind::DirectoryUserCreated {},
        );
        let events = vec![
            (e1.clone(), None),
            (e2.clone(), Some(AccountId("acct".into()))),
        ];
        let got = fan_out(&events, &[on.clone(), typed.clone(), off], t0()).unwrap();
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|d| {
                (
                    d.delivery.endpoint_id.as_str(),
                    d.delivery.event_id.as_str(),
                )
            })
            .collect();
        let (id1, id2) = (e1.id().to_string(), e2.id().to_string());
        assert_eq!(pairs, [("ep_1", id1.as_str()), ("ep_1", id2.as_str())]);
        assert_eq!(got[1].position, 1);
        assert_eq!(got[0].body, serde_json::to_string(&e1).unwrap());
        typed.event_types = None;
        let got = fan_out(&events[..1], &[on, typed], t0()).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn the_delivery_id_is_one_per_endpoint_and_event() {
        let a = delivery_id("ep_1", "e1");
        assert_eq!(a, delivery_id("ep_1", "e1"));
        assert_ne!(a, delivery_id("ep_2", "e1"));
        assert_ne!(a, delivery_id("ep_1", "e2"));
        assert!(a.starts_with("dl_") && a.len() == 35);
    }
}
