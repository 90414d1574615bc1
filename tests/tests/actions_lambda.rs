//! The actions function end to end with the real adapters: its handler (direct invocations,
//! SQS batches as Lambda's event source mapping hands them over, the schedule's tick) on
//! DynamoDB and an SQS FIFO queue on moto's server mode, the Graph client against the
//! emulator, whose per-kind write counters prove each effect happened exactly once. The mirror
//! comes from a real sync (fetch + reconcile on the same DynamoDB table).
//!
//! Every action kind; duplicate and out-of-order delivery of the same messages; approvals
//! (self-approval refused, approval, expiry); a future-dated offboarding run by moving the
//! clock; clear errors with nothing half-done (missing permission, unknown user or group,
//! ambiguous name, a group that cannot be a target, a deleted user); and one account cannot
//! act on another account's directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use chrono::Utc;
use entra_sync_actions::handler::handle;
use entra_sync_aws::{DynamoStore, EventBridgeSink, SqsActionQueue, sdk_config_for_endpoint};
use entra_sync_core::actions::budget::WriteBudget;
use entra_sync_core::actions::kind::{ActionKind, ActionSpec};
use entra_sync_core::actions::record::Origin;
use entra_sync_core::actions::workflow::{Template, WorkflowOrigin, WorkflowParams};
use entra_sync_core::idempotency::IdempotencyConfig;
use entra_sync_core::memory::{CollectingQueue, ManualClock};
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::ports::{Clock, ConnectionStore, MirrorStore, Secret, SettingsStore};
use entra_sync_core::services::actions::{
    ActionDeps, ActionsConfig, DecideRequest, Decision, StartWorkflow, SubmitRequest,
    decide_action, get_workflow, start_workflow, submit_action,
};
use entra_sync_core::services::claim::Claims;
use entra_sync_core::services::{FetchOptions, reconcile_page, run_fetch};
use entra_sync_core::settings::ConnectionSettings;
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{
    DEFAULT_APP_PERMISSIONS, Emulator, EmulatorConfig, GroupKind, NewGroup, NewServicePrincipal,
    NewUser, TenantHandle, TenantSpec, WriteOp,
};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_tests::moto;
use serde_json::{Value, json};

const ACCOUNT_A: &str = "acct-a";
const ACCOUNT_B: &str = "acct-b";

/// The AWS side: one table, one FIFO action queue, one bus, on moto.
struct Aws {
    store: Arc<DynamoStore>,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    events: aws_sdk_eventbridge::Client,
    bus: String,
}

async fn aws() -> Aws {
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::unique_name("actions-lambda");
    let store = Arc::new(DynamoStore::new(dynamodb.clone(), table.clone()));
    store.create_table().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name(format!("{}.fifo", moto::unique_name("actions")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus = moto::unique_name("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    Aws {
        store,
        dynamodb,
        table,
        sqs,
        queue,
        events,
        bus,
    }
}

/// One emulated directory, connected and synced into the table.
struct Directory {
    tenant: TenantId,
    handle: TenantHandle,
    ann: String,
    bob: String,
    sales: String,
    /// The two groups named "Project".
    projects: [String; 2],
    app: String,
}

struct World {
    emulator: Emulator,
    aws: Aws,
    clock: Arc<ManualClock>,
    /// The actions function's ports, as its main.rs wires them.
    deps: ActionDeps,
    a: Directory,
}

fn graph(emulator: &Emulator) -> GraphClient {
    let creds = emulator.app();
    let mut gc = GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url()).unwrap(),
        url::Url::parse(&emulator.login_base_url()).unwrap(),
        creds.client_id.clone(),
        Secret::new(creds.client_secret.clone()),
    );
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    GraphClient::new(gc).unwrap()
}

