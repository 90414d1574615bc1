//! The emulator's side of directory writes over HTTP: the write budget per tenant, write
//! counters per kind, the `roles` claim and the permission checks, admin consent choosing
//! permissions, non-target groups, app role assignments, and what persists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::Fx;
use entra_sync_emulator::{
    DEFAULT_APP_PERMISSIONS, Emulator, EmulatorConfig, GroupKind, NewGroup, NewServicePrincipal,
    NewUser, TenantSpec, ThrottleBudget, WriteOp,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The payload of a JWT-shaped access token.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `PATCH /users/{id}` with a JSON body.
async fn patch_user(fx: &Fx, token: &str, id: &str, body: Value) -> (StatusCode, HeaderMap, Value) {
    send(
        fx,
        fx.http.patch(fx.graph(&format!("users/{id}"))).json(&body),
        token,
    )
    .await
}

async fn send(
    _fx: &Fx,
    req: reqwest::RequestBuilder,
    token: &str,
) -> (StatusCode, HeaderMap, Value) {
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, headers, body)
}

async fn add_member(fx: &Fx, token: &str, gid: &str, uid: &str) -> (StatusCode, HeaderMap, Value) {
    send(
        fx,
        fx.http
            .post(fx.graph(&format!("groups/{gid}/members/$ref")))
            .json(&json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")})),
        token,
    )
    .await
}

fn assert_graph_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let inner = &body["error"]["innerError"];
    for k in ["date", "request-id", "client-request-id"] {
        assert!(inner[k].is_string(), "innerError.{k}: {body}");
    }
}

