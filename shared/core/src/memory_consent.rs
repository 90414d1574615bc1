//! In-memory adapter of [`ConsentStateStore`] for tests and fakes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ports::{ConsentStateStore, PendingConsent};

/// Pending consents in a map; `take` removes under the lock, so it is take-once.
#[derive(Default)]
pub struct MemoryConsentStates {
    pending: Mutex<HashMap<String, PendingConsent>>,
}

impl MemoryConsentStates {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many pending consents are stored.
    pub fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ConsentStateStore for MemoryConsentStates {
    async fn put_consent_state(&self, pending: &PendingConsent) -> Result<(), StoreError> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pending.state.expose().to_owned(), pending.clone());
        Ok(())
    }

    async fn take_consent_state(&self, state: &str) -> Result<Option<PendingConsent>, StoreError> {
        Ok(self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(state))
    }
}
