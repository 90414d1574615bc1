//! The local outbox: an event is recorded in the same SQLite transaction as the change it
//! describes and delivered to `events.jsonl` afterwards, at least once, with a stable id. A
//! process killed between the commit and the delivery (the app is forgotten, so nothing runs
//! at its end) delivers on the next start, once per id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::Utc;
use entra_sync_core::model::{AccountId, DirectoryUser, Presence, StoredUser, TenantId, Version};
use entra_sync_core::ports::{LocalUserStore, MirrorStore, RunStore};
use entra_sync_core::provision::{DirectoryLink, LocalStatus, LocalUser};
use entra_sync_core::run::{RunStatus, RunUpdate, SyncRun, Trigger};
use entra_sync_local::runtime::{DataDir, LocalApp, SyncSettings};
use serde_json::Value;

fn open(dir: &std::path::Path) -> LocalApp {
    LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap()
}

fn lines(dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    entra_sync_tests::event_schemas::assert_valid_lines(&text)
}

/// How often each event id was delivered.
fn deliveries(dir: &std::path::Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in lines(dir) {
        *out.entry(e["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    out
}

/// Three changes through the store ports the services use: a directory user, a host user and
/// a run that starts and completes.
async fn change_everything(app: &LocalApp, tenant: &TenantId) {
    let user = StoredUser {
        user: DirectoryUser {
            id: "u1".into(),
            account_enabled: Some(true),
            ..Default::default()
        },
        presence: Presence::Present,
        version: Version::new(1, 0),
    };
    assert_eq!(app.store.put_users(tenant, &[user]).await.unwrap(), 1);
    let mut host = LocalUser::pre_existing(
        AccountId("acct".into()),
        "l1",
        "ann@contoso.example",
        LocalStatus::Pending,
        Utc::now(),
    );
    host.link = Some(DirectoryLink {
        tenant_id: tenant.clone(),
        object_id: "u1".into(),
    });
    app.store.put_local_users(&[host]).await.unwrap();
    let run = SyncRun::new("run-1".into(), tenant.clone(), Trigger::Manual, Utc::now());
    app.store.create_run(&run).await.unwrap();
    app.store
        .update_run(
            tenant,
            "run-1",
            &RunUpdate::Finish {
                status: RunStatus::Succeeded,
                at: Utc::now(),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_change_committed_before_a_crash_is_delivered_once_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("tenant-a");
    let app = open(dir.path());
    change_everything(&app, &tenant).await;
    assert_eq!(app.store.pending_outbox().unwrap(), 4);
    // Killed between the commit and the delivery: nothing runs at the app's end.
    std::mem::forget(app);
    assert!(lines(dir.path()).is_empty(), "nothing was delivered yet");

    // The next start delivers every committed change, once.
    let app = open(dir.path());
    let got = deliveries(dir.path());
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    let types: Vec<String> = lines(dir.path())
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "directory.user.created",
            "user.created",
            "sync.started",
            "sync.completed"
        ],
        "in commit order"
    );
    assert_eq!(app.store.pending_outbox().unwrap(), 0);
    drop(app);

    // Starting again delivers nothing twice.
    drop(open(dir.path()));
    assert_eq!(deliveries(dir.path()), got);
}

#[tokio::test]
async fn a_crash_after_writing_and_before_marking_delivers_again_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("tenant-b");
    let app = open(dir.path());
    change_everything(&app, &tenant).await;
    assert_killed_after_writing_delivers_again(dir.path(), app, 4);
}

/// The sink wrote the events, then the process died before they were marked delivered: the
/// next start delivers each of the `expected` events again, under the same id (at least once;
/// a consumer drops the repeat).
fn assert_killed_after_writing_delivers_again(
    dir: &std::path::Path,
    app: LocalApp,
    expected: usize,
) {
    let delivered = app.store.deliver_outbox(|events| {
        app.event_log.append(events).unwrap();
        Err::<(), _>(std::io::Error::other("killed"))
    });
    assert!(delivered.is_err());
    std::mem::forget(app);
    let before: Vec<String> = deliveries(dir).into_keys().collect();
    assert_eq!(before.len(), expected);

    drop(open(dir));
    let after = deliveries(dir);
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), before);
    assert!(after.values().all(|&n| n == 2), "{after:?}");
}

