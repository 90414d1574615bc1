//! Shared test code: the store contract suite every adapter passes, and helpers for the
//! end-to-end flows in `tests/`.
// Test support: a failed expectation is a panic with a message, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod action_history;
pub mod contract;
pub mod contract_actions;
pub mod contract_consent;
pub mod contract_idempotency;
pub mod contract_outbound;
pub mod contract_projection;
pub mod contract_queue;
pub mod contract_vault;
pub mod event_schemas;
pub mod faulty;
pub mod moto;
pub mod receiver;
pub mod streams;
pub mod template;
