//! Tenant isolation through every store port, on every store adapter (in memory, SQLite, and
//! DynamoDB on moto): reading or writing one tenant never sees or changes another, even when
//! object ids, run ids, cycles and page numbers collide across tenants, tenant ids prefix each
//! other, group ids prefix each other, and one tenant's listing continuation is used with
//! another tenant. And `reconcile_page` with a message naming tenant B, including a full round
//! that commits and sweeps, leaves tenant A exactly as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::memory::{ManualClock, MemoryStore};
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryGroup, DirectoryUser, MemberRef, MemberType,
    Presence, RemovalReason, StoredGroup, StoredMembership, StoredUser, Stream, TenantId, Version,
};
use entra_sync_core::page::{
    GroupDelta, ManagerChange, PageItems, PageMessage, RoundMode, UserDelta,
};
use entra_sync_core::ports::{
    ConnectionStore, CursorStore, LeaseStore, Listing, MirrorStore, RunStore,
};
use entra_sync_core::run::{RunUpdate, SyncRun, Trigger};
use entra_sync_core::services::{ReconcileOutcome, reconcile_page};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_local::sqlite::SqliteStore;

/// Every store port.
trait Store: ConnectionStore + CursorStore + LeaseStore + MirrorStore + RunStore + 'static {}
impl<T: ConnectionStore + CursorStore + LeaseStore + MirrorStore + RunStore + 'static> Store for T {}

/// Tenant ids that prefix each other.
fn a() -> TenantId {
    TenantId::new("contoso")
}
fn b() -> TenantId {
    TenantId::new("contoso2")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_261_600, 0).unwrap()
}

fn connection(t: &TenantId, label: &str) -> Connection {
    Connection {
        tenant_id: t.clone(),
        account_id: AccountId(format!("acct-{label}")),
        label: label.into(),
        tenant_name: Some(label.into()),
        verified_domains: vec![],
        status: ConnectionStatus::Connected,
        connected_at: now(),
        granted_permissions: Default::default(),
    }
}

fn user(id: &str, owner: &str, version: Version) -> StoredUser {
    StoredUser {
        user: DirectoryUser {
            id: id.into(),
            display_name: Some(format!("{owner}:{id}")),
            account_enabled: Some(true),
            ..Default::default()
        },
        presence: Presence::Present,
        version,
    }
}

fn group(id: &str, owner: &str, version: Version) -> StoredGroup {
    StoredGroup {
        group: DirectoryGroup {
            id: id.into(),
            display_name: Some(format!("{owner}:{id}")),
            ..Default::default()
        },
        presence: Presence::Present,
        version,
    }
}

fn edge(group_id: &str, member: &str, version: Version) -> StoredMembership {
    StoredMembership {
        group_id: group_id.into(),
        member: MemberRef {
            id: member.into(),
            member_type: MemberType::User,
        },
        present: true,
        version,
    }
}

/// Everything one tenant has in the store, through the read side of every port.
#[derive(Debug, PartialEq)]
struct TenantView {
    connection: Option<Connection>,
    cursors: Vec<Option<(CursorRecord, entra_sync_core::ports::Revision)>>,
    applied: Vec<u32>,
    users: Vec<StoredUser>,
    groups: Vec<StoredGroup>,
    edges: Vec<StoredMembership>,
    of_group: Vec<Vec<StoredMembership>>,
    runs: Vec<SyncRun>,
}

async fn all<T>(mut list: impl AsyncFnMut(Option<String>) -> Listing<T>) -> Vec<T> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        // Small pages, so continuations are exercised.
        let page = list(after.take()).await;
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
    panic!("a listing did not end after 1,000 pages");
}

