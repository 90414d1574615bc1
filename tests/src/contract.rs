//! The contract every store adapter passes: the in-memory reference, SQLite, and (later)
//! DynamoDB on moto run the same functions. Each function takes a fresh store and panics with a
//! message naming the broken rule.

use chrono::{DateTime, Duration, Utc};
use entra_sync_core::cursor::{CursorRecord, FullReason};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryGroup, DirectoryUser, MemberRef, MemberType,
    Presence, ReauthRetry, RemovalReason, StoredGroup, StoredMembership, StoredUser, Stream,
    TenantId, Version,
};
use entra_sync_core::ports::{ConnectionStore, CursorStore, LeaseStore, MirrorStore, RunStore};
use entra_sync_core::run::{Counts, RunStatus, RunUpdate, SyncRun, Trigger};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

fn user(id: &str, name: &str, v: Version) -> StoredUser {
    StoredUser {
        user: DirectoryUser {
            id: id.into(),
            display_name: Some(name.into()),
            account_enabled: Some(true),
            ..Default::default()
        },
        presence: Presence::Present,
        version: v,
    }
}

fn edge(g: &str, m: &str, present: bool, v: Version) -> StoredMembership {
    StoredMembership {
        group_id: g.into(),
        member: MemberRef {
            id: m.into(),
            member_type: MemberType::User,
        },
        present,
        version: v,
    }
}

