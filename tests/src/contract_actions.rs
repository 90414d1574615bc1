//! The contract of the write half's storage ports (`ActionStore`, `WorkflowStore`,
//! `TargetLookup`) and of the action queue (`ActionQueue`). Every adapter runs the same functions
//! on a fresh store: the in-memory reference, SQLite and DynamoDB on moto
//! (tests/tests/contract_actions.rs). Each panics with a message naming the broken rule.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use entra_sync_core::actions::ports::{
    ActionFilter, ActionMessage, ActionQueue, ActionStore, TargetLookup, WorkflowStore,
};
use entra_sync_core::actions::workflow::{WorkflowOrigin, steps_for};
use entra_sync_core::actions::{
    ActionRecord, ActionSpec, ActionStatus, Origin, Target, Template, Workflow, WorkflowParams,
    WorkflowStatus,
};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{
    AccountId, DirectoryGroup, DirectoryUser, MemberRef, MemberType, Presence, RemovalReason,
    StoredGroup, StoredMembership, StoredUser, TenantId, Version,
};
use entra_sync_core::ports::MirrorStore;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_115_600, 0).unwrap_or_default()
}

fn tenant_a() -> TenantId {
    TenantId::new("tenant-a")
}

fn tenant_b() -> TenantId {
    TenantId::new("tenant-b")
}

/// An action on `user`, requested at `at`, in `status`.
pub fn action(
    tenant: &TenantId,
    id: &str,
    user: &str,
    at: DateTime<Utc>,
    status: ActionStatus,
) -> ActionRecord {
    ActionRecord {
        id: id.into(),
        tenant_id: tenant.clone(),
        account_id: AccountId("acct-1".into()),
        key: format!("key-{id}"),
        payload_hash: format!("hash-{id}"),
        spec: ActionSpec::RevokeSessions { user: user.into() },
        target: Target {
            user_id: user.into(),
            user_name: Some(format!("{user}@contoso.com")),
            ..Default::default()
        },
        requested_by: "alice@host".into(),
        origin: Origin::Api,
        requested_at: at,
        status,
        decision: None,
        attempts: 0,
        graph_request_id: None,
        finished_at: None,
        history: vec![],
        rev: 0,
    }
}

fn ids(items: &[ActionRecord]) -> Vec<&str> {
    items.iter().map(|r| r.id.as_str()).collect()
}

/// Every page of a listing, following `next`, checking that no page is over `limit`.
async fn all_pages(
    store: &dyn ActionStore,
    tenant: &TenantId,
    filter: &ActionFilter,
    limit: usize,
) -> Vec<Vec<ActionRecord>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_actions(tenant, filter, after.as_deref(), limit)
            .await
            .unwrap();
        assert!(page.items.len() <= limit, "a page longer than its limit");
        let next = page.next.clone();
        pages.push(page.items);
        match next {
            Some(n) => after = Some(n),
            None => return pages,
        }
        assert!(pages.len() < 100, "the listing never ends");
    }
}

fn status_filter(s: &str) -> ActionFilter {
    ActionFilter {
        user_id: None,
        status: Some(s.into()),
    }
}

fn user_filter(u: &str) -> ActionFilter {
    ActionFilter {
        user_id: Some(u.into()),
        status: None,
    }
}