async fn view<S: Store>(s: &S, t: &TenantId) -> TenantView {
    let mut cursors = Vec::new();
    let mut applied = Vec::new();
    for stream in [Stream::Users, Stream::Groups] {
        cursors.push(s.load_cursor(t, stream).await.unwrap());
        for cycle in 0..4 {
            applied.push(s.applied_pages(t, stream, cycle).await.unwrap());
        }
    }
    let mut of_group = Vec::new();
    for g in ["g1", "g10", "g1/", "g"] {
        of_group.push(s.memberships_of_group(t, g).await.unwrap());
    }
    TenantView {
        connection: s.get_connection(t).await.unwrap(),
        cursors,
        applied,
        users: all(async |after| s.list_users(t, after.as_deref(), 2).await.unwrap()).await,
        groups: all(async |after| s.list_groups(t, after.as_deref(), 2).await.unwrap()).await,
        edges: all(async |after| s.list_memberships(t, after.as_deref(), 2).await.unwrap()).await,
        of_group,
        runs: s.list_runs(t, 100).await.unwrap(),
    }
}

fn owner_of(name: &Option<String>) -> &str {
    name.as_deref()
        .and_then(|n| n.split(':').next())
        .unwrap_or("")
}

/// Both tenants hold objects with the same ids; group ids prefix each other. Everything is
/// written by an earlier cycle (0), so cycle 1 pages and sweeps are newer.
async fn seed<S: Store>(s: &S) {
    let v1 = Version::new(0, 3);
    for (t, owner) in [(a(), "A"), (b(), "B")] {
        s.put_connection(&connection(&t, owner)).await.unwrap();
        let users: Vec<StoredUser> = (1..=6).map(|i| user(&format!("u{i}"), owner, v1)).collect();
        assert_eq!(s.put_users(&t, &users).await.unwrap(), 6);
        let groups = vec![group("g1", owner, v1), group("g10", owner, v1)];
        assert_eq!(s.put_groups(&t, &groups).await.unwrap(), 2);
        let edges = vec![
            edge("g1", "u1", v1),
            edge("g1", "u2", v1),
            edge("g10", "u3", v1),
        ];
        assert_eq!(s.put_memberships(&t, &edges).await.unwrap(), 3);
    }
    // Only A has these: B must never see them.
    s.put_users(&a(), &[user("u7", "A", v1), user("zz-a-only", "A", v1)])
        .await
        .unwrap();
    s.put_memberships(&a(), &[edge("g1", "u7", v1)])
        .await
        .unwrap();
}

