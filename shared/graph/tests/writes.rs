//! GraphClient's directory writes against the Graph emulator: every kind's success,
//! already-in-effect, not-found and missing-permission answers, non-target groups of each
//! kind, the write budget's 429 honoured, and deleted users restored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use entra_sync_core::directory_write::{
    AppRoleRef, DEFAULT_ACCESS_ROLE, DirectoryWriter, NotATargetReason, WRITE_PERMISSIONS,
    WriteError, WriteKind, WriteOutcome, required_permission,
};
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::page::{GroupDelta, PageItems, PageLink, PageRequest, UserDelta};
use entra_sync_core::ports::Secret;
use entra_sync_emulator::{
    Emulator, EmulatorConfig, GroupKind, NewGroup, NewServicePrincipal, NewUser, Route,
    TenantHandle, TenantSpec, ThrottleBudget, WriteOp,
};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use url::Url;

const GLOBAL_SCOPE: &str = "https://graph.microsoft.com/.default";
const PASSWORD: &str = "Tmp#9vQ2-kLm8xZr";

struct Fx {
    emu: Emulator,
    client: GraphClient,
    tenant: TenantId,
    handle: TenantHandle,
    user: String,
}

fn client_for(emu: &Emulator, retry: RetryPolicy) -> GraphClient {
    let app = emu.app();
    let mut config = GraphConfig::new(
        Url::parse(&emu.graph_base_url()).unwrap(),
        Url::parse(&emu.login_base_url()).unwrap(),
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    );
    config.scope = Some(GLOBAL_SCOPE.into());
    config.retry = retry;
    GraphClient::new(config).unwrap()
}

async fn fx_with(config: EmulatorConfig) -> Fx {
    let emu = Emulator::start(config).await.unwrap();
    let info = emu.add_tenant(&TenantSpec::new(31, 20, 2));
    let handle = emu.tenant(&info.tenant_id).unwrap();
    let user = handle.create_user(NewUser::new("Ada Writer", "ada@contoso.example"));
    let client = client_for(&emu, RetryPolicy::default());
    Fx {
        tenant: TenantId::new(info.tenant_id),
        emu,
        client,
        handle,
        user,
    }
}

async fn fx() -> Fx {
    fx_with(EmulatorConfig::default()).await
}

fn applied(o: &WriteOutcome) -> bool {
    assert!(
        o.request_id().is_some(),
        "outcome carries Graph's request id"
    );
    o.is_applied()
}

const NOBODY: &str = "00000000-0000-4000-8000-00000000dead";

fn expect_not_found(r: Result<WriteOutcome, WriteError>, what: &str) {
    match r {
        Err(WriteError::NotFound {
            what: w,
            request_id,
        }) => {
            assert!(w.contains(what), "{w} should name {what}");
            assert!(request_id.is_some());
        }
        other => panic!("expected NotFound({what}), got {other:?}"),
    }
}

#[tokio::test]
async fn group_members_are_added_and_removed_once_and_show_in_delta() {
    let f = fx().await;
    let gid = f
        .handle
        .create_group(NewGroup::new("Writable", GroupKind::Security));
    // Start a groups round, so the next one reports only what changes.
    let delta = latest_delta_link(&f, Stream::Groups).await;

    let first = f
        .client
        .add_group_member(&f.tenant, &gid, &f.user)
        .await
        .unwrap();
    assert!(applied(&first));
    let again = f
        .client
        .add_group_member(&f.tenant, &gid, &f.user)
        .await
        .unwrap();
    assert!(
        !applied(&again),
        "a second add is already in effect: {again:?}"
    );
    assert_eq!(
        f.handle.members(&gid).unwrap(),
        vec![(f.user.clone(), "user".to_string())]
    );

    let page = f
        .client
        .fetch_page(&f.tenant, Stream::Groups, &PageRequest::Link(delta))
        .await
        .unwrap();
    let PageItems::Groups(groups) = page.items else {
        panic!("groups page")
    };
    let changed = groups
        .iter()
        .find(|g| g.id() == gid)
        .expect("group in delta");
    assert!(
        matches!(changed, GroupDelta::Upsert { members_added, .. } if members_added.iter().any(|m| m.id == f.user)),
        "{changed:?}"
    );

    assert!(applied(
        &f.client
            .remove_group_member(&f.tenant, &gid, &f.user)
            .await
            .unwrap()
    ));
    let again = f
        .client
        .remove_group_member(&f.tenant, &gid, &f.user)
        .await
        .unwrap();
    assert!(
        !applied(&again),
        "removing a non-member is already in effect"
    );
    assert!(f.handle.members(&gid).unwrap().is_empty());

    expect_not_found(
        f.client.add_group_member(&f.tenant, &gid, NOBODY).await,
        "member",
    );
    expect_not_found(
        f.client.remove_group_member(&f.tenant, &gid, NOBODY).await,
        "member",
    );
    expect_not_found(
        f.client.add_group_member(&f.tenant, NOBODY, &f.user).await,
        "group",
    );
    expect_not_found(
        f.client
            .remove_group_member(&f.tenant, NOBODY, &f.user)
            .await,
        "group",
    );

    let counters = f.emu.counters().tenant(f.tenant.as_str());
    assert_eq!(counters.write_requests(WriteOp::AddMember), 4);
    assert_eq!(counters.writes_succeeded(WriteOp::AddMember), 1);
    assert_eq!(counters.writes_succeeded(WriteOp::RemoveMember), 1);
}

