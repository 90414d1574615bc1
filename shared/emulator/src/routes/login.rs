//! The Microsoft identity platform side: client-credentials token endpoint and the
//! admin-consent redirect.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::errors::{LOGIN_JSON, ReqCtx, TenantTag, json_response, login_error, with_header};
use crate::state::{ConsentOutcome, Inner, TenantState, TokenBlock};

const GRAPH_DEFAULT_SCOPES: &[&str] = &[
    "https://graph.microsoft.com/.default",
    "00000003-0000-0000-c000-000000000000/.default",
];

/// Decodes `application/x-www-form-urlencoded` text (used for Basic credentials too).
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Client id and secret from an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

fn tag(mut resp: Response, tenant: Option<&TenantState>) -> Response {
    if let Some(t) = tenant {
        resp.extensions_mut().insert(TenantTag(t.id.clone()));
    }
    resp
}

/// `POST {login}/{tenant}/oauth2/v2.0/token` (client credentials).
pub(crate) async fn token(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<ReqCtx>,
    Path(tenant_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let bad = |status: StatusCode, error: &str, code: u32, msg: &str| {
        login_error(&ctx, status, error, code, msg)
    };

    let grant_type = field("grant_type").unwrap_or_default();
    if grant_type != "client_credentials" {
        let msg = if grant_type.is_empty() {
            "The request body must contain the following parameter: 'grant_type'.".to_string()
        } else {
            format!("The app requested an unsupported grant type '{grant_type}'.")
        };
        let (error, code) = if grant_type.is_empty() {
            ("invalid_request", 900144)
        } else {
            ("unsupported_grant_type", 70003)
        };
        return bad(StatusCode::BAD_REQUEST, error, code, &msg);
    }
    let Some(tenant) = inner.resolve_tenant(&tenant_key) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant_key}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    };
    let t = Some(&*tenant);
    let (client_id, secret) = match basic_credentials(&headers) {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (field("client_id"), field("client_secret")),
    };
    let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
        return tag(
            bad(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            ),
            t,
        );
    };
    if client_id != inner.app.client_id {
        return tag(
            bad(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    tenant.name
                ),
            ),
            t,
        );
    }
    match secret.filter(|s| !s.is_empty()) {
        None => {
            return tag(
                bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                ),
                t,
            );
        }
        Some(s) if s != inner.app.client_secret => {
            return tag(
                bad(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                ),
                t,
            );
        }
        Some(_) => {}
    }
    if !tenant.consent.load(Ordering::SeqCst) {
        return tag(
            bad(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000229,
                &format!(
                    "The client application {client_id} is missing service principal in the tenant {}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
                    tenant.id
                ),
            ),
            t,
        );
    }
    let block = *tenant
        .token_block
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match block {
        Some(TokenBlock::ConditionalAccess) => {
            return tag(
                bad(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    53003,
                    "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
                ),
                t,
            );
        }
        Some(TokenBlock::AppDisabled) => {
            return tag(
                bad(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    7000112,
                    &format!("Application '{client_id}' is disabled."),
                ),
                t,
            );
        }
        None => {}
    }
    let scope = field("scope").unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    // The emulator's own Graph host also works as the resource, like a national cloud's
    // `https://{graph host}/.default`.
    let own = [
        format!("{}/.default", super::base_url(&headers, &inner)),
        format!("{}/.default", inner.base_url()),
    ];
    let valid = |s: &str| {
        GRAPH_DEFAULT_SCOPES.contains(&s)
            || own
                .iter()
                .any(|o| o.trim_end_matches('/') == s.trim_end_matches('/') || *o == s)
    };
    if scopes.len() != 1 || !valid(scopes[0]) {
        let msg = if scope.is_empty() {
            "The provided request must include a 'scope' input parameter.".to_string()
        } else {
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            )
        };
        return tag(
            bad(StatusCode::BAD_REQUEST, "invalid_scope", 70011, &msg),
            t,
        );
    }
    let access_token = inner.issue_token(&tenant);
    let lifetime = inner.config.token_lifetime_secs;
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    let resp = json_response(StatusCode::OK, &body, LOGIN_JSON);
    let resp = with_header(resp, "cache-control", "no-store, no-cache");
    tag(resp, t)
}

