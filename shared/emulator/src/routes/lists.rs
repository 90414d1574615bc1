//! Plain list endpoints (the naive baseline's API): `/users`, `/groups`,
//! `/groups/{id}/members`, `/groups/{id}/transitiveMembers`, deleted users.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::graph::{Cx, live_after, read_cost};
use crate::directory::Entity;
use crate::model::{Kind, Pv, Select, parse_select};
use crate::tokens::ListToken;

/// `$top`: default `default`, 1..=999.
fn parse_top(cx: &Cx<'_>, default: usize) -> Result<usize, Response> {
    match cx.query.get("top") {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n),
            _ => Err(cx.bad_request(&format!(
                "Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
            ))),
        },
    }
}

/// The `after` id of a list `$skiptoken`.
fn list_after(cx: &Cx<'_>) -> Result<Option<String>, Response> {
    let Some(raw) = cx.query.non_empty("skiptoken") else {
        return Ok(None);
    };
    match cx.inner.codec.decode::<ListToken>(raw) {
        Some(t) if t.tenant == cx.tenant.fingerprint && t.path == cx.path => Ok(Some(t.after)),
        _ => Err(cx.bad_request("The skip token is malformed or was not issued for this request.")),
    }
}

/// nextLink for a list page ending at `after`.
fn next_link(cx: &Cx<'_>, after: &str) -> String {
    let token = cx.inner.codec.encode(&ListToken {
        tenant: cx.tenant.fingerprint,
        path: cx.path.clone(),
        after: after.to_string(),
    });
    let rest = cx.query.without_skiptoken();
    if rest.is_empty() {
        format!("{}{}?$skiptoken={token}", cx.base, cx.path)
    } else {
        format!("{}{}?{rest}&$skiptoken={token}", cx.base, cx.path)
    }
}

/// Checks `$count`, `$orderby`, `$search` against `ConsistencyLevel`; returns whether
/// `@odata.count` is wanted.
fn advanced_query(cx: &Cx<'_>) -> Result<bool, Response> {
    let count = cx
        .query
        .get("count")
        .is_some_and(|c| c.eq_ignore_ascii_case("true"));
    if (count || cx.query.has("search") || cx.query.has("orderby")) && !cx.eventual() {
        return Err(cx.err(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Unsupported query: advanced queries ($count, $search, $orderby) need the header 'ConsistencyLevel: eventual'.",
        ));
    }
    if cx.query.has("search") || cx.query.has("orderby") {
        return Err(cx.err(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "$search and $orderby are not supported by the emulator.",
        ));
    }
    Ok(count)
}

/// A simple `prop eq literal` filter.
struct EqFilter {
    prop: usize,
    value: Pv,
    sign_in: bool,
}

impl EqFilter {
    fn matches(&self, e: &Entity) -> bool {
        if self.sign_in {
            return true;
        }
        match (e.prop(self.prop), &self.value) {
            (Pv::Str(a), Pv::Str(b)) => a.eq_ignore_ascii_case(b),
            (Pv::Bool(a), Pv::Bool(b)) => a == b,
            (Pv::Null | Pv::Unset, Pv::Null) => true,
            _ => false,
        }
    }
}

fn parse_filter(cx: &Cx<'_>, kind: Kind, raw: &str) -> Result<EqFilter, Response> {
    let unsupported = || {
        cx.err(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified: only \"property eq value\" is supported by the emulator.",
        )
    };
    let lower = raw.to_ascii_lowercase();
    let Some(at) = lower.find(" eq ") else {
        return Err(unsupported());
    };
    let prop = raw[..at].trim();
    let literal = raw[at + 4..].trim();
    if kind == Kind::User && prop.to_ascii_lowercase().starts_with("signinactivity") {
        return Ok(EqFilter {
            prop: 0,
            value: Pv::Unset,
            sign_in: true,
        });
    }
    let Some(i) = kind.prop_index(prop) else {
        return Err(cx.bad_request(&format!(
            "Could not find a property named '{prop}' on type '{}'.",
            kind.type_name()
        )));
    };
    let value = if let Some(s) = literal
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
    {
        Pv::str(s.replace("''", "'"))
    } else if literal.eq_ignore_ascii_case("true") {
        Pv::Bool(true)
    } else if literal.eq_ignore_ascii_case("false") {
        Pv::Bool(false)
    } else if literal.eq_ignore_ascii_case("null") {
        Pv::Null
    } else {
        return Err(unsupported());
    };
    Ok(EqFilter {
        prop: i,
        value,
        sign_in: false,
    })
}

