//! Enterprise applications (service principals with app roles), users' app role assignments,
//! the application permissions a tenant granted, and how all of it is saved with the state.
//!
//! App role assignments do not appear in users delta (Graph does not track them there); they
//! are read with `GET /users/{id}/appRoleAssignments`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The app role id of "default access".
pub(crate) const DEFAULT_ACCESS_ROLE: &str = "00000000-0000-0000-0000-000000000000";

/// An enterprise application to create through `TenantHandle::create_service_principal`.
#[derive(Clone, Debug, Default)]
pub struct NewServicePrincipal {
    pub display_name: String,
    /// `value`s of the app roles it defines (assignable to users); ids are generated.
    pub app_roles: Vec<String>,
}

impl NewServicePrincipal {
    pub fn new(display_name: impl Into<String>, app_roles: &[&str]) -> Self {
        Self {
            display_name: display_name.into(),
            app_roles: app_roles.iter().map(|r| (*r).to_string()).collect(),
        }
    }
}

/// A created enterprise application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipalInfo {
    /// The service principal's object id (an assignment's `resourceId`).
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    /// `(value, id)` of each app role, in the order given.
    pub app_roles: Vec<(String, String)>,
}

impl ServicePrincipalInfo {
    /// The id of the app role with this value.
    pub fn role_id(&self, value: &str) -> Option<&str> {
        self.app_roles
            .iter()
            .find(|(v, _)| v == value)
            .map(|(_, id)| id.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AppRole {
    pub(crate) id: String,
    pub(crate) value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ServicePrincipal {
    pub(crate) id: String,
    pub(crate) app_id: String,
    pub(crate) display_name: String,
    pub(crate) app_roles: Vec<AppRole>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Assignment {
    pub(crate) id: String,
    pub(crate) app_role_id: String,
    pub(crate) principal_id: String,
    pub(crate) resource_id: String,
    pub(crate) created: String,
}

/// Why an assignment was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AssignError {
    ResourceNotFound,
    /// The role id is not one of the application's roles (carries the app id).
    RoleNotFound(String),
    Duplicate,
}

/// Service principals and assignments of one tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Apps {
    pub(crate) service_principals: BTreeMap<String, ServicePrincipal>,
    /// User id -> the user's assignments, oldest first.
    pub(crate) assignments: BTreeMap<String, Vec<Assignment>>,
}

fn random_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Graph's assignment ids are 43-character base64url strings.
fn assignment_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Apps {
    pub(crate) fn create(&mut self, new: &NewServicePrincipal) -> ServicePrincipalInfo {
        let sp = ServicePrincipal {
            id: random_guid(),
            app_id: random_guid(),
            display_name: new.display_name.clone(),
            app_roles: new
                .app_roles
                .iter()
                .map(|v| AppRole {
                    id: random_guid(),
                    value: v.clone(),
                })
                .collect(),
        };
        let info = ServicePrincipalInfo {
            id: sp.id.clone(),
            app_id: sp.app_id.clone(),
            display_name: sp.display_name.clone(),
            app_roles: sp
                .app_roles
                .iter()
                .map(|r| (r.value.clone(), r.id.clone()))
                .collect(),
        };
        self.service_principals.insert(sp.id.clone(), sp);
        info
    }

    /// Assigns `role` of `resource` to `user`. Default access is always assignable.
    pub(crate) fn assign(
        &mut self,
        user: &str,
        resource: &str,
        role: &str,
        now: &str,
    ) -> Result<&Assignment, AssignError> {
        let sp = self
            .service_principals
            .get(resource)
            .ok_or(AssignError::ResourceNotFound)?;
        let known = role.eq_ignore_ascii_case(DEFAULT_ACCESS_ROLE)
            || sp.app_roles.iter().any(|r| r.id.eq_ignore_ascii_case(role));
        if !known {
            return Err(AssignError::RoleNotFound(sp.app_id.clone()));
        }
        let list = self.assignments.entry(user.to_string()).or_default();
        if list.iter().any(|a| {
            a.resource_id.eq_ignore_ascii_case(resource) && a.app_role_id.eq_ignore_ascii_case(role)
        }) {
            return Err(AssignError::Duplicate);
        }
        list.push(Assignment {
            id: assignment_id(),
            app_role_id: role.to_ascii_lowercase(),
            principal_id: user.to_string(),
            resource_id: resource.to_string(),
            created: now.to_string(),
        });
        list.last().ok_or(AssignError::Duplicate)
    }

    /// Removes one assignment of `user`; whether it existed.
    pub(crate) fn remove(&mut self, user: &str, assignment: &str) -> bool {
        let Some(list) = self.assignments.get_mut(user) else {
            return false;
        };
        let before = list.len();
        list.retain(|a| a.id != assignment);
        list.len() != before
    }

    pub(crate) fn of_user(&self, user: &str) -> &[Assignment] {
        self.assignments.get(user).map_or(&[], Vec::as_slice)
    }

    /// A purged user loses its assignments.
    pub(crate) fn drop_user(&mut self, user: &str) {
        self.assignments.remove(user);
    }

    /// The `appRoleAssignment` JSON Graph returns.
    pub(crate) fn assignment_json(&self, a: &Assignment, principal_name: Option<&str>) -> Value {
        let resource_name = self
            .service_principals
            .get(&a.resource_id)
            .map(|sp| sp.display_name.as_str());
        json!({
            "id": a.id,
            "deletedDateTime": null,
            "appRoleId": a.app_role_id,
            "createdDateTime": a.created,
            "principalDisplayName": principal_name,
            "principalId": a.principal_id,
            "principalType": "User",
            "resourceDisplayName": resource_name,
            "resourceId": a.resource_id,
        })
    }

    /// The `servicePrincipal` JSON (the properties the emulator keeps).
    pub(crate) fn service_principal_json(sp: &ServicePrincipal) -> Value {
        let roles: Vec<Value> = sp
            .app_roles
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "value": r.value,
                    "displayName": r.value,
                    "description": r.value,
                    "allowedMemberTypes": ["User"],
                    "isEnabled": true,
                    "origin": "Application",
                })
            })
            .collect();
        json!({
            "id": sp.id,
            "appId": sp.app_id,
            "displayName": sp.display_name,
            "servicePrincipalType": "Application",
            "accountEnabled": true,
            "appRoleAssignmentRequired": false,
            "appRoles": roles,
        })
    }
}