/// `GET {login}/{tenant}[/v2.0]/adminconsent?client_id&redirect_uri&state[&scope]`: redirects
/// back with the outcome configured for the tenant (`TenantHandle::set_consent_outcome`).
/// `organizations` / `common` use the emulator's sign-in tenant (the last added one unless
/// set with `Emulator::set_sign_in_tenant`).
pub(crate) async fn admin_consent(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<ReqCtx>,
    Path(tenant_key): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let q = super::Query::parse(uri.query());
    let Some(redirect) = q.non_empty("redirect_uri").map(str::to_string) else {
        return login_error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    let client_id = q.get("client_id").unwrap_or_default();
    if client_id != inner.app.client_id {
        return login_error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    }
    let key = if tenant_key.eq_ignore_ascii_case("organizations")
        || tenant_key.eq_ignore_ascii_case("common")
    {
        let tenants = inner.tenants_read();
        tenants
            .sign_in_tenant
            .clone()
            .or_else(|| tenants.order.last().cloned())
            .unwrap_or_default()
    } else {
        tenant_key.clone()
    };
    let Some(tenant) = inner.resolve_tenant(&key) else {
        return login_error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant_key}' not found."),
        );
    };
    let state = q.get("state").unwrap_or_default();
    let v2 = uri.path().contains("/v2.0/");
    let outcome = *tenant
        .consent_outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    match outcome {
        ConsentOutcome::Approve => {
            tenant.consent.store(true, Ordering::SeqCst);
            // The v2 endpoint's `scope` names what is granted (`.default`: everything the app
            // registration asks for); the v1 endpoint always grants the registration's set.
            let granted = match q.get("scope").filter(|_| v2) {
                Some(scope) => {
                    crate::apps::permissions_from_scope(scope, &inner.config.app_permissions)
                }
                None => inner.config.app_permissions.iter().cloned().collect(),
            };
            tenant.set_granted(granted);
            params.append_pair("admin_consent", "True");
            params.append_pair("tenant", &tenant.id);
            params.append_pair("state", state);
            if v2 {
                params.append_pair(
                    "scope",
                    q.get("scope")
                        .unwrap_or("https://graph.microsoft.com/.default"),
                );
            }
        }
        ConsentOutcome::Cancel => {
            params.append_pair("error", "permission_denied");
            params.append_pair("error_description", "The admin canceled the request");
            params.append_pair("state", state);
        }
        ConsentOutcome::Decline => {
            params.append_pair("error", "access_denied");
            params.append_pair(
                "error_description",
                &format!(
                    "AADSTS65004: User declined to consent to access the app.\r\nTrace ID: {}\r\nCorrelation ID: {}",
                    ctx.request_id, ctx.client_request_id
                ),
            );
            params.append_pair("state", state);
        }
        ConsentOutcome::DenyWithAdminConsentTrue => {
            params.append_pair("admin_consent", "True");
            params.append_pair("error", "consent_required");
            params.append_pair(
                "error_description",
                &format!(
                    "AADSTS65004: The resource owner or authorization server denied the request.\r\nTrace ID: {}\r\nCorrelation ID: {}",
                    ctx.request_id, ctx.client_request_id
                ),
            );
            params.append_pair("state", state);
        }
        ConsentOutcome::ApprovalRequired | ConsentOutcome::NotAdmin => {
            let (code, text) = if outcome == ConsentOutcome::ApprovalRequired {
                (
                    90094,
                    "The grant requires admin permission. An approval request was sent to the administrators.",
                )
            } else {
                (
                    90093,
                    "The signed in user is not allowed to grant the requested permissions.",
                )
            };
            params.append_pair("error", "access_denied");
            params.append_pair(
                "error_description",
                &format!(
                    "AADSTS{code}: {text}\r\nTrace ID: {}\r\nCorrelation ID: {}",
                    ctx.request_id, ctx.client_request_id
                ),
            );
            params.append_pair("state", state);
        }
        ConsentOutcome::MissingTenant => {
            tenant.consent.store(true, Ordering::SeqCst);
            params.append_pair("admin_consent", "True");
            params.append_pair("state", state);
        }
    }
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{sep}{}", params.finish());
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    let mut resp = with_header(resp, "location", &location);
    resp.extensions_mut().insert(TenantTag(tenant.id.clone()));
    resp
}
