use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tracing::info;

use super::context::load_context;
use super::run::{finish, new_run};
use super::scan::{Pick, Withhold, Write, scan};
use super::{ProjectDeps, ProjectError};
use crate::model::TenantId;
use crate::provision::{Action, Decision, LocalStatus};
use crate::run::{ProvisioningCounts, SyncRun, Trigger};

/// Which decisions a manual import applies (the import modes of docs/sync-semantics.md).
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
    pub(super) fn selects(&self, d: &Decision) -> bool {
        match self {
            ImportMode::SelectedNew { object_ids } => {
                d.action.is_new() && object_ids.contains(&d.object_id)
            }
            ImportMode::NewAndUpdated => d.action.is_new() || d.action.is_update(),
            ImportMode::OnlyUpdated => d.action.is_update(),
            ImportMode::OnlyNew => d.action.is_new(),
        }
    }

    pub(super) fn describe(&self) -> &'static str {
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
