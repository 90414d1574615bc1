//! Graph writes used by the actions function (docs/actions.md), and the reads that go
//! with them (`/users/{id}/appRoleAssignments`, `/servicePrincipals/{id}`,
//! `/directory/deletedItems/{id}`). Every directory write goes through the same `Directory`
//! mutations as `TenantHandle`, so it shows up in the next delta round.
//!
//! Each write, in order: classified (`WriteOp`, counted per kind), charged to the tenant's
//! write budget (429 with `Retry-After` when it is spent), checked against the `roles` claim
//! of the caller's token (403 `Authorization_RequestDenied`), then applied.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::graph::{Cx, unknown_segment};
use crate::apps::{self, AssignError};
use crate::counters::WriteOp;
use crate::directory::{Directory, Life, MutationError, Patch, Refusal};
use crate::errors::{WriteTag, graph_json, with_header};
use crate::model::{Kind, Select, u};
use crate::throttle::Usage;

fn no_content() -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

const INSUFFICIENT: &str = "Insufficient privileges to complete the operation.";

fn denied(cx: &Cx<'_>) -> Response {
    cx.err(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        INSUFFICIENT,
    )
}

/// Maps a mutation error to Graph's status and code.
fn mutation_error(cx: &Cx<'_>, e: &MutationError) -> Response {
    match e {
        MutationError::NotFound(id) => cx.not_found(id),
        MutationError::NotMember { member, .. } => cx.not_found(member),
        MutationError::AlreadyMember { .. } => cx.bad_request(
            "One or more added object references already exist for the following modified properties: 'members'.",
        ),
        MutationError::UnknownProperty(p) => cx.bad_request(&format!(
            "Property '{p}' does not exist as a declared property or extension property."
        )),
        MutationError::ReadOnlyProperty(p) => {
            cx.bad_request(&format!("Property '{p}' is read-only and cannot be set."))
        }
        MutationError::InvalidValue(p) => {
            cx.bad_request(&format!("Invalid value specified for property '{p}'."))
        }
        MutationError::Invalid(msg) => cx.bad_request(msg),
    }
}

fn parse_body(cx: &Cx<'_>, body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(cx.bad_request("Write requests must contain a JSON object body.")),
    }
}

/// A user id from an id or a UPN.
fn user_key(dir: &Directory, key: &str) -> Option<String> {
    if dir.users.contains_key(key) {
        return Some(key.to_string());
    }
    dir.user_by_upn(key).map(|u| u.e.id.to_string())
}

/// A live user's id from an id or a UPN.
fn live_user_key(dir: &Directory, key: &str) -> Option<String> {
    user_key(dir, key).filter(|id| dir.users.get(id.as_str()).is_some_and(|u| u.e.is_live()))
}

/// The object id at the end of an `@odata.id` / `@odata.bind` URL.
fn ref_id(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let id = s.trim_end_matches('/').rsplit('/').next()?;
    let id = id
        .trim_start_matches("directoryObjects(")
        .trim_end_matches(')');
    let id = id.trim_matches('\'');
    (!id.is_empty()).then(|| id.to_string())
}

/// Graph's answer to a member write on a group that refuses them.
fn refused(cx: &Cx<'_>, why: Refusal) -> Response {
    match why {
        Refusal::ExchangeManaged => cx
            .bad_request("Cannot Update a mail-enabled security groups and or distribution list."),
        Refusal::OnPremisesSynced => cx.bad_request(
            "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
        ),
        // Graph answers member writes to dynamic groups as a privilege problem.
        Refusal::Dynamic => denied(cx),
    }
}

