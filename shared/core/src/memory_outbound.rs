//! An in-memory [`OutboundStore`] for tests, fakes and the admin API's route tests. It keeps
//! the same promises as the SQLite and DynamoDB stores (the contract suite in
//! tests/src/contract_outbound.rs runs against all three): deliveries are created by
//! [`MemoryOutboundStore::fan_out`] or its [`DeliveryFanOut`] (the SQLite store does it when its
//! outbox is delivered), one per (endpoint, event); a claimed delivery
//! is leased; an endpoint write checks its `rev`. The events written with an endpoint are kept
//! in [`MemoryOutboundStore::recorded`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::events::ChangeEvent;
use crate::model::AccountId;
use crate::outbound::ports::{DeliveryFanOut, DueDelivery, OutboundStore};
use crate::outbound::{DeliveryState, NewDelivery, OutboundDelivery, OutboundEndpoint};

#[derive(Default)]
struct Inner {
    /// Endpoints in creation order.
    endpoints: Vec<OutboundEndpoint>,
    /// Deliveries by id: (creation sequence, delivery, the event's body).
    deliveries: BTreeMap<String, (u64, OutboundDelivery, String)>,
    next_seq: u64,
    recorded: Vec<ChangeEvent>,
}

/// Endpoints and deliveries under one lock.
#[derive(Default)]
pub struct MemoryOutboundStore {
    inner: Mutex<Inner>,
}

fn due_at(d: &OutboundDelivery) -> Option<DateTime<Utc>> {
    match d.state {
        DeliveryState::Pending { next_attempt_at } => Some(next_attempt_at),
        _ => None,
    }
}

fn to_body(event: &ChangeEvent) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| StoreError::Internal(Box::new(e)))
}

impl MemoryOutboundStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Create the deliveries of `events` for every enabled endpoint that wants them, due at
    /// `now` (`tenant_account` is the account of the events' directory, for events that
    /// carry none). A delivery that exists already is kept as it is. Returns how many were
    /// created.
    pub fn fan_out(
        &self,
        events: &[ChangeEvent],
        tenant_account: Option<&AccountId>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut created = 0;
        for e in events {
            let body = to_body(e)?;
            let wanting: Vec<String> = inner
                .endpoints
                .iter()
                .filter(|ep| ep.wants(e, tenant_account))
                .map(|ep| ep.id.clone())
                .collect();
            for ep in wanting {
                let d = OutboundDelivery::new(&ep, e, now);
                if inner.deliveries.contains_key(&d.id) {
                    continue;
                }
                let seq = inner.next_seq;
                inner.next_seq += 1;
                inner
                    .deliveries
                    .insert(d.id.clone(), (seq, d, body.clone()));
                created += 1;
            }
        }
        Ok(created)
    }

    /// The events written with endpoint changes, in order.
    pub fn recorded(&self) -> Vec<ChangeEvent> {
        self.lock().recorded.clone()
    }
}

fn replace_endpoint(inner: &mut Inner, endpoint: &OutboundEndpoint, expected_rev: u64) -> bool {
    // A missing endpoint is a stale write too (as on SQLite).
    match inner.endpoints.iter_mut().find(|e| e.id == endpoint.id) {
        Some(slot) if slot.rev == expected_rev => {
            *slot = endpoint.clone();
            true
        }
        _ => false,
    }
}

fn put(inner: &mut Inner, delivery: &OutboundDelivery) {
    let seq = inner.next_seq;
    let entry = inner
        .deliveries
        .entry(delivery.id.clone())
        .or_insert_with(|| (seq, delivery.clone(), String::new()));
    if entry.0 == seq {
        inner.next_seq += 1;
    }
    entry.1 = delivery.clone();
}

#[async_trait]
impl OutboundStore for MemoryOutboundStore {
    async fn create_endpoint(&self, endpoint: &OutboundEndpoint) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.endpoints.iter().any(|e| e.id == endpoint.id) {
            return Err(StoreError::Conflict(format!("endpoint {}", endpoint.id)));
        }
        inner.endpoints.push(endpoint.clone());
        Ok(())
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<OutboundEndpoint>, StoreError> {
        Ok(self.lock().endpoints.iter().find(|e| e.id == id).cloned())
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<OutboundEndpoint>, StoreError> {
        let mut out: Vec<OutboundEndpoint> = self
            .lock()
            .endpoints
            .iter()
            .filter(|e| &e.account_id == account)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn update_endpoint(
        &self,
        endpoint: &OutboundEndpoint,
        expected_rev: u64,
        events: &[ChangeEvent],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !replace_endpoint(&mut inner, endpoint, expected_rev) {
            return Err(StoreError::Conflict(format!("endpoint {}", endpoint.id)));
        }
        inner.recorded.extend(events.iter().cloned());
        Ok(())
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut inner = self.lock();
        let mut due: Vec<(DateTime<Utc>, u64, String)> = inner
            .deliveries
            .values()
            .filter_map(|(seq, d, _)| {
                let at = due_at(d)?;
                let enabled = inner
                    .endpoints
                    .iter()
                    .any(|e| e.id == d.endpoint_id && e.is_enabled());
                (at <= now && enabled).then(|| (at, *seq, d.id.clone()))
            })
            .collect();
        due.sort();
        due.truncate(limit);
        let mut out = Vec::new();
        for (_, _, id) in due {
            let Some(endpoint) = inner
                .deliveries
                .get(&id)
                .and_then(|(_, d, _)| inner.endpoints.iter().find(|e| e.id == d.endpoint_id))
                .cloned()
            else {
                continue;
            };
            let Some((_, d, body)) = inner.deliveries.get_mut(&id) else {
                continue;
            };
            let claimed = d.clone();
            // The lease: stored as due later, handed out as due now.
            d.state = DeliveryState::Pending {
                next_attempt_at: lease_until,
            };
            out.push(DueDelivery {
                delivery: claimed,
                endpoint,
                body: body.clone(),
            });
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        delivery: &OutboundDelivery,
        endpoint: &OutboundEndpoint,
        endpoint_rev: u64,
        events: &[ChangeEvent],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        put(&mut inner, delivery);
        if replace_endpoint(&mut inner, endpoint, endpoint_rev) {
            inner.recorded.extend(events.iter().cloned());
        }
        Ok(())
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<OutboundDelivery>, StoreError> {
        Ok(self.lock().deliveries.get(id).map(|(_, d, _)| d.clone()))
    }

    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboundDelivery>, StoreError> {
        let inner = self.lock();
        let below = match before {
            None => u64::MAX,
            Some(id) => inner.deliveries.get(id).map_or(0, |(seq, _, _)| *seq),
        };
        let mut out: Vec<(u64, OutboundDelivery)> = inner
            .deliveries
            .values()
            .filter(|(seq, d, _)| d.endpoint_id == endpoint_id && *seq < below)
            .map(|(seq, d, _)| (*seq, d.clone()))
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.0));
        Ok(out.into_iter().take(limit).map(|(_, d)| d).collect())
    }

    async fn put_delivery(&self, delivery: &OutboundDelivery) -> Result<(), StoreError> {
        put(&mut self.lock(), delivery);
        Ok(())
    }
}

#[async_trait]
impl DeliveryFanOut for MemoryOutboundStore {
    async fn create_deliveries(&self, deliveries: &[NewDelivery]) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let mut created = 0;
        for new in deliveries {
            if inner.deliveries.contains_key(&new.delivery.id) {
                continue;
            }
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.deliveries.insert(
                new.delivery.id.clone(),
                (seq, new.delivery.clone(), new.body.clone()),
            );
            created += 1;
        }
        Ok(created)
    }
}
