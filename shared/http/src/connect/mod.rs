//! The connect routes: the host product asks for an admin-consent URL for one of its accounts,
//! the admin consents, Microsoft calls back, and the directory is stored as Connected. Also
//! lists, reconnects and disconnects an account's connections.
//!
//! [`routes`] are the routes alone (to merge with others); [`router`] serves them through the
//! stack. The connect function serves [`router`] with `lambda_http`, the local program
//! (`entra-sync serve`) merges [`routes`] with its own page and serves them with `axum::serve`.

pub mod config;
pub mod parse;
mod routes;

pub use config::{CALLBACK_PATH, ConnectConfig, RedirectError};
pub use routes::{
    ConnectState, ConnectionList, ConsentLink, PermissionReader, router, routes, status_of,
};

#[cfg(test)]
mod tests;
