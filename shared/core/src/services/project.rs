//! Projection: the host product's users derived from the mirror through the connection's
//! filters, mapping and provisioning rules; the import preview; manual imports; the circuit
//! breaker with its confirm and reject; settings edits (which re-project at once, from the
//! mirror, without reading the directory).
//!
//! Every entry point runs the same scan over the mirror with [`decide`]; they differ only in
//! which decisions they apply and whether they write. That is why a preview and the import that
//! follows agree exactly.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::cursor::FullReason;
use crate::error::{StoreError, SyncError};
use crate::model::{AccountId, Connection, MemberType, StoredGroup, StoredUser, Stream, TenantId};
use crate::ports::{
    Clock, ConnectionStore, CursorStore, LocalUserStore, MirrorStore, RunStore, SettingsStore,
};
use crate::provision::{
    AccessLoss, Action, Decision, Found, LocalStatus, LocalUser, RuleContext, decide,
};
use crate::run::{BreakerHold, ProvisioningCounts, RunStatus, RunUpdate, SyncRun, Trigger};
use crate::settings::{
    Automatic, ConnectionSettings, SettingsChange, SettingsError, changes, edited_version,
};

/// The ports a projection needs besides those every sync has.
#[derive(Clone)]
pub struct ProjectionPorts {
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub local_users: Arc<dyn LocalUserStore>,
}

/// Every port the projection services use.
#[derive(Clone)]
pub struct ProjectDeps {
    pub connections: Arc<dyn ConnectionStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub local_users: Arc<dyn LocalUserStore>,
    pub mirror: Arc<dyn MirrorStore>,
    pub runs: Arc<dyn RunStore>,
    /// A rejected hold asks for a full re-read of the directory.
    pub cursors: Arc<dyn CursorStore>,
    pub clock: Arc<dyn Clock>,
}

impl ProjectDeps {
    pub fn new(
        ports: &ProjectionPorts,
        mirror: Arc<dyn MirrorStore>,
        runs: Arc<dyn RunStore>,
        cursors: Arc<dyn CursorStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections: ports.connections.clone(),
            settings: ports.settings.clone(),
            local_users: ports.local_users.clone(),
            mirror,
            runs,
            cursors,
            clock,
        }
    }
}

/// Which decisions an import applies (PRODUCT.md: manual import modes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ImportMode {
    /// Only these new directory users (object ids).
    SelectedNew { object_ids: BTreeSet<String> },
    /// Every new user and every change to existing users.
    NewAndUpdated,
    /// Changes to users the host product already has; no new users.
    OnlyUpdated,
    /// New users only.
    OnlyNew,
}

impl ImportMode {
    fn selects(&self, d: &Decision) -> bool {
        match self {
            ImportMode::SelectedNew { object_ids } => {
                d.action.is_new() && object_ids.contains(&d.object_id)
            }
            ImportMode::NewAndUpdated => d.action.is_new() || d.action.is_update(),
            ImportMode::OnlyUpdated => d.action.is_update(),
            ImportMode::OnlyNew => d.action.is_new(),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            ImportMode::SelectedNew { .. } => "selected new users",
            ImportMode::NewAndUpdated => "new and updated users",
            ImportMode::OnlyUpdated => "updated users only",
            ImportMode::OnlyNew => "new users only",
        }
    }
}

/// One line of a preview (or of an import's report).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewItem {
    pub object_id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub action: Action,
    pub reason: String,
    /// Changed fields (updates).
    pub changed: Vec<String>,
    /// The local user this applies to (absent for skips of users never imported).
    pub local_id: Option<String>,
    pub status_after: Option<LocalStatus>,
}

/// What a preview shows: every decision except "unchanged", and the counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub tenant_id: TenantId,
    pub settings_version: u64,
    pub mode: ImportMode,
    pub counts: ProvisioningCounts,
    pub items: Vec<PreviewItem>,
}

impl Preview {
    /// The items an import in the same mode applies.
    pub fn applied(&self) -> impl Iterator<Item = &PreviewItem> {
        self.items
            .iter()
            .filter(|i| !matches!(i.action, Action::Skip | Action::Unchanged))
    }
}

/// Why a projection service refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no connection for tenant {0}")]
    NotConnected(TenantId),
    #[error("the connection of tenant {tenant} is {state}: {what}")]
    Unavailable {
        tenant: TenantId,
        state: &'static str,
        what: String,
    },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(
        "the settings changed since you loaded them (you edited version {expected}, the stored one is newer); reload and try again"
    )]
    SettingsConflict { expected: u64 },
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("run {run_id} is {status}, not held; only a held run can be confirmed or rejected")]
    NotHeld { run_id: String, status: String },
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for ProjectError {
    fn from(e: StoreError) -> Self {
        ProjectError::Sync(SyncError::from(e))
    }
}

/// Everything a scan needs, loaded once.
struct Context {
    connection: Connection,
    settings: ConnectionSettings,
    verified_domains: Vec<String>,
    /// Members (direct or nested) of the filter's groups, when the group section restricts.
    scope_members: Option<HashSet<String>>,
    /// Members (direct or nested) of every group mapped to a role.
    role_members: HashMap<String, HashSet<String>>,
}

/// How decisions are picked and applied.
#[derive(Clone, Debug)]
enum Pick {
    /// A sync run: what the settings let runs apply by themselves.
    Sync(Automatic),
    Import(ImportMode),
}

