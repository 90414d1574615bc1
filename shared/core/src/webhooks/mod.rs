//! HR webhooks: signed deliveries from BambooHR, HiBob and any Standard Webhooks sender that
//! start workflows. Pure decisions live in these modules (verification, classification of a
//! request, payload parsing, the mapping of HR events to workflows); the use cases are in
//! [`crate::services::webhooks`]. docs/hr-webhooks.md is the reader's guide.

pub mod contract;
pub mod delivery;
pub mod endpoint;
pub mod mapping;
pub mod memory;
pub mod payload;
pub mod ports;
pub mod review;
pub mod verify;

pub use mapping::HrSettings;

use serde::{Deserialize, Serialize};

/// The HR system behind an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    #[serde(rename = "bamboohr")]
    BambooHr,
    #[serde(rename = "hibob")]
    HiBob,
    /// Any sender that implements Standard Webhooks, with our HR event schema.
    #[serde(rename = "standard")]
    Standard,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::BambooHr, Source::HiBob, Source::Standard];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::BambooHr => "bamboohr",
            Source::HiBob => "hibob",
            Source::Standard => "standard",
        }
    }

    /// The path segment of `POST /hooks/{account}/{source}` (exact, lower-case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
