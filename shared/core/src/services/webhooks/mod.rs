//! The use cases of the HR webhooks: manage endpoints (create with a secret shown once, rotate
//! with a grace period, disable / enable, set the HR API credential), receive a delivery
//! (classify, store before answering, queue), process a queued delivery (HR events ->
//! workflows), and the review list (people we could not match). docs/hr-webhooks.md is the
//! reader's guide.
//!
//! Each use case takes the deps it uses: the webhook route holds [`ReceiveDeps`] only (the
//! endpoint records, the vault for the signing secrets, the delivery log and the queue).

mod consume;
mod endpoints;
mod process;
mod receive;
mod review;

use chrono::Duration;

pub use consume::{claim_key, handle_delivery_message};
pub use endpoints::{
    CreateEndpoint, CreatedEndpoint, EndpointDeps, RotatedSecret, create_endpoint,
    forget_expired_secrets, get_endpoint, list_deliveries, list_endpoints, rotate_secret,
    set_api_credential, set_enabled,
};
pub use process::{ProcessDeps, process_delivery};
pub use receive::{Incoming, ReceiveDeps, receive, replay_delivery};
pub use review::{dismiss_review, list_reviews, resolve_review};

use super::actions::ActionError;
use crate::error::{QueueError, StoreError, VaultError};
use crate::model::TenantId;
use crate::webhooks::ports::HrDirectoryError;

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// How long a rotated-out secret stays valid.
    pub grace: Duration,
    pub limits: crate::webhooks::delivery::Limits,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            grace: crate::webhooks::endpoint::default_grace(),
            limits: Default::default(),
        }
    }
}

/// Why a webhook use case did not do what was asked, in plain words (never a secret).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Unknown tenant, or a tenant of another account (the same answer).
    #[error("no directory {tenant} is connected to this account")]
    UnknownConnection { tenant: TenantId },
    #[error("no {system} webhook endpoint for this account")]
    UnknownEndpoint { system: String },
    #[error("this account already has a {system} webhook endpoint; rotate its secret instead")]
    EndpointExists { system: String },
    #[error("no delivery {id} on this endpoint")]
    UnknownDelivery { id: String },
    #[error("no review item {id} in directory {tenant}")]
    UnknownReview { tenant: TenantId, id: String },
    #[error("review item {id} is already {status}")]
    ReviewClosed { id: String, status: &'static str },
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    HrApi(#[from] HrDirectoryError),
    #[error("the secret vault is unavailable")]
    Vault(#[from] VaultError),
    #[error("the store is unavailable")]
    Store(#[from] StoreError),
    #[error("the delivery queue is unavailable")]
    Queue(#[from] QueueError),
    #[error("the operating system's random source failed")]
    Random,
}

impl WebhookError {
    /// A stable snake_case code for the edges.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Invalid(_) => "invalid_request",
            WebhookError::UnknownConnection { .. }
            | WebhookError::UnknownEndpoint { .. }
            | WebhookError::UnknownDelivery { .. }
            | WebhookError::UnknownReview { .. } => "not_found",
            WebhookError::EndpointExists { .. } | WebhookError::ReviewClosed { .. } => "conflict",
            WebhookError::Action(e) => e.code(),
            WebhookError::HrApi(_) => "hr_system_error",
            WebhookError::Vault(_)
            | WebhookError::Store(_)
            | WebhookError::Queue(_)
            | WebhookError::Random => "unavailable",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            WebhookError::Action(e) => e.is_retryable(),
            WebhookError::HrApi(e) => e.is_retryable(),
            WebhookError::Vault(e) => e.is_retryable(),
            WebhookError::Store(e) => e.is_retryable(),
            WebhookError::Queue(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// The largest page a listing returns.
pub const MAX_PAGE: usize = 200;

/// Who the workflows started by HR deliveries are requested by (approvers see this name).
pub fn requested_by(source: crate::webhooks::Source) -> String {
    format!("hr-webhook:{source}")
}

#[cfg(test)]
mod tests;
