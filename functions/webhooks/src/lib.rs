//! The HR webhooks on Lambda: two functions from one crate.
//!
//! * `webhooks-route` serves the public route `POST /hooks/{account}/{source}`: the hooks
//!   router of `entra-sync-http`, behind API Gateway's HTTP API, served by `lambda_http`
//!   ([`app`] copies API Gateway's request id into the request first, `shared/lambda`).
//! * `webhooks-queue` consumes the FIFO delivery queue: every stored, queued delivery becomes
//!   workflows ([`handler::handle_batch`], with partial batch failures).
//!
//! The binaries in `src/bin/` only wire (configuration, adapters, the runtime loop); this
//! library translates.

pub mod handler;

/// The router as the route function serves it: what API Gateway says about the request (its
/// request id) copied in first, as for every HTTP function.
pub use entra_sync_lambda::app;

#[cfg(test)]
mod tests;