async fn ports_never_cross_tenants<S: Store>(s: &S) {
    seed(s).await;
    let a_before = view(s, &a()).await;
    let b_before = view(s, &b()).await;

    // Reads: every item B sees is B's, and B sees all of its own.
    assert_eq!(b_before.users.len(), 6);
    assert!(
        b_before
            .users
            .iter()
            .all(|u| owner_of(&u.user.display_name) == "B")
    );
    assert_eq!(a_before.users.len(), 8);
    assert!(
        a_before
            .users
            .iter()
            .all(|u| owner_of(&u.user.display_name) == "A")
    );
    assert!(
        b_before
            .groups
            .iter()
            .all(|g| owner_of(&g.group.display_name) == "B")
    );
    assert_eq!(b_before.edges.len(), 3);
    assert_eq!(a_before.edges.len(), 4);
    // memberships_of_group: "g1" is not "g10", and never the other tenant's g1.
    assert_eq!(a_before.of_group[0].len(), 3, "A's g1: u1, u2, u7");
    assert_eq!(b_before.of_group[0].len(), 2, "B's g1: u1, u2");
    assert_eq!(b_before.of_group[1].len(), 1, "B's g10: u3");
    assert!(b_before.of_group[2].is_empty() && b_before.of_group[3].is_empty());
    let ids = ["u1".to_owned(), "u7".to_owned(), "zz-a-only".to_owned()];
    let got = s.get_users(&b(), &ids).await.unwrap();
    assert_eq!(got.len(), 1, "B has u1 only: {got:?}");
    assert_eq!(owner_of(&got[0].user.display_name), "B");
    assert!(
        s.get_memberships(&b(), &[("g1".into(), "u7".into())])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.get_connection(&b()).await.unwrap().unwrap().label,
        "B",
        "connections are per tenant"
    );
    assert!(
        s.get_connection(&TenantId::new("contoso2x"))
            .await
            .unwrap()
            .is_none()
    );

    // A's continuation tokens used with B list B's items only (and never A's "zz-a-only").
    let a_page = s.list_users(&a(), None, 3).await.unwrap();
    let token = a_page.next.expect("A has more than 3 users");
    let b_rest = s.list_users(&b(), Some(&token), 100).await.unwrap();
    assert!(
        b_rest
            .items
            .iter()
            .all(|u| owner_of(&u.user.display_name) == "B")
    );
    assert!(!b_rest.items.is_empty());
    let a_edges = s.list_memberships(&a(), None, 1).await.unwrap();
    let b_edges = s
        .list_memberships(&b(), a_edges.next.as_deref(), 100)
        .await
        .unwrap();
    assert!(b_edges.items.iter().all(|e| e.member.id != "u7"));
    let b_groups = s.list_groups(&b(), Some("g1"), 100).await.unwrap();
    assert!(
        b_groups
            .items
            .iter()
            .all(|g| owner_of(&g.group.display_name) == "B")
    );
    // A token past the last of A's keys gives B nothing of A's.
    let past = s.list_users(&b(), Some("zz"), 100).await.unwrap();
    assert!(past.items.is_empty(), "{:?}", past.items);

    // Writes to B, with newer versions of ids A also has, change nothing of A's.
    let v2 = Version::new(2, 0);
    let mut gone = user("u1", "B", v2);
    gone.presence = Presence::Removed {
        reason: RemovalReason::HardDeleted,
    };
    assert_eq!(
        s.put_users(&b(), &[gone, user("u2", "B", v2)])
            .await
            .unwrap(),
        2
    );
    let mut g_gone = group("g1", "B", v2);
    g_gone.presence = Presence::Removed {
        reason: RemovalReason::HardDeleted,
    };
    assert_eq!(s.put_groups(&b(), &[g_gone]).await.unwrap(), 1);
    let mut tomb = edge("g1", "u1", v2);
    tomb.present = false;
    assert_eq!(s.put_memberships(&b(), &[tomb]).await.unwrap(), 1);
    s.put_connection(&Connection {
        status: ConnectionStatus::Disconnected,
        ..connection(&b(), "B")
    })
    .await
    .unwrap();

    // Cursors, applied pages and leases of B, with the same streams, cycles and pages as A's.
    let (round, _) = CursorRecord::default().begin_round("run-1");
    let rev_a = s
        .save_cursor(&a(), Stream::Users, &round, None)
        .await
        .unwrap();
    let rev_b = s
        .save_cursor(&b(), Stream::Users, &round, None)
        .await
        .unwrap();
    let next = round.checkpoint_next("https://x/next".into()).unwrap();
    s.save_cursor(&b(), Stream::Users, &next, Some(rev_b))
        .await
        .unwrap();
    assert!(
        s.save_cursor(&a(), Stream::Users, &next, None)
            .await
            .is_err(),
        "A has a record: an unconditional first write must conflict"
    );
    assert_eq!(
        s.load_cursor(&a(), Stream::Users).await.unwrap(),
        Some((round.clone(), rev_a)),
        "B's checkpoint did not move A's cursor"
    );
    assert!(
        s.mark_page_applied(&a(), Stream::Users, 1, 0)
            .await
            .unwrap()
    );
    assert!(
        s.mark_page_applied(&b(), Stream::Users, 1, 0)
            .await
            .unwrap(),
        "the same page of B is new for B"
    );
    assert!(
        s.mark_page_applied(&b(), Stream::Users, 1, 1)
            .await
            .unwrap()
    );
    assert_eq!(s.applied_pages(&a(), Stream::Users, 1).await.unwrap(), 1);
    assert_eq!(s.applied_pages(&b(), Stream::Users, 1).await.unwrap(), 2);
    assert_eq!(s.applied_pages(&b(), Stream::Groups, 1).await.unwrap(), 0);

    let until = now() + chrono::Duration::minutes(15);
    assert!(
        s.acquire_lease(&a(), "worker-a", until, now())
            .await
            .unwrap()
    );
    assert!(
        s.acquire_lease(&b(), "worker-b", until, now())
            .await
            .unwrap(),
        "A's lease does not hold B"
    );
    assert!(
        !s.acquire_lease(&a(), "worker-b", until, now())
            .await
            .unwrap()
    );
    s.release_lease(&b(), "worker-a").await.unwrap();
    assert!(
        !s.acquire_lease(&b(), "worker-c", until, now())
            .await
            .unwrap(),
        "A's holder cannot release B's lease"
    );
    s.release_lease(&b(), "worker-b").await.unwrap();
    assert!(
        !s.acquire_lease(&a(), "worker-c", until, now())
            .await
            .unwrap(),
        "releasing B's lease does not free A's"
    );

    // Runs with the same id in both tenants.
    s.create_run(&SyncRun::new(
        "run-1".into(),
        a(),
        Trigger::Scheduled,
        now(),
    ))
    .await
    .unwrap();
    s.create_run(&SyncRun::new("run-1".into(), b(), Trigger::Manual, now()))
        .await
        .unwrap();
    let counts = entra_sync_core::run::Counts {
        created: 5,
        ..Default::default()
    };
    let b_run = s
        .update_run(&b(), "run-1", &RunUpdate::AddCounts(counts))
        .await
        .unwrap();
    assert_eq!(b_run.tenant_id, b());
    let a_run = s.get_run(&a(), "run-1").await.unwrap().unwrap();
    assert_eq!(a_run.counts.created, 0, "B's update did not reach A's run");
    assert_eq!(a_run.trigger, Trigger::Scheduled);
    s.create_run(&SyncRun::new(
        "run-a-only".into(),
        a(),
        Trigger::Manual,
        now(),
    ))
    .await
    .unwrap();
    assert!(s.get_run(&b(), "run-a-only").await.unwrap().is_none());
    assert!(
        s.update_run(&b(), "run-a-only", &RunUpdate::AddCounts(counts))
            .await
            .is_err(),
        "B cannot update a run of A"
    );
    assert_eq!(
        s.get_run(&a(), "run-a-only")
            .await
            .unwrap()
            .unwrap()
            .counts
            .created,
        0
    );
    let b_runs = s.list_runs(&b(), 100).await.unwrap();
    assert_eq!(b_runs.len(), 1);
    assert!(b_runs.iter().all(|r| r.tenant_id == b()));

    // A, apart from what A itself wrote (cursor, applied page, run), is as it was.
    let mut a_after = view(s, &a()).await;
    assert_eq!(a_after.users, a_before.users);
    assert_eq!(a_after.groups, a_before.groups);
    assert_eq!(a_after.edges, a_before.edges);
    assert_eq!(a_after.of_group, a_before.of_group);
    assert_eq!(a_after.connection, a_before.connection);
    assert_eq!(a_after.runs.len(), 2);
    assert!(
        a_after
            .runs
            .iter()
            .all(|r| r.tenant_id == a() && r.counts.created == 0)
    );
    a_after.runs.clear();
    assert_eq!(a_after.applied[0..4], [0, 1, 0, 0]);
    // And B did change: the test writes were real.
    let b_after = view(s, &b()).await;
    assert_ne!(b_after.users, b_before.users);
    assert_ne!(b_after.connection, b_before.connection);
}

