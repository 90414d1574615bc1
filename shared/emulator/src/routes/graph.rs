//! Microsoft Graph v1.0: authentication, routing, throttling, `/organization`, delta queries
//! and single-object reads. Lists live in `lists.rs`, writes in `writes.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Query, base_url, lists, sync_state_not_found, writes};
use crate::delta::{PageSpec, groups_page, users_page};
use crate::directory::Directory;
use crate::errors::{ReqCtx, TenantTag, graph_error, graph_json, throttled, with_header};
use crate::model::{Kind, Select, SelectError, parse_select, u};
use crate::state::{Inner, TenantState};
use crate::throttle::Usage;
use crate::tokens::{Cursor, DeltaToken, Pos, Round, TokKind};

/// Everything a Graph handler needs about the current request.
pub(crate) struct Cx<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) ctx: &'a ReqCtx,
    pub(crate) base: String,
    pub(crate) tenant: Arc<TenantState>,
    pub(crate) query: Query,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) path: String,
    /// The `roles` claim of the caller's access token.
    pub(crate) roles: Arc<[String]>,
}

impl Cx<'_> {
    pub(crate) fn err(&self, status: StatusCode, code: &str, msg: &str) -> Response {
        graph_error(self.ctx, status, code, msg)
    }

    pub(crate) fn bad_request(&self, msg: &str) -> Response {
        self.err(StatusCode::BAD_REQUEST, "Request_BadRequest", msg)
    }

    pub(crate) fn not_found(&self, id: &str) -> Response {
        self.err(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// Takes `cost` RU from the tenant's read (or write) budget, or answers 429.
    pub(crate) fn charge(&self, cost: u32, write: bool) -> Result<Option<Usage>, Response> {
        let now = self.inner.clock.now_ms();
        self.tenant.take_budget(write, cost, now).map_err(|retry| {
            let scope = format!(
                "Tenant_Application/{}/{}/{}",
                if write { "Write" } else { "ReadWrite" },
                self.inner.app.client_id,
                self.tenant.id
            );
            let resp = throttled(self.ctx, retry, &scope);
            if write {
                with_header(resp, "x-ms-throttle-information", "WriteLimitExceeded")
            } else {
                resp
            }
        })
    }

    /// 200 JSON with the resource-unit headers.
    pub(crate) fn ok(&self, body: &Value, cost: u32, usage: Option<Usage>) -> Response {
        let resp = graph_json(StatusCode::OK, body);
        let resp = with_header(resp, "x-ms-resource-unit", &cost.to_string());
        match usage {
            Some(u) if u >= 0.8 => with_header(
                resp,
                "x-ms-throttle-limit-percentage",
                &format!("{:.1}", u * 1.0),
            ),
            _ => resp,
        }
    }

    /// `Prefer: return=minimal` was sent.
    pub(crate) fn prefers_minimal(&self) -> bool {
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("return=minimal"))
    }

    /// `ConsistencyLevel: eventual` was sent.
    pub(crate) fn eventual(&self) -> bool {
        self.headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
    }

    /// The select error as Graph reports it.
    pub(crate) fn select_error(&self, kind: Kind, e: SelectError) -> Response {
        match e {
            SelectError::Unknown(p) => self.bad_request(&format!(
                "Could not find a property named '{p}' on type '{}'.",
                kind.type_name()
            )),
            SelectError::NotImplemented(p) => self.err(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                &format!(
                    "The property '{p}' is not supported in delta queries: only properties stored in the directory can be tracked."
                ),
            ),
        }
    }
}

/// Resource-unit cost of a read, as Graph's identity throttling counts it: base cost, -1 with
/// `$select`, +1 with
/// `$expand`, -1 with `$top` below 20, at least 1.
pub(crate) fn read_cost(base: u32, q: &Query) -> u32 {
    let mut cost = i64::from(base);
    if q.has("select") {
        cost -= 1;
    }
    if q.has("expand") {
        cost += 1;
    }
    if q.get("top")
        .and_then(|t| t.parse::<u32>().ok())
        .is_some_and(|t| t < 20)
    {
        cost -= 1;
    }
    u32::try_from(cost.max(1)).unwrap_or(1)
}

