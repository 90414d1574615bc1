//! Shared emulator state: tenants, issued access tokens, counters, log, faults.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use crate::clock::Clock;
use crate::config::EmulatorConfig;
use crate::counters::{RequestCounters, RequestLog};
use crate::directory::Directory;
use crate::faults::FaultBook;
use crate::throttle::{Bucket, Usage};
use crate::tokens::TokenCodec;

/// The credentials of the one multi-tenant app registered in the emulator.
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .finish()
    }
}

impl Default for AppCredentials {
    /// Fixed credentials, so a demo that stored them keeps working across restarts.
    fn default() -> Self {
        Self {
            client_id: "5e1f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3".to_string(),
            client_secret: "emu8Q~entra-sync-emulator-secret".to_string(),
        }
    }
}

/// What the simulated admin does on the admin-consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConsentOutcome {
    /// `?admin_consent=True&tenant=...&state=...`; consent becomes granted.
    #[default]
    Approve,
    /// `?error=permission_denied&error_description=The+admin+canceled+the+request`.
    Cancel,
    /// `?error=access_denied&error_description=AADSTS65004...`.
    Decline,
    /// `?admin_consent=True&error=consent_required&error_description=AADSTS65004...`.
    DenyWithAdminConsentTrue,
    /// A tenant policy requires an admin to approve the app ("Need admin approval"):
    /// `?error=access_denied&error_description=AADSTS90094...`.
    ApprovalRequired,
    /// The person who signed in is not allowed to grant the permissions:
    /// `?error=access_denied&error_description=AADSTS90093...`.
    NotAdmin,
    /// Consent granted, but the callback lacks the `tenant` parameter.
    MissingTenant,
}

/// Why the token endpoint refuses a consented tenant (a policy, not a missing consent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenBlock {
    /// `400 invalid_grant` AADSTS53003: blocked by Conditional Access.
    ConditionalAccess,
    /// `400 unauthorized_client` AADSTS7000112: the app is disabled in the tenant.
    AppDisabled,
}

/// One verified domain of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DomainInfo {
    pub(crate) name: String,
    pub(crate) is_initial: bool,
    pub(crate) is_default: bool,
}

/// A tenant: identity, consent flags, budgets and its directory.
#[derive(Debug)]
pub(crate) struct TenantState {
    pub(crate) id: String,
    pub(crate) fingerprint: u64,
    pub(crate) name: String,
    pub(crate) domains: Vec<DomainInfo>,
    pub(crate) consent: AtomicBool,
    /// App roles granted: when false, tokens are issued but Graph answers 403.
    pub(crate) roles: AtomicBool,
    pub(crate) premium: AtomicBool,
    /// The app's service principal holds a directory role that allows password resets (User
    /// Administrator); without it, `passwordProfile` writes get 403 even with the permission.
    pub(crate) password_reset_allowed: AtomicBool,
    /// Application permissions granted by the tenant's consent, sorted; tokens issued for the
    /// tenant carry them in their `roles` claim.
    granted: RwLock<Vec<String>>,
    pub(crate) consent_outcome: Mutex<ConsentOutcome>,
    pub(crate) token_block: Mutex<Option<TokenBlock>>,
    pub(crate) dir: RwLock<Directory>,
    read_bucket: Mutex<Option<Bucket>>,
    write_bucket: Mutex<Option<Bucket>>,
}

impl TenantState {
    pub(crate) fn new(
        id: String,
        name: String,
        domains: Vec<DomainInfo>,
        premium: bool,
        dir: Directory,
        config: &EmulatorConfig,
        now_ms: u64,
    ) -> Self {
        Self {
            fingerprint: fingerprint(&id),
            id,
            name,
            domains,
            consent: AtomicBool::new(true),
            roles: AtomicBool::new(true),
            premium: AtomicBool::new(premium),
            password_reset_allowed: AtomicBool::new(false),
            granted: RwLock::new(normalized(config.app_permissions.iter().cloned())),
            consent_outcome: Mutex::new(ConsentOutcome::Approve),
            token_block: Mutex::new(None),
            dir: RwLock::new(dir),
            read_bucket: Mutex::new(config.read_budget.map(|b| Bucket::new(b, now_ms))),
            write_bucket: Mutex::new(config.write_budget.map(|b| Bucket::new(b, now_ms))),
        }
    }

