//! Endpoint management: create (the secret is returned once and stored only in the vault),
//! rotate (the previous secret stays valid for the grace period), disable / enable, the HR API
//! credential, and the delivery log listing.

use std::sync::Arc;

use chrono::Duration;

use super::{MAX_PAGE, WebhookConfig, WebhookError};
use crate::model::{AccountId, TenantId};
use crate::ports::{Clock, ConnectionStore, Listing, Secret, SecretVault};
use crate::webhooks::Source;
use crate::webhooks::delivery::Delivery;
use crate::webhooks::endpoint::{
    EndpointKey, WebhookEndpoint, WebhookEndpointStore, api_credential_name, generate_secret,
};
use crate::webhooks::ports::DeliveryStore;
use crate::webhooks::verify::SigningKey;

/// What endpoint management uses.
#[derive(Clone)]
pub struct EndpointDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub endpoints: Arc<dyn WebhookEndpointStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub vault: Arc<dyn SecretVault>,
    pub clock: Arc<dyn Clock>,
    pub config: WebhookConfig,
}

/// A request to create an endpoint.
#[derive(Clone, Debug)]
pub struct CreateEndpoint {
    pub account: AccountId,
    pub source: Source,
    /// The connection whose directory the workflows act on.
    pub tenant: TenantId,
    /// BambooHR and HiBob: the key their settings page generated (required). Standard
    /// Webhooks: leave empty and one is generated (or give the sender's own `whsec_` secret).
    pub secret: Option<Secret>,
    /// The HR system's API credential (HiBob: `service-user-id:token`), where events lack
    /// fields the mapping needs.
    pub api_credential: Option<Secret>,
}

/// A created endpoint and, when we generated it, its secret: shown this once.
#[derive(Debug)]
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: Option<Secret>,
}

/// A rotation's result: the new secret when we generated it (shown once).
#[derive(Debug)]
pub struct RotatedSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: Option<Secret>,
}

fn key(account: &AccountId, source: Source) -> EndpointKey {
    EndpointKey {
        account_id: account.clone(),
        source,
    }
}

async fn owned_tenant(
    deps: &EndpointDeps,
    account: &AccountId,
    tenant: &TenantId,
) -> Result<(), WebhookError> {
    match deps.connections.get_connection(tenant).await? {
        Some(c) if &c.account_id == account => Ok(()),
        _ => Err(WebhookError::UnknownConnection {
            tenant: tenant.clone(),
        }),
    }
}

/// The secret to store: the one given (checked) or a generated one (Standard Webhooks only).
fn choose_secret(source: Source, given: Option<Secret>) -> Result<(Secret, bool), WebhookError> {
    match given {
        Some(s) => {
            SigningKey::from_secret(source, s.expose())
                .map_err(|e| WebhookError::Invalid(vec![format!("secret: {e}")]))?;
            Ok((s, false))
        }
        None if source == Source::Standard => {
            Ok((generate_secret().map_err(|_| WebhookError::Random)?, true))
        }
        None => Err(WebhookError::Invalid(vec![format!(
            "secret: {} generates the signing key in its own webhook settings; give that key (the CLI reads it from the environment variable named by --secret-env)",
            match source {
                Source::BambooHr => "BambooHR",
                _ => "HiBob",
            }
        )])),
    }
}

/// Create the endpoint of (account, source) for one of the account's connections.
pub async fn create_endpoint(
    deps: &EndpointDeps,
    req: CreateEndpoint,
) -> Result<CreatedEndpoint, WebhookError> {
    owned_tenant(deps, &req.account, &req.tenant).await?;
    let k = key(&req.account, req.source);
    if deps.endpoints.get_endpoint(&k).await?.is_some() {
        return Err(WebhookError::EndpointExists {
            system: req.source.to_string(),
        });
    }
    let (secret, generated) = choose_secret(req.source, req.secret)?;
    let now = deps.clock.now();
    let mut endpoint = WebhookEndpoint::new(k.clone(), req.tenant.clone(), now);
    deps.vault
        .put_secret(&endpoint.secrets[0].name, &secret)
        .await?;
    if let Some(cred) = &req.api_credential {
        let name = api_credential_name(&k);
        deps.vault.put_secret(&name, cred).await?;
        endpoint.api_credential = Some(name);
    }
    if deps.endpoints.create_endpoint(&endpoint).await?.is_some() {
        // Lost a race with another create: drop what we wrote (the names are unique).
        let _ = deps.vault.delete_secret(&endpoint.secrets[0].name).await;
        return Err(WebhookError::EndpointExists {
            system: req.source.to_string(),
        });
    }
    tracing::info!(account = %k.account_id, source = %k.source, "webhook endpoint created");
    Ok(CreatedEndpoint {
        endpoint,
        secret: generated.then_some(secret),
    })
}

