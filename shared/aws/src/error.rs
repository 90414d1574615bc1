//! The adapters' error: one AWS call that failed, classified retryable or permanent from the
//! SDK's typed error (never from message text). It becomes the `#[source]` of the port's error
//! (`StoreError`, `QueueError`, `VaultError`, `EventError`) in exactly one place per adapter.

use aws_smithy_runtime_api::client::result::SdkError;
use entra_sync_core::error::{EventError, QueueError, StoreError, VaultError};
use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How the adapters treat a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A condition the request carried did not hold (DynamoDB `ConditionalCheckFailed`).
    ConditionFailed,
    /// The thing asked for does not exist (Secrets Manager `ResourceNotFound`).
    NotFound,
    /// Throttling, a server error, a timeout or a network failure: try again later.
    Retryable,
    /// Validation, missing table or queue, access denied: retrying the same call will not help.
    Permanent,
}

/// One failed AWS call.
#[derive(Debug, Error)]
#[error("{service} {operation} failed ({class:?})")]
pub struct AwsCallError {
    pub service: &'static str,
    pub operation: &'static str,
    pub class: Class,
    #[source]
    pub source: Source,
}

impl AwsCallError {
    /// Classify an SDK error: service errors by `classify_service` (typed variants), the rest by
    /// kind (a request that could not be built is a bug; timeouts and I/O are transient).
    pub fn from_sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        err: SdkError<E, R>,
        classify_service: impl FnOnce(&E) -> Class,
    ) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let class = match err.as_service_error() {
            Some(e) => classify_service(e),
            None if matches!(err, SdkError::ConstructionFailure(_)) => Class::Permanent,
            None => Class::Retryable,
        };
        Self {
            service,
            operation,
            class,
            source: Box::new(err),
        }
    }

    /// An error the adapter itself found in an answer (a missing field, an undecodable body).
    pub fn invalid(service: &'static str, operation: &'static str, what: String) -> Self {
        Self {
            service,
            operation,
            class: Class::Permanent,
            source: what.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class == Class::Retryable
    }

    pub fn into_store(self) -> StoreError {
        match self.class {
            Class::ConditionFailed => StoreError::Conflict(self.operation.to_owned()),
            Class::Retryable => StoreError::Unavailable(Box::new(self)),
            Class::NotFound | Class::Permanent => StoreError::Internal(Box::new(self)),
        }
    }

    pub fn into_queue(self) -> QueueError {
        match self.class {
            Class::Retryable => QueueError::Unavailable(Box::new(self)),
            _ => QueueError::Rejected(self.to_string()),
        }
    }

    /// `name` is the secret's name (never its value).
    pub fn into_vault(self, name: &str) -> VaultError {
        match self.class {
            Class::NotFound => VaultError::NotFound(name.to_owned()),
            _ => VaultError::Unavailable(Box::new(self)),
        }
    }

    pub fn into_event(self) -> EventError {
        EventError::Unavailable(Box::new(self))
    }
}
