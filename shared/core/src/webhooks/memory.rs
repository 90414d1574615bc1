//! In-memory adapters of the webhook ports: the fakes of service tests and the reference the
//! SQLite and DynamoDB adapters will be checked against.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::Source;
use super::delivery::{Delivery, delivery_listing_key};
use super::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use super::mapping::HrPerson;
use super::ports::{
    DeliveryMessage, DeliveryQueue, DeliveryStore, EmployeeLookup, HrDirectory, HrDirectoryError,
    HrEmployee, HrPersonStore, ReviewStore,
};
use super::review::{ReviewItem, ReviewStatus, review_listing_key};
use crate::error::{QueueError, StoreError};
use crate::model::{AccountId, StoredUser, TenantId};
use crate::ports::{Listing, MirrorStore, Secret, for_each_page};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn newest_first<T: Clone>(
    items: impl DoubleEndedIterator<Item = (String, T)>,
    after: Option<&str>,
    limit: usize,
) -> Listing<T> {
    let limit = limit.max(1);
    let mut sorted: Vec<(String, T)> = items.collect();
    sorted.sort_by(|a, b| b.0.cmp(&a.0));
    let rest: Vec<(String, T)> = sorted
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() < a))
        .collect();
    let more = rest.len() > limit;
    let page: Vec<(String, T)> = rest.into_iter().take(limit).collect();
    Listing {
        next: if more {
            page.last().map(|(k, _)| k.clone())
        } else {
            None
        },
        items: page.into_iter().map(|(_, v)| v).collect(),
    }
}

/// Every webhook store port in memory.
#[derive(Default)]
pub struct MemoryWebhooks {
    endpoints: Mutex<BTreeMap<EndpointKey, WebhookEndpoint>>,
    deliveries: Mutex<BTreeMap<(EndpointKey, String), Delivery>>,
    reviews: Mutex<BTreeMap<(TenantId, String), ReviewItem>>,
    people: Mutex<BTreeMap<(TenantId, Source, String), HrPerson>>,
}

impl MemoryWebhooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every delivery of every endpoint (tests).
    pub fn all_deliveries(&self) -> Vec<Delivery> {
        lock(&self.deliveries).values().cloned().collect()
    }
}