    /// The granted application permissions, sorted.
    pub(crate) fn granted(&self) -> Vec<String> {
        self.granted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the granted permissions (tokens issued afterwards carry them).
    pub(crate) fn set_granted(&self, permissions: impl IntoIterator<Item = String>) {
        *self.granted.write().unwrap_or_else(PoisonError::into_inner) = normalized(permissions);
    }

    /// The object id of the app's service principal in this tenant (the token's `oid`).
    pub(crate) fn app_principal_id(&self, client_id: &str) -> String {
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{}/{client_id}", self.id).as_bytes(),
        )
        .to_string()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.dir.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Directory> {
        self.dir.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `cost` RU from the read or write bucket.
    pub(crate) fn take_budget(
        &self,
        write: bool,
        cost: u32,
        now_ms: u64,
    ) -> Result<Option<Usage>, u32> {
        let bucket = if write {
            &self.write_bucket
        } else {
            &self.read_bucket
        };
        let mut guard = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            None => Ok(None),
            Some(b) => b.try_take(cost, now_ms).map(Some),
        }
    }

    pub(crate) fn initial_domain(&self) -> &str {
        self.domains
            .iter()
            .find(|d| d.is_initial)
            .map_or("", |d| d.name.as_str())
    }

    pub(crate) fn default_domain(&self) -> &str {
        self.domains
            .iter()
            .find(|d| d.is_default)
            .map_or("", |d| d.name.as_str())
    }
}

/// Sorted, deduplicated, without empty names.
fn normalized(permissions: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = permissions
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    set.into_iter().collect()
}

/// FNV-1a of a string: stable across runs (tenant fingerprints in tokens, seeds, which
/// objects a delta page repeats).
pub(crate) fn fingerprint(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// How many issued access token values `Inner::issued_tokens` remembers.
const ISSUED_LOG_CAPACITY: usize = 10_000;

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) tenant: String,
    pub(crate) expires_ms: u64,
    /// The `roles` claim: application permissions granted when the token was issued.
    pub(crate) roles: Arc<[String]>,
}

/// Tenants by id and by domain.
#[derive(Debug, Default)]
pub(crate) struct Tenants {
    pub(crate) by_id: HashMap<String, Arc<TenantState>>,
    /// Lower-cased domain name -> tenant id.
    pub(crate) by_domain: HashMap<String, String>,
    /// Tenant ids in the order they were added.
    pub(crate) order: Vec<String>,
    /// Tenant used by `organizations`/`common` admin-consent requests.
    pub(crate) sign_in_tenant: Option<String>,
}

/// Everything the server and the handles share.
pub(crate) struct Inner {
    pub(crate) config: EmulatorConfig,
    latency_ns: AtomicU64,
    pub(crate) clock: Clock,
    pub(crate) app: AppCredentials,
    pub(crate) tenants: RwLock<Tenants>,
    access: Mutex<HashMap<String, Grant>>,
    /// Every access token issued (newest last, at most `ISSUED_LOG_CAPACITY`), for tests that
    /// check no token value leaks into logs or errors.
    issued: Mutex<std::collections::VecDeque<String>>,
    pub(crate) faults: Arc<FaultBook>,
    pub(crate) counters: Mutex<RequestCounters>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) codec: TokenCodec,
    pub(crate) addr: SocketAddr,
    /// Where the emulator saves itself after every change (`Emulator::persist_to`).
    pub(crate) autosave: Mutex<Option<std::path::PathBuf>>,
}

