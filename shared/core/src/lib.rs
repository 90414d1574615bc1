//! entra-sync core: the pure domain. No SDK, HTTP, SQLite or Lambda types here (rule of
//! direction); adapters implement [`ports`] and functions call [`services`].

pub mod actions;
pub mod committed;
pub mod cursor;
pub mod directory_write;
pub mod error;
pub mod events;
pub mod filters;
pub mod idempotency;
pub mod keys;
pub mod mapping;
pub mod memory;
pub mod memory_consent;
pub mod memory_idempotency;
pub mod memory_outbound;
pub mod model;
pub mod outbound;
pub mod page;
pub mod plan;
pub mod ports;
pub mod provision;
pub mod run;
pub mod services;
pub mod settings;
pub mod testing;
pub mod webhooks;