#[async_trait]
impl WebhookEndpointStore for MemoryWebhooks {
    async fn create_endpoint(
        &self,
        e: &WebhookEndpoint,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut m = lock(&self.endpoints);
        if let Some(existing) = m.get(&e.key) {
            return Ok(Some(existing.clone()));
        }
        m.insert(e.key.clone(), e.clone());
        Ok(None)
    }
    async fn get_endpoint(&self, key: &EndpointKey) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(lock(&self.endpoints).get(key).cloned())
    }
    async fn update_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected_rev: u64,
    ) -> Result<(), StoreError> {
        let mut m = lock(&self.endpoints);
        match m.get(&e.key) {
            Some(s) if s.rev == expected_rev => {
                m.insert(e.key.clone(), e.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!("endpoint {}", e.key))),
        }
    }
    async fn list_endpoints(
        &self,
        account: &AccountId,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        Ok(lock(&self.endpoints)
            .values()
            .filter(|e| &e.key.account_id == account)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl DeliveryStore for MemoryWebhooks {
    async fn create_delivery(&self, d: &Delivery) -> Result<Option<Delivery>, StoreError> {
        let mut m = lock(&self.deliveries);
        let k = (d.endpoint.clone(), d.id.clone());
        if let Some(existing) = m.get(&k) {
            return Ok(Some(existing.clone()));
        }
        m.insert(k, d.clone());
        Ok(None)
    }
    async fn get_delivery(
        &self,
        endpoint: &EndpointKey,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        Ok(lock(&self.deliveries)
            .get(&(endpoint.clone(), id.to_string()))
            .cloned())
    }
    async fn update_delivery(&self, d: &Delivery, expected_rev: u64) -> Result<(), StoreError> {
        let mut m = lock(&self.deliveries);
        let k = (d.endpoint.clone(), d.id.clone());
        match m.get(&k) {
            Some(s) if s.rev == expected_rev => {
                m.insert(k, d.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!("delivery {}", d.id))),
        }
    }
    async fn list_deliveries(
        &self,
        endpoint: &EndpointKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<Delivery>, StoreError> {
        let m = lock(&self.deliveries);
        let items: Vec<(String, Delivery)> = m
            .values()
            .filter(|d| &d.endpoint == endpoint)
            .map(|d| (delivery_listing_key(d), d.clone()))
            .collect();
        Ok(newest_first(items.into_iter(), after, limit))
    }
}

#[async_trait]
impl ReviewStore for MemoryWebhooks {
    async fn create_review(&self, r: &ReviewItem) -> Result<Option<ReviewItem>, StoreError> {
        let mut m = lock(&self.reviews);
        let k = (r.tenant_id.clone(), r.id.clone());
        if let Some(existing) = m.get(&k) {
            return Ok(Some(existing.clone()));
        }
        m.insert(k, r.clone());
        Ok(None)
    }
    async fn get_review(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ReviewItem>, StoreError> {
        Ok(lock(&self.reviews)
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }
    async fn update_review(&self, r: &ReviewItem, expected_rev: u64) -> Result<(), StoreError> {
        let mut m = lock(&self.reviews);
        let k = (r.tenant_id.clone(), r.id.clone());
        match m.get(&k) {
            Some(s) if s.rev == expected_rev => {
                m.insert(k, r.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict(format!("review {}", r.id))),
        }
    }
    async fn list_reviews(
        &self,
        tenant: &TenantId,
        open_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<ReviewItem>, StoreError> {
        let m = lock(&self.reviews);
        let items: Vec<(String, ReviewItem)> = m
            .values()
            .filter(|r| &r.tenant_id == tenant && (!open_only || r.status == ReviewStatus::Open))
            .map(|r| (review_listing_key(r), r.clone()))
            .collect();
        Ok(newest_first(items.into_iter(), after, limit))
    }
}

#[async_trait]
impl HrPersonStore for MemoryWebhooks {
    async fn get_person(
        &self,
        tenant: &TenantId,
        source: Source,
        provider_id: &str,
    ) -> Result<Option<HrPerson>, StoreError> {
        Ok(lock(&self.people)
            .get(&(tenant.clone(), source, provider_id.to_string()))
            .cloned())
    }
    async fn put_person(&self, p: &HrPerson, expected_rev: u64) -> Result<(), StoreError> {
        let mut m = lock(&self.people);
        let k = (p.tenant_id.clone(), p.source, p.provider_id.clone());
        let stored = m.get(&k).map(|s| s.rev);
        if stored.unwrap_or(0) != expected_rev || (stored.is_none() && expected_rev != 0) {
            return Err(StoreError::Conflict(format!("hr person {}", p.provider_id)));
        }
        m.insert(k, p.clone());
        Ok(())
    }
}

/// A queue that keeps what it was given (tests drain it by hand).
#[derive(Default)]
pub struct CollectingDeliveryQueue {
    messages: Mutex<Vec<DeliveryMessage>>,
    fail: Mutex<bool>,
}

impl CollectingDeliveryQueue {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn drain(&self) -> Vec<DeliveryMessage> {
        std::mem::take(&mut *lock(&self.messages))
    }
    pub fn len(&self) -> usize {
        lock(&self.messages).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Make every enqueue fail (a queue outage) until set back.
    pub fn set_failing(&self, fail: bool) {
        *lock(&self.fail) = fail;
    }
}

#[async_trait]
impl DeliveryQueue for CollectingDeliveryQueue {
    async fn enqueue_delivery(&self, m: &DeliveryMessage) -> Result<(), QueueError> {
        if *lock(&self.fail) {
            return Err(QueueError::Rejected("the test queue is failing".into()));
        }
        lock(&self.messages).push(m.clone());
        Ok(())
    }
}

/// `employeeId` lookups by walking the mirror's user listing: the reference behaviour; the
/// SQLite and DynamoDB stores answer from an index.
pub struct ScanningEmployeeLookup {
    pub mirror: Arc<dyn MirrorStore>,
}

#[async_trait]
impl EmployeeLookup for ScanningEmployeeLookup {
    async fn users_by_employee_id(
        &self,
        tenant: &TenantId,
        employee_id: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let want = employee_id.trim();
        let mut out = Vec::new();
        for_each_page(
            |after: Option<String>| async move {
                self.mirror.list_users(tenant, after.as_deref(), 1000).await
            },
            |items| {
                out.extend(items.into_iter().filter(|u| {
                    u.user
                        .employee_id
                        .as_deref()
                        .is_some_and(|e| e.trim().eq_ignore_ascii_case(want))
                }))
            },
        )
        .await?;
        Ok(out)
    }
}

/// An HR API in memory: employees by provider id, and the calls it saw (tests).
#[derive(Default)]
pub struct MemoryHrDirectory {
    employees: Mutex<HashMap<String, HrEmployee>>,
    calls: Mutex<u64>,
}

impl MemoryHrDirectory {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&self, e: HrEmployee) {
        lock(&self.employees).insert(e.provider_id.clone(), e);
    }
    pub fn calls(&self) -> u64 {
        *lock(&self.calls)
    }
}

#[async_trait]
impl HrDirectory for MemoryHrDirectory {
    async fn employee(
        &self,
        _endpoint: &WebhookEndpoint,
        credential: &Secret,
        provider_id: &str,
    ) -> Result<Option<HrEmployee>, HrDirectoryError> {
        *lock(&self.calls) += 1;
        if credential.expose().is_empty() {
            return Err(HrDirectoryError::Unauthorized { status: 401 });
        }
        Ok(lock(&self.employees).get(provider_id).cloned())
    }
}

/// Endpoint management and the processor on the in-memory webhook stores beside `store` (the
/// connections) and the write half `actions`: what the API, console and function tests use.
pub fn memory_hr_deps(
    store: &Arc<crate::memory::MemoryStore>,
    actions: crate::services::actions::ActionDeps,
) -> (
    crate::services::webhooks::EndpointDeps,
    crate::services::webhooks::ProcessDeps,
) {
    let hooks = Arc::new(MemoryWebhooks::new());
    let vault = Arc::new(crate::memory::MemoryVault::default());
    let endpoints = crate::services::webhooks::EndpointDeps {
        connections: store.clone(),
        endpoints: hooks.clone(),
        deliveries: hooks.clone(),
        vault: vault.clone(),
        clock: actions.clock.clone(),
        config: crate::services::webhooks::WebhookConfig::default(),
    };
    let process = crate::services::webhooks::ProcessDeps {
        actions,
        endpoints: hooks.clone(),
        deliveries: hooks.clone(),
        reviews: hooks.clone(),
        people: hooks,
        employees: Arc::new(ScanningEmployeeLookup {
            mirror: store.clone(),
        }),
        hr_api: Arc::new(MemoryHrDirectory::new()),
        vault,
    };
    (endpoints, process)
}
