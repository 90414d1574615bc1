//! Fault injection: scripted faults (`inject`) and seeded random ones (`inject_random`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::counters::Route;

/// Which requests a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Any,
    /// `POST {login}/{tenant}/oauth2/v2.0/token`.
    Token,
    /// `/v1.0/users/delta` (both spellings).
    UsersDelta,
    /// `/v1.0/groups/delta` (both spellings).
    GroupsDelta,
    /// `/v1.0/organization`.
    Organization,
    /// Any request whose path starts with this (e.g. `/v1.0/groups/`).
    PathPrefix(String),
}

impl RouteMatch {
    fn matches(&self, route: Route, path: &str) -> bool {
        match self {
            RouteMatch::Any => true,
            RouteMatch::Token => route == Route::Token,
            RouteMatch::UsersDelta => route == Route::UsersDelta,
            RouteMatch::GroupsDelta => route == Route::GroupsDelta,
            RouteMatch::Organization => route == Route::Organization,
            RouteMatch::PathPrefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// What happens to a faulted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with `Retry-After: retry_after_secs` (and `x-ms-throttle-scope`).
    Throttle { retry_after_secs: u32 },
    /// `status` (503, 504, 500...) with an optional `Retry-After`.
    Unavailable {
        status: u16,
        retry_after_secs: Option<u32>,
    },
    /// The TCP connection is closed without any response.
    DropConnection,
    /// Extra delay, then the request is served normally.
    Latency(Duration),
    /// The request's delta/skip token is treated as expired: 400 `syncStateNotFound`.
    /// Only requests that carry a `$deltatoken` or `$skiptoken` match.
    ExpireDeltaTokens,
    /// 410 Gone with `Location` = the initial delta URL. Token-bearing delta requests only.
    ResyncGone,
    /// 400 with code `resyncRequired`. Token-bearing delta requests only.
    ResyncRequired,
}

impl FaultKind {
    /// Faults that only make sense on a delta request that carries a token.
    pub(crate) fn needs_delta_token(&self) -> bool {
        matches!(
            self,
            FaultKind::ExpireDeltaTokens | FaultKind::ResyncGone | FaultKind::ResyncRequired
        )
    }
}

/// A scripted fault: the requests matching `route` are counted; the first `after` pass, the
/// next `times` get `kind`, then the fault is spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub route: RouteMatch,
    pub kind: FaultKind,
    pub times: u32,
    pub after: u32,
}

impl Fault {
    /// Applies once, to the next matching request.
    pub fn new(route: RouteMatch, kind: FaultKind) -> Self {
        Self {
            route,
            kind,
            times: 1,
            after: 0,
        }
    }

    /// Applies to `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Lets the first `n` matching requests through.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    seen: u32,
    fired: u32,
}

#[derive(Debug)]
struct RandomFaults {
    rng: ChaCha8Rng,
    probability: f64,
    kinds: Vec<FaultKind>,
}

#[derive(Debug, Default)]
struct Book {
    armed: Vec<Armed>,
    random: Option<RandomFaults>,
}

/// The request facts faults are matched on.
#[derive(Debug)]
pub(crate) struct FaultProbe<'a> {
    pub(crate) route: Route,
    pub(crate) path: &'a str,
    /// A delta request carrying a `$deltatoken` or `$skiptoken`.
    pub(crate) has_delta_token: bool,
}

/// Shared fault state.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    book: Mutex<Book>,
}

impl FaultBook {
    /// The fault (if any) this request gets; consumes one use of it.
    pub(crate) fn take(&self, probe: &FaultProbe<'_>) -> Option<FaultKind> {
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hit = None;
        for (i, armed) in book.armed.iter_mut().enumerate() {
            if !armed.fault.route.matches(probe.route, probe.path) {
                continue;
            }
            if armed.fault.kind.needs_delta_token() && !probe.has_delta_token {
                continue;
            }
            if armed.seen < armed.fault.after {
                armed.seen += 1;
                continue;
            }
            if armed.fired < armed.fault.times {
                armed.fired += 1;
                hit = Some((i, armed.fault.kind.clone()));
                break;
            }
        }
        if let Some((i, kind)) = hit {
            if book.armed[i].fired >= book.armed[i].fault.times {
                book.armed.remove(i);
            }
            return Some(kind);
        }
        let random = book.random.as_mut()?;
        if !random.rng.random_bool(random.probability.clamp(0.0, 1.0)) {
            return None;
        }
        let kind = random.kinds.choose(&mut random.rng)?.clone();
        if kind.needs_delta_token() && !probe.has_delta_token {
            return None;
        }
        Some(kind)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut book)
    }
}

/// Handle to inject and clear faults (cheap to clone).
#[derive(Clone, Debug)]
pub struct FaultHandle {
    pub(crate) book: Arc<FaultBook>,
}

impl FaultHandle {
    /// Arms a scripted fault (faults are checked in the order they were injected).
    pub fn inject(&self, fault: Fault) {
        self.book.with(|b| {
            b.armed.push(Armed {
                fault,
                seen: 0,
                fired: 0,
            });
        });
    }

    /// From now on, every request gets one of `kinds` with `probability`, drawn from a
    /// `ChaCha8Rng` seeded with `seed` (token-only kinds skip requests without a token).
    pub fn inject_random(&self, seed: u64, probability: f64, kinds: Vec<FaultKind>) {
        self.book.with(|b| {
            b.random = Some(RandomFaults {
                rng: ChaCha8Rng::seed_from_u64(seed),
                probability,
                kinds,
            });
        });
    }

    /// Removes every scripted and random fault.
    pub fn clear(&self) {
        self.book.with(|b| {
            b.armed.clear();
            b.random = None;
        });
    }

    /// Scripted faults not yet spent.
    pub fn pending(&self) -> usize {
        self.book.with(|b| b.armed.len())
    }
}
