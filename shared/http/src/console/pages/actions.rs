//! The Actions screen: request an action, the audit trail with its filters, approve or reject a
//! pending request, cancel one that has not started, and run an approved password reset (its
//! temporary password is shown on that one page, once). Each form calls the API's action route
//! function, so the console decides nothing the API would decide differently.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{Value, json};

use super::{Ctx, Page, body_json, enc, field, json_bytes, label_of, next_link, query_value, uri};
use crate::api::actions as api;
use crate::api::routes::Tenant;
use crate::console::{ConsoleState, Session, form_fields};
use crate::html::escape;

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route(
            "/console/accounts/{account}/directories/{tenant}/actions",
            get(list).post(submit),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/actions/{action}",
            get(show),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/actions/{action}/decide",
            post(decide),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/actions/{action}/cancel",
            post(cancel),
        )
        .route(
            "/console/accounts/{account}/directories/{tenant}/actions/{action}/run",
            post(run),
        )
}

const KINDS: &[(&str, &str)] = &[
    ("add_group_member", "Add to group"),
    ("remove_group_member", "Remove from group"),
    ("assign_app_role", "Assign an app"),
    ("remove_app_role", "Remove an app"),
    ("revoke_sessions", "Revoke sign-in sessions"),
    ("block_sign_in", "Block sign-in"),
    ("unblock_sign_in", "Unblock sign-in"),
    ("reset_password", "Reset password"),
    ("delete_user", "Delete (soft)"),
    ("restore_user", "Restore"),
];

const STATUSES: &[(&str, &str)] = &[
    ("", "All"),
    ("pending_approval", "Pending approval"),
    ("approved", "Approved"),
    ("queued", "Queued"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("rejected", "Rejected"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
];

fn text(v: &Value) -> String {
    escape(v.as_str().unwrap_or(""))
}

/// A labelled text input.
fn input(id: &str, name: &str, label: &str, required: bool) -> String {
    format!(
        "<p><label for=\"{id}\">{label}</label> <input id=\"{id}\" name=\"{name}\"{}></p>",
        if required { " required" } else { "" }
    )
}

/// The form of a pending, approved or not-yet-started action, on its row or page.
fn controls(ctx: &Ctx<'_>, a: &Value) -> String {
    let id = a["id"].as_str().unwrap_or("");
    let base = format!("{}/actions/{}", ctx.base(), escape(&enc(id)));
    let status = a["status"].as_str().unwrap_or("");
    let n = escape(id);
    let mut out = String::new();
    if status == "pending_approval" {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{base}/decide\">{}\
             <p><label for=\"by-{n}\">Approver</label> <input id=\"by-{n}\" name=\"by\" required> \
             <label for=\"comment-{n}\">Comment</label> <input id=\"comment-{n}\" name=\"comment\"> \
             <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
             <button type=\"submit\" name=\"decision\" value=\"reject\">Reject</button></p></form>",
            ctx.csrf_field()
        );
    }
    if status == "approved" && a["kind"] == "reset_password" {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{base}/run\">{}\
             <p><label for=\"runner-{n}\">Requester</label> <input id=\"runner-{n}\" name=\"runner\" required> \
             <button type=\"submit\">Run the password reset</button></p></form>",
            ctx.csrf_field()
        );
    }
    if matches!(status, "pending_approval" | "approved" | "queued") {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{base}/cancel\">{}\
             <p><label for=\"cancel-by-{n}\">Cancelled by</label> <input id=\"cancel-by-{n}\" name=\"by\" required> \
             <button type=\"submit\">Cancel</button></p></form>",
            ctx.csrf_field()
        );
    }
    out
}

fn target(a: &Value) -> String {
    let t = &a["target"];
    let user = t["user_name"]
        .as_str()
        .or(t["user_id"].as_str())
        .unwrap_or("");
    let mut out = escape(user);
    if let Some(g) = t["group_name"].as_str().or(t["group_id"].as_str()) {
        let _ = write!(out, " → {}", escape(g));
    }
    if let Some(sp) = t["service_principal_id"].as_str() {
        let _ = write!(out, " → app {}", escape(sp));
    }
    out
}

fn status_of(a: &Value) -> String {
    let mut out = escape(&label_of(a["status"].as_str().unwrap_or("")));
    if let Some(r) = a["reason"].as_str() {
        let _ = write!(out, ": {}", escape(r));
    }
    if a["already_in_effect"] == json!(true) {
        out.push_str(" (already in effect)");
    }
    out
}

