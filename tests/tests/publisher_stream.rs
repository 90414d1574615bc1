//! The publisher function on moto's DynamoDB Streams: a sync through the services on the
//! DynamoDB adapters writes the table; the table's stream records, read with the streams API
//! and handed to the publisher's handler in the Lambda event's shape, give the same change
//! events as the local outbox records for the same sync. A publisher that crashes around any
//! of its publishes, retried from the record it reported (as Lambda retries a stream batch),
//! still delivers every event, and a repeat only ever has the id and content of the original.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use entra_sync_aws::{DynamoStore, sdk_config_for_endpoint};
use entra_sync_core::events::ChangeEvent;
use entra_sync_core::memory::{CollectingEvents, CollectingQueue};
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::{ConnectionStore, Secret};
use entra_sync_core::run::RunStatus;
use entra_sync_core::services::publish::PublishDeps;
use entra_sync_core::services::{FetchOptions, FetchOutcome, reconcile_page, run_fetch};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_local::demo::connect;
use entra_sync_local::runtime::{DataDir, LocalApp, SyncSettings};
use entra_sync_tests::faulty::{Crash, Crashes, FaultySink};
use entra_sync_tests::moto;
use entra_sync_tests::streams::{event, stream_records};
use serde_json::Value;

/// Records per stream batch handed to the handler (Lambda's batch size, kept small here so
/// the sync spans several batches).
const BATCH: usize = 25;

async fn client(emu: &Emulator) -> Arc<GraphClient> {
    let app = emu.app();
    let gc = GraphConfig::new(
        url::Url::parse(&emu.graph_base_url()).unwrap(),
        url::Url::parse(&emu.login_base_url()).unwrap(),
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    );
    Arc::new(GraphClient::new(gc).unwrap())
}

/// Feed `records` to the handler as Lambda does: batches in order, a batch that reports a
/// failure retried from the reported record (at most `max_calls` handler calls in all).
async fn drive(deps: &PublishDeps, records: &[EventRecord], max_calls: usize) -> usize {
    let mut next = 0;
    let mut calls = 0;
    while next < records.len() {
        assert!(calls < max_calls, "the publisher kept failing");
        calls += 1;
        let end = (next + BATCH).min(records.len());
        let response =
            entra_sync_publisher::handler::handle(deps, event(&records[next..end])).await;
        next = match response.batch_item_failures.first() {
            None => end,
            Some(f) => {
                let seq = f.item_identifier.clone().unwrap();
                let at = records[next..end]
                    .iter()
                    .position(|r| r.change.sequence_number.as_deref() == Some(&seq))
                    .expect("the reported record is in the batch");
                next + at
            }
        };
    }
    calls
}

/// A sync of the tenant through the services on the DynamoDB adapters (moto): the table's
/// stream records afterwards.
async fn sync_on_dynamodb(
    emu: &Emulator,
    tenant: &TenantId,
    connection: &entra_sync_core::model::Connection,
) -> (Arc<DynamoStore>, Vec<EventRecord>) {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let table = moto::unique_name("publisher");
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &table,
    ));
    store.create_table().await.unwrap();
    store.put_connection(connection).await.unwrap();
    let queue = Arc::new(CollectingQueue::new());
    // The services' own copies are not what this test checks: the stream is.
    let ignored = Arc::new(CollectingEvents::new());
    let builder = DepsBuilder::on(&store).events(ignored).projected();
    let fetch = builder.fetch(client(emu).await, queue.clone());
    let reconcile = builder.reconcile();
    let report = run_fetch(&fetch, tenant, &FetchOptions::default())
        .await
        .unwrap();
    assert_ne!(report.outcome, FetchOutcome::Paused);
    for m in queue.drain() {
        reconcile_page(&reconcile, &m).await.unwrap();
    }
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    (store, stream_records(&ddb, &streams, &table).await)
}

/// What identifies an event across the two stores: type, object, sequence and id for the
/// state-derived events; for runs (whose ids are generated per run) the type and the
/// sequence; for connections (whose sequence is the time of the change) the type.
fn identity(e: &Value) -> (String, String, u64, String) {
    let ty = e["type"].as_str().unwrap().to_owned();
    let seq = e["sequence"].as_u64().unwrap();
    if ty.starts_with("connection.") {
        (ty, String::new(), 0, String::new())
    } else if ty.starts_with("sync.") {
        (ty, String::new(), seq, String::new())
    } else {
        (
            ty,
            e["object_id"].as_str().unwrap().to_owned(),
            seq,
            e["id"].as_str().unwrap().to_owned(),
        )
    }
}

