//! The ports of outbound webhooks, one per capability: the records ([`OutboundStore`]), the
//! resolution of a host ([`HostResolver`]) and the POST ([`WebhookPoster`]). The local program
//! implements them on SQLite, tokio and reqwest; on AWS the store is the DynamoDB table and the
//! delivery function uses the same reqwest poster (shared/outbound). Where deliveries are not
//! created in the events' own write (the DynamoDB stream's publisher), [`DeliveryFanOut`]
//! creates them and [`DeliveryWake`] tells the delivery function.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AttemptOutcome, NewDelivery, OutboundDelivery, OutboundEndpoint};
use crate::error::{QueueError, StoreError};
use crate::events::ChangeEvent;
use crate::model::AccountId;

/// A delivery claimed for an attempt, with the event's body (the envelope as JSON) and its
/// endpoint as stored when claimed.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub delivery: OutboundDelivery,
    pub endpoint: OutboundEndpoint,
    pub body: String,
}

/// Endpoints and deliveries.
#[async_trait]
pub trait OutboundStore: Send + Sync {
    async fn create_endpoint(&self, endpoint: &OutboundEndpoint) -> Result<(), StoreError>;
    async fn get_endpoint(&self, id: &str) -> Result<Option<OutboundEndpoint>, StoreError>;
    /// The endpoints of one account, oldest first.
    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OutboundEndpoint>, StoreError>;
    /// Replace the endpoint if its stored `rev` is still `expected_rev` (otherwise
    /// `StoreError::Conflict`), recording `events` with it in one write.
    async fn update_endpoint(
        &self,
        endpoint: &OutboundEndpoint,
        expected_rev: u64,
        events: &[ChangeEvent],
    ) -> Result<(), StoreError>;
    /// Pending deliveries due at `now` to enabled endpoints, at most `limit`, oldest due
    /// first; each is pushed to `lease_until` so no other worker takes it meanwhile.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Store an attempt's result: the delivery, and in the same write the endpoint when its
    /// stored `rev` is still `endpoint_rev` (an endpoint an admin changed meanwhile is left as
    /// the admin left it) with `events`.
    async fn record_attempt(
        &self,
        delivery: &OutboundDelivery,
        endpoint: &OutboundEndpoint,
        endpoint_rev: u64,
        events: &[ChangeEvent],
    ) -> Result<(), StoreError>;
    async fn get_delivery(&self, id: &str) -> Result<Option<OutboundDelivery>, StoreError>;
    /// The deliveries of an endpoint, newest first; with `before` (a delivery id of this
    /// endpoint), only those older than it (the next page).
    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboundDelivery>, StoreError>;
    /// Replace a delivery (a manual redelivery).
    async fn put_delivery(&self, delivery: &OutboundDelivery) -> Result<(), StoreError>;
}

/// Fan-out where deliveries are created apart from the write of their events (the DynamoDB
/// stream's publisher on AWS; the SQLite store creates them in its outbox transaction).
#[async_trait]
pub trait DeliveryFanOut: OutboundStore {
    /// Create each delivery unless one with its id exists (which is kept as it is), so the
    /// same events fanned out again create nothing. Returns how many were created.
    async fn create_deliveries(&self, deliveries: &[NewDelivery]) -> Result<usize, StoreError>;
}

/// Tells the delivery worker that new deliveries are due, so their first attempt need not
/// wait for the next scheduled pass.
#[async_trait]
pub trait DeliveryWake: Send + Sync {
    async fn wake(&self, created: usize) -> Result<(), QueueError>;
}

/// Why a host could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("the host {host} could not be resolved")]
pub struct ResolveError {
    pub host: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The addresses of a host name.
#[async_trait]
pub trait HostResolver: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, ResolveError>;
}

/// One POST of a delivery.
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Sends a delivery. The adapter must connect only to addresses that pass
/// [`super::ssrf::check_addresses`] (resolve, check, then connect to the checked address) and
/// must not follow redirects; a refused address is an [`AttemptOutcome::Error`].
#[async_trait]
pub trait WebhookPoster: Send + Sync {
    async fn post(&self, request: &OutboundRequest) -> AttemptOutcome;
}
