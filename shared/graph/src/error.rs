//! Classification of Graph and login failures into [`DirectoryError`], by status and error
//! code only (never by message text).

use std::fmt;
use std::time::Duration;

use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::Stream;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors building a [`crate::GraphClient`].
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("the {which} base URL must be an absolute http(s) URL")]
    BaseUrl { which: &'static str },
    #[error("invalid $select property {0:?}")]
    Select(String),
    #[error("could not build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// What a request was for: decides which permission a 403 names and whether 410 means resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Delta(Stream),
    Organization,
}

impl Endpoint {
    /// The least-privileged application permission the endpoint needs.
    pub(crate) fn permission(self) -> &'static str {
        match self {
            Endpoint::Delta(Stream::Users) => "User.Read.All",
            Endpoint::Delta(Stream::Groups) => "GroupMember.Read.All",
            Endpoint::Organization => "Organization.Read.All",
        }
    }
}

/// The outcome of one failed attempt, before the retry loop decides.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth retrying after `wait` (server-given) or a backoff step; `error` is what the call
    /// returns when the attempts run out.
    Retry {
        error: DirectoryError,
        wait: Option<Duration>,
    },
    /// No connection could be made (refused, no route, name not resolved, connect timeout):
    /// retried only [`crate::RetryPolicy::max_connect_attempts`] times, since a closed port
    /// or a wrong host rarely opens within seconds.
    Unreachable(DirectoryError),
    /// Graph rejected our bearer token: drop it and retry once with a fresh one.
    Unauthorized { code: String },
    /// Final.
    Fatal(DirectoryError),
}

impl Failure {
    pub(crate) fn transient(status: Option<u16>, source: Option<BoxError>) -> Self {
        Failure::Retry {
            error: DirectoryError::Transient {
                status,
                url: None,
                source,
            },
            wait: None,
        }
    }

    /// A request that did not complete: `Unreachable` when no connection was made.
    pub(crate) fn transport(error: reqwest::Error) -> Self {
        let connect = error.is_connect();
        let error = DirectoryError::Transient {
            status: None,
            url: None,
            source: Some(Box::new(error.without_url())),
        };
        if connect {
            Failure::Unreachable(error)
        } else {
            Failure::Retry { error, wait: None }
        }
    }

    /// Name the request's URL (without its query: delta tokens stay out of messages) in a
    /// transient error.
    pub(crate) fn at(mut self, url: &url::Url) -> Self {
        if let Failure::Retry {
            error: DirectoryError::Transient { url: u @ None, .. },
            ..
        }
        | Failure::Unreachable(DirectoryError::Transient { url: u @ None, .. }) = &mut self
        {
            *u = Some(display_url(url));
        }
        self
    }
}

/// A URL for messages: scheme, host, port and path, no query or fragment.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

const RESYNC_CODES: [&str; 2] = ["syncStateNotFound", "resyncRequired"];

/// Classifies a non-2xx Graph response.
pub(crate) fn classify_graph_failure(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    endpoint: Endpoint,
) -> Failure {
    let codes = graph_error_codes(body);
    let has = |wanted: &str| codes.iter().any(|c| c.eq_ignore_ascii_case(wanted));
    let specific = codes.last().cloned();

    match status {
        429 => Failure::Retry {
            error: DirectoryError::Throttled { retry_after },
            wait: retry_after,
        },
        503 | 504 => match retry_after {
            Some(wait) => Failure::Retry {
                error: DirectoryError::Throttled {
                    retry_after: Some(wait),
                },
                wait: Some(wait),
            },
            None => Failure::transient(Some(status), None),
        },
        // 501: an off-store property in $select; retrying cannot help.
        501 => Failure::Fatal(DirectoryError::Permanent {
            status,
            code: specific.unwrap_or_else(|| "NotImplemented".into()),
        }),
        408 | 500..=599 => Failure::Retry {
            error: DirectoryError::Transient {
                status: Some(status),
                url: None,
                source: None,
            },
            wait: retry_after,
        },
        410 if matches!(endpoint, Endpoint::Delta(_)) => {
            Failure::Fatal(DirectoryError::ResyncRequired {
                code: specific.unwrap_or_else(|| "Gone".into()),
            })
        }
        400..=499 if RESYNC_CODES.iter().any(|c| has(c)) => {
            let code = RESYNC_CODES
                .iter()
                .find(|c| has(c))
                .map_or("resyncRequired", |c| c);
            Failure::Fatal(DirectoryError::ResyncRequired { code: code.into() })
        }
        401 => Failure::Unauthorized {
            code: specific.unwrap_or_else(|| "Unauthorized".into()),
        },
        403 if has("Authorization_RequestDenied") => {
            Failure::Fatal(DirectoryError::InsufficientPrivileges {
                permission: Some(endpoint.permission().into()),
            })
        }
        404 => Failure::Fatal(DirectoryError::NotFound),
        300..=399 => Failure::Fatal(DirectoryError::Permanent {
            status,
            code: "UnexpectedRedirect".into(),
        }),
        _ => Failure::Fatal(DirectoryError::Permanent {
            status,
            code: specific.unwrap_or_else(|| "unknown".into()),
        }),
    }
}

