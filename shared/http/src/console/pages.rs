//! The console's screens. Each page calls the admin API's route function for its data or its
//! action and renders the answer; an error answer becomes an error page with the API's message.

mod actions;

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use entra_sync_core::mapping::SOURCE_ATTRIBUTES;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ConsoleState, SESSION_COOKIE, Session, form_fields};
use crate::HttpError;
use crate::api::auth::Caller;
use crate::api::routes as api;
use crate::api::views::{ConnectionView, RunState, RunView};
use crate::html::escape;

/// The pages behind the session check.
pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/", get(home))
        // The same, under a path API Gateway's `/console/{proxy+}` route matches (it needs a
        // segment after `/console/`): every page links here.
        .route("/console/home", get(home))
        .route("/console/accounts/{account}/", get(account_page))
        .route("/console/accounts/{account}/connect", post(connect))
        .route(
            "/console/accounts/{account}/directories/{tenant}/",
            get(details),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/reconnect",
            post(reconnect),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/disconnect",
            post(disconnect),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/users",
            get(users),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/users/{local_id}/activate",
            post(activate),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/groups",
            get(groups),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/runs",
            get(runs),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/sync",
            post(sync),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/runs/{run}",
            get(run_page),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/runs/{run}/confirm",
            post(confirm),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/runs/{run}/reject",
            post(reject),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/settings",
            get(settings).post(save_settings),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/import",
            get(import_page).post(import),
        )
        .merge(actions::routes())
}

/// An answer of a page: the page, or the API's error shown as a page.
pub(super) struct PageError(HttpError);

impl From<HttpError> for PageError {
    fn from(e: HttpError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = format!(
            "<h1>Not done</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/console/home\">Back to the console</a></p>",
            escape(e.message())
        );
        let page = frame(e.status(), "Not done", "", &body);
        e.on_page(page)
    }
}

type Page = Result<Response, PageError>;

/// A refusal before any page ran (no session, no CSRF token), as a page.
pub(super) fn refusal(status: StatusCode, title: &str, message: &str, detail: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>",
        escape(title),
        escape(message)
    );
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        _ => "invalid_request",
    };
    HttpError::new(status, code, message.to_owned())
        .with_detail(detail)
        .on_page(frame(status, title, "", &body))
}

fn frame(status: StatusCode, title: &str, nav: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · entra-sync console</title>\
         <link rel=\"stylesheet\" href=\"/console/static/console.css\"></head>\
         <body><header><p><a href=\"/console/home\">entra-sync console</a></p>{nav}</header>\
         <main>{body}</main></body></html>\n",
        escape(title)
    );
    let mut resp = (status, html).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// The snake_case word of a view's enum (as the API writes it).
fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn label_of(w: &str) -> String {
    let mut s = w.replace('_', " ");
    if let Some(first) = s.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    s
}

struct Ctx<'a> {
    account: &'a str,
    tenant: &'a str,
    csrf: &'a str,
}