async fn latest_delta_link(f: &Fx, stream: Stream) -> String {
    let page = f
        .client
        .fetch_page(
            &f.tenant,
            stream,
            &PageRequest::Link(format!(
                "{}/v1.0/{}/delta?$select={}&$deltatoken=latest",
                f.emu.graph_base_url(),
                match stream {
                    Stream::Users => "users",
                    Stream::Groups => "groups",
                },
                match stream {
                    Stream::Users => "id,displayName,accountEnabled",
                    Stream::Groups => "id,displayName,members",
                }
            )),
        )
        .await
        .unwrap();
    match page.link {
        PageLink::Delta(d) => d,
        PageLink::Next(_) => panic!("latest gives a deltaLink"),
    }
}

#[tokio::test]
async fn groups_that_are_not_targets_are_refused_with_their_reason() {
    let f = fx().await;
    let cases = [
        (
            NewGroup::new("Sales DL", GroupKind::Distribution),
            NotATargetReason::DistributionList,
        ),
        (
            NewGroup::new("Mail Sec", GroupKind::MailEnabledSecurity),
            NotATargetReason::MailEnabledSecurityGroup,
        ),
        (
            NewGroup::new("All Members", GroupKind::Security).dynamic(None),
            NotATargetReason::DynamicMembership,
        ),
        (
            NewGroup::new("Dynamic M365", GroupKind::Microsoft365)
                .dynamic(Some("(user.department -eq \"Sales\")")),
            NotATargetReason::DynamicMembership,
        ),
        (
            NewGroup::new("From AD", GroupKind::Security).on_premises_synced(),
            NotATargetReason::OnPremisesSynced,
        ),
    ];
    for (group, reason) in cases {
        let name = group.display_name.clone();
        let gid = f.handle.create_group(group);
        for remove in [false, true] {
            let r = if remove {
                f.client.remove_group_member(&f.tenant, &gid, &f.user).await
            } else {
                f.client.add_group_member(&f.tenant, &gid, &f.user).await
            };
            match r {
                Err(WriteError::NotATarget {
                    group_id,
                    reason: got,
                    request_id,
                }) => {
                    assert_eq!(group_id, gid);
                    assert_eq!(got, reason, "{name}");
                    assert!(request_id.is_some());
                }
                other => panic!("{name}: expected NotATarget, got {other:?}"),
            }
        }
        assert!(f.handle.members(&gid).unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn every_kind_without_its_permission_names_the_permission() {
    let f = fx().await;
    let gid = f
        .handle
        .create_group(NewGroup::new("Writable", GroupKind::Security));
    let sp = f
        .handle
        .create_service_principal(NewServicePrincipal::new("Payroll", &[]));
    // Consent for reads only.
    f.handle
        .set_granted_permissions(["User.Read.All", "GroupMember.Read.All"]);
    f.handle.set_user_admin_role(true);
    let granted = f.client.granted_permissions(&f.tenant).await.unwrap();
    assert!(granted.contains("User.Read.All"));
    for p in WRITE_PERMISSIONS {
        assert!(!granted.contains(p), "{p}");
    }
    let role = AppRoleRef {
        service_principal_id: sp.id.clone(),
        app_role_id: None,
    };
    let u = f.user.as_str();
    let t = &f.tenant;
    let c = &f.client;
    let results = vec![
        (
            WriteKind::AddGroupMember,
            c.add_group_member(t, &gid, u).await,
        ),
        (
            WriteKind::RemoveGroupMember,
            c.remove_group_member(t, &gid, u).await,
        ),
        (
            WriteKind::AssignAppRole,
            c.assign_app_role(t, u, &role).await,
        ),
        (
            WriteKind::RemoveAppRole,
            c.remove_app_role_assignment(t, u, "some-assignment").await,
        ),
        (
            WriteKind::RevokeSessions,
            c.revoke_sign_in_sessions(t, u).await,
        ),
        (WriteKind::BlockSignIn, c.block_sign_in(t, u).await),
        (WriteKind::UnblockSignIn, c.unblock_sign_in(t, u).await),
        (
            WriteKind::ResetPassword,
            c.reset_password(t, u, &Secret::new(PASSWORD)).await,
        ),
        (WriteKind::DeleteUser, c.delete_user(t, u).await),
        (WriteKind::RestoreUser, c.restore_user(t, u).await),
    ];
    assert_eq!(results.len(), WriteKind::ALL.len());
    for (kind, r) in results {
        match r {
            Err(e @ WriteError::MissingPermission { .. }) => {
                let WriteError::MissingPermission { permission, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(permission, required_permission(kind), "{kind}");
                let text = e.to_string();
                assert!(text.contains(required_permission(kind)), "{text}");
                assert!(e.request_id().is_some(), "{kind}");
                assert!(!e.is_retryable());
            }
            other => panic!("{kind}: expected MissingPermission, got {other:?}"),
        }
    }
    assert!(f.handle.members(&gid).unwrap().is_empty());
    assert_eq!(f.handle.user(&f.user).unwrap()["accountEnabled"], true);

    // A reconsent with the write permissions: a fresh token carries them and writes pass.
    f.handle
        .set_granted_permissions(["User.Read.All", "GroupMember.ReadWrite.All"]);
    let granted = f.client.granted_permissions(&f.tenant).await.unwrap();
    assert!(granted.allows(WriteKind::AddGroupMember));
    assert!(!granted.allows(WriteKind::DeleteUser));
    assert!(applied(
        &f.client.add_group_member(t, &gid, u).await.unwrap()
    ));
}

#[tokio::test]
async fn broader_permissions_are_accepted() {
    let f = fx().await;
    let gid = f
        .handle
        .create_group(NewGroup::new("Writable", GroupKind::Security));
    f.handle
        .set_granted_permissions(["Directory.ReadWrite.All"]);
    let granted = f.client.granted_permissions(&f.tenant).await.unwrap();
    assert!(granted.allows(WriteKind::AddGroupMember));
    assert!(applied(
        &f.client
            .add_group_member(&f.tenant, &gid, &f.user)
            .await
            .unwrap()
    ));
    assert!(applied(
        &f.client.block_sign_in(&f.tenant, &f.user).await.unwrap()
    ));
}

#[tokio::test]
async fn block_unblock_and_revoke_show_in_the_directory_and_delta() {
    let f = fx().await;
    let delta = latest_delta_link(&f, Stream::Users).await;
    assert!(applied(
        &f.client.block_sign_in(&f.tenant, &f.user).await.unwrap()
    ));
    assert_eq!(f.handle.user(&f.user).unwrap()["accountEnabled"], false);
    let page = f
        .client
        .fetch_page(&f.tenant, Stream::Users, &PageRequest::Link(delta))
        .await
        .unwrap();
    let PageItems::Users(users) = page.items else {
        panic!("users page")
    };
    let seen = users.iter().find(|u| u.id() == f.user).unwrap();
    assert!(
        matches!(seen, UserDelta::Upsert { user, .. } if user.account_enabled == Some(false)),
        "{seen:?}"
    );

    assert!(applied(
        &f.client.unblock_sign_in(&f.tenant, &f.user).await.unwrap()
    ));
    assert_eq!(f.handle.user(&f.user).unwrap()["accountEnabled"], true);

    assert!(applied(
        &f.client
            .revoke_sign_in_sessions(&f.tenant, &f.user)
            .await
            .unwrap()
    ));
    assert!(
        f.handle.user(&f.user).unwrap()["signInSessionsValidFromDateTime"].is_string(),
        "revoking stamps signInSessionsValidFromDateTime"
    );
    expect_not_found(f.client.block_sign_in(&f.tenant, NOBODY).await, "user");
    expect_not_found(f.client.unblock_sign_in(&f.tenant, NOBODY).await, "user");
    expect_not_found(
        f.client.revoke_sign_in_sessions(&f.tenant, NOBODY).await,
        "user",
    );
    let counters = f.emu.counters();
    assert_eq!(counters.writes_succeeded(WriteOp::BlockSignIn), 1);
    assert_eq!(counters.writes_succeeded(WriteOp::UnblockSignIn), 1);
    assert_eq!(counters.writes_succeeded(WriteOp::RevokeSessions), 1);
    assert_eq!(counters.write_requests(WriteOp::RevokeSessions), 2);
}

#[tokio::test]
async fn password_reset_needs_the_directory_role_and_a_strong_password() {
    let f = fx().await;
    let secret = Secret::new(PASSWORD);
    // The permission is granted (default consent), the directory role is not.
    let e = f
        .client
        .reset_password(&f.tenant, &f.user, &secret)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, WriteError::MissingDirectoryRole { permission, request_id: Some(_) } if permission == "User-PasswordProfile.ReadWrite.All"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("User Administrator"), "{text}");
    assert!(!text.contains("Insufficient privileges"), "{text}");

    f.handle.set_user_admin_role(true);
    assert!(applied(
        &f.client
            .reset_password(&f.tenant, &f.user, &secret)
            .await
            .unwrap()
    ));
    assert!(f.handle.user(&f.user).unwrap()["lastPasswordChangeDateTime"].is_string());

    let weak = Secret::new("password");
    let e = f
        .client
        .reset_password(&f.tenant, &f.user, &weak)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, WriteError::Permanent { status: 400, .. }),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("password\""));
    expect_not_found(
        f.client.reset_password(&f.tenant, NOBODY, &secret).await,
        "user",
    );
    let counters = f.emu.counters();
    assert_eq!(counters.writes_succeeded(WriteOp::ResetPassword), 1);
    assert_eq!(counters.write_requests(WriteOp::ResetPassword), 4);
}

#[tokio::test]
async fn deleted_users_are_restored_once() {
    let f = fx().await;
    let gid = f
        .handle
        .create_group(NewGroup::new("Team", GroupKind::Security));
    f.handle.add_member(&gid, &f.user).unwrap();
    let delta = latest_delta_link(&f, Stream::Users).await;

    assert!(applied(
        &f.client.delete_user(&f.tenant, &f.user).await.unwrap()
    ));
    assert!(f.handle.is_soft_deleted(&f.user));
    assert!(f.handle.members(&gid).unwrap().is_empty());
    let again = f.client.delete_user(&f.tenant, &f.user).await.unwrap();
    assert!(
        !applied(&again),
        "deleting a deleted user is already in effect"
    );

    let page = f
        .client
        .fetch_page(&f.tenant, Stream::Users, &PageRequest::Link(delta))
        .await
        .unwrap();
    let PageItems::Users(users) = page.items else {
        panic!("users page")
    };
    assert!(
        users
            .iter()
            .any(|u| matches!(u, UserDelta::Removed { id, .. } if *id == f.user)),
        "the deleted user shows as removed: {users:?}"
    );

    assert!(applied(
        &f.client.restore_user(&f.tenant, &f.user).await.unwrap()
    ));
    assert!(f.handle.user(&f.user).is_some());
    let again = f.client.restore_user(&f.tenant, &f.user).await.unwrap();
    assert!(
        !applied(&again),
        "restoring a live user is already in effect"
    );

    expect_not_found(f.client.delete_user(&f.tenant, NOBODY).await, "user");
    expect_not_found(
        f.client.restore_user(&f.tenant, NOBODY).await,
        "deleted user",
    );
    let counters = f.emu.counters();
    assert_eq!(counters.writes_succeeded(WriteOp::DeleteUser), 1);
    assert_eq!(counters.writes_succeeded(WriteOp::RestoreUser), 1);
}

#[tokio::test]
async fn app_roles_are_assigned_listed_and_removed() {
    let f = fx().await;
    let sp = f
        .handle
        .create_service_principal(NewServicePrincipal::new("Payroll", &["Reader", "Admin"]));
    let default = AppRoleRef {
        service_principal_id: sp.id.clone(),
        app_role_id: None,
    };
    let admin = AppRoleRef {
        service_principal_id: sp.id.clone(),
        app_role_id: Some(sp.role_id("Admin").unwrap().to_string()),
    };
    assert!(applied(
        &f.client
            .assign_app_role(&f.tenant, &f.user, &default)
            .await
            .unwrap()
    ));
    let again = f
        .client
        .assign_app_role(&f.tenant, &f.user, &default)
        .await
        .unwrap();
    assert!(!applied(&again), "the same role again is already in effect");
    assert!(applied(
        &f.client
            .assign_app_role(&f.tenant, &f.user, &admin)
            .await
            .unwrap()
    ));

    let list = f
        .client
        .app_role_assignments(&f.tenant, &f.user)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|a| a.app_role_id == DEFAULT_ACCESS_ROLE));
    let admin_assignment = list.iter().find(|a| a.is_for(&admin)).unwrap();
    assert_eq!(admin_assignment.resource_id, sp.id);
    assert_eq!(admin_assignment.principal_id, f.user);
    assert_eq!(
        admin_assignment.resource_display_name.as_deref(),
        Some("Payroll")
    );

    let unknown_role = AppRoleRef {
        service_principal_id: sp.id.clone(),
        app_role_id: Some(NOBODY.into()),
    };
    expect_not_found(
        f.client
            .assign_app_role(&f.tenant, &f.user, &unknown_role)
            .await,
        "app role",
    );
    let unknown_app = AppRoleRef {
        service_principal_id: NOBODY.into(),
        app_role_id: None,
    };
    expect_not_found(
        f.client
            .assign_app_role(&f.tenant, &f.user, &unknown_app)
            .await,
        "enterprise application",
    );
    expect_not_found(
        f.client.assign_app_role(&f.tenant, NOBODY, &default).await,
        "user",
    );

    let id = admin_assignment.id.clone();
    assert!(applied(
        &f.client
            .remove_app_role_assignment(&f.tenant, &f.user, &id)
            .await
            .unwrap()
    ));
    let again = f
        .client
        .remove_app_role_assignment(&f.tenant, &f.user, &id)
        .await
        .unwrap();
    assert!(!applied(&again), "a removed assignment is already gone");
    expect_not_found(
        f.client
            .remove_app_role_assignment(&f.tenant, NOBODY, &id)
            .await,
        "user",
    );
    assert_eq!(f.handle.app_role_assignments(&f.user).len(), 1);
    let counters = f.emu.counters();
    assert_eq!(counters.writes_succeeded(WriteOp::AssignAppRole), 2);
    assert_eq!(counters.writes_succeeded(WriteOp::RemoveAppRole), 1);
}

