//! Typed errors of every port, each classified retryable or permanent, and the domain error the
//! services return. The outside world sees them only through one conversion per edge.

use std::time::Duration;

use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the directory port (Microsoft Graph and its login endpoint).
#[derive(Debug, Error)]
pub enum DirectoryError {
    /// 429 (or 503/504 with Retry-After) still returned after the client's bounded retries.
    #[error("directory throttled the request (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    /// The delta token is no longer valid (410, `syncStateNotFound`, `resyncRequired`).
    #[error("delta token rejected ({code}): a full resync is required")]
    ResyncRequired { code: String },
    /// Token acquisition fails because consent was revoked or a policy blocks the app.
    #[error("the directory needs to be reauthorized ({code})")]
    NeedsReauthorization { code: String },
    /// The app lacks a permission (403 `Authorization_RequestDenied`).
    #[error("insufficient privileges{}", permission.as_ref().map(|p| format!(" (needs {p})")).unwrap_or_default())]
    InsufficientPrivileges { permission: Option<String> },
    #[error("directory object not found")]
    NotFound,
    /// Network failures, 5xx after retries: worth another try later.
    #[error("transient directory failure (status {status:?})")]
    Transient {
        status: Option<u16>,
        #[source]
        source: Option<Source>,
    },
    /// Anything else Graph refused; retrying the same request will not help.
    #[error("directory refused the request (status {status}, code {code})")]
    Permanent { status: u16, code: String },
    /// Graph answered with something we could not understand.
    #[error("unexpected directory response: {0}")]
    InvalidResponse(String),
}

impl DirectoryError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DirectoryError::Throttled { .. } | DirectoryError::Transient { .. }
        )
    }
}

/// Errors of every store port.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost against a concurrent writer.
    #[error("conditional write conflict on {0}")]
    Conflict(String),
    /// The store is unreachable or throttling.
    #[error("store unavailable")]
    Unavailable(#[source] Source),
    /// A stored item could not be decoded.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// A bug or misconfiguration (bad schema, missing table).
    #[error("store failure")]
    Internal(#[source] Source),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Conflict(_) | StoreError::Unavailable(_))
    }
}

/// Errors of the work queue port.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("queue unavailable")]
    Unavailable(#[source] Source),
    #[error("message rejected: {0}")]
    Rejected(String),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

/// Errors of the secret vault port. Never carries a secret value.
#[derive(Debug, Error)]
pub enum VaultError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error("vault unavailable")]
    Unavailable(#[source] Source),
    #[error("secret {0} could not be decrypted")]
    Decrypt(String),
}

impl VaultError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, VaultError::Unavailable(_))
    }
}

/// Errors of the event sink port.
#[derive(Debug, Error)]
pub enum EventError {
    #[error("event sink unavailable")]
    Unavailable(#[source] Source),
}

/// How a caller at an edge (SQS batch, Lambda diagnostic, HTTP, CLI) should treat a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    Retryable,
    Permanent,
    ResyncRequired,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "Retryable",
            ErrorClass::Permanent => "Permanent",
            ErrorClass::ResyncRequired => "ResyncRequired",
        }
    }
}

/// The error every service returns.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("connection {0} not found")]
    UnknownConnection(String),
    #[error("connection {tenant} cannot sync: {why}")]
    ConnectionNotSyncable { tenant: String, why: String },
    /// Another fetch of this directory holds the lease.
    #[error("another fetch of {0} is running")]
    Busy(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl SyncError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SyncError::Directory(DirectoryError::ResyncRequired { .. }) => {
                ErrorClass::ResyncRequired
            }
            SyncError::Directory(e) if e.is_retryable() => ErrorClass::Retryable,
            SyncError::Store(e) if e.is_retryable() => ErrorClass::Retryable,
            SyncError::Queue(e) if e.is_retryable() => ErrorClass::Retryable,
            SyncError::Vault(e) if e.is_retryable() => ErrorClass::Retryable,
            SyncError::Event(_) | SyncError::Busy(_) => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() != ErrorClass::Permanent
    }
}