impl Ctx<'_> {
    fn base(&self) -> String {
        format!(
            "/console/accounts/{}/directories/{}",
            escape(self.account),
            escape(self.tenant)
        )
    }

    fn nav(&self, current: &str) -> String {
        let mut out = String::from("<nav aria-label=\"Directory\"><ul>");
        for (path, name) in [
            ("/", "Details"),
            ("/users", "Users"),
            ("/groups", "User Groups"),
            ("/runs", "Activity Log"),
            ("/settings", "Settings"),
            ("/import", "Import"),
            ("/actions", "Actions"),
        ] {
            let cur = match name == current {
                true => " aria-current=\"page\"",
                false => "",
            };
            let _ = write!(
                out,
                "<li><a href=\"{}{path}\"{cur}>{name}</a></li>",
                self.base()
            );
        }
        out.push_str("</ul></nav>");
        out
    }

    fn page(&self, current: &str, title: &str, body: &str) -> Response {
        frame(StatusCode::OK, title, &self.nav(current), body)
    }

    /// A form that posts to `action` with the CSRF token and one button.
    fn button(&self, action: &str, text: &str, hidden: &[(&str, &str)]) -> String {
        let mut fields = String::new();
        for (k, v) in hidden {
            let _ = write!(
                fields,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            );
        }
        format!(
            "<form class=\"inline\" method=\"post\" action=\"{action}\">{}{fields}<button type=\"submit\">{}</button></form>",
            self.csrf_field(),
            escape(text)
        )
    }

    fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(self.csrf)
        )
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Body bytes of a JSON value (what the API's routes read).
fn json_bytes(v: Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// The JSON body of an answer the API's route built as a response.
async fn body_json(resp: Response) -> Result<Value, HttpError> {
    let bytes = axum::body::to_bytes(resp.into_body(), 4 * 1024 * 1024)
        .await
        .map_err(|e| {
            HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
                .with_detail(format_args!("the API answer could not be read: {e}"))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        HttpError::from_status(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail(format_args!("the API answer is not JSON: {e}"))
    })
}

fn uri(q: &str) -> Uri {
    Uri::try_from(format!("/?{q}")).unwrap_or_else(|_| Uri::from_static("/"))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The query's value of `name` (decoded).
fn query_value(u: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(u.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) async fn login(State(s): State<ConsoleState>, u: Uri) -> Response {
    let from_token = || {
        let token = query_value(&u, "token")?;
        s.login.as_ref()?.sign_in(&token)
    };
    let caller = match query_value(&u, "ticket") {
        Some(ticket) => match s.api.console.redeem_ticket(&ticket).await {
            Ok(account) => account.map(Caller::Account),
            Err(e) => {
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is unavailable",
                    "The console could not check this sign-in address right now. Try again in a moment.",
                    &format!("console ticket lookup failed: {e}"),
                );
            }
        },
        None => from_token(),
    };
    let Some(caller) = caller else {
        return refusal(
            StatusCode::UNAUTHORIZED,
            "Sign in to the console",
            "This sign-in address is not valid, has expired or was used already. Locally, restart `entra-sync serve` for a new one; in the host product, open the console again.",
            "wrong, expired or spent console sign-in",
        );
    };
    let (cookie, session) = s.api.console.open(&caller);
    let home = match &session.caller {
        Caller::Account(a) => format!("/console/accounts/{}/", enc(&a.0)),
        Caller::AllAccounts => "/console/home".to_owned(),
    };
    let mut resp = see_other(&home);
    let secure = if s.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
        s.api.console.session_ttl().num_seconds()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn home(State(s): State<ConsoleState>, Extension(session): Extension<Session>) -> Response {
    let account = match &session.caller {
        Caller::Account(a) => a,
        Caller::AllAccounts => &s.default_account,
    };
    see_other(&format!("/console/accounts/{}/", enc(&account.0)))
}

fn status_text(c: &ConnectionView) -> String {
    let mut out = format!("<strong>{}</strong>", escape(&label_of(&word(&c.status))));
    if let Some(r) = &c.reauthorization {
        let _ = write!(
            out,
            "<div class=\"warning\" role=\"status\"><p>{}</p><p><strong>What to do:</strong> {}</p></div>",
            escape(&r.reason),
            escape(&r.what_to_do)
        );
    }
    out
}

fn domains(c: &ConnectionView) -> String {
    let list: Vec<String> = c
        .verified_domains
        .iter()
        .map(|d| match d.is_default {
            true => format!("{} (default)", escape(&d.name)),
            false => escape(&d.name),
        })
        .collect();
    match list.is_empty() {
        true => "none".to_owned(),
        false => list.join(", "),
    }
}

async fn account_page(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path(account): Path<String>,
) -> Page {
    let list = api::list_connections(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path(account.clone()),
        uri("limit=200"),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: "",
        csrf: &session.csrf,
    };
    let mut body = format!("<h1>Directories of {}</h1>", escape(&account));
    if list.items.is_empty() {
        body.push_str("<p>No directory is connected yet.</p>");
    } else {
        body.push_str("<table><caption>Connected directories</caption><thead><tr><th scope=\"col\">Directory</th><th scope=\"col\">Verified domains</th><th scope=\"col\">Status</th></tr></thead><tbody>");
        for c in &list.items {
            let _ = write!(
                body,
                "<tr><td><a href=\"/console/accounts/{}/directories/{}/\">{}</a><div class=\"muted\">{}</div></td><td>{}</td><td>{}</td></tr>",
                escape(&account),
                escape(&c.tenant_id),
                escape(c.tenant_name.as_deref().unwrap_or(&c.label)),
                escape(&c.tenant_id),
                domains(c),
                status_text(c)
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<h2>Connect a directory</h2><form method=\"post\" action=\"/console/accounts/{}/connect\">{}\
         <p><label for=\"label\">Label</label> <input id=\"label\" name=\"label\" value=\"My directory\" required maxlength=\"128\"></p>\
         <p><button type=\"submit\">Connect with Microsoft</button></p></form>\
         <p class=\"muted\">An administrator of the directory signs in at Microsoft and grants the permissions; the browser comes back here after.</p>",
        escape(&account),
        ctx.csrf_field()
    );
    Ok(frame(StatusCode::OK, "Directories", "", &body))
}

async fn connect(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path(account): Path<String>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let label = field(&fields, "label").unwrap_or("My directory");
    let (_, link) = api::start_connection(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        None,
        Path(account),
        json_bytes(json!({ "label": label })),
    )
    .await?;
    Ok(see_other(&link.0.consent_url))
}

async fn details(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
) -> Page {
    let c = api::show_connection(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let name = c.tenant_name.clone().unwrap_or_else(|| c.label.clone());
    let mut body = format!(
        "<h1>{}</h1><dl><dt>Tenant name</dt><dd>{}</dd><dt>Label</dt><dd>{}</dd><dt>Directory (tenant) id</dt><dd>{}</dd>\
         <dt>Verified domains</dt><dd>{}</dd><dt>Status</dt><dd>{}</dd><dt>Connected at</dt><dd>{}</dd></dl>",
        escape(&name),
        escape(c.tenant_name.as_deref().unwrap_or("unknown")),
        escape(&c.label),
        escape(&c.tenant_id),
        domains(&c),
        status_text(&c),
        escape(&c.connected_at.to_rfc3339()),
    );
    let _ = write!(
        body,
        "<h2>Connection</h2><p>{} {}</p><p class=\"muted\">Reconnect asks an administrator to consent again (after a revoked consent or new permissions). Disconnect stops syncing; the synced users are kept.</p>",
        ctx.button(&format!("{}/reconnect", ctx.base()), "Reconnect", &[]),
        ctx.button(&format!("{}/disconnect", ctx.base()), "Disconnect", &[]),
    );
    Ok(ctx.page("Details", &name, &body))
}

async fn reconnect(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
) -> Page {
    let (_, link) = api::reconnect(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        None,
        Path((account, tenant)),
        Bytes::new(),
    )
    .await?;
    Ok(see_other(&link.0.consent_url))
}

async fn disconnect(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
) -> Page {
    let _disconnected = api::disconnect(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/accounts/{}/directories/{}/",
        enc(&account),
        enc(&tenant)
    )))
}

const HOST_FILTERS: &[(&str, &str)] = &[
    ("pending", "Pending"),
    ("active", "Active"),
    ("deactivated", "Deactivated"),
    ("disabled_in_directory", "Disabled in directory"),
    ("", "All"),
];

fn next_link(base: &str, extra: &str, cursor: Option<&str>) -> String {
    cursor
        .map(|c| {
            format!(
                "<p><a href=\"{base}?{extra}cursor={}\">Next page</a></p>",
                escape(&enc(c))
            )
        })
        .unwrap_or_default()
}

async fn users(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    u: Uri,
) -> Page {
    // The directory must be the account's (404 otherwise), as on every tenant page.
    let _connection = api::show_connection(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
    )
    .await?;
    let status = query_value(&u, "status").unwrap_or_else(|| "pending".to_owned());
    let cursor = query_value(&u, "cursor");
    let mut q = String::from("limit=100");
    if !status.is_empty() {
        let _ = write!(q, "&status={}", enc(&status));
    }
    if let Some(c) = &cursor {
        let _ = write!(q, "&cursor={}", enc(c));
    }
    let list = api::list_host_users_route(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path(account.clone()),
        uri(&q),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let base = format!("{}/users", ctx.base());
    let mut body = String::from("<h1>Users</h1><nav aria-label=\"Filter users by status\"><ul>");
    for (value, name) in HOST_FILTERS {
        let cur = match *value == status {
            true => " aria-current=\"page\"",
            false => "",
        };
        let _ = write!(
            body,
            "<li><a href=\"{base}?status={value}\"{cur}>{name}</a></li>"
        );
    }
    body.push_str("</ul></nav>");
    let shown = HOST_FILTERS
        .iter()
        .find(|(v, _)| *v == status)
        .map_or("All", |(_, n)| n);
    if list.items.is_empty() {
        let _ = write!(body, "<p>No users: {}.</p>", escape(shown));
    } else {
        let _ = write!(
            body,
            "<table><caption>Users: {}</caption><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Email</th><th scope=\"col\">Status</th><th scope=\"col\">Roles</th><th scope=\"col\">Action</th></tr></thead><tbody>",
            escape(shown)
        );
        for h in &list.items {
            let st = word(&h.status);
            let action = match st.as_str() {
                "pending" => ctx.button(
                    &format!(
                        "{}/users/{}/activate",
                        ctx.base(),
                        escape(&enc(&h.local_id))
                    ),
                    "Activate",
                    &[],
                ),
                "deactivated" => ctx.button(
                    &format!(
                        "{}/users/{}/activate",
                        ctx.base(),
                        escape(&enc(&h.local_id))
                    ),
                    "Activate again",
                    &[("force", "true")],
                ),
                _ => String::new(),
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                escape(h.fields.get("name").map_or("", String::as_str)),
                escape(&h.email),
                escape(&label_of(&st)),
                escape(&h.roles.join(", ")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&next_link(
        &base,
        &format!("status={}&", enc(&status)),
        list.next_cursor.as_deref(),
    ));
    Ok(ctx.page("Users", "Users", &body))
}

async fn activate(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, local_id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let force = field(&fields, "force") == Some("true");
    let _activated = api::activate(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), local_id)),
        json_bytes(json!({ "force": force })),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/accounts/{}/directories/{}/users?status=active",
        enc(&account),
        enc(&tenant)
    )))
}

async fn groups(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    u: Uri,
) -> Page {
    let mut q = String::from("limit=100");
    if let Some(c) = query_value(&u, "cursor") {
        let _ = write!(q, "&cursor={}", enc(&c));
    }
    let list = api::list_groups(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
        uri(&q),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let mut body = String::from("<h1>User Groups</h1>");
    if list.items.is_empty() {
        body.push_str("<p>No groups synced yet. Run a sync from the Activity Log.</p>");
    } else {
        body.push_str("<table><caption>Groups of the directory</caption><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Description</th><th scope=\"col\">Mail</th><th scope=\"col\">Object id</th></tr></thead><tbody>");
        for g in &list.items {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
                escape(g.display_name.as_deref().unwrap_or("")),
                escape(g.description.as_deref().unwrap_or("")),
                escape(g.mail.as_deref().unwrap_or("")),
                escape(&g.object_id),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&next_link(
        &format!("{}/groups", ctx.base()),
        "",
        list.next_cursor.as_deref(),
    ));
    Ok(ctx.page("User Groups", "User Groups", &body))
}

fn counts(r: &RunView) -> String {
    let p = &r.provisioning;
    let m = &r.mirror;
    format!(
        "users read: {} new, {} changed, {} removed; host users: {} created, {} linked, {} updated, {} deactivated, {} reactivated, {} unchanged, {} failed",
        m.created,
        m.updated,
        m.removed,
        p.created,
        p.linked,
        p.updated,
        p.deactivated,
        p.reactivated,
        p.unchanged,
        p.failed
    )
}

fn progress(r: &RunView) -> String {
    if !matches!(r.status, RunState::Running) {
        return String::new();
    }
    let id = format!("progress-{}", escape(&r.run_id));
    match r.progress.percent {
        Some(p) => format!(
            "<label for=\"{id}\">Progress</label> <progress id=\"{id}\" max=\"100\" value=\"{p}\">{p} %</progress> {p} %"
        ),
        None => format!(
            "<label for=\"{id}\">Progress</label> <progress id=\"{id}\">running</progress> {} pages read",
            r.progress.users.pages_fetched + r.progress.groups.pages_fetched
        ),
    }
}

async fn runs(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    u: Uri,
) -> Page {
    let mut q = String::from("limit=50");
    if let Some(c) = query_value(&u, "cursor") {
        let _ = write!(q, "&cursor={}", enc(&c));
    }
    let list = api::list_runs(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
        uri(&q),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let mut body = format!(
        "<h1>Activity Log</h1><p>{}</p>",
        ctx.button(&format!("{}/sync", ctx.base()), "Sync now", &[])
    );
    let running = list
        .items
        .iter()
        .any(|r| matches!(r.status, RunState::Running));
    if running {
        body.push_str("<p class=\"muted\" role=\"status\">A sync is running: reload the page to follow it.</p>");
    }
    if list.items.is_empty() {
        body.push_str("<p>No runs yet.</p>");
    } else {
        body.push_str("<table><caption>Runs, newest first</caption><thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Ended</th><th scope=\"col\">Duration</th><th scope=\"col\">Trigger</th><th scope=\"col\">Status</th><th scope=\"col\">Counts</th><th scope=\"col\">Errors</th></tr></thead><tbody>");
        for r in &list.items {
            let status = label_of(&word(&r.status));
            let _ = write!(
                body,
                "<tr><td><a href=\"{}/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                ctx.base(),
                escape(&enc(&r.run_id)),
                escape(&r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                escape(
                    &r.finished_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| "running".to_owned())
                ),
                r.duration_seconds
                    .map(|d| format!("{d} s"))
                    .unwrap_or_default(),
                escape(&label_of(&word(&r.trigger))),
                escape(&status),
                progress(r),
                escape(&counts(r)),
                escape(r.error.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&next_link(
        &format!("{}/runs", ctx.base()),
        "",
        list.next_cursor.as_deref(),
    ));
    Ok(ctx.page("Activity Log", "Activity Log", &body))
}

async fn sync(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
) -> Page {
    api::sync_now(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/accounts/{}/directories/{}/runs",
        enc(&account),
        enc(&tenant)
    )))
}

async fn run_page(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, run)): Path<(String, String, String)>,
) -> Page {
    let r = api::show_run(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone(), run)),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    Ok(ctx.page("Activity Log", "Run", &run_body(&ctx, &r, None)))
}

fn run_body(ctx: &Ctx<'_>, r: &RunView, notice: Option<&str>) -> String {
    let mut body = String::from("<h1>Run</h1>");
    if let Some(n) = notice {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(n)
        );
    }
    let _ = write!(
        body,
        "<dl><dt>Status</dt><dd>{} {}</dd><dt>Trigger</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>Ended</dt><dd>{}</dd><dt>Counts</dt><dd>{}</dd>",
        escape(&label_of(&word(&r.status))),
        progress(r),
        escape(&label_of(&word(&r.trigger))),
        escape(&r.started_at.to_rfc3339()),
        escape(&r.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default()),
        escape(&counts(r)),
    );
    if let Some(e) = &r.error {
        let _ = write!(body, "<dt>Error</dt><dd class=\"error\">{}</dd>", escape(e));
    }
    if let Some(by) = &r.rejected_by {
        let _ = write!(body, "<dt>Rejected by</dt><dd>{}</dd>", escape(by));
    }
    body.push_str("</dl>");
    if let (RunState::Held, Some(h)) = (&r.status, &r.hold) {
        let base = format!("{}/runs/{}", ctx.base(), escape(&enc(&r.run_id)));
        let _ = write!(
            body,
            "<section aria-labelledby=\"held\"><h2 id=\"held\">Held for your decision</h2>\
             <p class=\"warning\">This run would deactivate <strong>{}</strong> of <strong>{}</strong> active users, more than the breaker allows ({}).{}</p>\
             <p>Confirm applies the held deactivations; reject applies none, and the next run reads the whole directory again.</p>\
             <p>{} {}</p></section>",
            h.deactivations,
            h.active_before,
            escape(&h.threshold),
            match h.empty_read {
                true => " The directory read came back empty.",
                false => "",
            },
            ctx.button(&format!("{base}/confirm"), "Confirm", &[]),
            ctx.button(&format!("{base}/reject"), "Reject", &[]),
        );
    }
    let _ = write!(
        body,
        "<p><a href=\"{}/runs\">Back to the activity log</a></p>",
        ctx.base()
    );
    body
}

async fn confirm(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, run)): Path<(String, String, String)>,
) -> Page {
    let done = api::confirm_run(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone(), run)),
        json_bytes(json!({ "by": "console" })),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let note = format!("Confirmed: {}.", label_of(&done.outcome));
    Ok(ctx.page(
        "Activity Log",
        "Run",
        &run_body(&ctx, &done.run, Some(&note)),
    ))
}

async fn reject(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, run)): Path<(String, String, String)>,
) -> Page {
    let r = api::reject_run(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone(), run)),
        json_bytes(json!({ "by": "console" })),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    Ok(ctx.page(
        "Activity Log",
        "Run",
        &run_body(&ctx, &r, Some("Rejected: nothing held is applied.")),
    ))
}

