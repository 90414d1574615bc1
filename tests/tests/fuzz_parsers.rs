//! Fuzzing (proptest, stable toolchain) of every parser of outside input:
//!
//! - Graph JSON: `parse_users_page`, `parse_groups_page`, `parse_organization` on arbitrary bytes,
//!   arbitrary JSON values and structurally mutated valid pages;
//! - the page message as a queue consumer reads it (`serde_json::from_str::<PageMessage>`, what
//!   the local queue handler does), and the same bodies through the reconcile function's SQS
//!   handler;
//! - the fetch function's SQS bodies (`FetchRequest`) through its handler;
//! - the scheduler's EventBridge input through its handler, and the SQS/EventBridge envelopes;
//! - the actions function's direct request (`parse_direct`: the `Direct` envelope and its
//!   `ActionSpec`) on arbitrary JSON and near-valid requests, and the same through its handler.
//!
//! Properties: nothing panics; bad input is a typed error (`DirectoryError::InvalidResponse`,
//! `MessageResult::Malformed`, `HandlerError::Malformed`); errors never quote the payload (a
//! canary string planted in every value never shows up in an error's text); what parses
//! survives a round trip. A refused action request names the field that is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::DateTime;
use entra_sync_core::cursor::CursorRecord;
use entra_sync_core::error::DirectoryError;
use entra_sync_core::memory::{
    CollectingEvents, CollectingFetchRequests, CollectingQueue, ManualClock, MemoryStore,
};
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, Stream, TenantId};
use entra_sync_core::page::{FetchedPage, PageItems, PageLink, PageMessage, PageRequest};
use entra_sync_core::ports::{
    ConnectionStore, CursorStore, DirectoryReader, FetchRequest, RunStore,
};
use entra_sync_core::run::{SyncRun, Trigger};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_graph::{parse_groups_page, parse_organization, parse_users_page};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const CANARY: &str = "CANARY-PII-7f3a";

// ---------------------------------------------------------------------------------------------
// Valid seeds

fn users_page() -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(displayName)",
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc",
        "value": [
            {
                "id": "u1",
                "displayName": format!("Ada {CANARY}"),
                "mail": format!("{CANARY}@contoso.example"),
                "userPrincipalName": "ada@contoso.example",
                "accountEnabled": true,
                "businessPhones": ["+1 555 0100", CANARY],
                "assignedLicenses": [{"skuId": "sku-1", "disabledPlans": []}],
                "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u2"}]
            },
            {
                "id": "u2",
                "displayName": CANARY,
                "accountEnabled": false,
                "onPremisesSyncEnabled": null,
                "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u3", "@removed": {"reason": "deleted"}}]
            },
            {"id": "u3", "@removed": {"reason": "changed"}},
            {"id": "u4", "@removed": {"reason": "deleted"}}
        ]
    })
}

fn groups_page() -> Value {
    json!({
        "@odata.deltaLink": "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=xyz",
        "value": [
            {
                "id": "g1",
                "displayName": CANARY,
                "description": null,
                "groupTypes": ["Unified"],
                "securityEnabled": false,
                "mailEnabled": true,
                "mail": format!("{CANARY}@contoso.example"),
                "members@delta": [
                    {"@odata.type": "#microsoft.graph.user", "id": "u1"},
                    {"@odata.type": "#microsoft.graph.group", "id": "g2"},
                    {"@odata.type": "#microsoft.graph.user", "id": "u2", "@removed": {"reason": "deleted"}}
                ]
            },
            {"id": "g3", "@removed": {"reason": "deleted"}}
        ]
    })
}

fn organization() -> Value {
    json!({
        "value": [{
            "id": "11111111-2222-3333-4444-555555555555",
            "displayName": CANARY,
            "verifiedDomains": [
                {"name": "contoso.onmicrosoft.com", "isDefault": false, "isInitial": true},
                {"name": "contoso.example", "isDefault": true, "isInitial": false}
            ]
        }]
    })
}

fn page_message_users() -> Value {
    let text = include_str!("../../events/reconcile/happy.json");
    let event: Value = serde_json::from_str(text).unwrap();
    let body = event["Records"][1]["body"].as_str().unwrap();
    serde_json::from_str(body).unwrap()
}