impl Pick {
    fn apply(&self, mut d: Decision) -> Decision {
        let selected = match self {
            Pick::Sync(Automatic::Everything) => true,
            Pick::Sync(Automatic::UpdatesOnly) => !d.action.is_new(),
            Pick::Sync(Automatic::Nothing) => false,
            Pick::Import(mode) => mode.selects(&d),
        };
        if selected || matches!(d.action, Action::Skip | Action::Unchanged) {
            return d;
        }
        d.reason = match self {
            Pick::Sync(_) => format!("{}; waiting for a manual import", d.reason),
            Pick::Import(mode) => format!(
                "{}; not part of this import ({})",
                d.reason,
                mode.describe()
            ),
        };
        d.action = Action::Skip;
        d.write = None;
        d.deactivates = None;
        d
    }
}

/// What a scan does with the users it decides to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// Nothing (a preview, or the counting pass before the breaker).
    No,
    /// As it goes, batch by batch.
    Now,
    /// Keep them in memory for after the breaker's check, up to [`BUFFER_LIMIT`]; beyond it
    /// the buffer is dropped and the caller scans a second time to write.
    Buffer,
}

/// Most users a run keeps in memory between its scan and the breaker's check. Incremental
/// runs change far fewer, so they scan the mirror once; a first import of a large directory
/// scans twice instead of holding every new user in memory.
const BUFFER_LIMIT: usize = 5_000;

/// Which deactivations a scan leaves unwritten: the ones the circuit breaker holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Withhold {
    Nothing,
    /// Those concluded from what a read did not contain (absent from a full read, no account
    /// state); the ones Graph reported for each user are applied.
    Inferred,
    /// Every deactivation.
    Deactivations,
}

impl Withhold {
    fn holds(self, loss: Option<AccessLoss>) -> bool {
        match (self, loss) {
            (_, None) | (Withhold::Nothing, _) => false,
            (Withhold::Inferred, Some(l)) => l == AccessLoss::Inferred,
            (Withhold::Deactivations, Some(_)) => true,
        }
    }
}

/// A write a `Write::Buffer` scan keeps, with what the breaker needs to hold it back.
struct Buffered {
    user: LocalUser,
    action: Action,
    loss: Option<AccessLoss>,
}

#[derive(Default)]
struct ScanOutput {
    /// The writes of a `Write::Buffer` scan, unless there were more than the limit.
    buffered: Option<Vec<Buffered>>,
    counts: ProvisioningCounts,
    /// Decisions that take a pending or active user's access away (not counting held ones)...
    deactivations: u64,
    /// ... of which Graph reported the reason for each user.
    reported_deactivations: u64,
    active_before: u64,
    present_users: u64,
    items: Vec<PreviewItem>,
}

impl ScanOutput {
    /// The directory returned no users at all although we manage some.
    fn empty_read(&self) -> bool {
        self.present_users == 0 && self.active_before > 0
    }
}

const BATCH: usize = 500;

fn count(c: &mut ProvisioningCounts, a: Action) {
    let slot = match a {
        Action::Create => &mut c.created,
        Action::Link => &mut c.linked,
        Action::Update => &mut c.updated,
        Action::Deactivate => &mut c.deactivated,
        Action::Reactivate => &mut c.reactivated,
        Action::DisableInDirectory => &mut c.disabled_in_directory,
        Action::Freeze => &mut c.frozen,
        Action::Unchanged => &mut c.unchanged,
        Action::Skip => &mut c.skipped,
    };
    *slot += 1;
}

/// Users that are members of `groups`, directly or through nested groups (present edges of
/// present groups only; cycles are harmless).
async fn transitive_members(
    mirror: &dyn MirrorStore,
    tenant: &TenantId,
    groups: &[String],
) -> Result<HashSet<String>, SyncError> {
    let mut users = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = groups.iter().cloned().collect();
    while let Some(g) = queue.pop_front() {
        if !seen.insert(g.clone()) {
            continue;
        }
        let present = mirror
            .get_groups(tenant, std::slice::from_ref(&g))
            .await?
            .first()
            .is_some_and(|sg| sg.presence.is_present());
        if !present {
            continue;
        }
        for edge in mirror.memberships_of_group(tenant, &g).await? {
            if !edge.present {
                continue;
            }
            match edge.member.member_type {
                MemberType::User => {
                    users.insert(edge.member.id);
                }
                MemberType::Group => queue.push_back(edge.member.id),
                _ => {}
            }
        }
    }
    Ok(users)
}

fn unavailable(c: &Connection) -> Option<ProjectError> {
    use crate::model::ConnectionStatus as S;
    match &c.status {
        S::Connected => None,
        S::NeedsReauthorization { reason } => Some(ProjectError::Unavailable {
            tenant: c.tenant_id.clone(),
            state: "waiting for reauthorization",
            what: format!("{reason}; an admin must consent again before users are synced"),
        }),
        S::Disconnected => Some(ProjectError::Unavailable {
            tenant: c.tenant_id.clone(),
            state: "disconnected",
            what: "connect the directory again to sync users".to_owned(),
        }),
    }
}

/// The settings of a connection (the defaults when never saved).
pub async fn load_settings(
    settings: &dyn SettingsStore,
    tenant: &TenantId,
) -> Result<ConnectionSettings, StoreError> {
    Ok(settings.get_settings(tenant).await?.unwrap_or_default())
}

/// The connection of `tenant`, if it may sync (connected).
async fn usable_connection(
    deps: &ProjectDeps,
    tenant: &TenantId,
) -> Result<Connection, ProjectError> {
    let connection = deps
        .connections
        .get_connection(tenant)
        .await?
        .ok_or_else(|| ProjectError::NotConnected(tenant.clone()))?;
    match unavailable(&connection) {
        Some(e) => Err(e),
        None => Ok(connection),
    }
}

