//! Deliveries: how an incoming request is answered (a pure function of the request, the
//! endpoint and its keys), and the delivery log record every answer leaves.
//!
//! The answers: 404 for an unknown *or* disabled endpoint (the same answer, so nobody learns
//! whether an account exists), 413 over the size limit, 415 not JSON, 401 a missing or bad
//! signature, 400 a payload we cannot read (naming what is wrong), 200 for a duplicate (same
//! `webhook-id`, or the same body for BambooHR and HiBob, which send no event id), and 202 for
//! an accepted delivery once it is stored and queued.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Source;
use super::endpoint::{EndpointKey, WebhookEndpoint};
use super::payload::{self, HrEvent, ParsedDelivery, PayloadError};
use super::verify::{self, Headers, SigningKey, Verified, VerifyError};
use crate::model::TenantId;

/// The default body limit: 256 KiB (a BambooHR batch of 100 employees fits many times over).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Limits of the classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such webhook endpoint")]
    NotFound,
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unauthorized(#[from] VerifyError),
    #[error("{0}")]
    BadPayload(#[from] PayloadError),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotFound => 404,
            Refusal::TooLarge { .. } => 413,
            Refusal::UnsupportedMediaType => 415,
            Refusal::Unauthorized(_) => 401,
            Refusal::BadPayload(_) => 400,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::TooLarge { .. } => "payload_too_large",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
            Refusal::Unauthorized(_) => "invalid_signature",
            Refusal::BadPayload(_) => "invalid_payload",
        }
    }
}

/// What the classification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// HiBob's connection test: answered 200, stored nowhere, starts nothing.
    Ping,
    Accept(Box<Accepted>),
    Refuse(Refusal),
}

/// A verified, parsed delivery, not yet stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub verified: Verified,
    pub parsed: ParsedDelivery,
    /// What makes a retry by the sender the same delivery.
    pub dedupe_key: String,
}

/// Whether a content type is JSON (`application/json`, any parameters, any case).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
    })
}

/// Classify a request to a known, enabled endpoint of `source`. `keys` are the endpoint's
/// live secrets (current first). The caller answers `NotFound` itself when there is no such
/// endpoint or it is disabled.
pub fn check(
    source: Source,
    content_type: Option<&str>,
    headers: &Headers,
    body: &[u8],
    keys: &[SigningKey],
    now: DateTime<Utc>,
    limits: Limits,
) -> Checked {
    if body.len() > limits.max_body_bytes {
        return Checked::Refuse(Refusal::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    if source == Source::HiBob && payload::is_hibob_ping(body) {
        return Checked::Ping;
    }
    if !is_json(content_type) {
        return Checked::Refuse(Refusal::UnsupportedMediaType);
    }
    let verified = match verify::verify(source, headers, body, keys, now) {
        Ok(v) => v,
        Err(e) => return Checked::Refuse(Refusal::Unauthorized(e)),
    };
    let parsed = match payload::parse(source, body) {
        Ok(p) => p,
        Err(e) => return Checked::Refuse(Refusal::BadPayload(e)),
    };
    let dedupe_key = match (&verified.message_id, &parsed.event_id) {
        (Some(id), _) => format!("id:{id}"),
        (None, Some(id)) => format!("event:{id}"),
        // BambooHR and HiBob send no delivery id: a retry sends the same body.
        (None, None) => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    };
    Checked::Accept(Box::new(Accepted {
        verified,
        parsed,
        dedupe_key,
    }))
}

/// The id of the accepted delivery with `dedupe_key` on `endpoint`: the same for every retry,
/// so storing it is a conditional create.
pub fn delivery_id(endpoint: &EndpointKey, dedupe_key: &str) -> String {
    let ns = uuid::Uuid::from_bytes(*b"entra-sync:hrdlv");
    uuid::Uuid::new_v5(&ns, format!("{endpoint}\n{dedupe_key}").as_bytes()).to_string()
}

/// How a delivery was answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    /// A retry of delivery `of`: answered 200, nothing done again.
    Duplicate {
        of: String,
    },
    Refused {
        status: u16,
        code: String,
        reason: String,
    },
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Refused { .. } => "refused",
        }
    }
}

/// Where an accepted delivery's processing stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Processing {
    /// Stored and queued; not processed yet.
    Queued,
    /// Processed: what was started, held for review, or left alone (and why, per event: an
    /// event that could not be applied says so here; `replay_delivery` runs it again once the
    /// cause is fixed).
    Done {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// Not processed: a duplicate or a refusal.
    NotApplicable,
}

/// One row of an endpoint's delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint: EndpointKey,
    pub tenant_id: TenantId,
    pub received_at: DateTime<Utc>,
    /// `webhook-id` or the provider's event id, when the delivery had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The parsed events (accepted deliveries): what processing works from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<HrEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    pub processing: Processing,
    /// Workflows this delivery started (each links back with `WorkflowOrigin::HrWebhook`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow_ids: Vec<String>,
    /// Review items this delivery opened (people it could not match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_ids: Vec<String>,
    #[serde(default)]
    pub rev: u64,
}

