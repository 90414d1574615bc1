//! Embedded adapters of the core ports (SQLite store, durable in-process queue, encrypted file
//! vault), the wiring that runs the core services on them, and the demo.

pub mod bench;
pub mod demo;
pub mod events;
pub mod idempotency;
pub mod procstat;
mod projection_store;
pub mod queue;
pub mod runtime;
pub mod sqlite;
pub mod vault;
pub mod verify;