/// Percent-decodes one path segment.
fn decode_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the bearer token; the tenant it was issued for and its `roles` claim.
fn authenticate(
    inner: &Inner,
    ctx: &ReqCtx,
    headers: &HeaderMap,
) -> Result<(Arc<TenantState>, Arc<[String]>), Response> {
    let unauthorized = |msg: &str| {
        let resp = graph_error(
            ctx,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            msg,
        );
        with_header(
            resp,
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized("Access token is empty."));
    };
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(unauthorized("Access token is empty.")),
    };
    let Some(grant) = inner.grant(token) else {
        return Err(unauthorized(
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    };
    if grant.expires_ms <= inner.clock.now_ms() {
        return Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    let tenant = inner
        .resolve_tenant(&grant.tenant)
        .ok_or_else(|| unauthorized("Access token validation failure."))?;
    Ok((tenant, grant.roles))
}

/// Fallback handler: every `/v1.0/...` request.
pub(crate) async fn dispatch(
    State(inner): State<Arc<Inner>>,
    Extension(ctx): Extension<ReqCtx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let Some(rest) = path.strip_prefix("/v1.0/") else {
        let seg = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        return graph_error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Invalid version: {seg}"),
        );
    };
    let (tenant, roles) = match authenticate(&inner, &ctx, &headers) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let tenant_id = tenant.id.clone();
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let cx = Cx {
        inner: &inner,
        ctx: &ctx,
        base: base_url(&headers, &inner),
        tenant,
        query: Query::parse(uri.query()),
        headers: &headers,
        path: path.clone(),
        roles,
    };
    let mut resp = if !cx.tenant.roles.load(Ordering::SeqCst) {
        cx.err(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    } else {
        route(&cx, &method, &segs, &body)
    };
    resp.extensions_mut().insert(TenantTag(tenant_id));
    resp
}

fn route(cx: &Cx<'_>, method: &Method, segs: &[String], body: &[u8]) -> Response {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if *method != Method::GET {
        let resp = writes::handle(cx, method, &s, body);
        if resp.status().is_success() {
            cx.inner.changed();
        }
        return resp;
    }
    match s.as_slice() {
        ["organization"] => organization(cx),
        ["users", "delta" | "microsoft.graph.delta"] => delta(cx, Kind::User),
        ["groups", "delta" | "microsoft.graph.delta"] => delta(cx, Kind::Group),
        ["users"] => lists::users(cx),
        ["groups"] => lists::groups(cx),
        ["users", id] => get_object(cx, Kind::User, id),
        ["groups", id] => get_object(cx, Kind::Group, id),
        ["users", id, "manager"] => manager(cx, id),
        ["users", id, "memberOf"] => lists::member_of(cx, id),
        ["groups", id, "members"] => lists::members(cx, id, false, None),
        ["groups", id, "members", cast] => lists::members(cx, id, false, Some(cast)),
        ["groups", id, "transitiveMembers"] => lists::members(cx, id, true, None),
        ["groups", id, "transitiveMembers", cast] => lists::members(cx, id, true, Some(cast)),
        ["subscribedSkus"] => subscribed_skus(cx),
        ["directory", "deletedItems", "microsoft.graph.user"] => lists::deleted_users(cx),
        ["directory", "deletedItems", id] => writes::deleted_item(cx, id),
        ["users", id, "appRoleAssignments"] => writes::list_app_role_assignments(cx, id),
        ["servicePrincipals", id] => writes::service_principal(cx, id),
        _ => unknown_segment(cx, &s),
    }
}

/// 400 for a path Graph would not know.
pub(crate) fn unknown_segment(cx: &Cx<'_>, s: &[&str]) -> Response {
    let seg = s.last().copied().unwrap_or_default();
    cx.err(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Resource not found for the segment '{seg}'."),
    )
}

/// `GET /organization`.
fn organization(cx: &Cx<'_>) -> Response {
    let cost = 1;
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = &cx.tenant;
    let domains: Vec<Value> = t
        .domains
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "isDefault": d.is_default,
                "isInitial": d.is_initial,
                "type": "Managed",
                "capabilities": if d.is_initial || d.is_default {
                    "Email, OfficeCommunicationsOnlineService"
                } else {
                    "Email"
                },
            })
        })
        .collect();
    let body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#organization", cx.base),
        "value": [{
            "id": t.id,
            "displayName": t.name,
            "countryLetterCode": "US",
            "tenantType": "AAD",
            "preferredLanguage": "en",
            "verifiedDomains": domains,
        }]
    });
    cx.ok(&body, cost, usage)
}