fn request_form(ctx: &Ctx<'_>) -> String {
    let mut kinds = String::new();
    for (k, n) in KINDS {
        let _ = write!(kinds, "<option value=\"{k}\">{n}</option>");
    }
    // A new key per rendered form: sending the same form twice acts once.
    let key = uuid::Uuid::new_v4();
    format!(
        "<section aria-labelledby=\"request\"><h2 id=\"request\">Request an action</h2>\
         <form method=\"post\" action=\"{}/actions\">{}<input type=\"hidden\" name=\"key\" value=\"{key}\">\
         <p><label for=\"kind\">Action</label> <select id=\"kind\" name=\"kind\">{kinds}</select></p>{}{}{}{}\
         <p><button type=\"submit\">Request</button></p></form>\
         <p class=\"muted\">A user by email, user principal name or object id; a group by name or id. Resetting passwords, deleting and blocking sign-in wait for an approver unless the settings say otherwise.</p></section>",
        ctx.base(),
        ctx.csrf_field(),
        input("user", "user", "User", true),
        input("group", "group", "Group (add / remove from group)", false),
        input(
            "app",
            "service_principal_id",
            "App's service principal id (assign / remove an app)",
            false
        ),
        input("requested_by", "requested_by", "Requested by", true),
    )
}

fn ctx<'a>(account: &'a str, tenant: &'a str, session: &'a Session) -> Ctx<'a> {
    Ctx {
        account,
        tenant,
        csrf: &session.csrf,
    }
}

async fn list(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    u: Uri,
) -> Page {
    let status = query_value(&u, "status").unwrap_or_default();
    let status = STATUSES
        .iter()
        .find(|(st, _)| *st == status)
        .map_or("", |(st, _)| st);
    let mut q = String::from("limit=50");
    if !status.is_empty() {
        let _ = write!(q, "&status={status}");
    }
    if let Some(c) = query_value(&u, "cursor") {
        let _ = write!(q, "&cursor={}", enc(&c));
    }
    let t = Tenant::resolve(&s.api, &session.caller, &account, &tenant).await?;
    let listing = api::list(State(s.api.clone()), t, uri(&q)).await?.0;
    let listing = serde_json::to_value(&listing).unwrap_or_default();
    let ctx = ctx(&account, &tenant, &session);
    let mut body = String::from("<h1>Actions</h1>");
    body.push_str(&request_form(&ctx));
    let _ = write!(
        body,
        "<h2>Audit trail</h2><form method=\"get\" action=\"{}/actions\"><p><label for=\"status\">Status</label> <select id=\"status\" name=\"status\">",
        ctx.base()
    );
    for (st, n) in STATUSES {
        let sel = if *st == status { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{st}\"{sel}>{n}</option>");
    }
    body.push_str("</select> <button type=\"submit\">Show</button></p></form>");
    let items = listing["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        body.push_str("<p>No actions.</p>");
    } else {
        body.push_str("<table><caption>Actions, newest first</caption><thead><tr><th scope=\"col\">Requested</th><th scope=\"col\">Action</th><th scope=\"col\">Target</th><th scope=\"col\">Requested by</th><th scope=\"col\">Status</th><th scope=\"col\">Decide</th></tr></thead><tbody>");
        for a in &items {
            let _ = write!(
                body,
                "<tr><td><a href=\"{}/actions/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ctx.base(),
                escape(&enc(a["id"].as_str().unwrap_or(""))),
                text(&a["requested_at"]),
                escape(&label_of(a["kind"].as_str().unwrap_or(""))),
                target(a),
                text(&a["requested_by"]),
                status_of(a),
                controls(&ctx, a),
            );
        }
        body.push_str("</tbody></table>");
    }
    let filter = match status {
        "" => String::new(),
        st => format!("status={st}"),
    };
    body.push_str(&next_link(
        &format!("{}/actions", ctx.base()),
        &filter,
        listing["next_cursor"].as_str(),
    ));
    Ok(ctx.page("Actions", "Actions", &body))
}

/// One action's page: what, the target, status, decision, history; with a notice on top and a
/// password reset's temporary password when this answer holds it.
fn action_page(ctx: &Ctx<'_>, a: &Value, notice: Option<&str>, password: Option<&str>) -> String {
    let mut body = String::from("<h1>Action</h1>");
    if let Some(n) = notice {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(n)
        );
    }
    if let Some(p) = password {
        let _ = write!(
            body,
            "<section class=\"warning\" aria-labelledby=\"pw\"><h2 id=\"pw\">Temporary password</h2>\
             <p><code>{}</code></p><p>Shown this once and stored nowhere: hand it to the user now. They must change it at their next sign-in.</p></section>",
            escape(p)
        );
    }
    let _ = write!(
        body,
        "<dl><dt>Action</dt><dd>{}</dd><dt>Target</dt><dd>{}</dd><dt>Status</dt><dd>{}</dd>\
         <dt>Requested by</dt><dd>{} ({})</dd><dt>Requested</dt><dd>{}</dd>",
        escape(&label_of(a["kind"].as_str().unwrap_or(""))),
        target(a),
        status_of(a),
        text(&a["requested_by"]),
        text(&a["origin"]["via"]),
        text(&a["requested_at"]),
    );
    if a["decision"].is_object() {
        let d = &a["decision"];
        let _ = write!(
            body,
            "<dt>Decision</dt><dd>{} by {} at {}{}</dd>",
            if d["approved"] == json!(true) {
                "Approved"
            } else {
                "Rejected"
            },
            text(&d["by"]),
            text(&d["at"]),
            d["comment"]
                .as_str()
                .map(|c| format!(": {}", escape(c)))
                .unwrap_or_default(),
        );
    }
    if let Some(r) = a["graph_request_id"].as_str() {
        let _ = write!(
            body,
            "<dt>Graph request id</dt><dd><code>{}</code></dd>",
            escape(r)
        );
    }
    body.push_str("</dl>");
    body.push_str(&controls(ctx, a));
    body.push_str("<table><caption>History</caption><thead><tr><th scope=\"col\">At</th><th scope=\"col\">Status</th><th scope=\"col\">By</th><th scope=\"col\">Note</th></tr></thead><tbody>");
    for h in a["history"].as_array().cloned().unwrap_or_default() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&h["at"]),
            escape(&label_of(h["status"].as_str().unwrap_or(""))),
            text(&h["by"]),
            text(&h["note"]),
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p><a href=\"{}/actions\">Back to the actions</a></p>",
        ctx.base()
    );
    body
}

