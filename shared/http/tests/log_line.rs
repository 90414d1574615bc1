//! The request's one log line. A test binary of its own: tracing caches per call site whether
//! anyone listens, and a test without a subscriber running beside this one (on another thread)
//! could make the call sites of the log line look unheard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use entra_sync_http::{HttpError, REQUEST_ID_HEADER, app, json};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    name: String,
}

async fn create(body: Bytes) -> Result<StatusCode, HttpError> {
    json::from_slice::<Item>(&body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("The request body is not valid: {e}."),
        )
    })?;
    Ok(StatusCode::CREATED)
}

fn routes() -> Router {
    Router::new()
        .route("/items", post(create))
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("the route failed");
                }
                "unreachable"
            }),
        )
}

async fn status(req: Request<Body>) -> StatusCode {
    app(routes()).oneshot(req).await.unwrap().status()
}

/// Collects what the log writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn each_request_logs_one_line_without_body_query_or_headers() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let ok = Request::get("/items/7?state=STATE-SECRET&code=CODE-SECRET")
        .header(header::AUTHORIZATION, "Bearer TOKEN-SECRET")
        .header(REQUEST_ID_HEADER, "req-ok")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(ok).await, StatusCode::OK);
    let refused = Request::post("/items")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, "session=COOKIE-SECRET")
        .header(REQUEST_ID_HEADER, "req-refused")
        .body(Body::from(r#"{"name": ["BODY-SECRET"]}"#))
        .unwrap();
    assert_eq!(status(refused).await, StatusCode::BAD_REQUEST);
    let failed = Request::get("/panic")
        .header(REQUEST_ID_HEADER, "req-failed")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(failed).await, StatusCode::INTERNAL_SERVER_ERROR);

    let lines = logs.lines();
    assert_eq!(lines.len(), 3, "one line per request: {}", logs.text());
    let field = |i: usize, name: &str| lines[i]["fields"][name].clone();
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(field(0, "message"), "request served");
    assert_eq!(field(0, "method"), "GET");
    assert_eq!(field(0, "route"), "/items/{id}");
    assert_eq!(field(0, "status"), 200);
    assert_eq!(field(0, "request_id"), "req-ok");
    assert!(field(0, "latency_ms").is_u64());

    assert_eq!(lines[1]["level"], "WARN");
    assert_eq!(field(1, "message"), "request refused");
    assert_eq!(field(1, "code"), "invalid_request");
    assert_eq!(field(1, "request_id"), "req-refused");

    assert_eq!(lines[2]["level"], "ERROR");
    assert_eq!(field(2, "message"), "request failed");
    assert_eq!(field(2, "error"), "the route panicked");

    let text = logs.text();
    for secret in [
        "STATE-SECRET",
        "CODE-SECRET",
        "TOKEN-SECRET",
        "COOKIE-SECRET",
        "BODY-SECRET",
        "/items/7",
    ] {
        assert!(!text.contains(secret), "{secret} in the log: {text}");
    }
}