impl std::fmt::Debug for Inner {
    /// Never prints issued access tokens or the app secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("addr", &self.addr)
            .field("app", &self.app)
            .field("tenants", &self.tenants_read().order)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn new(
        config: EmulatorConfig,
        app: AppCredentials,
        addr: SocketAddr,
        codec: TokenCodec,
    ) -> Self {
        let latency = u64::try_from(config.latency.as_nanos()).unwrap_or(u64::MAX);
        let log = RequestLog::new(config.request_log_capacity);
        Self {
            config,
            latency_ns: AtomicU64::new(latency),
            clock: Clock::new(),
            app,
            tenants: RwLock::new(Tenants::default()),
            access: Mutex::new(HashMap::new()),
            issued: Mutex::new(std::collections::VecDeque::new()),
            faults: Arc::new(FaultBook::default()),
            counters: Mutex::new(RequestCounters::default()),
            log: Mutex::new(log),
            codec,
            addr,
            autosave: Mutex::new(None),
        }
    }

    /// Something a saved state holds changed: save it now when `Emulator::persist_to` asked
    /// for it. Called after the change, with no tenant lock held.
    pub(crate) fn changed(&self) {
        crate::persist::autosave(self);
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn set_latency(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns.store(ns, Ordering::Relaxed);
    }

    pub(crate) fn tenants_read(&self) -> RwLockReadGuard<'_, Tenants> {
        self.tenants.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn tenants_write(&self) -> RwLockWriteGuard<'_, Tenants> {
        self.tenants.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A tenant by id or by one of its verified domains.
    pub(crate) fn resolve_tenant(&self, key: &str) -> Option<Arc<TenantState>> {
        let tenants = self.tenants_read();
        if let Some(t) = tenants.by_id.get(key) {
            return Some(t.clone());
        }
        let lower = key.to_ascii_lowercase();
        let id = tenants
            .by_domain
            .get(&lower)
            .or_else(|| tenants.by_id.keys().find(|k| k.eq_ignore_ascii_case(key)))?;
        tenants.by_id.get(id).cloned()
    }

    /// Issues an access token for a tenant: a JWT-shaped value whose payload carries the
    /// claims Graph tokens carry (`aud`, `iss`, `tid`, `appid`, `oid`, `idtyp`, `exp`, and
    /// `roles` when anything is granted; like Entra, no `roles` claim at all otherwise). The
    /// signature part is random: the emulator knows its tokens by value.
    pub(crate) fn issue_token(&self, tenant: &TenantState) -> String {
        let roles: Arc<[String]> = tenant.granted().into();
        let mut sig = [0u8; 32];
        rand::rng().fill_bytes(&mut sig);
        let now = self.clock.now_ms();
        let lifetime = self.config.token_lifetime_secs;
        let expires_ms = now.saturating_add(lifetime.saturating_mul(1000));
        let iat = self.clock.wall().timestamp();
        let exp = iat.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
        let principal = tenant.app_principal_id(&self.app.client_id);
        let mut claims = serde_json::json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", tenant.id),
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "app_displayname": "entra-sync",
            "appid": self.app.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": principal,
            "sub": principal,
            "tid": tenant.id,
            "uti": URL_SAFE_NO_PAD.encode(&sig[..12]),
            "ver": "1.0",
        });
        if !roles.is_empty() {
            claims["roles"] = serde_json::json!(&*roles);
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256","kid":"emulator"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
        let mut access = self.access.lock().unwrap_or_else(PoisonError::into_inner);
        if access.len() > 10_000 {
            access.retain(|_, g| g.expires_ms > now);
        }
        access.insert(
            token.clone(),
            Grant {
                tenant: tenant.id.clone(),
                expires_ms,
                roles,
            },
        );
        drop(access);
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        if issued.len() >= ISSUED_LOG_CAPACITY {
            issued.pop_front();
        }
        issued.push_back(token.clone());
        token
    }

    /// Every access token issued so far (the most recent `ISSUED_LOG_CAPACITY`), revoked and
    /// expired ones included.
    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        let issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        issued.iter().cloned().collect()
    }

    /// The grant behind an access token.
    pub(crate) fn grant(&self, token: &str) -> Option<Grant> {
        let access = self.access.lock().unwrap_or_else(PoisonError::into_inner);
        access.get(token).cloned()
    }

    /// Invalidates every token of a tenant (consent revoked).
    pub(crate) fn revoke_tokens(&self, tenant: &str) {
        let mut access = self.access.lock().unwrap_or_else(PoisonError::into_inner);
        access.retain(|_, g| g.tenant != tenant);
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