#[tokio::test]
async fn memory_store_ports_never_cross_tenants() {
    ports_never_cross_tenants(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_ports_never_cross_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
    ports_never_cross_tenants(&s).await;
}

#[tokio::test]
async fn dynamodb_store_ports_never_cross_tenants() {
    ports_never_cross_tenants(&dynamo().await).await;
}

async fn dynamo() -> entra_sync_aws::DynamoStore {
    use entra_sync_tests::moto;
    let config = entra_sync_aws::sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = entra_sync_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("isolation"),
    );
    store.create_table().await.expect("create table on moto");
    store
}

// ---------------------------------------------------------------------------------------------
// reconcile_page

fn page(t: &TenantId, page_seq: u32, items: PageItems) -> PageMessage {
    PageMessage {
        tenant_id: t.clone(),
        run_id: "run-1".into(),
        cycle: 1,
        page_seq,
        mode: RoundMode::Full,
        items,
    }
}

fn upsert(id: &str, name: &str) -> UserDelta {
    UserDelta::Upsert {
        user: DirectoryUser {
            id: id.into(),
            display_name: Some(name.into()),
            account_enabled: Some(false),
            ..Default::default()
        },
        manager: ManagerChange::Set("u9".into()),
    }
}

async fn reconcile_for_b_never_touches_a<S: Store>(s: Arc<S>) {
    seed(&*s).await;
    // Both tenants are in the same full round (cycle 1, run "run-1") of two pages per stream.
    let (round, _) = CursorRecord::default().begin_round("run-1");
    let applying = round
        .checkpoint_next("https://x/next".into())
        .unwrap()
        .checkpoint_last("https://x/delta".into())
        .unwrap();
    for t in [a(), b()] {
        for stream in [Stream::Users, Stream::Groups] {
            s.save_cursor(&t, stream, &applying, None).await.unwrap();
        }
        s.create_run(&SyncRun::new("run-1".into(), t, Trigger::Scheduled, now()))
            .await
            .unwrap();
    }
    let a_before = view(&*s, &a()).await;

    let deps = DepsBuilder::on(&s)
        .clock(Arc::new(ManualClock::new(now())))
        .reconcile();
    // B's whole round: users u1..u3 only (u4..u6 are swept), g1 removed, g10's member changed.
    let messages = [
        page(
            &b(),
            0,
            PageItems::Users(vec![upsert("u1", "B:new"), upsert("u2", "B:new")]),
        ),
        page(
            &b(),
            1,
            PageItems::Users(vec![
                upsert("u3", "B:new"),
                UserDelta::Removed {
                    id: "u7".into(),
                    reason: RemovalReason::HardDeleted,
                },
            ]),
        ),
        page(
            &b(),
            0,
            PageItems::Groups(vec![GroupDelta::Removed {
                id: "g1".into(),
                reason: RemovalReason::HardDeleted,
            }]),
        ),
        page(
            &b(),
            1,
            PageItems::Groups(vec![GroupDelta::Upsert {
                group: DirectoryGroup {
                    id: "g10".into(),
                    display_name: Some("B:g10 renamed".into()),
                    ..Default::default()
                },
                members_added: vec![MemberRef {
                    id: "u7".into(),
                    member_type: MemberType::User,
                }],
                members_removed: vec![MemberRef {
                    id: "u3".into(),
                    member_type: MemberType::User,
                }],
            }]),
        ),
    ];
    let mut committed = 0;
    for m in &messages {
        match reconcile_page(&deps, m).await.unwrap() {
            ReconcileOutcome::Applied {
                committed: c,
                first_time,
                ..
            } => {
                assert!(first_time);
                committed += u32::from(c);
            }
            ReconcileOutcome::Abandoned => panic!("B's page was dropped"),
        }
    }
    assert_eq!(committed, 2, "both of B's streams committed (and swept)");

    let a_after = view(&*s, &a()).await;
    assert_eq!(a_after, a_before, "A changed while B was reconciled");

    // B did change: renamed, swept, group removed, member moved.
    let b_users = s.list_users(&b(), None, 100).await.unwrap().items;
    let present: Vec<&str> = b_users
        .iter()
        .filter(|u| u.presence.is_present())
        .map(|u| u.user.id.as_str())
        .collect();
    assert_eq!(present, ["u1", "u2", "u3"], "{b_users:?}");
    assert!(
        b_users
            .iter()
            .any(|u| u.user.display_name.as_deref() == Some("B:new"))
    );
    let b_g1 = s.get_groups(&b(), &["g1".into()]).await.unwrap();
    assert!(!b_g1[0].presence.is_present());
    let b_run = s.get_run(&b(), "run-1").await.unwrap().unwrap();
    assert_eq!(b_run.counts.pages_applied, 4);
    assert_eq!(
        s.get_run(&a(), "run-1")
            .await
            .unwrap()
            .unwrap()
            .counts
            .pages_applied,
        0
    );
}

