//! An in-process emulator of Microsoft Graph v1.0 and the Microsoft identity platform's
//! token endpoint, for tests, the local demo and benchmarks.
//!
//! - Login: `POST {login_base_url}/{tenant}/oauth2/v2.0/token` (client credentials, secret in
//!   the form or HTTP Basic), `GET {login_base_url}/{tenant}[/v2.0]/adminconsent`.
//! - Graph: `/v1.0/organization`, `/v1.0/users/delta`, `/v1.0/groups/delta` (and the
//!   `microsoft.graph.delta` spellings), `/v1.0/users`, `/v1.0/groups`, `/v1.0/users/{id}`,
//!   `/v1.0/users/{id}/manager`, `/v1.0/groups/{id}`, `/v1.0/groups/{id}/members`,
//!   `/v1.0/groups/{id}/transitiveMembers`, `/v1.0/subscribedSkus`,
//!   `/v1.0/directory/deletedItems/microsoft.graph.user`, `/v1.0/directory/deletedItems/{id}`,
//!   `/v1.0/servicePrincipals/{id}`, `/v1.0/users/{id}/appRoleAssignments`, and the writes
//!   (PATCH/DELETE users, member `$ref` add/remove, `members@odata.bind`,
//!   `revokeSignInSessions`, app role assignments POST/DELETE, deleted-items
//!   restore/purge).
//!
//! # Writes
//! Access tokens are JWT-shaped; their `roles` claim lists the application permissions the
//! tenant granted (`EmulatorConfig::app_permissions`, the v2 admin consent's `scope`, or
//! `TenantHandle::set_granted_permissions`). Each write is charged to the tenant's write
//! budget (429 with `Retry-After` and `x-ms-throttle-*` headers when spent), checked against
//! the caller's token (403 `Authorization_RequestDenied`; password resets also need
//! `TenantHandle::set_user_admin_role`), refused for groups Graph will not change
//! (distribution lists and mail-enabled security groups 400, dynamic groups 403,
//! on-premises synced groups 400), and counted per kind and tenant
//! (`RequestCounters::writes_by_op`, `TenantCounters::writes`).
//!
//! Tenants are synthetic and seeded (`TenantSpec`); `TenantHandle` mutates them so delta
//! rounds have something to report; `FaultHandle` injects throttling, outages, dropped
//! connections and token resets. The wire semantics reproduced here (delta rounds, tokens,
//! throttling, error bodies) are Microsoft Graph's as its documentation describes them.
//!
//! # Delta semantics
//! - Each tenant has a change sequence; every mutation stamps the objects (and membership
//!   edges) it touches. A `$deltatoken` carries (stream, `$select`, `$filter`, `since`,
//!   issue time); a `$skiptoken` also carries the round and a cursor. Tokens are signed
//!   base64url JSON: anything altered or foreign is a 400, never a panic.
//! - Initial round: every live object in id order (groups with their full direct member
//!   list, split into slices of at most `member_slice` entries per page). Its deltaLink
//!   continues from the sequence at which the round started, so changes made during the
//!   round are reported (again) by the next round.
//! - Incremental round: objects whose *selected* properties (or `manager` / `members`, when
//!   selected) changed after `since`, with all selected properties at their current value
//!   (`Prefer: return=minimal`: changed ones only); soft-deleted users as
//!   `@removed: {reason: "changed"}`, purged users and deleted groups as `"deleted"`; groups
//!   carry only the membership adds and removals since `since`. An object changed while the
//!   round runs is served again later in the same round (a legal replay), so nothing is lost.
//! - deltaLinks and nextLinks can be replayed: the same link gives the same changes plus
//!   anything newer. Tokens older than `delta_token_ttl` (emulator clock) get
//!   `400 syncStateNotFound`.
//! - `manager@delta`: present whenever a returned user has a manager (`[{"@odata.type",
//!   "id"}]`); a removal entry (`"@removed": {"reason": "deleted"}`) only in incremental
//!   rounds where the manager was cleared.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! let info = emu.add_tenant(&TenantSpec::new(42, 1_000, 50));
//! let token_url = format!("{}/{}/oauth2/v2.0/token", emu.login_base_url(), info.tenant_id);
//! let delta_url = format!("{}/v1.0/users/delta", emu.graph_base_url());
//! # let _ = (token_url, delta_url);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

