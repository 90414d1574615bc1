//! The connect function: the host product asks for an admin-consent URL for one of its
//! accounts, the admin consents, Microsoft calls back, and the directory is stored as
//! Connected. Also lists, reconnects and disconnects an account's connections.
//!
//! [`handler::router`] is the whole HTTP surface; `main.rs` serves it with `lambda_http`, the
//! local program (`entra-sync serve`) with `axum::serve`, tests with `tower::ServiceExt::oneshot`.

pub mod config;
pub mod directory;
pub mod handler;
pub mod page;
pub mod parse;

pub use config::ConnectConfig;
pub use directory::GraphTenantDirectory;
pub use handler::{AppState, router};

#[cfg(all(test, feature = "lambda"))]
mod tests;
