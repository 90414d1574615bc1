//! The ports of the HR webhooks: the delivery log and its queue, the review list, the state
//! per HR person, the directory lookup by employee id, and the HR systems' APIs. Records are
//! JSON-shaped; creates are conditional (an existing record is returned and nothing written),
//! updates are conditional on `rev`, so every adapter (SQLite, DynamoDB) does the same.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Source;
use super::delivery::Delivery;
use super::endpoint::{EndpointKey, WebhookEndpoint};
use super::mapping::HrPerson;
use super::review::ReviewItem;
use crate::error::{QueueError, StoreError};
use crate::model::{AccountId, StoredUser, TenantId};
use crate::ports::{Listing, Secret};

/// The delivery log, per endpoint.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Store a delivery unless one with its id exists on its endpoint; then that one is
    /// returned and nothing is written (a retry by the sender races to one record).
    async fn create_delivery(&self, delivery: &Delivery) -> Result<Option<Delivery>, StoreError>;
    async fn get_delivery(
        &self,
        endpoint: &EndpointKey,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError>;
    /// Conditional on the stored `rev` (the caller bumps it); else `StoreError::Conflict`.
    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_rev: u64,
    ) -> Result<(), StoreError>;
    /// Newest first; `after` is the previous page's `next`.
    async fn list_deliveries(
        &self,
        endpoint: &EndpointKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Delivery>, StoreError>;
}

/// One accepted delivery to process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub account_id: AccountId,
    pub source: Source,
    pub delivery_id: String,
}

impl DeliveryMessage {
    pub fn endpoint(&self) -> EndpointKey {
        EndpointKey {
            account_id: self.account_id.clone(),
            source: self.source,
        }
    }

    /// The queue's deduplication id.
    pub fn dedup_id(&self) -> String {
        format!("{}/{}/{}", self.account_id, self.source, self.delivery_id)
    }
}

/// The queue between the webhook route and the processor (SQS in AWS, the durable local queue
/// on one machine). At-least-once; the processor is idempotent.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn enqueue_delivery(&self, message: &DeliveryMessage) -> Result<(), QueueError>;
}

/// The review list, per tenant.
#[async_trait]
pub trait ReviewStore: Send + Sync {
    async fn create_review(&self, item: &ReviewItem) -> Result<Option<ReviewItem>, StoreError>;
    async fn get_review(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ReviewItem>, StoreError>;
    async fn update_review(&self, item: &ReviewItem, expected_rev: u64) -> Result<(), StoreError>;
    /// Newest first; only open items when `open_only`.
    async fn list_reviews(
        &self,
        tenant: &TenantId,
        open_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ReviewItem>, StoreError>;
}

/// What we keep per HR person, by (tenant, source, HR id).
#[async_trait]
pub trait HrPersonStore: Send + Sync {
    async fn get_person(
        &self,
        tenant: &TenantId,
        source: Source,
        provider_id: &str,
    ) -> Result<Option<HrPerson>, StoreError>;
    /// Create (`expected_rev` 0 and none stored) or replace (stored `rev` equals
    /// `expected_rev`); the caller bumps `rev`. Otherwise `StoreError::Conflict`.
    async fn put_person(&self, person: &HrPerson, expected_rev: u64) -> Result<(), StoreError>;
}

/// Directory users by `employeeId` (from the mirror; case-insensitive; removed users included,
/// the caller decides what they mean).
#[async_trait]
pub trait EmployeeLookup: Send + Sync {
    async fn users_by_employee_id(
        &self,
        tenant: &TenantId,
        employee_id: &str,
    ) -> Result<Vec<StoredUser>, StoreError>;
}

/// An employee as the HR system's API describes them (the fields the mapping needs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HrEmployee {
    pub provider_id: String,
    /// The id the directory's `employeeId` holds, when the HR system has one apart from its own.
    pub employee_number: Option<String>,
    pub work_email: Option<String>,
    pub start_date: Option<chrono::NaiveDate>,
    pub termination_date: Option<chrono::NaiveDate>,
    pub department: Option<String>,
    pub manager: Option<String>,
}

/// Why the HR system's API did not answer.
#[derive(Debug, thiserror::Error)]
pub enum HrDirectoryError {
    /// The credential was refused (401/403): fix it on the endpoint.
    #[error("the HR system refused the endpoint's API credential ({status})")]
    Unauthorized { status: u16 },
    /// 429 or 5xx or a network failure: try later.
    #[error("the HR system's API is unavailable ({})", answered(*status))]
    Unavailable {
        status: Option<u16>,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("the HR system's API answered something unexpected: {0}")]
    InvalidResponse(String),
    #[error(
        "the endpoint has no API credential; the HR system's events lack fields the mapping needs"
    )]
    NoCredential,
}

impl HrDirectoryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, HrDirectoryError::Unavailable { .. })
    }
}

/// An HTTP status for people: `status 503`, or `no answer` (a network failure).
fn answered(status: Option<u16>) -> String {
    match status {
        Some(s) => format!("status {s}"),
        None => "no answer".to_owned(),
    }
}

/// The HR system's API: read one employee by the HR system's id, with the endpoint's
/// credential (read from the vault by the caller).
#[async_trait]
pub trait HrDirectory: Send + Sync {
    async fn employee(
        &self,
        endpoint: &WebhookEndpoint,
        credential: &Secret,
        provider_id: &str,
    ) -> Result<Option<HrEmployee>, HrDirectoryError>;
}

#[cfg(test)]
mod tests {
    use super::HrDirectoryError;

    #[test]
    fn an_unavailable_hr_api_is_described_without_debug_text() {
        let with = HrDirectoryError::Unavailable {
            status: Some(503),
            source: None,
        };
        assert_eq!(
            with.to_string(),
            "the HR system's API is unavailable (status 503)"
        );
        let without = HrDirectoryError::Unavailable {
            status: None,
            source: None,
        };
        assert_eq!(
            without.to_string(),
            "the HR system's API is unavailable (no answer)"
        );
    }
}
