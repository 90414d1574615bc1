//! App-only tokens (client credentials), cached per tenant.
//!
//! One refresh per tenant at a time: the refresher holds the tenant's write lock, concurrent
//! callers wait for it and reuse its token. Tokens are refreshed shortly before they expire;
//! if the login endpoint is briefly unavailable while the old token is still valid, the old
//! token keeps being used.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::Secret;
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenResponse,
};
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, RequestTokenError, Scope,
    StandardRevocableToken, TokenResponse, TokenUrl,
};
use thiserror::Error;
use tokio::time::Instant;
use tracing::debug;

use crate::client::{GraphClient, TenantState, header_retry_after, lock};
use crate::error::{AadErrorResponse, Failure, classify_token_error};

/// `BasicClient` with an error type that keeps Entra's `error_codes`.
type AadClient<HasTokenUrl = oauth2::EndpointSet> = oauth2::Client<
    AadErrorResponse,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    HasTokenUrl,
>;

/// Used when the login endpoint omits `expires_in` (Entra always sends it).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry (or at half-life for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub(crate) struct CachedToken {
    value: Secret,
    generation: u64,
    refresh_at: Instant,
    expires_at: Instant,
}

/// A bearer token and the cache generation it came from (to invalidate exactly it on 401).
pub(crate) struct Bearer {
    pub(crate) value: Secret,
    pub(crate) generation: u64,
}

/// What the transport saw of the token response; oauth2 only hands back the parsed body.
#[derive(Clone, Copy, Default)]
struct ResponseMeta {
    status: u16,
    retry_after: Option<Duration>,
}

