//! Receiving a delivery: everything the webhook route does below the HTTP translation. The
//! answer is decided by [`check`]; an accepted delivery is stored (a conditional create on its
//! stable id) and queued *before* the 2xx, so a crash after answering loses nothing and a
//! retry by the sender does nothing twice.

use std::sync::Arc;

use super::WebhookError;
use crate::model::AccountId;
use crate::ports::{Clock, SecretVault};
use crate::webhooks::Source;
use crate::webhooks::delivery::{
    Answer, Checked, Delivery, Limits, Outcome, Processing, Refusal, check,
};
use crate::webhooks::endpoint::{EndpointKey, WebhookEndpoint, WebhookEndpointStore};
use crate::webhooks::ports::{DeliveryMessage, DeliveryQueue, DeliveryStore};
use crate::webhooks::verify::{Headers, SigningKey};

/// What the webhook route uses (its IAM policy: read endpoints, read secrets, write the
/// delivery log, send to the queue).
#[derive(Clone)]
pub struct ReceiveDeps {
    pub endpoints: Arc<dyn WebhookEndpointStore>,
    pub vault: Arc<dyn SecretVault>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

/// A request as the route hands it over: the path's account and source, and the raw body.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub account: &'a str,
    pub source: &'a str,
    pub content_type: Option<&'a str>,
    pub headers: &'a Headers,
    pub body: &'a [u8],
}

