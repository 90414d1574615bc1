//! GraphClient against the Graph emulator: full and incremental rounds, split groups, faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{
    DirectoryGroup, DirectoryUser, MemberRef, MemberType, RemovalReason, Stream, TenantId,
};
use entra_sync_core::page::{
    FetchedPage, GroupDelta, ManagerChange, PageItems, PageLink, PageRequest, UserDelta,
};
use entra_sync_core::ports::Secret;
use entra_sync_emulator::{
    Emulator, EmulatorConfig, Fault, FaultKind, NewUser, RouteMatch, TenantSpec, ThrottleBudget,
};
use entra_sync_graph::{GraphClient, GraphConfig, group_from_graph_json, user_from_graph_json};
use futures::TryStreamExt;
use url::Url;

/// The emulator plays the global cloud: it accepts the global `.default` scope only.
const GLOBAL_SCOPE: &str = "https://graph.microsoft.com/.default";

async fn start(config: EmulatorConfig) -> (Emulator, GraphClient) {
    let emu = Emulator::start(config).await.unwrap();
    let app = emu.app();
    let mut config = GraphConfig::new(
        Url::parse(&emu.graph_base_url()).unwrap(),
        Url::parse(&emu.login_base_url()).unwrap(),
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    );
    config.scope = Some(GLOBAL_SCOPE.into());
    (emu, GraphClient::new(config).unwrap())
}

/// Every page of one round from `start`, and the deltaLink that ends it.
async fn round(
    client: &GraphClient,
    tenant: &TenantId,
    stream: Stream,
    start: PageRequest,
) -> (Vec<FetchedPage>, String) {
    let pages: Vec<FetchedPage> = client
        .delta_pages(tenant, stream, start)
        .try_collect()
        .await
        .unwrap();
    let Some(PageLink::Delta(delta)) = pages.last().map(|p| p.link.clone()) else {
        panic!("round did not end with a deltaLink")
    };
    for page in &pages[..pages.len() - 1] {
        assert!(matches!(page.link, PageLink::Next(_)));
    }
    (pages, delta)
}

fn users_of(pages: &[FetchedPage]) -> Vec<UserDelta> {
    pages
        .iter()
        .flat_map(|p| match &p.items {
            PageItems::Users(u) => u.clone(),
            PageItems::Groups(_) => panic!("expected users"),
        })
        .collect()
}

fn groups_of(pages: &[FetchedPage]) -> Vec<GroupDelta> {
    pages
        .iter()
        .flat_map(|p| match &p.items {
            PageItems::Groups(g) => g.clone(),
            PageItems::Users(_) => panic!("expected groups"),
        })
        .collect()
}

/// Applies a users round to a map of users (manager folded into `manager_id`).
fn apply_users(mirror: &mut BTreeMap<String, DirectoryUser>, items: &[UserDelta]) {
    for item in items {
        match item {
            UserDelta::Upsert { user, manager } => {
                let previous = mirror.get(&user.id).and_then(|u| u.manager_id.clone());
                let mut user = user.clone();
                user.manager_id = match manager {
                    ManagerChange::Set(id) => Some(id.clone()),
                    ManagerChange::Removed => None,
                    ManagerChange::NotReported => previous,
                };
                mirror.insert(user.id.clone(), user);
            }
            UserDelta::Removed { id, .. } => {
                mirror.remove(id);
            }
        }
    }
}

fn member_type(t: &str) -> MemberType {
    MemberType::from_odata_type(t)
}