/// Every `error.code` of a Graph error envelope, outermost first (nested `innerError`s may carry
/// more specific codes). Empty when the body is not an error envelope.
pub(crate) fn graph_error_codes(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<ErrorBody>,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        code: Option<String>,
        #[serde(rename = "innerError", alias = "innererror")]
        inner: Option<Box<ErrorBody>>,
    }
    let Ok(Envelope { error: Some(error) }) = serde_json::from_slice::<Envelope>(body) else {
        return Vec::new();
    };
    let mut codes = Vec::new();
    let mut next = Some(error);
    while let Some(body) = next {
        if let Some(code) = body.code.filter(|c| !c.is_empty()) {
            codes.push(code);
        }
        next = body.inner.map(|b| *b);
    }
    codes
}

/// The login endpoint's error body: RFC 6749 fields plus Entra's `error_codes`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct AadErrorResponse {
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) error_description: Option<String>,
    #[serde(default)]
    pub(crate) error_codes: Option<Vec<u64>>,
}

impl fmt::Display for AadErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        for code in self.aadsts_codes() {
            write!(f, " AADSTS{code}")?;
        }
        Ok(())
    }
}

impl oauth2::ErrorResponse for AadErrorResponse {}

impl AadErrorResponse {
    /// `error_codes`, or else the `AADSTSnnnn` prefix of `error_description`.
    pub(crate) fn aadsts_codes(&self) -> Vec<u64> {
        if let Some(codes) = self.error_codes.as_ref().filter(|c| !c.is_empty()) {
            return codes.clone();
        }
        self.error_description
            .as_deref()
            .and_then(|d| d.trim_start().strip_prefix("AADSTS"))
            .and_then(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .into_iter()
            .collect()
    }
}

/// Consent revoked or never given, or a tenant policy blocking the app: the customer's admin
/// has to act.
const REAUTHORIZE: [u64; 4] = [
    7000229, // no service principal in the tenant (never consented / enterprise app deleted)
    65001,   // no consent
    7000112, // the app is disabled in the tenant
    53003,   // blocked by Conditional Access
];

/// Our configuration does not match the directory: an operator has to act, not the customer.
const MISCONFIGURED: [u64; 2] = [
    90002,  // tenant not found (a wrong tenant id, or the login URL of another cloud)
    700016, // application id not found in the directory (a wrong client id)
];

/// Our own credential is bad: an operator problem, global to the app.
const BAD_CREDENTIAL: [u64; 2] = [
    7000215, // invalid client secret
    7000222, // expired client secret
];

/// Classifies a token endpoint error body (status already known not to be retryable).
pub(crate) fn classify_token_error(status: u16, error: &AadErrorResponse) -> DirectoryError {
    let codes = error.aadsts_codes();
    if let Some(code) = codes.iter().find(|c| REAUTHORIZE.contains(c)) {
        return DirectoryError::NeedsReauthorization {
            code: format!("AADSTS{code}"),
        };
    }
    if let Some(code) = codes.iter().find(|c| MISCONFIGURED.contains(c)) {
        return DirectoryError::Misconfigured {
            code: format!("AADSTS{code}"),
        };
    }
    if let Some(code) = codes.iter().find(|c| BAD_CREDENTIAL.contains(c)) {
        return DirectoryError::Permanent {
            status,
            code: format!("AADSTS{code}"),
        };
    }
    let code = codes
        .first()
        .map_or_else(|| error.error.clone(), |c| format!("AADSTS{c}"));
    DirectoryError::Permanent { status, code }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn nested_codes_are_collected() {
        let b = body(json!({"error": {"code": "badRequest", "message": "m",
            "innerError": {"code": "syncStateNotFound", "date": "d",
                "innerError": {"request-id": "r"}}}}));
        assert_eq!(
            graph_error_codes(&b),
            vec!["badRequest", "syncStateNotFound"]
        );
        assert!(graph_error_codes(b"<html>").is_empty());
    }

    #[test]
    fn resync_codes_in_any_4xx() {
        let users = Endpoint::Delta(Stream::Users);
        let b = body(json!({"error": {"code": "syncStateNotFound", "message": "expired"}}));
        assert!(matches!(
            classify_graph_failure(400, None, &b, users),
            Failure::Fatal(DirectoryError::ResyncRequired { code }) if code == "syncStateNotFound"
        ));
        let b = body(
            json!({"error": {"code": "badRequest", "innerError": {"code": "resyncRequired"}}}),
        );
        assert!(matches!(
            classify_graph_failure(400, None, &b, users),
            Failure::Fatal(DirectoryError::ResyncRequired { code }) if code == "resyncRequired"
        ));
        assert!(matches!(
            classify_graph_failure(410, None, b"", users),
            Failure::Fatal(DirectoryError::ResyncRequired { .. })
        ));
    }

    #[test]
    fn statuses_map_to_port_errors() {
        let groups = Endpoint::Delta(Stream::Groups);
        let denied = body(json!({"error": {"code": "Authorization_RequestDenied"}}));
        assert!(matches!(
            classify_graph_failure(403, None, &denied, groups),
            Failure::Fatal(DirectoryError::InsufficientPrivileges { permission: Some(p) }) if p == "GroupMember.Read.All"
        ));
        let premium = body(
            json!({"error": {"code": "Authentication_RequestFromNonPremiumTenantOrB2CTenant"}}),
        );
        assert!(matches!(
            classify_graph_failure(403, None, &premium, groups),
            Failure::Fatal(DirectoryError::Permanent { status: 403, code }) if code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
        ));
        assert!(matches!(
            classify_graph_failure(404, None, b"", groups),
            Failure::Fatal(DirectoryError::NotFound)
        ));
        assert!(matches!(
            classify_graph_failure(401, None, b"", groups),
            Failure::Unauthorized { .. }
        ));
        assert!(matches!(
            classify_graph_failure(429, Some(Duration::from_secs(3)), b"", groups),
            Failure::Retry { error: DirectoryError::Throttled { .. }, wait: Some(w) } if w == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify_graph_failure(503, None, b"", groups),
            Failure::Retry {
                error: DirectoryError::Transient {
                    status: Some(503),
                    ..
                },
                wait: None
            }
        ));
        assert!(matches!(
            classify_graph_failure(502, None, b"", groups),
            Failure::Retry { .. }
        ));
        assert!(matches!(
            classify_graph_failure(501, None, b"", groups),
            Failure::Fatal(DirectoryError::Permanent { status: 501, .. })
        ));
        assert!(matches!(
            classify_graph_failure(400, None, &body(json!({"error": {"code": "Request_BadRequest"}})), groups),
            Failure::Fatal(DirectoryError::Permanent { status: 400, code }) if code == "Request_BadRequest"
        ));
        assert!(matches!(
            classify_graph_failure(410, None, b"", Endpoint::Organization),
            Failure::Fatal(DirectoryError::Permanent { status: 410, .. })
        ));
    }

    #[test]
    fn token_errors_by_code_not_prose() {
        let e = |v: serde_json::Value| serde_json::from_value::<AadErrorResponse>(v).unwrap();
        let revoked = e(json!({"error": "invalid_client", "error_codes": [7000229],
            "error_description": "AADSTS7000229: The client application is missing service principal"}));
        assert!(matches!(
            classify_token_error(401, &revoked),
            DirectoryError::NeedsReauthorization { code } if code == "AADSTS7000229"
        ));
        let from_description = e(json!({"error": "unauthorized_client",
            "error_description": "AADSTS700016: Application not found"}));
        assert!(matches!(
            classify_token_error(400, &from_description),
            DirectoryError::Misconfigured { code } if code == "AADSTS700016"
        ));
        let unknown_tenant = e(json!({"error": "invalid_request", "error_codes": [90002]}));
        assert!(matches!(
            classify_token_error(400, &unknown_tenant),
            DirectoryError::Misconfigured { code } if code == "AADSTS90002"
        ));
        let bad_secret = e(json!({"error": "invalid_client", "error_codes": [7000215]}));
        assert!(matches!(
            classify_token_error(401, &bad_secret),
            DirectoryError::Permanent { status: 401, code } if code == "AADSTS7000215"
        ));
        let scope = e(json!({"error": "invalid_scope", "error_codes": [70011]}));
        assert!(matches!(
            classify_token_error(400, &scope),
            DirectoryError::Permanent { status: 400, code } if code == "AADSTS70011"
        ));
        let bare = e(json!({"error": "invalid_client"}));
        assert!(matches!(
            classify_token_error(401, &bare),
            DirectoryError::Permanent { status: 401, code } if code == "invalid_client"
        ));
    }
}
