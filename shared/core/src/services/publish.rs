//! Publishing committed writes (the DynamoDB stream's publisher on AWS): each write's events,
//! derived by [`CommittedChange::events`], handed to the sink in the order of the writes. A
//! failure names the first write whose events may not all have been handed over, so the caller
//! retries from there; the writes before it are done. Event ids are derived from the change, so
//! a retried write gives the same events with the same ids.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::committed::CommittedChange;
use crate::error::{ErrorClass, EventError, QueueError, StoreError};
use crate::events::ChangeEvent;
use crate::model::{AccountId, TenantId};
use crate::outbound::OutboundEndpoint;
use crate::outbound::ports::{DeliveryFanOut, DeliveryWake};
use crate::ports::{Clock, ConnectionStore, EventSink};

/// Events handed to the sink per call (the sink splits them further as its service needs).
const PUBLISH_CHUNK: usize = 50;

/// What publishing committed writes uses: the connections (the account of a run's events, and
/// of a directory's events for its webhook endpoints), the sink, and outbound webhooks.
#[derive(Clone)]
pub struct PublishDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub events: Arc<dyn EventSink>,
    /// Where set, each event's outbound webhook deliveries are created before its write counts
    /// as published.
    pub outbound: Option<FanOutDeps>,
}

/// Fan-out of the published events to the outbound webhook endpoints of their accounts.
#[derive(Clone)]
pub struct FanOutDeps {
    pub deliveries: Arc<dyn DeliveryFanOut>,
    /// Told once per batch that fanned out, so the first attempts start within seconds.
    pub wake: Arc<dyn DeliveryWake>,
    /// The deliveries' creation time.
    pub clock: Arc<dyn Clock>,
}

/// One committed write and when it was committed (the stream record's creation time).
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    pub change: CommittedChange,
    pub at: DateTime<Utc>,
}

/// Why a write's events were not all published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the account of a run's or a directory's events could not be read")]
    Account(#[source] StoreError),
    #[error("change events could not be published")]
    Sink(#[source] EventError),
    #[error("the outbound webhook deliveries of change events could not be created")]
    FanOut(#[source] StoreError),
}

impl PublishError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PublishError::FanOut(e) if !e.is_retryable() => ErrorClass::Permanent,
            // The stream retries the batch from the failed write.
            _ => ErrorClass::Retryable,
        }
    }
}

/// The first write (by position in the slice) whose events may not all be published, and why.
#[derive(Debug)]
pub struct PublishFailure {
    pub index: usize,
    pub error: PublishError,
}

/// What publishing a batch did.
#[derive(Debug, Default)]
pub struct Published {
    /// Events handed to the sink.
    pub events: usize,
    /// Outbound webhook deliveries created (a replayed batch creates none again).
    pub deliveries: usize,
    /// The delivery worker could not be woken: the deliveries wait for its next scheduled
    /// pass (they are stored; nothing is lost).
    pub wake: Option<QueueError>,
}

/// Accounts of tenants, read once per batch.
struct Accounts<'a> {
    connections: &'a dyn ConnectionStore,
    known: HashMap<TenantId, Option<AccountId>>,
}

impl Accounts<'_> {
    async fn of(&mut self, tenant: &TenantId) -> Result<Option<AccountId>, StoreError> {
        if let Some(a) = self.known.get(tenant) {
            return Ok(a.clone());
        }
        let a = self
            .connections
            .get_connection(tenant)
            .await?
            .map(|c| c.account_id);
        self.known.insert(tenant.clone(), a.clone());
        Ok(a)
    }
}