#[tokio::test]
async fn full_users_round_reads_every_user_like_the_snapshot() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(11, 1_000, 20));
    let tenant = TenantId::new(info.tenant_id.clone());

    let (pages, delta) = round(&client, &tenant, Stream::Users, PageRequest::Initial).await;
    assert!(
        pages.len() >= 5,
        "1000 users at ~200 per page: {} pages",
        pages.len()
    );
    assert!(delta.starts_with(&emu.graph_base_url()));

    let mut mirror = BTreeMap::new();
    apply_users(&mut mirror, &users_of(&pages));
    let snapshot = emu.tenant(&info.tenant_id).unwrap().snapshot();
    let expected: BTreeMap<String, DirectoryUser> = snapshot
        .users
        .iter()
        .map(|v| user_from_graph_json(v).unwrap())
        .map(|u| (u.id.clone(), u))
        .collect();
    assert_eq!(mirror.len(), 1_000);
    assert!(mirror.values().any(|u| u.manager_id.is_some()));
    assert!(mirror.values().any(|u| !u.license_sku_ids.is_empty()));
    assert_eq!(
        mirror, expected,
        "delta pages and snapshot describe the same users"
    );

    // Every HTTP request the client sent reached the emulator (one token + the pages).
    let counters = emu.counters();
    assert_eq!(counters.token, 1);
    assert_eq!(client.requests_sent(&tenant), counters.requests);
    assert_eq!(counters.users_delta, pages.len() as u64);
}

