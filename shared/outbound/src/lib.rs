//! Outbound webhook delivery over HTTP, shared by the local program and the AWS delivery
//! function (functions/outbound): the reqwest poster and the tokio resolver behind the core's
//! ports, and [`OutboundWorker`], which delivers what is due. The core stays free of HTTP
//! clients; this crate is the one place that sends a delivery.
//!
//! The SSRF rule is the core's ([`entra_sync_core::outbound::ssrf`]); this crate only resolves.
//! The HTTP client resolves names through [`GuardedResolver`], which checks every address
//! before the connection is made to it, so the address checked is the address connected to
//! (a name that resolves to a public address at creation and to 127.0.0.1 later is refused
//! then). No proxy (a proxy would resolve the name itself), no redirects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entra_sync_core::outbound::ports::{
    HostResolver, OutboundRequest, OutboundStore, ResolveError, WebhookPoster,
};
use entra_sync_core::outbound::service::{DeliveryReport, OutboundError, deliver_due};
use entra_sync_core::outbound::ssrf::{UrlPolicy, UrlRefused, check_addresses};
use entra_sync_core::outbound::{AttemptOutcome, OutboundPolicy};
use entra_sync_core::ports::SecretVault;

/// Names resolved by the operating system (tokio's `lookup_host`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, ResolveError> {
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ResolveError {
                host: host.to_owned(),
                source: Some(Box::new(e)),
            })?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// The HTTP client's resolver: resolves, then keeps the answer only if every address passes
/// the SSRF rule.
struct GuardedResolver {
    policy: UrlPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
            check_addresses(&ips, policy)?;
            let out: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

/// POSTs deliveries with one reqwest client (timeout from the policy, no redirects, no proxy).
pub struct ReqwestPoster {
    client: reqwest::Client,
}

impl ReqwestPoster {
    pub fn new(policy: &OutboundPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("entra-sync/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.urls,
            }))
            .build()?;
        Ok(Self { client })
    }
}

/// The SSRF refusal in an error's chain, if that is what stopped the request.
fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<UrlRefused> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<UrlRefused>() {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

#[async_trait]
impl WebhookPoster for ReqwestPoster {
    async fn post(&self, request: &OutboundRequest) -> AttemptOutcome {
        let mut req = self.client.post(&request.url).body(request.body.clone());
        for (k, v) in &request.headers {
            req = req.header(*k, v);
        }
        match req.send().await {
            Ok(resp) => AttemptOutcome::Status {
                status: resp.status().as_u16(),
            },
            Err(e) if e.is_timeout() => AttemptOutcome::Timeout,
            Err(e) => {
                let error = match refusal(&e) {
                    Some(r) => format!("refused: {r}"),
                    None if e.is_connect() => "could not connect to the endpoint".to_owned(),
                    None => "the request failed before an answer".to_owned(),
                };
                AttemptOutcome::Error { error }
            }
        }
    }
}

/// Delivers the due outbound webhooks of a store (the local data directory, or the DynamoDB
/// table in the delivery function).
#[derive(Clone)]
pub struct OutboundWorker {
    pub store: Arc<dyn OutboundStore>,
    pub vault: Arc<dyn SecretVault>,
    pub poster: Arc<dyn WebhookPoster>,
    pub policy: OutboundPolicy,
}

impl OutboundWorker {
    /// One pass: every delivery due at `now`, a batch at a time, until none is due.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<DeliveryReport, OutboundError> {
        let mut total = DeliveryReport::default();
        loop {
            let r = deliver_due(
                self.store.as_ref(),
                self.vault.as_ref(),
                self.poster.as_ref(),
                &self.policy,
                now,
            )
            .await?;
            total.attempted += r.attempted;
            total.delivered += r.delivered;
            total.failed_attempts += r.failed_attempts;
            total.endpoints_disabled += r.endpoints_disabled;
            if r.attempted < self.policy.batch.max(1) {
                return Ok(total);
            }
        }
    }
}