fn wall_now(cx: &Cx<'_>) -> String {
    cx.inner
        .clock
        .wall()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// What a write asks for, from method, path and (for PATCH) the body's keys; the second
/// value lists every op the request needs permission for.
fn classify(method: &Method, s: &[&str], body: &[u8]) -> (WriteOp, Vec<WriteOp>) {
    let keys = || -> Vec<String> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let one = |op| (op, vec![op]);
    match (method.clone(), s) {
        (Method::PATCH, ["users", _]) => {
            let body: Option<Map<String, Value>> = match serde_json::from_slice(body) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            };
            let mut ops = Vec::new();
            for k in body.iter().flat_map(|m| m.keys()) {
                let op = if k == "passwordProfile" {
                    WriteOp::ResetPassword
                } else if k == "accountEnabled" {
                    match body.as_ref().and_then(|m| m.get(k)) {
                        Some(Value::Bool(true)) => WriteOp::UnblockSignIn,
                        _ => WriteOp::BlockSignIn,
                    }
                } else {
                    WriteOp::UpdateUser
                };
                if !ops.contains(&op) {
                    ops.push(op);
                }
            }
            let first = [
                WriteOp::ResetPassword,
                WriteOp::BlockSignIn,
                WriteOp::UnblockSignIn,
                WriteOp::UpdateUser,
            ]
            .into_iter()
            .find(|o| ops.contains(o))
            .unwrap_or(WriteOp::UpdateUser);
            (first, ops)
        }
        (Method::PATCH, ["groups", _]) => {
            let keys = keys();
            let mut ops = Vec::new();
            if keys.iter().any(|k| k == "members@odata.bind") {
                ops.push(WriteOp::AddMembers);
            }
            if keys.iter().any(|k| k != "members@odata.bind") {
                ops.push(WriteOp::UpdateGroup);
            }
            (ops.first().copied().unwrap_or(WriteOp::UpdateGroup), ops)
        }
        (Method::POST, ["groups", _, "members", "$ref"]) => one(WriteOp::AddMember),
        (Method::DELETE, ["groups", _, "members", _, "$ref"]) => one(WriteOp::RemoveMember),
        (Method::POST, ["users", _, "revokeSignInSessions"]) => one(WriteOp::RevokeSessions),
        (Method::DELETE, ["users", _]) => one(WriteOp::DeleteUser),
        (Method::POST, ["directory", "deletedItems", _, "restore"]) => one(WriteOp::RestoreUser),
        (Method::DELETE, ["directory", "deletedItems", _]) => one(WriteOp::PurgeUser),
        (Method::POST, ["users", _, "appRoleAssignments"]) => one(WriteOp::AssignAppRole),
        (Method::DELETE, ["users", _, "appRoleAssignments", _]) => one(WriteOp::RemoveAppRole),
        _ => one(WriteOp::Other),
    }
}

/// POST / PATCH / DELETE under `/v1.0`.
pub(crate) fn handle(cx: &Cx<'_>, method: &Method, s: &[&str], body: &[u8]) -> Response {
    let (op, needs) = classify(method, s, body);
    let framed = cx.headers.contains_key(axum::http::header::CONTENT_LENGTH)
        || cx
            .headers
            .contains_key(axum::http::header::TRANSFER_ENCODING);
    if *method == Method::POST && !framed {
        // Graph refuses a POST without a length, even one that needs no body.
        let mut resp = cx.err(
            StatusCode::LENGTH_REQUIRED,
            "LengthRequired",
            "The request must be chunked or have a content length.",
        );
        resp.extensions_mut().insert(WriteTag(op));
        return resp;
    }
    let mut resp = match cx.charge(1, true) {
        Err(r) => r,
        Ok(usage) => {
            let allowed = needs.iter().all(|o| apps::allowed(&cx.roles, *o));
            let resp = if !allowed {
                denied(cx)
            } else if needs.contains(&WriteOp::ResetPassword)
                && !cx.tenant.password_reset_allowed.load(Ordering::SeqCst)
            {
                // The permission alone is not enough: the app also needs a directory role.
                denied(cx)
            } else {
                route(cx, method, s, body)
            };
            with_usage(resp, usage)
        }
    };
    resp.extensions_mut().insert(WriteTag(op));
    resp
}

/// Resource-unit headers on an answered write.
fn with_usage(resp: Response, usage: Option<Usage>) -> Response {
    let resp = with_header(resp, "x-ms-resource-unit", "1");
    match usage {
        Some(u) if u >= 0.8 => with_header(
            resp,
            "x-ms-throttle-limit-percentage",
            &format!("{:.1}", u.min(1.8)),
        ),
        _ => resp,
    }
}

