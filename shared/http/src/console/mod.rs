//! The admin console (`/console/`): server-rendered HTML pages over the admin API's own route
//! functions, served by the same router as the API. docs/console.md is the reader's guide.
//!
//! - **No script at all.** Every screen is a page and every action a form; the pages carry a
//!   Content-Security-Policy that allows styles from this origin only (one static CSS file) and
//!   nothing else. No front-end build.
//! - **The same services.** Each page calls the API's route function for what it shows or does
//!   (the same parsing, the same core service, the same views), so the console cannot decide
//!   anything differently from the API or the CLI.
//! - **Sign-in.** The console is never open to any page on the machine: the program that serves
//!   it creates a login token and prints a one-time address (`/console/login?token=...`). Opening
//!   it spends the token and sets an `HttpOnly`, `SameSite=Strict` session cookie scoped to
//!   `/console`. Every other console address needs that session (401 page otherwise).
//! - **CSRF.** Every state-changing form carries the session's CSRF token in a hidden field, and
//!   the token is checked before the route runs (403 otherwise). The `SameSite=Strict` cookie
//!   alone would already keep other sites' forms out in current browsers; the token also covers
//!   browsers that ignore SameSite and same-site pages on other ports.

mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use entra_sync_core::model::AccountId;
use sha2::{Digest, Sha256};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::ApiState;
use crate::api::auth::Caller;

/// The console pages' policy: styles from this origin (the CSS file), nothing else; no framing.
pub const CONSOLE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "entra_sync_console";

/// Largest form the console accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A signed-in console session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token every state-changing form must carry.
    pub csrf: String,
    /// Who the session acts as (what the API's routes check).
    pub caller: Caller,
}

/// The console's sign-in: the one-time login token (its digest only) and the sessions.
pub struct ConsoleAuth {
    login: Mutex<Option<[u8; 32]>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    caller: Caller,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// 244 random bits as text (two version-4 UUIDs: the operating system's randomness).
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Equal without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ConsoleAuth {
    /// A console whose sessions act as `caller`, with a new login token (returned once, to
    /// print as `/console/login?token=<token>`).
    pub fn new(caller: Caller) -> (Arc<Self>, String) {
        let token = random_token();
        let auth = ConsoleAuth {
            login: Mutex::new(Some(digest(&token))),
            sessions: Mutex::new(HashMap::new()),
            caller,
        };
        (Arc::new(auth), token)
    }

    /// Spend the login token: a new session's id, or `None` (wrong or already used).
    fn sign_in(&self, token: &str) -> Option<String> {
        let mut login = self.login.lock().unwrap_or_else(|p| p.into_inner());
        let expected = (*login)?;
        if !same(&digest(token), &expected) {
            return None;
        }
        *login = None;
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            caller: self.caller.clone(),
        };
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest(&id), session);
        Some(id)
    }

    fn session(&self, id: &str) -> Option<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest(id))
            .cloned()
    }
}

/// What the console's pages use.
#[derive(Clone)]
pub struct ConsoleState {
    pub api: ApiState,
    pub auth: Arc<ConsoleAuth>,
    /// The account `/console/` opens.
    pub default_account: AccountId,
}

/// The session cookie of the request.
fn session_id(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A form's fields in order (repeated names stay repeated).
pub(crate) fn form_fields(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// Every console page but the login and the style sheet: the session into the request, or a
/// 401 page; and for a POST, the session's CSRF token in the form, or a 403 page.
async fn require_session(
    State(auth): State<Arc<ConsoleAuth>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(session) = session_id(&req).and_then(|id| auth.session(&id)) else {
        return pages::refusal(
            StatusCode::UNAUTHORIZED,
            "Sign in to the console",
            "Open the console with the address `entra-sync serve` printed when it started (it signs this browser in once).",
            "no console session",
        );
    };
    let (parts, body) = req.into_parts();
    let mut req = if parts.method == Method::POST {
        let bytes: Bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return pages::refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form too large",
                    "The form is larger than the console accepts.",
                    "console form over the limit",
                );
            }
        };
        let token = form_fields(&bytes)
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v);
        if !token.is_some_and(|t| same(t.as_bytes(), session.csrf.as_bytes())) {
            return pages::refusal(
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form did not come from a console page of this session. Reload the page and try again.",
                "missing or wrong CSRF token",
            );
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    req.extensions_mut().insert(session);
    next.run(req).await
}

async fn stylesheet() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        include_str!("console.css"),
    )
        .into_response()
}

/// The console's routes, to merge with the API's before [`crate::app`].
pub fn routes(state: ConsoleState) -> Router {
    let guarded = pages::routes()
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            require_session,
        ))
        .route_layer(RequestBodyLimitLayer::new(MAX_FORM_BYTES));
    Router::new()
        .route("/console/login", get(pages::login))
        .route("/console/static/console.css", get(stylesheet))
        .merge(guarded)
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        ))
}

/// The console's routes through the stack.
pub fn router(state: ConsoleState) -> Router {
    crate::app(routes(state))
}

#[cfg(test)]
mod tests;
