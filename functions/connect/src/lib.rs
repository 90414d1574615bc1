//! The connect function: the connect router of `entra-sync-http`, served by `lambda_http`.
//!
//! `main.rs` wires the adapters (DynamoDB, Secrets Manager, Graph) into the router; what API
//! Gateway says about a request (its id and domain) is put into the request by
//! [`entra_sync_lambda::app`], as for the other HTTP functions.

pub use entra_sync_lambda::{app, from_lambda_context};

#[cfg(test)]
mod tests;