mod apps;
mod churn;
mod clock;
mod config;
mod counters;
mod delta;
mod directory;
mod errors;
mod faults;
mod generator;
mod model;
mod persist;
mod routes;
mod server;
mod state;
mod throttle;
mod tokens;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use apps::{NewServicePrincipal, ServicePrincipalInfo};
pub use churn::ChurnSummary;
pub use config::{DEFAULT_APP_PERMISSIONS, EmulatorConfig, ThrottleBudget};
pub use counters::{RequestCounters, RequestRecord, Route, TenantCounters, WriteCount, WriteOp};
pub use directory::{
    DirectorySnapshot, GroupKind, GroupPatch, Membership, MutationError, NewGroup, NewUser, Patch,
    UserPatch,
};
pub use faults::{Fault, FaultHandle, FaultKind, RouteMatch};
pub use generator::TenantSpec;
pub use state::{AppCredentials, ConsentOutcome, TokenBlock};

use directory::Directory;
use server::{ConnHandle, KillableListener};
use state::{DomainInfo, Inner, TenantState};

/// Identity of a generated tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantInfo {
    /// GUID.
    pub tenant_id: String,
    pub name: String,
    /// `{name}.onmicrosoft.com` (made unique within the emulator).
    pub initial_domain: String,
    /// The first custom domain of the spec, else the initial domain.
    pub default_domain: String,
    /// Every verified domain (initial first).
    pub verified_domains: Vec<String>,
}

#[derive(Debug)]
struct ServerTask {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A running emulator (cheap to clone; all clones share the server and the tenants).
#[derive(Clone, Debug)]
pub struct Emulator {
    inner: Arc<Inner>,
    server: Arc<ServerTask>,
}

impl Emulator {
    /// Binds `127.0.0.1:0`, spawns the server task and returns once it accepts connections.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve(config, listener, tokens::TokenCodec::default()).await
    }

    /// Starts an emulator with the tenants (and their change history), token key and clock
    /// offset saved by `save_state`, so links issued before the save keep working. It binds
    /// the saved port when that port is free (links are absolute URLs), else any port.
    pub async fn start_from_state(
        config: EmulatorConfig,
        path: &std::path::Path,
    ) -> std::io::Result<Emulator> {
        let state = persist::read(path)?;
        let key = state.token_key()?;
        let listener = match TcpListener::bind(("127.0.0.1", state.port)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
        };
        let emu = Self::serve(config, listener, tokens::TokenCodec::with_key(key)).await?;
        persist::restore_into(&emu.inner, state);
        Ok(emu)
    }

    /// Saves every tenant (with its change history), the token key and the clock offset
    /// as JSON, for `start_from_state`. Faults, counters and issued access tokens are not
    /// saved.
    pub fn save_state(&self, path: &std::path::Path) -> std::io::Result<()> {
        let state = persist::capture(&self.inner);
        persist::write(&state, path)
    }

