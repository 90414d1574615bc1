//! Embedded adapters of the core ports (SQLite store, durable in-process queue, encrypted file
//! vault) and the wiring the `entra-sync` program uses to run everything on one machine.

pub mod queue;
pub mod sqlite;
pub mod vault;