#[tokio::test]
async fn the_write_budget_is_per_tenant_and_answers_429_with_throttle_headers() {
    let config = EmulatorConfig {
        write_budget: Some(ThrottleBudget::new(3, Duration::from_secs(600))),
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(41, 10, 2)).await;
    let other = fx.emu.add_tenant(&TenantSpec::new(42, 10, 2));
    let a = fx.token().await;
    let b = fx.token_for(&other.tenant_id).await;
    let ua = fx.handle().user_ids()[0].clone();
    let ub = fx.emu.tenant(&other.tenant_id).unwrap().user_ids()[0].clone();
    for _ in 0..3 {
        let (status, headers, _) = patch_user(&fx, &a, &ua, json!({"accountEnabled": false})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(headers["x-ms-resource-unit"], "1");
    }
    let (status, headers, body) = patch_user(&fx, &a, &ua, json!({"accountEnabled": true})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_graph_error(&body, "TooManyRequests");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let scope = headers["x-ms-throttle-scope"].to_str().unwrap();
    assert!(scope.starts_with("Tenant_Application/Write/"), "{scope}");
    assert!(scope.ends_with(&fx.tenant.tenant_id), "{scope}");
    assert_eq!(headers["x-ms-throttle-information"], "WriteLimitExceeded");
    assert_eq!(
        fx.handle().user(&ua).unwrap()["accountEnabled"],
        false,
        "the throttled write was not applied"
    );

    // The other tenant's budget is its own.
    for _ in 0..3 {
        let (status, _, _) = patch_user(&fx, &b, &ub, json!({"accountEnabled": false})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    // Reads do not spend the write budget.
    let (status, _, _) = fx.get(&fx.graph(&format!("users/{ua}")), &a).await;
    assert_eq!(status, StatusCode::OK);

    fx.emu.advance_clock(Duration::from_secs(retry));
    let (status, _, _) = patch_user(&fx, &a, &ua, json!({"accountEnabled": true})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the bucket refilled");

    let counters = fx.emu.counters();
    let ta = counters.tenant(&fx.tenant.tenant_id);
    assert_eq!(ta.throttled_429, 1);
    assert_eq!(ta.write_requests(WriteOp::UnblockSignIn), 2);
    assert_eq!(ta.writes_succeeded(WriteOp::UnblockSignIn), 1);
    assert_eq!(ta.writes_succeeded(WriteOp::BlockSignIn), 3);
    let tb = counters.tenant(&other.tenant_id);
    assert_eq!(tb.writes_succeeded(WriteOp::BlockSignIn), 3);
    assert_eq!(tb.throttled_429, 0);
    assert_eq!(counters.writes_succeeded(WriteOp::BlockSignIn), 6);
}

#[tokio::test]
async fn a_burst_is_capped_and_the_bucket_refills_at_the_rate() {
    // Graph's limit is 3,000 writes per 150 s (20/s) with a burst of 20.
    let graph = ThrottleBudget::graph_writes();
    assert_eq!(
        (graph.units, graph.window),
        (3_000, Duration::from_secs(150))
    );
    assert_eq!(graph.capacity(), 20);
    // The same shape, slowed down (20 per hour, one per 180 s) so that the real time the
    // test takes cannot refill anything: only `advance_clock` does.
    let config = EmulatorConfig {
        write_budget: Some(ThrottleBudget::new(20, Duration::from_secs(3_600)).with_burst(20)),
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(43, 5, 1)).await;
    let token = fx.token().await;
    let uid = fx.handle().user_ids()[0].clone();
    let mut passed = 0;
    for _ in 0..25 {
        let (status, _, _) = patch_user(&fx, &token, &uid, json!({"accountEnabled": true})).await;
        if status == StatusCode::NO_CONTENT {
            passed += 1;
        }
    }
    assert_eq!(passed, 20, "the burst");
    fx.emu.advance_clock(Duration::from_secs(900));
    let mut passed = 0;
    for _ in 0..15 {
        let (status, _, _) = patch_user(&fx, &token, &uid, json!({"accountEnabled": true})).await;
        if status == StatusCode::NO_CONTENT {
            passed += 1;
        }
    }
    assert_eq!(passed, 5, "900 s refill five");
    // A long quiet spell refills the burst, not more.
    fx.emu.advance_clock(Duration::from_secs(24 * 3_600));
    let token = fx.token().await; // the old one expired meanwhile
    let mut passed = 0;
    for _ in 0..25 {
        let (status, _, _) = patch_user(&fx, &token, &uid, json!({"accountEnabled": true})).await;
        if status == StatusCode::NO_CONTENT {
            passed += 1;
        }
    }
    assert_eq!(passed, 20);
    assert_eq!(
        fx.emu.counters().tenant(&fx.tenant.tenant_id).throttled_429,
        5 + 10 + 5
    );
}

#[tokio::test]
async fn tokens_carry_the_granted_roles_and_writes_check_them() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let c = claims(&token);
    assert_eq!(c["tid"], fx.tenant.tenant_id);
    assert_eq!(c["appid"], fx.emu.app().client_id);
    assert_eq!(c["idtyp"], "app");
    let mut expected: Vec<&str> = DEFAULT_APP_PERMISSIONS.to_vec();
    expected.sort_unstable();
    assert_eq!(c["roles"], json!(expected));
    assert_eq!(t.granted_permissions(), expected);

    // Revoke the write permissions: new tokens lack them, old ones keep what they had.
    t.set_granted_permissions(["User.Read.All", "GroupMember.Read.All"]);
    let narrow = fx.token().await;
    assert_eq!(
        claims(&narrow)["roles"],
        json!(["GroupMember.Read.All", "User.Read.All"])
    );
    let uid = t.user_ids()[0].clone();
    let (status, _, body) = patch_user(&fx, &narrow, &uid, json!({"accountEnabled": false})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_graph_error(&body, "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    assert_eq!(t.user(&uid).unwrap()["accountEnabled"], true);
    let (status, _, _) = patch_user(&fx, &token, &uid, json!({"accountEnabled": false})).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "an older token keeps its roles"
    );
    // Reads still work with read permissions.
    let (status, _, _) = fx.get(&fx.graph(&format!("users/{uid}")), &narrow).await;
    assert_eq!(status, StatusCode::OK);

    // Nothing granted: the token has no roles claim at all, as Entra issues it.
    t.set_granted_permissions(Vec::<String>::new());
    let empty = fx.token().await;
    assert!(claims(&empty).get("roles").is_none());

    // Expiring tokens makes clients fetch new ones.
    t.expire_tokens();
    let (status, _, _) = fx.get(&fx.graph(&format!("users/{uid}")), &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let counters = fx.emu.counters();
    assert_eq!(counters.write_requests(WriteOp::BlockSignIn), 2);
    assert_eq!(counters.writes_succeeded(WriteOp::BlockSignIn), 1);
}

#[tokio::test]
async fn admin_consent_scope_chooses_the_granted_permissions() {
    let fx = Fx::small().await;
    let app = fx.emu.app();
    let consent = |v2: bool, scope: Option<&str>| {
        let path = if v2 {
            "v2.0/adminconsent"
        } else {
            "adminconsent"
        };
        let mut url = format!(
            "{}/{}/{path}?client_id={}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=s1",
            fx.emu.login_base_url(),
            fx.tenant.tenant_id,
            app.client_id
        );
        if let Some(scope) = scope {
            url.push_str("&scope=");
            url.push_str(
                &url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
            );
        }
        fx.http.get(url).send()
    };
    let resp = consent(
        true,
        Some("https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/GroupMember.ReadWrite.All"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        fx.handle().granted_permissions(),
        vec!["GroupMember.ReadWrite.All", "User.Read.All"]
    );
    let token = fx.token().await;
    assert_eq!(
        claims(&token)["roles"],
        json!(["GroupMember.ReadWrite.All", "User.Read.All"])
    );
    consent(true, Some("https://graph.microsoft.com/.default"))
        .await
        .unwrap();
    assert_eq!(
        fx.handle().granted_permissions().len(),
        DEFAULT_APP_PERMISSIONS.len()
    );
    fx.handle().set_granted_permissions(["User.Read.All"]);
    consent(false, None).await.unwrap();
    assert_eq!(
        fx.handle().granted_permissions().len(),
        DEFAULT_APP_PERMISSIONS.len(),
        "the v1 endpoint grants the registration's permissions"
    );
}

#[tokio::test]
async fn password_resets_need_the_permission_the_role_and_a_strong_password() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let uid = t.user_ids()[0].clone();
    let reset = |pw: &str| json!({"passwordProfile": {"forceChangePasswordNextSignIn": true, "password": pw}});
    let (status, _, body) = patch_user(&fx, &token, &uid, reset("Str0ng!Temp-pass")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no directory role by default"
    );
    assert_graph_error(&body, "Authorization_RequestDenied");
    t.set_user_admin_role(true);
    let (status, _, body) = patch_user(&fx, &token, &uid, reset("weakpass")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("complexity")
    );
    let (status, _, _) = patch_user(&fx, &token, &uid, reset("Str0ng!Temp-pass")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(t.user(&uid).unwrap()["lastPasswordChangeDateTime"].is_string());
    // The permission is needed too.
    t.set_granted_permissions(["User.ReadWrite.All"]);
    let narrow = fx.token().await;
    let (status, _, _) = patch_user(&fx, &narrow, &uid, reset("Str0ng!Temp-pass")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "User.ReadWrite.All alone is not enough"
    );
    // The request log never holds a body.
    let log = serde_json::to_string(&fx.emu.request_log()).unwrap();
    assert!(!log.contains("Str0ng!Temp-pass"));
    let counters = fx.emu.counters();
    assert_eq!(counters.write_requests(WriteOp::ResetPassword), 4);
    assert_eq!(counters.writes_succeeded(WriteOp::ResetPassword), 1);
}

#[tokio::test]
async fn non_target_groups_answer_as_graph_does_and_expose_their_kind() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let uid = t.user_ids()[0].clone();
    let dl = t.create_group(NewGroup::new("DL", GroupKind::Distribution));
    let mesg = t.create_group(NewGroup::new("MESG", GroupKind::MailEnabledSecurity));
    let dynamic = t.create_group(
        NewGroup::new("Dyn", GroupKind::Security).dynamic(Some("(user.city -eq \"Oslo\")")),
    );
    let synced = t.create_group(NewGroup::new("AD", GroupKind::Security).on_premises_synced());
    let m365 = t.create_group(NewGroup::new("Team", GroupKind::Microsoft365));

    let exchange = "Cannot Update a mail-enabled security groups and or distribution list.";
    for gid in [&dl, &mesg] {
        let (status, _, body) = add_member(&fx, &token, gid, &uid).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_graph_error(&body, "Request_BadRequest");
        assert_eq!(body["error"]["message"], exchange);
    }
    let (status, _, body) = add_member(&fx, &token, &dynamic, &uid).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_graph_error(&body, "Authorization_RequestDenied");
    let (status, _, body) = add_member(&fx, &token, &synced, &uid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on-premises mastered Directory Sync objects")
    );
    let (status, _, _) = add_member(&fx, &token, &m365, &uid).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "Microsoft 365 groups take members"
    );
    let (status, _, body) = send(
        &fx,
        fx.http
            .delete(fx.graph(&format!("groups/{synced}/members/{uid}/$ref"))),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The kind properties are in single reads, lists and delta.
    let (_, _, g) = fx
        .get(&fx.graph(&format!("groups/{dynamic}")), &token)
        .await;
    assert_eq!(g["groupTypes"], json!(["DynamicMembership"]));
    assert_eq!(g["membershipRule"], "(user.city -eq \"Oslo\")");
    assert_eq!(g["membershipRuleProcessingState"], "On");
    let (_, _, g) = fx.get(&fx.graph(&format!("groups/{synced}")), &token).await;
    assert_eq!(g["onPremisesSyncEnabled"], true);
    let (_, _, list) = fx
        .get(
            &fx.graph("groups?$select=id,mailEnabled,securityEnabled,groupTypes,membershipRule,onPremisesSyncEnabled&$top=999"),
            &token,
        )
        .await;
    let by_id = |id: &str| {
        list["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&dl)["mailEnabled"], true);
    assert_eq!(by_id(&dl)["securityEnabled"], false);
    assert_eq!(by_id(&synced)["onPremisesSyncEnabled"], true);
    let (items, _) = fx
        .round_items(
            &fx.graph("groups/delta?$select=id,displayName,groupTypes,membershipRule,onPremisesSyncEnabled"),
            &token,
        )
        .await;
    let delta_dyn = items.iter().find(|g| g["id"] == *dynamic).unwrap();
    assert_eq!(delta_dyn["membershipRule"], "(user.city -eq \"Oslo\")");
    let delta_synced = items.iter().find(|g| g["id"] == *synced).unwrap();
    assert_eq!(delta_synced["onPremisesSyncEnabled"], true);

    let counters = fx.emu.counters();
    assert_eq!(counters.write_requests(WriteOp::AddMember), 5);
    assert_eq!(counters.writes_succeeded(WriteOp::AddMember), 1);
    assert_eq!(counters.write_requests(WriteOp::RemoveMember), 1);
}

#[tokio::test]
async fn app_role_assignments_over_http() {
    let fx = Fx::small().await;
    let t = fx.handle();
    let token = fx.token().await;
    let uid = t.create_user(NewUser::new("Grace App", "grace@contoso.example"));
    let sp = t.create_service_principal(NewServicePrincipal::new("Payroll", &["Reader"]));
    let reader = sp.role_id("Reader").unwrap().to_string();
    let assign = |role: &str, principal: &str| {
        fx.http
            .post(fx.graph(&format!("users/{uid}/appRoleAssignments")))
            .json(&json!({"principalId": principal, "resourceId": sp.id, "appRoleId": role}))
    };
    let (status, _, body) = send(&fx, assign(&reader, &uid), &token).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["appRoleId"], reader);
    assert_eq!(body["principalId"], uid);
    assert_eq!(body["principalType"], "User");
    assert_eq!(body["principalDisplayName"], "Grace App");
    assert_eq!(body["resourceId"], sp.id);
    assert_eq!(body["resourceDisplayName"], "Payroll");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("appRoleAssignments")
    );
    let assignment = body["id"].as_str().unwrap().to_string();

    let (status, _, body) = send(&fx, assign(&reader, &uid), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_graph_error(&body, "Request_BadRequest");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    let (status, _, _) = send(
        &fx,
        assign("00000000-0000-4000-8000-000000000009", &uid),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = send(&fx, assign(&reader, "someone-else"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, _, sp_json) = fx
        .get(&fx.graph(&format!("servicePrincipals/{}", sp.id)), &token)
        .await;
    assert_eq!(sp_json["appRoles"][0]["id"], reader);
    let (_, _, list) = fx
        .get(
            &fx.graph(&format!("users/{uid}/appRoleAssignments")),
            &token,
        )
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);

    // Soft delete hides the user (and its assignments); restore brings both back.
    t.delete_user(&uid).unwrap();
    let (status, _, _) = fx
        .get(
            &fx.graph(&format!("users/{uid}/appRoleAssignments")),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, deleted) = fx
        .get(&fx.graph(&format!("directory/deletedItems/{uid}")), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["@odata.type"], "#microsoft.graph.user");
    t.restore_user(&uid).unwrap();
    let (status, _, _) = fx
        .get(&fx.graph(&format!("directory/deletedItems/{uid}")), &token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(t.app_role_assignments(&uid).len(), 1);

    let remove = || {
        fx.http
            .delete(fx.graph(&format!("users/{uid}/appRoleAssignments/{assignment}")))
    };
    let (status, _, _) = send(&fx, remove(), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = send(&fx, remove(), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_graph_error(&body, "Request_ResourceNotFound");
    let counters = fx.emu.counters();
    assert_eq!(counters.write_requests(WriteOp::AssignAppRole), 4);
    assert_eq!(counters.writes_succeeded(WriteOp::AssignAppRole), 1);
    assert_eq!(counters.writes_succeeded(WriteOp::RemoveAppRole), 1);
}

#[tokio::test]
async fn counters_reset_and_injected_faults_are_not_successes() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let uid = fx.handle().user_ids()[0].clone();
    let (status, _, _) = send(
        &fx,
        fx.http
            .post(fx.graph(&format!("users/{uid}/revokeSignInSessions")))
            .header("content-length", "0"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        fx.emu.counters().writes_succeeded(WriteOp::RevokeSessions),
        1
    );
    fx.emu.reset_counters();
    assert_eq!(fx.emu.counters().write_requests(WriteOp::RevokeSessions), 0);
    assert!(fx.emu.counters().per_tenant.is_empty());
}

#[tokio::test]
async fn granted_permissions_apps_and_the_role_persist() {
    let dir = tempfile_dir();
    let path = dir.join("state.json");
    let fx = Fx::small().await;
    let t = fx.handle();
    let uid = t.user_ids()[0].clone();
    let sp = t.create_service_principal(NewServicePrincipal::new("Payroll", &["Reader"]));
    let token = fx.token().await;
    let (status, _, _) = send(
        &fx,
        fx.http
            .post(fx.graph(&format!("users/{uid}/appRoleAssignments")))
            .json(&json!({"principalId": uid, "resourceId": sp.id,
                          "appRoleId": sp.role_id("Reader").unwrap()})),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    t.set_granted_permissions(["User.Read.All", "User.DeleteRestore.All"]);
    t.set_user_admin_role(true);
    fx.emu.save_state(&path).unwrap();
    let tenant_id = fx.tenant.tenant_id.clone();
    fx.emu.shutdown().await;

    let emu = Emulator::start_from_state(EmulatorConfig::default(), &path)
        .await
        .unwrap();
    let t = emu.tenant(&tenant_id).unwrap();
    assert_eq!(
        t.granted_permissions(),
        vec!["User.DeleteRestore.All", "User.Read.All"]
    );
    assert!(t.has_user_admin_role());
    let assignments = t.app_role_assignments(&uid);
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["resourceId"], sp.id);
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system temp dir (no extra dev-dependency).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("entra-sync-emu-actions-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}
