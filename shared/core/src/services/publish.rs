//! Publishing committed writes (the DynamoDB stream's publisher on AWS): each write's events,
//! derived by [`CommittedChange::events`], handed to the sink in the order of the writes. A
//! failure names the first write whose events may not all have been handed over, so the caller
//! retries from there; the writes before it are done. Event ids are derived from the change, so
//! a retried write gives the same events with the same ids.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::committed::CommittedChange;
use crate::error::{ErrorClass, EventError, StoreError};
use crate::events::ChangeEvent;
use crate::model::{AccountId, TenantId};
use crate::ports::{ConnectionStore, EventSink};

/// Events handed to the sink per call (the sink splits them further as its service needs).
const PUBLISH_CHUNK: usize = 50;

/// What publishing committed writes uses: the connections (the account of a run's events)
/// and the sink.
#[derive(Clone)]
pub struct PublishDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub events: Arc<dyn EventSink>,
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
    #[error("the account of a run's events could not be read")]
    Account(#[source] StoreError),
    #[error("change events could not be published")]
    Sink(#[source] EventError),
}

impl PublishError {
    pub fn class(&self) -> ErrorClass {
        // Both are worth another try: the stream retries the batch from the failed write.
        ErrorClass::Retryable
    }
}

/// The first write (by position in the slice) whose events may not all be published, and why.
#[derive(Debug)]
pub struct PublishFailure {
    pub index: usize,
    pub error: PublishError,
}

/// Publish the events of `writes`, in order. `Ok(n)`: every write's events were handed to the
/// sink (`n` events in all).
pub async fn publish_committed(
    deps: &PublishDeps,
    writes: &[Committed],
) -> Result<usize, PublishFailure> {
    let mut accounts: HashMap<TenantId, Option<AccountId>> = HashMap::new();
    // (index of the write, event), in write order.
    let mut pending: Vec<(usize, ChangeEvent)> = Vec::new();
    let mut derive_failure = None;
    for (index, w) in writes.iter().enumerate() {
        let account = match w.change.run_tenant() {
            None => None,
            Some(tenant) => match accounts.get(tenant) {
                Some(a) => a.clone(),
                None => match deps.connections.get_connection(tenant).await {
                    Ok(c) => {
                        let a = c.map(|c| c.account_id);
                        accounts.insert(tenant.clone(), a.clone());
                        a
                    }
                    Err(e) => {
                        derive_failure = Some(PublishFailure {
                            index,
                            error: PublishError::Account(e),
                        });
                        break;
                    }
                },
            },
        };
        pending.extend(
            w.change
                .events(account, w.at)
                .into_iter()
                .map(|e| (index, e)),
        );
    }
    let mut sent = 0;
    for chunk in pending.chunks(PUBLISH_CHUNK) {
        let events: Vec<ChangeEvent> = chunk.iter().map(|(_, e)| e.clone()).collect();
        if let Err(e) = deps.events.publish(&events).await {
            // Part of the chunk may have been delivered: its events come again, same ids.
            return Err(PublishFailure {
                index: chunk[0].0,
                error: PublishError::Sink(e),
            });
        }
        sent += events.len();
    }
    match derive_failure {
        Some(f) => Err(f),
        None => Ok(sent),
    }
}