fn page_message_groups() -> Value {
    json!({
        "tenant_id": "tenant-a",
        "run_id": "run-1",
        "cycle": 1,
        "page_seq": 0,
        "mode": "incremental",
        "items": {"stream": "groups", "items": [
            {"op": "upsert",
             "group": {"id": "g1", "display_name": CANARY, "description": null, "group_types": [],
                       "security_enabled": true, "mail_enabled": false, "mail": null},
             "members_added": [{"id": "u1", "member_type": "user"}],
             "members_removed": [{"id": "u2", "member_type": "group"}]},
            {"op": "removed", "id": "g2", "reason": "soft_deleted"}
        ]}
    })
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON and structural mutations

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(f64::MAX),
            Just(-1.0e308),
            Just(-0.0),
            Just(1.5),
            any::<f64>().prop_filter("finite", |f| f.is_finite())
        ]
        .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String(CANARY.into())),
        Just(Value::String(String::new())),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("id".to_string()),
                        Just("value".to_string()),
                        Just("@removed".to_string()),
                        Just("@odata.nextLink".to_string()),
                        Just("@odata.deltaLink".to_string()),
                        Just("members@delta".to_string()),
                        Just("manager@delta".to_string()),
                        Just("reason".to_string()),
                        "[a-zA-Z@.]{0,10}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One structural change at the `target`-th node (pre-order, modulo the node count).
#[derive(Clone, Debug)]
enum Op {
    /// Remove the node from its parent (object key or array element).
    Drop,
    /// Replace the node with another value (possibly of another type).
    Replace(Value),
    /// Repeat an array element, or repeat an object's first key in the text (duplicate field).
    Duplicate,
    /// A huge, negative or fractional number in place of the node.
    Number(Value),
    /// Rewrite the page's links: 0 none, 1 both, 2 next only, 3 delta only, 4 links of the
    /// wrong type.
    Links(u8),
    /// `@removed` of the wrong shape on the node (if it is an object).
    Removed(Value),
}