/// Every rule of `ActionStore`, on a fresh store.
pub async fn actions(store: &dyn ActionStore) {
    let a = tenant_a();
    let b = tenant_b();
    let none = ActionFilter::default();
    assert_eq!(store.get_action(&a, "a1").await.unwrap(), None);
    assert!(
        store
            .list_actions(&a, &none, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Create once: the second create of the same id returns the stored one, writes nothing.
    let first = action(&a, "a1", "u1", t0(), ActionStatus::Queued);
    assert_eq!(store.create_action(&first).await.unwrap(), None);
    let mut other = action(
        &a,
        "a1",
        "u9",
        t0() + Duration::hours(1),
        ActionStatus::Rejected,
    );
    other.payload_hash = "another-payload".into();
    assert_eq!(
        store.create_action(&other).await.unwrap(),
        Some(first.clone()),
        "a second create answers with the stored action"
    );
    assert_eq!(
        store.get_action(&a, "a1").await.unwrap(),
        Some(first.clone())
    );
    let listed = store.list_actions(&a, &none, None, 10).await.unwrap();
    assert_eq!(
        listed.items,
        vec![first.clone()],
        "the second create wrote nothing"
    );
    assert!(listed.next.is_none());
    for f in [user_filter("u9"), status_filter("rejected")] {
        assert!(
            store
                .list_actions(&a, &f, None, 10)
                .await
                .unwrap()
                .items
                .is_empty(),
            "the losing create left nothing behind in the {f:?} listing"
        );
    }

    // Conditional update on `rev`.
    let mut running = first.clone();
    running.status = ActionStatus::Running { since: t0() };
    running.attempts = 1;
    running.rev = 1;
    store.update_action(&running, 0).await.unwrap();
    assert_eq!(
        store.get_action(&a, "a1").await.unwrap(),
        Some(running.clone())
    );
    let mut stale = first.clone();
    stale.status = ActionStatus::Cancelled;
    stale.rev = 1;
    assert!(
        matches!(
            store.update_action(&stale, 0).await,
            Err(StoreError::Conflict(_))
        ),
        "an update from a stale rev is a conflict"
    );
    assert_eq!(
        store.get_action(&a, "a1").await.unwrap(),
        Some(running.clone()),
        "a lost update changes nothing"
    );
    assert!(
        store
            .list_actions(&a, &status_filter("cancelled"), None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "a lost update is not listed under the status it wanted"
    );
    let mut unknown = action(&a, "nope", "u1", t0(), ActionStatus::Queued);
    unknown.rev = 1;
    assert!(
        matches!(
            store.update_action(&unknown, 0).await,
            Err(StoreError::Conflict(_))
        ),
        "updating an action that was never created is a conflict"
    );
    assert_eq!(store.get_action(&a, "nope").await.unwrap(), None);

    // Listing: newest first, cursors, limits. a1 (t0, u1, running) exists; add 11 more.
    // a2..a6: u1/u2 alternating; a7 and a8 share their time (the id breaks the tie).
    let mut expected: BTreeMap<String, ActionRecord> = BTreeMap::new();
    expected.insert("a1".into(), running.clone());
    let statuses = [
        ActionStatus::Queued,
        ActionStatus::PendingApproval {
            expires_at: t0() + Duration::hours(72),
        },
        ActionStatus::Succeeded {
            already_in_effect: false,
        },
    ];
    for i in 2..=12u32 {
        let minutes = if i == 8 { 7 } else { i64::from(i) };
        let user = if i % 2 == 0 { "u2" } else { "u1" };
        let r = action(
            &a,
            &format!("a{i}"),
            user,
            t0() + Duration::minutes(minutes),
            statuses[(i as usize) % 3].clone(),
        );
        assert_eq!(store.create_action(&r).await.unwrap(), None);
        expected.insert(r.id.clone(), r);
    }
    // Newest first: a12, a11, a10, a9, then a8 and a7 (same time: higher id first), a6 .. a1.
    let newest_first = [
        "a12", "a11", "a10", "a9", "a8", "a7", "a6", "a5", "a4", "a3", "a2", "a1",
    ];
    let pages = all_pages(store, &a, &none, 5).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 2],
        "12 actions in pages of 5"
    );
    let flat: Vec<ActionRecord> = pages.concat();
    assert_eq!(ids(&flat), newest_first, "newest first");
    for r in &flat {
        assert_eq!(Some(r), expected.get(&r.id), "listed as stored");
    }
    // A page that ends exactly at the last item has no cursor.
    let pages = all_pages(store, &a, &none, 6).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![6, 6]);
    let one = all_pages(store, &a, &none, 1).await;
    assert_eq!(one.len(), 12, "limit 1 walks one action per page");
    assert_eq!(ids(&one.concat()), newest_first);

    // Filters: by user, by status, both; with pages.
    let by_user: Vec<ActionRecord> = all_pages(store, &a, &user_filter("u1"), 2).await.concat();
    assert_eq!(ids(&by_user), ["a11", "a9", "a7", "a5", "a3", "a1"]);
    let queued: Vec<ActionRecord> = all_pages(store, &a, &status_filter("queued"), 2)
        .await
        .concat();
    assert_eq!(ids(&queued), ["a12", "a9", "a6", "a3"]);
    let both = ActionFilter {
        user_id: Some("u2".into()),
        status: Some("queued".into()),
    };
    let u2_queued: Vec<ActionRecord> = all_pages(store, &a, &both, 1).await.concat();
    assert_eq!(ids(&u2_queued), ["a12", "a6"]);
    assert!(
        store
            .list_actions(&a, &user_filter("u404"), None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A status change moves the action between the status listings.
    let mut a9 = expected["a9"].clone();
    a9.status = ActionStatus::Cancelled;
    a9.rev = 1;
    store.update_action(&a9, 0).await.unwrap();
    let queued: Vec<ActionRecord> = all_pages(store, &a, &status_filter("queued"), 10)
        .await
        .concat();
    assert_eq!(
        ids(&queued),
        ["a12", "a6", "a3"],
        "a9 left the queued listing"
    );
    let cancelled: Vec<ActionRecord> = all_pages(store, &a, &status_filter("cancelled"), 10)
        .await
        .concat();
    assert_eq!(cancelled, vec![a9.clone()], "and is listed as cancelled");
    // ... and back (retry puts a failed action back in the queue).
    let mut a9_again = a9.clone();
    a9_again.status = ActionStatus::Queued;
    a9_again.rev = 2;
    store.update_action(&a9_again, 1).await.unwrap();
    let queued: Vec<ActionRecord> = all_pages(store, &a, &status_filter("queued"), 10)
        .await
        .concat();
    assert_eq!(ids(&queued), ["a12", "a9", "a6", "a3"]);
    assert_eq!(queued[1], a9_again);
    assert!(
        store
            .list_actions(&a, &status_filter("cancelled"), None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Tenant isolation: B sees nothing of A; the same id in B is another record.
    assert_eq!(store.get_action(&b, "a1").await.unwrap(), None);
    assert!(
        store
            .list_actions(&b, &none, None, 50)
            .await
            .unwrap()
            .items
            .is_empty(),
        "tenant B lists none of A's actions"
    );
    let b1 = action(
        &b,
        "a1",
        "u1",
        t0() + Duration::days(1),
        ActionStatus::Queued,
    );
    assert_eq!(
        store.create_action(&b1).await.unwrap(),
        None,
        "the same id in another tenant is a new action"
    );
    assert_eq!(store.get_action(&b, "a1").await.unwrap(), Some(b1.clone()));
    assert_eq!(
        store.get_action(&a, "a1").await.unwrap(),
        Some(running.clone())
    );
    let mut b1_done = b1.clone();
    b1_done.status = ActionStatus::Succeeded {
        already_in_effect: true,
    };
    b1_done.rev = 1;
    store.update_action(&b1_done, 0).await.unwrap();
    assert_eq!(
        store.get_action(&a, "a1").await.unwrap(),
        Some(running),
        "an update in B leaves A alone"
    );
    let b_list = store.list_actions(&b, &none, None, 50).await.unwrap().items;
    assert_eq!(b_list, vec![b1_done]);
    let a_list: Vec<ActionRecord> = all_pages(store, &a, &none, 50).await.concat();
    assert_eq!(a_list.len(), 12, "A still has its 12 actions, no more");
    assert!(
        store
            .list_actions(&b, &user_filter("u2"), None, 50)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .list_actions(&b, &status_filter("queued"), None, 50)
            .await
            .unwrap()
            .items
            .is_empty(),
        "B's status listing holds none of A's queued actions"
    );
}

/// A lost-device workflow created at `at`, in `status`.
pub fn workflow(
    tenant: &TenantId,
    id: &str,
    at: DateTime<Utc>,
    status: WorkflowStatus,
) -> Workflow {
    let params = WorkflowParams {
        user: "u1@contoso.com".into(),
        groups: vec![],
        apps: vec![],
        at: None,
    };
    Workflow {
        id: id.into(),
        tenant_id: tenant.clone(),
        account_id: AccountId("acct-1".into()),
        template: Template::LostDevice,
        steps: steps_for(Template::LostDevice, &params).unwrap(),
        params,
        requested_by: "alice@host".into(),
        origin: WorkflowOrigin::Cli,
        created_at: at,
        status,
        finished_at: None,
        rev: 0,
    }
}

fn scheduled(at: DateTime<Utc>) -> WorkflowStatus {
    WorkflowStatus::Scheduled { at }
}

fn due(tenant: &TenantId, id: &str) -> (TenantId, String) {
    (tenant.clone(), id.to_owned())
}

/// Every rule of `WorkflowStore`, on a fresh store.
pub async fn workflows(store: &dyn WorkflowStore) {
    let a = tenant_a();
    let b = tenant_b();
    assert_eq!(store.get_workflow(&a, "w1").await.unwrap(), None);
    assert!(
        store
            .due_workflows(t0() + Duration::days(365), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Create once.
    let w1 = workflow(&a, "w1", t0(), scheduled(t0() + Duration::hours(1)));
    assert_eq!(store.create_workflow(&w1).await.unwrap(), None);
    let loser = workflow(&a, "w1", t0() + Duration::hours(5), WorkflowStatus::Running);
    assert_eq!(
        store.create_workflow(&loser).await.unwrap(),
        Some(w1.clone()),
        "a second create answers with the stored workflow"
    );
    assert_eq!(
        store.get_workflow(&a, "w1").await.unwrap(),
        Some(w1.clone())
    );

    // More workflows in both tenants.
    let w2 = workflow(
        &b,
        "w2",
        t0() + Duration::minutes(1),
        scheduled(t0() + Duration::minutes(30)),
    );
    let w3 = workflow(
        &a,
        "w3",
        t0() + Duration::minutes(2),
        WorkflowStatus::Running,
    );
    let w4 = workflow(
        &a,
        "w4",
        t0() + Duration::minutes(3),
        scheduled(t0() + Duration::hours(2)),
    );
    // Due a millisecond after the hour: not yet due at the hour.
    let w5 = workflow(
        &a,
        "w5",
        t0() + Duration::minutes(4),
        scheduled(t0() + Duration::hours(1) + Duration::milliseconds(1)),
    );
    // The same id in B, scheduled at the same time as w1: another workflow.
    let w1b = workflow(
        &b,
        "w1",
        t0() + Duration::minutes(5),
        scheduled(t0() + Duration::hours(1)),
    );
    for w in [&w2, &w3, &w4, &w5, &w1b] {
        assert_eq!(store.create_workflow(w).await.unwrap(), None);
    }
    assert_eq!(
        store.get_workflow(&b, "w1").await.unwrap(),
        Some(w1b.clone())
    );
    assert_eq!(
        store.get_workflow(&a, "w1").await.unwrap(),
        Some(w1.clone())
    );
    assert_eq!(
        store.get_workflow(&a, "w2").await.unwrap(),
        None,
        "w2 is B's"
    );

    // Listing: newest first, per tenant, with cursors.
    let p1 = store.list_workflows(&a, None, 2).await.unwrap();
    let got: Vec<&str> = p1.items.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(got, ["w5", "w4"]);
    let p2 = store
        .list_workflows(&a, p1.next.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(p2.items, vec![w3.clone(), w1.clone()]);
    assert!(p2.next.is_none(), "the last page has no cursor");
    let in_b = store.list_workflows(&b, None, 10).await.unwrap();
    assert_eq!(in_b.items, vec![w1b.clone(), w2.clone()]);
    assert!(in_b.next.is_none());

    // Due: only scheduled workflows whose time came, every tenant, oldest first.
    assert!(store.due_workflows(t0(), 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .due_workflows(t0() + Duration::minutes(30), 10)
            .await
            .unwrap(),
        vec![due(&b, "w2")],
        "a workflow is due at its time exactly"
    );
    let at_the_hour = store
        .due_workflows(t0() + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(
        at_the_hour,
        vec![due(&b, "w2"), due(&a, "w1"), due(&b, "w1")],
        "oldest first across tenants; w5 (a millisecond later) and w4 not yet; w3 never"
    );
    assert_eq!(
        store
            .due_workflows(t0() + Duration::hours(1), 2)
            .await
            .unwrap(),
        vec![due(&b, "w2"), due(&a, "w1")],
        "the limit takes the oldest"
    );

    // Conditional update on `rev`; a workflow leaves the due list when its status changes.
    let mut w2_running = w2.clone();
    w2_running.status = WorkflowStatus::Running;
    w2_running.rev = 1;
    store.update_workflow(&w2_running, 0).await.unwrap();
    assert_eq!(
        store.get_workflow(&b, "w2").await.unwrap(),
        Some(w2_running.clone())
    );
    let mut stale = w2.clone();
    stale.status = WorkflowStatus::Cancelled;
    stale.rev = 1;
    assert!(
        matches!(
            store.update_workflow(&stale, 0).await,
            Err(StoreError::Conflict(_))
        ),
        "an update from a stale rev is a conflict"
    );
    assert_eq!(
        store.get_workflow(&b, "w2").await.unwrap(),
        Some(w2_running)
    );
    let mut ghost = workflow(&a, "ghost", t0(), scheduled(t0()));
    ghost.rev = 1;
    assert!(matches!(
        store.update_workflow(&ghost, 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .due_workflows(t0() + Duration::hours(1), 10)
            .await
            .unwrap(),
        vec![due(&a, "w1"), due(&b, "w1")],
        "w2 runs now: no longer due"
    );
    // Rescheduling moves a workflow in the due list.
    let mut w1_later = w1.clone();
    w1_later.status = scheduled(t0() + Duration::hours(3));
    w1_later.rev = 1;
    store.update_workflow(&w1_later, 0).await.unwrap();
    assert_eq!(
        store
            .due_workflows(t0() + Duration::hours(1), 10)
            .await
            .unwrap(),
        vec![due(&b, "w1")],
        "A's w1 moved to a later time; B's w1 is another workflow"
    );
    assert_eq!(
        store
            .due_workflows(t0() + Duration::hours(3), 10)
            .await
            .unwrap(),
        vec![due(&b, "w1"), due(&a, "w5"), due(&a, "w4"), due(&a, "w1")],
    );
    // A stale update of the rescheduled one does not bring the old time back.
    let mut w1_stale = w1.clone();
    w1_stale.status = WorkflowStatus::Cancelled;
    w1_stale.rev = 1;
    assert!(matches!(
        store.update_workflow(&w1_stale, 0).await,
        Err(StoreError::Conflict(_))
    ));
    // Finished and failed workflows are never due.
    let mut w4_done = w4.clone();
    w4_done.status = WorkflowStatus::Completed;
    w4_done.finished_at = Some(t0() + Duration::hours(2));
    w4_done.rev = 1;
    store.update_workflow(&w4_done, 0).await.unwrap();
    let mut w5_failed = w5.clone();
    w5_failed.status = WorkflowStatus::Failed {
        step: 0,
        reason: "the user is gone".into(),
    };
    w5_failed.rev = 1;
    store.update_workflow(&w5_failed, 0).await.unwrap();
    assert_eq!(
        store
            .due_workflows(t0() + Duration::days(30), 10)
            .await
            .unwrap(),
        vec![due(&b, "w1"), due(&a, "w1")],
    );
    // The listings show the stored state.
    let in_a = store.list_workflows(&a, None, 10).await.unwrap().items;
    assert_eq!(in_a, vec![w5_failed, w4_done, w3, w1_later]);
}

fn user(id: &str, upn: Option<&str>, mail: Option<&str>, v: Version) -> StoredUser {
    StoredUser {
        user: DirectoryUser {
            id: id.into(),
            display_name: Some(id.to_uppercase()),
            user_principal_name: upn.map(str::to_owned),
            mail: mail.map(str::to_owned),
            account_enabled: Some(true),
            ..Default::default()
        },
        presence: Presence::Present,
        version: v,
    }
}

fn group(id: &str, name: Option<&str>, v: Version) -> StoredGroup {
    StoredGroup {
        group: DirectoryGroup {
            id: id.into(),
            display_name: name.map(str::to_owned),
            security_enabled: Some(true),
            ..Default::default()
        },
        presence: Presence::Present,
        version: v,
    }
}

fn edge(g: &str, m: &str, member_type: MemberType, present: bool) -> StoredMembership {
    StoredMembership {
        group_id: g.into(),
        member: MemberRef {
            id: m.into(),
            member_type,
        },
        present,
        version: Version::new(1, 1),
    }
}

fn removed<T>(mut item: T, set: impl FnOnce(&mut T)) -> T {
    set(&mut item);
    item
}

fn sorted_users(mut v: Vec<StoredUser>) -> Vec<StoredUser> {
    v.sort_by(|a, b| a.user.id.cmp(&b.user.id));
    v
}

fn sorted_groups(mut v: Vec<StoredGroup>) -> Vec<StoredGroup> {
    v.sort_by(|a, b| a.group.id.cmp(&b.group.id));
    v
}

/// Every rule of `TargetLookup`, on a fresh store whose mirror is `mirror` (the mirror is
/// written through its own port, so index upkeep in the put path is exercised too).
pub async fn lookups(mirror: &dyn MirrorStore, lookup: &dyn TargetLookup) {
    let a = tenant_a();
    let b = tenant_b();
    let v1 = Version::new(1, 1);
    let v2 = Version::new(2, 1);
    let u1 = user(
        "u1",
        Some("Ann.Lee@Contoso.com"),
        Some("ann@contoso.com"),
        v1,
    );
    let u2 = user(
        "u2",
        Some("ann@contoso.onmicrosoft.com"),
        Some("ANN@CONTOSO.COM"),
        v1,
    );
    let u3 = removed(user("u3", Some("gone@contoso.com"), None, v1), |u| {
        u.presence = Presence::Removed {
            reason: RemovalReason::SoftDeleted,
        }
    });
    let u4 = user("u4", Some("same@contoso.com"), Some("Same@Contoso.com"), v1);
    let u5 = user("u5", None, None, v1);
    // u10: its id starts with u1's (a prefix is not a match anywhere).
    let u10 = user("u10", Some("ten@contoso.com"), None, v1);
    mirror
        .put_users(
            &a,
            &[u1.clone(), u2.clone(), u3.clone(), u4.clone(), u5, u10],
        )
        .await
        .unwrap();
    let other_ann = user(
        "u1",
        Some("ann.lee@contoso.com"),
        Some("b-ann@fabrikam.com"),
        v1,
    );
    mirror
        .put_users(&b, std::slice::from_ref(&other_ann))
        .await
        .unwrap();

    let find = |tenant: TenantId, handle: &'static str| async move {
        sorted_users(lookup.users_by_handle(&tenant, handle).await.unwrap())
    };
    assert_eq!(
        find(a.clone(), "ann.lee@contoso.com").await,
        vec![u1.clone()],
        "by user principal name, case-insensitive"
    );
    assert_eq!(
        find(a.clone(), "Ann@Contoso.Com").await,
        vec![u1.clone(), u2.clone()],
        "by mail, case-insensitive; every match is returned (the resolver reports ambiguity)"
    );
    assert_eq!(
        find(a.clone(), "ann@contoso.onmicrosoft.com").await,
        vec![u2.clone()]
    );
    assert_eq!(
        find(a.clone(), "gone@contoso.com").await,
        vec![u3.clone()],
        "removed users are included"
    );
    assert_eq!(
        find(a.clone(), "same@contoso.com").await,
        vec![u4.clone()],
        "a user whose name and mail are equal is found once"
    );
    assert!(find(a.clone(), "nobody@contoso.com").await.is_empty());
    assert!(
        find(a.clone(), "b-ann@fabrikam.com").await.is_empty(),
        "B's user is not A's"
    );
    assert_eq!(
        find(b.clone(), "ANN.LEE@contoso.com").await,
        vec![other_ann]
    );
    assert!(
        find(b.clone(), "ann@contoso.com").await.is_empty(),
        "A's users are not B's"
    );

    // A rename: the old name no longer finds the user, the new one does; an older replay of
    // the old state does not land and changes nothing.
    let renamed = user(
        "u1",
        Some("ann.smith@contoso.com"),
        Some("ann@contoso.com"),
        v2,
    );
    assert_eq!(
        mirror
            .put_users(&a, std::slice::from_ref(&renamed))
            .await
            .unwrap(),
        1
    );
    assert!(
        find(a.clone(), "ann.lee@contoso.com").await.is_empty(),
        "the old name is gone"
    );
    assert_eq!(
        find(a.clone(), "ANN.SMITH@contoso.com").await,
        vec![renamed.clone()]
    );
    assert_eq!(
        find(a.clone(), "ann@contoso.com").await,
        vec![renamed.clone(), u2.clone()],
        "the unchanged mail still finds the renamed user, as stored now"
    );
    assert_eq!(
        mirror
            .put_users(&a, std::slice::from_ref(&u1))
            .await
            .unwrap(),
        0
    );
    assert!(find(a.clone(), "ann.lee@contoso.com").await.is_empty());
    assert_eq!(
        find(a.clone(), "ann.smith@contoso.com").await,
        vec![renamed]
    );
    // And back again.
    let back = user("u1", Some("Ann.Lee@Contoso.com"), None, Version::new(3, 1));
    assert_eq!(
        mirror
            .put_users(&a, std::slice::from_ref(&back))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        find(a.clone(), "ann.lee@contoso.com").await,
        vec![back.clone()]
    );
    assert!(find(a.clone(), "ann.smith@contoso.com").await.is_empty());
    assert_eq!(
        find(a.clone(), "ann@contoso.com").await,
        vec![u2.clone()],
        "the mail it dropped no longer finds it"
    );

    // Groups by display name: case-insensitive, trimmed; removed groups included.
    let g1 = group("g1", Some("Sales Team"), v1);
    let g2 = group("g2", Some("  sales team "), v1);
    let g3 = group("g3", Some("Sales"), v1);
    let g4 = removed(group("g4", Some("Old Group"), v1), |g| {
        g.presence = Presence::Removed {
            reason: RemovalReason::HardDeleted,
        }
    });
    let g5 = group("g5", None, v1);
    mirror
        .put_groups(&a, &[g1.clone(), g2.clone(), g3.clone(), g4.clone(), g5])
        .await
        .unwrap();
    let b_sales = group("g1", Some("Sales Team"), v1);
    mirror
        .put_groups(&b, std::slice::from_ref(&b_sales))
        .await
        .unwrap();
    let named = |tenant: TenantId, name: &'static str| async move {
        sorted_groups(lookup.groups_by_name(&tenant, name).await.unwrap())
    };
    assert_eq!(
        named(a.clone(), "  SALES TEAM").await,
        vec![g1.clone(), g2.clone()]
    );
    assert_eq!(named(a.clone(), "sales").await, vec![g3]);
    assert_eq!(
        named(a.clone(), "old group").await,
        vec![g4],
        "removed groups are included"
    );
    assert!(
        named(a.clone(), "Sales Tea").await.is_empty(),
        "no prefix matches"
    );
    assert!(named(a.clone(), "Nope").await.is_empty());
    assert_eq!(named(b.clone(), "sales team").await, vec![b_sales]);
    let g1_renamed = group("g1", Some("Marketing"), v2);
    mirror
        .put_groups(&a, std::slice::from_ref(&g1_renamed))
        .await
        .unwrap();
    assert_eq!(named(a.clone(), "sales team").await, vec![g2]);
    assert_eq!(named(a.clone(), "marketing").await, vec![g1_renamed]);

    // Groups of a user: direct, present edges only, of this tenant.
    mirror
        .put_memberships(
            &a,
            &[
                edge("g1", "u1", MemberType::User, true),
                edge("g2", "u1", MemberType::User, true),
                edge("g3", "u1", MemberType::User, false),
                edge("g1", "u2", MemberType::User, true),
                edge("g4", "u10", MemberType::User, true),
                edge("g5", "g1", MemberType::Group, true),
            ],
        )
        .await
        .unwrap();
    mirror
        .put_memberships(&b, &[edge("g9", "u1", MemberType::User, true)])
        .await
        .unwrap();
    let groups_of = |tenant: TenantId, u: &'static str| async move {
        let mut v = lookup.groups_of_user(&tenant, u).await.unwrap();
        v.sort();
        v
    };
    assert_eq!(
        groups_of(a.clone(), "u1").await,
        ["g1", "g2"],
        "present edges only, no prefix matches"
    );
    assert_eq!(groups_of(a.clone(), "u2").await, ["g1"]);
    assert_eq!(groups_of(a.clone(), "u10").await, ["g4"]);
    assert!(groups_of(a.clone(), "u404").await.is_empty());
    assert_eq!(groups_of(b.clone(), "u1").await, ["g9"]);
    // A removal (a newer tombstone) takes the group out.
    let mut gone = edge("g2", "u1", MemberType::User, false);
    gone.version = v2;
    mirror.put_memberships(&a, &[gone]).await.unwrap();
    assert_eq!(groups_of(a.clone(), "u1").await, ["g1"]);
}

/// Test-only consumer side of one action queue: takes (and acknowledges) every message that is
/// deliverable now, in delivery order.
#[async_trait]
pub trait ActionConsumer: Send + Sync {
    async fn receive_all(&self) -> Vec<ActionMessage>;
}

fn message(tenant: &TenantId, action: &str, user: &str) -> ActionMessage {
    ActionMessage {
        tenant_id: tenant.clone(),
        action_id: action.into(),
        user_id: user.into(),
    }
}

/// Every rule of `ActionQueue`, on a fresh, empty queue.
pub async fn action_queue(queue: &dyn ActionQueue, consumer: &dyn ActionConsumer) {
    queue.enqueue_actions(Vec::new()).await.unwrap();
    assert!(consumer.receive_all().await.is_empty());

    // 25 messages (over one SQS batch) for three users of two tenants, interleaved: every one
    // arrives once, and one user's actions arrive in the order they were enqueued.
    let users = [(tenant_a(), "u1"), (tenant_a(), "u2"), (tenant_b(), "u1")];
    let sent: Vec<ActionMessage> = (0..25)
        .map(|i| {
            let (t, u) = &users[i % 3];
            message(t, &format!("act-{i:02}"), u)
        })
        .collect();
    queue.enqueue_actions(sent.clone()).await.unwrap();
    let got = consumer.receive_all().await;
    let mut all = got.clone();
    all.sort_by(|x, y| x.action_id.cmp(&y.action_id));
    assert_eq!(all, sent, "25 messages in, the same 25 out");
    for (t, u) in &users {
        let order = |v: &[ActionMessage]| -> Vec<String> {
            v.iter()
                .filter(|m| &m.tenant_id == t && m.user_id == *u)
                .map(|m| m.action_id.clone())
                .collect()
        };
        assert_eq!(
            order(&got),
            order(&sent),
            "{t}/{u}: one user's actions keep their order"
        );
    }

    // The same action enqueued again (a submit retried, the sweep's redelivery) arrives at
    // most once more, unchanged; the executor's claim makes a second copy harmless.
    let again = message(&tenant_a(), "act-99", "u1");
    queue.enqueue_actions(vec![again.clone()]).await.unwrap();
    queue.enqueue_actions(vec![again.clone()]).await.unwrap();
    let copies = consumer.receive_all().await;
    assert!(!copies.is_empty() && copies.len() <= 2, "{copies:?}");
    assert!(copies.iter().all(|m| *m == again));
}