fn route(cx: &Cx<'_>, method: &Method, s: &[&str], body: &[u8]) -> Response {
    match (method.clone(), s) {
        (Method::PATCH, ["users", id]) => patch_user(cx, id, body),
        (Method::DELETE, ["users", id]) => {
            let mut dir = cx.tenant.write();
            let Some(uid) = live_user_key(&dir, id) else {
                return cx.not_found(id);
            };
            match dir.delete_user(&uid) {
                Ok(()) => no_content(),
                Err(e) => mutation_error(cx, &e),
            }
        }
        (Method::POST, ["users", id, "revokeSignInSessions"]) => {
            let now = wall_now(cx);
            let mut dir = cx.tenant.write();
            let Some(uid) = live_user_key(&dir, id) else {
                return cx.not_found(id);
            };
            if let Err(e) = dir.stamp_user(&uid, u::SESSIONS_VALID_FROM, &now) {
                return mutation_error(cx, &e);
            }
            drop(dir);
            // Graph documents 204 but answers 200 with an Edm.Boolean (a known issue).
            graph_json(
                StatusCode::OK,
                &json!({"@odata.context": format!("{}/v1.0/$metadata#Edm.Boolean", cx.base), "value": true}),
            )
        }
        (Method::POST, ["users", id, "appRoleAssignments"]) => assign_app_role(cx, id, body),
        (Method::DELETE, ["users", id, "appRoleAssignments", aid]) => {
            let mut dir = cx.tenant.write();
            let Some(uid) = live_user_key(&dir, id) else {
                return cx.not_found(id);
            };
            if dir.apps.remove(&uid, aid) {
                no_content()
            } else {
                cx.not_found(aid)
            }
        }
        (Method::POST, ["groups", gid, "members", "$ref"]) => {
            let Ok(m) = parse_body(cx, body) else {
                return cx.bad_request("Write requests must contain a JSON object body.");
            };
            let Some(mid) = m.get("@odata.id").and_then(ref_id) else {
                return cx.bad_request("Invalid object identifier in '@odata.id'.");
            };
            let mut dir = cx.tenant.write();
            match dir.groups.get(*gid).filter(|g| g.e.is_live()) {
                None => return cx.not_found(gid),
                Some(g) => {
                    if let Some(why) = g.membership_refusal() {
                        return refused(cx, why);
                    }
                }
            }
            match dir.add_member(gid, &mid) {
                Ok(()) => no_content(),
                Err(e) => mutation_error(cx, &e),
            }
        }
        (Method::DELETE, ["groups", gid, "members", mid, "$ref"]) => {
            let mut dir = cx.tenant.write();
            match dir.groups.get(*gid).filter(|g| g.e.is_live()) {
                None => return cx.not_found(gid),
                Some(g) => {
                    if let Some(why) = g.membership_refusal() {
                        return refused(cx, why);
                    }
                }
            }
            match dir.remove_member(gid, mid) {
                Ok(()) => no_content(),
                Err(e) => mutation_error(cx, &e),
            }
        }
        (Method::PATCH, ["groups", gid]) => patch_group(cx, gid, body),
        (Method::POST, ["directory", "deletedItems", id, "restore"]) => {
            let mut dir = cx.tenant.write();
            match dir.restore_user(id) {
                Ok(()) => {
                    let sel = Select {
                        rel: false,
                        ..Select::default_for(Kind::User)
                    };
                    let mut obj = dir
                        .users
                        .get(*id)
                        .map(|u| u.e.json(Kind::User, &sel, None, false))
                        .unwrap_or_default();
                    obj.insert("@odata.type".into(), json!("#microsoft.graph.user"));
                    graph_json(StatusCode::OK, &Value::Object(obj))
                }
                Err(e) => mutation_error(cx, &e),
            }
        }
        (Method::DELETE, ["directory", "deletedItems", id]) => {
            let mut dir = cx.tenant.write();
            if !dir
                .users
                .get(*id)
                .is_some_and(|u| u.e.life == Life::SoftDeleted)
            {
                return cx.not_found(id);
            }
            match dir.purge_user(id) {
                Ok(()) => no_content(),
                Err(e) => mutation_error(cx, &e),
            }
        }
        _ => unknown_segment(cx, s),
    }
}

/// Entra's password rule: 8 to 256 characters, at least three of lower case, upper case,
/// digits and symbols.
fn complex_enough(password: &str) -> bool {
    let len = password.chars().count();
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    (8..=256).contains(&len) && classes.iter().filter(|c| **c).count() >= 3
}