/// A deterministic `signInActivity` for premium tenants.
fn sign_in_activity(id: &str) -> Value {
    let h = crate::state::fingerprint(id);
    let day = 1 + h % 28;
    let month = 1 + (h >> 8) % 12;
    let last = format!(
        "2025-{month:02}-{day:02}T{:02}:{:02}:00Z",
        (h >> 16) % 24,
        (h >> 24) % 60
    );
    json!({
        "lastSignInDateTime": last,
        "lastSignInRequestId": format!("{:016x}", h),
        "lastNonInteractiveSignInDateTime": last,
        "lastNonInteractiveSignInRequestId": format!("{:016x}", h.rotate_left(7)),
        "lastSuccessfulSignInDateTime": last,
        "lastSuccessfulSignInRequestId": format!("{:016x}", h.rotate_left(13)),
    })
}

/// `GET /users` and `GET /groups`.
fn list(cx: &Cx<'_>, kind: Kind) -> Response {
    let q = &cx.query;
    let mut top = match parse_top(cx, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let extra: &[&'static str] = if kind == Kind::User {
        &["signInActivity"]
    } else {
        &[]
    };
    let (sel, extras) = match q.get("select") {
        Some(raw) => match parse_select(kind, raw, extra, false) {
            Ok((s, x)) => (Select { rel: false, ..s }, x),
            Err(e) => return cx.select_error(kind, e),
        },
        None => (
            Select {
                rel: false,
                ..Select::default_for(kind)
            },
            Vec::new(),
        ),
    };
    let filter = match q.non_empty("filter") {
        Some(raw) => match parse_filter(cx, kind, raw) {
            Ok(f) => Some(f),
            Err(r) => return r,
        },
        None => None,
    };
    let sign_in = extras.contains(&"signInActivity") || filter.as_ref().is_some_and(|f| f.sign_in);
    if sign_in {
        if !cx.tenant.premium.load(Ordering::SeqCst) {
            return cx.err(
                StatusCode::FORBIDDEN,
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                "Neither tenant is B2C or tenant doesn't have premium license",
            );
        }
        top = top.min(120);
    }
    let expand_manager = match q.get("expand") {
        None => false,
        Some(e) if kind == Kind::User && e.trim().to_ascii_lowercase().starts_with("manager") => {
            true
        }
        Some(e) => {
            return cx.bad_request(&format!(
                "Could not find a navigation property named '{e}' on type '{}' that can be expanded.",
                kind.type_name()
            ));
        }
    };
    let count = match advanced_query(cx) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let after = match list_after(cx) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cost = read_cost(if kind == Kind::User { 2 } else { 1 }, q);
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let matches = |e: &Entity| filter.as_ref().is_none_or(|f| f.matches(e));
    let mut items = Vec::with_capacity(top);
    let mut last: Option<&str> = None;
    let mut more = false;
    for (id, e) in live_after(&dir, kind, after.as_deref()) {
        if !matches(e) {
            continue;
        }
        if items.len() == top {
            more = true;
            break;
        }
        let mut obj = e.json(kind, &sel, None, false);
        if sign_in && extras.contains(&"signInActivity") {
            obj.insert("signInActivity".into(), sign_in_activity(id));
        }
        if expand_manager {
            let mgr = dir
                .users
                .get(id)
                .and_then(|u| u.manager.as_ref())
                .and_then(|m| dir.users.get(m));
            if let Some(m) = mgr {
                obj.insert(
                    "manager".into(),
                    json!({"@odata.type": "#microsoft.graph.user", "id": &*m.e.id,
                           "displayName": m.e.prop(crate::model::u::DISPLAY_NAME).to_json()}),
                );
            }
        }
        items.push(Value::Object(obj));
        last = Some(id);
    }
    let total = count.then(|| {
        live_after(&dir, kind, None)
            .filter(|(_, e)| matches(e))
            .count()
    });
    let next = match (more, last) {
        (true, Some(l)) => Some(next_link(cx, l)),
        _ => None,
    };
    drop(dir);
    let mut body = Map::new();
    let context = if sel.explicit {
        format!(
            "{}/v1.0/$metadata#{}({})",
            cx.base,
            kind.collection(),
            sel.names(kind)
        )
    } else {
        format!("{}/v1.0/$metadata#{}", cx.base, kind.collection())
    };
    body.insert("@odata.context".into(), Value::String(context));
    if let Some(n) = total {
        body.insert("@odata.count".into(), json!(n));
    }
    if let Some(n) = next {
        body.insert("@odata.nextLink".into(), Value::String(n));
    }
    body.insert("value".into(), Value::Array(items));
    cx.ok(&Value::Object(body), cost, usage)
}

/// `GET /users`.
pub(crate) fn users(cx: &Cx<'_>) -> Response {
    list(cx, Kind::User)
}

/// `GET /groups`.
pub(crate) fn groups(cx: &Cx<'_>) -> Response {
    list(cx, Kind::Group)
}

/// Per-kind selects for a directoryObject collection `$select`.
fn member_selects(cx: &Cx<'_>) -> Result<(Select, Select), Response> {
    let Some(raw) = cx.query.get("select") else {
        return Ok((
            Select {
                rel: false,
                ..Select::default_for(Kind::User)
            },
            Select::all(Kind::Group, false),
        ));
    };
    let mut us = Select {
        props: 1,
        rel: false,
        explicit: true,
    };
    let mut gs = us;
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ui = Kind::User.prop_index(name);
        let gi = Kind::Group.prop_index(name);
        if ui.is_none() && gi.is_none() {
            return Err(cx.bad_request(&format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.directoryObject'."
            )));
        }
        if let Some(i) = ui {
            us.props |= 1 << i;
        }
        if let Some(i) = gi {
            gs.props |= 1 << i;
        }
    }
    Ok((us, gs))
}

