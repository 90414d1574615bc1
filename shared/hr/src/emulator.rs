//! A small emulator of the HR API endpoint we call: HiBob's `POST /v1/people/{id}`, on
//! 127.0.0.1, with service-user Basic authentication, the nested field layout HiBob answers
//! with, and injectable failures (the next N requests answer a given status). Tests and the
//! local program point [`crate::HiBobConfig::base_url`] at it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

/// An employee as the emulator stores it.
#[derive(Clone, Debug, Default)]
pub struct EmulatedEmployee {
    pub id: String,
    pub email: Option<String>,
    pub employee_id_in_company: Option<String>,
    pub start_date: Option<String>,
    pub department: Option<String>,
    pub reports_to_email: Option<String>,
    pub termination_date: Option<String>,
}

#[derive(Default)]
struct Inner {
    employees: HashMap<String, EmulatedEmployee>,
    /// (service user id, token) pairs accepted.
    users: Vec<(String, String)>,
    fail_next: Vec<u16>,
    requests: u64,
}

/// The emulator's state, shared with the running server.
#[derive(Clone, Default)]
pub struct HiBobEmulator {
    inner: Arc<Mutex<Inner>>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HiBobEmulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_service_user(&self, id: &str, token: &str) {
        lock(&self.inner).users.push((id.into(), token.into()));
    }

    pub fn put_employee(&self, e: EmulatedEmployee) {
        lock(&self.inner).employees.insert(e.id.clone(), e);
    }

    /// The next `times` requests answer `status` (429, 500, ...).
    pub fn fail_next(&self, status: u16, times: usize) {
        lock(&self.inner)
            .fail_next
            .extend(std::iter::repeat_n(status, times));
    }

    pub fn requests(&self) -> u64 {
        lock(&self.inner).requests
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/people/{id}", post(read_employee))
            .with_state(self.clone())
    }

    /// Serve on 127.0.0.1 (a free port); returns the base URL. The server stops with the runtime.
    pub async fn start(&self) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let handle = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "hibob emulator stopped");
            }
        });
        Ok((format!("http://{addr}"), handle))
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(b64) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((id, token)) = text.split_once(':') else {
        return false;
    };
    inner.users.iter().any(|(i, t)| i == id && t == token)
}

async fn read_employee(
    State(emu): State<HiBobEmulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut inner = lock(&emu.inner);
    inner.requests += 1;
    if !inner.fail_next.is_empty() {
        let status = inner.fail_next.remove(0);
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected failure",
        );
    }
    if !authorized(&inner, &headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body must be JSON");
    };
    let wanted: Vec<String> = req
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let Some(e) = inner.employees.get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "Employee not found");
    };
    let want = |f: &str| wanted.is_empty() || wanted.iter().any(|w| w == f);
    let val = |v: Option<String>| v.map_or(Value::Null, Value::String);
    // Fields nested by their dotted path (`root.` fields at the top), as HiBob answers.
    let mut out = serde_json::Map::new();
    let mut work = serde_json::Map::new();
    let mut internal = serde_json::Map::new();
    if want("root.id") {
        out.insert("id".into(), Value::String(e.id.clone()));
    }
    if want("root.email") {
        out.insert("email".into(), val(e.email));
    }
    if want("work.employeeIdInCompany") {
        work.insert("employeeIdInCompany".into(), val(e.employee_id_in_company));
    }
    if want("work.startDate") {
        work.insert("startDate".into(), val(e.start_date));
    }
    if want("work.department") {
        work.insert("department".into(), val(e.department));
    }
    if want("work.reportsTo.email") {
        work.insert(
            "reportsTo".into(),
            json!({ "email": val(e.reports_to_email) }),
        );
    }
    if want("internal.terminationDate") {
        internal.insert("terminationDate".into(), val(e.termination_date));
    }
    if !work.is_empty() {
        out.insert("work".into(), Value::Object(work));
    }
    if !internal.is_empty() {
        out.insert("internal".into(), Value::Object(internal));
    }
    let out = Value::Object(out);
    axum::Json(out).into_response()
}
