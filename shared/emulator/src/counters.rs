//! Request counters and the request log.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use axum::http::Method;

/// The emulator's routes, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Token,
    AdminConsent,
    Organization,
    UsersDelta,
    GroupsDelta,
    UsersList,
    GroupsList,
    MembersList,
    SubscribedSkus,
    /// POST / PATCH / DELETE on Graph.
    Write,
    Other,
}

impl Route {
    /// Classifies a request by method and path.
    pub(crate) fn classify(method: &Method, path: &str) -> Route {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segs.as_slice() {
            ["login", _, "oauth2", "v2.0", "token"] => Route::Token,
            ["login", _, "adminconsent"] | ["login", _, "v2.0", "adminconsent"] => {
                Route::AdminConsent
            }
            ["v1.0", ..] if *method != Method::GET => Route::Write,
            ["v1.0", "organization"] => Route::Organization,
            ["v1.0", "users", "delta" | "microsoft.graph.delta"] => Route::UsersDelta,
            ["v1.0", "groups", "delta" | "microsoft.graph.delta"] => Route::GroupsDelta,
            ["v1.0", "users"] => Route::UsersList,
            ["v1.0", "groups"] => Route::GroupsList,
            ["v1.0", "groups", _, "members" | "transitiveMembers", ..] => Route::MembersList,
            ["v1.0", "subscribedSkus"] => Route::SubscribedSkus,
            _ => Route::Other,
        }
    }
}

/// Per-tenant counts (tenant known once the request is authenticated).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TenantCounters {
    pub requests: u64,
    pub users_delta: u64,
    pub groups_delta: u64,
    pub throttled_429: u64,
}

/// Totals since start (or the last `reset_counters`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounters {
    pub requests: u64,
    pub token: u64,
    pub admin_consent: u64,
    pub organization: u64,
    pub users_delta: u64,
    pub groups_delta: u64,
    pub users_list: u64,
    pub groups_list: u64,
    pub members_list: u64,
    pub subscribed_skus: u64,
    pub writes: u64,
    pub other: u64,
    /// Responses with status 429 (budget or injected).
    pub throttled_429: u64,
    /// Requests that got an injected fault.
    pub injected_faults: u64,
    pub per_tenant: BTreeMap<String, TenantCounters>,
}

impl RequestCounters {
    pub(crate) fn record(
        &mut self,
        route: Route,
        status: u16,
        tenant: Option<&str>,
        faulted: bool,
    ) {
        self.requests += 1;
        let slot = match route {
            Route::Token => &mut self.token,
            Route::AdminConsent => &mut self.admin_consent,
            Route::Organization => &mut self.organization,
            Route::UsersDelta => &mut self.users_delta,
            Route::GroupsDelta => &mut self.groups_delta,
            Route::UsersList => &mut self.users_list,
            Route::GroupsList => &mut self.groups_list,
            Route::MembersList => &mut self.members_list,
            Route::SubscribedSkus => &mut self.subscribed_skus,
            Route::Write => &mut self.writes,
            Route::Other => &mut self.other,
        };
        *slot += 1;
        if status == 429 {
            self.throttled_429 += 1;
        }
        if faulted {
            self.injected_faults += 1;
        }
        if let Some(t) = tenant {
            let tc = self.per_tenant.entry(t.to_string()).or_default();
            tc.requests += 1;
            match route {
                Route::UsersDelta => tc.users_delta += 1,
                Route::GroupsDelta => tc.groups_delta += 1,
                _ => {}
            }
            if status == 429 {
                tc.throttled_429 += 1;
            }
        }
    }
}

/// One served request. Never contains secrets (request bodies are not recorded).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    /// Time since the emulator started (tokio clock; `advance_clock` not included), taken
    /// when the request arrived.
    pub at: Duration,
    pub method: String,
    pub path_and_query: String,
    pub status: u16,
    pub route: Route,
    /// The tenant, when the request was authenticated (or named one on the login side).
    pub tenant: Option<String>,
    pub request_id: String,
    /// The `Retry-After` header sent, if any.
    pub retry_after: Option<u32>,
}

/// Bounded ring buffer of requests.
#[derive(Debug)]
pub(crate) struct RequestLog {
    cap: usize,
    items: VecDeque<RequestRecord>,
}

impl RequestLog {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            items: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, r: RequestRecord) {
        if self.items.len() >= self.cap {
            self.items.pop_front();
        }
        self.items.push_back(r);
    }

    pub(crate) fn to_vec(&self) -> Vec<RequestRecord> {
        self.items.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }
}