async fn load_context(deps: &ProjectDeps, tenant: &TenantId) -> Result<Context, ProjectError> {
    let connection = usable_connection(deps, tenant).await?;
    let settings = load_settings(deps.settings.as_ref(), tenant).await?;
    let scope_members = match settings.filters.selected_groups() {
        Some(groups) => {
            let members = transitive_members(deps.mirror.as_ref(), tenant, groups).await?;
            if members.is_empty() {
                // Saving refuses unknown groups, but a group can be deleted or emptied later:
                // then the filter freezes everyone, which someone should hear about.
                warn!(tenant = %tenant, groups = groups.len(), "the group filter matches no user");
            }
            Some(members)
        }
        None => None,
    };
    let mut role_members = HashMap::new();
    for gr in &settings.group_roles {
        if !role_members.contains_key(&gr.group_id) {
            let members = transitive_members(
                deps.mirror.as_ref(),
                tenant,
                std::slice::from_ref(&gr.group_id),
            )
            .await?;
            role_members.insert(gr.group_id.clone(), members);
        }
    }
    let verified_domains = connection
        .verified_domains
        .iter()
        .map(|d| d.name.to_lowercase())
        .collect();
    Ok(Context {
        connection,
        settings,
        verified_domains,
        scope_members,
        role_members,
    })
}