/// One filter section (`all` or `any_of` with values) as form controls.
fn section_controls(name: &str, title: &str, section: &Value) -> String {
    let any = section.get("mode").and_then(Value::as_str) == Some("any_of");
    let values: Vec<String> = section
        .get("values")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (all_checked, any_checked) = match any {
        true => ("", " checked"),
        false => (" checked", ""),
    };
    format!(
        "<fieldset><legend>{title}</legend>\
         <input type=\"radio\" id=\"{name}-all\" name=\"{name}_mode\" value=\"all\"{all_checked}><label for=\"{name}-all\">All</label>\
         <input type=\"radio\" id=\"{name}-any\" name=\"{name}_mode\" value=\"any_of\"{any_checked}><label for=\"{name}-any\">Only these</label>\
         <label for=\"{name}-values\">Values (comma separated)</label> <input id=\"{name}-values\" name=\"{name}_values\" value=\"{}\"></fieldset>",
        escape(&values.join(", "))
    )
}

fn checkbox(name: &str, label: &str, on: bool) -> String {
    let checked = match on {
        true => " checked",
        false => "",
    };
    format!(
        "<p><input type=\"checkbox\" id=\"{name}\" name=\"{name}\" value=\"true\"{checked}> <label for=\"{name}\">{label}</label></p>"
    )
}

