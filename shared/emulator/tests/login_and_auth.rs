//! Token endpoint, bearer checks, `/organization`, response headers.

mod common;

use base64::Engine;
use common::Fx;
use entra_sync_emulator::{ConsentOutcome, EmulatorConfig, TenantSpec};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn token_success_has_documented_shape() {
    let fx = Fx::small().await;
    let (status, body) = fx
        .token_response(&fx.tenant.tenant_id, &fx.emu.app().client_secret)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    // A verified domain works as the tenant segment too.
    let (status, _) = fx
        .token_response(&fx.tenant.default_domain, &fx.emu.app().client_secret)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn token_accepts_http_basic_client_auth() {
    let fx = Fx::small().await;
    let app = fx.emu.app();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        app.client_id,
        app.client_secret.replace('~', "%7E")
    ));
    let resp = fx
        .http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            fx.emu.login_base_url(),
            fx.tenant.tenant_id
        ))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

fn assert_aad_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let desc = body["error_description"].as_str().unwrap_or_default();
    assert!(desc.starts_with(&format!("AADSTS{code}:")), "{desc}");
    assert!(desc.contains("Trace ID:") && desc.contains("Correlation ID:"));
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[k].is_string(), "{k} missing: {body}");
    }
}

#[tokio::test]
async fn token_errors_match_entra() {
    let fx = Fx::small().await;
    let tid = fx.tenant.tenant_id.clone();
    // Wrong secret.
    let (status, body) = fx.token_response(&tid, "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_aad_error(&body, "invalid_client", 7000215);
    // Unknown tenant.
    let (status, body) = fx
        .token_response("00000000-1111-2222-3333-444444444444", "x")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aad_error(&body, "invalid_request", 90002);
    // Unknown client id.
    let resp = fx
        .http
        .post(format!(
            "{}/{tid}/oauth2/v2.0/token",
            fx.emu.login_base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "9d4f7c0e-0000-4000-8000-000000000000"),
            ("client_secret", "x"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_aad_error(&resp.json().await.unwrap(), "unauthorized_client", 700016);
    // Bad scope.
    let app = fx.emu.app();
    let resp = fx
        .http
        .post(format!(
            "{}/{tid}/oauth2/v2.0/token",
            fx.emu.login_base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "User.Read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_aad_error(&resp.json().await.unwrap(), "invalid_scope", 70011);
}

#[tokio::test]
async fn revoked_consent_fails_only_that_tenant() {
    let fx = Fx::small().await;
    let other = fx.emu.add_tenant(&TenantSpec {
        name: "Fabrikam".into(),
        domains: vec!["fabrikam.example".into()],
        ..TenantSpec::new(8, 20, 3)
    });
    let token = fx.token().await;
    fx.handle().revoke_consent();
    let (status, body) = fx
        .token_response(&fx.tenant.tenant_id, &fx.emu.app().client_secret)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_aad_error(&body, "invalid_client", 7000229);
    // Tokens issued before the revocation stop working.
    let (status, _, body) = fx.get(&fx.graph("organization"), &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    // The other tenant is unaffected.
    let other_token = fx.token_for(&other.tenant_id).await;
    let (status, _, body) = fx.get(&fx.graph("organization"), &other_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"][0]["id"], other.tenant_id);
    // Consent again.
    fx.handle().grant_consent();
    fx.token().await;
}

#[tokio::test]
async fn graph_requires_a_valid_bearer_token_and_scopes_data_to_its_tenant() {
    let fx = Fx::small().await;
    let other = fx.emu.add_tenant(&TenantSpec {
        name: "Northwind".into(),
        domains: vec![],
        ..TenantSpec::new(9, 10, 2)
    });
    let url = fx.graph("users/delta");
    let resp = fx.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    for k in ["date", "request-id", "client-request-id"] {
        assert!(body["error"]["innerError"][k].is_string());
    }
    let (status, _, _) = fx.get(&url, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another tenant's token reads that tenant, never this one.
    let other_token = fx.token_for(&other.tenant_id).await;
    let (_, _, body) = fx.get(&fx.graph("organization"), &other_token).await;
    assert_eq!(body["value"][0]["id"], other.tenant_id);
    let (items, _) = fx.round_items(&url, &other_token).await;
    assert_eq!(items.len(), 10);
    // Expired token.
    let token = fx.token().await;
    fx.emu.advance_clock(std::time::Duration::from_secs(3600));
    let (status, _, body) = fx.get(&url, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Partial revocation: tokens are issued, Graph says 403.
    fx.handle().set_app_roles_granted(false);
    let token = fx.token().await;
    let (status, _, body) = fx.get(&url, &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
}

#[tokio::test]
async fn organization_has_one_element_with_verified_domains() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let (status, headers, body) = fx.get(&fx.graph("organization"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("request-id").is_some());
    assert!(headers.get("x-ms-resource-unit").is_some());
    let orgs = body["value"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    let org = &orgs[0];
    assert_eq!(org["id"], fx.tenant.tenant_id);
    assert_eq!(org["displayName"], "Contoso");
    let domains = org["verifiedDomains"].as_array().unwrap();
    assert_eq!(domains.len(), 4);
    assert_eq!(domains.iter().filter(|d| d["isInitial"] == true).count(), 1);
    assert_eq!(domains.iter().filter(|d| d["isDefault"] == true).count(), 1);
    let initial = domains.iter().find(|d| d["isInitial"] == true).unwrap();
    assert_eq!(initial["name"], "contoso.onmicrosoft.com");
    let default = domains.iter().find(|d| d["isDefault"] == true).unwrap();
    assert_eq!(default["name"], "contoso.com");
    assert!(domains.iter().all(|d| d["capabilities"].is_string()));
}

#[tokio::test]
async fn responses_echo_client_request_id() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let (_, headers, _) = fx
        .get_with(
            &fx.graph("organization"),
            &token,
            &[("client-request-id", "abc-123")],
        )
        .await;
    assert_eq!(headers["client-request-id"], "abc-123");
    assert!(!headers["request-id"].to_str().unwrap().is_empty());
    let (_, _, body) = fx
        .get_with(
            &fx.graph("nope"),
            &token,
            &[("client-request-id", "def-456")],
        )
        .await;
    assert_eq!(body["error"]["innerError"]["client-request-id"], "def-456");
}

#[tokio::test]
async fn admin_consent_redirects_with_the_configured_outcome() {
    let fx = Fx::small().await;
    let app = fx.emu.app();
    let url = |tenant: &str| {
        format!(
            "{}/{tenant}/adminconsent?client_id={}&state=s1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
            fx.emu.login_base_url(),
            app.client_id
        )
    };
    fx.handle().revoke_consent();
    let resp = fx.http.get(url("organizations")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with("https://app.example/cb?admin_consent=True&tenant="),
        "{loc}"
    );
    assert!(loc.contains(&fx.tenant.tenant_id) && loc.ends_with("state=s1"));
    assert!(fx.handle().has_consent());

    fx.handle().set_consent_outcome(ConsentOutcome::Cancel);
    let resp = fx.http.get(url(&fx.tenant.tenant_id)).send().await.unwrap();
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("error=permission_denied"), "{loc}");

    fx.handle()
        .set_consent_outcome(ConsentOutcome::DenyWithAdminConsentTrue);
    let resp = fx.http.get(url(&fx.tenant.tenant_id)).send().await.unwrap();
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("admin_consent=True") && loc.contains("error=consent_required"));
}

#[tokio::test]
async fn counters_and_request_log_record_requests() {
    let fx = Fx::new(EmulatorConfig::default(), TenantSpec::new(1, 5, 1)).await;
    let token = fx.token().await;
    fx.get(&fx.graph("organization"), &token).await;
    fx.round_items(&fx.graph("users/delta"), &token).await;
    let c = fx.emu.counters();
    assert_eq!(c.token, 1);
    assert_eq!(c.organization, 1);
    assert_eq!(c.users_delta, 1);
    assert_eq!(c.requests, 3);
    assert_eq!(c.per_tenant[&fx.tenant.tenant_id].requests, 3);
    let log = fx.emu.request_log();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| !r.path_and_query.contains("secret")));
    assert_eq!(log[1].path_and_query, "/v1.0/organization");
    fx.emu.reset_counters();
    assert_eq!(fx.emu.counters().requests, 0);
    assert!(fx.emu.request_log().is_empty());
}

#[tokio::test]
async fn shutdown_closes_the_server_promptly() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    assert_eq!(
        fx.get(&fx.graph("organization"), &token).await.0,
        StatusCode::OK
    );
    let url = fx.graph("organization");
    let start = std::time::Instant::now();
    fx.emu.clone().shutdown().await;
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let fresh = reqwest::Client::new();
    assert!(fresh.get(url).bearer_auth(&token).send().await.is_err());
}
