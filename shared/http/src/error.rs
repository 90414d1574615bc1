//! The one error answer of every route.
//!
//! A route returns an [`HttpError`]; the stack ([`crate::app`]) renders it once as
//! `{"error": "<code>", "message": "<plain words>", "request_id": "<id>"}` and records it once in
//! the request's log line. Answers the framework produces without a route (unknown route, wrong
//! method, body limit, a refused extractor, a panic) get the same body: the stack turns every
//! error status without an [`HttpError`] into one built from the status.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer: its status, a short stable code for programs, a message for people, and a
/// detail for the log only (never sent).
#[derive(Clone, Debug)]
pub struct HttpError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: Cow<'static, str>,
    pub(crate) detail: Option<String>,
    /// The route already answered with its own body (an HTML page): log it, do not render it.
    pub(crate) rendered: bool,
}

impl HttpError {
    /// An error with its own code and message. The message is shown to the caller: plain words,
    /// never a secret and never the caller's input quoted back.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            detail: None,
            rendered: false,
        }
    }

    /// The standard answer for a status (what the framework's own answers become).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = standard(status);
        HttpError::new(status, code, message)
    }

    /// What the log line records about the error (the typed error's text); never sent. Ids and
    /// error kinds only: no secret, no body.
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Attach the error to a response the route rendered itself (an HTML page for a browser):
    /// the body stays, the log line records the error.
    pub fn on_page(mut self, mut page: Response) -> Response {
        self.rendered = true;
        page.extensions_mut().insert(self);
        page
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for HttpError {}

/// The status alone; the stack renders the body (it knows the request id).
impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The code and message of a status nobody described more precisely.
fn standard(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            ("invalid_request", "The request is not valid.")
        }
        StatusCode::UNAUTHORIZED => ("unauthorized", "The request needs valid credentials."),
        StatusCode::FORBIDDEN => ("forbidden", "The request is not allowed."),
        StatusCode::NOT_FOUND => ("not_found", "There is nothing at this address."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This address does not accept this method; the Allow header lists the ones it does.",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "The request took too long to arrive."),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "The request body is larger than this address accepts.",
        ),
        StatusCode::URI_TOO_LONG => (
            "uri_too_long",
            "The address (path and query) is longer than this service accepts.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "Send the body as JSON, with the header Content-Type: application/json.",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "too_many_requests",
            "Too many requests. Wait a little and try again.",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            "The request headers are larger than this service accepts.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "The service is not available right now. Try again in a few minutes.",
        ),
        s if s.is_server_error() => (
            "internal",
            "Something went wrong on our side. Try again later.",
        ),
        _ => ("invalid_request", "The request was refused."),
    }
}
