//! Console sessions that any instance of the API can check, and that end.
//!
//! - **Session cookie.** `v1.<payload>.<mac>`: the payload (base64url JSON) says who the
//!   session acts as and when it ends; the MAC is HMAC-SHA256 under the console key. Nothing is
//!   stored server-side, so every Lambda instance (or the one local `serve`) accepts a session
//!   another instance opened, and a session ends at its expiry (`session_ttl`, 8 hours unless
//!   configured) whatever happens to the process.
//! - **CSRF token.** HMAC of the session's random nonce under the same key (another domain tag),
//!   so each session has its own token and a page of one session cannot post for another.
//! - **Sign-in ticket.** What the host product's backend (or an embedded console, with its
//!   JWT) gets from `POST /v1/accounts/{account}/console-sessions`: a random ticket, valid for
//!   `ticket_ttl` (2 minutes unless configured) and once; only its digest is stored
//!   ([`ConsoleTicketStore`]). Opening `/console/login?ticket=...` spends it and opens a session
//!   for that one account.
//!
//! The key: locally a random key per `serve` (sessions end when it stops, as before); on AWS a
//! Secrets Manager secret the template generates, so every instance shares it. Rotating the
//! secret ends every session.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::AccountId;
use entra_sync_core::ports::{Clock, ConsoleTicket, ConsoleTicketStore};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::auth::Caller;

type HmacSha256 = Hmac<Sha256>;

/// How long a console session lasts unless configured.
pub const DEFAULT_SESSION_HOURS: i64 = 8;
/// How long a sign-in ticket stays valid unless configured.
pub const DEFAULT_TICKET_SECONDS: i64 = 120;

/// A signed-in console session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token every state-changing form must carry.
    pub csrf: String,
    /// Who the session acts as (what the API's routes check).
    pub caller: Caller,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// What a session cookie carries (signed, not secret).
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The account, or `None` for every account.
    #[serde(rename = "a")]
    account: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    expires: i64,
    /// Random, per session: the CSRF token is derived from it.
    #[serde(rename = "n")]
    nonce: String,
}

/// Signs and checks console sessions, and mints and spends sign-in tickets.
pub struct ConsoleSessions {
    key: Vec<u8>,
    tickets: Arc<dyn ConsoleTicketStore>,
    clock: Arc<dyn Clock>,
    session_ttl: Duration,
    ticket_ttl: Duration,
}

impl std::fmt::Debug for ConsoleSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSessions")
            .field("session_ttl", &self.session_ttl)
            .field("ticket_ttl", &self.ticket_ttl)
            .finish_non_exhaustive()
    }
}

/// 244 random bits as text (two version-4 UUIDs: the operating system's randomness).
pub(crate) fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The stored form of a ticket.
fn ticket_digest(ticket: &str) -> String {
    hex::encode(Sha256::digest(ticket.as_bytes()))
}

impl ConsoleSessions {
    /// Sessions under `key` (at least 32 bytes of secret material), with the default lifetimes.
    pub fn new(
        key: &[u8],
        tickets: Arc<dyn ConsoleTicketStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        if key.len() < 32 {
            return Err(format!(
                "the console session key is {} bytes; it needs at least 32",
                key.len()
            ));
        }
        Ok(Self::with_key(key.to_vec(), tickets, clock))
    }

    /// Sessions under a new random key: valid while this process runs (the local `serve`).
    pub fn ephemeral(tickets: Arc<dyn ConsoleTicketStore>, clock: Arc<dyn Clock>) -> Self {
        let key = format!("{}{}", random_token(), random_token());
        Self::with_key(key.into_bytes(), tickets, clock)
    }

