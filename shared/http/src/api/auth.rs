//! Who is calling, and which accounts' data it may see.
//!
//! Every API route but the health check and the document runs behind [`authenticate`]: the
//! router's [`Authenticator`] turns the request into a [`Caller`] or refuses it with 401. Each
//! route then names the account of its path, and a caller limited to another account gets 404,
//! the same answer as for an account or connection that does not exist, never the data.
//!
//! - Locally ([`ApiKey`]): `Authorization: Bearer <key>`; the key is random (32 bytes) and only
//!   its SHA-256 digest is kept. A key of 256 random bits cannot be guessed, so a fast hash is
//!   enough: a slow password hash (argon2) protects keys people choose, which this is not.
//! - In AWS ([`PlatformCaller`]): API Gateway authorizes the request before the function runs
//!   (IAM for the host product's backend, a JWT authorizer for an embedded console), and the
//!   function puts what it says into the request as a [`Caller`]; the router only reads it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use entra_sync_core::model::AccountId;
use sha2::{Digest, Sha256};

use crate::HttpError;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The host product's backend: every account.
    AllAccounts,
    /// A console user of one account.
    Account(AccountId),
}

impl Caller {
    /// Whether this caller may see `account`'s data.
    pub fn may_see(&self, account: &AccountId) -> bool {
        match self {
            Caller::AllAccounts => true,
            Caller::Account(a) => a == account,
        }
    }
}

/// Why a request was not authenticated (the detail is logged, never sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("credentials not accepted")]
    Wrong,
}

/// Turns a request into its caller.
pub trait Authenticator: Send + Sync {
    fn authenticate(&self, request: &Request) -> Result<Caller, AuthError>;
}

/// The local program's API key: only its SHA-256 digest is held.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

/// The prefix of every key, so one found in a file or a log is recognised.
pub const KEY_PREFIX: &str = "esk_";

impl ApiKey {
    /// From the stored digest (hex).
    pub fn from_digest_hex(hex_digest: &str) -> Option<Self> {
        let bytes = hex::decode(hex_digest.trim()).ok()?;
        Some(ApiKey {
            digest: bytes.try_into().ok()?,
        })
    }

    /// The digest of a key, as stored (hex).
    pub fn digest_hex(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    /// A new key from 32 random bytes (the caller's randomness), with its digest.
    pub fn generate(random: [u8; 32]) -> (String, Self) {
        let key = format!("{KEY_PREFIX}{}", hex::encode(random));
        let digest = Sha256::digest(key.as_bytes()).into();
        (key, ApiKey { digest })
    }

    fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare every byte whatever the first difference (no early exit to time).
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The bearer token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Authenticator for ApiKey {
    fn authenticate(&self, request: &Request) -> Result<Caller, AuthError> {
        let headers = request.headers();
        if headers.get(header::AUTHORIZATION).is_none() {
            return Err(AuthError::Missing);
        }
        match bearer(headers) {
            Some(token) if self.matches(token) => Ok(Caller::AllAccounts),
            _ => Err(AuthError::Wrong),
        }
    }
}

/// In AWS: the caller the function found in API Gateway's authorizer context and put into the
/// request's extensions. A request without one did not pass an authorizer: refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformCaller;

impl Authenticator for PlatformCaller {
    fn authenticate(&self, request: &Request) -> Result<Caller, AuthError> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or(AuthError::Missing)
    }
}

/// Middleware of the protected routes: the caller into the request, or 401.
pub async fn authenticate(
    State(auth): State<Arc<dyn Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.authenticate(&request) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            let mut response = HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "This address needs valid credentials: send the API key as Authorization: Bearer <key>.",
            )
            .with_detail(e)
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"entra-sync\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use axum::body::Body;

    use super::*;

    fn req(auth: Option<&str>) -> Request {
        let mut r = Request::builder().uri("/v1/x");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    }

    #[test]
    fn only_the_key_whose_digest_is_stored_passes() {
        let (key, auth) = ApiKey::generate([7; 32]);
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
        let stored = ApiKey::from_digest_hex(&ApiKey::digest_hex(&key)).unwrap();
        for a in [&auth, &stored] {
            assert_eq!(
                a.authenticate(&req(Some(&format!("Bearer {key}")))),
                Ok(Caller::AllAccounts)
            );
            assert_eq!(
                a.authenticate(&req(Some(&format!("bearer  {key} ")))),
                Ok(Caller::AllAccounts)
            );
            assert_eq!(a.authenticate(&req(None)), Err(AuthError::Missing));
            for wrong in [
                format!("Bearer {key}x"),
                format!("Basic {key}"),
                key.clone(),
                "Bearer ".to_owned(),
                format!("Bearer {}", ApiKey::digest_hex(&key)),
            ] {
                assert_eq!(
                    a.authenticate(&req(Some(&wrong))),
                    Err(AuthError::Wrong),
                    "{wrong}"
                );
            }
        }
        let (other, _) = ApiKey::generate([8; 32]);
        assert_eq!(
            auth.authenticate(&req(Some(&format!("Bearer {other}")))),
            Err(AuthError::Wrong)
        );
        assert!(ApiKey::from_digest_hex("abc").is_none());
    }

    #[test]
    fn a_console_caller_sees_its_account_only() {
        let a = AccountId("a".into());
        let b = AccountId("b".into());
        assert!(Caller::Account(a.clone()).may_see(&a));
        assert!(!Caller::Account(a.clone()).may_see(&b));
        assert!(Caller::AllAccounts.may_see(&b));
        let mut r = req(None);
        assert_eq!(PlatformCaller.authenticate(&r), Err(AuthError::Missing));
        r.extensions_mut().insert(Caller::Account(a.clone()));
        assert_eq!(PlatformCaller.authenticate(&r), Ok(Caller::Account(a)));
    }
}
