//! The use cases of outbound webhooks over the ports: manage endpoints (create with a secret
//! shown once, rotate, disable, enable), redeliver, and deliver what is due.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::Rng;

use super::ports::{DueDelivery, HostResolver, OutboundRequest, OutboundStore, WebhookPoster};
use super::ssrf::{self, UrlRefused};
use super::{
    Attempt, AttemptOutcome, OutboundDelivery, OutboundEndpoint, OutboundPolicy, after_attempt,
    claim_lease, signed_headers,
};
use crate::error::{StoreError, VaultError};
use crate::events::catalog;
use crate::model::AccountId;
use crate::ports::{Secret, SecretVault};
use crate::webhooks::Source;
use crate::webhooks::endpoint::generate_secret;
use crate::webhooks::verify::SigningKey;

/// Why an endpoint operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the endpoint URL is refused: {0}")]
    Url(#[from] UrlRefused),
    #[error("the endpoint URL's host could not be resolved")]
    Resolve(#[source] super::ports::ResolveError),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("no endpoint {0}")]
    NoEndpoint(String),
    #[error("no delivery {0}")]
    NoDelivery(String),
    #[error("the endpoint store failed")]
    Store(#[from] StoreError),
    #[error("the secret vault failed")]
    Vault(#[from] VaultError),
    #[error("the operating system's random source failed")]
    Random,
}

impl OutboundError {
    pub fn is_retryable(&self) -> bool {
        match self {
            OutboundError::Store(e) => e.is_retryable(),
            OutboundError::Vault(e) => e.is_retryable(),
            OutboundError::Resolve(_) => true,
            _ => false,
        }
    }
}

/// Check a URL for an endpoint: its form, then every address its host resolves to.
pub async fn check_endpoint_url(
    url: &str,
    resolver: &dyn HostResolver,
    policy: ssrf::UrlPolicy,
) -> Result<(), OutboundError> {
    let target = ssrf::check_url(url, policy)?;
    if target.literal.is_some() {
        return Ok(());
    }
    let addrs = resolver
        .resolve(&target.host, target.port)
        .await
        .map_err(OutboundError::Resolve)?;
    ssrf::check_addresses(&addrs, policy)?;
    Ok(())
}

/// A created endpoint and its secret, shown once.
#[derive(Debug)]
pub struct CreatedEndpoint {
    pub endpoint: OutboundEndpoint,
    pub secret: Secret,
}

fn check_types(types: &Option<Vec<String>>) -> Result<(), OutboundError> {
    let known = catalog();
    for t in types.iter().flatten() {
        if !known.contains(&t.as_str()) {
            return Err(OutboundError::UnknownType(t.clone()));
        }
    }
    Ok(())
}

/// What an endpoint is created with.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    pub account: AccountId,
    pub url: String,
    /// Only these event types; `None` for every type.
    pub event_types: Option<Vec<String>>,
}

/// Create an endpoint for an account with a new secret (stored in the vault first, so a
/// record never names a missing secret).
pub async fn create_endpoint(
    store: &dyn OutboundStore,
    vault: &dyn SecretVault,
    resolver: &dyn HostResolver,
    policy: &OutboundPolicy,
    new: NewEndpoint,
    now: DateTime<Utc>,
) -> Result<CreatedEndpoint, OutboundError> {
    check_types(&new.event_types)?;
    check_endpoint_url(&new.url, resolver, policy.urls).await?;
    let endpoint = OutboundEndpoint::new(
        OutboundEndpoint::new_id(),
        new.account,
        new.url,
        new.event_types,
        now,
    );
    let secret = generate_secret().map_err(|_| OutboundError::Random)?;
    vault.put_secret(&endpoint.secrets[0].name, &secret).await?;
    store.create_endpoint(&endpoint).await?;
    Ok(CreatedEndpoint { endpoint, secret })
}

async fn load(store: &dyn OutboundStore, id: &str) -> Result<OutboundEndpoint, OutboundError> {
    store
        .get_endpoint(id)
        .await?
        .ok_or_else(|| OutboundError::NoEndpoint(id.to_owned()))
}

/// A new secret, shown once; the previous one keeps signing for a day beside it.
pub async fn rotate_secret(
    store: &dyn OutboundStore,
    vault: &dyn SecretVault,
    id: &str,
    now: DateTime<Utc>,
) -> Result<CreatedEndpoint, OutboundError> {
    let mut endpoint = load(store, id).await?;
    let rev = endpoint.rev;
    let (name, gone) = endpoint.rotate(now);
    let secret = generate_secret().map_err(|_| OutboundError::Random)?;
    vault.put_secret(&name, &secret).await?;
    store.update_endpoint(&endpoint, rev, &[]).await?;
    for g in gone {
        // Best effort: a secret left behind is never read again.
        let _ = vault.delete_secret(&g).await;
    }
    Ok(CreatedEndpoint { endpoint, secret })
}

/// Disable an endpoint by hand (its event says so, with the reason given).
pub async fn disable_endpoint(
    store: &dyn OutboundStore,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<OutboundEndpoint, OutboundError> {
    let mut endpoint = load(store, id).await?;
    let rev = endpoint.rev;
    if let Some(event) = endpoint.disable(reason, now) {
        store.update_endpoint(&endpoint, rev, &[event]).await?;
    }
    Ok(endpoint)
}

/// Enable an endpoint again; its pending deliveries resume.
pub async fn enable_endpoint(
    store: &dyn OutboundStore,
    resolver: &dyn HostResolver,
    policy: &OutboundPolicy,
    id: &str,
    now: DateTime<Utc>,
) -> Result<OutboundEndpoint, OutboundError> {
    let mut endpoint = load(store, id).await?;
    check_endpoint_url(&endpoint.url, resolver, policy.urls).await?;
    let rev = endpoint.rev;
    endpoint.enable(now);
    if endpoint.rev != rev {
        store.update_endpoint(&endpoint, rev, &[]).await?;
    }
    Ok(endpoint)
}

/// Make a delivery due again now, with a fresh schedule.
pub async fn redeliver(
    store: &dyn OutboundStore,
    delivery_id: &str,
    now: DateTime<Utc>,
) -> Result<OutboundDelivery, OutboundError> {
    let mut d = store
        .get_delivery(delivery_id)
        .await?
        .ok_or_else(|| OutboundError::NoDelivery(delivery_id.to_owned()))?;
    d.redeliver(now);
    store.put_delivery(&d).await?;
    Ok(d)
}

/// What one pass of [`deliver_due`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempted: usize,
    pub delivered: usize,
    pub failed_attempts: usize,
    pub endpoints_disabled: usize,
}

/// Deliver what is due at `now`: claim due deliveries, then per endpoint (endpoints at once up
/// to the policy's concurrency, each endpoint's deliveries one after the other, oldest due
/// first) sign, POST, and record the outcome. A delivery is stored before its POST and
/// marked after it, so a process killed in between sends it again (same `webhook-id`).
pub async fn deliver_due(
    store: &dyn OutboundStore,
    vault: &dyn SecretVault,
    poster: &dyn WebhookPoster,
    policy: &OutboundPolicy,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, OutboundError> {
    let due = store
        .claim_due(now, now + claim_lease(), policy.batch.max(1))
        .await?;
    let mut by_endpoint: BTreeMap<String, Vec<DueDelivery>> = BTreeMap::new();
    for d in due {
        by_endpoint
            .entry(d.endpoint.id.clone())
            .or_default()
            .push(d);
    }
    let reports: Vec<Result<DeliveryReport, OutboundError>> =
        futures::stream::iter(by_endpoint.into_values())
            .map(|batch| deliver_endpoint(store, vault, poster, policy, now, batch))
            .buffer_unordered(policy.concurrency.max(1))
            .collect()
            .await;
    let mut total = DeliveryReport::default();
    for r in reports {
        let r = r?;
        total.attempted += r.attempted;
        total.delivered += r.delivered;
        total.failed_attempts += r.failed_attempts;
        total.endpoints_disabled += r.endpoints_disabled;
    }
    Ok(total)
}

async fn signing_keys(
    vault: &dyn SecretVault,
    endpoint: &OutboundEndpoint,
    now: DateTime<Utc>,
) -> Result<Vec<SigningKey>, OutboundError> {
    let mut keys = Vec::new();
    for name in endpoint.signing_secret_names(now) {
        let secret = vault.get_secret(name).await?;
        // Our own secrets are always whsec_ + base64; a damaged one is skipped.
        if let Ok(k) = SigningKey::from_secret(Source::Standard, secret.expose()) {
            keys.push(k);
        }
    }
    Ok(keys)
}

async fn deliver_endpoint(
    store: &dyn OutboundStore,
    vault: &dyn SecretVault,
    poster: &dyn WebhookPoster,
    policy: &OutboundPolicy,
    now: DateTime<Utc>,
    batch: Vec<DueDelivery>,
) -> Result<DeliveryReport, OutboundError> {
    let mut report = DeliveryReport::default();
    let Some(first) = batch.first() else {
        return Ok(report);
    };
    let mut endpoint = first.endpoint.clone();
    let keys = signing_keys(vault, &endpoint, now).await?;
    for due in batch {
        if !endpoint.is_enabled() {
            break;
        }
        let mut delivery = due.delivery;
        let started = Instant::now();
        let outcome = match ssrf::check_url(&endpoint.url, policy.urls) {
            Err(refused) => AttemptOutcome::Error {
                error: refused.to_string(),
            },
            Ok(_) if keys.is_empty() => AttemptOutcome::Error {
                error: "the endpoint has no signing secret".to_owned(),
            },
            Ok(_) => {
                let body = due.body.into_bytes();
                let headers = signed_headers(&delivery.event_id, now.timestamp(), &body, &keys);
                poster
                    .post(&OutboundRequest {
                        url: endpoint.url.clone(),
                        headers,
                        body,
                    })
                    .await
            }
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report.attempted += 1;
        if outcome.is_success() {
            report.delivered += 1;
        } else {
            report.failed_attempts += 1;
        }
        let attempt = Attempt {
            at: now,
            outcome,
            latency_ms,
        };
        let rev = endpoint.rev;
        let jitter = rand::rng().random_range(-1.0..=1.0);
        let events: Vec<_> = after_attempt(&mut delivery, &mut endpoint, attempt, policy, jitter)
            .into_iter()
            .collect();
        if !events.is_empty() {
            report.endpoints_disabled += 1;
            tracing::warn!(endpoint = %endpoint.id, "webhook endpoint disabled");
        }
        store
            .record_attempt(&delivery, &endpoint, rev, &events)
            .await?;
    }
    Ok(report)
}