#[tokio::test]
async fn full_groups_round_accumulates_members_of_split_groups() {
    let config = EmulatorConfig {
        group_page_size: 5,
        member_slice: 40,
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(config).await;
    let info = emu.add_tenant(&TenantSpec::new(12, 400, 15));
    let tenant = TenantId::new(info.tenant_id.clone());
    let handle = emu.tenant(&info.tenant_id).unwrap();

    let (pages, _) = round(&client, &tenant, Stream::Groups, PageRequest::Initial).await;
    let mut groups: BTreeMap<String, DirectoryGroup> = BTreeMap::new();
    let mut members: BTreeMap<String, BTreeSet<MemberRef>> = BTreeMap::new();
    let mut pages_per_group: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (n, page) in pages.iter().enumerate() {
        let PageItems::Groups(items) = &page.items else {
            panic!("expected groups")
        };
        for item in items {
            match item {
                GroupDelta::Upsert {
                    group,
                    members_added,
                    members_removed,
                } => {
                    assert!(
                        members_removed.is_empty(),
                        "initial round lists current members"
                    );
                    let entry = members.entry(group.id.clone()).or_default();
                    entry.extend(members_added.iter().cloned());
                    pages_per_group
                        .entry(group.id.clone())
                        .or_default()
                        .insert(n);
                    groups.insert(group.id.clone(), group.clone());
                }
                GroupDelta::Removed { id, .. } => panic!("unexpected removal of {id}"),
            }
        }
    }
    assert!(
        pages_per_group.values().any(|p| p.len() > 1),
        "a large group should span pages"
    );

    let snapshot = handle.snapshot();
    let expected_groups: BTreeMap<String, DirectoryGroup> = snapshot
        .groups
        .iter()
        .map(|v| group_from_graph_json(v).unwrap())
        .map(|g| (g.id.clone(), g))
        .collect();
    assert_eq!(groups, expected_groups);
    for id in handle.group_ids() {
        let expected: BTreeSet<MemberRef> = handle
            .members(&id)
            .unwrap()
            .into_iter()
            .map(|(id, t)| MemberRef {
                id,
                member_type: member_type(&t),
            })
            .collect();
        let got = members.get(&id).cloned().unwrap_or_default();
        assert_eq!(got, expected, "members of group {id}");
    }
    assert!(members.values().any(|m| m.len() > 100));
    assert!(
        members
            .values()
            .flatten()
            .any(|m| m.member_type == MemberType::Group),
        "nested groups come through as group members"
    );
}

#[tokio::test]
async fn incremental_round_returns_only_the_changes() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(13, 300, 10));
    let tenant = TenantId::new(info.tenant_id.clone());
    let handle = emu.tenant(&info.tenant_id).unwrap();

    let (user_pages, users_delta) =
        round(&client, &tenant, Stream::Users, PageRequest::Initial).await;
    let (_, groups_delta) = round(&client, &tenant, Stream::Groups, PageRequest::Initial).await;
    let mut mirror = BTreeMap::new();
    apply_users(&mut mirror, &users_of(&user_pages));

    // Nothing changed yet: an empty page with a fresh deltaLink.
    let (unchanged, _) = round(
        &client,
        &tenant,
        Stream::Users,
        PageRequest::Link(users_delta.clone()),
    )
    .await;
    assert!(users_of(&unchanged).is_empty());

    // Pick users that manage nobody, so deletions do not touch anyone else.
    let snapshot = handle.snapshot();
    let managers: BTreeSet<String> = mirror
        .values()
        .filter_map(|u| u.manager_id.clone())
        .collect();
    let plain: Vec<&DirectoryUser> = mirror
        .values()
        .filter(|u| !managers.contains(&u.id))
        .collect();
    let with_manager = plain.iter().find(|u| u.manager_id.is_some()).unwrap();
    let others: Vec<&&DirectoryUser> = plain
        .iter()
        .filter(|u| u.manager_id.is_none() && u.id != with_manager.id)
        .collect();
    let (retitled, disabled, soft_deleted, purged, promoted) = (
        &others[0].id,
        &others[1].id,
        &others[2].id,
        &others[3].id,
        &others[4].id,
    );
    let new_manager = &others[5].id;
    let unmanaged = &with_manager.id;

    let mut patch = serde_json::Map::new();
    patch.insert("jobTitle".into(), serde_json::json!("Chief Tester"));
    handle.update_user(retitled, patch).unwrap();
    handle.set_account_enabled(disabled, false).unwrap();
    handle.delete_user(soft_deleted).unwrap();
    handle.purge_user(purged).unwrap();
    handle.set_manager(promoted, Some(new_manager)).unwrap();
    handle.set_manager(unmanaged, None).unwrap();
    let created = handle.create_user(NewUser::new("New Person", "new.person@contoso.com"));

    let group_with_members = snapshot
        .memberships
        .iter()
        .find(|m| m.member_type == "user" && &m.member_id != soft_deleted && &m.member_id != purged)
        .unwrap();
    let target_group = group_with_members.group_id.clone();
    let dropped_member = group_with_members.member_id.clone();
    handle.add_member(&target_group, &created).unwrap();
    handle
        .remove_member(&target_group, &dropped_member)
        .unwrap();

    // Users: exactly the changed objects.
    let (pages, _) = round(
        &client,
        &tenant,
        Stream::Users,
        PageRequest::Link(users_delta),
    )
    .await;
    let items = users_of(&pages);
    let by_id: BTreeMap<&str, &UserDelta> = items.iter().map(|i| (i.id(), i)).collect();
    let expected: BTreeSet<&str> = [
        retitled.as_str(),
        disabled,
        soft_deleted,
        purged,
        promoted,
        unmanaged,
        &created,
    ]
    .into_iter()
    .collect();
    assert_eq!(by_id.keys().copied().collect::<BTreeSet<_>>(), expected);

    let upsert = |id: &str| match by_id[id] {
        UserDelta::Upsert { user, manager } => (user.clone(), manager.clone()),
        other => panic!("expected an upsert of {id}, got {other:?}"),
    };
    assert_eq!(
        upsert(retitled).0.job_title.as_deref(),
        Some("Chief Tester")
    );
    assert_eq!(upsert(disabled).0.account_enabled, Some(false));
    assert_eq!(upsert(promoted).1, ManagerChange::Set(new_manager.clone()));
    assert_eq!(upsert(unmanaged).1, ManagerChange::Removed);
    assert_eq!(
        upsert(&created).0.user_principal_name.as_deref(),
        Some("new.person@contoso.com")
    );
    assert_eq!(
        by_id[soft_deleted.as_str()],
        &UserDelta::Removed {
            id: soft_deleted.clone(),
            reason: RemovalReason::SoftDeleted
        }
    );
    assert_eq!(
        by_id[purged.as_str()],
        &UserDelta::Removed {
            id: purged.clone(),
            reason: RemovalReason::HardDeleted
        }
    );

    // Groups: the edited group, plus every group the deleted users left.
    let (pages, _) = round(
        &client,
        &tenant,
        Stream::Groups,
        PageRequest::Link(groups_delta),
    )
    .await;
    let mut added: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut removed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in groups_of(&pages) {
        if let GroupDelta::Upsert {
            group,
            members_added,
            members_removed,
        } = item
        {
            added
                .entry(group.id.clone())
                .or_default()
                .extend(members_added.into_iter().map(|m| m.id));
            removed
                .entry(group.id)
                .or_default()
                .extend(members_removed.into_iter().map(|m| m.id));
        }
    }
    assert_eq!(added[&target_group], BTreeSet::from([created.clone()]));
    assert!(removed[&target_group].contains(&dropped_member));
    for m in &snapshot.memberships {
        if &m.member_id == soft_deleted || &m.member_id == purged {
            assert!(
                removed
                    .get(&m.group_id)
                    .is_some_and(|r| r.contains(&m.member_id)),
                "group {} should report {} removed",
                m.group_id,
                m.member_id
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn injected_throttling_is_waited_out() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(14, 50, 3));
    let tenant = TenantId::new(info.tenant_id.clone());
    emu.faults().inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Throttle {
                retry_after_secs: 3,
            },
        )
        .times(2),
    );
    let page = client
        .fetch_page(&tenant, Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 50);
    assert_eq!(client.throttled_responses(&tenant), 2);
    assert_eq!(emu.counters().throttled_429, 2);

    let log: Vec<_> = emu
        .request_log()
        .into_iter()
        .filter(|r| r.path_and_query.contains("/users/delta"))
        .collect();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].status, 429);
    assert!(log[1].at - log[0].at >= Duration::from_secs(3));
    assert!(log[2].at - log[1].at >= Duration::from_secs(3));
    assert_eq!(log[2].status, 200);
}