impl Delivery {
    /// The accepted delivery, to store before answering.
    pub fn accepted(endpoint: &WebhookEndpoint, a: &Accepted, now: DateTime<Utc>) -> Self {
        Self {
            id: delivery_id(&endpoint.key, &a.dedupe_key),
            endpoint: endpoint.key.clone(),
            tenant_id: endpoint.tenant_id.clone(),
            received_at: now,
            source_event_id: a
                .verified
                .message_id
                .clone()
                .or_else(|| a.parsed.event_id.clone()),
            dedupe_key: Some(a.dedupe_key.clone()),
            outcome: Outcome::Accepted,
            events: a.parsed.events.clone(),
            ignored: a.parsed.ignored.clone(),
            processing: Processing::Queued,
            workflow_ids: vec![],
            review_ids: vec![],
            rev: 0,
        }
    }

    /// A log row for a duplicate or a refusal (its own random id).
    pub fn logged(
        endpoint: &WebhookEndpoint,
        outcome: Outcome,
        source_event_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            endpoint: endpoint.key.clone(),
            tenant_id: endpoint.tenant_id.clone(),
            received_at: now,
            source_event_id,
            dedupe_key: None,
            outcome,
            events: vec![],
            ignored: vec![],
            processing: Processing::NotApplicable,
            workflow_ids: vec![],
            review_ids: vec![],
            rev: 0,
        }
    }
}

/// The listing key of a delivery: newest first is descending order of it.
pub fn delivery_listing_key(d: &Delivery) -> String {
    format!("{:020}#{}", d.received_at.timestamp_millis().max(0), d.id)
}

