//! The HR systems behind the webhooks: the HTTP client of the HR API we read when an event
//! lacks what the mapping needs (HiBob: webhooks v2 carry the employee id only), a small
//! emulator of that endpoint on loopback for tests, and the verification benchmark.
//!
//! Adapters translate; the decisions (what to read, what it means) are in `entra-sync-core`.

pub mod bench;
pub mod emulator;
pub mod hibob;

pub use hibob::{HiBobClient, HiBobConfig};