fn identities(events: &[ChangeEvent]) -> BTreeMap<(String, String, u64, String), usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(identity(&serde_json::to_value(e).unwrap()))
            .or_default() += 1;
    }
    out
}

#[tokio::test]
async fn the_table_stream_through_the_publisher_gives_the_events_the_local_outbox_records() {
    let emu = Emulator::start(EmulatorConfig {
        user_page_size: 9,
        group_page_size: 4,
        member_slice: 10,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let tenant = TenantId::new(emu.add_tenant(&TenantSpec::new(5, 30, 6)).tenant_id);

    // Locally: the same sync through the local program; its outbox writes events.jsonl.
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    let connection = connect(&app, &*client(&emu).await, &tenant).await.unwrap();
    // One worker: pages applied in order, as the DynamoDB side below applies them (a group
    // written by two pages is created by whichever lands first, so the order must match).
    let in_order = SyncSettings {
        workers: 1,
        ..SyncSettings::default()
    };
    let run = app
        .sync(
            client(&emu).await,
            &tenant,
            &FetchOptions::default(),
            &in_order,
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    drop(app);
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let local: Vec<Value> = entra_sync_tests::event_schemas::assert_valid_lines(&text);
    let mut expected = BTreeMap::new();
    for e in &local {
        *expected.entry(identity(e)).or_insert(0usize) += 1;
    }

    // On AWS: the same sync on the DynamoDB adapters, its stream through the publisher.
    let (store, records) = sync_on_dynamodb(&emu, &tenant, &connection).await;
    assert!(
        records.len() > expected.len(),
        "the stream also carries items no event comes from"
    );
    let published = Arc::new(CollectingEvents::new());
    let deps = PublishDeps {
        connections: store.clone(),
        events: published.clone(),
        outbound: None,
    };
    drive(&deps, &records, records.len()).await;
    let got = published.history();
    entra_sync_tests::event_schemas::assert_valid(&got);
    let types: BTreeSet<&str> = got.iter().map(|e| e.event_type()).collect();
    for ty in [
        "directory.user.created",
        "directory.group.created",
        "directory.membership.added",
        "sync.started",
        "sync.completed",
        "connection.connected",
    ] {
        assert!(types.contains(ty), "{ty} published: {types:?}");
    }
    let got_identities = identities(&got);
    let only_aws: Vec<_> = got_identities
        .iter()
        .filter(|(k, n)| expected.get(*k) != Some(n))
        .collect();
    let only_local: Vec<_> = expected
        .iter()
        .filter(|(k, n)| got_identities.get(*k) != Some(n))
        .collect();
    assert!(
        only_aws.is_empty() && only_local.is_empty(),
        "same events as the local outbox; only on AWS: {only_aws:?}; only locally: {only_local:?}"
    );
    let run_events: Vec<&ChangeEvent> = got
        .iter()
        .filter(|e| e.event_type().starts_with("sync."))
        .collect();
    assert!(
        run_events
            .iter()
            .all(|e| e.account_id == Some(connection.account_id.clone())),
        "sync.* events carry the connection's account"
    );

    // The same records delivered again (a retried batch): the same events, the same ids.
    let again = Arc::new(CollectingEvents::new());
    let deps = PublishDeps {
        connections: store,
        events: again.clone(),
        outbound: None,
    };
    drive(&deps, &records, records.len()).await;
    let ids = |v: &[ChangeEvent]| v.iter().map(ChangeEvent::id).collect::<Vec<_>>();
    assert_eq!(ids(&again.history()), ids(&got));
}

#[tokio::test]
async fn a_publisher_crashing_around_any_publish_and_retried_from_the_reported_record_delivers_every_event()
 {
    let emu = Emulator::start(EmulatorConfig {
        user_page_size: 4,
        group_page_size: 2,
        member_slice: 5,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let tenant = TenantId::new(emu.add_tenant(&TenantSpec::new(8, 10, 3)).tenant_id);
    let connection = entra_sync_core::model::Connection {
        tenant_id: tenant.clone(),
        account_id: entra_sync_core::model::AccountId("acct-1".into()),
        label: "test".into(),
        tenant_name: None,
        verified_domains: vec![],
        status: entra_sync_core::model::ConnectionStatus::Connected,
        connected_at: chrono::Utc::now(),
        granted_permissions: Default::default(),
    };
    let (store, records) = sync_on_dynamodb(&emu, &tenant, &connection).await;

    // The reference: every event, published without a crash.
    let clean = Arc::new(CollectingEvents::new());
    let deps = PublishDeps {
        connections: store.clone(),
        events: clean.clone(),
        outbound: None,
    };
    drive(&deps, &records, records.len()).await;
    let reference: BTreeMap<String, ChangeEvent> = clean
        .history()
        .into_iter()
        .map(|e| (e.id().to_string(), e))
        .collect();
    assert!(reference.len() > 20, "{}", reference.len());
    // How many publish calls a clean run makes.
    let counting = Arc::new(Crashes::new());
    let deps = PublishDeps {
        connections: store.clone(),
        events: Arc::new(FaultySink::new(
            Arc::new(CollectingEvents::new()),
            counting.clone(),
        )),
        outbound: None,
    };
    drive(&deps, &records, records.len()).await;
    let publishes = counting.calls();
    assert!(publishes > 1, "{publishes}");

    // A crash at each publish call, before and after the events reach the sink.
    for n in 1..=publishes {
        for crash in [Crash::Before, Crash::After] {
            let crashes = Arc::new(Crashes::new());
            crashes.arm([(n, crash)]);
            let delivered = Arc::new(CollectingEvents::new());
            let deps = PublishDeps {
                connections: store.clone(),
                events: Arc::new(FaultySink::new(delivered.clone(), crashes.clone())),
                outbound: None,
            };
            drive(&deps, &records, records.len() + 2).await;
            let got = delivered.history();
            let ids: BTreeSet<String> = got.iter().map(|e| e.id().to_string()).collect();
            assert_eq!(
                ids,
                reference.keys().cloned().collect(),
                "crash {crash:?} at publish {n}: every event delivered"
            );
            for e in &got {
                assert_eq!(
                    &reference[&e.id().to_string()],
                    e,
                    "a repeat is the same event"
                );
            }
        }
    }
}

/// What an action or workflow event says, without its time: type, id, object, sequence,
/// account and payload.
fn action_identity(e: &Value) -> (String, String, String, u64, Value, Value) {
    (
        e["type"].as_str().unwrap().to_owned(),
        e["id"].as_str().unwrap().to_owned(),
        e["object_id"].as_str().unwrap().to_owned(),
        e["sequence"].as_u64().unwrap(),
        e["account_id"].clone(),
        e["data"].clone(),
    )
}

#[tokio::test]
async fn action_and_workflow_writes_give_the_same_events_from_the_stream_as_from_the_outbox() {
    // Locally: the history through the SQLite store; its outbox writes events.jsonl.
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    entra_sync_tests::action_history::act_and_run_a_workflow(&*app.store).await;
    app.deliver_events().await.unwrap();
    drop(app);
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let local: Vec<_> = entra_sync_tests::event_schemas::assert_valid_lines(&text)
        .iter()
        .map(action_identity)
        .collect();
    assert_eq!(local.len(), 5, "{local:?}");

    // On AWS: the same history through the DynamoDB store; its stream through the publisher.
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let table = moto::unique_name("publisher-actions");
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &table,
    ));
    store.create_table().await.unwrap();
    entra_sync_tests::action_history::act_and_run_a_workflow(&*store).await;
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let records = stream_records(&ddb, &streams, &table).await;
    assert!(
        records.len() > local.len(),
        "the stream also carries the index and due-list items"
    );
    let published = Arc::new(CollectingEvents::new());
    let deps = PublishDeps {
        connections: store,
        events: published.clone(),
        outbound: None,
    };
    drive(&deps, &records, records.len()).await;
    let got = published.history();
    entra_sync_tests::event_schemas::assert_valid(&got);
    let got: Vec<_> = got
        .iter()
        .map(|e| action_identity(&serde_json::to_value(e).unwrap()))
        .collect();
    assert_eq!(got, local, "the same events, ids and order");
}
