//! entra-sync core: the pure domain. No SDK, HTTP, SQLite or Lambda types here (rule of
//! direction); adapters implement [`ports`] and functions call [`services`].

pub mod cursor;
pub mod error;
pub mod events;
pub mod memory;
pub mod model;
pub mod page;
pub mod plan;
pub mod ports;
pub mod run;
pub mod services;
