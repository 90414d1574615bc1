//! Emulator configuration: page sizes, token lifetimes, latency, throttle budgets and the
//! switches that make the emulator misbehave in the ways real Graph is allowed to.

use std::time::Duration;

/// A token bucket: `units` per `window`, refilled continuously, holding at most `burst`
/// (default: `units`).
///
/// Graph's identity limits for a large tenant are 8,000 RU per 10 s per app and tenant for
/// reads and 3,000 writes per 150 s (20 writes/s) per app and tenant. A request that costs
/// more than what is left gets a 429 with a `Retry-After` of the whole seconds needed to
/// refill enough (at least 1) and is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleBudget {
    /// Refill amount per `window`.
    pub units: u32,
    /// Refill period for `units`.
    pub window: Duration,
    /// Bucket capacity (what a burst after a quiet spell may use); `None` = `units`.
    pub burst: Option<u32>,
}

impl ThrottleBudget {
    /// `units` per `window`, the whole amount available at once.
    pub fn new(units: u32, window: Duration) -> Self {
        Self {
            units,
            window,
            burst: None,
        }
    }

    /// The same refill rate with a bucket of `burst` units.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Graph's write limit per app and tenant: 3,000 writes per 150 s (20/s sustained), here
    /// with a burst of 20 (one second's worth).
    pub fn graph_writes() -> Self {
        Self::new(3_000, Duration::from_secs(150)).with_burst(20)
    }

    /// The bucket capacity.
    pub fn capacity(&self) -> u32 {
        self.burst.unwrap_or(self.units)
    }
}

/// The application permissions the emulated app registration asks for: what an approved
/// `.default` admin consent grants, and what a new tenant starts with.
pub const DEFAULT_APP_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Organization.Read.All",
    "AuditLog.Read.All",
    "Application.Read.All",
    "GroupMember.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "User.RevokeSessions.All",
    "User.EnableDisableAccount.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.DeleteRestore.All",
];

/// How the emulator serves requests. `EmulatorConfig::default()` gives Graph-like behaviour
/// with no throttling, no latency and no paging quirks.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Objects per users-delta page (Graph sends about 200).
    pub user_page_size: usize,
    /// Maximum groups per groups-delta page.
    pub group_page_size: usize,
    /// Maximum `members@delta` entries per groups-delta page in total. A group with more
    /// members is split: the same group object is repeated on the next page(s) with the next
    /// slice of its members.
    pub member_slice: usize,
    /// Age after which a delta token (and a skip token) is refused with
    /// `400 syncStateNotFound` (Graph: 7 days for directory objects).
    pub delta_token_ttl: Duration,
    /// Added to every request before it is answered (changeable with `Emulator::set_latency`).
    pub latency: Duration,
    /// Per-tenant read budget (GET requests to Graph); `None` = unlimited.
    pub read_budget: Option<ThrottleBudget>,
    /// Per-tenant write budget (POST/PATCH/DELETE requests to Graph); `None` = unlimited.
    /// `ThrottleBudget::graph_writes()` is Graph's limit.
    pub write_budget: Option<ThrottleBudget>,
    /// The application permissions of the app registration (see `DEFAULT_APP_PERMISSIONS`).
    /// Access tokens list the tenant's granted ones in their `roles` claim; Graph writes
    /// check them.
    pub app_permissions: Vec<String>,
    /// `expires_in` of issued access tokens.
    pub token_lifetime_secs: u64,
    /// When `Some(n)`, every n-th page of a delta round (counting from 0, page 0 excluded) is
    /// an empty `value` with a nextLink that resumes at the same position.
    pub empty_page_every: Option<usize>,
    /// When `Some(n)`, roughly one object in `n` (chosen by a hash of its id) is sent twice on
    /// the same delta page: Graph allows the same object to repeat within a round.
    pub duplicate_every: Option<usize>,
    /// Size of the request-log ring buffer.
    pub request_log_capacity: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            user_page_size: 200,
            group_page_size: 100,
            member_slice: 500,
            delta_token_ttl: Duration::from_secs(7 * 24 * 3600),
            latency: Duration::ZERO,
            read_budget: None,
            write_budget: None,
            app_permissions: DEFAULT_APP_PERMISSIONS
                .iter()
                .map(|p| (*p).to_string())
                .collect(),
            token_lifetime_secs: 3599,
            empty_page_every: None,
            duplicate_every: None,
            request_log_capacity: 10_000,
        }
    }
}