/// Connections: put, get, overwrite, list, and isolation between tenants.
pub async fn connections(store: &dyn ConnectionStore) {
    let a = TenantId::new("tenant-a");
    let conn = Connection {
        tenant_id: a.clone(),
        account_id: AccountId("acct-1".into()),
        label: "A".into(),
        tenant_name: Some("Contoso".into()),
        verified_domains: vec![],
        status: ConnectionStatus::Connected,
        connected_at: t0(),
        granted_permissions: Default::default(),
    };
    assert_eq!(store.get_connection(&a).await.unwrap(), None);
    store.put_connection(&conn).await.unwrap();
    assert_eq!(store.get_connection(&a).await.unwrap(), Some(conn.clone()));
    let changed = Connection {
        status: ConnectionStatus::NeedsReauthorization {
            reason: "AADSTS7000229".into(),
            retry: ReauthRetry::default().after_failure(t0()),
        },
        ..conn.clone()
    };
    store.put_connection(&changed).await.unwrap();
    assert_eq!(
        store.get_connection(&a).await.unwrap(),
        Some(changed.clone())
    );

    // Conditional writes: a create lands only where nothing is stored, a replace only over
    // the connection the writer read.
    let b = TenantId::new("tenant-x");
    let for_b = |account: &str| Connection {
        tenant_id: b.clone(),
        account_id: AccountId(account.into()),
        ..conn.clone()
    };
    store
        .replace_connection(&for_b("acct-1"), None)
        .await
        .unwrap();
    assert!(matches!(
        store.replace_connection(&for_b("acct-2"), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_connection(&b).await.unwrap(),
        Some(for_b("acct-1"))
    );
    let disconnected = Connection {
        status: ConnectionStatus::Disconnected,
        ..for_b("acct-1")
    };
    store
        .replace_connection(&disconnected, Some(&for_b("acct-1")))
        .await
        .unwrap();
    // A writer still holding the connected record loses against the disconnect.
    assert!(matches!(
        store
            .replace_connection(&changed, Some(&for_b("acct-1")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .replace_connection(&for_b("acct-2"), Some(&disconnected))
        .await
        .unwrap();
    assert_eq!(
        store.get_connection(&b).await.unwrap(),
        Some(for_b("acct-2"))
    );
    // Racing writers that all read the same record: exactly one lands, for a create as for a
    // replace (the check and the write are one step in the store).
    let racing = |n: usize| {
        (0..n)
            .map(|i| Connection {
                label: format!("writer {i}"),
                ..for_b(&format!("acct-{i}"))
            })
            .collect::<Vec<_>>()
    };
    let current = store.get_connection(&b).await.unwrap().unwrap();
    let writers = racing(8);
    let landed = futures::future::join_all(
        writers
            .iter()
            .map(|c| store.replace_connection(c, Some(&current))),
    )
    .await;
    assert_eq!(landed.iter().filter(|r| r.is_ok()).count(), 1, "{landed:?}");
    assert!(
        landed
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_))))
    );
    let fresh = TenantId::new("tenant-y");
    let creators: Vec<Connection> = racing(8)
        .into_iter()
        .map(|c| Connection {
            tenant_id: fresh.clone(),
            ..c
        })
        .collect();
    let landed =
        futures::future::join_all(creators.iter().map(|c| store.replace_connection(c, None))).await;
    assert_eq!(landed.iter().filter(|r| r.is_ok()).count(), 1, "{landed:?}");
    let winner = store.get_connection(&fresh).await.unwrap().unwrap();
    assert!(creators.contains(&winner));

    store.put_connection(&changed).await.unwrap();
    assert_eq!(store.get_connection(&a).await.unwrap(), Some(changed));
    store.put_connection(&conn).await.unwrap();
    // Records written before the retry schedule existed still read, as due at once.
    let old = serde_json::json!({
        "tenant_id": "tenant-c", "account_id": "acct-1", "label": "C", "tenant_name": null,
        "verified_domains": [], "connected_at": "2026-01-01T00:00:00Z",
        "status": {"status": "needs_reauthorization", "reason": "AADSTS7000229"}
    });
    let old: Connection = serde_json::from_value(old).unwrap();
    assert!(
        matches!(&old.status, ConnectionStatus::NeedsReauthorization { retry, .. }
        if retry.attempts == 0 && retry.is_due(t0()))
    );
    store.put_connection(&old).await.unwrap();
    assert_eq!(
        store.get_connection(&old.tenant_id).await.unwrap(),
        Some(old.clone())
    );
    store
        .replace_connection(
            &Connection {
                status: ConnectionStatus::Connected,
                ..old.clone()
            },
            Some(&old),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_connection(&TenantId::new("tenant-b"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_connections().await.unwrap().len(), 4);
}

/// Cursors: optimistic concurrency, and applied-page markers counted once.
pub async fn cursors(store: &dyn CursorStore) {
    let t = TenantId::new("tenant-a");
    assert!(
        store
            .load_cursor(&t, Stream::Users)
            .await
            .unwrap()
            .is_none()
    );
    let rec = CursorRecord::default();
    let r1 = store
        .save_cursor(&t, Stream::Users, &rec, None)
        .await
        .unwrap();
    // A second "create" loses.
    assert!(matches!(
        store.save_cursor(&t, Stream::Users, &rec, None).await,
        Err(StoreError::Conflict(_))
    ));
    let (next, _) = rec.begin_round("run-1");
    let r2 = store
        .save_cursor(&t, Stream::Users, &next, Some(r1))
        .await
        .unwrap();
    assert_ne!(r1, r2);
    // A writer holding the old revision loses.
    assert!(matches!(
        store
            .save_cursor(
                &t,
                Stream::Users,
                &rec.require_full(FullReason::Requested),
                Some(r1)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let (loaded, rev) = store.load_cursor(&t, Stream::Users).await.unwrap().unwrap();
    assert_eq!(loaded, next);
    assert_eq!(rev, r2);
    // Streams and tenants are separate.
    assert!(
        store
            .load_cursor(&t, Stream::Groups)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .load_cursor(&TenantId::new("tenant-b"), Stream::Users)
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        store
            .mark_page_applied(&t, Stream::Users, 1, 0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_page_applied(&t, Stream::Users, 1, 0)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_page_applied(&t, Stream::Users, 1, 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_page_applied(&t, Stream::Users, 2, 0)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_page_applied(&t, Stream::Groups, 1, 5)
            .await
            .unwrap()
    );
    assert_eq!(store.applied_pages(&t, Stream::Users, 1).await.unwrap(), 2);
    assert_eq!(store.applied_pages(&t, Stream::Groups, 1).await.unwrap(), 1);
    assert_eq!(
        store
            .applied_pages(&TenantId::new("tenant-b"), Stream::Users, 1)
            .await
            .unwrap(),
        0
    );
}

/// Leases: exclusive until expiry, re-entrant for the holder, released only by the holder.
pub async fn leases(store: &dyn LeaseStore) {
    let t = TenantId::new("tenant-a");
    let now = t0();
    let later = now + Duration::minutes(15);
    assert!(store.acquire_lease(&t, "a", later, now).await.unwrap());
    assert!(!store.acquire_lease(&t, "b", later, now).await.unwrap());
    assert!(store.acquire_lease(&t, "a", later, now).await.unwrap());
    store.release_lease(&t, "b").await.unwrap();
    assert!(!store.acquire_lease(&t, "b", later, now).await.unwrap());
    // Expired: anyone may take it.
    let after = later + Duration::seconds(1);
    assert!(
        store
            .acquire_lease(&t, "b", after + Duration::minutes(15), after)
            .await
            .unwrap()
    );
    store.release_lease(&t, "b").await.unwrap();
    assert!(store.acquire_lease(&t, "c", later, now).await.unwrap());
    // Another tenant's lease is independent.
    assert!(
        store
            .acquire_lease(&TenantId::new("tenant-b"), "d", later, now)
            .await
            .unwrap()
    );
}

/// The mirror: conditional versioned puts, listing in key order with continuation, edges by
/// group, tombstones, and tenant isolation.
pub async fn mirror(store: &dyn MirrorStore) {
    let t = TenantId::new("tenant-a");
    let other = TenantId::new("tenant-b");
    let v = |c, p| Version::new(c, p);

    assert_eq!(
        store
            .put_users(
                &t,
                &[user("u1", "One", v(1, 0)), user("u2", "Two", v(1, 0))]
            )
            .await
            .unwrap(),
        2
    );
    // Same version again: does not land. Older: does not land. Newer: lands.
    assert_eq!(
        store
            .put_users(&t, &[user("u1", "Again", v(1, 0))])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .put_users(&t, &[user("u1", "Older", v(0, 9))])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .put_users(&t, &[user("u1", "Newer", v(1, 1))])
            .await
            .unwrap(),
        1
    );
    let got = store
        .get_users(&t, &["u1".into(), "missing".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].user.display_name.as_deref(), Some("Newer"));
    // A tombstone keeps its place and blocks older writes.
    let mut gone = user("u2", "Two", v(2, 0));
    gone.presence = Presence::Removed {
        reason: RemovalReason::HardDeleted,
    };
    assert_eq!(store.put_users(&t, &[gone]).await.unwrap(), 1);
    assert_eq!(
        store
            .put_users(&t, &[user("u2", "Back", v(1, 5))])
            .await
            .unwrap(),
        0
    );
    assert!(
        !store.get_users(&t, &["u2".into()]).await.unwrap()[0]
            .presence
            .is_present()
    );
    // Another tenant sees nothing and writes independently.
    assert!(
        store
            .get_users(&other, &["u1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .put_users(&other, &[user("u1", "B", v(0, 0))])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get_users(&t, &["u1".into()]).await.unwrap()[0]
            .user
            .display_name
            .as_deref(),
        Some("Newer")
    );

    // Listing with continuation, in key order, only this tenant.
    let many: Vec<StoredUser> = (0..25)
        .map(|i| user(&format!("x{i:02}"), "X", v(1, 0)))
        .collect();
    store.put_users(&t, &many).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_users(&t, after.as_deref(), 10).await.unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(page.items.into_iter().map(|u| u.user.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 27);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    // Groups behave the same.
    let g = |id: &str, ver| StoredGroup {
        group: DirectoryGroup {
            id: id.into(),
            display_name: Some(id.into()),
            ..Default::default()
        },
        presence: Presence::Present,
        version: ver,
    };
    assert_eq!(
        store
            .put_groups(&t, &[g("g1", v(1, 0)), g("g10", v(1, 0))])
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.put_groups(&t, &[g("g1", v(1, 0))]).await.unwrap(), 0);
    assert_eq!(store.get_groups(&t, &["g1".into()]).await.unwrap().len(), 1);
    assert_eq!(
        store.list_groups(&t, None, 100).await.unwrap().items.len(),
        2
    );

    // Edges: versioned, by group (a group id that prefixes another must not leak), listed.
    assert_eq!(
        store
            .put_memberships(
                &t,
                &[
                    edge("g1", "u1", true, v(1, 0)),
                    edge("g1", "u2", true, v(1, 0)),
                    edge("g10", "u1", true, v(1, 0)),
                ]
            )
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .put_memberships(&t, &[edge("g1", "u1", false, v(1, 2))])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .put_memberships(&t, &[edge("g1", "u1", true, v(1, 1))])
            .await
            .unwrap(),
        0
    );
    let of_g1 = store.memberships_of_group(&t, "g1").await.unwrap();
    assert_eq!(of_g1.len(), 2);
    assert!(of_g1.iter().all(|e| e.group_id == "g1"));
    let got = store
        .get_memberships(
            &t,
            &[("g1".into(), "u1".into()), ("g9".into(), "u1".into())],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(!got[0].present);
    let all = store.list_memberships(&t, None, 2).await.unwrap();
    assert_eq!(all.items.len(), 2);
    let rest = store
        .list_memberships(&t, all.next.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    assert!(
        store
            .memberships_of_group(&other, "g1")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Runs: create once, atomic updates, newest first, isolation.
pub async fn runs(store: &dyn RunStore) {
    let t = TenantId::new("tenant-a");
    let r1 = SyncRun::new("r1".into(), t.clone(), Trigger::Scheduled, t0());
    let r2 = SyncRun::new(
        "r2".into(),
        t.clone(),
        Trigger::Manual,
        t0() + Duration::hours(1),
    );
    store.create_run(&r1).await.unwrap();
    store.create_run(&r2).await.unwrap();
    // Creating again does not reset it.
    let counts = Counts {
        created: 3,
        ..Counts::default()
    };
    store
        .update_run(&t, "r1", &RunUpdate::AddCounts(counts))
        .await
        .unwrap();
    store.create_run(&r1).await.unwrap();
    let got = store.get_run(&t, "r1").await.unwrap().unwrap();
    assert_eq!(got.counts.created, 3);
    let done = store
        .update_run(
            &t,
            "r1",
            &RunUpdate::Finish {
                status: RunStatus::Succeeded,
                at: t0(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let list = store.list_runs(&t, 10).await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        vec!["r2", "r1"]
    );
    assert!(
        store
            .get_run(&TenantId::new("tenant-b"), "r1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .update_run(
                &TenantId::new("tenant-b"),
                "r1",
                &RunUpdate::AddGraphRequests(1)
            )
            .await
            .is_err()
    );
}

/// The activity log page by page: newest first (two runs started at the same instant in run id
/// order, descending), every run once across the pages, `next` only while more follow; an
/// unknown `after` gives an empty page; another tenant's runs never show.
pub async fn run_pages(store: &dyn RunStore) {
    let t = TenantId::new("tenant-pages");
    let other = TenantId::new("tenant-pages-other");
    let started = [0, 1, 1, 2, 3];
    for (i, h) in started.iter().enumerate() {
        let run = SyncRun::new(
            format!("p{i}"),
            t.clone(),
            Trigger::Scheduled,
            t0() + Duration::hours(*h),
        );
        store.create_run(&run).await.unwrap();
    }
    store
        .create_run(&SyncRun::new(
            "x0".into(),
            other.clone(),
            Trigger::Manual,
            t0() + Duration::hours(9),
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list_runs_page(&t, after.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|r| r.run_id.clone()));
        pages += 1;
        match page.next {
            Some(n) => {
                assert_eq!(Some(&n), seen.last(), "next is the page's last run");
                after = Some(n);
            }
            None => break,
        }
        assert!(pages < 10, "the listing does not end");
    }
    assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"]);
    assert_eq!(pages, 3);
    let whole = store.list_runs_page(&t, None, 5).await.unwrap();
    assert_eq!(whole.items.len(), 5);
    assert_eq!(whole.next, None, "no next when nothing follows");
    let unknown = store.list_runs_page(&t, Some("x0"), 5).await.unwrap();
    assert!(unknown.items.is_empty() && unknown.next.is_none());
}