/// `PATCH /users/{id}`: property patch. `passwordProfile` (permission and directory role
/// already checked) is validated, never stored, and stamps `lastPasswordChangeDateTime`.
fn patch_user(cx: &Cx<'_>, id: &str, body: &[u8]) -> Response {
    let mut patch: Patch = match parse_body(cx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let password = patch.remove("passwordProfile");
    if let Some(profile) = &password {
        let Some(secret) = profile.get("password").and_then(Value::as_str) else {
            return cx.bad_request("Invalid value specified for property 'passwordProfile'.");
        };
        if profile
            .get("forceChangePasswordNextSignIn")
            .is_some_and(|v| !v.is_boolean())
        {
            return cx.bad_request("Invalid value specified for property 'passwordProfile'.");
        }
        if !complex_enough(secret) {
            return cx.bad_request(
                "The specified password does not comply with password complexity requirements. Please provide a different password.",
            );
        }
    }
    let now = wall_now(cx);
    let mut dir = cx.tenant.write();
    let Some(uid) = live_user_key(&dir, id) else {
        return cx.not_found(id);
    };
    if !patch.is_empty()
        && let Err(e) = dir.update_user(&uid, &patch)
    {
        return mutation_error(cx, &e);
    }
    if password.is_some()
        && let Err(e) = dir.stamp_user(&uid, u::LAST_PASSWORD_CHANGE, &now)
    {
        return mutation_error(cx, &e);
    }
    no_content()
}

/// `POST /users/{id}/appRoleAssignments` `{"principalId","resourceId","appRoleId"}`: 201 with
/// the assignment.
fn assign_app_role(cx: &Cx<'_>, id: &str, body: &[u8]) -> Response {
    let m = match parse_body(cx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let field = |name: &str| m.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(principal), Some(resource), Some(role)) = (
        field("principalId"),
        field("resourceId"),
        field("appRoleId"),
    ) else {
        return cx
            .bad_request("The request must contain 'principalId', 'resourceId' and 'appRoleId'.");
    };
    let now = wall_now(cx);
    let mut dir = cx.tenant.write();
    let Some(uid) = live_user_key(&dir, id) else {
        return cx.not_found(id);
    };
    if !principal.eq_ignore_ascii_case(&uid) {
        return cx.bad_request("The principalId in the request body must be the user in the URL.");
    }
    let principal_name = dir.users.get(uid.as_str()).and_then(|u| {
        u.e.prop(crate::model::u::DISPLAY_NAME)
            .as_str()
            .map(str::to_string)
    });
    let created = match dir.apps.assign(&uid, &resource, &role, &now) {
        Ok(a) => a.clone(),
        Err(AssignError::ResourceNotFound) => return cx.not_found(&resource),
        Err(AssignError::RoleNotFound(app_id)) => {
            return cx.bad_request(&format!(
                "Permission being assigned was not found on application '{app_id}'."
            ));
        }
        Err(AssignError::Duplicate) => {
            return cx.bad_request("Permission being assigned already exists on the object.");
        }
    };
    let mut obj = dir
        .apps
        .assignment_json(&created, principal_name.as_deref());
    obj["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#users('{uid}')/appRoleAssignments/$entity",
        cx.base
    ));
    graph_json(StatusCode::CREATED, &obj)
}

/// `GET /users/{id}/appRoleAssignments`.
pub(crate) fn list_app_role_assignments(cx: &Cx<'_>, id: &str) -> Response {
    let cost = 1;
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let Some(uid) = live_user_key(&dir, id) else {
        return cx.not_found(id);
    };
    let name = dir.users.get(uid.as_str()).and_then(|u| {
        u.e.prop(crate::model::u::DISPLAY_NAME)
            .as_str()
            .map(str::to_string)
    });
    let items: Vec<Value> = dir
        .apps
        .of_user(&uid)
        .iter()
        .map(|a| dir.apps.assignment_json(a, name.as_deref()))
        .collect();
    drop(dir);
    let body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users('{uid}')/appRoleAssignments", cx.base),
        "value": items,
    });
    cx.ok(&body, cost, usage)
}

/// `GET /servicePrincipals/{id}`.
pub(crate) fn service_principal(cx: &Cx<'_>, id: &str) -> Response {
    let cost = 1;
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let Some(sp) = dir.apps.service_principals.get(id) else {
        return cx.not_found(id);
    };
    let mut obj = apps::Apps::service_principal_json(sp);
    drop(dir);
    obj["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#servicePrincipals/$entity",
        cx.base
    ));
    cx.ok(&obj, cost, usage)
}

