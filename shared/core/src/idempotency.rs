//! Idempotency records in the style of AWS Lambda Powertools: one record per idempotency key,
//! `InProgress` while the work runs and `Completed` (with the stored answer) afterwards.
//!
//! ```text
//!  (none) ──begin──▶ InProgress ──complete──▶ Completed ──expires_at passes──▶ (none)
//!                      │    └── in_progress_until passes: the next begin takes it over
//!                      └──release (the work failed)──▶ (none)
//! ```
//!
//! A `begin` on a key whose record is live answers what is there instead of starting again:
//! the stored answer of a completed run ([`Begin::AlreadyCompleted`]), or [`Begin::InProgress`]
//! while another worker holds it (the caller retries later). A record whose payload hash differs
//! answers [`Begin::PayloadMismatch`]: the same key was reused for different work, which is a
//! caller's bug and never silently answered with the other work's result.
//!
//! Users: the reconcile function (key: the SQS message id, so a message redelivered while, or
//! after, another worker applies it does nothing twice) and, later, write-back actions (key: the
//! action's idempotency key, so a retried action has one effect and gets the same answer).
//! The port is [`crate::ports::IdempotencyStore`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What `begin` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// No live record: the caller owns the key now and must `complete` or `release` it.
    Started,
    /// The work was done before; this is the answer it stored.
    AlreadyCompleted(String),
    /// Another worker is doing the work; its claim lasts until `until`.
    InProgress { until: DateTime<Utc> },
    /// A live record for this key was made for a different payload.
    PayloadMismatch,
}

/// The status of a stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordStatus {
    InProgress,
    Completed,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::InProgress => "INPROGRESS",
            RecordStatus::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "INPROGRESS" => Some(RecordStatus::InProgress),
            "COMPLETED" => Some(RecordStatus::Completed),
            _ => None,
        }
    }
}

/// A claim on a key, as `begin` receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    /// A digest of the work's input (e.g. SHA-256 of the message body, hex).
    pub payload_hash: String,
    pub now: DateTime<Utc>,
    /// When the record (and a completed answer) stops counting; stores also set their TTL here.
    pub expires_at: DateTime<Utc>,
    /// When an in-progress claim is considered abandoned (the worker died), so another `begin`
    /// may take it over. Shorter than `expires_at`.
    pub in_progress_until: DateTime<Utc>,
}

/// How long records and claims last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// Lifetime of a record (Powertools' default: one hour).
    pub expiry: Duration,
    /// Lifetime of an in-progress claim: at least the longest the work can take (for a Lambda,
    /// the function timeout), so a live worker is never taken over.
    pub in_progress_expiry: Duration,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            expiry: Duration::hours(1),
            in_progress_expiry: Duration::minutes(15),
        }
    }
}

impl IdempotencyConfig {
    /// The claim for `key` at `now`.
    pub fn claim(
        &self,
        key: impl Into<String>,
        payload_hash: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Claim {
        Claim {
            key: key.into(),
            payload_hash: payload_hash.into(),
            now,
            expires_at: now + self.expiry,
            in_progress_until: now + self.in_progress_expiry.min(self.expiry),
        }
    }
}

/// A stored record, as adapters keep it. Adapters that cannot express the decision in one
/// conditional write (SQLite, memory) share [`decide`] so they answer exactly alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub status: RecordStatus,
    pub payload_hash: String,
    pub expires_at: DateTime<Utc>,
    pub in_progress_until: DateTime<Utc>,
    pub result: Option<String>,
}

impl IdempotencyRecord {
    /// Whether the record still counts at `now`: not expired, and not an abandoned claim.
    /// This is the negation of the DynamoDB condition
    /// `attribute_not_exists(pk) OR expires_at < :now OR (status = INPROGRESS AND in_progress_until < :now)`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        if self.expires_at < now {
            return false;
        }
        !(self.status == RecordStatus::InProgress && self.in_progress_until < now)
    }

    /// The answer a live record gives to `claim` (never `Started`).
    pub fn answer(&self, claim: &Claim) -> Begin {
        if self.payload_hash != claim.payload_hash {
            return Begin::PayloadMismatch;
        }
        match self.status {
            RecordStatus::Completed => {
                Begin::AlreadyCompleted(self.result.clone().unwrap_or_default())
            }
            RecordStatus::InProgress => Begin::InProgress {
                until: self.in_progress_until,
            },
        }
    }
}

/// `begin` over an existing record (if any): `Ok(record to store)` when the claim starts, or
/// `Err(answer)` when a live record answers instead.
pub fn decide(
    existing: Option<&IdempotencyRecord>,
    claim: &Claim,
) -> Result<IdempotencyRecord, Begin> {
    if let Some(r) = existing
        && r.is_live(claim.now)
    {
        return Err(r.answer(claim));
    }
    Ok(IdempotencyRecord {
        status: RecordStatus::InProgress,
        payload_hash: claim.payload_hash.clone(),
        expires_at: claim.expires_at,
        in_progress_until: claim.in_progress_until,
        result: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + s, 0).unwrap_or_default()
    }

    fn cfg() -> IdempotencyConfig {
        IdempotencyConfig {
            expiry: Duration::seconds(3600),
            in_progress_expiry: Duration::seconds(120),
        }
    }

    #[test]
    fn an_in_progress_claim_is_live_until_its_own_expiry_and_a_completed_one_until_the_record_expiry()
     {
        let claim = cfg().claim("k", "h", t(0));
        let mut rec = decide(None, &claim).unwrap_or_else(|b| panic!("{b:?}"));
        assert!(rec.is_live(t(120)));
        assert!(!rec.is_live(t(121)));
        rec.status = RecordStatus::Completed;
        rec.result = Some("r".into());
        assert!(rec.is_live(t(3600)));
        assert!(!rec.is_live(t(3601)));
    }

    #[test]
    fn a_live_record_answers_with_its_result_or_a_mismatch() {
        let claim = cfg().claim("k", "h", t(0));
        let mut rec = decide(None, &claim).unwrap_or_else(|b| panic!("{b:?}"));
        assert_eq!(
            decide(Some(&rec), &cfg().claim("k", "h", t(5))),
            Err(Begin::InProgress { until: t(120) })
        );
        rec.status = RecordStatus::Completed;
        rec.result = Some("42".into());
        assert_eq!(
            decide(Some(&rec), &cfg().claim("k", "h", t(5))),
            Err(Begin::AlreadyCompleted("42".into()))
        );
        assert_eq!(
            decide(Some(&rec), &cfg().claim("k", "other", t(5))),
            Err(Begin::PayloadMismatch)
        );
        assert!(decide(Some(&rec), &cfg().claim("k", "other", t(4000))).is_ok());
    }

    #[test]
    fn the_in_progress_expiry_never_outlives_the_record() {
        let c = IdempotencyConfig {
            expiry: Duration::seconds(10),
            in_progress_expiry: Duration::seconds(60),
        }
        .claim("k", "h", t(0));
        assert_eq!(c.in_progress_until, t(10));
    }
}