#[derive(Clone, Debug)]
struct Mutation {
    target: usize,
    op: Op,
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let op = prop_oneof![
        3 => Just(Op::Drop),
        3 => arb_json().prop_map(Op::Replace),
        2 => Just(Op::Duplicate),
        2 => prop_oneof![
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(-1)),
            Just(json!(1e300)),
            Just(json!(0.5)),
            Just(json!(18_446_744_073_709_551_616.0_f64)),
        ]
        .prop_map(Op::Number),
        1 => (0u8..5).prop_map(Op::Links),
        2 => prop_oneof![
            Just(json!("deleted")),
            Just(json!(true)),
            Just(json!([])),
            Just(json!(null)),
            Just(json!({})),
            Just(json!({"reason": 5})),
            Just(json!({"reason": null})),
            Just(json!({"reason": "DELETED"})),
            Just(json!({"reason": CANARY})),
        ]
        .prop_map(Op::Removed),
    ];
    (any::<usize>(), op).prop_map(|(target, op)| Mutation { target, op })
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `op` to the `n`-th node under `v` (pre-order, `v` itself is 0). Returns `true` when
/// the node was found. Object nodes to be duplicated are recorded in `dup` by pointer path.
fn apply_at(
    v: &mut Value,
    n: &mut usize,
    op: &Op,
    path: &mut Vec<String>,
    dup: &mut Vec<Vec<String>>,
) -> bool {
    if *n == 0 {
        match op {
            Op::Replace(r) | Op::Number(r) => *v = r.clone(),
            Op::Removed(r) => {
                if let Value::Object(o) = v {
                    o.insert("@removed".into(), r.clone());
                } else {
                    *v = json!({"@removed": r});
                }
            }
            Op::Duplicate => match v {
                Value::Array(a) if !a.is_empty() => {
                    let first = a[0].clone();
                    a.push(first);
                }
                Value::Object(o) if !o.is_empty() => dup.push(path.clone()),
                _ => {}
            },
            // Handled by the parent; at the root it empties the document.
            Op::Drop => *v = Value::Null,
            Op::Links(_) => {}
        }
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => {
            for i in 0..a.len() {
                if *n == 0 && matches!(op, Op::Drop) {
                    a.remove(i);
                    return true;
                }
                path.push(i.to_string());
                let found = apply_at(&mut a[i], n, op, path, dup);
                path.pop();
                if found {
                    return true;
                }
            }
        }
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                if *n == 0 && matches!(op, Op::Drop) {
                    o.remove(&k);
                    return true;
                }
                path.push(k.clone());
                let found = apply_at(o.get_mut(&k).unwrap(), n, op, path, dup);
                path.pop();
                if found {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn set_links(v: &mut Value, which: u8) {
    let Value::Object(o) = v else { return };
    o.remove("@odata.nextLink");
    o.remove("@odata.deltaLink");
    match which {
        1 => {
            o.insert("@odata.nextLink".into(), json!("https://x/next"));
            o.insert("@odata.deltaLink".into(), json!("https://x/delta"));
        }
        2 => {
            o.insert("@odata.nextLink".into(), json!("https://x/next"));
        }
        3 => {
            o.insert("@odata.deltaLink".into(), json!("https://x/delta"));
        }
        4 => {
            o.insert("@odata.nextLink".into(), json!(42));
            o.insert("@odata.deltaLink".into(), json!(["x"]));
        }
        _ => {}
    }
}

/// JSON text of `v`, where each object whose path is in `dup` repeats its first key.
fn to_text(v: &Value, path: &mut Vec<String>, dup: &[Vec<String>], out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(i.to_string());
                to_text(x, path, dup, out);
                path.pop();
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            let mut first = true;
            if dup.contains(path)
                && let Some((k, x)) = o.iter().next()
            {
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                path.push(k.clone());
                to_text(x, path, dup, out);
                path.pop();
                first = false;
            }
            for (k, x) in o {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                path.push(k.clone());
                to_text(x, path, dup, out);
                path.pop();
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A mutated copy of `seed` as JSON text, and which link rewrite (if any) was applied last.
fn mutate(seed: &Value, mutations: &[Mutation]) -> (String, Option<u8>) {
    let mut v = seed.clone();
    let mut dup = Vec::new();
    let mut links = None;
    for m in mutations {
        if let Op::Links(which) = m.op {
            set_links(&mut v, which);
            links = Some(which);
            continue;
        }
        let mut n = m.target % count_nodes(&v);
        apply_at(&mut v, &mut n, &m.op, &mut Vec::new(), &mut dup);
        // A later structural change may have moved the links again.
        links = links.filter(|_| !matches!(m.op, Op::Drop | Op::Replace(_) | Op::Number(_)));
    }
    let mut out = String::new();
    to_text(&v, &mut Vec::new(), &dup, &mut out);
    (out, links)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Graph parsers

/// The one error a parser may return, without the payload in its text.
fn check_directory_error(e: &DirectoryError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(e, DirectoryError::InvalidResponse(_)),
        "parser returned {e:?}"
    );
    let text = format!("{e} {e:?}");
    prop_assert!(!text.contains(CANARY), "error quotes the payload: {text}");
    Ok(())
}

/// Every parser of Graph input, on the same bytes: never a panic, only `InvalidResponse`.
fn parse_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = parse_users_page(bytes) {
        check_directory_error(&e)?;
    }
    if let Err(e) = parse_groups_page(bytes) {
        check_directory_error(&e)?;
    }
    if let Err(e) = parse_organization(bytes) {
        check_directory_error(&e)?;
    }
    Ok(())
}

#[test]
fn the_seed_pages_parse() {
    let (users, link) = parse_users_page(users_page().to_string().as_bytes()).unwrap();
    assert_eq!(users.len(), 4);
    assert!(matches!(link, PageLink::Next(_)));
    let (groups, link) = parse_groups_page(groups_page().to_string().as_bytes()).unwrap();
    assert_eq!(groups.len(), 2);
    assert!(matches!(link, PageLink::Delta(_)));
    assert_eq!(
        parse_organization(organization().to_string().as_bytes())
            .unwrap()
            .verified_domains
            .len(),
        2
    );
    // The mutator does change things: a duplicated field of an entry is refused (node 4 is
    // `value[0]`: root, @odata.context, @odata.nextLink, value, value[0]).
    let (text, _) = mutate(
        &users_page(),
        &[Mutation {
            target: 4,
            op: Op::Duplicate,
        }],
    );
    assert!(
        text.matches("\"accountEnabled\":true").count() == 2,
        "{text}"
    );
    assert!(parse_users_page(text.as_bytes()).is_err(), "{text}");
}

#[test]
fn graph_parsers_never_panic_on_arbitrary_bytes() {
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        // Bytes that start like a page, so the parser gets past the first character.
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(|mut b| {
            let mut v = b"{\"value\":[{\"id\":".to_vec();
            v.append(&mut b);
            v
        }),
        // Truncations of valid pages.
        (0usize..2000, 0u8..3).prop_map(|(cut, which)| {
            let text = match which {
                0 => users_page().to_string(),
                1 => groups_page().to_string(),
                _ => organization().to_string(),
            };
            text.as_bytes()[..cut.min(text.len())].to_vec()
        }),
    ];
    runner(400)
        .run(&strategy, |bytes| parse_all(&bytes))
        .unwrap();
}

#[test]
fn graph_parsers_never_panic_on_arbitrary_json() {
    let strategy = prop_oneof![
        arb_json(),
        // Arbitrary entries inside a page with a valid link.
        proptest::collection::vec(arb_json(), 0..4)
            .prop_map(|entries| json!({"@odata.deltaLink": "https://x/d", "value": entries})),
    ];
    runner(400)
        .run(&strategy, |v| parse_all(v.to_string().as_bytes()))
        .unwrap();
}

#[test]
fn graph_parsers_turn_mutated_valid_pages_into_typed_errors_or_sound_pages() {
    let strategy = (0u8..3, proptest::collection::vec(arb_mutation(), 1..4));
    let parsed = Cell::new(0u32);
    let refused = Cell::new(0u32);
    runner(600)
        .run(&strategy, |(which, mutations)| {
            let seed = match which {
                0 => users_page(),
                1 => groups_page(),
                _ => organization(),
            };
            let (text, links) = mutate(&seed, &mutations);
            parse_all(text.as_bytes())?;
            // The link rules hold whatever else changed.
            let link = match which {
                0 => parse_users_page(text.as_bytes()).map(|(_, l)| l),
                1 => parse_groups_page(text.as_bytes()).map(|(_, l)| l),
                _ => return Ok(()),
            };
            let counter = if link.is_ok() { &parsed } else { &refused };
            counter.set(counter.get() + 1);
            match (links, link) {
                (Some(0 | 1 | 4), Ok(l)) => {
                    prop_assert!(
                        false,
                        "links rewritten to {links:?}, still parsed {l:?}: {text}"
                    )
                }
                (Some(2), Ok(l)) => prop_assert!(matches!(l, PageLink::Next(_))),
                (Some(3), Ok(l)) => prop_assert!(matches!(l, PageLink::Delta(_))),
                _ => {}
            }
            Ok(())
        })
        .unwrap();
    // Both outcomes happen: the mutations are neither all harmless nor all fatal.
    assert!(
        parsed.get() > 20 && refused.get() > 20,
        "parsed {parsed:?}, refused {refused:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Page messages (queue bodies)

fn check_page_message(text: &str) -> Result<Option<PageMessage>, TestCaseError> {
    match serde_json::from_str::<PageMessage>(text) {
        Ok(m) => {
            // What parses survives a round trip unchanged.
            let again: PageMessage = serde_json::from_str(&serde_json::to_string(&m).unwrap())
                .map_err(|e| TestCaseError::fail(format!("round trip failed: {e}")))?;
            prop_assert_eq!(&again, &m);
            let _ = m.message_id();
            Ok(Some(m))
        }
        Err(_) => Ok(None),
    }
}

#[test]
fn page_messages_never_panic_on_arbitrary_or_mutated_bodies() {
    let strategy = prop_oneof![
        arb_json().prop_map(|v| v.to_string()),
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        (
            any::<bool>(),
            proptest::collection::vec(arb_mutation(), 1..4)
        )
            .prop_map(|(groups, m)| {
                let seed = if groups {
                    page_message_groups()
                } else {
                    page_message_users()
                };
                mutate(&seed, &m).0
            }),
    ];
    runner(500)
        .run(&strategy, |text| check_page_message(&text).map(|_| ()))
        .unwrap();
    // The seeds themselves are valid messages.
    assert!(serde_json::from_value::<PageMessage>(page_message_users()).is_ok());
    assert!(serde_json::from_value::<PageMessage>(page_message_groups()).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Function handlers: SQS bodies and EventBridge input

fn now() -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_767_261_600, 0).unwrap()
}

async fn reconcile_world() -> (entra_sync_reconcile::handler::Deps, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let t = TenantId::new("tenant-a");
    let (round, _) = CursorRecord::default().begin_round("run-1");
    for stream in [Stream::Users, Stream::Groups] {
        store.save_cursor(&t, stream, &round, None).await.unwrap();
    }
    store
        .create_run(&SyncRun::new("run-1".into(), t, Trigger::Scheduled, now()))
        .await
        .unwrap();
    let deps = entra_sync_reconcile::handler::Deps {
        reconcile: DepsBuilder::on(&store)
            .clock(Arc::new(ManualClock::new(now())))
            .reconcile(),
        claims: entra_sync_core::services::claim::Claims::new(
            Arc::new(entra_sync_core::memory::MemoryIdempotency::new()),
            entra_sync_core::idempotency::IdempotencyConfig::default(),
            Arc::new(ManualClock::new(now())),
        ),
    };
    (deps, store)
}

fn sqs_message(body: Option<String>) -> SqsMessage {
    // Every case is its own delivery (reconcile keys its idempotency records by message id).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut m = SqsMessage::default();
    m.message_id = Some(format!(
        "m-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    m.body = body;
    m
}

#[test]
fn the_reconcile_handler_sets_aside_malformed_page_messages_and_never_panics() {
    use entra_sync_reconcile::handler::{MessageResult, handle_message};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (deps, _store) = rt.block_on(reconcile_world());
    let strategy = prop_oneof![
        1 => arb_json().prop_map(|v| Some(v.to_string())),
        1 => Just(None),
        6 => (any::<bool>(), proptest::collection::vec(arb_mutation(), 1..4)).prop_map(
            |(groups, m)| {
                let seed = if groups {
                    page_message_groups()
                } else {
                    page_message_users()
                };
                Some(mutate(&seed, &m).0)
            }
        ),
    ];
    let applied = Cell::new(0u32);
    let malformed = Cell::new(0u32);
    runner(300)
        .run(&strategy, |body| {
            let parsed = match &body {
                Some(text) => check_page_message(text)?,
                None => None,
            };
            let result = rt.block_on(handle_message(&deps, &sqs_message(body.clone())));
            match (&parsed, &result) {
                (None, MessageResult::Malformed) => malformed.set(malformed.get() + 1),
                (None, other) => prop_assert!(false, "unparsable body gave {other:?}"),
                (Some(_), MessageResult::Malformed) => {
                    prop_assert!(false, "a valid message was called malformed")
                }
                (Some(_), MessageResult::Applied(_)) => applied.set(applied.get() + 1),
                (Some(_), MessageResult::Failed { .. }) => {}
                (_, MessageResult::AlreadyApplied) => {
                    prop_assert!(false, "a new message id was taken for a redelivery")
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(
        applied.get() > 0 && malformed.get() > 0,
        "applied {applied:?}, malformed {malformed:?}"
    );
}

/// A directory that always answers one empty page that ends the round.
struct EmptyDirectory;

#[async_trait]
impl DirectoryReader for EmptyDirectory {
    async fn fetch_page(
        &self,
        _tenant: &TenantId,
        stream: Stream,
        _request: &PageRequest,
    ) -> Result<FetchedPage, DirectoryError> {
        Ok(FetchedPage {
            items: PageItems::empty(stream),
            link: PageLink::Delta("https://x/delta".into()),
        })
    }
    fn requests_sent(&self, _tenant: &TenantId) -> u64 {
        0
    }
}

#[test]
fn the_fetch_handler_refuses_malformed_requests_and_never_panics() {
    use entra_sync_fetch::handler::{Deps, RequestResult, Settings, handle_message};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    rt.block_on(store.put_connection(&Connection {
        tenant_id: TenantId::new("tenant-a"),
        account_id: AccountId("acct".into()),
        label: "a".into(),
        tenant_name: None,
        verified_domains: vec![],
        status: ConnectionStatus::Connected,
        connected_at: now(),
        granted_permissions: Default::default(),
    }))
    .unwrap();
    let events = Arc::new(CollectingEvents::new());
    let deps = Deps {
        fetch: DepsBuilder::on(&store)
            .events(events)
            .clock(Arc::new(ManualClock::new(now())))
            .fetch(Arc::new(EmptyDirectory), Arc::new(CollectingQueue::new())),
        requests: Arc::new(CollectingFetchRequests::new()),
    };
    let settings = Settings {
        max_pages: 2,
        lease_ttl: Duration::from_secs(900),
    };
    let seed = json!({"tenant_id": "tenant-a", "trigger": "scheduled", "force_full": false});
    let strategy = prop_oneof![
        1 => arb_json().prop_map(|v| Some(v.to_string())),
        1 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Some(String::from_utf8_lossy(&b).into_owned())),
        5 => proptest::collection::vec(arb_mutation(), 1..3)
            .prop_map(move |m| Some(mutate(&seed, &m).0)),
    ];
    let ran = Cell::new(0u32);
    let malformed = Cell::new(0u32);
    runner(300)
        .run(&strategy, |body| {
            let parsed = body
                .as_deref()
                .and_then(|b| serde_json::from_str::<FetchRequest>(b).ok());
            let result = rt.block_on(handle_message(&deps, &settings, "fuzz", &sqs_message(body)));
            match (parsed, &result) {
                (None, RequestResult::Malformed) => malformed.set(malformed.get() + 1),
                (None, other) => prop_assert!(false, "unparsable request gave {other:?}"),
                (Some(_), RequestResult::Malformed) => {
                    prop_assert!(false, "a valid request was called malformed")
                }
                (Some(_), _) => ran.set(ran.get() + 1),
            }
            Ok(())
        })
        .unwrap();
    assert!(
        ran.get() > 0 && malformed.get() > 0,
        "ran {ran:?}, malformed {malformed:?}"
    );
}

#[test]
fn the_scheduler_refuses_what_is_not_an_eventbridge_event_and_never_panics() {
    use entra_sync_scheduler::handler::{HandlerError, Settings, handle};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deps = DepsBuilder::on(&Arc::new(MemoryStore::new()))
        .clock(Arc::new(ManualClock::new(now())))
        .schedule(Arc::new(CollectingFetchRequests::new()));
    let settings = Settings {
        max_jitter: Duration::from_secs(900),
    };
    let seed: Value =
        serde_json::from_str(include_str!("../../events/scheduler/happy.json")).unwrap();
    let strategy = prop_oneof![
        1 => arb_json(),
        4 => proptest::collection::vec(arb_mutation(), 1..4).prop_map(move |m| {
            // Through text, so duplicated keys reach the parser as text would.
            serde_json::from_str(&mutate(&seed, &m).0).unwrap_or(Value::Null)
        }),
    ];
    let ok = Cell::new(0u32);
    let malformed = Cell::new(0u32);
    runner(300)
        .run(&strategy, |event| {
            let valid = serde_json::from_value::<EventBridgeEvent>(event.clone()).is_ok();
            match rt.block_on(handle(&deps, &settings, event)) {
                Ok(_) => {
                    prop_assert!(valid, "an invalid event was accepted");
                    ok.set(ok.get() + 1);
                }
                Err(HandlerError::Malformed(_)) => {
                    prop_assert!(!valid);
                    malformed.set(malformed.get() + 1);
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
            Ok(())
        })
        .unwrap();
    assert!(
        ok.get() > 0 && malformed.get() > 0,
        "ok {ok:?}, malformed {malformed:?}"
    );
}

#[test]
fn sqs_envelopes_never_panic_when_mutated() {
    let seeds: Vec<Value> = [
        include_str!("../../events/reconcile/happy.json"),
        include_str!("../../events/fetch/happy.json"),
    ]
    .iter()
    .map(|t| serde_json::from_str(t).unwrap())
    .collect();
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec(arb_mutation(), 1..4),
    );
    runner(300)
        .run(&strategy, |(i, m)| {
            let (text, _) = mutate(&seeds[i], &m);
            if let Ok(event) = serde_json::from_str::<SqsEvent>(&text) {
                for r in &event.records {
                    if let Some(body) = &r.body {
                        check_page_message(body)?;
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The connect function's parsers: the consent callback's query string and the start and
// reconnect bodies.

/// Query strings built from the callback's own parameter names (and others), with values that
/// may be empty, percent-encoded, repeated or hold the canary.
fn arb_callback_query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("admin_consent".to_owned()),
        Just("tenant".to_owned()),
        Just("state".to_owned()),
        Just("scope".to_owned()),
        Just("error".to_owned()),
        Just("error_description".to_owned()),
        "[a-z_%=&+]{0,12}",
    ];
    let value = prop_oneof![
        Just("True".to_owned()),
        Just(format!("AADSTS65004%3a+{CANARY}")),
        Just(CANARY.to_owned()),
        "[ -~]{0,40}",
        "(%[0-9a-fA-F]{0,2}){0,6}",
        proptest::collection::vec(any::<char>(), 0..20).prop_map(|c| c.into_iter().collect()),
    ];
    proptest::collection::vec((key, value, any::<bool>()), 0..8).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, bare)| if bare { k } else { format!("{k}={v}") })
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[test]
fn the_consent_callback_parser_never_panics_and_refuses_with_typed_errors() {
    use entra_sync_core::services::connect::ConsentCallback;
    use entra_sync_http::connect::parse::{CallbackError, MAX_QUERY_BYTES, parse_callback_query};
    let strategy = prop_oneof![
        4 => arb_callback_query(),
        1 => proptest::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect::<String>()),
        1 => (0usize..3).prop_map(|n| "state=x&".repeat(MAX_QUERY_BYTES / 8 + n)),
    ];
    runner(600)
        .run(&strategy, |q| {
            match parse_callback_query(Some(&q)) {
                Ok(ConsentCallback::Failed { error, .. }) => {
                    prop_assert!(!error.is_empty(), "an empty error is not a failure: {q}");
                }
                Ok(ConsentCallback::Granted { tenant, .. }) => {
                    prop_assert!(q.contains("admin_consent"), "{q}");
                    prop_assert!(tenant.is_none_or(|t| !t.is_empty()));
                }
                Err(e) => {
                    prop_assert!(matches!(
                        e,
                        CallbackError::TooLarge
                            | CallbackError::Duplicate(_)
                            | CallbackError::Unrecognized
                    ));
                    let text = format!("{e} {e:?}");
                    prop_assert!(!text.contains(CANARY), "error quotes the input: {text}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_connect_body_parsers_never_panic_and_never_quote_the_body() {
    use entra_sync_http::connect::parse::{parse_reconnect_body, parse_start_body};
    let seed = json!({"label": format!("Contoso {CANARY}"), "expected_tenant_id": "6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3"});
    let strategy = prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        2 => arb_json().prop_map(|v| v.to_string().into_bytes()),
        3 => proptest::collection::vec(arb_mutation(), 1..4)
            .prop_map(move |m| mutate(&seed, &m).0.into_bytes()),
        1 => (0usize..200).prop_map(|cut| {
            let text = json!({"label": CANARY}).to_string();
            text.as_bytes()[..cut.min(text.len())].to_vec()
        }),
    ];
    runner(600)
        .run(&strategy, |bytes| {
            match parse_start_body(&bytes) {
                Ok(b) => {
                    // What parses is what was sent: a label string, a tenant id that is a GUID.
                    let v: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert_eq!(v["label"].as_str(), Some(b.label.as_str()));
                    if let Some(t) = b.expected_tenant_id {
                        prop_assert_eq!(t.as_str().len(), 36);
                    }
                }
                Err(e) => {
                    let text = format!("{e} {e:?}");
                    prop_assert!(!text.contains(CANARY), "error quotes the body: {text}");
                }
            }
            if let Err(e) = parse_reconnect_body(&bytes) {
                let text = format!("{e} {e:?}");
                prop_assert!(!text.contains(CANARY), "error quotes the body: {text}");
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The actions function's direct request

/// The fields a direct request and its action have.
const ACTION_FIELDS: &[&str] = &[
    "op",
    "account_id",
    "tenant_id",
    "idempotency_key",
    "requested_by",
    "action",
    "action_id",
    "runner",
    "kind",
    "user",
    "group",
    "service_principal_id",
    "app_role_id",
];

fn direct_seeds() -> Vec<Value> {
    let submit: Value =
        serde_json::from_str(include_str!("../../events/actions/direct.json")).unwrap();
    let actions = [
        json!({"kind": "add_group_member", "user": "ann@contoso.example", "group": "Sales"}),
        json!({"kind": "remove_group_member", "user": CANARY, "group": "5a1e5000-0000-4000-8000-000000000010"}),
        json!({"kind": "assign_app_role", "user": "ann@contoso.example", "service_principal_id": "a9900000-0000-4000-8000-000000000020", "app_role_id": null}),
        json!({"kind": "remove_app_role", "user": "ann@contoso.example", "service_principal_id": "a9900000-0000-4000-8000-000000000020", "app_role_id": "00000000-0000-0000-0000-000000000000"}),
        json!({"kind": "block_sign_in", "user": "ann@contoso.example"}),
        json!({"kind": "reset_password", "user": "ann@contoso.example"}),
        json!({"kind": "restore_user", "user": "aaaaaaaa-0000-4000-8000-000000000001"}),
    ];
    let mut out = vec![submit.clone()];
    for a in actions {
        let mut v = submit.clone();
        v["action"] = a;
        out.push(v);
    }
    out.push(json!({"op": "run", "account_id": "acct-a", "tenant_id": "7d2c1f0e-0000-4000-8000-000000000001",
                    "action_id": "00000000-0000-5000-8000-000000000001", "runner": "alice@host"}));
    out
}

/// A near-valid request: one field dropped, of another type, misspelt, added, or an unknown
/// kind or op.
fn arb_near_direct() -> impl Strategy<Value = Value> {
    let seeds = direct_seeds();
    let n = seeds.len();
    (0..n, 0usize..64, 0u8..7, arb_scalar()).prop_map(move |(i, pick, how, scalar)| {
        let mut v = seeds[i].clone();
        let in_action = pick % 2 == 1 && v.get("action").is_some();
        let target = if in_action {
            v["action"].as_object_mut().unwrap()
        } else {
            v.as_object_mut().unwrap()
        };
        let keys: Vec<String> = target.keys().cloned().collect();
        let key = keys[pick % keys.len()].clone();
        match how {
            0 => {
                target.remove(&key);
            }
            1 => {
                target.insert(key, scalar);
            }
            2 => {
                let value = target.remove(&key).unwrap();
                target.insert(key.to_uppercase(), value);
            }
            3 => {
                target.insert(format!("{key}_extra"), json!("x"));
            }
            4 => {
                target.insert("kind".into(), json!(format!("nuke-{CANARY}")));
            }
            5 => {
                target.insert("op".into(), json!("explode"));
            }
            _ => {
                target.insert(key, json!({"nested": [CANARY]}));
            }
        }
        v
    })
}

/// Parsed, or refused naming the field (one of the request's, or a key the input has).
fn check_direct(v: &Value) -> Result<(), TestCaseError> {
    use entra_sync_actions::handler::{Direct, parse_direct};
    match parse_direct(v) {
        Ok(Direct::Submit {
            action, tenant_id, ..
        }) => {
            prop_assert_eq!(v["op"].as_str(), Some("submit"));
            prop_assert_eq!(v["tenant_id"].as_str(), Some(tenant_id.as_str()));
            let again: entra_sync_core::actions::ActionSpec =
                serde_json::from_value(v["action"].clone()).unwrap();
            prop_assert_eq!(again, action);
        }
        Ok(Direct::Run { action_id, .. }) => {
            prop_assert_eq!(v["op"].as_str(), Some("run"));
            prop_assert_eq!(v["action_id"].as_str(), Some(action_id.as_str()));
        }
        Err(message) => {
            let mut names: Vec<String> = ACTION_FIELDS.iter().map(|f| (*f).to_owned()).collect();
            for o in [v.as_object(), v["action"].as_object()]
                .into_iter()
                .flatten()
            {
                names.extend(o.keys().cloned());
            }
            let rest = message
                .strip_prefix("not an action request: ")
                .unwrap_or(&message);
            // `field: ...` / `action.field: ...`, or serde's "missing field `x`" forms.
            let path = rest.split(": ").next().unwrap_or_default();
            let by_path = names
                .iter()
                .any(|n| !n.is_empty() && (path == n || path == format!("action.{n}")));
            let quoted = names
                .iter()
                .any(|n| !n.is_empty() && rest.contains(&format!("`{n}`")));
            let not_object = !v.is_object() && rest == "the request must be a JSON object";
            prop_assert!(
                by_path || quoted || not_object,
                "the refusal names no field: {} for {}",
                message,
                v
            );
        }
    }
    Ok(())
}

#[test]
fn the_action_request_seeds_parse() {
    for v in direct_seeds() {
        entra_sync_actions::handler::parse_direct(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
}

#[test]
fn action_requests_are_parsed_or_refused_naming_the_field() {
    let seeds = direct_seeds();
    let strategy = prop_oneof![
        2 => arb_json(),
        4 => arb_near_direct(),
        2 => (0..seeds.len(), proptest::collection::vec(arb_mutation(), 1..4)).prop_filter_map(
            "valid JSON text",
            move |(i, m)| serde_json::from_str::<Value>(&mutate(&seeds[i], &m).0).ok()
        ),
    ];
    runner(1500).run(&strategy, |v| check_direct(&v)).unwrap();
}

#[test]
fn the_actions_handler_answers_every_direct_request_and_never_panics() {
    use entra_sync_actions::handler::{Answer, DirectAnswer, handle};
    use entra_sync_core::actions::kind::ActionKind;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(entra_sync_core::actions::testing::world(&ActionKind::ALL));
    let calls = Cell::new(0u32);
    runner(300)
        .run(&arb_near_direct(), |v| {
            calls.set(calls.get() + 1);
            match rt.block_on(handle(&w.deps, v.clone())) {
                Answer::Direct(DirectAnswer::Ok { .. }) => {}
                Answer::Direct(DirectAnswer::Error { error, message, .. }) => {
                    prop_assert!(!error.is_empty() && !message.is_empty());
                }
                other => prop_assert!(false, "{v} was not answered as a request: {other:?}"),
            }
            Ok(())
        })
        .unwrap();
    assert!(calls.get() >= 300);
}
