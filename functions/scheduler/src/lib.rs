//! The scheduler function: an EventBridge schedule (hourly) -> one fetch request per connected
//! directory on the fetch queue, each delayed by a per-tenant jitter.

pub mod handler;