fn settings_form(ctx: &Ctx<'_>, version: u64, s: &Value) -> String {
    let filters = &s["filters"];
    let mut out = format!(
        "<form method=\"post\" action=\"{}/settings\">{}<input type=\"hidden\" name=\"version\" value=\"{version}\">\
         <h2>Filters</h2><p class=\"muted\">Which directory users are synced. \"All\" admits every value, also ones added later.</p>",
        ctx.base(),
        ctx.csrf_field()
    );
    out.push_str(&section_controls(
        "email_domains",
        "Email domains",
        &filters["email_domains"],
    ));
    out.push_str(&section_controls(
        "departments",
        "Departments",
        &filters["departments"],
    ));
    out.push_str(&section_controls(
        "office_locations",
        "Office locations",
        &filters["office_locations"],
    ));
    out.push_str(&section_controls(
        "groups",
        "Groups (object ids)",
        &filters["groups"],
    ));
    out.push_str(&checkbox(
        "include_disabled",
        "Import accounts disabled in the directory (as deactivated users)",
        filters["include_disabled"].as_bool().unwrap_or(false),
    ));
    out.push_str("<h2>Mapping</h2><table><caption>Host product field from directory attribute</caption><thead><tr><th scope=\"col\">Host field</th><th scope=\"col\">Directory attribute</th></tr></thead><tbody>");
    let mut rows: Vec<(String, String)> = s["mapping"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["target"].as_str().unwrap_or("").to_owned(),
                        f["source"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    rows.push((String::new(), String::new()));
    for (i, (target, source)) in rows.iter().enumerate() {
        let mut options = String::from("<option value=\"\">(none)</option>");
        for a in SOURCE_ATTRIBUTES {
            let sel = match *a == source {
                true => " selected",
                false => "",
            };
            let _ = write!(options, "<option value=\"{a}\"{sel}>{a}</option>");
        }
        let _ = write!(
            out,
            "<tr><td><label for=\"target-{i}\" class=\"muted\">Field {n}</label> <input id=\"target-{i}\" name=\"target\" value=\"{}\"></td>\
             <td><label for=\"source-{i}\" class=\"muted\">Attribute {n}</label> <select id=\"source-{i}\" name=\"source\">{options}</select></td></tr>",
            escape(target),
            n = i + 1
        );
    }
    out.push_str("</tbody></table><p class=\"muted\">Leave a row's field empty to remove it; fill the last row to add one.</p>");
    let rules = &s["provisioning"];
    let automatic = rules["automatic"].as_str().unwrap_or("everything");
    out.push_str("<h2>Rules</h2><p><label for=\"automatic\">What a sync does on its own</label> <select id=\"automatic\" name=\"automatic\">");
    for (v, n) in [
        ("everything", "Create new users and update existing ones"),
        (
            "updates_only",
            "Update existing users; new users wait for an import",
        ),
        ("nothing", "Change no user; imports apply changes"),
    ] {
        let sel = match v == automatic {
            true => " selected",
            false => "",
        };
        let _ = write!(out, "<option value=\"{v}\"{sel}>{n}</option>");
    }
    out.push_str("</select></p>");
    out.push_str(&checkbox(
        "auto_activate_verified_domains",
        "Activate new users of the verified domains at once",
        rules["auto_activate_verified_domains"]
            .as_bool()
            .unwrap_or(false),
    ));
    out.push_str(&checkbox(
        "recreate_deleted_locally",
        "Recreate users deleted in the host product",
        rules["recreate_deleted_locally"].as_bool().unwrap_or(false),
    ));
    let breaker = &s["breaker"];
    let max_count = match &breaker["max_count"] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let _ = write!(
        out,
        "<h2>Breaker</h2><p class=\"muted\">A run that would deactivate more users than this stops and waits for a confirm or reject.</p>\
         <p><label for=\"max_count\">Most deactivations in one run (a number, or auto)</label> <input id=\"max_count\" name=\"max_count\" value=\"{}\"></p>\
         <p><label for=\"max_percent\">Most deactivations as a percentage of the active users</label> <input id=\"max_percent\" name=\"max_percent\" type=\"number\" min=\"0\" max=\"100\" value=\"{}\"></p>\
         <p><button type=\"submit\">Save settings</button></p></form>",
        escape(&max_count),
        breaker["max_percent"].as_u64().unwrap_or(10)
    );
    out
}

async fn load(
    s: &ConsoleState,
    session: &Session,
    account: &str,
    tenant: &str,
) -> Result<(u64, Value), HttpError> {
    let resp = api::get_settings(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.to_owned(), tenant.to_owned())),
    )
    .await?;
    let v = body_json(resp).await?;
    Ok((v["version"].as_u64().unwrap_or(0), v["settings"].clone()))
}