#[tokio::test(start_paused = true)]
async fn the_write_budget_429_is_waited_out() {
    let config = EmulatorConfig {
        write_budget: Some(ThrottleBudget::new(2, Duration::from_secs(2)).with_burst(2)),
        ..EmulatorConfig::default()
    };
    let f = fx_with(config).await;
    for _ in 0..3 {
        assert!(
            f.client
                .revoke_sign_in_sessions(&f.tenant, &f.user)
                .await
                .unwrap()
                .is_applied()
        );
    }
    let writes: Vec<_> = f
        .emu
        .request_log()
        .into_iter()
        .filter(|r| r.route == Route::Write)
        .collect();
    assert_eq!(
        writes.len(),
        4,
        "two in the burst, one throttled, one retried"
    );
    assert_eq!(writes[2].status, 429);
    let wait = writes[2].retry_after.expect("429 carries Retry-After");
    assert!(wait >= 1);
    assert!(
        writes[3].at - writes[2].at >= Duration::from_secs(u64::from(wait)),
        "the client waited the Retry-After"
    );
    assert_eq!(f.client.throttled_responses(&f.tenant), 1);
    let counters = f.emu.counters().tenant(f.tenant.as_str());
    assert_eq!(counters.writes_succeeded(WriteOp::RevokeSessions), 3);
    assert_eq!(counters.throttled_429, 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_policy_returns_throttled() {
    let config = EmulatorConfig {
        write_budget: Some(ThrottleBudget::new(1, Duration::from_secs(600)).with_burst(1)),
        ..EmulatorConfig::default()
    };
    let f = fx_with(config).await;
    let client = client_for(
        &f.emu,
        RetryPolicy {
            max_retry_after: Duration::from_secs(30),
            ..RetryPolicy::default()
        },
    );
    client.block_sign_in(&f.tenant, &f.user).await.unwrap();
    match client.block_sign_in(&f.tenant, &f.user).await {
        Err(e @ WriteError::Throttled { .. }) => {
            let WriteError::Throttled {
                retry_after,
                request_id,
            } = &e
            else {
                unreachable!()
            };
            assert!(retry_after.unwrap() > Duration::from_secs(30));
            assert!(request_id.is_some());
            assert!(e.is_retryable());
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
}