    /// Saves the state to `path` now (as `save_state`) and again after every change: tenant
    /// added, directory mutation (through a `TenantHandle` or Graph's write routes), consent
    /// granted or revoked, clock moved. Each save is atomic (temporary file, then a rename), so
    /// a process killed at any moment, even with SIGKILL, leaves the last change on disk and
    /// `start_from_state` continues from it. A save that fails later is logged.
    pub fn persist_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        persist::persist_to(&self.inner, path)
    }

    async fn serve(
        config: EmulatorConfig,
        listener: TcpListener,
        codec: tokens::TokenCodec,
    ) -> std::io::Result<Emulator> {
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(config, AppCredentials::default(), addr, codec));
        let app = routes::router(inner.clone()).into_make_service_with_connect_info::<ConnHandle>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(KillableListener::new(listener), app).with_graceful_shutdown(
                async move {
                    let _ = stop_rx.await;
                },
            );
            if let Err(err) = serve.await {
                tracing::warn!(error = %err, "emulator server stopped with an error");
            }
        });
        Ok(Emulator {
            inner,
            server: Arc::new(ServerTask {
                stop: Mutex::new(Some(stop_tx)),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// `http://127.0.0.1:PORT`; clients call `{graph}/v1.0/...`.
    pub fn graph_base_url(&self) -> String {
        self.inner.base_url()
    }

    /// `http://127.0.0.1:PORT/login`; clients call `{login}/{tenant}/oauth2/v2.0/token`.
    pub fn login_base_url(&self) -> String {
        format!("{}/login", self.inner.base_url())
    }

    /// The one registered multi-tenant app.
    pub fn app(&self) -> AppCredentials {
        self.inner.app.clone()
    }

    /// Generates a seeded tenant (consent granted) and registers it. Generation is CPU work
    /// (about a second for 100k users in a release build); call it from `spawn_blocking` if
    /// that matters. Two tenants never share an id or an initial domain (a clash gets a
    /// number: `contoso2.onmicrosoft.com`); a custom domain used by two tenants resolves to
    /// the first one on the login side.
    pub fn add_tenant(&self, spec: &TenantSpec) -> TenantInfo {
        let base = generator::initial_domain_for(&spec.name);
        let initial = {
            let tenants = self.inner.tenants_read();
            let mut candidate = base.clone();
            let mut n = 1;
            while tenants.by_domain.contains_key(&candidate) {
                n += 1;
                candidate = base.replacen(".onmicrosoft.com", &format!("{n}.onmicrosoft.com"), 1);
            }
            candidate
        };
        let generated = generator::generate(spec, &initial);
        let mut domains = vec![DomainInfo {
            name: initial.clone(),
            is_initial: true,
            is_default: spec.domains.is_empty(),
        }];
        for (i, d) in spec.domains.iter().enumerate() {
            if d.eq_ignore_ascii_case(&initial)
                || domains.iter().any(|x| x.name.eq_ignore_ascii_case(d))
            {
                continue;
            }
            domains.push(DomainInfo {
                name: d.to_ascii_lowercase(),
                is_initial: false,
                is_default: i == 0,
            });
        }
        if !domains.iter().any(|d| d.is_default) {
            domains[0].is_default = true;
        }
        let mut tenants = self.inner.tenants_write();
        let mut tenant_id = generated.tenant_id.clone();
        let mut n = 0u64;
        while tenants.by_id.contains_key(&tenant_id) {
            n += 1;
            let h = state::fingerprint(&format!("{}#{n}", generated.tenant_id));
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&h.to_be_bytes());
            bytes[8..].copy_from_slice(&h.rotate_left(17).to_le_bytes());
            tenant_id = uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string();
        }
        let state = TenantState::new(
            tenant_id.clone(),
            spec.name.clone(),
            domains.clone(),
            spec.premium,
            generated.dir,
            &self.inner.config,
            self.inner.clock.now_ms(),
        );
        let info = tenant_info(&state);
        let state = Arc::new(state);
        for d in &domains {
            tenants
                .by_domain
                .entry(d.name.to_ascii_lowercase())
                .or_insert_with(|| tenant_id.clone());
        }
        tenants.by_id.insert(tenant_id.clone(), state);
        tenants.order.push(tenant_id);
        drop(tenants);
        self.inner.changed();
        info
    }

    /// A handle to mutate and inspect one tenant.
    pub fn tenant(&self, tenant_id: &str) -> Option<TenantHandle> {
        let tenant = self.inner.resolve_tenant(tenant_id)?;
        Some(TenantHandle {
            inner: self.inner.clone(),
            tenant,
        })
    }

    /// Ids of every tenant, in the order they were added.
    pub fn tenant_ids(&self) -> Vec<String> {
        self.inner.tenants_read().order.clone()
    }

    /// Identity of one tenant (by id or verified domain).
    pub fn tenant_info(&self, tenant_id: &str) -> Option<TenantInfo> {
        self.inner
            .resolve_tenant(tenant_id)
            .map(|t| tenant_info(&t))
    }

    /// Every tenant, in the order they were added.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        let tenants = self.inner.tenants_read();
        tenants
            .order
            .iter()
            .filter_map(|id| tenants.by_id.get(id))
            .map(|t| tenant_info(t))
            .collect()
    }

    /// The tenant an admin-consent request to `organizations`/`common` signs in to
    /// (default: the last tenant added).
    pub fn set_sign_in_tenant(&self, tenant_id: &str) {
        self.inner.tenants_write().sign_in_tenant = Some(tenant_id.to_string());
        self.inner.changed();
    }

    /// Request totals since start or the last reset.
    pub fn counters(&self) -> RequestCounters {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Zeroes the counters and empties the request log.
    pub fn reset_counters(&self) {
        *self
            .inner
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = RequestCounters::default();
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The most recent requests (bounded by `EmulatorConfig::request_log_capacity`).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .to_vec()
    }

    /// The value of every access token the token endpoint issued (the most recent 10,000,
    /// oldest first; revoked and expired ones included), so tests can check that no token
    /// value ends up in logs, errors or files.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.issued_tokens()
    }

    /// Fault injection.
    pub fn faults(&self) -> FaultHandle {
        FaultHandle {
            book: self.inner.faults.clone(),
        }
    }

    /// Changes the latency added to every request.
    pub fn set_latency(&self, d: Duration) {
        self.inner.set_latency(d);
    }

    /// Moves the emulator's clock forward (ages delta tokens and access tokens, refills
    /// throttle buckets) without sleeping.
    pub fn advance_clock(&self, d: Duration) {
        self.inner.clock.advance(d);
        self.inner.changed();
    }

    /// Stops the server (waits up to 5 s for open requests, then aborts).
    pub async fn shutdown(self) {
        let stop = self
            .server
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self
            .server
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

fn tenant_info(t: &TenantState) -> TenantInfo {
    TenantInfo {
        tenant_id: t.id.clone(),
        name: t.name.clone(),
        initial_domain: t.initial_domain().to_string(),
        default_domain: t.default_domain().to_string(),
        verified_domains: t.domains.iter().map(|d| d.name.clone()).collect(),
    }
}

/// Mutation and inspection of one tenant. Every mutation takes the next value of the
/// tenant's change sequence, so the next delta round reports it.
#[derive(Clone, Debug)]
pub struct TenantHandle {
    inner: Arc<Inner>,
    tenant: Arc<TenantState>,
}

impl TenantHandle {
    fn now(&self) -> String {
        self.inner
            .clock
            .wall()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn dir(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.tenant.write()
    }

    /// After a mutation (its write lock released): saves the emulator if it persists itself.
    fn changed<T>(&self, result: T) -> T {
        self.inner.changed();
        result
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.tenant.id
    }

    /// The tenant's identity and domains.
    pub fn info(&self) -> TenantInfo {
        tenant_info(&self.tenant)
    }

    /// Creates a user; returns its id. Entries of `user.properties` that are not valid
    /// supported properties are ignored (use `try_create_user` to get an error instead).
    pub fn create_user(&self, user: NewUser) -> String {
        let now = self.now();
        let mut dir = self.dir();
        let id = match dir.create_user(&user, &now) {
            Ok(id) => id,
            Err(_) => {
                let mut clean = user;
                clean.properties.retain(|k, v| {
                    model::Kind::User.prop_index(k).is_some_and(|i| {
                        let def = &model::Kind::User.props()[i];
                        !def.read_only && model::Pv::from_patch(def.ty, v).is_some()
                    })
                });
                dir.create_user(&clean, &now).unwrap_or_default()
            }
        };
        drop(dir);
        self.changed(id)
    }

    /// Creates a user; fails on an invalid `properties` entry.
    pub fn try_create_user(&self, user: NewUser) -> Result<String, MutationError> {
        let now = self.now();
        let r = self.dir().create_user(&user, &now);
        self.changed(r)
    }

    /// Patches a live user (Graph property names; `null` clears). Read-only properties
    /// (`id`, `createdDateTime`) and unknown names are refused.
    pub fn update_user(&self, id: &str, patch: UserPatch) -> Result<(), MutationError> {
        let r = self.dir().update_user(id, &patch);
        self.changed(r)
    }

    /// Enables or disables a user (delta: an ordinary update of `accountEnabled`).
    pub fn set_account_enabled(&self, id: &str, enabled: bool) -> Result<(), MutationError> {
        let mut p = Patch::new();
        p.insert("accountEnabled".into(), serde_json::Value::Bool(enabled));
        let r = self.dir().update_user(id, &p);
        self.changed(r)
    }

    /// Sets or clears a user's manager (delta: `manager@delta`).
    pub fn set_manager(&self, id: &str, manager_id: Option<&str>) -> Result<(), MutationError> {
        let r = self.dir().set_manager(id, manager_id);
        self.changed(r)
    }

    /// Soft delete: the user goes to deleted items, leaves every group (removals show in
    /// group deltas), loses its manager and its reports lose it; user delta shows
    /// `@removed: {reason: "changed"}`.
    pub fn delete_user(&self, id: &str) -> Result<(), MutationError> {
        let r = self.dir().delete_user(id);
        self.changed(r)
    }

    /// Restores a soft-deleted user; delta shows the plain object. Memberships are not
    /// restored.
    pub fn restore_user(&self, id: &str) -> Result<(), MutationError> {
        let r = self.dir().restore_user(id);
        self.changed(r)
    }

    /// Hard delete (of a live or soft-deleted user); delta shows `reason: "deleted"`.
    pub fn purge_user(&self, id: &str) -> Result<(), MutationError> {
        let r = self.dir().purge_user(id);
        self.changed(r)
    }

    /// Creates a group; returns its id.
    pub fn create_group(&self, group: NewGroup) -> String {
        let now = self.now();
        let r = self.dir().create_group(&group, &now);
        self.changed(r)
    }

    /// Patches a live group.
    pub fn update_group(&self, id: &str, patch: GroupPatch) -> Result<(), MutationError> {
        let r = self.dir().update_group(id, &patch);
        self.changed(r)
    }

    /// Deletes a group permanently (delta: `reason: "deleted"`); it leaves its parent groups.
    pub fn delete_group(&self, id: &str) -> Result<(), MutationError> {
        let r = self.dir().delete_group(id);
        self.changed(r)
    }

    /// Adds a direct member (user, or group for nesting). Works on every group kind (the
    /// HTTP API refuses distribution, mail-enabled security, dynamic and on-premises synced
    /// groups).
    pub fn add_member(&self, group_id: &str, member_id: &str) -> Result<(), MutationError> {
        let r = self.dir().add_member(group_id, member_id);
        self.changed(r)
    }

    /// Removes a direct member.
    pub fn remove_member(&self, group_id: &str, member_id: &str) -> Result<(), MutationError> {
        let r = self.dir().remove_member(group_id, member_id);
        self.changed(r)
    }

    /// Applies `n` seeded random changes (see `ChurnSummary` for the kinds).
    pub fn random_churn(&self, seed: u64, n: usize) -> ChurnSummary {
        let now = self.now();
        let r = churn::random_churn(&mut self.dir(), seed, n, &now);
        self.changed(r)
    }

    /// The live directory. Users: the JSON a delta page returns with every property
    /// selected (never-set properties omitted, cleared ones `null`), without
    /// `manager@delta`, plus `"managerId": "<id>"` or `"managerId": null`. Groups: every
    /// property, without `members@delta`. Memberships: direct edges. All sorted by id.
    pub fn snapshot(&self) -> DirectorySnapshot {
        self.tenant.read().snapshot()
    }

    /// One live user as in `snapshot()`.
    pub fn user(&self, id: &str) -> Option<serde_json::Value> {
        let dir = self.tenant.read();
        dir.users
            .get(id)
            .filter(|u| u.e.is_live())
            .map(Directory::user_snapshot_json)
    }

    /// Ids of live users, sorted.
    pub fn user_ids(&self) -> Vec<String> {
        let dir = self.tenant.read();
        dir.users
            .values()
            .filter(|u| u.e.is_live())
            .map(|u| u.e.id.to_string())
            .collect()
    }

    /// Ids of live groups, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let dir = self.tenant.read();
        dir.groups
            .values()
            .filter(|g| g.e.is_live())
            .map(|g| g.e.id.to_string())
            .collect()
    }

    /// Direct members of a live group as (member id, `"user"`/`"group"`).
    pub fn members(&self, group_id: &str) -> Option<Vec<(String, String)>> {
        let dir = self.tenant.read();
        let grp = dir.groups.get(group_id).filter(|g| g.e.is_live())?;
        Some(
            grp.members
                .iter()
                .map(|(id, e)| {
                    let t = match e.kind {
                        model::Kind::User => "user",
                        model::Kind::Group => "group",
                    };
                    (id.to_string(), t.to_string())
                })
                .collect(),
        )
    }

    /// The id of the live user with this UPN (case-insensitive).
    pub fn user_id_by_upn(&self, upn: &str) -> Option<String> {
        self.tenant
            .read()
            .user_by_upn(upn)
            .map(|u| u.e.id.to_string())
    }

    /// Numbers of live users and groups.
    pub fn counts(&self) -> (usize, usize) {
        self.tenant.read().live_counts()
    }

    /// The tenant's change sequence (how many changes were recorded).
    pub fn change_seq(&self) -> u64 {
        self.tenant.read().seq
    }

    /// Removes the app's service principal: the token endpoint answers 401 `invalid_client`
    /// AADSTS7000229 for this tenant only, and tokens already issued stop working.
    pub fn revoke_consent(&self) {
        self.tenant.consent.store(false, Ordering::SeqCst);
        self.inner.revoke_tokens(&self.tenant.id);
        self.inner.changed();
    }

    /// Grants consent again.
    pub fn grant_consent(&self) {
        self.tenant.consent.store(true, Ordering::SeqCst);
        self.inner.changed();
    }

    /// Whether consent is currently granted.
    pub fn has_consent(&self) -> bool {
        self.tenant.consent.load(Ordering::SeqCst)
    }

    /// Partial revocation: tokens are still issued, but every Graph call answers 403
    /// `Authorization_RequestDenied` while `false`.
    pub fn set_app_roles_granted(&self, granted: bool) {
        self.tenant.roles.store(granted, Ordering::SeqCst);
        self.inner.changed();
    }

    /// Entra ID P1/P2: without it, `signInActivity` requests fail with 403.
    pub fn set_premium(&self, premium: bool) {
        self.tenant.premium.store(premium, Ordering::SeqCst);
        self.inner.changed();
    }

    /// Whether the app's service principal holds the User Administrator directory role.
    /// Password resets (`PATCH /users/{id}` with `passwordProfile`) need it besides the
    /// `User-PasswordProfile.ReadWrite.All` permission; without it (the default) they get
    /// 403 `Authorization_RequestDenied`, as in Entra.
    pub fn set_user_admin_role(&self, held: bool) {
        self.tenant
            .password_reset_allowed
            .store(held, Ordering::SeqCst);
        self.inner.changed();
    }

    /// Whether the app's service principal holds the User Administrator role.
    pub fn has_user_admin_role(&self) -> bool {
        self.tenant.password_reset_allowed.load(Ordering::SeqCst)
    }

    /// The application permissions the tenant granted (sorted): what tokens issued from now
    /// on carry in their `roles` claim, and what Graph writes are checked against.
    pub fn granted_permissions(&self) -> Vec<String> {
        self.tenant.granted()
    }

    /// Replaces the granted application permissions, as an admin changing the consent
    /// would. Like Entra, tokens already issued keep the roles they were issued with; a
    /// client sees the change with its next token.
    pub fn set_granted_permissions<I, S>(&self, permissions: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenant
            .set_granted(permissions.into_iter().map(Into::into));
        self.inner.changed();
    }

    /// Makes every access token already issued for this tenant invalid (401), so clients
    /// fetch a new one (with the current `roles`). Consent stays as it is.
    pub fn expire_tokens(&self) {
        self.inner.revoke_tokens(&self.tenant.id);
    }

    /// Creates an enterprise application (service principal) with app roles.
    pub fn create_service_principal(&self, sp: NewServicePrincipal) -> ServicePrincipalInfo {
        self.dir().apps.create(&sp)
    }

    /// A user's app role assignments as `GET /users/{id}/appRoleAssignments` lists them.
    pub fn app_role_assignments(&self, user_id: &str) -> Vec<serde_json::Value> {
        let dir = self.tenant.read();
        dir.apps
            .of_user(user_id)
            .iter()
            .map(|a| dir.apps.assignment_json(a, None))
            .collect()
    }

    /// Whether the user is in deleted items (soft-deleted, restorable).
    pub fn is_soft_deleted(&self, id: &str) -> bool {
        self.tenant
            .read()
            .users
            .get(id)
            .is_some_and(|u| u.e.life == directory::Life::SoftDeleted)
    }

    /// One live group as in `snapshot()`.
    pub fn group(&self, id: &str) -> Option<serde_json::Value> {
        let dir = self.tenant.read();
        dir.groups.get(id).filter(|g| g.e.is_live()).map(|g| {
            serde_json::Value::Object(g.e.json(
                model::Kind::Group,
                &model::Select::all(model::Kind::Group, false),
                None,
                false,
            ))
        })
    }

    /// What the admin-consent endpoint answers for this tenant.
    pub fn set_consent_outcome(&self, outcome: ConsentOutcome) {
        *self
            .tenant
            .consent_outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = outcome;
    }

    /// Makes the token endpoint refuse this tenant for a policy reason (`None` lifts it).
    /// Tokens already issued stop working too, as after a revocation.
    pub fn set_token_block(&self, block: Option<TokenBlock>) {
        *self
            .tenant
            .token_block
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = block;
        if block.is_some() {
            self.inner.revoke_tokens(&self.tenant.id);
        }
    }
}