#[tokio::test]
async fn a_replayed_write_records_nothing_and_a_newer_one_exactly_its_change() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("tenant-c");
    let app = open(dir.path());
    change_everything(&app, &tenant).await;
    app.deliver_events().await.unwrap();
    // The same page applied again (a redelivery) writes nothing: no event.
    let user = app
        .store
        .get_users(&tenant, &["u1".to_owned()])
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(app.store.put_users(&tenant, &[user]).await.unwrap(), 0);
    assert_eq!(app.store.pending_outbox().unwrap(), 0);
    // A changed user at a newer version records exactly its change.
    let mut disabled = app
        .store
        .get_users(&tenant, &["u1".to_owned()])
        .await
        .unwrap()
        .pop()
        .unwrap();
    disabled.user.account_enabled = Some(false);
    disabled.version = Version::new(2, 0);
    app.store.put_users(&tenant, &[disabled]).await.unwrap();
    assert_eq!(app.deliver_events().await.unwrap(), 1);
    let last = lines(dir.path()).pop().unwrap();
    assert_eq!(last["type"], "directory.user.deactivated");
    assert_eq!(last["sequence"], Version::new(2, 0).sequence());
}

#[tokio::test]
async fn connection_status_changes_are_recorded_with_their_writes() {
    use entra_sync_core::model::{Connection, ConnectionStatus};
    use entra_sync_core::ports::ConnectionStore;
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let connected = Connection {
        tenant_id: TenantId::new("tenant-d"),
        account_id: AccountId("acct".into()),
        label: "HQ".into(),
        tenant_name: None,
        verified_domains: vec![],
        status: ConnectionStatus::Connected,
        connected_at: Utc::now(),
        granted_permissions: Default::default(),
    };
    app.store.put_connection(&connected).await.unwrap();
    let flagged = Connection {
        status: ConnectionStatus::NeedsReauthorization {
            reason: "consent revoked".into(),
            retry: Default::default(),
        },
        ..connected.clone()
    };
    app.store
        .replace_connection(&flagged, Some(&connected))
        .await
        .unwrap();
    // Another failed attempt while flagged is no new status: no event.
    app.store
        .replace_connection(&flagged, Some(&flagged))
        .await
        .unwrap();
    // A refused compare-and-swap writes nothing and records nothing.
    assert!(
        app.store
            .replace_connection(&connected, Some(&connected))
            .await
            .is_err()
    );
    let gone = Connection {
        status: ConnectionStatus::Disconnected,
        ..connected.clone()
    };
    app.store.put_connection(&gone).await.unwrap();
    app.deliver_events().await.unwrap();
    let events = lines(dir.path());
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "connection.connected",
            "connection.needs_reauthorization",
            "connection.disconnected"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["object_id"] == "tenant-d" && e["account_id"] == "acct")
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

/// The (type, object, status, sequence) of each delivered action or workflow event.
fn action_events(dir: &std::path::Path) -> Vec<(String, String, String, u64)> {
    lines(dir)
        .into_iter()
        .filter(|e| e["type"] == "action.updated" || e["type"] == "workflow.updated")
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object_id"].as_str().unwrap().to_owned(),
                e["data"]["status"].as_str().unwrap().to_owned(),
                e["sequence"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_action_or_workflow_status_change_committed_before_a_crash_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    let (action, workflow, rev) =
        entra_sync_tests::action_history::act_and_run_a_workflow(&*app.store).await;
    // Created, running, succeeded; created (scheduled), cancelled. The noted write (no new
    // status), the repeated create and the refused update recorded nothing.
    assert_eq!(app.store.pending_outbox().unwrap(), 5);
    // Killed between the state changes and the delivery.
    std::mem::forget(app);
    assert!(lines(dir.path()).is_empty());

    let app = open(dir.path());
    let got = deliveries(dir.path());
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    let a = |status: &str, seq| {
        (
            "action.updated".to_owned(),
            action.clone(),
            status.to_owned(),
            seq,
        )
    };
    let w = |status: &str, seq| {
        (
            "workflow.updated".to_owned(),
            workflow.clone(),
            status.to_owned(),
            seq,
        )
    };
    assert_eq!(
        action_events(dir.path()),
        [
            a("queued", 0),
            a("running", 1),
            a("succeeded", 3),
            w("scheduled", rev),
            w("cancelled", rev + 1)
        ],
        "in commit order, each with its record's revision"
    );
    drop(app);
    drop(open(dir.path()));
    assert_eq!(deliveries(dir.path()), got, "nothing delivered twice");
}

#[tokio::test]
async fn an_action_event_written_but_not_marked_before_a_crash_comes_again_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    entra_sync_tests::action_history::act_and_run_a_workflow(&*app.store).await;
    assert_killed_after_writing_delivers_again(dir.path(), app, 5);
}