async fn settings(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
) -> Page {
    let (version, current) = load(&s, &session, &account, &tenant).await?;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let body = format!(
        "<h1>Settings</h1><p class=\"muted\">Version {version}.</p>{}",
        settings_form(&ctx, version, &current)
    );
    Ok(ctx.page("Settings", "Settings", &body))
}

fn section_patch(fields: &[(String, String)], name: &str) -> Value {
    match field(fields, &format!("{name}_mode")) {
        Some("any_of") => {
            let values: Vec<&str> = field(fields, &format!("{name}_values"))
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            json!({ "mode": "any_of", "values": values })
        }
        _ => json!({ "mode": "all" }),
    }
}

/// The settings form as a JSON Merge Patch of the parts the form shows.
fn settings_patch(fields: &[(String, String)]) -> Value {
    let on = |n: &str| field(fields, n) == Some("true");
    let targets = fields.iter().filter(|(k, _)| k == "target").map(|(_, v)| v);
    let sources = fields.iter().filter(|(k, _)| k == "source").map(|(_, v)| v);
    let mapping: Vec<Value> = targets
        .zip(sources)
        .filter(|(t, s)| !t.trim().is_empty() && !s.is_empty())
        .map(|(t, s)| json!({ "target": t.trim(), "source": s }))
        .collect();
    let max_count = field(fields, "max_count").unwrap_or("auto").trim();
    let max_count = match max_count.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(max_count),
    };
    let max_percent = field(fields, "max_percent")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Value::Null, |n| json!(n));
    json!({
        "filters": {
            "email_domains": section_patch(fields, "email_domains"),
            "departments": section_patch(fields, "departments"),
            "office_locations": section_patch(fields, "office_locations"),
            "groups": section_patch(fields, "groups"),
            "include_disabled": on("include_disabled"),
        },
        "mapping": { "fields": mapping },
        "provisioning": {
            "automatic": field(fields, "automatic").unwrap_or("everything"),
            "auto_activate_verified_domains": on("auto_activate_verified_domains"),
            "recreate_deleted_locally": on("recreate_deleted_locally"),
        },
        "breaker": { "max_count": max_count, "max_percent": max_percent },
    })
}