/// Answer one request. Never fails: every problem is an [`Answer`].
pub async fn receive(deps: &ReceiveDeps, req: Incoming<'_>) -> Answer {
    let Some(source) = Source::parse(req.source) else {
        return Answer::Refused(Refusal::NotFound);
    };
    if req.account.is_empty() || req.account.len() > 128 {
        return Answer::Refused(Refusal::NotFound);
    }
    let key = EndpointKey {
        account_id: AccountId(req.account.to_string()),
        source,
    };
    let endpoint = match deps.endpoints.get_endpoint(&key).await {
        Ok(Some(e)) => e,
        Ok(None) => return Answer::Refused(Refusal::NotFound),
        Err(e) => {
            tracing::warn!(error = %e, "webhook endpoint not read");
            return Answer::Unavailable;
        }
    };
    let now = deps.clock.now();
    if !endpoint.enabled {
        log_row(
            deps,
            &endpoint,
            Outcome::Refused {
                status: 404,
                code: "endpoint_disabled".into(),
                reason: "the endpoint is disabled".into(),
            },
            None,
        )
        .await;
        return Answer::Refused(Refusal::NotFound);
    }
    let keys = match keys(deps, &endpoint, now).await {
        Ok(k) => k,
        Err(()) => return Answer::Unavailable,
    };
    match check(
        source,
        req.content_type,
        req.headers,
        req.body,
        &keys,
        now,
        deps.limits,
    ) {
        Checked::Ping => Answer::Ping,
        Checked::Refuse(r) => {
            tracing::info!(account = %key.account_id, source = %source, status = r.status(), code = r.code(), "webhook delivery refused");
            log_row(
                deps,
                &endpoint,
                Outcome::Refused {
                    status: r.status(),
                    code: r.code().into(),
                    reason: r.to_string(),
                },
                req.headers
                    .get(crate::webhooks::verify::WEBHOOK_ID)
                    .map(str::to_string),
            )
            .await;
            Answer::Refused(r)
        }
        Checked::Accept(a) => {
            let d = Delivery::accepted(&endpoint, &a, now);
            let msg = DeliveryMessage {
                account_id: key.account_id.clone(),
                source,
                delivery_id: d.id.clone(),
            };
            match deps.deliveries.create_delivery(&d).await {
                Ok(None) => {}
                Ok(Some(existing)) => {
                    // A retry: nothing is done twice. If the first attempt stored but did not
                    // queue (the queue was down), queue it now; the processor is idempotent.
                    if existing.processing == Processing::Queued
                        && let Err(e) = deps.queue.enqueue_delivery(&msg).await
                    {
                        tracing::warn!(error = %e, delivery = %existing.id, "webhook delivery not queued");
                        return Answer::Unavailable;
                    }
                    log_row(
                        deps,
                        &endpoint,
                        Outcome::Duplicate {
                            of: existing.id.clone(),
                        },
                        d.source_event_id.clone(),
                    )
                    .await;
                    return Answer::Duplicate {
                        delivery_id: existing.id,
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery not stored");
                    return Answer::Unavailable;
                }
            }
            if let Err(e) = deps.queue.enqueue_delivery(&msg).await {
                // Stored, not queued: the sender's retry queues it (see above).
                tracing::warn!(error = %e, delivery = %d.id, "webhook delivery not queued");
                return Answer::Unavailable;
            }
            tracing::info!(account = %key.account_id, source = %source, delivery = %d.id, events = d.events.len(), "webhook delivery accepted");
            Answer::Accepted { delivery_id: d.id }
        }
    }
}

/// The endpoint's live signing keys, current first. A stored secret that is not a usable key
/// is skipped (and logged); a vault outage is an error.
async fn keys(
    deps: &ReceiveDeps,
    endpoint: &WebhookEndpoint,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<SigningKey>, ()> {
    let mut out = Vec::new();
    for name in endpoint.live_secret_names(now) {
        match deps.vault.get_secret(name).await {
            Ok(secret) => match SigningKey::from_secret(endpoint.key.source, secret.expose()) {
                Ok(k) => out.push(k),
                Err(e) => {
                    tracing::warn!(error = %e, endpoint = %endpoint.key, "webhook secret unusable")
                }
            },
            Err(crate::error::VaultError::NotFound(_)) => {
                tracing::warn!(endpoint = %endpoint.key, "webhook secret missing from the vault");
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook secret not read");
                return Err(());
            }
        }
    }
    Ok(out)
}

/// A duplicate or refusal row in the log (best effort: the answer does not depend on it).
async fn log_row(
    deps: &ReceiveDeps,
    endpoint: &WebhookEndpoint,
    outcome: Outcome,
    source_event_id: Option<String>,
) {
    // The id comes from the request, signed or not: keep it short.
    let source_event_id = source_event_id.map(|s| s.chars().take(256).collect());
    let row = Delivery::logged(endpoint, outcome, source_event_id, deps.clock.now());
    if let Err(e) = deps.deliveries.create_delivery(&row).await {
        tracing::warn!(error = %e, "webhook delivery log row not stored");
    }
}

/// Queue an accepted delivery again (after fixing what kept some of its events from being
/// applied). Its workflows keep their keys: what already started is not started twice.
pub async fn replay_delivery(
    deps: &ReceiveDeps,
    account: &AccountId,
    source: Source,
    delivery_id: &str,
) -> Result<Delivery, WebhookError> {
    let key = EndpointKey {
        account_id: account.clone(),
        source,
    };
    let unknown = || WebhookError::UnknownDelivery {
        id: delivery_id.to_string(),
    };
    let mut d = deps
        .deliveries
        .get_delivery(&key, delivery_id)
        .await?
        .ok_or_else(unknown)?;
    if d.outcome != Outcome::Accepted {
        return Err(WebhookError::Invalid(vec![format!(
            "delivery {delivery_id} was {}; only accepted deliveries can be replayed",
            d.outcome.as_str()
        )]));
    }
    if d.processing != Processing::Queued {
        d.processing = Processing::Queued;
        let expected = d.rev;
        d.rev += 1;
        deps.deliveries.update_delivery(&d, expected).await?;
    }
    deps.queue
        .enqueue_delivery(&DeliveryMessage {
            account_id: account.clone(),
            source,
            delivery_id: d.id.clone(),
        })
        .await?;
    Ok(d)
}
