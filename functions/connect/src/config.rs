//! The connect function's configuration: where admins consent and where Microsoft sends them
//! back. Both come from configuration, never from a request (exact redirect URI, no open
//! redirect).

use chrono::Duration;
use entra_sync_core::ports::PendingConsent;
use url::Url;

#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// Login authority, e.g. `https://login.microsoftonline.com` (national clouds differ; the
    /// emulator's is `http://127.0.0.1:PORT/login`).
    pub login_base_url: Url,
    /// The multi-tenant app's client (application) id.
    pub client_id: String,
    /// The callback URL exactly as registered on the app registration.
    pub redirect_uri: Url,
    /// The application permissions asked for: `{graph}/.default`.
    pub scope: String,
    /// How long a consent link stays valid.
    pub state_ttl: Duration,
    /// Where the result page's "Continue" link goes (the host product's page), if anywhere.
    pub return_url: Option<Url>,
}

impl ConnectConfig {
    /// The v2 admin-consent URL for a pending consent: the expected tenant when reconnecting,
    /// else `organizations` (GRAPH.md 1.1).
    pub fn consent_url(&self, pending: &PendingConsent) -> Result<Url, url::ParseError> {
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
            .append_pair("redirect_uri", self.redirect_uri.as_str())
            .append_pair("state", pending.state.expose());
        Ok(url)
    }

    /// The route the router serves the callback on: the redirect URI's path.
    pub fn callback_path(&self) -> &str {
        self.redirect_uri.path()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chrono::DateTime;
    use entra_sync_core::model::{AccountId, TenantId};
    use entra_sync_core::ports::Secret;

    use super::*;

    #[test]
    fn consent_url_carries_the_configured_redirect_and_the_state() {
        let config = ConnectConfig {
            login_base_url: Url::parse("https://login.microsoftonline.com").unwrap(),
            client_id: "app-id".into(),
            redirect_uri: Url::parse("https://api.example.com/connect/callback").unwrap(),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: Duration::minutes(10),
            return_url: None,
        };
        let now = DateTime::from_timestamp(0, 0).unwrap();
        let mut pending = PendingConsent {
            state: Secret::new("abc"),
            account_id: AccountId("a".into()),
            label: "L".into(),
            expected_tenant: None,
            created_at: now,
            expires_at: now,
        };
        let url = config.consent_url(&pending).unwrap();
        assert_eq!(url.path(), "/organizations/v2.0/adminconsent");
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(q.contains(&(
            "redirect_uri".into(),
            "https://api.example.com/connect/callback".into()
        )));
        assert!(q.contains(&("state".into(), "abc".into())));
        pending.expected_tenant = Some(TenantId::new("t-1"));
        assert_eq!(
            config.consent_url(&pending).unwrap().path(),
            "/t-1/v2.0/adminconsent"
        );
        assert_eq!(config.callback_path(), "/connect/callback");
    }
}