/// What the route answers, decided by the receive service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 202: stored and queued.
    Accepted {
        delivery_id: String,
    },
    /// 200: seen before; nothing done twice.
    Duplicate {
        delivery_id: String,
    },
    /// 200: HiBob's connection test.
    Ping,
    Refused(Refusal),
    /// 503: the store or queue is unavailable; the sender should retry (nothing was lost:
    /// a retry finds what was stored).
    Unavailable,
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Accepted { .. } => 202,
            Answer::Duplicate { .. } | Answer::Ping => 200,
            Answer::Refused(r) => r.status(),
            Answer::Unavailable => 503,
        }
    }

    /// A stable snake_case code for the one error format (`error` field).
    pub fn code(&self) -> &'static str {
        match self {
            Answer::Accepted { .. } => "accepted",
            Answer::Duplicate { .. } => "duplicate",
            Answer::Ping => "ping",
            Answer::Refused(r) => r.code(),
            Answer::Unavailable => "unavailable",
        }
    }

    /// The message for people (never a secret, a tag or internals).
    pub fn message(&self) -> String {
        match self {
            Answer::Accepted { .. } => "delivery accepted".into(),
            Answer::Duplicate { .. } => "delivery already received; nothing done again".into(),
            Answer::Ping => "pong".into(),
            Answer::Refused(r) => r.to_string(),
            Answer::Unavailable => "temporarily unavailable; retry later".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::model::AccountId;
    use crate::webhooks::verify::sign;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn std_req(body: &[u8], key: &SigningKey, id: &str) -> Headers {
        let ts = now().timestamp();
        Headers::from_pairs([
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sign::standard(key, id, ts, body)),
        ])
    }

    const HIRE: &[u8] = br#"{"type":"hire","data":{"employee_id":"E1","start_date":"2026-12-14"}}"#;

    #[test]
    fn each_refusal_gets_its_status_and_names_the_problem() {
        let key = SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef");
        let h = std_req(HIRE, &key, "msg_1");
        let json = Some("application/json; charset=utf-8");
        let check = |ct, headers: &Headers, body: &[u8], limits| {
            check(
                Source::Standard,
                ct,
                headers,
                body,
                std::slice::from_ref(&key),
                now(),
                limits,
            )
        };
        let status = |c: Checked| match c {
            Checked::Refuse(r) => r.status(),
            Checked::Accept(_) => 202,
            Checked::Ping => 200,
        };
        assert_eq!(status(check(json, &h, HIRE, Limits::default())), 202);
        assert_eq!(
            status(check(json, &h, HIRE, Limits { max_body_bytes: 10 })),
            413
        );
        assert_eq!(
            status(check(Some("text/plain"), &h, HIRE, Limits::default())),
            415
        );
        assert_eq!(status(check(None, &h, HIRE, Limits::default())), 415);
        assert_eq!(
            status(check(json, &Headers::default(), HIRE, Limits::default())),
            401
        );
        let bad = br#"{"type":"hire","data":{"employee_id":"E1"}}"#;
        let hb = std_req(bad, &key, "msg_2");
        match check(json, &hb, bad, Limits::default()) {
            Checked::Refuse(r @ Refusal::BadPayload(_)) => {
                assert_eq!(r.status(), 400);
                assert!(r.to_string().contains("data.start_date"), "{r}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_dedupe_key_is_the_webhook_id_or_the_body_hash() {
        let key = SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef");
        let json = Some("application/json");
        let Checked::Accept(a) = check(
            Source::Standard,
            json,
            &std_req(HIRE, &key, "msg_9"),
            HIRE,
            std::slice::from_ref(&key),
            now(),
            Limits::default(),
        ) else {
            panic!()
        };
        assert_eq!(a.dedupe_key, "id:msg_9");
        let body = br#"{"type":"employee.left","version":"v2","data":{"employeeId":"9"}}"#;
        let h = Headers::from_pairs([("bob-signature", sign::hibob(&key, body))]);
        let Checked::Accept(b) = check(
            Source::HiBob,
            json,
            &h,
            body,
            std::slice::from_ref(&key),
            now(),
            Limits::default(),
        ) else {
            panic!()
        };
        assert!(b.dedupe_key.starts_with("sha256:"));
        let ep = EndpointKey {
            account_id: AccountId("a".into()),
            source: Source::HiBob,
        };
        assert_eq!(
            delivery_id(&ep, &b.dedupe_key),
            delivery_id(&ep, &b.dedupe_key)
        );
        let other = EndpointKey {
            account_id: AccountId("b".into()),
            source: Source::HiBob,
        };
        assert_ne!(
            delivery_id(&ep, &b.dedupe_key),
            delivery_id(&other, &b.dedupe_key)
        );
    }

    #[test]
    fn delivery_rows_round_trip_through_json_as_adapters_store_them() {
        let key = SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef");
        let Checked::Accept(a) = check(
            Source::Standard,
            Some("application/json"),
            &std_req(HIRE, &key, "msg_j"),
            HIRE,
            std::slice::from_ref(&key),
            now(),
            Limits::default(),
        ) else {
            panic!()
        };
        let ep = WebhookEndpoint::new(
            EndpointKey {
                account_id: AccountId("a".into()),
                source: Source::Standard,
            },
            TenantId::new("t"),
            now(),
        );
        let accepted = Delivery::accepted(&ep, &a, now());
        let refused = Delivery::logged(
            &ep,
            Outcome::Refused {
                status: 401,
                code: "invalid_signature".into(),
                reason: "no signature matched".into(),
            },
            Some("msg_x".into()),
            now(),
        );
        let dup = Delivery::logged(
            &ep,
            Outcome::Duplicate {
                of: accepted.id.clone(),
            },
            None,
            now(),
        );
        for d in [accepted, refused, dup] {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(
                serde_json::from_str::<Delivery>(&json).unwrap(),
                d,
                "{json}"
            );
        }
    }

    #[test]
    fn hibob_ping_is_answered_without_a_signature() {
        let c = check(
            Source::HiBob,
            Some("text/plain"),
            &Headers::default(),
            b"Ping test",
            &[],
            now(),
            Limits::default(),
        );
        assert_eq!(c, Checked::Ping);
        let c = check(
            Source::Standard,
            Some("text/plain"),
            &Headers::default(),
            b"Ping test",
            &[],
            now(),
            Limits::default(),
        );
        assert!(matches!(c, Checked::Refuse(Refusal::UnsupportedMediaType)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(384))]

        /// Fuzzed headers, bodies and content types: never a panic, never an acceptance
        /// without a valid signature, and every refusal is a 4xx.
        #[test]
        fn fuzzed_requests_are_refused_with_a_4xx_and_never_panic(
            source in prop_oneof![Just(Source::Standard), Just(Source::BambooHr), Just(Source::HiBob)],
            ct in proptest::option::of(prop_oneof![Just("application/json".to_string()), "[a-z/;= -]{0,30}"]),
            pairs in proptest::collection::vec((
                prop_oneof![
                    Just("webhook-id".to_string()), Just("webhook-timestamp".to_string()),
                    Just("webhook-signature".to_string()), Just("x-bamboohr-signature".to_string()),
                    Just("x-bamboohr-timestamp".to_string()), Just("bob-signature".to_string()),
                ],
                prop_oneof!["\\PC{0,60}", "v1,[A-Za-z0-9+/=]{0,64}", "[0-9]{10}", "[0-9a-f]{64}"],
            ), 0..5),
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                Just(HIRE.to_vec()),
                Just(br#"{"employees":[{"id":"1","fields":{"Hire Date":"2026-01-01"}}]}"#.to_vec()),
            ],
        ) {
            let key = SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef");
            let headers = Headers::from_pairs(pairs);
            match check(source, ct.as_deref(), &headers, &body, std::slice::from_ref(&key), now(), Limits { max_body_bytes: 200 }) {
                Checked::Accept(_) => prop_assert!(false, "accepted without a valid signature"),
                Checked::Ping => prop_assert_eq!(source, Source::HiBob),
                Checked::Refuse(r) => prop_assert!((400..500).contains(&r.status()), "{}", r.status()),
            }
        }
    }
}