/// The endpoint of (account, source).
pub async fn get_endpoint(
    deps: &EndpointDeps,
    account: &AccountId,
    source: Source,
) -> Result<WebhookEndpoint, WebhookError> {
    deps.endpoints
        .get_endpoint(&key(account, source))
        .await?
        .ok_or_else(|| WebhookError::UnknownEndpoint {
            system: source.to_string(),
        })
}

/// The endpoints of an account.
pub async fn list_endpoints(
    deps: &EndpointDeps,
    account: &AccountId,
) -> Result<Vec<WebhookEndpoint>, WebhookError> {
    Ok(deps.endpoints.list_endpoints(account).await?)
}

async fn store(
    deps: &EndpointDeps,
    mut e: WebhookEndpoint,
) -> Result<WebhookEndpoint, WebhookError> {
    let expected = e.rev;
    e.rev += 1;
    e.updated_at = deps.clock.now();
    deps.endpoints.update_endpoint(&e, expected).await?;
    Ok(e)
}

async fn forget(deps: &EndpointDeps, names: &[String]) {
    for name in names {
        // Best effort: the record no longer names it, so it verifies nothing either way.
        if let Err(e) = deps.vault.delete_secret(name).await {
            tracing::warn!(error = %e, "rotated-out webhook secret not deleted from the vault");
        }
    }
}

/// Rotate the signing secret: the new one is current at once; the previous ones stay valid
/// for `grace` (the configured default when `None`) so the sender can switch without
/// refusals. BambooHR and HiBob: give the key they generated; Standard: one is generated.
pub async fn rotate_secret(
    deps: &EndpointDeps,
    account: &AccountId,
    source: Source,
    new_secret: Option<Secret>,
    grace: Option<Duration>,
) -> Result<RotatedSecret, WebhookError> {
    let mut e = get_endpoint(deps, account, source).await?;
    let (secret, generated) = choose_secret(source, new_secret)?;
    let grace = grace.unwrap_or(deps.config.grace);
    if grace < Duration::zero() || grace > Duration::days(30) {
        return Err(WebhookError::Invalid(vec![
            "grace: must be between 0 and 30 days".into(),
        ]));
    }
    let (name, forgotten) = e.rotate(deps.clock.now(), grace);
    deps.vault.put_secret(&name, &secret).await?;
    let e = match store(deps, e).await {
        Ok(e) => e,
        Err(err) => {
            let _ = deps.vault.delete_secret(&name).await;
            return Err(err);
        }
    };
    forget(deps, &forgotten).await;
    tracing::info!(account = %account, source = %source, "webhook secret rotated");
    Ok(RotatedSecret {
        endpoint: e,
        secret: generated.then_some(secret),
    })
}

/// Drop rotated-out secrets whose grace ended (the scheduler's tick; a rotation does it too).
pub async fn forget_expired_secrets(
    deps: &EndpointDeps,
    account: &AccountId,
    source: Source,
) -> Result<usize, WebhookError> {
    let mut e = get_endpoint(deps, account, source).await?;
    let gone = e.forget_expired(deps.clock.now());
    if gone.is_empty() {
        return Ok(0);
    }
    store(deps, e).await?;
    forget(deps, &gone).await;
    Ok(gone.len())
}

/// Disable or enable an endpoint. A disabled endpoint answers 404, like an unknown one.
pub async fn set_enabled(
    deps: &EndpointDeps,
    account: &AccountId,
    source: Source,
    enabled: bool,
) -> Result<WebhookEndpoint, WebhookError> {
    let mut e = get_endpoint(deps, account, source).await?;
    if e.enabled == enabled {
        return Ok(e);
    }
    e.enabled = enabled;
    store(deps, e).await
}

/// Set (or replace) the HR API credential of an endpoint.
pub async fn set_api_credential(
    deps: &EndpointDeps,
    account: &AccountId,
    source: Source,
    credential: Secret,
) -> Result<WebhookEndpoint, WebhookError> {
    if credential.expose().trim().is_empty() {
        return Err(WebhookError::Invalid(vec![
            "api_credential: is empty".into(),
        ]));
    }
    let mut e = get_endpoint(deps, account, source).await?;
    let name = api_credential_name(&e.key);
    deps.vault.put_secret(&name, &credential).await?;
    if e.api_credential.as_deref() == Some(name.as_str()) {
        return Ok(e);
    }
    e.api_credential = Some(name);
    store(deps, e).await
}

/// The delivery log of an endpoint, newest first.
pub async fn list_deliveries(
    deps: &EndpointDeps,
    account: &AccountId,
    source: Source,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<Delivery>, WebhookError> {
    let e = get_endpoint(deps, account, source).await?;
    Ok(deps
        .deliveries
        .list_deliveries(&e.key, after, limit.clamp(1, MAX_PAGE))
        .await?)
}
