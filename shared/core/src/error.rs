//! Typed errors of every port, each classified retryable or permanent, and the domain error the
//! services return. The outside world sees them only through one conversion per edge.

use std::time::Duration;

use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the directory port (Microsoft Graph and its login endpoint). `Display` is for
/// people: what happened, with the URL or code that lets an operator act on it.
#[derive(Debug, Error)]
pub enum DirectoryError {
    /// 429 (or 503/504 with Retry-After) still returned after the client's bounded retries.
    #[error("Microsoft Graph is throttling the requests{}", retry_after_text(*.retry_after))]
    Throttled { retry_after: Option<Duration> },
    /// The delta token is no longer valid (410, `syncStateNotFound`, `resyncRequired`).
    #[error("the delta token was rejected ({code}): a full resync is required")]
    ResyncRequired { code: String },
    /// A nextLink or deltaLink that cannot be followed: not an absolute URL, or on another
    /// host than the configured Graph URL (the bearer token never leaves that host). Like an
    /// expired token, it abandons the round for a full one.
    #[error("{}", unusable_link_text(.link_host.as_deref(), .graph_host))]
    UnusableLink {
        /// `host[:port]` of the link; `None` when it is not an absolute URL.
        link_host: Option<String>,
        /// `host[:port]` of the configured Graph URL.
        graph_host: String,
    },
    /// Token acquisition fails because consent was revoked or a policy blocks the app: the
    /// customer's administrator has to act.
    #[error("the directory needs to be reauthorized ({code})")]
    NeedsReauthorization { code: String },
    /// Our own configuration does not match the directory: the login endpoint does not know
    /// the tenant (AADSTS90002) or the application id (AADSTS700016). An operator has to act;
    /// the customer's consent is not in question.
    #[error("{}", misconfigured_text(.code))]
    Misconfigured { code: String },
    /// The app lacks a permission (403 `Authorization_RequestDenied`).
    #[error("insufficient privileges{}", permission.as_ref().map(|p| format!(" (needs {p})")).unwrap_or_default())]
    InsufficientPrivileges { permission: Option<String> },
    #[error("directory object not found")]
    NotFound,
    /// Network failures, 5xx after retries: worth another try later. `url` is the request's
    /// URL without its query (delta tokens stay out of messages).
    #[error("{}", transient_text(*.status, .url.as_deref()))]
    Transient {
        status: Option<u16>,
        url: Option<String>,
        #[source]
        source: Option<Source>,
    },
    /// Anything else Graph refused; retrying the same request will not help.
    #[error("the directory refused the request (HTTP {status}, code {code})")]
    Permanent { status: u16, code: String },
    /// Graph answered with something we could not understand.
    #[error("unexpected directory response: {0}")]
    InvalidResponse(String),
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (it asks to retry after {} s)", d.as_secs()))
        .unwrap_or_default()
}

fn unusable_link_text(link_host: Option<&str>, graph_host: &str) -> String {
    match link_host {
        Some(host) => format!(
            "the delta link points to {host}, not to the configured Graph host {graph_host}"
        ),
        None => format!(
            "the delta link is not an absolute URL on the configured Graph host {graph_host}"
        ),
    }
}

fn misconfigured_text(code: &str) -> String {
    let what = match code.trim_start_matches("AADSTS") {
        "90002" => {
            "the login endpoint does not know this tenant: check the tenant id and that the login URL is the directory's cloud"
        }
        "700016" => {
            "the directory does not know the application (client) id: check the configured client id; if it is right, the app is not installed in this directory and an administrator must consent again"
        }
        _ => "the app's configuration does not match the directory",
    };
    format!("{what} ({code})")
}

fn transient_text(status: Option<u16>, url: Option<&str>) -> String {
    match (status, url) {
        (Some(s), Some(u)) => format!("{u} answered HTTP {s}"),
        (Some(s), None) => format!("the directory answered HTTP {s}"),
        (None, Some(u)) => format!("no answer from {u}"),
        (None, None) => "no answer from the directory".to_owned(),
    }
}

impl DirectoryError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DirectoryError::Throttled { .. } | DirectoryError::Transient { .. }
        )
    }

    /// The innermost cause of a transport failure, in the words of the operating system or
    /// the TLS stack ("Connection refused (os error 111)"), when there is one.
    pub fn root_cause(&self) -> Option<String> {
        let mut cause: &(dyn std::error::Error + 'static) = match self {
            DirectoryError::Transient {
                source: Some(source),
                ..
            } => source.as_ref(),
            _ => return None,
        };
        while let Some(next) = cause.source() {
            cause = next;
        }
        Some(cause.to_string())
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
    #[error("no connection for directory {0}")]
    UnknownConnection(String),
    /// `why` is plain words (the connection's status and what to do).
    #[error("directory {tenant} cannot sync: {why}")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_errors_read_as_plain_words() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let cases = [
            DirectoryError::Throttled {
                retry_after: Some(Duration::from_secs(30)),
            },
            DirectoryError::Throttled { retry_after: None },
            DirectoryError::Transient {
                status: None,
                url: Some("http://127.0.0.1:9/t/oauth2/v2.0/token".into()),
                source: Some(Box::new(refused)),
            },
            DirectoryError::Transient {
                status: Some(503),
                url: None,
                source: None,
            },
            DirectoryError::UnusableLink {
                link_host: Some("http://127.0.0.1:8080".into()),
                graph_host: "http://localhost:8080".into(),
            },
            DirectoryError::UnusableLink {
                link_host: None,
                graph_host: "https://graph.microsoft.com".into(),
            },
            DirectoryError::Misconfigured {
                code: "AADSTS700016".into(),
            },
            DirectoryError::Misconfigured {
                code: "AADSTS90002".into(),
            },
            DirectoryError::InsufficientPrivileges { permission: None },
        ];
        for e in &cases {
            let text = e.to_string();
            for debug in ["None", "Some(", "{", "}"] {
                assert!(!text.contains(debug), "{text}");
            }
        }
        assert!(cases[0].to_string().contains("30 s"));
        assert!(
            cases[2]
                .to_string()
                .contains("http://127.0.0.1:9/t/oauth2/v2.0/token")
        );
        assert_eq!(
            cases[2].root_cause().as_deref(),
            Some("Connection refused (os error 111)")
        );
        let link = cases[4].to_string();
        assert!(
            link.contains("127.0.0.1:8080") && link.contains("localhost:8080"),
            "{link}"
        );
        assert!(cases[6].to_string().contains("client id"));
        assert!(cases[7].to_string().contains("tenant"));
        let not_syncable = SyncError::ConnectionNotSyncable {
            tenant: "t".into(),
            why: "the directory is disconnected".into(),
        };
        assert_eq!(
            not_syncable.to_string(),
            "directory t cannot sync: the directory is disconnected"
        );
    }
}