/// `GET /directory/deletedItems/{id}`: a soft-deleted user, else 404.
pub(crate) fn deleted_item(cx: &Cx<'_>, id: &str) -> Response {
    let cost = 1;
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let sel = Select {
        rel: false,
        ..Select::default_for(Kind::User)
    };
    let dir = cx.tenant.read();
    let Some(user) = dir.users.get(id).filter(|u| u.e.life == Life::SoftDeleted) else {
        return cx.not_found(id);
    };
    let mut obj = user.e.json(Kind::User, &sel, None, false);
    drop(dir);
    obj.insert("@odata.type".into(), json!("#microsoft.graph.user"));
    obj.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/v1.0/$metadata#directory/deletedItems/$entity",
            cx.base
        )),
    );
    cx.ok(&Value::Object(obj), cost, usage)
}

/// `PATCH /groups/{id}`: property patch and/or `members@odata.bind` (at most 20, all or
/// nothing).
fn patch_group(cx: &Cx<'_>, gid: &str, body: &[u8]) -> Response {
    let mut patch: Patch = match parse_body(cx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let binds = patch.remove("members@odata.bind");
    let mut dir = cx.tenant.write();
    let Some(grp) = dir.groups.get(gid).filter(|g| g.e.is_live()) else {
        return cx.not_found(gid);
    };
    let mut to_add = Vec::new();
    if let Some(binds) = binds {
        let Some(list) = binds.as_array() else {
            return cx.bad_request("'members@odata.bind' must be an array.");
        };
        if list.len() > 20 {
            return cx.bad_request(
                "The request contains more than 20 member references; add at most 20 members per request.",
            );
        }
        if let Some(why) = grp.membership_refusal() {
            return refused(cx, why);
        }
        for v in list {
            let Some(mid) = ref_id(v) else {
                return cx.bad_request("Invalid object identifier in 'members@odata.bind'.");
            };
            if grp.members.contains_key(mid.as_str()) {
                return mutation_error(
                    cx,
                    &MutationError::AlreadyMember {
                        group: gid.to_string(),
                        member: mid,
                    },
                );
            }
            let exists = dir.users.get(mid.as_str()).is_some_and(|u| u.e.is_live())
                || dir.groups.get(mid.as_str()).is_some_and(|g| g.e.is_live());
            if !exists {
                return cx.not_found(&mid);
            }
            to_add.push(mid);
        }
    }
    if !patch.is_empty()
        && let Err(e) = dir.update_group(gid, &patch)
    {
        return mutation_error(cx, &e);
    }
    for mid in to_add {
        if let Err(e) = dir.add_member(gid, &mid) {
            return mutation_error(cx, &e);
        }
    }
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_classified_from_method_path_and_body() {
        let c = |m: Method, p: &str, b: &str| {
            let s: Vec<&str> = p.split('/').collect();
            classify(&m, &s, b.as_bytes())
        };
        assert_eq!(
            c(Method::PATCH, "users/u", r#"{"accountEnabled":false}"#).0,
            WriteOp::BlockSignIn
        );
        assert_eq!(
            c(Method::PATCH, "users/u", r#"{"accountEnabled":true}"#).0,
            WriteOp::UnblockSignIn
        );
        let (op, needs) = c(
            Method::PATCH,
            "users/u",
            r#"{"passwordProfile":{"password":"x"},"city":"Oslo"}"#,
        );
        assert_eq!(op, WriteOp::ResetPassword);
        assert!(needs.contains(&WriteOp::UpdateUser));
        assert_eq!(
            c(Method::PATCH, "groups/g", r#"{"members@odata.bind":[]}"#).0,
            WriteOp::AddMembers
        );
        assert_eq!(
            c(Method::DELETE, "groups/g/members/m/$ref", "").0,
            WriteOp::RemoveMember
        );
        assert_eq!(
            c(Method::DELETE, "users/u/appRoleAssignments/a", "").0,
            WriteOp::RemoveAppRole
        );
        assert_eq!(c(Method::POST, "users/u/other", "").0, WriteOp::Other);
    }

    #[test]
    fn password_complexity_follows_entra() {
        assert!(complex_enough("Abcdefg1"));
        assert!(complex_enough("abc-def-1"));
        assert!(!complex_enough("Abc1"));
        assert!(!complex_enough("abcdefgh"));
        assert!(!complex_enough("abcdefg1"));
    }
}
