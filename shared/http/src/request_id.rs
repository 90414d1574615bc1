//! What the platform (or the client) says about a request: its id and the domain it came in on.
//!
//! The request id of a request is, in this order: a [`RequestId`] the platform put into the
//! request's extensions (in Lambda, the function's wiring copies API Gateway's
//! `requestContext.requestId` there), else a valid `x-request-id` header sent by the client, else
//! a new random id. It is answered in the `x-request-id` response header, in every error body and
//! in the request's log line, so a person's report ("request id …") finds the log line.
//!
//! [`RequestDomain`] is the domain name the platform received the request on (API Gateway's
//! `requestContext.domainName`), never the client's `Host` header. The connect routes derive their
//! callback URL from it when no redirect URI is configured.

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};

/// The request and response header carrying the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from outside; a longer one is replaced by a new id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters (no spaces, no control
/// characters), so it is safe in a header, a JSON body and a log line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// An id from outside (a platform context or a client header), if it is acceptable.
    pub fn new(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_REQUEST_ID_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| RequestId(raw.to_owned()))
    }

    /// A new random id (a UUID).
    pub fn random() -> Self {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn header_value(&self) -> HeaderValue {
        // Visible ASCII only (checked by `new`, true of a UUID): always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The request's id, for a route that shows it (an HTML page). Never fails: outside the stack
/// (which always sets one) it is a new id.
impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::random))
    }
}

/// The first step of the stack: decide the request's id (platform, then header, then new), and
/// put it into the request's extensions and its `x-request-id` header (from where the response
/// header is copied).
pub(crate) async fn assign(mut req: Request) -> Request {
    let id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .or_else(|| {
            req.headers()
                .get(&REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(RequestId::new)
        })
        .unwrap_or_else(RequestId::random);
    req.headers_mut()
        .insert(REQUEST_ID_HEADER, id.header_value());
    req.extensions_mut().insert(id);
    req
}

/// The domain name the platform received the request on, e.g.
/// `abc123.execute-api.eu-west-1.amazonaws.com` or a custom domain. Lower case; letters, digits,
/// hyphens and dots only (no port, no path, no user info).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestDomain(String);

impl RequestDomain {
    pub fn new(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 253
            && raw.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        ok.then(|| RequestDomain(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_outside_are_bounded_and_printable() {
        assert!(RequestId::new("Fq1pYjd8DoEEMbA=").is_some());
        assert!(RequestId::new(&"a".repeat(MAX_REQUEST_ID_LEN)).is_some());
        assert!(RequestId::new(&"a".repeat(MAX_REQUEST_ID_LEN + 1)).is_none());
        for bad in ["", "has space", "line\nbreak", "tab\t", "é", "\u{7f}"] {
            assert!(RequestId::new(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn domains_are_host_names_only() {
        assert_eq!(
            RequestDomain::new("Abc123.Execute-API.eu-west-1.amazonaws.com")
                .unwrap()
                .as_str(),
            "abc123.execute-api.eu-west-1.amazonaws.com"
        );
        for bad in [
            "",
            "evil.example/path",
            "evil.example:8443",
            "user@evil.example",
            "a..b",
            "-a.example",
            "a b.example",
            ".example",
        ] {
            assert!(RequestDomain::new(bad).is_none(), "{bad:?}");
        }
    }
}