/// `GET /users/{id}` and `GET /groups/{id}` (`$select` honoured).
fn get_object(cx: &Cx<'_>, kind: Kind, id: &str) -> Response {
    let cost = read_cost(1, &cx.query);
    let sel = match cx.query.get("select") {
        Some(raw) => match parse_select(kind, raw, &[], false) {
            Ok((s, _)) => s,
            Err(e) => return cx.select_error(kind, e),
        },
        None => Select {
            rel: false,
            ..Select::default_for(kind)
        },
    };
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let obj = match kind {
        Kind::User => dir
            .users
            .get(id)
            .or_else(|| dir.user_by_upn(id))
            .filter(|u| u.e.is_live())
            .map(|u| u.e.json(kind, &sel, None, false)),
        Kind::Group => dir
            .groups
            .get(id)
            .filter(|g| g.e.is_live())
            .map(|g| g.e.json(kind, &sel, None, false)),
    };
    drop(dir);
    let Some(mut obj) = obj else {
        return cx.not_found(id);
    };
    obj.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}/v1.0/$metadata#{}/$entity",
            cx.base,
            kind.collection()
        )),
    );
    cx.ok(&Value::Object(obj), cost, usage)
}

/// `GET /users/{id}/manager` (404 when the user has none).
fn manager(cx: &Cx<'_>, id: &str) -> Response {
    let cost = 1;
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let Some(user) = dir.users.get(id).filter(|u| u.e.is_live()) else {
        return cx.not_found(id);
    };
    let sel = Select {
        rel: false,
        ..Select::default_for(Kind::User)
    };
    let mgr = user
        .manager
        .as_ref()
        .and_then(|m| dir.users.get(m))
        .map(|m| m.e.json(Kind::User, &sel, None, false));
    drop(dir);
    match mgr {
        Some(mut m) => {
            m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            m.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/v1.0/$metadata#directoryObjects/$entity",
                    cx.base
                )),
            );
            cx.ok(&Value::Object(m), cost, usage)
        }
        None => cx.not_found("manager"),
    }
}

/// `GET /subscribedSkus`.
fn subscribed_skus(cx: &Cx<'_>) -> Response {
    let cost = 3;
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let dir = cx.tenant.read();
    let mut consumed = vec![0u64; dir.meta.skus.len()];
    for user in dir.users.values().filter(|u| u.e.is_live()) {
        if let crate::model::Pv::Json(v) = user.e.prop(u::LICENSES) {
            for lic in v.as_array().into_iter().flatten() {
                let sku = lic.get("skuId").and_then(Value::as_str).unwrap_or_default();
                if let Some(i) = dir.meta.skus.iter().position(|s| s.sku_id == sku) {
                    consumed[i] += 1;
                }
            }
        }
    }
    let value: Vec<Value> = dir
        .meta
        .skus
        .iter()
        .zip(consumed)
        .map(|(sku, used)| {
            let plans: Vec<Value> = sku
                .plans
                .iter()
                .map(|(id, name)| {
                    json!({"servicePlanId": id, "servicePlanName": name,
                           "provisioningStatus": "Success", "appliesTo": "User"})
                })
                .collect();
            json!({
                "id": format!("{}_{}", cx.tenant.id, sku.sku_id),
                "skuId": sku.sku_id,
                "skuPartNumber": sku.part_number,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": used,
                "prepaidUnits": {"enabled": sku.prepaid, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": plans,
            })
        })
        .collect();
    drop(dir);
    let body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#subscribedSkus", cx.base),
        "value": value,
    });
    cx.ok(&body, cost, usage)
}