fn deps(emulator: &Emulator, aws: &Aws, clock: Arc<ManualClock>) -> ActionDeps {
    let store = aws.store.clone();
    ActionDeps {
        connections: store.clone(),
        settings: store.clone(),
        mirror: store.clone(),
        cursors: store.clone(),
        lookup: store.clone(),
        actions: store.clone(),
        workflows: store.clone(),
        queue: Arc::new(SqsActionQueue::new(aws.sqs.clone(), aws.queue.clone())),
        writer: Arc::new(graph(emulator)),
        claims: Claims::new(store, IdempotencyConfig::default(), clock.clone()),
        budget: Arc::new(WriteBudget::default()),
        clock,
        config: ActionsConfig::default(),
    }
}

/// Fetch and reconcile `tenant` into the table (a full read first, then deltas).
async fn sync(emulator: &Emulator, aws: &Aws, tenant: &TenantId) {
    let queue = Arc::new(CollectingQueue::new());
    let events = Arc::new(EventBridgeSink::new(aws.events.clone(), &aws.bus));
    let clock = Arc::new(entra_sync_core::ports::SystemClock);
    let store = aws.store.clone();
    let deps = DepsBuilder::on(&store).events(events).clock(clock);
    let fetch = deps.fetch(Arc::new(graph(emulator)), queue.clone());
    let reconcile = deps.reconcile();
    run_fetch(&fetch, tenant, &FetchOptions::default())
        .await
        .unwrap();
    for m in queue.drain() {
        reconcile_page(&reconcile, &m).await.unwrap();
    }
}