#[tokio::test]
async fn reconciling_tenant_b_never_touches_tenant_a_in_memory() {
    reconcile_for_b_never_touches_a(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn reconciling_tenant_b_never_touches_tenant_a_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
    reconcile_for_b_never_touches_a(Arc::new(s)).await;
}

#[tokio::test]
async fn reconciling_tenant_b_never_touches_tenant_a_in_dynamodb() {
    reconcile_for_b_never_touches_a(Arc::new(dynamo().await)).await;
}

/// A directory that describes any tenant it is asked about (the consent proof always works).
struct AnyTenant;

#[async_trait::async_trait]
impl entra_sync_core::ports::TenantDirectory for AnyTenant {
    async fn tenant_details(
        &self,
        tenant: &TenantId,
    ) -> Result<entra_sync_core::ports::TenantDetails, entra_sync_core::error::DirectoryError> {
        Ok(entra_sync_core::ports::TenantDetails {
            tenant_id: tenant.clone(),
            name: Some(format!("name of {tenant}")),
            verified_domains: vec![],
        })
    }
    async fn forget_tenant(&self, _tenant: &TenantId) {}
}

/// The single-use state in the consent URL of a start answer.
fn state_of(start_answer: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(start_answer).unwrap();
    let url = url::Url::parse(v["consent_url"].as_str().unwrap()).unwrap();
    let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1;
    state.into_owned()
}

#[tokio::test]
async fn connect_routes_never_let_one_account_see_or_change_anothers_connection() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let store = Arc::new(MemoryStore::new());
    let routes = entra_sync_http::connect::router(entra_sync_http::connect::ConnectState {
        deps: entra_sync_core::services::ConnectDeps {
            consent_states: Arc::new(entra_sync_core::memory_consent::MemoryConsentStates::new()),
            connections: store.clone(),
            directory: Arc::new(AnyTenant),
            vault: Arc::new(entra_sync_core::memory::MemoryVault::default()),
            clock: Arc::new(ManualClock::new(now())),
        },
        config: Arc::new(entra_sync_http::connect::ConnectConfig {
            login_base_url: url::Url::parse("https://login.microsoftonline.com").unwrap(),
            client_id: "app".into(),
            redirect_uri: Some(url::Url::parse("https://c.example.com/connect/callback").unwrap()),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: chrono::Duration::minutes(10),
            return_url: None,
        }),
    });
    let call = |method: &str, uri: String, body: &str| {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let routes = routes.clone();
        async move {
            let resp = routes.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    // Account ids that prefix each other; each connects its own tenant.
    let tenants = [
        ("acct", "11111111-1111-4111-8111-111111111111"),
        ("acct-1", "22222222-2222-4222-8222-222222222222"),
    ];
    for (account, tenant) in tenants {
        let (status, body) = call(
            "POST",
            format!("/accounts/{account}/connections/start"),
            &format!(r#"{{"label":"label of {account}"}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let state = state_of(&body);
        let (status, _) = call(
            "GET",
            format!("/connect/callback?admin_consent=True&tenant={tenant}&state={state}"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let before = store.list_connections().await.unwrap();
    assert_eq!(before.len(), 2);

    for (me, _) in tenants {
        let (other_account, other_tenant) = tenants.iter().find(|(a, _)| *a != me).unwrap();
        let (status, body) = call("GET", format!("/accounts/{me}/connections"), "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !body.contains(other_tenant) && !body.contains(&format!("label of {other_account}\""))
        );
        for (method, path) in [
            ("GET", format!("/accounts/{me}/connections/{other_tenant}")),
            (
                "POST",
                format!("/accounts/{me}/connections/{other_tenant}/reconnect"),
            ),
            (
                "POST",
                format!("/accounts/{me}/connections/{other_tenant}/disconnect"),
            ),
        ] {
            let (status, body) = call(method, path.clone(), "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert!(!body.contains(other_account), "{body}");
        }
        // Taking the other's tenant through a new consent is refused without naming anyone.
        let (_, body) = call(
            "POST",
            format!("/accounts/{me}/connections/start"),
            r#"{"label":"grab"}"#,
        )
        .await;
        let state = state_of(&body);
        let (status, body) = call(
            "GET",
            format!("/connect/callback?admin_consent=True&tenant={other_tenant}&state={state}"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(!body.contains(&format!("label of {other_account}")));
    }
    // Account ids that try to escape their path segment are refused.
    let (status, _) = call("GET", "/accounts/acct%2F..%2Facct-1/connections".into(), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        store.list_connections().await.unwrap(),
        before,
        "nothing changed"
    );
}