#[tokio::test(start_paused = true)]
async fn read_budget_throttling_is_retried_until_the_round_completes() {
    let config = EmulatorConfig {
        user_page_size: 50,
        read_budget: Some(ThrottleBudget::new(2, Duration::from_secs(4))),
        ..EmulatorConfig::default()
    };
    let (emu, client) = start(config).await;
    let info = emu.add_tenant(&TenantSpec::new(15, 400, 3));
    let tenant = TenantId::new(info.tenant_id.clone());
    let (pages, _) = round(&client, &tenant, Stream::Users, PageRequest::Initial).await;
    assert_eq!(users_of(&pages).len(), 400);
    assert!(
        client.throttled_responses(&tenant) > 0,
        "the budget must have bitten"
    );
    assert_eq!(
        client.throttled_responses(&tenant),
        emu.counters().throttled_429
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_connections_and_outages_are_retried() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(16, 30, 3));
    let tenant = TenantId::new(info.tenant_id.clone());
    emu.faults()
        .inject(Fault::new(RouteMatch::Token, FaultKind::DropConnection));
    emu.faults().inject(Fault::new(
        RouteMatch::GroupsDelta,
        FaultKind::DropConnection,
    ));
    emu.faults().inject(Fault::new(
        RouteMatch::GroupsDelta,
        FaultKind::Unavailable {
            status: 503,
            retry_after_secs: None,
        },
    ));
    let page = client
        .fetch_page(&tenant, Stream::Groups, &PageRequest::Initial)
        .await
        .unwrap();
    assert!(!page.items.is_empty());
    assert_eq!(emu.faults().pending(), 0);
}

