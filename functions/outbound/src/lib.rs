//! The outbound webhook delivery function: signs and POSTs the due deliveries of the DynamoDB
//! table to the host product's endpoints (Standard Webhooks, the retry schedule, the SSRF rule:
//! the core's `outbound` services through the shared reqwest poster). Woken by the publisher's
//! message on its queue right after a stream batch fanned out (first attempts within seconds),
//! and every minute by a schedule for the retries (docs/events.md, "Outbound webhooks on AWS").

pub mod handler;