#[derive(Debug, Error)]
enum TokenTransportError {
    #[error("login endpoint unreachable")]
    Send(#[source] reqwest::Error),
    #[error("login response could not be converted")]
    Http(#[source] oauth2::http::Error),
}

impl GraphClient {
    /// A valid bearer token for `tenant`, from the cache or freshly acquired.
    pub(crate) async fn bearer(
        &self,
        tenant: &TenantId,
        state: &Arc<TenantState>,
    ) -> Result<Bearer, Failure> {
        {
            let cached = state.token.read().await;
            if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                return Ok(Bearer {
                    value: token.value.clone(),
                    generation: token.generation,
                });
            }
        }
        let mut cached = state.token.write().await;
        let started = Instant::now();
        if let Some(token) = cached.as_ref().filter(|t| started < t.refresh_at) {
            // Another task refreshed while we waited for the lock.
            return Ok(Bearer {
                value: token.value.clone(),
                generation: token.generation,
            });
        }
        match self.request_token(tenant, state).await {
            Ok((value, lifetime)) => {
                let margin = REFRESH_MARGIN.min(lifetime / 2);
                let generation = self.inner.token_generation.fetch_add(1, Ordering::Relaxed) + 1;
                *cached = Some(CachedToken {
                    value: value.clone(),
                    generation,
                    refresh_at: started + (lifetime - margin),
                    expires_at: started + lifetime,
                });
                debug!(lifetime_s = lifetime.as_secs(), "access token acquired");
                Ok(Bearer { value, generation })
            }
            Err(Failure::Retry { .. } | Failure::Unreachable(_))
                if cached
                    .as_ref()
                    .is_some_and(|t| Instant::now() < t.expires_at) =>
            {
                debug!("token refresh failed transiently; using the still-valid token");
                match cached.as_ref() {
                    Some(token) => Ok(Bearer {
                        value: token.value.clone(),
                        generation: token.generation,
                    }),
                    None => Err(Failure::transient(None, None)),
                }
            }
            Err(failure) => Err(failure),
        }
    }

    /// Drops the cached token if it is still the one Graph rejected.
    pub(crate) async fn invalidate(&self, state: &TenantState, generation: u64) {
        let mut cached = state.token.write().await;
        if cached.as_ref().is_some_and(|t| t.generation == generation) {
            *cached = None;
        }
    }

    /// One client-credentials request to `{login}/{tenant}/oauth2/v2.0/token`.
    async fn request_token(
        &self,
        tenant: &TenantId,
        state: &Arc<TenantState>,
    ) -> Result<(Secret, Duration), Failure> {
        let inner = &self.inner;
        let token_url = inner
            .login_base
            .join(&format!("{}/oauth2/v2.0/token", tenant.as_str()))
            .map_err(|_| {
                Failure::Fatal(DirectoryError::InvalidResponse(
                    "cannot build the token URL".into(),
                ))
            })?;
        let token_url_for_messages = token_url.clone();
        let client: AadClient =
            AadClient::<oauth2::EndpointNotSet>::new(ClientId::new(inner.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    inner.config.client_secret.expose().to_owned(),
                ))
                .set_auth_type(AuthType::RequestBody)
                .set_token_uri(TokenUrl::from_url(token_url));

        // The transport future owns its captures (`'static`), which keeps the whole fetch
        // future `Send` for `async_trait`.
        let meta = Arc::new(Mutex::new(ResponseMeta::default()));
        let http = {
            let client = inner.http.clone();
            let state = Arc::clone(state);
            let meta = Arc::clone(&meta);
            move |request: HttpRequest| {
                send_token_request(
                    client.clone(),
                    request,
                    Arc::clone(&state),
                    Arc::clone(&meta),
                )
            }
        };
        let result = client
            .exchange_client_credentials()
            .add_scope(Scope::new(inner.scope.clone()))
            .request_async(&http)
            .await;
        let meta = *lock(&meta);

        let failure = match result {
            Ok(response) => {
                let lifetime = response
                    .expires_in()
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_LIFETIME);
                return Ok((Secret::new(response.access_token().secret()), lifetime));
            }
            Err(RequestTokenError::Request(TokenTransportError::Send(e))) => Failure::transport(e),
            Err(RequestTokenError::Request(e)) => {
                Failure::transient(None, Some(Box::new(e) as crate::error::BoxError))
            }
            Err(err) => match meta.status {
                429 => Failure::Retry {
                    error: DirectoryError::Throttled {
                        retry_after: meta.retry_after,
                    },
                    wait: meta.retry_after,
                },
                408 | 500..=599 => Failure::Retry {
                    error: DirectoryError::Transient {
                        status: Some(meta.status),
                        url: None,
                        source: None,
                    },
                    wait: meta.retry_after,
                },
                200 => Failure::Fatal(DirectoryError::InvalidResponse(
                    "token response is not a valid token".into(),
                )),
                status => match err {
                    RequestTokenError::ServerResponse(body) => {
                        Failure::Fatal(classify_token_error(status, &body))
                    }
                    _ => Failure::Fatal(DirectoryError::Permanent {
                        status,
                        code: "unreadable_token_error".into(),
                    }),
                },
            },
        };
        Err(failure.at(&token_url_for_messages))
    }
}

/// The HTTP transport oauth2 drives: our shared reqwest client (redirects disabled), plus
/// request counting and the status/Retry-After oauth2 does not report.
async fn send_token_request(
    http: reqwest::Client,
    request: HttpRequest,
    state: Arc<TenantState>,
    meta: Arc<Mutex<ResponseMeta>>,
) -> Result<HttpResponse, TokenTransportError> {
    let request = reqwest::Request::try_from(request)
        .map_err(|e| TokenTransportError::Send(e.without_url()))?;
    state.requests.fetch_add(1, Ordering::Relaxed);
    let response = http
        .execute(request)
        .await
        .map_err(|e| TokenTransportError::Send(e.without_url()))?;
    let status = response.status();
    if status.as_u16() == 429 {
        state.throttled.fetch_add(1, Ordering::Relaxed);
    }
    *lock(&meta) = ResponseMeta {
        status: status.as_u16(),
        retry_after: header_retry_after(response.headers()),
    };
    let mut builder = oauth2::http::Response::builder()
        .status(status)
        .version(response.version());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| TokenTransportError::Send(e.without_url()))?;
    builder
        .body(body.to_vec())
        .map_err(TokenTransportError::Http)
}
