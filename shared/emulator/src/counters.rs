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

/// What a Graph write request asked for (decided from method, path and body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    /// `POST /groups/{id}/members/$ref`.
    AddMember,
    /// `PATCH /groups/{id}` with `members@odata.bind`.
    AddMembers,
    /// `DELETE /groups/{id}/members/{id}/$ref`.
    RemoveMember,
    /// `PATCH /groups/{id}` with properties only.
    UpdateGroup,
    /// `PATCH /users/{id}` with `accountEnabled: false`.
    BlockSignIn,
    /// `PATCH /users/{id}` with `accountEnabled: true`.
    UnblockSignIn,
    /// `PATCH /users/{id}` with `passwordProfile`.
    ResetPassword,
    /// `PATCH /users/{id}` with other properties.
    UpdateUser,
    /// `POST /users/{id}/revokeSignInSessions`.
    RevokeSessions,
    /// `DELETE /users/{id}` (soft delete).
    DeleteUser,
    /// `POST /directory/deletedItems/{id}/restore`.
    RestoreUser,
    /// `DELETE /directory/deletedItems/{id}` (permanent).
    PurgeUser,
    /// `POST /users/{id}/appRoleAssignments`.
    AssignAppRole,
    /// `DELETE /users/{id}/appRoleAssignments/{id}`.
    RemoveAppRole,
    /// Any other POST/PATCH/DELETE.
    Other,
}

/// Requests of one write kind: all of them, and those answered with a 2xx.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteCount {
    pub requests: u64,
    pub succeeded: u64,
}

/// Per-tenant counts (tenant known once the request is authenticated).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TenantCounters {
    pub requests: u64,
    pub users_delta: u64,
    pub groups_delta: u64,
    pub throttled_429: u64,
    /// Graph writes of this tenant by kind.
    pub writes: BTreeMap<WriteOp, WriteCount>,
}

impl TenantCounters {
    /// Write requests of `op` (any status).
    pub fn write_requests(&self, op: WriteOp) -> u64 {
        self.writes.get(&op).map_or(0, |c| c.requests)
    }

    /// Write requests of `op` answered with a 2xx.
    pub fn writes_succeeded(&self, op: WriteOp) -> u64 {
        self.writes.get(&op).map_or(0, |c| c.succeeded)
    }
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
    /// Graph writes by kind, all tenants.
    pub writes_by_op: BTreeMap<WriteOp, WriteCount>,
    pub per_tenant: BTreeMap<String, TenantCounters>,
}

impl RequestCounters {
    /// Write requests of `op` (any status), all tenants.
    pub fn write_requests(&self, op: WriteOp) -> u64 {
        self.writes_by_op.get(&op).map_or(0, |c| c.requests)
    }

    /// Write requests of `op` answered with a 2xx, all tenants.
    pub fn writes_succeeded(&self, op: WriteOp) -> u64 {
        self.writes_by_op.get(&op).map_or(0, |c| c.succeeded)
    }

    /// The counts of one tenant (zero when it sent nothing).
    pub fn tenant(&self, tenant_id: &str) -> TenantCounters {
        self.per_tenant.get(tenant_id).cloned().unwrap_or_default()
    }

    pub(crate) fn record(
        &mut self,
        route: Route,
        status: u16,
        tenant: Option<&str>,
        faulted: bool,
        write: Option<WriteOp>,
    ) {
        let ok = (200..300).contains(&status);
        let bump = |map: &mut BTreeMap<WriteOp, WriteCount>, op: WriteOp| {
            let c = map.entry(op).or_default();
            c.requests += 1;
            if ok {
                c.succeeded += 1;
            }
        };
        if let Some(op) = write {
            bump(&mut self.writes_by_op, op);
        }
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
            if let Some(op) = write {
                bump(&mut tc.writes, op);
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
