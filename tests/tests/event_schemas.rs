//! The event catalog against its JSON Schemas: one schema file per type and version and no
//! file without a type; every example validates; and every event the local program writes to
//! `events.jsonl` during the demo (a full sync, directory changes, an incremental sync, host
//! users created and changed), and every action and workflow event its outbox derives,
//! validates against its schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use entra_sync_core::events::{catalog, examples};
use entra_sync_local::demo::{DemoOptions, run_demo};
use entra_sync_local::runtime::SyncSettings;
use entra_sync_tests::event_schemas::{assert_valid, assert_valid_lines, problems, schema_files};

#[test]
fn every_type_has_a_schema_and_every_schema_a_type() {
    let files: BTreeSet<String> = schema_files().into_keys().collect();
    let types: BTreeSet<String> = catalog().iter().map(|t| format!("{t}.v1")).collect();
    let missing: Vec<_> = types.difference(&files).collect();
    let stray: Vec<_> = files.difference(&types).collect();
    assert!(missing.is_empty(), "types without a schema: {missing:?}");
    assert!(stray.is_empty(), "schemas without a type: {stray:?}");
    for (name, schema) in schema_files() {
        let ty = name.strip_suffix(".v1").unwrap();
        assert_eq!(schema["properties"]["type"]["const"], ty, "{name}");
        assert_eq!(schema["properties"]["version"]["const"], 1, "{name}");
    }
}

#[test]
fn every_example_validates() {
    assert_valid(&examples());
}

#[test]
fn a_wrong_event_is_refused() {
    // The check can fail: a missing field, a stray field, and a data field of the wrong type.
    let good = serde_json::to_value(&examples()[8]).unwrap();
    assert!(problems(&good).is_none());
    let mut no_seq = good.clone();
    no_seq.as_object_mut().unwrap().remove("sequence");
    assert!(problems(&no_seq).is_some());
    let mut extra = good.clone();
    extra["data"]["display_name"] = "Ann".into();
    assert!(problems(&extra).is_some());
    let mut wrong = good.clone();
    wrong["data"]["member_type"] = "planet".into();
    assert!(problems(&wrong).is_some());
    let mut unknown = good;
    unknown["type"] = "directory.user.exploded".into();
    assert!(problems(&unknown).is_some());
}

#[tokio::test]
async fn every_event_the_demo_writes_to_events_jsonl_matches_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        data_dir: dir.path().to_owned(),
        fresh: false,
        users: 80,
        groups: 8,
        seed: 5,
        changes: Some(20),
        latency: Duration::ZERO,
        settings: SyncSettings::default(),
    };
    run_demo(&opts, |_| {}).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let events = assert_valid_lines(&text);
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in [
        "directory.user.created",
        "directory.group.created",
        "directory.membership.added",
        "sync.started",
        "sync.completed",
        "user.created",
    ] {
        assert!(types.contains(expected), "no {expected} in {types:?}");
    }
    let mut seen = std::collections::BTreeMap::new();
    for e in &events {
        let key = (
            e["type"].clone(),
            e["object_id"].clone(),
            e["sequence"].clone(),
            e["data"]["member_id"].clone(),
        );
        let id = e["id"].as_str().unwrap().to_owned();
        // Without a crash each change is delivered once: the services' own copies of the
        // events the store records in its outbox are not written a second time.
        assert!(
            seen.insert(id.clone(), key).is_none(),
            "the id {id} was delivered twice"
        );
    }
}

#[tokio::test]
async fn every_action_and_workflow_event_the_outbox_writes_matches_its_schema() {
    use entra_sync_local::runtime::{DataDir, LocalApp};
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    entra_sync_tests::action_history::act_and_run_a_workflow(&*app.store).await;
    app.deliver_events().await.unwrap();
    drop(app);
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let events = assert_valid_lines(&text);
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["action.updated", "workflow.updated"]),
        "{events:?}"
    );
}
