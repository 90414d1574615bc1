//! The in-memory idempotency store: the reference the SQLite and DynamoDB adapters are checked
//! against (tests/src/contract_idempotency.rs), and the fake for handler tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::idempotency::{Begin, Claim, IdempotencyRecord, RecordStatus, decide};
use crate::model::TenantId;
use crate::ports::IdempotencyStore;

/// Idempotency records in a map.
#[derive(Default)]
pub struct MemoryIdempotency {
    records: Mutex<HashMap<(TenantId, String), IdempotencyRecord>>,
}

impl MemoryIdempotency {
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), IdempotencyRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotency {
    async fn begin(&self, tenant: &TenantId, claim: &Claim) -> Result<Begin, StoreError> {
        let mut records = self.records();
        let key = (tenant.clone(), claim.key.clone());
        match decide(records.get(&key), claim) {
            Ok(record) => {
                records.insert(key, record);
                Ok(Begin::Started)
            }
            Err(answer) => Ok(answer),
        }
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self.records().get_mut(&(tenant.clone(), key.to_owned())) {
            Some(r) => {
                r.status = RecordStatus::Completed;
                r.result = Some(result.to_owned());
                r.expires_at = expires_at;
                Ok(())
            }
            None => Err(StoreError::Conflict(format!("idempotency record {key}"))),
        }
    }

    async fn release(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let mut records = self.records();
        let k = (tenant.clone(), key.to_owned());
        if records
            .get(&k)
            .is_some_and(|r| r.status == RecordStatus::InProgress)
        {
            records.remove(&k);
        }
        Ok(())
    }
}
