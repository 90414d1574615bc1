//! Webhook endpoints: one per (account, source), bound to one connection (tenant) of the
//! account. The record names its signing secrets in the vault and never holds their values.
//!
//! Secrets: for a Standard Webhooks endpoint we generate the secret (OS random, `whsec_` +
//! base64 of [`SECRET_BYTES`] bytes) and show it once. BambooHR and HiBob generate the key in
//! their own settings page and show it to the admin, who hands it to us; we store it the same
//! way. Rotation keeps the previous secret valid for a grace period (default 24 h), then it is
//! forgotten (the record drops its name and the service deletes it from the vault).

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use super::Source;
use crate::error::StoreError;
use crate::model::{AccountId, TenantId};
use crate::ports::Secret;

/// Bytes of a generated Standard Webhooks secret (the specification allows 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// The default time a rotated-out secret stays valid.
pub fn default_grace() -> Duration {
    Duration::hours(24)
}

/// At most this many secrets are valid at once (the current one and rotated-out ones still in
/// their grace period); a rotation beyond it forgets the oldest at once.
pub const MAX_LIVE_SECRETS: usize = 3;

/// The key of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointKey {
    pub account_id: AccountId,
    pub source: Source,
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.source)
    }
}

/// One signing secret, by its vault name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// The vault name (never the value).
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Set when rotated out: valid until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub key: EndpointKey,
    /// The connection whose directory the workflows act on.
    pub tenant_id: TenantId,
    pub enabled: bool,
    /// Current secret first, then rotated-out ones still in their grace period.
    pub secrets: Vec<SecretRef>,
    /// Bumped by each new secret; part of the vault names, so a rotation never overwrites.
    pub generation: u32,
    /// Vault name of the credential for the provider's API (HiBob service user `id:token`,
    /// BambooHR API key), where the events lack what the mapping needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_credential: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub rev: u64,
}

/// The vault name of secret `generation` of an endpoint.
pub fn secret_name(key: &EndpointKey, generation: u32) -> String {
    format!(
        "webhook/{}/{}/signing/{generation}",
        key.account_id, key.source
    )
}

/// The vault name of an endpoint's provider-API credential.
pub fn api_credential_name(key: &EndpointKey) -> String {
    format!("webhook/{}/{}/api", key.account_id, key.source)
}

impl WebhookEndpoint {
    /// A new endpoint with its first secret (generation 1).
    pub fn new(key: EndpointKey, tenant_id: TenantId, now: DateTime<Utc>) -> Self {
        let first = SecretRef {
            name: secret_name(&key, 1),
            created_at: now,
            valid_until: None,
        };
        Self {
            key,
            tenant_id,
            enabled: true,
            secrets: vec![first],
            generation: 1,
            api_credential: None,
            created_at: now,
            updated_at: now,
            rev: 0,
        }
    }

    /// The names of the secrets that verify a delivery at `now`, current first.
    pub fn live_secret_names(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.valid_until.is_none_or(|u| now < u))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Rotate: a new current secret; the previous ones stay valid for `grace` (or what is left
    /// of their own grace, whichever ends first). Returns the new secret's vault name and the
    /// names of secrets forgotten now (expired, or beyond [`MAX_LIVE_SECRETS`]), which the
    /// caller deletes from the vault.
    pub fn rotate(&mut self, now: DateTime<Utc>, grace: Duration) -> (String, Vec<String>) {
        let until = now + grace.max(Duration::zero());
        for s in &mut self.secrets {
            s.valid_until = Some(s.valid_until.map_or(until, |u| u.min(until)));
        }
        self.generation += 1;
        let name = secret_name(&self.key, self.generation);
        self.secrets.insert(
            0,
            SecretRef {
                name: name.clone(),
                created_at: now,
                valid_until: None,
            },
        );
        let mut forgotten = self.forget_expired(now);
        while self.secrets.len() > MAX_LIVE_SECRETS {
            if let Some(s) = self.secrets.pop() {
                forgotten.push(s.name);
            }
        }
        self.updated_at = now;
        (name, forgotten)
    }

    /// Drop rotated-out secrets whose grace ended; returns their names.
    pub fn forget_expired(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.secrets)
            .into_iter()
            .partition(|s| s.valid_until.is_none_or(|u| now < u));
        self.secrets = keep;
        gone.into_iter().map(|s| s.name).collect()
    }
}

/// Why no secret could be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomUnavailable;

/// A new Standard Webhooks secret: `whsec_` + base64 of [`SECRET_BYTES`] OS-random bytes.
pub fn generate_secret() -> Result<Secret, RandomUnavailable> {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| RandomUnavailable)?;
    Ok(Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )))
}

/// Endpoints, by (account, source). JSON-shaped records; conditional writes on `rev`.
#[async_trait]
pub trait WebhookEndpointStore: Send + Sync {
    /// Store a new endpoint unless one exists for its key; then that one is returned and
    /// nothing is written.
    async fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;
    async fn get_endpoint(&self, key: &EndpointKey) -> Result<Option<WebhookEndpoint>, StoreError>;
    /// Replace it if the stored `rev` is still `expected_rev` (the caller bumps `rev`);
    /// otherwise `StoreError::Conflict`.
    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        expected_rev: u64,
    ) -> Result<(), StoreError>;
    /// The endpoints of one account.
    async fn list_endpoints(&self, account: &AccountId)
    -> Result<Vec<WebhookEndpoint>, StoreError>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint::new(
            EndpointKey {
                account_id: AccountId("acct-a".into()),
                source: Source::Standard,
            },
            TenantId::new("t"),
            t0(),
        )
    }

    #[test]
    fn generated_secrets_are_standard_webhooks_shaped_and_differ() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        let key = a.expose().strip_prefix("whsec_").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert_eq!(bytes.len(), SECRET_BYTES);
        assert!((24..=64).contains(&bytes.len()));
        assert_eq!(format!("{a:?}"), "Secret(***)");
    }

    #[test]
    fn rotation_keeps_the_previous_secret_for_the_grace_period_then_forgets_it() {
        let mut e = endpoint();
        let first = e.secrets[0].name.clone();
        let (second, gone) = e.rotate(t0(), Duration::hours(24));
        assert!(gone.is_empty());
        assert_ne!(first, second);
        assert_eq!(
            e.live_secret_names(t0()),
            vec![second.as_str(), first.as_str()]
        );
        let late = t0() + Duration::hours(24);
        assert_eq!(e.live_secret_names(late), vec![second.as_str()]);
        assert_eq!(e.forget_expired(late), vec![first]);
        assert_eq!(e.secrets.len(), 1);
    }

    #[test]
    fn rotating_again_never_extends_an_older_grace_and_caps_live_secrets() {
        let mut e = endpoint();
        e.rotate(t0(), Duration::hours(24));
        let (_, _) = e.rotate(t0() + Duration::hours(1), Duration::hours(48));
        // The first secret still ends at 24 h, not 49 h.
        assert_eq!(e.secrets[2].valid_until, Some(t0() + Duration::hours(24)));
        let (_, gone) = e.rotate(t0() + Duration::hours(2), Duration::hours(48));
        assert_eq!(e.secrets.len(), MAX_LIVE_SECRETS);
        assert_eq!(gone.len(), 1, "the oldest is forgotten at once");
        assert_eq!(e.generation, 4);
    }
}