async fn save_settings(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let mut headers = HeaderMap::new();
    if let Some(v) = field(&fields, "version")
        .and_then(|v| HeaderValue::from_str(&format!("\"{}\"", v.trim())).ok())
    {
        headers.insert(header::IF_MATCH, v);
    }
    let patch = settings_patch(&fields);
    let resp = api::patch_settings(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
        headers,
        json_bytes(patch),
    )
    .await?;
    let saved = body_json(resp).await?;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let version = saved["version"].as_u64().unwrap_or(0);
    let mut body = String::from(
        "<h1>Settings</h1><div class=\"notice\" role=\"status\"><p>Saved. What changed:</p><ul>",
    );
    let changes = saved["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        body.push_str("<li>nothing</li>");
    }
    for c in &changes {
        let _ = write!(
            body,
            "<li>{}: {} → {}</li>",
            escape(c["path"].as_str().unwrap_or("")),
            escape(&c["before"].to_string()),
            escape(&c["after"].to_string())
        );
    }
    body.push_str("</ul>");
    let run = &saved["run"];
    if let Some(id) = run["run_id"].as_str() {
        let held = run["status"].as_str() == Some("held");
        let _ = write!(
            body,
            "<p>The users were projected again: <a href=\"{}/runs/{}\">{}</a>.</p>",
            ctx.base(),
            escape(&enc(id)),
            match held {
                true => "the run is held for your decision",
                false => "see the run",
            }
        );
    }
    let _ = write!(
        body,
        "<p><a href=\"{}/import\">Preview an import with these settings</a></p></div>",
        ctx.base()
    );
    let current = saved["settings"].clone();
    body.push_str(&settings_form(&ctx, version, &current));
    Ok(ctx.page("Settings", "Settings", &body))
}

