//! Client configuration: clouds, credentials, retry policy, `$select` lists.

use std::time::Duration;

use entra_sync_core::ports::Secret;
use url::Url;

/// Default `$select` of `/users/delta`: the v1.0 user fields the mirror keeps (delta returns
/// only a few by default).
pub const DEFAULT_USER_SELECT: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "department",
    "officeLocation",
    "usageLocation",
    "businessPhones",
    "mobilePhone",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "employeeId",
    "employeeHireDate",
    "accountEnabled",
    "userType",
    "onPremisesSyncEnabled",
    "assignedLicenses",
    "manager",
];

/// Default `$select` of `/groups/delta`; `members` is what makes Graph report
/// `members@delta`.
pub const DEFAULT_GROUP_SELECT: &[&str] = &[
    "id",
    "displayName",
    "description",
    "groupTypes",
    "securityEnabled",
    "mailEnabled",
    "mail",
    "onPremisesSyncEnabled",
    "members",
];

/// The Microsoft clouds with their own Graph and login hosts (global, US Gov L4 and L5,
/// China). App registrations
/// are per cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Global Azure, including M365 GCC "moderate".
    Global,
    /// US Government L4 (GCC High).
    UsGovL4,
    /// US Government L5 (DoD).
    UsGovL5,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    pub fn graph_base_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovL4 => "https://graph.microsoft.us",
            Cloud::UsGovL5 => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    pub fn login_base_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovL4 | Cloud::UsGovL5 => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGovL4 => "us_gov_l4",
            Cloud::UsGovL5 => "us_gov_l5",
            Cloud::China => "china",
        }
    }

    /// Inverse of [`Cloud::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [Cloud::Global, Cloud::UsGovL4, Cloud::UsGovL5, Cloud::China]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

/// Bounded retries of throttled and transient Graph/login responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff step when the server gives no `Retry-After`.
    pub base_delay: Duration,
    /// Cap of one backoff step.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not slept through: the call returns
    /// `DirectoryError::Throttled` at once and the caller reschedules.
    pub max_retry_after: Duration,
    /// Attempts when no connection can be made at all (refused, unresolvable name, connect
    /// timeout), the first included: a wrong URL or a stopped service fails within a second
    /// instead of after the whole backoff series.
    pub max_connect_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
            max_connect_attempts: 2,
        }
    }
}

/// Everything [`crate::GraphClient`] needs. Build with [`GraphConfig::global`],
/// [`GraphConfig::for_cloud`] or [`GraphConfig::new`] (emulator, custom hosts), then adjust
/// the public fields.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Graph origin, e.g. `https://graph.microsoft.com` (a trailing `/v1.0` is ignored).
    pub graph_base_url: Url,
    /// Login authority, e.g. `https://login.microsoftonline.com`.
    pub login_base_url: Url,
    /// The multi-tenant app's client (application) id.
    pub client_id: String,
    pub client_secret: Secret,
    /// Overrides the derived `{graph_base_url}/.default` scope.
    pub scope: Option<String>,
    pub retry: RetryPolicy,
    /// Per HTTP request (connect + response), not per retried call.
    pub request_timeout: Duration,
    /// `$select` of `/users/delta`.
    pub user_select: Vec<String>,
    /// `$select` of `/groups/delta` (`members` is added if missing).
    pub group_select: Vec<String>,
}

impl GraphConfig {
    /// Custom hosts (tests against the emulator, proxies).
    pub fn new(
        graph_base_url: Url,
        login_base_url: Url,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            graph_base_url,
            login_base_url,
            client_id: client_id.into(),
            client_secret,
            scope: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            user_select: DEFAULT_USER_SELECT.iter().map(|s| s.to_string()).collect(),
            group_select: DEFAULT_GROUP_SELECT.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The global cloud.
    pub fn global(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self::for_cloud(Cloud::Global, client_id, client_secret)
    }

    /// A national cloud: its Graph base URL and login authority.
    pub fn for_cloud(cloud: Cloud, client_id: impl Into<String>, client_secret: Secret) -> Self {
        let parse = |s: &str| Url::parse(s).unwrap_or_else(|_| unreachable_url(s));
        Self::new(
            parse(cloud.graph_base_url()),
            parse(cloud.login_base_url()),
            client_id,
            client_secret,
        )
    }

    /// The client-credentials scope: the override, or `{graph_base_url}/.default`.
    pub fn scope(&self) -> String {
        match &self.scope {
            Some(scope) => scope.clone(),
            None => format!(
                "{}/.default",
                self.graph_base_url.as_str().trim_end_matches('/')
            ),
        }
    }
}

/// The cloud URLs are constants covered by tests; this only exists so that the constructors
/// stay infallible without `expect`.
fn unreachable_url(url: &str) -> Url {
    unreachable!("static cloud URL {url} failed to parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_defaults() {
        let c = GraphConfig::global("app", Secret::new("s3cr3t"));
        assert_eq!(c.graph_base_url.as_str(), "https://graph.microsoft.com/");
        assert_eq!(
            c.login_base_url.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(c.scope(), "https://graph.microsoft.com/.default");
        assert_eq!(c.retry.max_attempts, 6);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn national_cloud_hosts_and_scope() {
        let c = GraphConfig::for_cloud(Cloud::UsGovL5, "app", Secret::new("s"));
        assert_eq!(c.scope(), "https://dod-graph.microsoft.us/.default");
        assert_eq!(
            c.login_base_url.host_str(),
            Some("login.microsoftonline.us")
        );
        let c = GraphConfig::for_cloud(Cloud::China, "app", Secret::new("s"));
        assert_eq!(
            c.scope(),
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
        assert_eq!(Cloud::parse("CHINA"), Some(Cloud::China));
        assert_eq!(Cloud::parse("mars"), None);
    }
}
