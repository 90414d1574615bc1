//! The Graph client: delta pages, `/organization`, retries, counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::page::{FetchedPage, PageItems, PageLink, PageRequest};
use entra_sync_core::ports::DirectoryReader;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, RETRY_AFTER};
use tokio::sync::RwLock;
use tracing::{Instrument, Span, debug, field};
use url::Url;

use crate::config::GraphConfig;
use crate::error::{ConfigError, Endpoint, Failure, classify_graph_failure};
use crate::parse::{Organization, parse_groups_page, parse_organization, parse_users_page};
use crate::retry::{backoff, parse_retry_after};
use crate::token::CachedToken;

/// Microsoft Graph reader for many tenants with one app registration. Cheap to clone (shared
/// state behind an `Arc`): one per process, built at cold start.
#[derive(Clone)]
pub struct GraphClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: GraphConfig,
    /// Graph origin with a trailing slash, so `join("v1.0/...")` appends.
    pub(crate) graph_base: Url,
    pub(crate) login_base: Url,
    pub(crate) scope: String,
    user_select: String,
    group_select: String,
    /// The one HTTP client (rustls, redirects disabled) for Graph and login alike.
    pub(crate) http: reqwest::Client,
    tenants: Mutex<HashMap<TenantId, Arc<TenantState>>>,
    pub(crate) token_generation: AtomicU64,
}

