//! The stack every router is served through, on a small router of its own: every status the
//! routers can produce comes in the one error format with the request id, the request id comes
//! from the request, and every answer carries the security headers. (The log line has its own
//! test binary, tests/log_line.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::middleware;
use axum::response::Html;
use axum::routing::{get, post};
use entra_sync_http::json::require_json;
use entra_sync_http::stack::{DEFAULT_MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URI_BYTES};
use entra_sync_http::{HttpError, REQUEST_ID_HEADER, RequestId, app, json};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    name: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Paging {
    limit: u32,
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
    let json_routes = Router::new()
        .route("/items", post(create).get(|| async { "[]" }))
        .route_layer(middleware::from_fn(require_json));
    Router::new()
        .route("/page", get(|| async { Html("<p>hello</p>") }))
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route(
            "/paged",
            get(|Query(p): Query<Paging>| async move { p.limit.to_string() }),
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
        .route(
            "/request-id",
            get(|id: RequestId| async move { id.to_string() }),
        )
        .merge(json_routes)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The one error format: exactly these three fields, and the request id is the header's.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "{}",
            self.text
        );
        let v = self.json();
        let fields: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["error", "message", "request_id"], "{v}");
        assert_eq!(v["error"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(
            v["request_id"].as_str(),
            self.headers[REQUEST_ID_HEADER].to_str().ok(),
            "{v}"
        );
    }
}

async fn send(req: Request<Body>) -> Answer {
    let resp = app(routes()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn unknown_route_is_a_404_in_the_error_format() {
    send(get_req("/nothing/here"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn wrong_method_is_a_405_in_the_error_format_with_allow() {
    let a = send(Request::delete("/page").body(Body::empty()).unwrap()).await;
    a.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let allow = a.headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn body_over_the_limit_is_a_413_in_the_error_format() {
    let big = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    // Announced by Content-Length: refused before the route reads anything.
    let mut req = post_json("/items", big.clone());
    req.headers_mut().insert(
        header::CONTENT_LENGTH,
        big.len().to_string().parse().unwrap(),
    );
    send(req)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Not announced (no Content-Length, as a chunked body): refused when reading passes it.
    send(post_json("/items", big))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn too_long_address_is_a_414_and_too_large_headers_a_431() {
    let long = format!("/items?{}", "a".repeat(MAX_URI_BYTES));
    send(get_req(&long))
        .await
        .assert_error(StatusCode::URI_TOO_LONG, "uri_too_long");
    let req = Request::get("/page")
        .header("x-big", "b".repeat(MAX_HEADER_BYTES))
        .body(Body::empty())
        .unwrap();
    send(req).await.assert_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    );
}

#[tokio::test]
async fn json_routes_need_the_json_content_type() {
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = Request::post("/items");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let a = send(req.body(Body::from(r#"{"name":"x"}"#)).unwrap()).await;
        a.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    // Reads need no content type; JSON is accepted.
    assert_eq!(send(get_req("/items")).await.status, StatusCode::OK);
    let a = send(post_json("/items", r#"{"name":"x"}"#)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

#[tokio::test]
async fn json_body_errors_name_the_field() {
    let a = send(post_json("/items", r#"{"name": 5}"#)).await;
    a.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        a.json()["message"],
        "The request body is not valid: name: invalid type: integer, expected a string."
    );
}

#[tokio::test]
async fn framework_rejections_of_path_and_query_use_the_error_format() {
    let a = send(get_req("/items/not-a-number")).await;
    a.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        !a.text.contains("not-a-number"),
        "the input is not quoted back"
    );
    send(get_req("/paged?limit=many"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(send(get_req("/paged?limit=5")).await.text, "5");
}

#[tokio::test]
async fn a_panicking_route_is_a_500_in_the_error_format() {
    let a = send(get_req("/panic")).await;
    a.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!a.text.contains("the route failed"));
}

#[tokio::test]
async fn request_id_comes_from_the_platform_then_the_header_then_is_new() {
    // The platform's (an extension set by the function's wiring) wins over the client's header.
    let mut req = Request::get("/request-id")
        .header(REQUEST_ID_HEADER, "client-id-1")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(RequestId::new("Fq1pYjd8DoEEMbA=").unwrap());
    let a = send(req).await;
    assert_eq!(a.text, "Fq1pYjd8DoEEMbA=");
    assert_eq!(a.headers[REQUEST_ID_HEADER], "Fq1pYjd8DoEEMbA=");

    // The client's header, when it is acceptable, also in the error body.
    let req = Request::get("/nothing")
        .header(REQUEST_ID_HEADER, "client-id-1")
        .body(Body::empty())
        .unwrap();
    let a = send(req).await;
    assert_eq!(a.headers[REQUEST_ID_HEADER], "client-id-1");
    assert_eq!(a.json()["request_id"], "client-id-1");

    // Not acceptable (too long, or not printable): a new id instead.
    for bad in ["x".repeat(129), "has space".to_owned()] {
        let req = Request::get("/request-id")
            .header(REQUEST_ID_HEADER, bad.as_str())
            .body(Body::empty())
            .unwrap();
        let a = send(req).await;
        assert_ne!(a.text, bad);
        assert!(uuid::Uuid::parse_str(&a.text).is_ok(), "{}", a.text);
        assert_eq!(a.headers[REQUEST_ID_HEADER].to_str().unwrap(), a.text);
    }
    // None at all: new, and different each time.
    let (a, b) = (
        send(get_req("/request-id")).await,
        send(get_req("/request-id")).await,
    );
    assert_ne!(a.text, b.text);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    for req in [get_req("/page"), get_req("/items"), get_req("/nothing")] {
        let a = send(req).await;
        let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("script-src"),
            "no script source at all: {csp}"
        );
        assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(a.headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
    }
}