/// Parses `$filter=id eq 'a' or id eq 'b'` (at most 50 ids): sorted, deduplicated ids.
fn parse_id_filter(cx: &Cx<'_>, raw: &str) -> Result<Vec<String>, Response> {
    let unsupported = || {
        cx.err(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Unsupported query. Delta supports only $filter=id eq '{id}' clauses joined with 'or'.",
        )
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    let mut ids = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if i > 0 {
            if !words[i].eq_ignore_ascii_case("or") {
                return Err(unsupported());
            }
            i += 1;
        }
        let (Some(prop), Some(op), Some(val)) = (words.get(i), words.get(i + 1), words.get(i + 2))
        else {
            return Err(unsupported());
        };
        if !prop.eq_ignore_ascii_case("id") || !op.eq_ignore_ascii_case("eq") {
            return Err(unsupported());
        }
        let Some(id) = val.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) else {
            return Err(unsupported());
        };
        ids.push(id.to_string());
        i += 3;
    }
    if ids.is_empty() {
        return Err(unsupported());
    }
    if ids.len() > 50 {
        return Err(
            cx.bad_request("Too many ids in the filter: delta accepts at most 50 'id eq' clauses.")
        );
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Select and filter of a first delta request.
fn first_request_params(
    cx: &Cx<'_>,
    kind: Kind,
) -> Result<(Select, Option<Vec<String>>), Response> {
    let sel = match cx.query.get("select") {
        Some(raw) => parse_select(kind, raw, &[], true)
            .map(|(s, _)| s)
            .map_err(|e| cx.select_error(kind, e))?,
        None => Select::default_for(kind),
    };
    let filter = match cx.query.non_empty("filter") {
        Some(raw) => Some(parse_id_filter(cx, raw)?),
        None => None,
    };
    Ok((sel, filter))
}

/// `GET /users/delta` and `GET /groups/delta` (both spellings).
fn delta(cx: &Cx<'_>, kind: Kind) -> Response {
    for opt in ["expand", "orderby", "search", "count", "skip"] {
        if cx.query.has(opt) {
            return cx.err(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!("The query option '${opt}' is not supported with delta queries."),
            );
        }
    }
    let cost = 1;
    let skip = cx.query.non_empty("skiptoken");
    let dtok = cx.query.non_empty("deltatoken");
    if skip.is_some() && dtok.is_some() {
        return cx.bad_request("$skiptoken and $deltatoken cannot be used together.");
    }
    let usage = match cx.charge(cost, false) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let inner = cx.inner;
    let now = inner.clock.now_ms();
    let dir = cx.tenant.read();

    // Work out the round, page and position.
    let (sel, filter, round, page, cursor) = if dtok
        .is_some_and(|t| t.eq_ignore_ascii_case("latest"))
    {
        let (sel, filter) = match first_request_params(cx, kind) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let tok = DeltaToken {
            tenant: cx.tenant.fingerprint,
            kind: TokKind::from(kind),
            sel_props: sel.props,
            sel_rel: sel.rel,
            sel_explicit: sel.explicit,
            filter,
            at: now,
            pos: Pos::Delta { since: dir.seq },
        };
        drop(dir);
        return delta_body(cx, kind, &sel, Vec::new(), &tok, false, cost, usage);
    } else if let Some(raw) = skip.or(dtok) {
        let Some(tok) = inner.codec.decode::<DeltaToken>(raw) else {
            return cx.bad_request(
                "The delta or skip token is malformed or was not issued by this service.",
            );
        };
        if tok.tenant != cx.tenant.fingerprint || tok.kind != TokKind::from(kind) {
            return cx
                .bad_request("The delta or skip token was issued for another resource or tenant.");
        }
        if now.saturating_sub(tok.at) > duration_ms(inner.config.delta_token_ttl) {
            return sync_state_not_found(cx.ctx);
        }
        let sel = tok.select();
        match tok.pos {
            Pos::Delta { since } => {
                if since > dir.seq {
                    return cx.bad_request("The delta token is not valid for this directory.");
                }
                (
                    sel,
                    tok.filter,
                    Round::Incremental { since },
                    0,
                    Cursor::Start,
                )
            }
            Pos::Page {
                round,
                page,
                cursor,
            } => {
                let bound = match round {
                    Round::Initial { upto } => upto,
                    Round::Incremental { since } => since,
                };
                if bound > dir.seq {
                    return cx.bad_request("The skip token is not valid for this directory.");
                }
                (sel, tok.filter, round, page, cursor)
            }
        }
    } else {
        let (sel, filter) = match first_request_params(cx, kind) {
            Ok(p) => p,
            Err(r) => return r,
        };
        (
            sel,
            filter,
            Round::Initial { upto: dir.seq },
            0,
            Cursor::Start,
        )
    };

    let minimal = cx.prefers_minimal();
    let cfg = &inner.config;
    let empty_page = cfg
        .empty_page_every
        .is_some_and(|n| n > 0 && page > 0 && (page as usize).is_multiple_of(n));
    let out = if empty_page {
        Ok(crate::delta::PageOut {
            items: Vec::new(),
            next: Some(cursor.clone()),
        })
    } else {
        let spec = PageSpec {
            sel,
            filter: filter.as_deref(),
            minimal,
            user_page_size: cfg.user_page_size,
            group_page_size: cfg.group_page_size,
            member_slice: cfg.member_slice,
            duplicate_every: cfg.duplicate_every,
        };
        match kind {
            Kind::User => users_page(&dir, &spec, &round, &cursor),
            Kind::Group => groups_page(&dir, &spec, &round, &cursor),
        }
    };
    let Ok(out) = out else {
        return cx.bad_request("The skip token is malformed.");
    };
    let pos = match out.next {
        Some(next) => Pos::Page {
            round,
            page: page.saturating_add(1),
            cursor: next,
        },
        None => Pos::Delta {
            since: match round {
                Round::Initial { upto } => upto,
                Round::Incremental { .. } => dir.seq,
            },
        },
    };
    drop(dir);
    let tok = DeltaToken {
        tenant: cx.tenant.fingerprint,
        kind: TokKind::from(kind),
        sel_props: sel.props,
        sel_rel: sel.rel,
        sel_explicit: sel.explicit,
        filter,
        at: now,
        pos,
    };
    delta_body(cx, kind, &sel, out.items, &tok, minimal, cost, usage)
}

fn duration_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The `{"@odata.context", "@odata.nextLink"|"@odata.deltaLink", "value"}` page.
#[allow(clippy::too_many_arguments)]
fn delta_body(
    cx: &Cx<'_>,
    kind: Kind,
    sel: &Select,
    items: Vec<Value>,
    tok: &DeltaToken,
    minimal: bool,
    cost: u32,
    usage: Option<Usage>,
) -> Response {
    let token = cx.inner.codec.encode(tok);
    let (link_name, param) = match tok.pos {
        Pos::Delta { .. } => ("@odata.deltaLink", "$deltatoken"),
        Pos::Page { .. } => ("@odata.nextLink", "$skiptoken"),
    };
    let collection = kind.collection();
    let context = if sel.explicit {
        format!(
            "{}/v1.0/$metadata#{collection}({})",
            cx.base,
            sel.names(kind)
        )
    } else {
        format!("{}/v1.0/$metadata#{collection}", cx.base)
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context));
    body.insert(
        link_name.into(),
        Value::String(format!(
            "{}/v1.0/{collection}/delta?{param}={token}",
            cx.base
        )),
    );
    body.insert("value".into(), Value::Array(items));
    let resp = cx.ok(&Value::Object(body), cost, usage);
    if minimal {
        with_header(resp, "preference-applied", "return=minimal")
    } else {
        resp
    }
}

/// Shared by lists: the live directory objects of a kind after `after`, as a range iterator.
pub(crate) fn live_after<'d>(
    dir: &'d Directory,
    kind: Kind,
    after: Option<&str>,
) -> Box<dyn Iterator<Item = (&'d str, &'d crate::directory::Entity)> + 'd> {
    use std::ops::Bound::{Excluded, Unbounded};
    let lower = after.map_or(Unbounded, Excluded);
    match kind {
        Kind::User => Box::new(
            dir.users
                .range::<str, _>((lower, Unbounded))
                .filter(|(_, u)| u.e.is_live())
                .map(|(k, u)| (&**k, &u.e)),
        ),
        Kind::Group => Box::new(
            dir.groups
                .range::<str, _>((lower, Unbounded))
                .filter(|(_, g)| g.e.is_live())
                .map(|(k, g)| (&**k, &g.e)),
        ),
    }
}