/// A directory with Ann and Bob, the security group Sales (Bob is a member), groups that
/// cannot be targets, two groups both named "Project", and an app with a role; connected to
/// `account` with `enabled` kinds and `approval` kinds, and synced.
async fn directory(
    emulator: &Emulator,
    aws: &Aws,
    seed: u64,
    account: &str,
    enabled: &[ActionKind],
    approval: &[ActionKind],
) -> Directory {
    let info = emulator.add_tenant(&TenantSpec::new(seed, 6, 1));
    let handle = emulator.tenant(&info.tenant_id).unwrap();
    handle.set_granted_permissions(DEFAULT_APP_PERMISSIONS.iter().copied());
    handle.set_user_admin_role(true);
    let domain = format!("t{seed}.example");
    let ann = handle.create_user(NewUser::new("Ann", format!("ann@{domain}")));
    let bob = handle.create_user(NewUser::new("Bob", format!("bob@{domain}")));
    let sales = handle.create_group(NewGroup::new("Sales", GroupKind::Security));
    handle.add_member(&sales, &bob).unwrap();
    handle.create_group(NewGroup::new("All staff", GroupKind::Distribution));
    let projects = [
        handle.create_group(NewGroup::new("Project", GroupKind::Security)),
        handle.create_group(NewGroup::new("Project", GroupKind::Security)),
    ];
    let app = handle
        .create_service_principal(NewServicePrincipal::new("Payroll", &["Payroll.User"]))
        .id;
    let tenant = TenantId::new(info.tenant_id.clone());
    aws.store
        .put_connection(&Connection {
            tenant_id: tenant.clone(),
            account_id: AccountId(account.into()),
            label: domain,
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: Utc::now(),
            // Nothing recorded yet: the first action reads the grant from a fresh token.
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let mut settings = ConnectionSettings {
        version: 1,
        ..ConnectionSettings::default()
    };
    settings.actions.enabled = enabled.iter().copied().collect();
    settings.actions.approval_required = approval.iter().copied().collect();
    aws.store.put_settings(&tenant, &settings, 0).await.unwrap();
    sync(emulator, aws, &tenant).await;
    Directory {
        tenant,
        handle,
        ann,
        bob,
        sales,
        projects,
        app,
    }
}

/// A world whose directory A (account A) has every kind enabled and approval for `approval`.
async fn world(seed: u64, approval: &[ActionKind]) -> World {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let aws = aws().await;
    let a = directory(&emulator, &aws, seed, ACCOUNT_A, &ActionKind::ALL, approval).await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let deps = deps(&emulator, &aws, clock.clone());
    World {
        emulator,
        aws,
        clock,
        deps,
        a,
    }
}

fn upn(d: &Directory, who: &str) -> String {
    d.handle.user(who).unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn submit_request(account: &str, d: &Directory, key: &str, action: Value) -> Value {
    json!({"op": "submit", "account_id": account, "tenant_id": d.tenant, "idempotency_key": key,
           "requested_by": "helpdesk@host", "action": action})
}

impl World {
    /// A direct invocation, its answer as the function returns it (JSON).
    async fn invoke(&self, payload: Value) -> Value {
        serde_json::to_value(handle(&self.deps, payload).await).unwrap()
    }

    async fn submit(&self, key: &str, action: Value) -> Value {
        self.invoke(submit_request(ACCOUNT_A, &self.a, key, action))
            .await
    }

    async fn tick(&self) -> Value {
        self.invoke(serde_json::from_str(include_str!("../../events/actions/tick.json")).unwrap())
            .await
    }

    /// The host product's side: submit without running (the action goes to the queue).
    async fn enqueue(&self, key: &str, spec: ActionSpec, by: &str) -> String {
        submit_action(
            &self.deps,
            SubmitRequest {
                account: AccountId(ACCOUNT_A.into()),
                tenant: self.a.tenant.clone(),
                key: key.into(),
                spec,
                requested_by: by.into(),
                origin: Origin::Api,
            },
        )
        .await
        .unwrap()
        .id
    }

    /// Everything on the queue now (hidden for a minute), with the attributes Lambda passes.
    async fn receive(&self) -> Vec<Message> {
        let mut out = Vec::new();
        for _ in 0..50 {
            let got = self
                .aws
                .sqs
                .receive_message()
                .queue_url(&self.aws.queue)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                break;
            }
            out.extend(got);
        }
        out
    }

    async fn acknowledge(&self, messages: &[Message]) {
        for m in messages {
            self.aws
                .sqs
                .delete_message()
                .queue_url(&self.aws.queue)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    /// Hand `messages` to the function as one batch; the ids it reports failed.
    async fn deliver(&self, messages: &[Message]) -> Vec<String> {
        let event = serde_json::to_value(as_event(messages)).unwrap();
        let answer = self.invoke(event).await;
        answer["batchItemFailures"]
            .as_array()
            .expect("a batch answer")
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Lambda's event source mapping: batches of ten until the queue is empty.
    async fn drain(&self) {
        for _ in 0..20 {
            let messages = self.receive().await;
            if messages.is_empty() {
                return;
            }
            for batch in messages.chunks(10) {
                let failed = self.deliver(batch).await;
                assert!(failed.is_empty(), "failed: {failed:?}");
            }
            self.acknowledge(&messages).await;
        }
        panic!("the action queue does not drain");
    }

    fn writes(&self, d: &Directory, op: WriteOp) -> u64 {
        self.emulator
            .counters()
            .tenant(d.tenant.as_str())
            .write_requests(op)
    }

    fn all_writes(&self, d: &Directory) -> u64 {
        self.emulator
            .counters()
            .tenant(d.tenant.as_str())
            .writes
            .values()
            .map(|c| c.requests)
            .sum()
    }

    fn is_member(&self, group: &str, user: &str) -> bool {
        self.a
            .handle
            .members(group)
            .unwrap_or_default()
            .iter()
            .any(|(id, _)| id == user)
    }

    /// Every item of the table as text.
    async fn table_text(&self) -> String {
        let mut out = String::new();
        let mut start = None;
        loop {
            let page = self
                .aws
                .dynamodb
                .scan()
                .table_name(&self.aws.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                out.push_str(&format!("{item:?}\n"));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return out,
            }
        }
    }
}

fn as_event(messages: &[Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            for (k, v) in m.attributes.clone().unwrap_or_default() {
                r.attributes.insert(k.as_str().to_owned(), v);
            }
            r.event_source = Some("aws:sqs".into());
            r
        })
        .collect();
    event
}

fn status(answer: &Value) -> &str {
    answer["action"]["status"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no action status in {answer}"))
}

/// What a refused or failed request says: the error message, or the failed action's reason.
fn refusal(answer: &Value) -> String {
    answer["message"]
        .as_str()
        .or(answer["action"]["status"]["reason"].as_str())
        .unwrap_or_else(|| panic!("neither refused nor failed: {answer}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_kind_runs_through_the_handler_on_moto_once() {
    let w = world(301, &[]).await;
    let d = &w.a;
    let ann = upn(d, &d.ann);

    let a = w
        .submit(
            "k-add",
            json!({"kind": "add_group_member", "user": ann, "group": "Sales"}),
        )
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert!(w.is_member(&d.sales, &d.ann));
    let a = w
        .submit(
            "k-remove",
            json!({"kind": "remove_group_member", "user": d.bob, "group": d.sales}),
        )
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert!(!w.is_member(&d.sales, &d.bob));

    let a = w
        .submit(
            "k-assign",
            json!({"kind": "assign_app_role", "user": ann, "service_principal_id": d.app}),
        )
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert_eq!(d.handle.app_role_assignments(&d.ann).len(), 1);
    let a = w
        .submit(
            "k-unassign",
            json!({"kind": "remove_app_role", "user": ann, "service_principal_id": d.app}),
        )
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert!(d.handle.app_role_assignments(&d.ann).is_empty());

    let a = w
        .submit("k-revoke", json!({"kind": "revoke_sessions", "user": ann}))
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");

    let a = w
        .submit("k-block", json!({"kind": "block_sign_in", "user": ann}))
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert_eq!(d.handle.user(&d.ann).unwrap()["accountEnabled"], false);
    let a = w
        .submit("k-unblock", json!({"kind": "unblock_sign_in", "user": ann}))
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert_eq!(d.handle.user(&d.ann).unwrap()["accountEnabled"], true);
    // The mirror shows the second write of this round too (block, then unblock).
    let mirrored = w
        .aws
        .store
        .get_users(&d.tenant, std::slice::from_ref(&d.ann))
        .await
        .unwrap();
    assert_eq!(mirrored[0].user.account_enabled, Some(true));

    // Reset password: the temporary password is in the answer once, and nowhere in the table.
    let a = w
        .submit("k-reset", json!({"kind": "reset_password", "user": ann}))
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    let password = a["temporary_password"]
        .as_str()
        .expect("the password, once");
    assert!(password.len() >= 16, "a strong password");
    let again = w
        .submit("k-reset", json!({"kind": "reset_password", "user": ann}))
        .await;
    assert_eq!(again["action"]["id"], a["action"]["id"]);
    assert!(
        again.get("temporary_password").is_none(),
        "a repeat of the key does not show the password again: {again}"
    );
    w.drain().await;
    let table = w.table_text().await;
    assert!(!table.is_empty());
    assert!(
        !table.contains(password),
        "the temporary password is not stored"
    );

    let a = w
        .submit("k-delete", json!({"kind": "delete_user", "user": ann}))
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert!(d.handle.user(&d.ann).is_none(), "soft-deleted");
    let a = w
        .submit("k-restore", json!({"kind": "restore_user", "user": ann}))
        .await;
    assert_eq!(status(&a), "succeeded", "{a}");
    assert!(d.handle.user(&d.ann).is_some(), "restored");

    // The queued copies of the direct submits were acknowledged without a second write.
    w.drain().await;
    for op in [
        WriteOp::AddMember,
        WriteOp::RemoveMember,
        WriteOp::AssignAppRole,
        WriteOp::RemoveAppRole,
        WriteOp::RevokeSessions,
        WriteOp::BlockSignIn,
        WriteOp::UnblockSignIn,
        WriteOp::ResetPassword,
        WriteOp::DeleteUser,
        WriteOp::RestoreUser,
    ] {
        assert_eq!(w.writes(d, op), 1, "{op:?}: exactly one Graph write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_delivery_writes_once_per_key() {
    let w = world(302, &[]).await;
    let d = &w.a;
    let ann = upn(d, &d.ann);
    let bob = upn(d, &d.bob);
    w.enqueue(
        "q-add",
        ActionSpec::AddGroupMember {
            user: ann.clone(),
            group: "Sales".into(),
        },
        "api@host",
    )
    .await;
    w.enqueue(
        "q-revoke",
        ActionSpec::RevokeSessions { user: ann.clone() },
        "api@host",
    )
    .await;
    w.enqueue(
        "q-remove",
        ActionSpec::RemoveGroupMember {
            user: bob.clone(),
            group: "Sales".into(),
        },
        "api@host",
    )
    .await;
    // The same key again: no second action, no second message that would write.
    w.enqueue(
        "q-add",
        ActionSpec::AddGroupMember {
            user: ann,
            group: "Sales".into(),
        },
        "api@host",
    )
    .await;
    let messages = w.receive().await;
    assert!(messages.len() >= 3, "{messages:?}");
    // Delivered newest first, each twice in one batch, then the whole batch again.
    let mut shuffled: Vec<Message> = messages.iter().rev().cloned().collect();
    shuffled.extend(messages.iter().cloned());
    let failed = w.deliver(&shuffled).await;
    assert!(failed.is_empty(), "{failed:?}");
    let failed = w.deliver(&messages).await;
    assert!(failed.is_empty(), "{failed:?}");
    w.acknowledge(&messages).await;
    w.drain().await;
    assert_eq!(w.writes(d, WriteOp::AddMember), 1);
    assert_eq!(w.writes(d, WriteOp::RevokeSessions), 1);
    assert_eq!(w.writes(d, WriteOp::RemoveMember), 1);
    assert!(w.is_member(&d.sales, &d.ann));
    assert!(!w.is_member(&d.sales, &d.bob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_refuse_self_approval_run_when_approved_and_expire() {
    let w = world(303, &[ActionKind::BlockSignIn, ActionKind::ResetPassword]).await;
    let d = &w.a;
    let ann = upn(d, &d.ann);
    let pending = w
        .submit("p-block", json!({"kind": "block_sign_in", "user": ann}))
        .await;
    assert_eq!(status(&pending), "pending_approval", "{pending}");
    let id = pending["action"]["id"].as_str().unwrap().to_owned();
    w.drain().await;
    assert_eq!(w.all_writes(d), 0, "nothing runs before an approval");

    let decide = |by: &str, decision| DecideRequest {
        account: AccountId(ACCOUNT_A.into()),
        tenant: d.tenant.clone(),
        action_id: id.clone(),
        decision,
        by: by.into(),
        comment: None,
    };
    let e = decide_action(&w.deps, decide("helpdesk@host", Decision::Approve))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot approve"),
        "self-approval is refused in plain words: {e}"
    );
    let approved = decide_action(&w.deps, decide("manager@host", Decision::Approve))
        .await
        .unwrap();
    assert_eq!(approved.status.as_str(), "queued");
    w.drain().await;
    assert_eq!(w.writes(d, WriteOp::BlockSignIn), 1);
    assert_eq!(d.handle.user(&d.ann).unwrap()["accountEnabled"], false);

    // A password reset approved by someone else waits for its requester, who gets the
    // password when running it.
    let reset = w
        .submit("p-reset", json!({"kind": "reset_password", "user": ann}))
        .await;
    let reset_id = reset["action"]["id"].as_str().unwrap().to_owned();
    decide_action(
        &w.deps,
        DecideRequest {
            action_id: reset_id.clone(),
            ..decide("manager@host", Decision::Approve)
        },
    )
    .await
    .unwrap();
    w.drain().await;
    assert_eq!(w.writes(d, WriteOp::ResetPassword), 0);
    let ran = w
        .invoke(
            json!({"op": "run", "account_id": ACCOUNT_A, "tenant_id": d.tenant,
                       "action_id": reset_id, "runner": "helpdesk@host"}),
        )
        .await;
    assert_eq!(status(&ran), "succeeded", "{ran}");
    assert!(ran["temporary_password"].is_string());
    assert_eq!(w.writes(d, WriteOp::ResetPassword), 1);

    // Nobody decides in time: the tick expires it, and a late approval is refused.
    let late = w
        .submit("p-late", json!({"kind": "block_sign_in", "user": d.bob}))
        .await;
    let late_id = late["action"]["id"].as_str().unwrap().to_owned();
    w.clock.advance(chrono::Duration::hours(73));
    let report = w.tick().await;
    assert_eq!(report["approvals_expired"], 1, "{report}");
    let e = decide_action(
        &w.deps,
        DecideRequest {
            action_id: late_id,
            ..decide("manager@host", Decision::Approve)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
    w.drain().await;
    assert_eq!(d.handle.user(&d.bob).unwrap()["accountEnabled"], true);
    assert_eq!(w.writes(d, WriteOp::BlockSignIn), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_dated_offboarding_runs_when_the_clock_reaches_its_date() {
    let w = world(304, &[]).await;
    let d = &w.a;
    let bob = upn(d, &d.bob);
    let assigned = w
        .submit(
            "o-assign",
            json!({"kind": "assign_app_role", "user": bob, "service_principal_id": d.app}),
        )
        .await;
    assert_eq!(status(&assigned), "succeeded", "{assigned}");
    w.drain().await;
    let end = w.clock.now() + chrono::Duration::days(3);
    let wf = start_workflow(
        &w.deps,
        StartWorkflow {
            account: AccountId(ACCOUNT_A.into()),
            tenant: d.tenant.clone(),
            template: Template::Offboarding,
            params: WorkflowParams {
                user: bob,
                groups: vec![],
                apps: vec![],
                at: Some(end),
            },
            requested_by: "hr@host".into(),
            origin: WorkflowOrigin::Api,
            key: Some("offboard-bob".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(wf.status.as_str(), "scheduled");
    let before = w.all_writes(d);

    // A day before the date nothing happens.
    w.clock.advance(chrono::Duration::days(2));
    assert_eq!(w.tick().await["workflows_advanced"], 0);
    w.drain().await;
    assert_eq!(w.all_writes(d), before);

    w.clock
        .advance(chrono::Duration::days(1) + chrono::Duration::minutes(5));
    assert_eq!(w.tick().await["workflows_advanced"], 1);
    for _ in 0..6 {
        w.drain().await;
        w.tick().await;
    }
    let done = get_workflow(&w.deps, &AccountId(ACCOUNT_A.into()), &d.tenant, &wf.id)
        .await
        .unwrap();
    assert_eq!(done.status.as_str(), "completed", "{done:?}");
    assert_eq!(w.writes(d, WriteOp::RevokeSessions), 1);
    assert_eq!(w.writes(d, WriteOp::RemoveAppRole), 1);
    assert_eq!(w.writes(d, WriteOp::RemoveMember), 1);
    assert_eq!(w.writes(d, WriteOp::BlockSignIn), 1);
    assert!(d.handle.app_role_assignments(&d.bob).is_empty());
    assert!(!w.is_member(&d.sales, &d.bob));
    assert_eq!(d.handle.user(&d.bob).unwrap()["accountEnabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_fail_clearly_and_write_nothing() {
    let w = world(305, &[]).await;
    let d = &w.a;
    let ann = upn(d, &d.ann);
    let cases = [
        (
            json!({"kind": "revoke_sessions", "user": "nobody@t305.example"}),
            "no user nobody@t305.example",
        ),
        (
            json!({"kind": "add_group_member", "user": ann, "group": "Marketing"}),
            "no group Marketing",
        ),
        (
            json!({"kind": "add_group_member", "user": ann, "group": "Project"}),
            "matches 2 groups",
        ),
        (
            json!({"kind": "add_group_member", "user": ann, "group": "All staff"}),
            "cannot be changed by this app",
        ),
    ];
    for (i, (action, expected)) in cases.iter().enumerate() {
        let answer = w.submit(&format!("bad-{i}"), action.clone()).await;
        let text = refusal(&answer);
        assert!(text.contains(expected), "{action}: {text}");
        assert!(!text.contains("Insufficient privileges"), "{text}");
    }
    // The ambiguous name lists its candidates.
    let answer = w
        .submit(
            "bad-ambiguous",
            json!({"kind": "add_group_member", "user": ann, "group": "Project"}),
        )
        .await;
    let text = refusal(&answer);
    for id in &d.projects {
        assert!(
            text.contains(id.as_str()),
            "the candidates are listed: {text}"
        );
    }
    w.drain().await;
    assert_eq!(w.all_writes(d), 0, "nothing was sent to Graph");

    // A deleted user (deleted through an action: the mirror shows it at once) can only be
    // restored.
    let deleted = w
        .submit("bad-delete", json!({"kind": "delete_user", "user": ann}))
        .await;
    assert_eq!(status(&deleted), "succeeded", "{deleted}");
    let answer = w
        .submit("bad-block", json!({"kind": "block_sign_in", "user": ann}))
        .await;
    assert!(refusal(&answer).contains("restore it first"), "{answer}");
    w.drain().await;
    assert_eq!(w.all_writes(d), 1, "only the delete");

    // A missing permission names it and how to grant it, before any Graph call.
    let narrow = directory(&w.emulator, &w.aws, 306, ACCOUNT_A, &ActionKind::ALL, &[]).await;
    narrow.handle.set_granted_permissions(
        DEFAULT_APP_PERMISSIONS
            .iter()
            .copied()
            .filter(|p| *p != "GroupMember.ReadWrite.All"),
    );
    narrow.handle.expire_tokens();
    let deps = deps(&w.emulator, &w.aws, w.clock.clone());
    let answer = serde_json::to_value(
        handle(
            &deps,
            submit_request(
                ACCOUNT_A,
                &narrow,
                "perm",
                json!({"kind": "add_group_member", "user": narrow.ann, "group": "Sales"}),
            ),
        )
        .await,
    )
    .unwrap();
    let text = refusal(&answer);
    assert!(
        text.contains("GroupMember.ReadWrite.All") && text.contains("grant"),
        "{text}"
    );
    assert_eq!(w.all_writes(&narrow), 0);
    assert!(
        !narrow
            .handle
            .members(&narrow.sales)
            .unwrap_or_default()
            .iter()
            .any(|(id, _)| *id == narrow.ann)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_a_cannot_act_on_account_b_tenant() {
    let w = world(307, &[]).await;
    let b = directory(&w.emulator, &w.aws, 308, ACCOUNT_B, &ActionKind::ALL, &[]).await;
    let answer = w
        .invoke(submit_request(
            ACCOUNT_A,
            &b,
            "cross",
            json!({"kind": "block_sign_in", "user": b.ann}),
        ))
        .await;
    assert_eq!(answer["error"], "not_found", "{answer}");
    // Account B's own action, run by account A: the same answer.
    let own = w
        .invoke(submit_request(
            ACCOUNT_B,
            &b,
            "own",
            json!({"kind": "revoke_sessions", "user": b.ann}),
        ))
        .await;
    assert_eq!(status(&own), "succeeded", "{own}");
    let answer = w
        .invoke(
            json!({"op": "run", "account_id": ACCOUNT_A, "tenant_id": b.tenant,
                       "action_id": own["action"]["id"], "runner": "intruder@host"}),
        )
        .await;
    assert_eq!(answer["error"], "not_found", "{answer}");
    w.drain().await;
    assert_eq!(w.writes(&b, WriteOp::BlockSignIn), 0);
    assert_eq!(w.writes(&b, WriteOp::RevokeSessions), 1);
    assert_eq!(b.handle.user(&b.ann).unwrap()["accountEnabled"], true);
}