/// `GET /groups/{id}/members[/cast]` and `/transitiveMembers[/cast]`.
pub(crate) fn members(cx: &Cx<'_>, gid: &str, transitive: bool, cast: Option<&str>) -> Response {
    let only = match cast {
        None => None,
        Some("microsoft.graph.user") => Some(Kind::User),
        Some("microsoft.graph.group") => Some(Kind::Group),
        Some(other) => {
            return cx.err(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{other}'."),
            );
        }
    };
    let top = match parse_top(cx, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (user_sel, group_sel) = match member_selects(cx) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let count = match advanced_query(cx) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let after = match list_after(cx) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cost = read_cost(if transitive { 5 } else { 3 }, &cx.query);
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let Some(grp) = dir.groups.get(gid).filter(|g| g.e.is_live()) else {
        return cx.not_found(gid);
    };
    // Direct members come straight from the group; transitive ones are collected first.
    let lower = after.as_deref().map_or(Unbounded, Excluded);
    let collected: BTreeMap<Arc<str>, Kind>;
    type MemberIter<'d> = Box<dyn Iterator<Item = (&'d Arc<str>, Kind)> + 'd>;
    let (all, total): (MemberIter<'_>, usize) = if transitive {
        let mut found = BTreeMap::new();
        let mut queue = VecDeque::from([grp.e.id.clone()]);
        while let Some(g) = queue.pop_front() {
            if let Some(gg) = dir.groups.get(&g) {
                for (mid, edge) in &gg.members {
                    if found.insert(mid.clone(), edge.kind).is_none() && edge.kind == Kind::Group {
                        queue.push_back(mid.clone());
                    }
                }
            }
        }
        found.remove(&grp.e.id);
        collected = found;
        let total = if count {
            collected
                .values()
                .filter(|k| only.is_none_or(|o| o == **k))
                .count()
        } else {
            0
        };
        (
            Box::new(
                collected
                    .range::<str, _>((lower, Unbounded))
                    .map(|(k, v)| (k, *v)),
            ),
            total,
        )
    } else {
        let total = if count {
            grp.members
                .values()
                .filter(|e| only.is_none_or(|o| o == e.kind))
                .count()
        } else {
            0
        };
        (
            Box::new(
                grp.members
                    .range::<str, _>((lower, Unbounded))
                    .map(|(k, e)| (k, e.kind)),
            ),
            total,
        )
    };
    let mut items = Vec::new();
    let mut last: Option<String> = None;
    let mut more = false;
    for (mid, kind) in all {
        if only.is_some_and(|o| o != kind) {
            continue;
        }
        if items.len() == top {
            more = true;
            break;
        }
        let obj = match kind {
            Kind::User => dir
                .users
                .get(mid)
                .map(|u| u.e.json(kind, &user_sel, None, false)),
            Kind::Group => dir
                .groups
                .get(mid)
                .map(|g| g.e.json(kind, &group_sel, None, false)),
        };
        let mut obj = obj.unwrap_or_default();
        obj.insert(
            "@odata.type".into(),
            Value::String(kind.odata_type().into()),
        );
        obj.insert("id".into(), Value::String(mid.to_string()));
        items.push(Value::Object(obj));
        last = Some(mid.to_string());
    }
    drop(dir);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#directoryObjects", cx.base)),
    );
    if count {
        body.insert("@odata.count".into(), json!(total));
    }
    if let (true, Some(l)) = (more, last) {
        body.insert("@odata.nextLink".into(), Value::String(next_link(cx, &l)));
    }
    body.insert("value".into(), Value::Array(items));
    cx.ok(&Value::Object(body), cost, usage)
}

