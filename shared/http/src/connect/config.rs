//! The connect routes' configuration: where admins consent and where Microsoft sends them back.
//! The callback URL comes from configuration, or (when none is configured) from the domain the
//! platform received the request on; never from anything the caller sends (exact redirect URI,
//! no open redirect).

use chrono::Duration;
use entra_sync_core::ports::PendingConsent;
use thiserror::Error;
use url::Url;

use crate::RequestDomain;

/// The callback's path: the route served when the redirect URI is derived per request, and the
/// path of the derived `https://{domain}/connect/callback`.
pub const CALLBACK_PATH: &str = "/connect/callback";

#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// Login authority, e.g. `https://login.microsoftonline.com` (national clouds differ; the
    /// emulator's is `http://127.0.0.1:PORT/login`).
    pub login_base_url: Url,
    /// The multi-tenant app's client (application) id.
    pub client_id: String,
    /// The callback URL exactly as registered on the app registration. `None`: derived per
    /// request as `https://{domain}{CALLBACK_PATH}` from the [`RequestDomain`] the platform
    /// reports (in Lambda, API Gateway's `requestContext.domainName`), so a deployment needs not
    /// know its own URL in advance.
    pub redirect_uri: Option<Url>,
    /// The application permissions asked for: `{graph}/.default`.
    pub scope: String,
    /// How long a consent link stays valid.
    pub state_ttl: Duration,
    /// Where the result page's "Continue" link goes (the host product's page), if anywhere.
    pub return_url: Option<Url>,
}

/// No callback URL for this request.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RedirectError {
    #[error("no redirect URI is configured and the request carries no domain name")]
    NoDomain,
    #[error("the callback URL of domain {0} is not a valid URL")]
    Invalid(String),
}

impl ConnectConfig {
    /// The callback URL for a request: the configured one, else the one derived from the
    /// domain the request came in on.
    pub fn redirect_uri_for(&self, domain: Option<&RequestDomain>) -> Result<Url, RedirectError> {
        if let Some(configured) = &self.redirect_uri {
            return Ok(configured.clone());
        }
        let domain = domain.ok_or(RedirectError::NoDomain)?;
        Url::parse(&format!("https://{domain}{CALLBACK_PATH}"))
            .map_err(|_| RedirectError::Invalid(domain.to_string()))
    }

    /// The v2 admin-consent URL for a pending consent: the expected tenant when reconnecting,
    /// else `organizations` (any work or school tenant), with the callback URL of this request.
    pub fn consent_url(
        &self,
        pending: &PendingConsent,
        redirect_uri: &Url,
    ) -> Result<Url, url::ParseError> {
        let tenant = pending
            .expected_tenant
            .as_ref()
            .map_or("organizations", |t| t.as_str());
        let mut url = Url::parse(&format!(
            "{}/{tenant}/v2.0/adminconsent",
            self.login_base_url.as_str().trim_end_matches('/')
        ))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &self.scope)
            .append_pair("redirect_uri", redirect_uri.as_str())
            .append_pair("state", pending.state.expose());
        Ok(url)
    }

    /// The route the router serves the callback on: the configured redirect URI's path, else
    /// [`CALLBACK_PATH`].
    pub fn callback_path(&self) -> &str {
        self.redirect_uri.as_ref().map_or(CALLBACK_PATH, Url::path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::DateTime;
    use entra_sync_core::model::{AccountId, TenantId};
    use entra_sync_core::ports::Secret;

    use super::*;

    fn config(redirect_uri: Option<&str>) -> ConnectConfig {
        ConnectConfig {
            login_base_url: Url::parse("https://login.microsoftonline.com").unwrap(),
            client_id: "app-id".into(),
            redirect_uri: redirect_uri.map(|u| Url::parse(u).unwrap()),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: Duration::minutes(10),
            return_url: None,
        }
    }

    #[test]
    fn consent_url_carries_the_configured_redirect_and_the_state() {
        let config = config(Some("https://api.example.com/connect/callback"));
        let now = DateTime::from_timestamp(0, 0).unwrap();
        let mut pending = PendingConsent {
            state: Secret::new("abc"),
            account_id: AccountId("a".into()),
            label: "L".into(),
            expected_tenant: None,
            created_at: now,
            expires_at: now,
        };
        // A configured redirect URI wins over the request's domain.
        let domain = RequestDomain::new("other.example.com").unwrap();
        let redirect = config.redirect_uri_for(Some(&domain)).unwrap();
        let url = config.consent_url(&pending, &redirect).unwrap();
        assert_eq!(url.path(), "/organizations/v2.0/adminconsent");
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(q.contains(&(
            "redirect_uri".into(),
            "https://api.example.com/connect/callback".into()
        )));
        assert!(q.contains(&("state".into(), "abc".into())));
        pending.expected_tenant = Some(TenantId::new("t-1"));
        assert_eq!(
            config.consent_url(&pending, &redirect).unwrap().path(),
            "/t-1/v2.0/adminconsent"
        );
        assert_eq!(config.callback_path(), "/connect/callback");
        let custom = super::tests::config(Some("https://api.example.com/hooks/ms-consent"));
        assert_eq!(custom.callback_path(), "/hooks/ms-consent");
    }

    #[test]
    fn without_a_configured_redirect_the_callback_url_is_the_requests_domain() {
        let config = config(None);
        let domain = RequestDomain::new("abc123.execute-api.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(
            config.redirect_uri_for(Some(&domain)).unwrap().as_str(),
            "https://abc123.execute-api.eu-west-1.amazonaws.com/connect/callback"
        );
        assert_eq!(config.callback_path(), CALLBACK_PATH);
        assert_eq!(config.redirect_uri_for(None), Err(RedirectError::NoDomain));
    }
}