/// One action's page as the answer of a form or a link.
fn shown(
    account: &str,
    tenant: &str,
    session: &Session,
    a: &Value,
    notice: Option<&str>,
    password: Option<&str>,
) -> axum::response::Response {
    let ctx = ctx(account, tenant, session);
    ctx.page("Actions", "Action", &action_page(&ctx, a, notice, password))
}

async fn show(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, id)): Path<(String, String, String)>,
) -> Page {
    let t = Tenant::resolve(&s.api, &session.caller, &account, &tenant).await?;
    let a = api::show(
        State(s.api.clone()),
        t,
        Path((account.clone(), tenant.clone(), id)),
    )
    .await?
    .0;
    let a = serde_json::to_value(&a).unwrap_or_default();
    Ok(shown(&account, &tenant, &session, &a, None, None))
}

async fn submit(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant)): Path<(String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let value = |name: &str| {
        field(&fields, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let mut action = serde_json::Map::new();
    action.insert("kind".into(), json!(value("kind").unwrap_or("")));
    action.insert("user".into(), json!(value("user").unwrap_or("")));
    for name in ["group", "service_principal_id"] {
        if let Some(v) = value(name) {
            action.insert(name.into(), json!(v));
        }
    }
    let mut headers = HeaderMap::new();
    if let Some(k) = value("key").and_then(|k| HeaderValue::from_str(k).ok()) {
        headers.insert("idempotency-key", k);
    }
    let t = Tenant::resolve(&s.api, &session.caller, &account, &tenant).await?;
    let resp = api::submit(
        State(s.api.clone()),
        t,
        headers,
        json_bytes(json!({
            "requested_by": value("requested_by").unwrap_or(""),
            "action": action,
        })),
    )
    .await?;
    let answer = body_json(resp).await?;
    let note = match answer["action"]["status"].as_str() {
        Some("pending_approval") => "Requested: it waits for an approver.",
        Some("queued") => "Requested: it runs in a moment (reload to follow it).",
        _ => "Requested.",
    };
    Ok(shown(
        &account,
        &tenant,
        &session,
        &answer["action"],
        Some(note),
        answer["temporary_password"].as_str(),
    ))
}

async fn decide(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let body = json_bytes(json!({
        "by": field(&fields, "by").unwrap_or(""),
        "comment": field(&fields, "comment").filter(|c| !c.trim().is_empty()),
    }));
    let path = Path((account.clone(), tenant.clone(), id));
    let t = Tenant::resolve(&s.api, &session.caller, &account, &tenant).await?;
    let (a, note) = match field(&fields, "decision") {
        Some("reject") => (
            api::reject(State(s.api.clone()), t, path, body).await?.0,
            "Rejected: nothing is done.",
        ),
        _ => (
            api::approve(State(s.api.clone()), t, path, body).await?.0,
            "Approved.",
        ),
    };
    let a = serde_json::to_value(&a).unwrap_or_default();
    Ok(shown(&account, &tenant, &session, &a, Some(note), None))
}

async fn cancel(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let t = Tenant::resolve(&s.api, &session.caller, &account, &tenant).await?;
    let a = api::cancel(
        State(s.api.clone()),
        t,
        Path((account.clone(), tenant.clone(), id)),
        json_bytes(json!({ "by": field(&fields, "by").unwrap_or("") })),
    )
    .await?
    .0;
    let a = serde_json::to_value(&a).unwrap_or_default();
    Ok(shown(
        &account,
        &tenant,
        &session,
        &a,
        Some("Cancelled."),
        None,
    ))
}

async fn run(
    State(s): State<ConsoleState>,
    Extension(session): Extension<Session>,
    Path((account, tenant, id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Page {
    let fields = form_fields(&bytes);
    let t = Tenant::resolve(&s.api, &session.caller, &account, &tenant).await?;
    let resp = api::run(
        State(s.api.clone()),
        t,
        Path((account.clone(), tenant.clone(), id)),
        json_bytes(json!({ "runner": field(&fields, "runner").unwrap_or("") })),
    )
    .await?;
    let answer = body_json(resp).await?;
    Ok(shown(
        &account,
        &tenant,
        &session,
        &answer["action"],
        Some("Run."),
        answer["temporary_password"].as_str(),
    ))
}
