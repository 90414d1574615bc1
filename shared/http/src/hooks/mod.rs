//! The HR webhook route: `POST /hooks/{account}/{source}`, where `source` is `bamboohr`, `hibob`
//! or `standard`. Public (no authentication): the signature over the raw body is the proof, and
//! the receive service checks it.
//!
//! The route is a thin translation. It hands the path, the `Content-Type`, the headers and the
//! raw body to [`receive`], and answers exactly as the service decides:
//!
//! | status | `error` / `status` code | when |
//! |---|---|---|
//! | 202 | `accepted` | verified, parsed, stored and queued (`{"status", "delivery_id", "request_id"}`) |
//! | 200 | `duplicate` / `ping` | the same delivery again, or HiBob's connection test |
//! | 400 | `invalid_payload` | the body cannot be read; the message names every wrong field |
//! | 401 | `invalid_signature` | missing, malformed, expired or non-matching signature |
//! | 404 | `not_found` | no such endpoint, or a disabled one (the same answer) |
//! | 413 | `payload_too_large` | over the body limit |
//! | 415 | `unsupported_media_type` | not `application/json` |
//! | 503 | `unavailable` | the store, vault or queue is down: the sender retries |
//!
//! Every refusal uses the one error format (`{"error", "message", "request_id"}`); the
//! messages come from the service and never carry a secret or a computed signature. The log
//! line of the request (written by the stack) carries the code, never the body or a header.

mod routes;

pub use routes::{HooksState, MAX_BODY_BYTES, router, routes};

#[cfg(test)]
mod tests;