/// Publish the events of `writes`, in order: every write's events are handed to the sink and,
/// with outbound webhooks, their deliveries created, before the call reports the write done.
pub async fn publish_committed(
    deps: &PublishDeps,
    writes: &[Committed],
) -> Result<Published, PublishFailure> {
    let mut accounts = Accounts {
        connections: deps.connections.as_ref(),
        known: HashMap::new(),
    };
    // (index of the write, event), in write order.
    let mut pending: Vec<(usize, ChangeEvent)> = Vec::new();
    let mut derive_failure = None;
    for (index, w) in writes.iter().enumerate() {
        let account = match w.change.run_tenant() {
            None => None,
            Some(tenant) => match accounts.of(tenant).await {
                Ok(a) => a,
                Err(e) => {
                    derive_failure = Some(PublishFailure {
                        index,
                        error: PublishError::Account(e),
                    });
                    break;
                }
            },
        };
        pending.extend(
            w.change
                .events(account, w.at)
                .into_iter()
                .map(|e| (index, e)),
        );
    }
    let mut published = Published::default();
    for chunk in pending.chunks(PUBLISH_CHUNK) {
        let events: Vec<ChangeEvent> = chunk.iter().map(|(_, e)| e.clone()).collect();
        if let Err(e) = deps.events.publish(&events).await {
            // Part of the chunk may have been delivered: its events come again, same ids.
            return Err(PublishFailure {
                index: chunk[0].0,
                error: PublishError::Sink(e),
            });
        }
        published.events += events.len();
    }
    if let Some(outbound) = &deps.outbound {
        fan_out(outbound, &mut accounts, &pending, &mut published).await?;
    }
    match derive_failure {
        Some(f) => Err(f),
        None => Ok(published),
    }
}

/// Create the deliveries of `pending`, one write after the other (a failure names the first
/// write whose deliveries may be missing), then wake the worker if there are any.
async fn fan_out(
    deps: &FanOutDeps,
    accounts: &mut Accounts<'_>,
    pending: &[(usize, ChangeEvent)],
    published: &mut Published,
) -> Result<(), PublishFailure> {
    let now = deps.clock.now();
    let mut endpoints: HashMap<AccountId, Vec<OutboundEndpoint>> = HashMap::new();
    let mut planned = 0;
    for write in pending.chunk_by(|a, b| a.0 == b.0) {
        let index = write[0].0;
        let fail = |error| PublishFailure { index, error };
        let mut events = Vec::with_capacity(write.len());
        let mut seen: Vec<AccountId> = Vec::new();
        for (_, e) in write {
            // A directory's events carry no account: they go to its connection's account.
            let tenant_account = match (&e.account_id, e.tenant_id.as_str()) {
                (Some(_), _) | (None, "") => None,
                (None, _) => accounts
                    .of(&e.tenant_id)
                    .await
                    .map_err(|e| fail(PublishError::Account(e)))?,
            };
            if let Some(account) = e.account_id.as_ref().or(tenant_account.as_ref()) {
                if !endpoints.contains_key(account) {
                    let found = deps
                        .deliveries
                        .list_endpoints(account)
                        .await
                        .map_err(|e| fail(PublishError::FanOut(e)))?;
                    endpoints.insert(account.clone(), found);
                }
                if !seen.contains(account) {
                    seen.push(account.clone());
                }
            }
            events.push((e.clone(), tenant_account));
        }
        let wanted: Vec<OutboundEndpoint> = seen
            .iter()
            .flat_map(|a| endpoints[a].iter().cloned())
            .collect();
        let mut deliveries = crate::outbound::fan_out(&events, &wanted, now)
            .map_err(|e| fail(PublishError::FanOut(StoreError::Internal(Box::new(e)))))?;
        if deliveries.is_empty() {
            continue;
        }
        for d in &mut deliveries {
            d.position += planned;
        }
        planned += deliveries.len();
        published.deliveries += deps
            .deliveries
            .create_deliveries(&deliveries)
            .await
            .map_err(|e| fail(PublishError::FanOut(e)))?;
    }
    // Also after a replay that created nothing new: the deliveries may still be due.
    if planned > 0 {
        published.wake = deps.wake.wake(planned).await.err();
    }
    Ok(())
}
