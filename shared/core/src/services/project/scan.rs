use std::collections::{BTreeSet, HashMap};

use super::ProjectDeps;
use super::context::Context;
use super::emails::{PassEmails, email_to_look_up, holders};
use super::import::{ImportMode, PreviewItem};
use crate::error::SyncError;
use crate::ports::Pages;
use crate::provision::{AccessLoss, Action, Decision, LocalUser, RuleContext, decide};
use crate::run::ProvisioningCounts;
use crate::settings::Automatic;

/// How decisions are picked and applied.
#[derive(Clone, Debug)]
pub(super) enum Pick {
    /// A sync run: what the settings let runs apply by themselves.
    Sync(Automatic),
    Import(ImportMode),
}

impl Pick {
    pub(super) fn apply(&self, mut d: Decision) -> Decision {
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
pub(super) enum Write {
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
pub(super) enum Withhold {
    Nothing,
    /// Those concluded from what a read did not contain (absent from a full read, no account
    /// state); the ones Graph reported for each user are applied.
    Inferred,
    /// Every deactivation.
    Deactivations,
}

impl Withhold {
    pub(super) fn holds(self, loss: Option<AccessLoss>) -> bool {
        match (self, loss) {
            (_, None) | (Withhold::Nothing, _) => false,
            (Withhold::Inferred, Some(l)) => l == AccessLoss::Inferred,
            (Withhold::Deactivations, Some(_)) => true,
        }
    }
}

/// A write a `Write::Buffer` scan keeps, with what the breaker needs to hold it back.
pub(super) struct Buffered {
    pub(super) user: LocalUser,
    pub(super) action: Action,
    pub(super) loss: Option<AccessLoss>,
}

#[derive(Default)]
pub(super) struct ScanOutput {
    /// The writes of a `Write::Buffer` scan, unless there were more than the limit.
    pub(super) buffered: Option<Vec<Buffered>>,
    pub(super) counts: ProvisioningCounts,
    /// Decisions that take a pending or active user's access away (not counting held ones)...
    pub(super) deactivations: u64,
    /// ... of which Graph reported the reason for each user.
    pub(super) reported_deactivations: u64,
    pub(super) active_before: u64,
    pub(super) present_users: u64,
    pub(super) items: Vec<PreviewItem>,
}

impl ScanOutput {
    /// The directory returned no users at all although we manage some.
    pub(super) fn empty_read(&self) -> bool {
        self.present_users == 0 && self.active_before > 0
    }
}

pub(super) const BATCH: usize = 500;

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

/// One pass over the mirror. Writes only when `write`; collects preview items when `collect`.
pub(super) async fn scan(
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
    // The cross-user email rules of this pass (see `emails`).
    let mut pass_emails = PassEmails::default();
    let mut pages = Pages::default();
    while let Some(after) = pages.next_after() {
        let page = deps.mirror.list_users(tenant, after, BATCH).await?;
        let ids: Vec<String> = page.items.iter().map(|s| s.user.id.clone()).collect();
        let linked: HashMap<String, LocalUser> = deps
            .local_users
            .find_linked(tenant, &ids)
            .await?
            .into_iter()
            // Only this account's users: after a disconnect another account may connect the
            // tenant, and the users synced for the first account stay theirs, untouched.
            .filter(|u| u.account_id == *account)
            .filter_map(|u| {
                let id = u.link.as_ref()?.object_id.clone();
                Some((id, u))
            })
            .collect();
        let emails: Vec<String> = page
            .items
            .iter()
            .filter_map(|s| {
                let e = s.user.canonical_email().map(|e| e.trim().to_owned());
                email_to_look_up(linked.get(&s.user.id), e.as_deref())
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let held = match emails.is_empty() {
            true => HashMap::new(),
            false => holders(deps.local_users.find_by_emails(account, &emails).await?),
        };
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
            let found = pass_emails.found(found_linked, email.as_deref(), &held);
            let scope = ctx.settings.filters.admits(u, ctx.scope_members.as_ref());
            let roles = ctx.settings.roles_for(|g| {
                ctx.role_members
                    .get(g)
                    .is_some_and(|members| members.contains(&u.id))
            });
            let mut d = pass_emails.settle(
                pick.apply(decide(stored, found, scope, roles, &rules)),
                found_linked,
                email.as_deref(),
            );
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
                        .or(found_linked)
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
        pages.advance(page.next);
    }
    Ok(out)
}

/// Write what a `Write::Buffer` scan decided, less the deactivations `withhold` holds, or scan
/// again writing as it goes when the buffer overflowed. The decisions are the same either way
/// (the mirror is the input), except that a rescan under a hold holds every deactivation: its
/// counts are only known once it has written, so it cannot check them against the threshold.
pub(super) async fn write_scanned(
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