    fn with_key(key: Vec<u8>, tickets: Arc<dyn ConsoleTicketStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            key,
            tickets,
            clock,
            session_ttl: Duration::hours(DEFAULT_SESSION_HOURS),
            ticket_ttl: Duration::seconds(DEFAULT_TICKET_SECONDS),
        }
    }

    /// [`Self::ephemeral`] with its tickets in memory: the local program and tests.
    pub fn in_memory(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self::ephemeral(
            Arc::new(entra_sync_core::memory_consent::MemoryConsoleTickets::default()),
            clock,
        ))
    }

    /// Sessions that last `ttl` (at least a minute).
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl.max(Duration::minutes(1));
        self
    }

    /// Sign-in tickets that stay valid for `ttl` (at least ten seconds).
    pub fn with_ticket_ttl(mut self, ttl: Duration) -> Self {
        self.ticket_ttl = ttl.max(Duration::seconds(10));
        self
    }

    /// How long a session lasts.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// The HMAC under the console key over `domain`, a NUL, and `data` (the domain keeps a
    /// session's MAC from ever standing for a CSRF token, and back).
    fn hmac(&self, domain: &str, data: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(domain.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac
    }

    fn mac(&self, domain: &str, data: &[u8]) -> Vec<u8> {
        self.hmac(domain, data).finalize().into_bytes().to_vec()
    }

    fn csrf_of(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("console-csrf", nonce.as_bytes()))
    }

    /// A new session for `caller`: the cookie's value and the session.
    pub fn open(&self, caller: &Caller) -> (String, Session) {
        let expires_at = self.clock.now() + self.session_ttl;
        let claims = Claims {
            account: match caller {
                Caller::AllAccounts => None,
                Caller::Account(a) => Some(a.0.clone()),
            },
            expires: expires_at.timestamp(),
            nonce: random_token(),
        };
        // Serialising three plain fields cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let mac = URL_SAFE_NO_PAD.encode(self.mac("console-session", payload.as_bytes()));
        let session = Session {
            csrf: self.csrf_of(&claims.nonce),
            caller: caller.clone(),
            expires_at,
        };
        (format!("v1.{payload}.{mac}"), session)
    }

    /// The session a cookie value stands for: `None` when it is not one of ours (wrong key,
    /// altered, another format) or has ended.
    pub fn check(&self, cookie: &str) -> Option<Session> {
        let mut parts = cookie.split('.');
        let (Some("v1"), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        // Constant time.
        self.hmac("console-session", payload.as_bytes())
            .verify_slice(&mac)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let expires_at = DateTime::from_timestamp(claims.expires, 0)?;
        if expires_at <= self.clock.now() {
            return None;
        }
        Some(Session {
            csrf: self.csrf_of(&claims.nonce),
            caller: match claims.account {
                None => Caller::AllAccounts,
                Some(a) => Caller::Account(AccountId(a)),
            },
            expires_at,
        })
    }

    /// A new sign-in ticket for `account`'s console, and when it stops working. The ticket is
    /// returned once; the store keeps its digest.
    pub async fn mint_ticket(
        &self,
        account: &AccountId,
    ) -> Result<(String, DateTime<Utc>), StoreError> {
        let ticket = random_token();
        let expires_at = self.clock.now() + self.ticket_ttl;
        self.tickets
            .put_console_ticket(&ConsoleTicket {
                digest: ticket_digest(&ticket),
                account_id: account.clone(),
                expires_at,
            })
            .await?;
        Ok((ticket, expires_at))
    }

    /// Spend a ticket: the account its session opens, or `None` (unknown, used, expired).
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Option<AccountId>, StoreError> {
        if ticket.is_empty() || ticket.len() > 256 {
            return Ok(None);
        }
        let taken = self
            .tickets
            .take_console_ticket(&ticket_digest(ticket))
            .await?;
        let now = self.clock.now();
        Ok(taken.filter(|t| t.expires_at > now).map(|t| t.account_id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use entra_sync_core::memory::ManualClock;
    use entra_sync_core::memory_consent::MemoryConsoleTickets;

    fn sessions(clock: Arc<ManualClock>) -> ConsoleSessions {
        ConsoleSessions::new(
            b"0123456789abcdef0123456789abcdef",
            Arc::new(MemoryConsoleTickets::default()),
            clock,
        )
        .unwrap()
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            "2026-06-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        ))
    }

    #[test]
    fn a_session_is_checked_by_any_instance_with_the_key_and_ends_at_its_expiry() {
        let clock = clock();
        let a = sessions(clock.clone());
        let b = sessions(clock.clone());
        let caller = Caller::Account(AccountId("acct-1".into()));
        let (cookie, opened) = a.open(&caller);
        let seen = b.check(&cookie).expect("another instance accepts it");
        assert_eq!(seen.caller, caller);
        assert_eq!(seen.csrf, opened.csrf);
        clock.advance(Duration::hours(DEFAULT_SESSION_HOURS) - Duration::seconds(1));
        assert!(b.check(&cookie).is_some());
        clock.advance(Duration::seconds(1));
        assert!(b.check(&cookie).is_none(), "ended at its expiry");
    }

    #[test]
    fn altered_foreign_and_malformed_cookies_are_refused() {
        let clock = clock();
        let ours = sessions(clock.clone());
        let (cookie, _) = ours.open(&Caller::Account(AccountId("acct-1".into())));
        // The payload rewritten to every account, keeping the MAC.
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                account: None,
                expires: i64::MAX / 2,
                nonce: "n".into(),
            })
            .unwrap(),
        );
        let mac = cookie.rsplit('.').next().unwrap();
        assert!(ours.check(&format!("v1.{forged_claims}.{mac}")).is_none());
        let other = ConsoleSessions::new(
            b"another key of thirty-two bytes!",
            Arc::new(MemoryConsoleTickets::default()),
            clock,
        )
        .unwrap();
        assert!(other.check(&cookie).is_none(), "another key");
        for bad in ["", "v1", "v1..", "v2.a.b", &format!("{cookie}.x"), "x.y.z"] {
            assert!(ours.check(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let s = sessions(clock());
        let (_, one) = s.open(&Caller::AllAccounts);
        let (_, two) = s.open(&Caller::AllAccounts);
        assert_ne!(one.csrf, two.csrf);
    }

    #[tokio::test]
    async fn a_ticket_works_once_and_not_after_it_expires() {
        let clock = clock();
        let s = sessions(clock.clone());
        let account = AccountId("acct-1".into());
        let (ticket, _) = s.mint_ticket(&account).await.unwrap();
        assert_eq!(
            s.redeem_ticket(&ticket).await.unwrap(),
            Some(account.clone())
        );
        assert_eq!(s.redeem_ticket(&ticket).await.unwrap(), None, "spent");
        let (late, expires) = s.mint_ticket(&account).await.unwrap();
        clock.advance(expires - clock.now());
        assert_eq!(s.redeem_ticket(&late).await.unwrap(), None, "expired");
        assert_eq!(s.redeem_ticket("").await.unwrap(), None);
    }

    #[test]
    fn a_short_key_is_refused() {
        let err =
            ConsoleSessions::new(b"short", Arc::new(MemoryConsoleTickets::default()), clock())
                .unwrap_err();
        assert!(err.contains("at least 32"), "{err}");
    }
}
