//! Graph writes used by the actions function (GRAPH.md section 8). Every write goes through
//! the same `Directory` mutations as `TenantHandle`, so it shows up in the next delta round.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::graph::{Cx, unknown_segment};
use crate::directory::{Directory, Life, MutationError, Patch};
use crate::errors::graph_json;
use crate::model::{Kind, Select};

fn no_content() -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
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

fn read_only_group(cx: &Cx<'_>) -> Response {
    cx.bad_request("Cannot Update a mail-enabled security groups and or distribution list.")
}

/// POST / PATCH / DELETE under `/v1.0`.
pub(crate) fn handle(cx: &Cx<'_>, method: &Method, s: &[&str], body: &[u8]) -> Response {
    if let Err(r) = cx.charge(1, true) {
        return r;
    }
    match (method.clone(), s) {
        (Method::PATCH, ["users", id]) => patch_user(cx, id, body),
        (Method::DELETE, ["users", id]) => {
            let mut dir = cx.tenant.write();
            let Some(uid) = user_key(&dir, id) else {
                return cx.not_found(id);
            };
            match dir.delete_user(&uid) {
                Ok(()) => no_content(),
                Err(e) => mutation_error(cx, &e),
            }
        }
        (Method::POST, ["users", id, "revokeSignInSessions"]) => {
            let dir = cx.tenant.read();
            if user_key(&dir, id)
                .is_none_or(|u| !dir.users.get(u.as_str()).is_some_and(|x| x.e.is_live()))
            {
                return cx.not_found(id);
            }
            drop(dir);
            graph_json(
                StatusCode::OK,
                &json!({"@odata.context": format!("{}/v1.0/$metadata#Edm.Boolean", cx.base), "value": true}),
            )
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
                Some(g) if g.is_read_only_membership() => return read_only_group(cx),
                Some(_) => {}
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
                Some(g) if g.is_read_only_membership() => return read_only_group(cx),
                Some(_) => {}
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

/// `PATCH /users/{id}`: property patch; `passwordProfile` is accepted (not stored) when the
/// tenant allows password resets, else 403.
fn patch_user(cx: &Cx<'_>, id: &str, body: &[u8]) -> Response {
    let mut patch: Patch = match parse_body(cx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if patch.remove("passwordProfile").is_some()
        && !cx.tenant.password_reset_allowed.load(Ordering::SeqCst)
    {
        return cx.err(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let mut dir = cx.tenant.write();
    let Some(uid) = user_key(&dir, id) else {
        return cx.not_found(id);
    };
    if patch.is_empty() {
        return if dir.users.get(uid.as_str()).is_some_and(|u| u.e.is_live()) {
            no_content()
        } else {
            cx.not_found(id)
        };
    }
    match dir.update_user(&uid, &patch) {
        Ok(()) => no_content(),
        Err(e) => mutation_error(cx, &e),
    }
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
        if grp.is_read_only_membership() {
            return read_only_group(cx);
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
