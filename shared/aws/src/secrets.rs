//! Secrets Manager vault: the app's client credentials and any per-connection secret, by name
//! (`<prefix><name>`), with an in-memory cache whose entries live `ttl` (one `GetSecretValue`
//! per warm container per TTL is negligible against Secrets Manager's quota of 10,000 calls per
//! second per account and region).
//! Values never reach `Debug` output or logs: they travel as `Secret`, whose `Debug` is `***`,
//! and errors carry only the secret's name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use entra_sync_core::error::VaultError;
use entra_sync_core::ports::{Secret, SecretVault};
use tokio::time::Instant;

use crate::error::{AwsCallError, Class};

const SERVICE: &str = "secretsmanager";
/// The cache lifetime the Lambda extension uses by default (and its maximum).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

pub struct SecretsManagerVault {
    client: Client,
    prefix: String,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
}

impl std::fmt::Debug for SecretsManagerVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerVault")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerVault {
    /// Secrets are named `<prefix><name>` (e.g. prefix `entra-sync/prod/`).
    pub fn new(client: Client, prefix: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The function's vault: secrets named under `SECRET_PREFIX`, cached for [`DEFAULT_TTL`].
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, crate::config::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::required("SECRET_PREFIX")?,
            DEFAULT_TTL,
        ))
    }

    fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Secret, Instant)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forget(&self, name: &str) {
        self.cache().remove(name);
    }
}

#[async_trait]
impl SecretVault for SecretsManagerVault {
    async fn get_secret(&self, name: &str) -> Result<Secret, VaultError> {
        if let Some((value, at)) = self.cache().get(name)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(self.id(name))
            .send()
            .await
            .map_err(|e| {
                AwsCallError::from_sdk(SERVICE, "GetSecretValue", e, |e| {
                    if e.is_resource_not_found_exception() {
                        Class::NotFound
                    } else if e.is_internal_service_error() {
                        Class::Retryable
                    } else {
                        Class::Permanent
                    }
                })
                .into_vault(name)
            })?;
        // Only string secrets are ours; a binary one is not something we wrote.
        let value = Secret::new(
            out.secret_string
                .ok_or_else(|| VaultError::Decrypt(name.to_owned()))?,
        );
        self.cache()
            .insert(name.to_owned(), (value.clone(), Instant::now()));
        Ok(value)
    }

    async fn put_secret(&self, name: &str, value: &Secret) -> Result<(), VaultError> {
        self.forget(name);
        let put = self
            .client
            .put_secret_value()
            .secret_id(self.id(name))
            .secret_string(value.expose())
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = AwsCallError::from_sdk(SERVICE, "PutSecretValue", e, |e| {
                    if e.is_resource_not_found_exception() {
                        Class::NotFound
                    } else if e.is_internal_service_error() || e.is_limit_exceeded_exception() {
                        Class::Retryable
                    } else {
                        Class::Permanent
                    }
                });
                if err.class != Class::NotFound {
                    return Err(err.into_vault(name));
                }
                // First write of this name.
                self.client
                    .create_secret()
                    .name(self.id(name))
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map_err(|e| {
                        AwsCallError::from_sdk(SERVICE, "CreateSecret", e, |e| {
                            if e.is_internal_service_error() || e.is_limit_exceeded_exception() {
                                Class::Retryable
                            } else {
                                Class::Permanent
                            }
                        })
                        .into_vault(name)
                    })?;
                Ok(())
            }
        }
    }

    async fn delete_secret(&self, name: &str) -> Result<(), VaultError> {
        self.forget(name);
        let res = self
            .client
            .delete_secret()
            .secret_id(self.id(name))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match AwsCallError::from_sdk(SERVICE, "DeleteSecret", e, |e| {
                if e.is_resource_not_found_exception() {
                    Class::NotFound
                } else if e.is_internal_service_error() {
                    Class::Retryable
                } else {
                    Class::Permanent
                }
            }) {
                err if err.class == Class::NotFound => Ok(()),
                err => Err(err.into_vault(name)),
            },
        }
    }
}