/// Per-tenant token cache and counters.
#[derive(Default)]
pub(crate) struct TenantState {
    pub(crate) requests: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) token: RwLock<Option<CachedToken>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("graph_base_url", &self.inner.graph_base.as_str())
            .field("login_base_url", &self.inner.login_base.as_str())
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// Validates the configuration and builds the shared HTTP client.
    pub fn new(config: GraphConfig) -> Result<Self, ConfigError> {
        let graph_base = normalize_base(&config.graph_base_url, "Graph")?;
        let login_base = normalize_base(&config.login_base_url, "login")?;
        // The derived scope is the Graph origin's `.default`, also when the URL was given
        // with `/v1.0` or a trailing slash.
        let mut config = config;
        config.graph_base_url = graph_base.clone();
        config.login_base_url = login_base.clone();
        let user_select = select_list(&config.user_select, None)?;
        let group_select = select_list(&config.group_select, Some("members"))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("entra-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ConfigError::HttpClient)?;
        Ok(Self {
            inner: Arc::new(Inner {
                scope: config.scope(),
                config,
                graph_base,
                login_base,
                user_select,
                group_select,
                http,
                tenants: Mutex::new(HashMap::new()),
                token_generation: AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    /// One page of a users or groups delta round. Throttling and transient failures are
    /// retried inside (bounded by [`crate::RetryPolicy`]); what comes out is final.
    pub async fn fetch_page(
        &self,
        tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        let span = tracing::debug_span!(
            "graph_fetch_page",
            tenant = %tenant,
            stream = %stream,
            initial = matches!(request, PageRequest::Initial),
            request_id = field::Empty,
            status = field::Empty,
        );
        async move {
            let url = match request {
                PageRequest::Initial => self.initial_url(stream)?,
                PageRequest::Link(link) => self.checked_link(link)?,
            };
            let page = match stream {
                Stream::Users => {
                    let (items, link) = self
                        .get(tenant, url, Endpoint::Delta(stream), parse_users_page)
                        .await?;
                    FetchedPage {
                        items: PageItems::Users(items),
                        link,
                    }
                }
                Stream::Groups => {
                    let (items, link) = self
                        .get(tenant, url, Endpoint::Delta(stream), parse_groups_page)
                        .await?;
                    FetchedPage {
                        items: PageItems::Groups(items),
                        link,
                    }
                }
            };
            debug!(
                items = page.items.len(),
                last = matches!(page.link, PageLink::Delta(_)),
                "delta page fetched"
            );
            Ok(page)
        }
        .instrument(span)
        .await
    }

    /// `GET /v1.0/organization`: the tenant's id, name and verified domains. The connect flow
    /// calls it to prove the consent worked.
    pub async fn organization(&self, tenant: &TenantId) -> Result<Organization, DirectoryError> {
        let span = tracing::debug_span!(
            "graph_organization",
            tenant = %tenant,
            request_id = field::Empty,
            status = field::Empty,
        );
        async move {
            let url = self.graph_url("v1.0/organization")?;
            self.get(tenant, url, Endpoint::Organization, parse_organization)
                .await
        }
        .instrument(span)
        .await
    }

    /// Pages of one round, following nextLinks from `start` until (and including) the page with
    /// the deltaLink. The stream ends after the first error. For tools and benchmarks; the sync
    /// service calls [`GraphClient::fetch_page`] page by page to checkpoint between pages.
    pub fn delta_pages<'a>(
        &'a self,
        tenant: &'a TenantId,
        stream: Stream,
        start: PageRequest,
    ) -> impl futures::Stream<Item = Result<FetchedPage, DirectoryError>> + Send + 'a {
        futures::stream::unfold(Some(start), move |state| async move {
            let request = state?;
            match self.fetch_page(tenant, stream, &request).await {
                Ok(page) => {
                    let next = match &page.link {
                        PageLink::Next(url) => Some(PageRequest::Link(url.clone())),
                        PageLink::Delta(_) => None,
                    };
                    Some((Ok(page), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// HTTP requests sent for `tenant` (Graph and login, retries included).
    pub fn requests_sent(&self, tenant: &TenantId) -> u64 {
        self.existing_state(tenant)
            .map_or(0, |s| s.requests.load(Ordering::Relaxed))
    }

    /// 429 responses received for `tenant` (Graph and login).
    pub fn throttled_responses(&self, tenant: &TenantId) -> u64 {
        self.existing_state(tenant)
            .map_or(0, |s| s.throttled.load(Ordering::Relaxed))
    }

    /// Forgets the cached token of `tenant` (after a disconnect or a credential change).
    pub async fn forget_token(&self, tenant: &TenantId) {
        if let Some(state) = self.existing_state(tenant) {
            *state.token.write().await = None;
        }
    }

    // -----------------------------------------------------------------------------------------

    fn initial_url(&self, stream: Stream) -> Result<Url, DirectoryError> {
        let (path, select) = match stream {
            Stream::Users => ("v1.0/users/delta", &self.inner.user_select),
            Stream::Groups => ("v1.0/groups/delta", &self.inner.group_select),
        };
        let mut url = self.graph_url(path)?;
        // `$` and `,` are legal in a query; set it raw so they stay unencoded, as Graph
        // documents them.
        url.set_query(Some(&format!("$select={select}")));
        Ok(url)
    }

    fn graph_url(&self, path: &str) -> Result<Url, DirectoryError> {
        self.inner
            .graph_base
            .join(path)
            .map_err(|_| DirectoryError::InvalidResponse("cannot build the Graph URL".into()))
    }

    /// A nextLink/deltaLink is replayed verbatim, but only to the configured Graph origin: our
    /// bearer token must never go to another host. A link that fails the check is
    /// [`DirectoryError::UnusableLink`], naming both hosts; the sync abandons its round for a
    /// full one from the configured URL.
    fn checked_link(&self, link: &str) -> Result<Url, DirectoryError> {
        let graph_host = origin_text(&self.inner.graph_base);
        let Ok(url) = Url::parse(link) else {
            return Err(DirectoryError::UnusableLink {
                link_host: None,
                graph_host,
            });
        };
        if url.origin() != self.inner.graph_base.origin() {
            return Err(DirectoryError::UnusableLink {
                link_host: Some(origin_text(&url)),
                graph_host,
            });
        }
        Ok(url)
    }

    fn existing_state(&self, tenant: &TenantId) -> Option<Arc<TenantState>> {
        lock(&self.inner.tenants).get(tenant).cloned()
    }

    pub(crate) fn state(&self, tenant: &TenantId) -> Arc<TenantState> {
        lock(&self.inner.tenants)
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    /// GET with the retry loop: token, request, classification, wait, again.
    async fn get<T, P>(
        &self,
        tenant: &TenantId,
        url: Url,
        endpoint: Endpoint,
        parse: P,
    ) -> Result<T, DirectoryError>
    where
        P: Fn(&[u8]) -> Result<T, DirectoryError> + Copy + Send + Sync,
    {
        check_tenant(tenant)?;
        let state = self.state(tenant);
        let policy = &self.inner.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt: u32 = 0;
        let mut unreachable: u32 = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(tenant, &state, &url, endpoint, parse).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match failure {
                Failure::Fatal(error) => return Err(error),
                Failure::Unreachable(error) => {
                    // Nothing listens there (or the name does not resolve): a short second
                    // chance, not the whole backoff series.
                    unreachable += 1;
                    if unreachable >= policy.max_connect_attempts.max(1) || attempt >= max_attempts
                    {
                        debug!(attempt, "no connection to the directory; giving up");
                        return Err(error);
                    }
                    tokio::time::sleep(backoff(policy, 1)).await;
                }
                Failure::Unauthorized { code } => {
                    // `attempt` already re-sent once with a fresh token: this is the second 401.
                    return Err(DirectoryError::Permanent { status: 401, code });
                }
                Failure::Retry { error, wait } => {
                    if attempt >= max_attempts {
                        debug!(attempt, "graph request failed; retries exhausted");
                        return Err(error);
                    }
                    let delay = match wait {
                        Some(wait) if wait > policy.max_retry_after => {
                            debug!(
                                retry_after_s = wait.as_secs(),
                                "Retry-After exceeds the policy; returning to the caller"
                            );
                            return Err(DirectoryError::Throttled {
                                retry_after: Some(wait),
                            });
                        }
                        Some(wait) => wait,
                        None => backoff(policy, attempt),
                    };
                    debug!(
                        attempt,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "graph request failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt, plus at most one immediate re-send with a fresh token after a 401.
    async fn attempt<T, P>(
        &self,
        tenant: &TenantId,
        state: &Arc<TenantState>,
        url: &Url,
        endpoint: Endpoint,
        parse: P,
    ) -> Result<T, Failure>
    where
        P: Fn(&[u8]) -> Result<T, DirectoryError> + Copy + Send + Sync,
    {
        let mut refreshed = false;
        loop {
            let bearer = self.bearer(tenant, state).await?;
            match self.send(state, url, &bearer.value, endpoint, parse).await {
                Err(Failure::Unauthorized { code }) if !refreshed => {
                    debug!(code = %code, "Graph rejected the access token; refreshing once");
                    self.invalidate(state, bearer.generation).await;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    async fn send<T, P>(
        &self,
        state: &TenantState,
        url: &Url,
        token: &entra_sync_core::ports::Secret,
        endpoint: Endpoint,
        parse: P,
    ) -> Result<T, Failure>
    where
        P: Fn(&[u8]) -> Result<T, DirectoryError>,
    {
        let client_request_id = uuid::Uuid::new_v4().to_string();
        state.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .inner
            .http
            .get(url.clone())
            .bearer_auth(token.expose())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header("x-ms-throttle-priority", HeaderValue::from_static("low"))
            .header("client-request-id", client_request_id.as_str())
            .send()
            .await
            .map_err(|e| transport_failure(e, &client_request_id).at(url))?;

        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = header_retry_after(response.headers());
        if status == 429 {
            state.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_failure(e, &client_request_id).at(url))?;

        if (200..300).contains(&status) {
            return parse(&body).map_err(|error| {
                record_failure(status, request_id.as_deref());
                Failure::Fatal(error)
            });
        }
        record_failure(status, request_id.as_deref());
        debug!(
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            client_request_id = %client_request_id,
            retry_after_s = retry_after.map(|d| d.as_secs()),
            "graph request failed"
        );
        Err(classify_graph_failure(status, retry_after, &body, endpoint).at(url))
    }
}

#[async_trait]
impl DirectoryReader for GraphClient {
    async fn fetch_page(
        &self,
        tenant: &TenantId,
        stream: Stream,
        request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        GraphClient::fetch_page(self, tenant, stream, request).await
    }

    fn requests_sent(&self, tenant: &TenantId) -> u64 {
        GraphClient::requests_sent(self, tenant)
    }
}

// ---------------------------------------------------------------------------------------------

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
}

pub(crate) fn record_failure(status: u16, request_id: Option<&str>) {
    let span = Span::current();
    span.record("status", status);
    if let Some(id) = request_id {
        span.record("request_id", id);
    }
}

fn transport_failure(error: reqwest::Error, client_request_id: &str) -> Failure {
    debug!(
        client_request_id,
        timeout = error.is_timeout(),
        connect = error.is_connect(),
        "graph request did not complete"
    );
    Failure::transport(error)
}

/// Tenant ids go into the login URL path: only GUIDs and domain names are accepted.
pub(crate) fn check_tenant(tenant: &TenantId) -> Result<(), DirectoryError> {
    let id = tenant.as_str();
    let valid = !id.is_empty()
        && id.len() <= 253
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(DirectoryError::Permanent {
            status: 400,
            code: "InvalidTenantId".into(),
        })
    }
}

/// `scheme://host[:port]` of a URL, for messages that compare hosts.
fn origin_text(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// A base URL as configured, ready for `join`: query and fragment dropped, a trailing slash,
/// and for Graph without a trailing API version (`https://graph.microsoft.com/v1.0` and
/// `.../v1.0/` mean `https://graph.microsoft.com`: paths are joined with the version).
pub(crate) fn normalize_base(url: &Url, which: &'static str) -> Result<Url, ConfigError> {
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(ConfigError::BaseUrl { which });
    }
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let mut path = url.path().trim_end_matches('/').to_owned();
    if which == "Graph"
        && let Some(stripped) = path
            .strip_suffix("/v1.0")
            .or_else(|| path.strip_suffix("/beta"))
    {
        path = stripped.to_owned();
    }
    path.push('/');
    url.set_path(&path);
    Ok(url)
}

fn select_list(properties: &[String], required: Option<&str>) -> Result<String, ConfigError> {
    let mut list: Vec<&str> = Vec::with_capacity(properties.len() + 1);
    for p in properties {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::Select(p.clone()));
        }
        if !list.contains(&p.as_str()) {
            list.push(p);
        }
    }
    if let Some(required) = required
        && !list.contains(&required)
    {
        list.push(required);
    }
    Ok(list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use entra_sync_core::ports::Secret;

    fn client(graph: &str) -> GraphClient {
        GraphClient::new(GraphConfig::new(
            Url::parse(graph).unwrap(),
            Url::parse("https://login.example").unwrap(),
            "app",
            Secret::new("s"),
        ))
        .unwrap()
    }

    #[test]
    fn initial_urls_carry_select() {
        let c = client("https://graph.microsoft.com");
        let users = c.initial_url(Stream::Users).unwrap();
        assert!(
            users.as_str().starts_with(
                "https://graph.microsoft.com/v1.0/users/delta?$select=id,displayName,"
            )
        );
        assert!(users.as_str().ends_with(",assignedLicenses,manager"));
        let groups = c.initial_url(Stream::Groups).unwrap();
        assert_eq!(
            groups.as_str(),
            "https://graph.microsoft.com/v1.0/groups/delta?$select=id,displayName,description,groupTypes,securityEnabled,mailEnabled,mail,onPremisesSyncEnabled,members"
        );
        let prefixed = client("http://127.0.0.1:9/graph");
        assert!(
            prefixed
                .initial_url(Stream::Users)
                .unwrap()
                .as_str()
                .starts_with("http://127.0.0.1:9/graph/v1.0/users/delta?")
        );
    }

    #[test]
    fn links_must_stay_on_the_graph_origin() {
        let c = client("https://graph.microsoft.com");
        assert!(
            c.checked_link("https://graph.microsoft.com/v1.0/users/delta?$skiptoken=x")
                .is_ok()
        );
        for bad in [
            "https://evil.example/v1.0/users/delta",
            "http://graph.microsoft.com/v1.0/users/delta",
            "https://graph.microsoft.com:8443/v1.0/users/delta",
            "https://graph.microsoft.com.evil.example/v1.0",
            "/v1.0/users/delta",
            "not a url",
        ] {
            assert!(
                matches!(
                    c.checked_link(bad),
                    Err(DirectoryError::UnusableLink { .. })
                ),
                "{bad}"
            );
        }
        // The message names both hosts.
        let e = c
            .checked_link("http://localhost:8080/v1.0/users/delta?$deltatoken=x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http://localhost:8080") && e.contains("https://graph.microsoft.com"),
            "{e}"
        );
        assert!(!e.contains("deltatoken"), "{e}");
    }

    #[test]
    fn graph_urls_with_the_api_version_or_a_trailing_slash_mean_the_origin() {
        for graph in [
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/",
            "https://graph.microsoft.com/v1.0",
            "https://graph.microsoft.com/v1.0/",
            "https://graph.microsoft.com//",
        ] {
            let c = client(graph);
            assert_eq!(
                c.graph_url("v1.0/organization").unwrap().as_str(),
                "https://graph.microsoft.com/v1.0/organization",
                "{graph}"
            );
            assert_eq!(
                c.config().scope(),
                "https://graph.microsoft.com/.default",
                "{graph}"
            );
        }
        let prefixed = client("http://127.0.0.1:9/graph/v1.0/");
        assert_eq!(
            prefixed.graph_url("v1.0/organization").unwrap().as_str(),
            "http://127.0.0.1:9/graph/v1.0/organization"
        );
        let login =
            normalize_base(&Url::parse("https://login.example/").unwrap(), "login").unwrap();
        assert_eq!(login.as_str(), "https://login.example/");
        let login =
            normalize_base(&Url::parse("https://login.example/v1.0").unwrap(), "login").unwrap();
        assert_eq!(
            login.as_str(),
            "https://login.example/v1.0/",
            "only Graph drops a version"
        );
    }

    #[test]
    fn select_validation_and_members() {
        assert_eq!(
            select_list(&["id".into(), "displayName".into()], Some("members")).unwrap(),
            "id,displayName,members"
        );
        assert!(select_list(&["id&$expand=x".into()], None).is_err());
        assert!(select_list(&[String::new()], None).is_err());
    }

    #[test]
    fn tenant_ids_are_checked() {
        assert!(check_tenant(&TenantId::new("0d3c6d6e-7a3b-4a52-9d53-1b2f7c9d7e11")).is_ok());
        assert!(check_tenant(&TenantId::new("contoso.onmicrosoft.com")).is_ok());
        for bad in ["", "../x", "a/b", "a?b", ".hidden", "a b"] {
            assert!(check_tenant(&TenantId::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        let config = GraphConfig::new(
            Url::parse("mailto:x@y").unwrap(),
            Url::parse("https://login.example").unwrap(),
            "app",
            Secret::new("s"),
        );
        assert!(matches!(
            GraphClient::new(config),
            Err(ConfigError::BaseUrl { which: "Graph" })
        ));
    }
}
