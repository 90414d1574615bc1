use std::collections::{HashMap, HashSet, VecDeque};

use tracing::warn;

use super::settings::load_settings;
use super::{ProjectDeps, ProjectError};
use crate::error::SyncError;
use crate::model::{Connection, MemberType, TenantId};
use crate::ports::MirrorStore;
use crate::settings::ConnectionSettings;

/// Everything a scan needs, loaded once.
pub(super) struct Context {
    pub(super) connection: Connection,
    pub(super) settings: ConnectionSettings,
    pub(super) verified_domains: Vec<String>,
    /// Members (direct or nested) of the filter's groups, when the group section restricts.
    pub(super) scope_members: Option<HashSet<String>>,
    /// Members (direct or nested) of every group mapped to a role.
    pub(super) role_members: HashMap<String, HashSet<String>>,
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
        S::NeedsReauthorization { reason, .. } => Some(ProjectError::Unavailable {
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

/// The connection of `tenant`, if it may sync (connected).
pub(super) async fn usable_connection(
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

pub(super) async fn load_context(
    deps: &ProjectDeps,
    tenant: &TenantId,
) -> Result<Context, ProjectError> {
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