/// `GET /directory/deletedItems/microsoft.graph.user` (soft-deleted users).
pub(crate) fn deleted_users(cx: &Cx<'_>) -> Response {
    let top = match parse_top(cx, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let after = match list_after(cx) {
        Ok(a) => a,
        Err(r) => return r,
    };
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
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for (id, user) in &dir.users {
        if user.e.life != crate::directory::Life::SoftDeleted
            || after.as_deref().is_some_and(|a| &**id <= a)
        {
            continue;
        }
        if items.len() == top {
            more = true;
            break;
        }
        items.push(Value::Object(user.e.json(Kind::User, &sel, None, false)));
        last = Some(id.to_string());
    }
    drop(dir);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/v1.0/$metadata#directoryObjects/microsoft.graph.user",
            cx.base
        )),
    );
    if let (true, Some(l)) = (more, last) {
        body.insert("@odata.nextLink".into(), Value::String(next_link(cx, &l)));
    }
    body.insert("value".into(), Value::Array(items));
    cx.ok(&Value::Object(body), cost, usage)
}

/// `GET /users/{id}/memberOf`: the groups a user is a direct member of (base cost 2, as
/// `me/memberOf`), paged by `$skiptoken`. The per-user call naive sync scripts make.
pub(crate) fn member_of(cx: &Cx<'_>, uid: &str) -> Response {
    let top = match parse_top(cx, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (_, group_sel) = match member_selects(cx) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let after = match list_after(cx) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cost = read_cost(2, &cx.query);
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let Some(user) = dir.users.get(uid).filter(|u| u.e.is_live()) else {
        return cx.not_found(uid);
    };
    let lower = after.as_deref().map_or(Unbounded, Excluded);
    let mut items = Vec::new();
    let mut last: Option<String> = None;
    let mut more = false;
    for gid in user.member_of.range::<str, _>((lower, Unbounded)) {
        if items.len() == top {
            more = true;
            break;
        }
        let Some(g) = dir.groups.get(gid) else {
            continue;
        };
        let mut obj = g.e.json(Kind::Group, &group_sel, None, false);
        obj.insert(
            "@odata.type".into(),
            Value::String(Kind::Group.odata_type().into()),
        );
        obj.insert("id".into(), Value::String(gid.to_string()));
        items.push(Value::Object(obj));
        last = Some(gid.to_string());
    }
    drop(dir);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/v1.0/$metadata#directoryObjects", cx.base)),
    );
    if let (true, Some(l)) = (more, last) {
        body.insert("@odata.nextLink".into(), Value::String(next_link(cx, &l)));
    }
    body.insert("value".into(), Value::Array(items));
    cx.ok(&Value::Object(body), cost, usage)
}
