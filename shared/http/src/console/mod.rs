//! The admin console (`/console/`): server-rendered HTML pages over the admin API's own route
//! functions, served by the same router as the API. docs/console.md is the reader's guide.
//!
//! - **No script at all.** Every screen is a page and every action a form; the pages carry a
//!   Content-Security-Policy that allows styles from this origin only (one static CSS file) and
//!   nothing else. No front-end build.
//! - **The same services.** Each page calls the API's route function for what it shows or does
//!   (the same parsing, the same core service, the same views), so the console cannot decide
//!   anything differently from the API or the CLI.
//! - **Sign-in.** The console is never open to any page on the machine. Locally the program that
//!   serves it creates a login token and prints a one-time address (`/console/login?token=...`);
//!   anywhere, the API's `POST /v1/accounts/{account}/console-sessions` gives a one-time,
//!   short-lived address for one account (`/console/login?ticket=...`, how the host product
//!   opens the console on AWS). Opening it sets an `HttpOnly`, `SameSite=Strict` session cookie
//!   scoped to `/console`, signed and ending after a few hours ([`session`]). Every other console
//!   address needs a live session (401 page otherwise).
//! - **CSRF.** Every state-changing form carries the session's CSRF token in a hidden field, and
//!   the token is checked before the route runs (403 otherwise). The `SameSite=Strict` cookie
//!   alone would already keep other sites' forms out in current browsers; the token also covers
//!   browsers that ignore SameSite and same-site pages on other ports.

mod pages;
mod session;

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

pub use session::{ConsoleSessions, Session};

/// The local program's printed sign-in: one login token (its digest only), spent by the first
/// browser that opens `/console/login?token=...`.
pub struct ConsoleLogin {
    login: Mutex<Option<[u8; 32]>>,
    caller: Caller,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Equal without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ConsoleLogin {
    /// A login whose session acts as `caller`, with a new login token (returned once, to
    /// print as `/console/login?token=<token>`).
    pub fn new(caller: Caller) -> (Arc<Self>, String) {
        let token = session::random_token();
        let login = ConsoleLogin {
            login: Mutex::new(Some(digest(&token))),
            caller,
        };
        (Arc::new(login), token)
    }

    /// Spend the login token: who the new session acts as, or `None` (wrong or already used).
    fn sign_in(&self, token: &str) -> Option<Caller> {
        let mut login = self.login.lock().unwrap_or_else(|p| p.into_inner());
        let expected = (*login)?;
        if !same(&digest(token), &expected) {
            return None;
        }
        *login = None;
        Some(self.caller.clone())
    }
}

/// What the console's pages use.
#[derive(Clone)]
pub struct ConsoleState {
    /// The API's state; its [`ApiState::console`] signs and checks the sessions.
    pub api: ApiState,
    /// The printed one-time login of the local program (`None` on AWS: sign-in there is by a
    /// ticket from the API).
    pub login: Option<Arc<ConsoleLogin>>,
    /// The account `/console/` opens for a session of every account.
    pub default_account: AccountId,
    /// Mark the session cookie `Secure` (served over https, as on AWS).
    pub secure_cookie: bool,
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
async fn require_session(State(s): State<ConsoleState>, req: Request, next: Next) -> Response {
    let Some(session) = session_id(&req).and_then(|id| s.api.console.check(&id)) else {
        return pages::refusal(
            StatusCode::UNAUTHORIZED,
            "Sign in to the console",
            "Your console session has ended or this browser has none. Locally, open the address `entra-sync serve` printed when it started; in the host product, open the console again (it asks the API for a new sign-in address).",
            "no console session, or it ended",
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
            state.clone(),
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