/// Application permissions that let the app do a write, least privileged first (mirrors what
/// Graph accepts; the password reset needs its own permission and a directory role).
pub(crate) fn sufficient(op: crate::counters::WriteOp) -> &'static [&'static str] {
    use crate::counters::WriteOp;
    match op {
        WriteOp::AddMember | WriteOp::AddMembers | WriteOp::RemoveMember => &[
            "GroupMember.ReadWrite.All",
            "Group.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteOp::UpdateGroup => &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
        WriteOp::BlockSignIn | WriteOp::UnblockSignIn => &[
            "User.EnableDisableAccount.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteOp::ResetPassword => &["User-PasswordProfile.ReadWrite.All"],
        WriteOp::UpdateUser => &["User.ReadWrite.All", "Directory.ReadWrite.All"],
        WriteOp::RevokeSessions => &[
            "User.RevokeSessions.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteOp::DeleteUser | WriteOp::RestoreUser | WriteOp::PurgeUser => &[
            "User.DeleteRestore.All",
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        WriteOp::AssignAppRole | WriteOp::RemoveAppRole => &["AppRoleAssignment.ReadWrite.All"],
        WriteOp::Other => &[],
    }
}

/// Whether `granted` lets the app do `op` (`Other` needs nothing: it ends in a 400 anyway).
pub(crate) fn allowed(granted: &[String], op: crate::counters::WriteOp) -> bool {
    let needed = sufficient(op);
    needed.is_empty()
        || needed
            .iter()
            .any(|p| granted.iter().any(|g| g.eq_ignore_ascii_case(p)))
}

/// The permissions an admin-consent `scope` parameter asks for: `.default` stands for the app
/// registration's permissions; `https://graph.microsoft.com/X` and bare `X` for X; OpenID
/// scopes are ignored.
pub(crate) fn permissions_from_scope(scope: &str, registered: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in scope.split_whitespace() {
        let name = item.rsplit('/').next().unwrap_or(item);
        match name {
            "" | "openid" | "profile" | "email" | "offline_access" => {}
            ".default" => out.extend(registered.iter().cloned()),
            other => {
                out.insert(other.to_string());
            }
        }
    }
    out
}

/// What the persistence layer saves of a tenant besides its directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SavedActions {
    #[serde(default)]
    pub(crate) granted: Vec<String>,
    #[serde(default)]
    pub(crate) apps: Apps,
}

/// Captures a tenant's granted permissions and applications.
pub(crate) fn capture(t: &crate::state::TenantState) -> SavedActions {
    SavedActions {
        granted: t.granted(),
        apps: t.read().apps.clone(),
    }
}

/// Puts them back into a restored tenant.
pub(crate) fn restore(t: &crate::state::TenantState, saved: SavedActions) {
    t.set_granted(saved.granted);
    t.write().apps = saved.apps;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::WriteOp;

    #[test]
    fn assignments_refuse_duplicates_and_unknown_roles() {
        let mut apps = Apps::default();
        let sp = apps.create(&NewServicePrincipal::new("Payroll", &["Reader"]));
        let reader = sp.role_id("Reader").map(str::to_string).unwrap_or_default();
        assert!(apps.assign("u1", &sp.id, &reader, "now").is_ok());
        assert_eq!(
            apps.assign("u1", &sp.id, &reader.to_uppercase(), "now")
                .err(),
            Some(AssignError::Duplicate)
        );
        assert!(
            apps.assign("u1", &sp.id, DEFAULT_ACCESS_ROLE, "now")
                .is_ok()
        );
        assert_eq!(
            apps.assign("u1", &sp.id, "9b6f6f0e-0000-4000-8000-000000000000", "now")
                .err(),
            Some(AssignError::RoleNotFound(sp.app_id.clone()))
        );
        assert_eq!(
            apps.assign("u1", "nope", DEFAULT_ACCESS_ROLE, "now").err(),
            Some(AssignError::ResourceNotFound)
        );
        let id = apps.of_user("u1")[0].id.clone();
        assert_eq!(id.len(), 43);
        assert!(apps.remove("u1", &id));
        assert!(!apps.remove("u1", &id));
        assert_eq!(apps.of_user("u1").len(), 1);
    }

    #[test]
    fn consent_scopes_and_permission_checks() {
        let registered = vec![
            "User.Read.All".to_string(),
            "GroupMember.ReadWrite.All".into(),
        ];
        let got = permissions_from_scope(
            "openid https://graph.microsoft.com/User.EnableDisableAccount.All offline_access",
            &registered,
        );
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["User.EnableDisableAccount.All"]
        );
        let got = permissions_from_scope("https://graph.microsoft.com/.default", &registered);
        assert_eq!(got.len(), 2);
        let granted = vec!["directory.readwrite.all".to_string()];
        assert!(allowed(&granted, WriteOp::AddMember));
        assert!(allowed(&granted, WriteOp::DeleteUser));
        assert!(!allowed(&granted, WriteOp::ResetPassword));
        assert!(!allowed(&granted, WriteOp::AssignAppRole));
        assert!(allowed(&[], WriteOp::Other));
    }
}