/// One pass over the mirror. Writes only when `write`; collects preview items when `collect`.
async fn scan(
    deps: &ProjectDeps,
    ctx: &Context,
    pick: &Pick,
    write: Write,
    withhold: Withhold,
    collect: bool,
) -> Result<ScanOutput, SyncError> {
    let tenant = &ctx.connection.tenant_id;
    let account = &ctx.connection.account_id;
    let now = deps.clock.now();
    let rules = RuleContext {
        tenant,
        account,
        settings: &ctx.settings,
        verified_domains: &ctx.verified_domains,
        deactivation_allowed: ctx
            .settings
            .provisioning
            .deprovisioning
            .allows_deactivation_at(now),
        now,
    };
    let mut out = ScanOutput {
        buffered: (write == Write::Buffer).then(Vec::new),
        ..ScanOutput::default()
    };
    // Emails linked, created or renamed to in this pass (and the user written with each): two
    // directory users with one email never both land on the same local user, nor create two,
    // nor does a rename take an email another user got in this pass.
    let mut claimed: HashMap<String, LocalUser> = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = deps
            .mirror
            .list_users(tenant, after.as_deref(), BATCH)
            .await?;
        let ids: Vec<String> = page.items.iter().map(|s| s.user.id.clone()).collect();
        let linked: HashMap<String, LocalUser> = deps
            .local_users
            .find_linked(tenant, &ids)
            .await?
            .into_iter()
            .filter_map(|u| {
                let id = u.link.as_ref()?.object_id.clone();
                Some((id, u))
            })
            .collect();
        let emails: Vec<String> = page
            .items
            .iter()
            .filter_map(|s| {
                let e = s.user.canonical_email().map(|e| e.trim().to_owned())?;
                // Unlinked users (matching), and linked ones renamed (is the email taken?).
                match linked.get(&s.user.id) {
                    Some(l) if l.email == e => None,
                    _ => Some(e),
                }
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut by_email: HashMap<String, LocalUser> = HashMap::new();
        if !emails.is_empty() {
            for u in deps.local_users.find_by_emails(account, &emails).await? {
                // Prefer a user with no link: that is the one matching may take.
                let replace = by_email
                    .get(&u.email)
                    .is_none_or(|old| old.link.is_some() && u.link.is_none());
                if replace {
                    by_email.insert(u.email.clone(), u);
                }
            }
        }
        let mut writes = Vec::new();
        for stored in &page.items {
            let u = &stored.user;
            if stored.presence.is_present() {
                out.present_users += 1;
            }
            let found_linked = linked.get(&u.id);
            if let Some(l) = found_linked
                && l.status.is_active_or_pending()
            {
                out.active_before += 1;
            }
            let email = u.canonical_email().map(|e| e.trim().to_owned());
            let taken = match found_linked {
                // Renamed: another local user that already holds (or got in this pass) the
                // new email.
                Some(l) => email
                    .as_ref()
                    .filter(|e| **e != l.email)
                    .and_then(|e| claimed.get(e).or_else(|| by_email.get(e)))
                    .filter(|o| o.local_id != l.local_id)
                    .cloned(),
                None => None,
            };
            let found = Found {
                linked: found_linked,
                by_email: match found_linked {
                    Some(_) => taken.as_ref(),
                    None => email.as_ref().and_then(|e| by_email.get(e)),
                },
            };
            let scope = ctx.settings.filters.admits(u, ctx.scope_members.as_ref());
            let roles = ctx.settings.roles_for(|g| {
                ctx.role_members
                    .get(g)
                    .is_some_and(|members| members.contains(&u.id))
            });
            let mut d = pick.apply(decide(stored, found, scope, roles, &rules));
            let renamed = d
                .write
                .as_ref()
                .is_some_and(|w| found.linked.is_some_and(|l| l.email != w.email));
            if matches!(d.action, Action::Create | Action::Link)
                && let Some(e) = &email
                && claimed.contains_key(e)
            {
                d = Decision {
                    action: Action::Skip,
                    reason: format!("another directory user with the email {e} was matched first"),
                    write: None,
                    deactivates: None,
                    ..d
                };
            }
            if let Some(w) = &d.write
                && (matches!(d.action, Action::Create | Action::Link) || renamed)
            {
                claimed.insert(w.email.clone(), w.clone());
            }
            if withhold.holds(d.deactivates) {
                d.reason = format!("{}; held by the circuit breaker", d.reason);
                d.write = None;
                out.counts.held += 1;
            } else {
                count(&mut out.counts, d.action);
                if let Some(loss) = d.deactivates {
                    out.deactivations += 1;
                    if loss == AccessLoss::Reported {
                        out.reported_deactivations += 1;
                    }
                }
            }
            if collect && d.action != Action::Unchanged {
                out.items.push(PreviewItem {
                    object_id: d.object_id.clone(),
                    display_name: u.display_name.clone(),
                    email: email.clone(),
                    action: d.action,
                    reason: d.reason.clone(),
                    changed: d.changed.clone(),
                    local_id: d
                        .write
                        .as_ref()
                        .or(found.linked)
                        .map(|l| l.local_id.clone()),
                    status_after: d.write.as_ref().map(|l| l.status),
                });
            }
            if let Some(w) = d.write {
                writes.push(Buffered {
                    user: w,
                    action: d.action,
                    loss: d.deactivates,
                });
            }
        }
        match write {
            Write::Now if !writes.is_empty() => {
                let users: Vec<LocalUser> = writes.into_iter().map(|b| b.user).collect();
                deps.local_users.put_local_users(&users).await?
            }
            Write::Buffer => {
                if let Some(buf) = &mut out.buffered {
                    buf.extend(writes);
                    if buf.len() > BUFFER_LIMIT {
                        out.buffered = None;
                    }
                }
            }
            _ => {}
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// Write what a `Write::Buffer` scan decided, less the deactivations `withhold` holds, or scan
/// again writing as it goes when the buffer overflowed. The decisions are the same either way
/// (the mirror is the input), except that a rescan under a hold holds every deactivation: its
/// counts are only known once it has written, so it cannot check them against the threshold.
async fn write_scanned(
    deps: &ProjectDeps,
    ctx: &Context,
    pick: &Pick,
    mut scanned: ScanOutput,
    withhold: Withhold,
) -> Result<ScanOutput, SyncError> {
    let Some(buffered) = scanned.buffered.take() else {
        let withhold = match withhold {
            Withhold::Nothing => Withhold::Nothing,
            _ => Withhold::Deactivations,
        };
        return scan(deps, ctx, pick, Write::Now, withhold, false).await;
    };
    let mut users = Vec::with_capacity(buffered.len());
    for b in buffered {
        if !withhold.holds(b.loss) {
            users.push(b.user);
            continue;
        }
        let c = &mut scanned.counts;
        let slot = match b.action {
            Action::Deactivate => &mut c.deactivated,
            Action::DisableInDirectory => &mut c.disabled_in_directory,
            Action::Link => &mut c.linked,
            _ => &mut c.updated,
        };
        *slot = slot.saturating_sub(1);
        c.held += 1;
        scanned.deactivations -= 1;
        if b.loss == Some(AccessLoss::Reported) {
            scanned.reported_deactivations -= 1;
        }
    }
    for chunk in users.chunks(BATCH) {
        deps.local_users.put_local_users(chunk).await?;
    }
    Ok(scanned)
}

/// What the breaker decides about a scan: nothing, or a hold and what it holds back.
struct Verdict {
    threshold: String,
    empty_read: bool,
    withhold: Withhold,
}

/// The breaker's check. An empty read holds everything (nothing is written at all). Otherwise,
/// when the deactivations trip the threshold, the ones Graph reported for each user pass if
/// they alone stay within it, and the rest wait for a confirm.
fn breaker(ctx: &Context, out: &ScanOutput) -> Option<Verdict> {
    if out.empty_read() {
        return Some(Verdict {
            threshold: "the directory returned no users at all".to_owned(),
            empty_read: true,
            withhold: Withhold::Deactivations,
        });
    }
    let t = &ctx.settings.breaker;
    let threshold = t.tripped_by(out.deactivations, out.active_before)?;
    let withhold = match t.tripped_by(out.reported_deactivations, out.active_before) {
        None => Withhold::Inferred,
        Some(_) => Withhold::Deactivations,
    };
    Some(Verdict {
        threshold,
        empty_read: false,
        withhold,
    })
}

/// The preview of an import: what it would create, update and skip, with reasons. Writes
/// nothing.
pub async fn preview(
    deps: &ProjectDeps,
    tenant: &TenantId,
    mode: ImportMode,
) -> Result<Preview, ProjectError> {
    let ctx = load_context(deps, tenant).await?;
    let out = scan(
        deps,
        &ctx,
        &Pick::Import(mode.clone()),
        Write::No,
        Withhold::Nothing,
        true,
    )
    .await?;
    Ok(Preview {
        tenant_id: tenant.clone(),
        settings_version: ctx.settings.version,
        mode,
        counts: out.counts,
        items: out.items,
    })
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub run: SyncRun,
    /// Every decision, as the preview lists them.
    pub items: Vec<PreviewItem>,
}

/// A manual import: the decisions `mode` selects, applied now. The admin saw the preview, so
/// the circuit breaker does not hold an import.
pub async fn import(
    deps: &ProjectDeps,
    tenant: &TenantId,
    mode: ImportMode,
) -> Result<ImportReport, ProjectError> {
    let ctx = load_context(deps, tenant).await?;
    let run = new_run(deps, tenant, Trigger::Import).await?;
    let out = scan(
        deps,
        &ctx,
        &Pick::Import(mode),
        Write::Now,
        Withhold::Nothing,
        true,
    )
    .await?;
    let run = finish(deps, tenant, &run.run_id, out.counts, ctx.settings.version).await?;
    info!(tenant = %tenant, run_id = %run.run_id, created = out.counts.created, updated = out.counts.updated, "import applied");
    Ok(ImportReport {
        run,
        items: out.items,
    })
}

async fn new_run(
    deps: &ProjectDeps,
    tenant: &TenantId,
    trigger: Trigger,
) -> Result<SyncRun, StoreError> {
    let now = deps.clock.now();
    let run = SyncRun::new(
        uuid::Uuid::new_v4().to_string(),
        tenant.clone(),
        trigger,
        now,
    );
    deps.runs.create_run(&run).await?;
    Ok(run)
}

async fn finish(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
    counts: ProvisioningCounts,
    settings_version: u64,
) -> Result<SyncRun, StoreError> {
    deps.runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Provisioned {
                counts,
                settings_version,
            },
        )
        .await?;
    deps.runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Finish {
                status: RunStatus::Succeeded,
                at: deps.clock.now(),
            },
        )
        .await
}

/// How a run's projection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectOutcome {
    Applied(ProvisioningCounts),
    /// The circuit breaker held the run: nothing was written.
    Held(BreakerHold),
    /// Another worker holds the projection of this run.
    ClaimedElsewhere,
}

/// How long a projection claim lasts before another worker may take it over.
const CLAIM_STALE_AFTER_MINUTES: i64 = 15;

/// Project the mirror for a run whose reads are complete (both streams committed) or for a
/// settings change. Holds the run when the breaker trips; otherwise applies and finishes it.
pub async fn project_run(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<ProjectOutcome, ProjectError> {
    let token = uuid::Uuid::new_v4().to_string();
    let run = deps
        .runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::ClaimProjection {
                token: token.clone(),
                at: deps.clock.now(),
                stale_after: chrono::Duration::minutes(CLAIM_STALE_AFTER_MINUTES),
            },
        )
        .await?;
    if run
        .projection_claim
        .as_ref()
        .is_none_or(|c| c.token != token)
        || run.is_finished()
    {
        return Ok(ProjectOutcome::ClaimedElsewhere);
    }
    let ctx = match load_context(deps, tenant).await {
        Ok(ctx) => ctx,
        Err(e @ (ProjectError::Unavailable { .. } | ProjectError::NotConnected(_))) => {
            deps.runs
                .update_run(
                    tenant,
                    run_id,
                    &RunUpdate::Finish {
                        status: RunStatus::Failed {
                            error: format!("{e}; nothing was changed"),
                        },
                        at: deps.clock.now(),
                    },
                )
                .await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let since = open_hold_since(deps, tenant, run_id).await?;
    let outcome = apply_unless_held(deps, &ctx, run_id, since, |dry| breaker(&ctx, dry)).await?;
    supersede_older_holds(deps, tenant, run_id).await?;
    match &outcome {
        ProjectOutcome::Held(hold) => warn!(
            tenant = %tenant,
            run_id,
            deactivations = hold.deactivations,
            applied_deactivations = hold.applied_deactivations,
            active_before = hold.active_before,
            empty_read = hold.empty_read,
            held_since = %hold.since(),
            held_for_minutes = hold.held_for(deps.clock.now()).num_minutes(),
            "circuit breaker held the run"
        ),
        ProjectOutcome::Applied(c) => info!(
            tenant = %tenant,
            run_id,
            created = c.created,
            linked = c.linked,
            updated = c.updated,
            deactivated = c.deactivated,
            disabled_in_directory = c.disabled_in_directory,
            frozen = c.frozen,
            skipped = c.skipped,
            "users projected"
        ),
        ProjectOutcome::ClaimedElsewhere => {}
    }
    Ok(outcome)
}

/// The projection of a run as the sync rules pick it: scan once; if `hold_if` says so, write
/// what the hold lets through and hold the run (an empty read writes nothing); otherwise write
/// what the scan decided and finish the run. `since`: when the open question was first asked
/// (an older hold this run continues).
async fn apply_unless_held(
    deps: &ProjectDeps,
    ctx: &Context,
    run_id: &str,
    since: Option<DateTime<Utc>>,
    hold_if: impl FnOnce(&ScanOutput) -> Option<Verdict>,
) -> Result<ProjectOutcome, ProjectError> {
    let tenant = &ctx.connection.tenant_id;
    let pick = Pick::Sync(ctx.settings.provisioning.automatic);
    let dry = scan(deps, ctx, &pick, Write::Buffer, Withhold::Nothing, false).await?;
    let Some(verdict) = hold_if(&dry) else {
        let out = write_scanned(deps, ctx, &pick, dry, Withhold::Nothing).await?;
        finish(deps, tenant, run_id, out.counts, ctx.settings.version).await?;
        return Ok(ProjectOutcome::Applied(out.counts));
    };
    let active_before = dry.active_before;
    let (counts, applied) = match verdict.empty_read {
        true => (
            ProvisioningCounts {
                held: dry.deactivations,
                ..ProvisioningCounts::default()
            },
            0,
        ),
        false => {
            let out = write_scanned(deps, ctx, &pick, dry, verdict.withhold).await?;
            (out.counts, out.deactivations)
        }
    };
    let now = deps.clock.now();
    let hold = BreakerHold {
        deactivations: counts.held,
        active_before,
        threshold: verdict.threshold,
        empty_read: verdict.empty_read,
        held_at: now,
        held_since: Some(since.unwrap_or(now).min(now)),
        applied_deactivations: applied,
    };
    deps.runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Provisioned {
                counts,
                settings_version: ctx.settings.version,
            },
        )
        .await?;
    deps.runs
        .update_run(tenant, run_id, &RunUpdate::Hold(hold.clone()))
        .await?;
    Ok(ProjectOutcome::Held(hold))
}

/// When the oldest held run other than `run_id` was first held: a newer hold continues it.
async fn open_hold_since(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(deps
        .runs
        .list_runs(tenant, 50)
        .await?
        .into_iter()
        .filter(|r| r.run_id != run_id)
        .filter_map(|r| match r.status {
            RunStatus::Held { hold } => Some(hold.since()),
            _ => None,
        })
        .min())
}

/// Older held runs are moot once a newer run held or applied: confirming them would apply
/// today's projection anyway. They are closed so the activity log shows one open question.
async fn supersede_older_holds(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<(), StoreError> {
    for r in deps.runs.list_runs(tenant, 50).await? {
        if r.run_id != run_id && matches!(r.status, RunStatus::Held { .. }) {
            deps.runs
                .update_run(
                    tenant,
                    &r.run_id,
                    &RunUpdate::Finish {
                        status: RunStatus::Rejected {
                            by: format!("superseded by run {run_id}"),
                            at: deps.clock.now(),
                        },
                        at: deps.clock.now(),
                    },
                )
                .await?;
        }
    }
    Ok(())
}

async fn held_run(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
) -> Result<BreakerHold, ProjectError> {
    let run = deps
        .runs
        .get_run(tenant, run_id)
        .await?
        .ok_or_else(|| ProjectError::RunNotFound(run_id.to_owned()))?;
    match run.status {
        RunStatus::Held { hold } => Ok(hold),
        other => Err(ProjectError::NotHeld {
            run_id: run_id.to_owned(),
            status: match other {
                RunStatus::Running => "running",
                RunStatus::Succeeded => "succeeded",
                RunStatus::Failed { .. } => "failed",
                RunStatus::Held { .. } => "held",
                RunStatus::Rejected { .. } => "rejected",
                RunStatus::Skipped { .. } => "skipped",
            }
            .to_owned(),
        }),
    }
}

/// Confirm a held run: apply its projection. If the directory changed since and the run would
/// now deactivate more users than the admin confirmed, it is held again with the new numbers.
pub async fn confirm_held(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
    by: &str,
) -> Result<ProjectOutcome, ProjectError> {
    let hold = held_run(deps, tenant, run_id).await?;
    let ctx = load_context(deps, tenant).await?;
    let outcome = apply_unless_held(deps, &ctx, run_id, Some(hold.since()), |dry| {
        (dry.deactivations > hold.deactivations).then(|| Verdict {
            threshold: format!(
                "{} confirmed {} deactivations, the directory now gives {}",
                by, hold.deactivations, dry.deactivations
            ),
            empty_read: dry.empty_read(),
            withhold: match ctx
                .settings
                .breaker
                .tripped_by(dry.reported_deactivations, dry.active_before)
            {
                None if !dry.empty_read() => Withhold::Inferred,
                _ => Withhold::Deactivations,
            },
        })
    })
    .await?;
    if let ProjectOutcome::Applied(c) = &outcome {
        info!(tenant = %tenant, run_id, by, deactivated = c.deactivated, "held run confirmed");
    }
    Ok(outcome)
}

/// Reject a held run: nothing is applied, and the next run reads the whole directory again (the
/// read may have been wrong). If the users are still missing then, the breaker asks again.
pub async fn reject_held(
    deps: &ProjectDeps,
    tenant: &TenantId,
    run_id: &str,
    by: &str,
) -> Result<SyncRun, ProjectError> {
    held_run(deps, tenant, run_id).await?;
    for stream in Stream::ALL {
        // A conflict means a fetch is moving the cursor right now; try a few times.
        for _ in 0..5 {
            let Some((record, rev)) = deps.cursors.load_cursor(tenant, stream).await? else {
                break;
            };
            let next = record.require_full(FullReason::Requested);
            match deps
                .cursors
                .save_cursor(tenant, stream, &next, Some(rev))
                .await
            {
                Ok(_) => break,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let now = deps.clock.now();
    let run = deps
        .runs
        .update_run(
            tenant,
            run_id,
            &RunUpdate::Finish {
                status: RunStatus::Rejected {
                    by: by.to_owned(),
                    at: now,
                },
                at: now,
            },
        )
        .await?;
    info!(tenant = %tenant, run_id, by, "held run rejected; next run reads the whole directory");
    Ok(run)
}

/// The group ids the settings name (group filter, group -> role mapping) that the mirror does
/// not know, or knows as deleted: each a problem naming the field and the id. A group filter
/// naming an unknown group would freeze every user; a role mapped to one would reach nobody.
pub async fn group_problems(
    mirror: &dyn MirrorStore,
    tenant: &TenantId,
    settings: &ConnectionSettings,
) -> Result<Vec<String>, StoreError> {
    let mut named: Vec<(String, &str)> = Vec::new();
    if let Some(groups) = settings.filters.selected_groups() {
        for (i, g) in groups.iter().enumerate() {
            named.push((format!("filters.groups.values[{i}]"), g.as_str()));
        }
    }
    for (i, gr) in settings.group_roles.iter().enumerate() {
        named.push((format!("group_roles[{i}].group_id"), gr.group_id.as_str()));
    }
    named.retain(|(_, id)| !id.trim().is_empty());
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = named
        .iter()
        .map(|(_, id)| (*id).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known: HashMap<String, StoredGroup> = mirror
        .get_groups(tenant, &ids)
        .await?
        .into_iter()
        .map(|g| (g.group.id.clone(), g))
        .collect();
    let unknown: Vec<&str> = named
        .iter()
        .map(|(_, id)| *id)
        .filter(|id| !known.contains_key(*id))
        .collect();
    // An unknown id that is a group's display name: the admin pasted the name.
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    if !unknown.is_empty() {
        let wanted: HashSet<String> = unknown.iter().map(|n| n.trim().to_lowercase()).collect();
        let mut after: Option<String> = None;
        loop {
            let page = mirror.list_groups(tenant, after.as_deref(), BATCH).await?;
            for g in &page.items {
                if let Some(name) = &g.group.display_name
                    && g.presence.is_present()
                    && wanted.contains(&name.trim().to_lowercase())
                {
                    by_name
                        .entry(name.trim().to_lowercase())
                        .or_default()
                        .push(g.group.id.clone());
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    let mut problems = Vec::new();
    for (field, id) in &named {
        match known.get(*id) {
            Some(g) if g.presence.is_present() => {}
            Some(g) => problems.push(format!(
                "{field}: group {id}{} is deleted in the directory",
                g.group
                    .display_name
                    .as_ref()
                    .map(|n| format!(" (\"{n}\")"))
                    .unwrap_or_default()
            )),
            None => {
                let hint = match by_name.get(&id.trim().to_lowercase()) {
                    Some(ids) => format!(
                        "; \"{id}\" is the name of group {}: use the id",
                        ids.join(", ")
                    ),
                    None => "; if it was created in the directory just now, run a sync first so the mirror knows it".to_owned(),
                };
                problems.push(format!(
                    "{field}: no group with the id \"{id}\" in this directory{hint}"
                ));
            }
        }
    }
    Ok(problems)
}

/// A settings edit checked against the stored settings and the mirror, not saved yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsEdit {
    pub current: ConnectionSettings,
    /// The stored settings with the edit merged onto them; save them naming `current.version`.
    pub proposed: ConnectionSettings,
    /// What the edit changes, field by field (empty: nothing).
    pub changes: Vec<SettingsChange>,
}

/// Check a settings edit (a JSON object merged onto the stored settings: fields left out keep
/// their value, `null` resets one to its default) and list every problem at once: its shape,
/// the rules, and group ids the mirror does not know. An edit naming a `version` other than the
/// stored one is a conflict (it was written against older settings).
pub async fn check_settings_edit(
    deps: &ProjectDeps,
    tenant: &TenantId,
    edit: &serde_json::Value,
) -> Result<SettingsEdit, ProjectError> {
    usable_connection(deps, tenant).await?;
    let current = load_settings(deps.settings.as_ref(), tenant).await?;
    if let Some(v) = edited_version(edit)
        && v != 0
        && v != current.version
    {
        return Err(ProjectError::SettingsConflict { expected: v });
    }
    let proposed = current.apply_edit(edit);
    // The group ids are checked even when other parts are wrong, so every problem shows at once.
    let groups_of = match &proposed {
        Ok(s) => s.clone(),
        Err(_) => {
            let mut s = current.clone();
            if let Some(Ok(f)) = edit
                .pointer("/filters/groups")
                .map(|v| serde_json::from_value(v.clone()))
            {
                s.filters.groups = f;
            }
            if let Some(Ok(r)) = edit
                .get("group_roles")
                .map(|v| serde_json::from_value(v.clone()))
            {
                s.group_roles = r;
            }
            s
        }
    };
    let groups = group_problems(deps.mirror.as_ref(), tenant, &groups_of).await?;
    match proposed {
        Ok(proposed) if groups.is_empty() => Ok(SettingsEdit {
            changes: changes(&current, &proposed),
            current,
            proposed,
        }),
        Ok(_) => Err(SettingsError { problems: groups }.into()),
        Err(mut e) => {
            e.problems.extend(groups);
            Err(e.into())
        }
    }
}

/// Save new settings (validated, and every group id they name known to the mirror; `expected`
/// is the version the editor loaded) and re-project at once from the mirror. Returns the saved
/// settings and the re-projection run.
pub async fn save_settings(
    deps: &ProjectDeps,
    tenant: &TenantId,
    mut settings: ConnectionSettings,
    expected: u64,
) -> Result<(ConnectionSettings, SyncRun), ProjectError> {
    let mut problems = match settings.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.problems,
    };
    usable_connection(deps, tenant).await?;
    problems.extend(group_problems(deps.mirror.as_ref(), tenant, &settings).await?);
    if !problems.is_empty() {
        return Err(SettingsError { problems }.into());
    }
    settings.version = expected + 1;
    match deps
        .settings
        .put_settings(tenant, &settings, expected)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(ProjectError::SettingsConflict { expected }),
        Err(e) => return Err(e.into()),
    }
    info!(tenant = %tenant, version = settings.version, "settings saved");
    let run = new_run(deps, tenant, Trigger::SettingsChanged).await?;
    project_run(deps, tenant, &run.run_id).await?;
    let run = deps
        .runs
        .get_run(tenant, &run.run_id)
        .await?
        .ok_or_else(|| ProjectError::RunNotFound(run.run_id.clone()))?;
    Ok((settings, run))
}

/// What the host product needs at sign-in: the user's status and roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInLookup {
    pub local_id: String,
    pub status: LocalStatus,
    pub roles: Vec<String>,
    /// May this user sign in: active, and (for a user linked to the directory) its mirrored
    /// account present and enabled, whatever the filters say.
    pub may_sign_in: bool,
    /// Why not, in plain words (absent when the user may sign in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why the mirrored directory account of `user` takes its access away, if it does: the
/// directory reported it disabled (`accountEnabled: false`) or deleted. A linked user's access
/// never outlives such an account, even before a run deactivates it (nightly deprovisioning, a
/// held run). A loss only inferred from a read (absent from a full read, no account state) is
/// left to the local status: that is what the circuit breaker may be holding.
async fn directory_refusal(
    mirror: &dyn MirrorStore,
    user: &LocalUser,
) -> Result<Option<String>, StoreError> {
    use crate::model::{Presence, RemovalReason};
    let Some(link) = &user.link else {
        return Ok(None);
    };
    let found = mirror
        .get_users(&link.tenant_id, std::slice::from_ref(&link.object_id))
        .await?;
    Ok(match found.first() {
        Some(StoredUser {
            presence:
                Presence::Removed {
                    reason: RemovalReason::SoftDeleted | RemovalReason::HardDeleted,
                },
            ..
        }) => Some("its directory account is deleted".to_owned()),
        Some(s) if s.presence.is_present() && s.user.account_enabled == Some(false) => {
            Some("its directory account is disabled".to_owned())
        }
        _ => None,
    })
}

/// The sign-in lookup by email within one account (case-insensitive).
pub async fn sign_in_lookup(
    local_users: &dyn LocalUserStore,
    mirror: &dyn MirrorStore,
    account: &AccountId,
    email: &str,
) -> Result<Option<SignInLookup>, StoreError> {
    let email = email.trim().to_lowercase();
    let found = local_users.find_by_emails(account, &[email]).await?;
    let best = found
        .into_iter()
        .filter(|u| u.status != LocalStatus::DeletedLocally)
        .min_by_key(|u| match u.status {
            LocalStatus::Active => 0,
            LocalStatus::Pending => 1,
            _ => 2,
        });
    let Some(u) = best else {
        return Ok(None);
    };
    let reason = match u.status {
        LocalStatus::Active => directory_refusal(mirror, &u).await?,
        s => Some(format!("the user is {s}")),
    };
    Ok(Some(SignInLookup {
        may_sign_in: reason.is_none(),
        reason,
        local_id: u.local_id,
        status: u.status,
        roles: u.roles,
    }))
}

/// Why a change to a local user was refused.
#[derive(Debug, thiserror::Error)]
pub enum LocalUserError {
    #[error("no local user {0}")]
    NotFound(String),
    #[error("a local user with the email {0} already exists in this account")]
    DuplicateEmail(String),
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    /// Only a pending user is activated. `force_allowed`: the user was deactivated in the host
    /// product (its directory account is enabled), so an explicit override may activate it.
    #[error("local user {local_id} is {status}, not pending, so it is not activated: {why}")]
    NotActivatable {
        local_id: String,
        status: LocalStatus,
        why: String,
        force_allowed: bool,
    },
    /// A status only the sync sets (active goes through an activation, disabled in directory
    /// follows the directory).
    #[error("the host product cannot set a user to {0}: {hint}", hint = match .0 {
        LocalStatus::Active => "activate a pending user instead",
        _ => "only the directory decides it",
    })]
    NotHostStatus(LocalStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Add a user that exists in the host product before any sync (matching links it later).
pub async fn add_local_user(
    local_users: &dyn LocalUserStore,
    clock: &dyn Clock,
    account: &AccountId,
    email: &str,
    status: LocalStatus,
) -> Result<LocalUser, LocalUserError> {
    let email = email.trim().to_lowercase();
    if crate::filters::email_domain(&email).is_none() || email.starts_with('@') {
        return Err(LocalUserError::BadEmail(email));
    }
    let taken = local_users
        .find_by_emails(account, std::slice::from_ref(&email))
        .await?;
    if taken
        .iter()
        .any(|u| u.status != LocalStatus::DeletedLocally)
    {
        return Err(LocalUserError::DuplicateEmail(email));
    }
    let user = LocalUser::pre_existing(
        account.clone(),
        uuid::Uuid::new_v4().to_string(),
        &email,
        status,
        clock.now(),
    );
    local_users
        .put_local_users(std::slice::from_ref(&user))
        .await?;
    Ok(user)
}

/// Activate a local user, as the host product does. Only a pending user is activated; any
/// other status is refused with the reason. With `force`, a user deactivated in the host
/// product (its directory account enabled) is activated too; never a user whose directory
/// account is disabled or deleted: that access returns only when the directory restores it.
pub async fn activate_local_user(
    local_users: &dyn LocalUserStore,
    mirror: &dyn MirrorStore,
    clock: &dyn Clock,
    account: &AccountId,
    local_id: &str,
    force: bool,
) -> Result<LocalUser, LocalUserError> {
    let mut user = local_users
        .get_local_user(account, local_id)
        .await?
        .ok_or_else(|| LocalUserError::NotFound(local_id.to_owned()))?;
    let refuse = |why: &str, force_allowed: bool| LocalUserError::NotActivatable {
        local_id: local_id.to_owned(),
        status: user.status,
        why: why.to_owned(),
        force_allowed,
    };
    let directory = directory_refusal(mirror, &user).await?;
    match (user.status, directory) {
        (LocalStatus::Active, _) => return Err(refuse("it is already active", false)),
        (LocalStatus::DeletedLocally, _) => {
            return Err(refuse(
                "it was deleted in the host product; the next sync creates it again if it still matches",
                false,
            ));
        }
        (LocalStatus::DisabledInDirectory, _) => {
            return Err(refuse(
                "its directory account is deleted; it returns when the account is restored in the directory",
                false,
            ));
        }
        (_, Some(why)) => {
            return Err(refuse(
                &format!("{why}; it is activated again when the directory enables the account"),
                false,
            ));
        }
        (LocalStatus::Deactivated, None) if !force => {
            return Err(refuse(
                "it was deactivated in the host product (its directory account is enabled); an explicit override activates it",
                true,
            ));
        }
        (LocalStatus::Pending | LocalStatus::Deactivated, None) => {}
    }
    user.status = LocalStatus::Active;
    user.activated = true;
    user.updated_at = clock.now();
    local_users
        .put_local_users(std::slice::from_ref(&user))
        .await?;
    Ok(user)
}

/// Change a local user's status as the host product does: `Deactivated` deactivates it in the
/// host product, `DeletedLocally` deletes it (the next sync recreates it if it still matches and
/// recreating is on), `Pending` puts it back to waiting for an activation. Activation goes
/// through [`activate_local_user`]; "disabled in directory" is the directory's to decide.
pub async fn set_local_status(
    local_users: &dyn LocalUserStore,
    clock: &dyn Clock,
    account: &AccountId,
    local_id: &str,
    status: LocalStatus,
) -> Result<LocalUser, LocalUserError> {
    if matches!(
        status,
        LocalStatus::Active | LocalStatus::DisabledInDirectory
    ) {
        return Err(LocalUserError::NotHostStatus(status));
    }
    let mut user = local_users
        .get_local_user(account, local_id)
        .await?
        .ok_or_else(|| LocalUserError::NotFound(local_id.to_owned()))?;
    user.status = status;
    user.updated_at = clock.now();
    local_users
        .put_local_users(std::slice::from_ref(&user))
        .await?;
    Ok(user)
}
