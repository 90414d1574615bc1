//! Microsoft Graph + login client for entra-sync: app-only tokens per tenant, users/groups
//! delta paging, bounded retries honouring `Retry-After`, and typed [`DirectoryError`]s.
//!
//! [`GraphClient`] implements the core's [`DirectoryReader`] port, and its
//! [`DirectoryWriter`] port for directory writes (see `write.rs` for the retry and
//! classification rules). The wire-to-model parsing is
//! public ([`parse_users_page`], [`parse_groups_page`], [`user_from_graph_json`],
//! [`group_from_graph_json`]) so other crates turn Graph-shaped JSON into the same model.
//!
//! [`DirectoryError`]: entra_sync_core::error::DirectoryError
//! [`DirectoryReader`]: entra_sync_core::ports::DirectoryReader
//! [`DirectoryWriter`]: entra_sync_core::directory_write::DirectoryWriter

mod client;
mod config;
mod error;
mod parse;
mod retry;
mod token;
mod write;

pub use client::GraphClient;
pub use config::{Cloud, DEFAULT_GROUP_SELECT, DEFAULT_USER_SELECT, GraphConfig, RetryPolicy};
pub use error::ConfigError;
pub use parse::{
    Organization, group_from_graph_json, parse_groups_page, parse_organization, parse_users_page,
    user_from_graph_json,
};