#[tokio::test]
async fn revoked_consent_needs_reauthorization() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(17, 20, 2));
    let other = emu.add_tenant(&TenantSpec::new(18, 20, 2));
    let tenant = TenantId::new(info.tenant_id.clone());
    client
        .fetch_page(&tenant, Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();

    // The cached token stops working too: Graph says 401, the refresh says 7000229.
    emu.tenant(&info.tenant_id).unwrap().revoke_consent();
    let err = client
        .fetch_page(&tenant, Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::NeedsReauthorization { code } if code == "AADSTS7000229"),
        "{err:?}"
    );
    // Other tenants are unaffected.
    client
        .fetch_page(
            &TenantId::new(other.tenant_id.clone()),
            Stream::Users,
            &PageRequest::Initial,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn removed_app_roles_are_insufficient_privileges() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(19, 20, 2));
    let tenant = TenantId::new(info.tenant_id.clone());
    emu.tenant(&info.tenant_id)
        .unwrap()
        .set_app_roles_granted(false);
    let err = client
        .fetch_page(&tenant, Stream::Groups, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::InsufficientPrivileges { permission: Some(p) } if p == "GroupMember.Read.All"),
        "{err:?}"
    );
}

#[tokio::test]
async fn stale_or_reset_delta_links_require_resync() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(20, 40, 3));
    let tenant = TenantId::new(info.tenant_id.clone());
    let (_, delta) = round(&client, &tenant, Stream::Users, PageRequest::Initial).await;

    emu.faults()
        .inject(Fault::new(RouteMatch::UsersDelta, FaultKind::ResyncGone));
    let err = client
        .fetch_page(&tenant, Stream::Users, &PageRequest::Link(delta.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::ResyncRequired { .. }),
        "{err:?}"
    );

    emu.faults().inject(Fault::new(
        RouteMatch::UsersDelta,
        FaultKind::ResyncRequired,
    ));
    let err = client
        .fetch_page(&tenant, Stream::Users, &PageRequest::Link(delta.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::ResyncRequired { code } if code == "resyncRequired"),
        "{err:?}"
    );

    // Eight days later the token has expired (and so has our access token, which the client
    // replaces after Graph's 401).
    emu.advance_clock(Duration::from_secs(8 * 24 * 3600));
    let err = client
        .fetch_page(&tenant, Stream::Users, &PageRequest::Link(delta))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::ResyncRequired { code } if code == "syncStateNotFound"),
        "{err:?}"
    );
    assert_eq!(emu.counters().token, 2);
}

#[tokio::test]
async fn organization_reports_the_tenant() {
    let (emu, client) = start(EmulatorConfig::default()).await;
    let info = emu.add_tenant(&TenantSpec::new(21, 10, 1));
    let org = client
        .organization(&TenantId::new(info.tenant_id.clone()))
        .await
        .unwrap();
    assert_eq!(org.id, info.tenant_id);
    assert_eq!(org.display_name.as_deref(), Some(info.name.as_str()));
    let names: Vec<&str> = org
        .verified_domains
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        info.verified_domains
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        org.verified_domains.iter().filter(|d| d.is_initial).count(),
        1
    );
    let default: Vec<_> = org
        .verified_domains
        .iter()
        .filter(|d| d.is_default)
        .collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].name, info.default_domain);
}

#[tokio::test]
async fn graph_and_login_urls_work_with_the_api_version_and_trailing_slashes() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let info = emu.add_tenant(&TenantSpec::new(22, 5, 1));
    let tenant = TenantId::new(info.tenant_id.clone());
    let app = emu.app();
    let graph = emu.graph_base_url();
    let login = emu.login_base_url();
    for (graph, login) in [
        (format!("{graph}/v1.0"), login.clone()),
        (format!("{graph}/v1.0/"), format!("{login}/")),
        (format!("{graph}/"), format!("{login}/")),
    ] {
        // The derived scope (`{graph origin}/.default`), as the local program uses it.
        let client = GraphClient::new(GraphConfig::new(
            Url::parse(&graph).unwrap(),
            Url::parse(&login).unwrap(),
            app.client_id.clone(),
            Secret::new(app.client_secret.clone()),
        ))
        .unwrap();
        let org = client.organization(&tenant).await.unwrap();
        assert_eq!(org.id, info.tenant_id, "{graph} {login}");
        client
            .fetch_page(&tenant, Stream::Users, &PageRequest::Initial)
            .await
            .unwrap();
    }
}
