//! Outbound webhooks in the local program: the HTTP side (the SSRF-checking reqwest poster,
//! the system resolver and the worker that delivers what is due) lives in the
//! `entra-sync-outbound` crate, shared with the AWS delivery function; `serve` runs the worker
//! beside the outbox delivery, and `entra-sync events deliver` runs one pass.

pub use entra_sync_outbound::{OutboundWorker, ReqwestPoster, SystemResolver};