const MODES: &[(&str, &str)] = &[
    ("new_and_updated", "New and updated users"),
    ("only_updated", "Only updated users"),
    ("only_new", "Only new users"),
];

async fn import_page(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    u: Uri,
) -> Page {
    let mode = query_value(&u, "mode").unwrap_or_else(|| "new_and_updated".to_owned());
    let mode = MODES
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or("new_and_updated", |(m, _)| m);
    let p = api::preview_import(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
        json_bytes(json!({ "mode": mode })),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let mut body = format!(
        "<h1>Import</h1><form method=\"get\" action=\"{}/import\"><p><label for=\"mode\">What to import</label> <select id=\"mode\" name=\"mode\">",
        ctx.base()
    );
    for (m, n) in MODES {
        let sel = match *m == mode {
            true => " selected",
            false => "",
        };
        let _ = write!(body, "<option value=\"{m}\"{sel}>{n}</option>");
    }
    let c = &p.counts;
    let _ = write!(
        body,
        "</select> <button type=\"submit\">Preview</button></p></form>\
         <h2>Preview</h2><p role=\"status\">Would create {}, link {}, update {}, deactivate {}, reactivate {}; {} unchanged, {} skipped (settings version {}).</p>",
        c.created,
        c.linked,
        c.updated,
        c.deactivated,
        c.reactivated,
        c.unchanged,
        c.skipped,
        p.settings_version
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}/import\">{}<input type=\"hidden\" name=\"mode\" value=\"{mode}\">",
        ctx.base(),
        ctx.csrf_field()
    );
    if p.items.is_empty() {
        body.push_str("<p>Nothing to import.</p>");
    } else {
        body.push_str("<table><caption>What the import would do</caption><thead><tr><th scope=\"col\">Pick</th><th scope=\"col\">Name</th><th scope=\"col\">Email</th><th scope=\"col\">Decision</th><th scope=\"col\">Why</th></tr></thead><tbody>");
        for (i, it) in p.items.iter().enumerate() {
            let action = word(&it.action);
            let pick = match action.as_str() {
                "create" => format!(
                    "<input type=\"checkbox\" id=\"pick-{i}\" name=\"object_id\" value=\"{}\"><label for=\"pick-{i}\" class=\"muted\">pick</label>",
                    escape(&it.object_id)
                ),
                _ => String::new(),
            };
            let _ = write!(
                body,
                "<tr><td>{pick}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(it.display_name.as_deref().unwrap_or("")),
                escape(it.email.as_deref().unwrap_or("")),
                escape(&label_of(&action)),
                escape(&it.reason),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<p><button type=\"submit\" name=\"what\" value=\"all\">Import all of the preview</button> <button type=\"submit\" name=\"what\" value=\"picked\">Import the picked new users</button></p></form>");
    Ok(ctx.page("Import", "Import", &body))
}

async fn import(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let picked: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "object_id")
        .map(|(_, v)| v.as_str())
        .collect();
    let request = match field(&fields, "what") {
        Some("picked") => json!({ "mode": "selected", "object_ids": picked }),
        _ => json!({ "mode": field(&fields, "mode").unwrap_or("new_and_updated") }),
    };
    let done = api::run_import(
        State(s.api.clone()),
        Extension(session.caller.clone()),
        Path((account.clone(), tenant.clone())),
        json_bytes(request),
    )
    .await?
    .0;
    let ctx = Ctx {
        account: &account,
        tenant: &tenant,
        csrf: &session.csrf,
    };
    let note = format!("Imported: {} users decided.", done.items.len());
    Ok(ctx.page("Import", "Import", &run_body(&ctx, &done.run, Some(&note))))
}
