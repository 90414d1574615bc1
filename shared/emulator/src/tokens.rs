//! Opaque `$skiptoken` / `$deltatoken` values.
//!
//! A token is `base64url(mac || json)`, where `mac` is the first 8 bytes of
//! SHA-256(key || json) under a key drawn when the emulator starts (and saved with its state).
//! Anything that does not decode, does not verify or does not parse is refused with a 400 by
//! the caller; tokens are never trusted to be well-formed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::model::{Kind, Select};

/// Which stream a delta token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TokKind {
    #[serde(rename = "u")]
    Users,
    #[serde(rename = "g")]
    Groups,
}

impl From<Kind> for TokKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::User => TokKind::Users,
            Kind::Group => TokKind::Groups,
        }
    }
}

/// Where a round is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Round {
    /// Full read of every live object; its deltaLink continues from `upto` (the change
    /// sequence when the round started).
    #[serde(rename = "i")]
    Initial { upto: u64 },
    /// Changes after `since`; its deltaLink continues from the sequence at its last page.
    #[serde(rename = "c")]
    Incremental { since: u64 },
}

/// Resume position inside a round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Cursor {
    #[serde(rename = "s")]
    Start,
    /// Initial rounds: after this object id.
    #[serde(rename = "i")]
    Id(String),
    /// Incremental rounds: after this change-log sequence.
    #[serde(rename = "q")]
    Seq(u64),
    /// Initial groups round, in the middle of a group: continue its members after `member`.
    #[serde(rename = "gi")]
    GroupId { id: String, member: String },
    /// Incremental groups round, in the middle of a group (found at `seq` in the change log):
    /// continue its membership changes after `member_seq`.
    #[serde(rename = "gq")]
    GroupSeq {
        id: String,
        seq: u64,
        member_seq: u64,
    },
}

/// What a delta link points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Pos {
    /// A deltaLink: the next round starts after `since`.
    #[serde(rename = "d")]
    Delta { since: u64 },
    /// A nextLink: page `page` of a round.
    #[serde(rename = "p")]
    Page {
        round: Round,
        page: u32,
        cursor: Cursor,
    },
}

/// Everything a delta round needs, carried by its links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeltaToken {
    /// Tenant fingerprint (a token only works for the tenant that issued it).
    #[serde(rename = "t")]
    pub(crate) tenant: u64,
    #[serde(rename = "k")]
    pub(crate) kind: TokKind,
    #[serde(rename = "sp")]
    pub(crate) sel_props: u64,
    #[serde(rename = "sr")]
    pub(crate) sel_rel: bool,
    #[serde(rename = "sx")]
    pub(crate) sel_explicit: bool,
    /// `$filter=id eq ...` ids, sorted and deduplicated.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub(crate) filter: Option<Vec<String>>,
    /// Emulator time (ms) when this token was issued.
    #[serde(rename = "a")]
    pub(crate) at: u64,
    #[serde(rename = "p")]
    pub(crate) pos: Pos,
}

impl DeltaToken {
    pub(crate) fn select(&self) -> Select {
        Select {
            props: self.sel_props,
            rel: self.sel_rel,
            explicit: self.sel_explicit,
        }
    }
}

/// A plain-list nextLink position (`/users`, `/groups`, `/groups/{id}/members`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListToken {
    #[serde(rename = "t")]
    pub(crate) tenant: u64,
    /// The path the token was issued for.
    #[serde(rename = "r")]
    pub(crate) path: String,
    /// Continue after this id.
    #[serde(rename = "i")]
    pub(crate) after: String,
}

/// Signs and verifies tokens with a per-emulator key.
pub(crate) struct TokenCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCodec(***)")
    }
}

impl Default for TokenCodec {
    /// A fresh random key.
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }
}

impl TokenCodec {
    /// A codec with a known key (restored state).
    pub(crate) fn with_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    pub(crate) fn key(&self) -> [u8; 32] {
        self.key
    }

    fn mac(&self, json: &[u8]) -> u64 {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(json);
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    pub(crate) fn encode<T: Serialize>(&self, value: &T) -> String {
        let json = serde_json::to_vec(value).unwrap_or_default();
        let mac = self.mac(&json);
        let mut buf = Vec::with_capacity(json.len() + 8);
        buf.extend_from_slice(&mac.to_be_bytes());
        buf.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// `None` for anything that is not a token this emulator issued.
    pub(crate) fn decode<T: DeserializeOwned>(&self, token: &str) -> Option<T> {
        let raw = URL_SAFE_NO_PAD.decode(token.trim().as_bytes()).ok()?;
        if raw.len() < 9 {
            return None;
        }
        let (mac, json) = raw.split_at(8);
        let mac = u64::from_be_bytes(mac.try_into().ok()?);
        if self.mac(json) != mac {
            return None;
        }
        serde_json::from_slice(json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let codec = TokenCodec::default();
        let tok = DeltaToken {
            tenant: 7,
            kind: TokKind::Users,
            sel_props: 3,
            sel_rel: true,
            sel_explicit: true,
            filter: None,
            at: 1,
            pos: Pos::Page {
                round: Round::Incremental { since: 4 },
                page: 2,
                cursor: Cursor::GroupSeq {
                    id: "g".into(),
                    seq: 9,
                    member_seq: 3,
                },
            },
        };
        let s = codec.encode(&tok);
        assert_eq!(codec.decode::<DeltaToken>(&s), Some(tok));
        let mut bad = s.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(codec.decode::<DeltaToken>(&bad), None);
        assert_eq!(codec.decode::<DeltaToken>("garbage!!"), None);
        assert_eq!(codec.decode::<DeltaToken>(""), None);
        assert_eq!(TokenCodec::default().decode::<DeltaToken>(&s), None);
    }
}
