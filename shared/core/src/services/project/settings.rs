use std::collections::{BTreeSet, HashMap, HashSet};

use tracing::info;

use super::context::usable_connection;
use super::run::{new_run, project_run};
use super::scan::BATCH;
use super::{ProjectDeps, ProjectError};
use crate::error::StoreError;
use crate::model::{StoredGroup, TenantId};
use crate::ports::{MirrorStore, Pages, SettingsStore};
use crate::run::{SyncRun, Trigger};
use crate::settings::{ConnectionSettings, SettingsChange, SettingsError, changes, edited_version};

/// The settings of a connection (the defaults when never saved).
pub async fn load_settings(
    settings: &dyn SettingsStore,
    tenant: &TenantId,
) -> Result<ConnectionSettings, StoreError> {
    Ok(settings.get_settings(tenant).await?.unwrap_or_default())
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
        let mut pages = Pages::default();
        while let Some(after) = pages.next_after() {
            let page = mirror.list_groups(tenant, after, BATCH).await?;
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
            pages.advance(page.next);
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
