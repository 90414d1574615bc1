//! Every HTTP surface of entra-sync, as axum routers over the core's services and ports, and the
//! one stack every router is served through.
//!
//! The same routers run in Lambda (`functions/*` wire AWS adapters and serve them with
//! `lambda_http`), in the local program (`entra-sync serve` wires the embedded adapters and serves
//! them with `axum::serve`) and in tests (`tower::ServiceExt::oneshot`). This crate knows no AWS
//! SDK, no Lambda runtime and no Graph client: it sees ports only.
//!
//! # Layout
//!
//! | module | what |
//! |---|---|
//! | [`app()`] ([`stack`]) | what every router shares: fallbacks, request ids, the log line, limits, security headers, the error format |
//! | [`error`] | [`HttpError`], the one error answer: `{"error", "message", "request_id"}` |
//! | [`request_id`] | [`RequestId`] and [`RequestDomain`]: what the platform (or the client) says about the request |
//! | [`json`] | JSON routes: the `Content-Type: application/json` requirement and body errors that name the field |
//! | [`html`] | pages for browsers: escaping and the page frame |
//! | [`api`] | the admin API (`/v1`): connections, settings, imports, sync now, runs, held runs, the mirror, the host product's users |
//! | [`console`] | the admin console (`/console/`): server-rendered pages over the API's routes, with a login token, a session cookie and CSRF tokens |
//! | [`connect`] | the connect routes: admin consent, callback, an account's connections |
//! | [`hooks`] | the HR webhook route: `POST /hooks/{account}/{source}` |
//!
//! The admin API and the admin console become sibling modules of [`connect`] and [`hooks`]
//! (`api`, `console`), each exposing `routes(state) -> Router` to merge and
//! `router(state) -> Router` (its routes through [`app()`]). A binary that serves several
//! merges their `routes` and calls [`app()`] once.
//!
//! # Building a router
//!
//! A route returns `Result<_, HttpError>` (or a page); it never logs its own failure and never
//! builds an error body: the stack renders the error with the request id and writes the one log
//! line of the request, at warn (refused) or error (failed) with the error's detail.

pub mod api;
pub mod connect;
pub mod console;
pub mod error;
pub mod hooks;
pub mod html;
pub mod json;
pub mod request_id;
pub mod stack;

pub use error::HttpError;
pub use request_id::{REQUEST_ID_HEADER, RequestDomain, RequestId};
pub use stack::app;
