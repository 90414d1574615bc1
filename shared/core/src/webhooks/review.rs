//! The review list: HR people we could not match to exactly one directory user, held with the
//! reason until someone picks the user by hand (which then starts what the event asked for).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::endpoint::EndpointKey;
use super::payload::HrEvent;
use crate::model::TenantId;

/// Why a person is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ReviewReason {
    /// No directory user has the employee id or the work email.
    NoMatch,
    /// Several users match; their object ids.
    Ambiguous { candidates: Vec<String> },
}

impl ReviewReason {
    pub fn describe(&self, event: &HrEvent) -> String {
        let email = event.work_email.as_deref().unwrap_or("(none)");
        match self {
            ReviewReason::NoMatch => format!(
                "no directory user has employee id {} or email {email}",
                event.employee_id
            ),
            ReviewReason::Ambiguous { candidates } => format!(
                "{} directory users match employee id {} / email {email}: {}",
                candidates.len(),
                event.employee_id,
                candidates.join(", ")
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReviewStatus {
    Open,
    /// Someone picked the user; what was started.
    Resolved {
        user_id: String,
        by: String,
        at: DateTime<Utc>,
        #[serde(default)]
        workflow_ids: Vec<String>,
    },
    Dismissed {
        by: String,
        at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// Derived from the delivery and the event's place in it: processing a delivery twice
    /// opens one item.
    pub id: String,
    pub tenant_id: TenantId,
    pub endpoint: EndpointKey,
    pub delivery_id: String,
    /// The event's place in its delivery.
    pub event_index: u32,
    pub event: HrEvent,
    #[serde(flatten)]
    pub reason: ReviewReason,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub status: ReviewStatus,
    #[serde(default)]
    pub rev: u64,
}

/// The id of the review item for event `n` of delivery `delivery_id`.
pub fn review_id(delivery_id: &str, n: usize) -> String {
    let ns = uuid::Uuid::from_bytes(*b"entra-sync:hrrev");
    uuid::Uuid::new_v5(&ns, format!("{delivery_id}\n{n}").as_bytes()).to_string()
}

/// The listing key (newest first).
pub fn review_listing_key(r: &ReviewItem) -> String {
    format!("{:020}#{}", r.created_at.timestamp_millis().max(0), r.id)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::AccountId;
    use crate::webhooks::Source;

    #[test]
    fn review_items_round_trip_through_json_and_ids_are_stable() {
        let event = HrEvent {
            provider_id: "E9".into(),
            employee_id: "E9".into(),
            work_email: Some("x@contoso.com".into()),
            ..Default::default()
        };
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        for (reason, status) in [
            (ReviewReason::NoMatch, ReviewStatus::Open),
            (
                ReviewReason::Ambiguous {
                    candidates: vec!["a".into(), "b".into()],
                },
                ReviewStatus::Resolved {
                    user_id: "a".into(),
                    by: "me".into(),
                    at,
                    workflow_ids: vec!["w".into()],
                },
            ),
        ] {
            let item = ReviewItem {
                id: review_id("d1", 0),
                tenant_id: TenantId::new("t"),
                endpoint: EndpointKey {
                    account_id: AccountId("acct".into()),
                    source: Source::HiBob,
                },
                delivery_id: "d1".into(),
                event_index: 0,
                message: reason.describe(&event),
                event: event.clone(),
                reason,
                created_at: at,
                status,
                rev: 3,
            };
            let json = serde_json::to_string(&item).unwrap();
            assert_eq!(
                serde_json::from_str::<ReviewItem>(&json).unwrap(),
                item,
                "{json}"
            );
        }
        assert_eq!(review_id("d1", 0), review_id("d1", 0));
        assert_ne!(review_id("d1", 0), review_id("d1", 1));
    }
}
