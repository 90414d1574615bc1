//! In-memory adapters of [`ConsentStateStore`] and [`ConsoleTicketStore`] for tests, fakes and
//! the local program (its console tickets live as long as `serve`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ports::{ConsentStateStore, ConsoleTicket, ConsoleTicketStore, PendingConsent};

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

/// Console tickets in a map; `take` removes under the lock, so it is take-once.
#[derive(Default)]
pub struct MemoryConsoleTickets {
    tickets: Mutex<HashMap<String, ConsoleTicket>>,
}

#[async_trait]
impl ConsoleTicketStore for MemoryConsoleTickets {
    async fn put_console_ticket(&self, ticket: &ConsoleTicket) -> Result<(), StoreError> {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        // Tickets last minutes: one that expired a day before this one is dead; drop those so a
        // long-running `serve` does not keep every ticket it ever minted.
        let dead_before = ticket.expires_at - chrono::Duration::days(1);
        tickets.retain(|_, t| t.expires_at > dead_before);
        tickets.insert(ticket.digest.clone(), ticket.clone());
        Ok(())
    }

    async fn take_console_ticket(&self, digest: &str) -> Result<Option<ConsoleTicket>, StoreError> {
        Ok(self
            .tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest))
    }
}
