//! Each Lambda function runs under exactly its template policy. The policies come from
//! infra/template.yaml after the SAM transform (scripts/sam_template.py), every reference
//! resolved to the names used here. Each function gets an IAM user on a moto server of this
//! test's own that enforces IAM, and its handler runs with SDK clients signed by that user's
//! keys: connect (consent, list, show, reconnect, disconnect), then the scheduler, fetch and
//! reconcile over three sync rounds of an emulated directory (a full read, changes committed by
//! fetch when reconcile was faster, changes committed by reconcile), with a daily-scheduled and
//! a reauthorization-needing connection beside the hourly one; then the actions function: a
//! direct submit run at once, a request that waits for approval, a future-dated offboarding
//! workflow started by the host product, the tick that runs it when due (and expires the
//! overdue approval), and the queued batches of its steps; then the HR webhooks functions: the
//! route accepts a signed HiBob termination, and the queue function processes it (reading the
//! employee from a HiBob emulator with the endpoint's API credential) into an offboarding;
//! then the publisher, fed the table's stream of everything the others wrote (its events, and
//! the outbound webhook deliveries of the endpoint the admin API created); last the outbound
//! webhook function, woken by the publisher's message, POSTing to a receiver on 127.0.0.1.
//!
//! Every AWS call each function makes is recorded (an SDK interceptor), including the calls
//! whose errors a handler logs and swallows. Then, per function:
//! 1. no call was refused (moto answers 401/403),
//! 2. every call is allowed by the template's statements with its exact resource: moto checks
//!    DynamoDB, Secrets Manager and EventBridge actions against `*` only, so the resources are
//!    checked here (table, `index/gsi1`, each secret name, the bus, each queue),
//! 3. every grant of the template is used by some call (no statement that does nothing),
//! 4. every resource is exact: no wildcard but a secret's random suffix (`-??????`) and the
//!    tenant id in a tenant secret's name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{
    ConfigBag, Credentials, Intercept, RuntimeComponents, SharedCredentialsProvider,
};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use entra_sync_aws::{
    DynamoStore, EventBridgeSink, SecretsManagerVault, SqsActionQueue, SqsFetchRequests,
    SqsPageQueue, secrets,
};
use entra_sync_core::actions::budget::WriteBudget;
use entra_sync_core::actions::kind::ActionKind;
use entra_sync_core::actions::workflow::{Template, WorkflowOrigin, WorkflowParams};
use entra_sync_core::committed::FromCommitsOnly;
use entra_sync_core::memory::ManualClock;
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::ports::Clock;
use entra_sync_core::ports::{
    ConnectionStore, RunStore, SecretVault, SettingsStore, SystemClock, WorkQueue,
};
use entra_sync_core::run::RunStatus;
use entra_sync_core::services::actions::{
    ActionDeps, ActionsConfig, StartWorkflow, get_workflow, start_workflow,
};
use entra_sync_core::services::claim::Claims;
use entra_sync_core::services::{ConnectDeps, ScheduleDeps};
use entra_sync_core::settings::{ConnectionSettings, Schedule};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{Emulator, EmulatorConfig, GroupKind, NewGroup, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, GraphTenantDirectory, RetryPolicy};
use entra_sync_http::connect::{ConnectConfig, ConnectState, router};
use entra_sync_tests::moto::EnforcingMoto;
use entra_sync_tests::template::{self, ACCOUNT, Function, REGION, STAGE};
use serde_json::{Value, json};
use tower::ServiceExt;

const FUNCTIONS: [&str; 10] = [
    "ConnectFunction",
    "SchedulerFunction",
    "FetchFunction",
    "ReconcileFunction",
    "ActionsFunction",
    "WebhooksRouteFunction",
    "WebhooksQueueFunction",
    "ApiFunction",
    "PublisherFunction",
    "OutboundFunction",
];

// ---------------------------------------------------------------------------------------------
// What each function called

/// One AWS call as IAM authorizes it.
#[derive(Clone, Debug)]
struct Call {
    /// The IAM action (`sqs:SendMessage` for SendMessageBatch, as AWS authorizes it).
    action: String,
    /// The SDK operation (`SendMessageBatch`).
    operation: String,
    /// The resources it acts on, as ARNs.
    resources: Vec<String>,
    /// The HTTP status of the answer.
    status: Option<u16>,
}

#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
}

/// The index of the call in flight, kept in the operation's config bag until its answer.
#[derive(Clone, Debug)]
struct CallIndex(std::ops::Range<usize>);
impl Storable for CallIndex {
    type Storer = StoreReplace<Self>;
}

impl Recorder {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }
}

fn table_arn(name: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
}

/// The ARN IAM sees for a secret named `id`: Secrets Manager appends `-` and six random
/// characters to the name.
fn secret_arn(id: &str) -> String {
    if id.starts_with("arn:") {
        id.to_owned()
    } else {
        format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{id}-Ab12Cd")
    }
}

/// The resources of a request, from its JSON body (all four services speak JSON).
fn resources_of(service: &str, operation: &str, body: &Value) -> Vec<String> {
    let s = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    match service {
        "dynamodb" => match operation {
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .map(|m| m.keys().map(|t| table_arn(t)).collect())
                .unwrap_or_default(),
            "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|i| i.as_object().into_iter().flat_map(|o| o.values()))
                .filter_map(|op| op["TableName"].as_str().map(table_arn))
                .collect(),
            _ => match body["IndexName"].as_str() {
                Some(index) => vec![format!("{}/index/{index}", table_arn(&s("TableName")))],
                None => vec![table_arn(&s("TableName"))],
            },
        },
        "sqs" => {
            let url = s("QueueUrl");
            let name = url.rsplit('/').next().unwrap_or_default();
            vec![format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]
        }
        "secretsmanager" => {
            let id = if operation == "CreateSecret" {
                s("Name")
            } else {
                s("SecretId")
            };
            vec![secret_arn(&id)]
        }
        "events" => {
            let buses: BTreeSet<String> = body["Entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let bus = e["EventBusName"].as_str().unwrap_or("default");
                    if bus.starts_with("arn:") {
                        bus.to_owned()
                    } else {
                        format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}")
                    }
                })
                .collect();
            buses.into_iter().collect()
        }
        other => panic!("no resource rule for {other}"),
    }
}

/// The IAM action AWS checks for an operation (the batch forms of SQS are authorized as the
/// single-message actions).
fn action_of(service: &str, operation: &str) -> String {
    let op = match (service, operation) {
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        (_, op) => op,
    };
    format!("{service}:{op}")
}

/// One recorder per service client of one function (they share the list).
#[derive(Clone, Debug)]
struct ServiceRecorder {
    service: &'static str,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Intercept for ServiceRecorder {
    fn name(&self) -> &'static str {
        "iam-test-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let resources = resources_of(self.service, &operation, &body);
        // A transaction is authorized as the actions of its items (PutItem, UpdateItem, ...).
        let actions: Vec<String> = match (self.service, operation.as_str()) {
            ("dynamodb", "TransactWriteItems") => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_object()?.keys().next().cloned())
                .map(|kind| match kind.as_str() {
                    "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
                    k => format!("dynamodb:{k}Item"),
                })
                .collect(),
            _ => vec![action_of(self.service, &operation)],
        };
        let mut calls = self.calls.lock().unwrap();
        let first = calls.len();
        for action in actions {
            calls.push(Call {
                action,
                resources: resources.clone(),
                operation: operation.clone(),
                status: None,
            });
        }
        cfg.interceptor_state()
            .store_put(CallIndex(first..calls.len()));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Some(CallIndex(range)) = cfg.load::<CallIndex>() {
            let status = context.response().status().as_u16();
            let mut calls = self.calls.lock().unwrap();
            for i in range.clone() {
                if let Some(c) = calls.get_mut(i) {
                    c.status = Some(status);
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// IAM users on moto

/// An IAM Query API call to moto, signed (SigV4) with `creds`. Returns the XML answer.
async fn iam(moto: &str, creds: &Credentials, params: &[(&str, &str)]) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.append_pair("Version", "2010-05-08");
    let body = form.finish();
    let url = format!("{moto}/");
    let host = moto.trim_start_matches("http://").to_owned();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("iam")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("content-type", content_type), ("host", host.as_str())];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "IAM {params:?}: {status} {text}");
    text
}

fn xml_field<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).expect(tag);
    let end = xml[start..].find("</").expect(tag) + start;
    &xml[start..end]
}

/// A user with one inline policy, and its access key.
async fn user(moto: &str, name: &str, policy: &Value) -> Credentials {
    let setup = Credentials::new("setup", "setup", None, None, "iam-test");
    iam(
        moto,
        &setup,
        &[("Action", "CreateUser"), ("UserName", name)],
    )
    .await;
    iam(
        moto,
        &setup,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "template"),
            ("PolicyDocument", &policy.to_string()),
        ],
    )
    .await;
    let key = iam(
        moto,
        &setup,
        &[("Action", "CreateAccessKey"), ("UserName", name)],
    )
    .await;
    Credentials::new(
        xml_field(&key, "AccessKeyId"),
        xml_field(&key, "SecretAccessKey"),
        None,
        None,
        "iam-test",
    )
}

/// The function's template statements as moto can check them: moto compares DynamoDB,
/// Secrets Manager and EventBridge actions with resource `*` (so those statements get `*`;
/// their resources are checked against the calls instead), and names SendMessageBatch
/// `sqs:SendMessageBatch` (AWS authorizes it as `sqs:SendMessage`). SQS statements keep their
/// queue ARNs: moto checks those.
fn moto_policy(f: &Function) -> Value {
    let statements: Vec<Value> = f
        .statements
        .iter()
        .map(|s| {
            let services: BTreeSet<&str> = s
                .actions
                .iter()
                .map(|a| a.split(':').next().unwrap_or_default())
                .collect();
            assert_eq!(services.len(), 1, "one service per statement: {s:?}");
            let mut actions = s.actions.clone();
            if actions.iter().any(|a| a == "sqs:SendMessage") {
                actions.push("sqs:SendMessageBatch".into());
            }
            // moto checks a transaction as `dynamodb:TransactWriteItems`; AWS checks the
            // actions of its items, which the statement grants (and the calls are checked
            // against).
            if actions
                .iter()
                .any(|a| a == "dynamodb:UpdateItem" || a == "dynamodb:PutItem")
            {
                actions.push("dynamodb:TransactWriteItems".into());
            }
            let resources = if services.contains("sqs") {
                json!(s.resources)
            } else {
                json!("*")
            };
            json!({"Effect": "Allow", "Action": actions, "Resource": resources})
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

// ---------------------------------------------------------------------------------------------
// Clients

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    secrets: aws_sdk_secretsmanager::Client,
    events: aws_sdk_eventbridge::Client,
    /// The table's stream (the administrator's, as Lambda's event source mapping reads it).
    streams: aws_sdk_dynamodbstreams::Client,
}

async fn clients(moto: &str, creds: Credentials, recorder: &Recorder) -> Clients {
    let sdk = entra_sync_aws::sdk_config_for_endpoint(moto)
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build();
    let rec = |service| ServiceRecorder {
        service,
        calls: recorder.calls.clone(),
    };
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(rec("dynamodb"))
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(rec("sqs"))
                .build(),
        ),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk)
                .interceptor(rec("secretsmanager"))
                .build(),
        ),
        events: aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&sdk)
                .interceptor(rec("events"))
                .build(),
        ),
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
    }
}

// The names the template gives the resources in stage `iamtest`.
fn table_name() -> String {
    format!("entra-sync-{STAGE}")
}
fn secret_prefix() -> String {
    format!("entra-sync/{STAGE}/")
}

fn graph_config(emulator: &Emulator, secret: entra_sync_core::ports::Secret) -> GraphConfig {
    let mut gc = GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url()).unwrap(),
        url::Url::parse(&emulator.login_base_url()).unwrap(),
        emulator.app().client_id.clone(),
        secret,
    );
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    gc
}

// ---------------------------------------------------------------------------------------------
// Lambda's side: the event source mapping receives, hands over a batch, deletes what succeeded

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, visibility: i32) -> Vec<Message> {
    let mut out = Vec::new();
    for _ in 0..200 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
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

fn as_event(messages: &[Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            if let Some(group) = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            {
                r.attributes
                    .insert("MessageGroupId".to_owned(), group.clone());
            }
            r
        })
        .collect();
    event
}

async fn acknowledge(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[Message]) {
    for m in messages {
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle.clone().unwrap())
            .send()
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Fail at once, naming the call, when moto refused one of `name`'s calls so far (a handler
/// may have logged the error and carried on).
fn assert_none_refused(name: &str, recorder: &Recorder) {
    let refused: Vec<String> = recorder
        .calls()
        .iter()
        .filter(|c| matches!(c.status, Some(401 | 403)))
        .map(|c| format!("{} ({}) on {:?}", c.action, c.operation, c.resources))
        .collect();
    assert!(
        refused.is_empty(),
        "{name} was refused, under its template policy: {}",
        refused.join(", ")
    );
}

/// What is wrong with one function's calls against its template statements.
fn problems(name: &str, f: &Function, calls: &[Call]) -> Vec<String> {
    let mut out = Vec::new();
    assert!(!calls.is_empty(), "{name} made no AWS call");
    for c in calls {
        if matches!(c.status, Some(401 | 403)) {
            out.push(format!(
                "{name}: {} on {:?} was refused ({}): the template does not grant it",
                c.action,
                c.resources,
                c.status.unwrap_or_default()
            ));
        }
        for r in &c.resources {
            if !f.allows(&c.action, r) {
                out.push(format!(
                    "{name}: {} ({}) on {r} is not allowed by the template's statements",
                    c.action, c.operation
                ));
            }
        }
    }
    for s in &f.statements {
        for a in &s.actions {
            for r in &s.resources {
                let used = calls.iter().any(|c| {
                    template::iam_match(a, &c.action, true)
                        && c.resources
                            .iter()
                            .any(|cr| template::iam_match(r, cr, false))
                });
                if !used {
                    out.push(format!("{name}: the grant {a} on {r} is used by no call"));
                }
                let exact = if r.contains(":secretsmanager:") {
                    // Per-tenant and per-endpoint secrets: the tenant, or the account and
                    // source of the endpoint (and the secret's generation), vary.
                    r.trim_end_matches("-??????")
                        .replace("/tenants/*/", "/tenants/TENANT/")
                        .replace("/webhook/*/signing/*", "/webhook/ENDPOINT/signing/N")
                        .replace("/webhook/*/api", "/webhook/ENDPOINT/api")
                        .replace(
                            "/outbound/*/signing/*",
                            "/outbound/ACCOUNT/ENDPOINT/signing/N",
                        )
                } else {
                    r.clone()
                };
                if exact.contains(['*', '?']) {
                    out.push(format!(
                        "{name}: the resource {r} of {a} is a pattern, not the resource used"
                    ));
                }
            }
        }
    }
    out
}

fn connection(tenant: &TenantId, status: ConnectionStatus) -> Connection {
    Connection {
        tenant_id: tenant.clone(),
        account_id: AccountId(ACCOUNT_ID.into()),
        label: tenant.as_str().into(),
        tenant_name: None,
        verified_domains: vec![],
        status,
        connected_at: DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        granted_permissions: Default::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// The world: moto enforcing IAM, one user per function, the operator's resources

const ACCOUNT_ID: &str = "acct-iam";

struct World {
    _moto: EnforcingMoto,
    emulator: Emulator,
    /// The administrator: the operator, and Lambda's event source mappings.
    admin: Clients,
    admin_store: Arc<DynamoStore>,
    /// Each function's clients, signed with its user's keys, and what they called.
    wired: std::collections::BTreeMap<&'static str, (Clients, Recorder)>,
    fetch_queue: String,
    page_queue: String,
    action_queue: String,
    delivery_queue: String,
    /// The outbound webhook function's wake-up queue.
    outbound_queue: String,
    /// The outbound webhook endpoint's receiver.
    receiver: entra_sync_tests::receiver::Receiver,
    bus: String,
}

async fn world() -> World {
    let moto = EnforcingMoto::start();
    let url = moto.url();
    // Set-up with enforcement off: one IAM user per function with its policy as moto can
    // check it, and an administrator.
    moto.enforce(false);
    let admin_creds = user(
        &url,
        "administrator",
        &json!({"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    .await;
    let mut wired = std::collections::BTreeMap::new();
    for name in FUNCTIONS {
        let creds = user(&url, name, &moto_policy(template::function(name))).await;
        let recorder = Recorder::default();
        wired.insert(name, (clients(&url, creds, &recorder).await, recorder));
    }
    moto.enforce(true);

    // Enforcement is on and the recorder sees a refusal: an unknown key, and a call outside
    // the scheduler's policy.
    let probe = Recorder::default();
    let stranger = clients(
        &url,
        Credentials::new("testing", "testing", None, None, "iam-test"),
        &probe,
    )
    .await;
    assert!(stranger.dynamodb.list_tables().send().await.is_err());
    let (scheduler, scheduler_calls) = &wired["SchedulerFunction"];
    assert!(scheduler.dynamodb.list_tables().send().await.is_err());
    let statuses: Vec<Option<u16>> = probe
        .calls()
        .iter()
        .chain(scheduler_calls.calls().iter())
        .map(|c| c.status)
        .collect();
    assert_eq!(
        statuses,
        vec![Some(403), Some(403)],
        "moto enforces IAM and the recorder sees its refusals"
    );
    scheduler_calls.clear();

    // The operator's side: the table, the queues, the bus, the app's client secret.
    let admin = clients(&url, admin_creds, &Recorder::default()).await;
    let admin_store = Arc::new(DynamoStore::new(admin.dynamodb.clone(), table_name()));
    admin_store.create_table().await.unwrap();
    let mut queues = Vec::new();
    for name in ["fetch", "pages"] {
        let out = admin
            .sqs
            .create_queue()
            .queue_name(format!("entra-sync-{STAGE}-{name}"))
            .send()
            .await
            .unwrap();
        queues.push(out.queue_url.unwrap());
    }
    let bus = format!("entra-sync-{STAGE}");
    admin
        .events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let emulator = Emulator::start(EmulatorConfig {
        user_page_size: 17,
        group_page_size: 5,
        member_slice: 10,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    admin
        .secrets
        .create_secret()
        .name(format!("{}app/client-secret", secret_prefix()))
        .secret_string(emulator.app().client_secret.clone())
        .send()
        .await
        .unwrap();
    // The console's session key, as the template generates it.
    admin
        .secrets
        .create_secret()
        .name(format!(
            "{}{}",
            secret_prefix(),
            entra_sync_core::ports::CONSOLE_SESSION_KEY
        ))
        .secret_string("iam-walk-console-key-".repeat(3))
        .send()
        .await
        .unwrap();
    let page_queue = queues.pop().unwrap();
    let fetch_queue = queues.pop().unwrap();
    let action_queue = admin
        .sqs
        .create_queue()
        .queue_name(format!("entra-sync-{STAGE}-actions.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let delivery_queue = admin
        .sqs
        .create_queue()
        .queue_name(format!("entra-sync-{STAGE}-webhooks.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let outbound_queue = admin
        .sqs
        .create_queue()
        .queue_name(format!("entra-sync-{STAGE}-outbound"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    World {
        _moto: moto,
        emulator,
        admin,
        admin_store,
        wired,
        fetch_queue,
        page_queue,
        action_queue,
        delivery_queue,
        outbound_queue,
        receiver: entra_sync_tests::receiver::Receiver::start(204).await,
        bus,
    }
}

impl World {
    fn clients(&self, name: &str) -> &Clients {
        &self.wired[name].0
    }

    fn recorder(&self, name: &str) -> &Recorder {
        &self.wired[name].1
    }

    fn store(&self, name: &str) -> Arc<DynamoStore> {
        Arc::new(DynamoStore::new(
            self.clients(name).dynamodb.clone(),
            table_name(),
        ))
    }

    /// The app's Graph credentials as a function reads them at cold start.
    async fn graph_config(&self, name: &str) -> GraphConfig {
        let vault = SecretsManagerVault::new(
            self.clients(name).secrets.clone(),
            secret_prefix(),
            secrets::DEFAULT_TTL,
        );
        graph_config(
            &self.emulator,
            vault.get_secret("app/client-secret").await.unwrap(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Connect, as its main.rs wires it, called as API Gateway would

struct Connect {
    routes: axum::Router,
    recorder: Recorder,
    /// The function whose policy the calls run under.
    name: &'static str,
}

async fn connect(w: &World) -> Connect {
    let name = "ConnectFunction";
    let gc = w.graph_config(name).await;
    let store = w.store(name);
    let routes = router(ConnectState {
        deps: ConnectDeps {
            consent_states: store.clone(),
            connections: store,
            directory: Arc::new(GraphTenantDirectory(GraphClient::new(gc.clone()).unwrap())),
            vault: Arc::new(SecretsManagerVault::new(
                w.clients(name).secrets.clone(),
                secret_prefix(),
                secrets::DEFAULT_TTL,
            )),
            clock: Arc::new(SystemClock),
        },
        config: Arc::new(ConnectConfig {
            login_base_url: gc.login_base_url.clone(),
            client_id: gc.client_id.clone(),
            redirect_uri: Some(
                url::Url::parse("https://connect.example.com/connect/callback").unwrap(),
            ),
            scope: gc.scope(),
            state_ttl: chrono::Duration::minutes(10),
            return_url: None,
        }),
    });
    Connect {
        routes,
        recorder: w.recorder(name).clone(),
        name,
    }
}

impl Connect {
    async fn call(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.routes.clone().oneshot(req).await.unwrap();
        assert_none_refused(self.name, &self.recorder);
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> (StatusCode, String) {
        self.call(
            Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// A POST carrying an `Idempotency-Key` (the admin API's action and workflow routes).
    async fn post_keyed(&self, path: &str, key: &str, body: Value) -> (StatusCode, String) {
        self.call(
            Request::post(path)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str) -> (StatusCode, String) {
        self.call(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(json!({"label": "Contoso"}).to_string()))
                .unwrap(),
        )
        .await
    }

    /// Start a consent, walk the emulator's consent page as the admin's browser does, and
    /// hand the redirect to the callback route.
    async fn consent(&self) {
        let (status, body) = self
            .post(&format!("/accounts/{ACCOUNT_ID}/connections/start"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let link: Value = serde_json::from_str(&body).unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http
            .get(link["consent_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
        let back = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let (status, body) = self
            .get(&format!("{}?{}", back.path(), back.query().unwrap_or("")))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// The admin API, as its main.rs wires it; the host product's backend calls it (IAM: every
// account, which API Gateway decided before the function runs)

struct Backend;

impl entra_sync_http::api::auth::Authenticator for Backend {
    fn authenticate(
        &self,
        _request: &axum::extract::Request,
    ) -> Result<entra_sync_http::api::auth::Caller, entra_sync_http::api::auth::AuthError> {
        Ok(entra_sync_http::api::auth::Caller::AllAccounts)
    }
}

async fn admin_api(w: &World) -> Connect {
    let name = "ApiFunction";
    let gc = w.graph_config(name).await;
    let store = w.store(name);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let actions = action_deps(
        w,
        store.clone(),
        &w.clients(name).sqs,
        GraphClient::new(gc.clone()).unwrap(),
        Arc::new(ManualClock::new(Utc::now())),
    );
    let api_vault = Arc::new(SecretsManagerVault::new(
        w.clients(name).secrets.clone(),
        secret_prefix(),
        secrets::DEFAULT_TTL,
    ));
    let hr = entra_sync_http::api::hr::HrApi {
        endpoints: entra_sync_core::services::webhooks::EndpointDeps {
            connections: store.clone(),
            endpoints: store.clone(),
            deliveries: store.clone(),
            vault: api_vault.clone(),
            clock: clock.clone(),
            config: Default::default(),
        },
        process: entra_sync_core::services::webhooks::ProcessDeps {
            actions: actions.clone(),
            endpoints: store.clone(),
            deliveries: store.clone(),
            reviews: store.clone(),
            people: store.clone(),
            employees: store.clone(),
            hr_api: Arc::new(entra_sync_hr::HiBobClient::new(Default::default()).unwrap()),
            vault: api_vault.clone(),
        },
    };
    // As the function's main builds them: the key from Secrets Manager, tickets in the table.
    let console =
        entra_sync_api::console_sessions(api_vault.as_ref(), store.clone(), clock.clone(), 8)
            .await
            .unwrap();
    let state = entra_sync_http::api::ApiState {
        connect: ConnectDeps {
            consent_states: store.clone(),
            connections: store.clone(),
            directory: Arc::new(GraphTenantDirectory(GraphClient::new(gc.clone()).unwrap())),
            vault: Arc::new(SecretsManagerVault::new(
                w.clients(name).secrets.clone(),
                secret_prefix(),
                secrets::DEFAULT_TTL,
            )),
            clock: clock.clone(),
        },
        connect_config: Arc::new(ConnectConfig {
            login_base_url: gc.login_base_url.clone(),
            client_id: gc.client_id.clone(),
            redirect_uri: Some(
                url::Url::parse("https://connect.example.com/connect/callback").unwrap(),
            ),
            scope: gc.scope(),
            state_ttl: chrono::Duration::minutes(10),
            return_url: None,
        }),
        project: entra_sync_core::services::ProjectDeps::from_store(&store, clock.clone()),
        sync: entra_sync_core::services::sync_now::SyncNowDeps {
            connections: store.clone(),
            runs: store,
            requests: Arc::new(SqsFetchRequests::new(
                w.clients(name).sqs.clone(),
                w.fetch_queue.clone(),
            )),
            clock,
        },
        actions,
        hr,
        // As the function's main wires them, but with the loopback test setting (the
        // receiver is on 127.0.0.1).
        outbound: Some(entra_sync_http::api::outbound::OutboundApi {
            store: w.store(name),
            vault: api_vault.clone(),
            resolver: Arc::new(entra_sync_outbound::SystemResolver),
            policy: outbound_policy(),
            clock: Arc::new(SystemClock),
        }),
        auth: Arc::new(Backend),
        console: Arc::new(console),
    };
    // The function's app, with the test's caller in place of API Gateway's authorizer.
    let pages = entra_sync_http::console::routes(entra_sync_http::console::ConsoleState {
        api: state.clone(),
        login: None,
        default_account: entra_sync_core::model::AccountId(String::new()),
        secure_cookie: true,
    });
    let routes = entra_sync_http::app(entra_sync_http::api::routes(state).merge(pages));
    Connect {
        routes,
        recorder: w.recorder(name).clone(),
        name,
    }
}

/// The host product's backend through the admin API: every kind of route it uses on a synced
/// directory (reads, settings changes, a preview and an import, actions with an approval and a
/// password reset run through the API, a workflow, a sync now, a consent start).
async fn use_admin_api(w: &World, tenant: &TenantId, other: &TenantId, team: &str) {
    let api = admin_api(w).await;
    let base = format!("/v1/accounts/{ACCOUNT_ID}/connections");
    let at = format!("{base}/{tenant}");
    for path in [
        base.clone(),
        at.clone(),
        format!("{at}/settings"),
        format!("{at}/runs?limit=2"),
        format!("{at}/users?limit=5&status=enabled"),
        format!("{at}/groups?limit=5"),
        format!("/v1/accounts/{ACCOUNT_ID}/host-users?limit=5"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, runs) = api.get(&format!("{at}/runs?limit=1")).await;
    let runs: Value = serde_json::from_str(&runs).unwrap();
    let run = runs["items"][0]["run_id"].as_str().unwrap().to_owned();
    let (status, body) = api.get(&format!("{at}/runs/{run}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let patch = json!({"breaker": {"max_percent": 30}});
    let (status, body) = api
        .send("POST", &format!("{at}/settings/validate"), patch.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.send("PATCH", &format!("{at}/settings"), patch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for route in ["preview", "import"] {
        let (status, body) = api
            .send(
                "POST",
                &format!("{at}/{route}"),
                json!({"mode": "only_updated"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{route}: {body}");
    }
    let (status, body) = api
        .send(
            "POST",
            &format!("/v1/accounts/{ACCOUNT_ID}/sign-in-lookup"),
            json!({"email": "nobody@contoso.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown email: {body}");
    let (status, body) = api.send("POST", &format!("{at}/sync"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = api.send("POST", &base, json!({"label": "Fabrikam"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .send("POST", &format!("{at}/reconnect"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Settings replaced whole, with the version it read (If-Match).
    let (status, body) = api.get(&format!("{at}/settings")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let current: Value = serde_json::from_str(&body).unwrap();
    let (status, body) = api
        .call(
            Request::put(format!("{at}/settings"))
                .header("content-type", "application/json")
                .header("if-match", format!("\"{}\"", current["version"]))
                .body(Body::from(current["settings"].to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api_actions(w, &api, tenant, team).await;
    api_hr_endpoints(&api, tenant).await;
    api_outbound_endpoints(w, &api).await;
    api_held_runs_and_activate(w, &api, tenant).await;
    console_on_aws(&api, tenant).await;
    // A host user deleted, and another connection disconnected (its secrets go).
    let (_, users) = api
        .get(&format!("/v1/accounts/{ACCOUNT_ID}/host-users?limit=1"))
        .await;
    let users: Value = serde_json::from_str(&users).unwrap();
    let local_id = users["items"][0]["local_id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .send(
            "DELETE",
            &format!("/v1/accounts/{ACCOUNT_ID}/host-users/{local_id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .send("POST", &format!("{base}/{other}/disconnect"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The write half through the admin API (actions were enabled by [`act`]): submit with a key,
/// the audit trail, an approval and a password reset run by its requester (the API function
/// calls Graph itself), a cancel, a workflow; then the actions function runs what was queued.
async fn api_actions(w: &World, api: &Connect, tenant: &TenantId, team: &str) {
    let handle = w.emulator.tenant(tenant.as_str()).unwrap();
    let user = handle.user_ids()[6].clone();
    let upn = handle.user(&user).unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();
    let actions = format!("/v1/accounts/{ACCOUNT_ID}/connections/{tenant}/actions");
    let parse = |body: &str| serde_json::from_str::<Value>(body).unwrap();
    let add = json!({"requested_by": "helpdesk@host",
                     "action": {"kind": "add_group_member", "user": upn, "group": team}});
    let (status, body) = api.post_keyed(&actions, "api-add", add.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = parse(&body)["action"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api.post_keyed(&actions, "api-add", add).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the same key again: {body}");
    for path in [
        actions.clone(),
        format!("{actions}?status=queued&limit=5"),
        format!("{actions}?user_id={user}"),
        format!("{actions}/{id}"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // A password reset (approval required): approved by someone else, run by its requester
    // (the app holds the directory role a password reset needs, as the docs ask).
    handle.set_user_admin_role(true);
    let reset = json!({"requested_by": "helpdesk@host",
                       "action": {"kind": "reset_password", "user": upn}});
    let (status, body) = api.post_keyed(&actions, "api-reset", reset).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let reset_id = parse(&body)["action"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .send(
            "POST",
            &format!("{actions}/{reset_id}/approve"),
            json!({"by": "manager@host"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .send(
            "POST",
            &format!("{actions}/{reset_id}/run"),
            json!({"runner": "helpdesk@host"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ran = parse(&body);
    assert_eq!(ran["action"]["status"], "succeeded", "{body}");
    assert!(ran["temporary_password"].is_string());
    // One cancelled before it runs, one rejected.
    let block = json!({"requested_by": "helpdesk@host",
                       "action": {"kind": "block_sign_in", "user": upn}});
    let (status, body) = api.post_keyed(&actions, "api-block", block).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let block_id = parse(&body)["action"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .send(
            "POST",
            &format!("{actions}/{block_id}/cancel"),
            json!({"by": "helpdesk@host"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A workflow through the API: lost device (revoke sessions now).
    let workflows = format!("/v1/accounts/{ACCOUNT_ID}/connections/{tenant}/workflows");
    let (status, body) = api
        .post_keyed(
            &workflows,
            "api-lost",
            json!({"template": "lost_device", "requested_by": "helpdesk@host", "user": upn}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let wf = parse(&body)["id"].as_str().unwrap().to_owned();
    for path in [workflows.clone(), format!("{workflows}/{wf}")] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // The actions function runs what the API queued.
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let name = "ActionsFunction";
    let graph = GraphClient::new(w.graph_config(name).await).unwrap();
    let f = w.clients(name);
    let deps = action_deps(w, w.store(name), &f.sqs, graph, clock);
    assert!(run_action_queue(w, &deps).await >= 2);
    let (_, body) = api.get(&format!("{actions}/{id}")).await;
    assert_eq!(parse(&body)["status"], "succeeded", "{body}");
}

/// The outbound webhook settings of the walk: the loopback test setting (set here only).
fn outbound_policy() -> entra_sync_core::outbound::OutboundPolicy {
    entra_sync_core::outbound::OutboundPolicy {
        urls: entra_sync_core::outbound::ssrf::UrlPolicy {
            allow_insecure_loopback: true,
        },
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Outbound webhook endpoints through the admin API: one created for the account's
/// disconnections (its secret into Secrets Manager), rotated twice (the first secret deleted),
/// disabled and enabled again, listed, shown, its (still empty) delivery log.
async fn api_outbound_endpoints(w: &World, api: &Connect) {
    let base = format!("/v1/accounts/{ACCOUNT_ID}/webhook-endpoints");
    let (status, body) = api
        .send(
            "POST",
            &base,
            json!({"url": w.receiver.url, "event_types": ["connection.disconnected"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    for route in ["rotate", "rotate", "disable", "enable"] {
        let (status, body) = api
            .send("POST", &format!("{base}/{id}/{route}"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{route}: {body}");
    }
    for path in [
        base.clone(),
        format!("{base}/{id}"),
        format!("{base}/{id}/deliveries?limit=5"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

/// The outbound webhook function on the publisher's wake-ups: the due deliveries POSTed to the
/// receiver, signed; then one redelivered through the admin API and sent by the next tick.
async fn outbound(w: &World) {
    let name = "OutboundFunction";
    let policy = outbound_policy();
    let deps = entra_sync_outbound::OutboundWorker {
        store: w.store(name),
        vault: Arc::new(SecretsManagerVault::new(
            w.clients(name).secrets.clone(),
            secret_prefix(),
            secrets::DEFAULT_TTL,
        )),
        poster: Arc::new(entra_sync_outbound::ReqwestPoster::new(&policy).unwrap()),
        policy,
    };
    let wakeups = receive(&w.admin.sqs, &w.outbound_queue, 60).await;
    assert!(!wakeups.is_empty(), "the publisher woke the function");
    let answer = entra_sync_outbound_function::handler::handle(
        &deps,
        serde_json::to_value(as_event(&wakeups)).unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_none_refused(name, w.recorder(name));
    let entra_sync_outbound_function::handler::Answer::Batch(b) = answer else {
        panic!("{answer:?}")
    };
    assert!(b.batch_item_failures.is_empty());
    let got = w.receiver.got();
    assert!(
        got.len() >= 2
            && got
                .iter()
                .all(|r| r.headers.contains_key("webhook-signature")),
        "both disconnections delivered: {}",
        got.len()
    );

    // A manual redelivery through the API, sent by the next tick.
    let api = admin_api(w).await;
    let base = format!("/v1/accounts/{ACCOUNT_ID}/webhook-endpoints");
    let (_, body) = api.get(&base).await;
    let list: Value = serde_json::from_str(&body).unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, body) = api.get(&format!("{base}/{id}/deliveries")).await;
    let log: Value = serde_json::from_str(&body).unwrap();
    let delivery = log["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .send(
            "POST",
            &format!("{base}/{id}/deliveries/{delivery}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let answer = entra_sync_outbound_function::handler::handle(
        &deps,
        tick,
        Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    let entra_sync_outbound_function::handler::Answer::Tick(r) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_none_refused(name, w.recorder(name));
}

/// HR endpoints through the admin API (the HiBob one was created by [`hooks`]): a Standard
/// Webhooks endpoint created (its secret generated, into Secrets Manager), rotated, disabled
/// and enabled again; HiBob's API credential replaced; the delivery log and the review list.
async fn api_hr_endpoints(api: &Connect, tenant: &TenantId) {
    let base = format!("/v1/accounts/{ACCOUNT_ID}/hr-endpoints");
    let (status, body) = api
        .send(
            "POST",
            &base,
            json!({"source": "standard", "tenant_id": tenant.to_string(),
                   "api_credential": "sender-api-key"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    // Rotated twice without grace: the first secret is deleted from Secrets Manager.
    for _ in 0..2 {
        let (status, body) = api
            .send(
                "POST",
                &format!("{base}/standard/rotate"),
                json!({"grace_hours": 0}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for route in ["disable", "enable"] {
        let (status, body) = api
            .send("POST", &format!("{base}/standard/{route}"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{route}: {body}");
    }
    let (status, body) = api
        .send(
            "PUT",
            &format!("{base}/hibob/api-credential"),
            json!({"api_credential": "svc-iam:token-iam"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in [
        base.clone(),
        format!("{base}/hibob"),
        format!("{base}/hibob/deliveries?limit=5"),
        format!("/v1/accounts/{ACCOUNT_ID}/connections/{tenant}/hr-reviews?status=all"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, body) = api.get(&format!("{base}/hibob/deliveries")).await;
    let deliveries: Value = serde_json::from_str(&body).unwrap();
    assert!(
        !deliveries["items"].as_array().unwrap().is_empty(),
        "{body}"
    );
}

/// The console as the host product opens it on AWS: a sign-in address from the API (the
/// ticket stored), opened by the browser (the ticket taken once), then a page of the account.
async fn console_on_aws(api: &Connect, tenant: &TenantId) {
    let (status, body) = api
        .send(
            "POST",
            &format!("/v1/accounts/{ACCOUNT_ID}/console-sessions"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let login: Value = serde_json::from_str(&body).unwrap();
    let path = login["login_path"].as_str().unwrap();
    let resp = api
        .routes
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_none_refused(api.name, &api.recorder);
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let (status, body) = api
        .call(
            Request::get(format!(
                "/console/accounts/{ACCOUNT_ID}/directories/{tenant}/users"
            ))
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Spent: the same address signs nobody in again.
    let (status, _) = api.get(path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A held run confirmed and another rejected (the projection's reads and writes, and the cursor
/// update that makes the next read full), and a pending host user activated, all under the API
/// function's policy. The held runs are written as the circuit breaker writes them.
async fn api_held_runs_and_activate(w: &World, api: &Connect, tenant: &TenantId) {
    use entra_sync_core::run::{BreakerHold, RunUpdate, SyncRun, Trigger};
    let at_path = format!("/v1/accounts/{ACCOUNT_ID}/connections/{tenant}");
    let now = chrono::Utc::now();
    for (run_id, verb, expected) in [
        ("run-iam-held-confirm", "confirm", "succeeded"),
        ("run-iam-held-reject", "reject", "rejected"),
    ] {
        w.admin_store
            .create_run(&SyncRun::new(
                run_id.to_owned(),
                tenant.clone(),
                Trigger::Manual,
                now,
            ))
            .await
            .unwrap();
        w.admin_store
            .update_run(
                tenant,
                run_id,
                &RunUpdate::Hold(BreakerHold {
                    // More than any run of the walk deactivates: the confirm applies.
                    deactivations: 10_000,
                    active_before: 40,
                    threshold: "more than 50 users".into(),
                    empty_read: false,
                    held_at: now,
                    held_since: None,
                    applied_deactivations: 0,
                }),
            )
            .await
            .unwrap();
        let (status, body) = api
            .send(
                "POST",
                &format!("{at_path}/runs/{run_id}/{verb}"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{verb}: {body}");
        let (status, body) = api.get(&format!("{at_path}/runs/{run_id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let run: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(run["status"], expected, "{verb}: {body}");
    }
    let (status, body) = api
        .get(&format!(
            "/v1/accounts/{ACCOUNT_ID}/host-users?status=pending&limit=1"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pending: Value = serde_json::from_str(&body).unwrap();
    let local_id = pending["items"][0]["local_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the walk's sync leaves pending host users: {body}"))
        .to_owned();
    let (status, body) = api
        .send(
            "POST",
            &format!("/v1/accounts/{ACCOUNT_ID}/host-users/{local_id}/activate"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"active\""), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Scheduler -> fetch -> reconcile, as their main.rs wire them; the test plays Lambda's part

type ReconcileDepsOf = entra_sync_reconcile::handler::Deps;

/// Lambda's event source mapping of the page queue: receive everything, hand it to reconcile
/// in batches of ten, delete what succeeded.
async fn reconcile_all(w: &World, deps: &ReconcileDepsOf) {
    let pages = receive(&w.admin.sqs, &w.page_queue, 120).await;
    for batch in pages.chunks(10) {
        let r = entra_sync_reconcile::handler::handle(deps, as_event(batch)).await;
        assert_none_refused("ReconcileFunction", w.recorder("ReconcileFunction"));
        assert!(r.batch_item_failures.is_empty(), "reconcile failed");
    }
    acknowledge(&w.admin.sqs, &w.page_queue, &pages).await;
}

/// The page queue as fetch sees it when reconcile is faster than fetch: every page is applied
/// as soon as it is sent, before fetch saves its checkpoint, so fetch is the one that finds
/// the round applied and commits it (with the projection and the events).
struct ReconcileAtOnce {
    inner: SqsPageQueue,
    world: Arc<World>,
    reconcile: Arc<ReconcileDepsOf>,
    on: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl WorkQueue for ReconcileAtOnce {
    async fn enqueue(
        &self,
        messages: Vec<entra_sync_core::page::PageMessage>,
    ) -> Result<(), entra_sync_core::error::QueueError> {
        self.inner.enqueue(messages).await?;
        if self.on.load(std::sync::atomic::Ordering::SeqCst) {
            reconcile_all(&self.world, &self.reconcile).await;
        }
        Ok(())
    }

    fn max_message_bytes(&self) -> Option<usize> {
        self.inner.max_message_bytes()
    }
}

struct Pipeline {
    world: Arc<World>,
    clock: Arc<ManualClock>,
    schedule: ScheduleDeps,
    fetch: entra_sync_fetch::handler::Deps,
    pages: Arc<ReconcileAtOnce>,
    reconcile: Arc<ReconcileDepsOf>,
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

async fn pipeline(world: Arc<World>) -> Pipeline {
    let w = world.as_ref();
    let scheduler = w.store("SchedulerFunction");
    let clock = Arc::new(ManualClock::new(
        DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    ));
    let schedule = DepsBuilder::on(&scheduler)
        .clock(clock.clone())
        .schedule(Arc::new(SqsFetchRequests::new(
            w.clients("SchedulerFunction").sqs.clone(),
            w.fetch_queue.clone(),
        )));
    let store = w.store("ReconcileFunction");
    let reconcile = Arc::new(ReconcileDepsOf {
        reconcile: DepsBuilder::on(&store)
            .events(Arc::new(FromCommitsOnly))
            .projected()
            .reconcile(),
        claims: entra_sync_core::services::claim::Claims::new(
            store,
            entra_sync_core::idempotency::IdempotencyConfig::default(),
            Arc::new(SystemClock),
        ),
    });
    let graph = GraphClient::new(w.graph_config("FetchFunction").await).unwrap();
    let fetch = w.clients("FetchFunction");
    let pages = Arc::new(ReconcileAtOnce {
        inner: SqsPageQueue::new(fetch.sqs.clone(), w.page_queue.clone()),
        world: world.clone(),
        reconcile: reconcile.clone(),
        on: false.into(),
    });
    let store = w.store("FetchFunction");
    let fetch = entra_sync_fetch::handler::Deps {
        fetch: DepsBuilder::on(&store)
            .events(Arc::new(FromCommitsOnly))
            .projected()
            .fetch(Arc::new(graph), pages.clone()),
        requests: Arc::new(SqsFetchRequests::new(
            fetch.sqs.clone(),
            w.fetch_queue.clone(),
        )),
    };
    Pipeline {
        world,
        clock,
        schedule,
        fetch,
        pages,
        reconcile,
    }
}

impl Pipeline {
    /// One scheduler tick and everything it leads to. Returns the tenants fetch was asked for.
    /// `reconcile_first`: reconcile applies each page as it is sent (fetch commits), else after
    /// each fetch invocation (reconcile commits).
    async fn round(&self, reconcile_first: bool) -> BTreeSet<String> {
        let w = self.world.as_ref();
        self.pages
            .on
            .store(reconcile_first, std::sync::atomic::Ordering::SeqCst);
        entra_sync_scheduler::handler::handle(
            &self.schedule,
            &entra_sync_scheduler::handler::Settings {
                max_jitter: Duration::ZERO,
            },
            serde_json::from_str(include_str!("../../events/scheduler/happy.json")).unwrap(),
        )
        .await
        .unwrap();
        assert_none_refused("SchedulerFunction", w.recorder("SchedulerFunction"));
        let settings = entra_sync_fetch::handler::Settings {
            max_pages: 3,
            lease_ttl: Duration::from_secs(900),
        };
        let mut requested = BTreeSet::new();
        for invocation in 0..60 {
            let requests = receive(&w.admin.sqs, &w.fetch_queue, 60).await;
            if requests.is_empty() {
                return requested;
            }
            for r in &requests {
                let body: Value = serde_json::from_str(r.body().unwrap_or("{}")).unwrap();
                requested.insert(body["tenant_id"].as_str().unwrap_or_default().to_owned());
            }
            let response = entra_sync_fetch::handler::handle(
                &self.fetch,
                &settings,
                &format!("invocation-{invocation}"),
                as_event(&requests),
            )
            .await;
            assert_none_refused("FetchFunction", w.recorder("FetchFunction"));
            assert!(response.batch_item_failures.is_empty(), "fetch failed");
            acknowledge(&w.admin.sqs, &w.fetch_queue, &requests).await;
            reconcile_all(w, &self.reconcile).await;
        }
        panic!("fetch does not finish");
    }
}

// ---------------------------------------------------------------------------------------------
// The actions function, as its main.rs wires it; the host product's side (starting a
// workflow) with the administrator's clients

/// The write half's ports on `store` and `sqs`: the actions function's (its
/// clients) or the host product's (the administrator's, not recorded).
fn action_deps(
    w: &World,
    store: Arc<DynamoStore>,
    sqs: &aws_sdk_sqs::Client,
    graph: GraphClient,
    clock: Arc<ManualClock>,
) -> ActionDeps {
    ActionDeps {
        connections: store.clone(),
        settings: store.clone(),
        mirror: store.clone(),
        cursors: store.clone(),
        lookup: store.clone(),
        actions: store.clone(),
        workflows: store.clone(),
        queue: Arc::new(SqsActionQueue::new(sqs.clone(), w.action_queue.clone())),
        writer: Arc::new(graph),
        claims: Claims::new(
            store,
            entra_sync_core::idempotency::IdempotencyConfig::default(),
            clock.clone(),
        ),
        budget: Arc::new(WriteBudget::default()),
        clock,
        config: ActionsConfig::default(),
    }
}

/// Lambda's event source mapping of the action queue: receive everything, hand it to the
/// function in batches of ten, delete what succeeded. Returns the messages handled.
async fn run_action_queue(w: &World, deps: &ActionDeps) -> usize {
    let mut handled = 0;
    for _ in 0..20 {
        let messages = receive(&w.admin.sqs, &w.action_queue, 120).await;
        if messages.is_empty() {
            return handled;
        }
        handled += messages.len();
        for batch in messages.chunks(10) {
            let event = serde_json::to_value(as_event(batch)).unwrap();
            let entra_sync_actions::handler::Answer::Batch(r) =
                entra_sync_actions::handler::handle(deps, event).await
            else {
                panic!("an SQS batch gets a batch answer");
            };
            assert_none_refused("ActionsFunction", w.recorder("ActionsFunction"));
            assert!(r.batch_item_failures.is_empty(), "actions failed: {r:?}");
        }
        acknowledge(&w.admin.sqs, &w.action_queue, &messages).await;
    }
    panic!("the action queue does not drain");
}

async fn direct(deps: &ActionDeps, request: Value) -> Value {
    let answer = entra_sync_actions::handler::handle(deps, request).await;
    serde_json::to_value(answer).unwrap()
}

/// The actions function's part: `tenant` was synced; enable actions on it, then act.
async fn act(w: &World, tenant: &TenantId, team: &str) {
    let handle = w.emulator.tenant(tenant.as_str()).unwrap();
    handle.set_granted_permissions(entra_sync_emulator::DEFAULT_APP_PERMISSIONS.iter().copied());
    let mut settings = w
        .admin_store
        .get_settings(tenant)
        .await
        .unwrap()
        .unwrap_or_default();
    let expected = settings.version;
    settings.version += 1;
    settings.actions.enabled = ActionKind::ALL.into_iter().collect();
    settings.actions.approval_required = [ActionKind::ResetPassword].into_iter().collect();
    w.admin_store
        .put_settings(tenant, &settings, expected)
        .await
        .unwrap();
    let user = handle.user_ids()[4].clone();
    let upn = handle.user(&user).unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let name = "ActionsFunction";
    let graph = GraphClient::new(w.graph_config(name).await).unwrap();
    let f = w.clients(name);
    let deps = action_deps(w, w.store(name), &f.sqs, graph, clock.clone());
    let host_graph = GraphClient::new(w.graph_config("FetchFunction").await).unwrap();
    let host = action_deps(
        w,
        w.admin_store.clone(),
        &w.admin.sqs,
        host_graph,
        clock.clone(),
    );

    // A direct invocation: submit and run now (the user by UPN, the group by name).
    let answer = direct(
        &deps,
        json!({"op": "submit", "account_id": ACCOUNT_ID, "tenant_id": tenant,
               "idempotency_key": "iam-add", "requested_by": "helpdesk@host",
               "action": {"kind": "add_group_member", "user": upn, "group": team}}),
    )
    .await;
    assert_eq!(
        answer["action"]["status"]["status"], "succeeded",
        "{answer}"
    );
    // One that waits for an approver.
    let answer = direct(
        &deps,
        json!({"op": "submit", "account_id": ACCOUNT_ID, "tenant_id": tenant,
               "idempotency_key": "iam-reset", "requested_by": "helpdesk@host",
               "action": {"kind": "reset_password", "user": upn}}),
    )
    .await;
    assert_eq!(
        answer["action"]["status"]["status"], "pending_approval",
        "{answer}"
    );
    // The queued copy of the direct submit: already done, acknowledged without a write.
    run_action_queue(w, &deps).await;

    // The host product starts an offboarding for an hour from now.
    let wf = start_workflow(
        &host,
        StartWorkflow {
            account: AccountId(ACCOUNT_ID.into()),
            tenant: tenant.clone(),
            template: Template::Offboarding,
            params: WorkflowParams {
                user: upn.clone(),
                groups: vec![],
                apps: vec![],
                at: Some(clock.now() + chrono::Duration::hours(1)),
            },
            requested_by: "hr@host".into(),
            origin: WorkflowOrigin::Api,
            key: Some("iam-offboard".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(wf.status.as_str(), "scheduled");

    // The tick before it is due does nothing; after it (and the approval's expiry), it runs
    // the workflow's first step, and each queued batch the next.
    let tick = include_str!("../../events/actions/tick.json");
    let report = direct(&deps, serde_json::from_str(tick).unwrap()).await;
    assert_eq!(report["workflows_advanced"], 0, "{report}");
    clock.advance(chrono::Duration::hours(73));
    let report = direct(&deps, serde_json::from_str(tick).unwrap()).await;
    assert_none_refused(name, w.recorder(name));
    assert_eq!(report["workflows_advanced"], 1, "{report}");
    assert_eq!(report["approvals_expired"], 1, "{report}");
    for _ in 0..10 {
        if run_action_queue(w, &deps).await == 0 {
            break;
        }
    }
    let done = get_workflow(&host, &AccountId(ACCOUNT_ID.into()), tenant, &wf.id)
        .await
        .unwrap();
    assert_eq!(done.status.as_str(), "completed", "{done:?}");
    assert_eq!(handle.user(&user).unwrap()["accountEnabled"], false);
}

// ---------------------------------------------------------------------------------------------
// The HR webhooks functions, as their binaries wire them; the endpoint is created by the
// operator (the administrator's clients)

async fn hooks(w: &World, tenant: &TenantId, team: &str) {
    use entra_sync_core::actions::ports::WorkflowStore;
    use entra_sync_core::services::webhooks::{
        CreateEndpoint, EndpointDeps, ProcessDeps, ReceiveDeps, WebhookConfig, create_endpoint,
    };
    use entra_sync_core::webhooks::Source;
    use entra_sync_core::webhooks::verify::{SigningKey, sign};
    use entra_sync_hr::emulator::{EmulatedEmployee, HiBobEmulator};

    let (route, queue) = ("WebhooksRouteFunction", "WebhooksQueueFunction");
    // Calls outside their policies are refused (moto checks the action; the resources are
    // checked against the template below): the route queries nothing, the queue function
    // scans nothing.
    let r = w.clients(route);
    let denied = r
        .dynamodb
        .query()
        .table_name(table_name())
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
        .send()
        .await;
    assert!(denied.is_err());
    let q = w.clients(queue);
    assert!(
        q.dynamodb
            .scan()
            .table_name(table_name())
            .send()
            .await
            .is_err()
    );
    let statuses: Vec<Option<u16>> = w
        .recorder(route)
        .calls()
        .iter()
        .chain(w.recorder(queue).calls().iter())
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses.iter().all(|s| matches!(s, Some(400 | 403))),
        "{statuses:?}"
    );
    w.recorder(route).clear();
    w.recorder(queue).clear();

    // The operator: a HiBob endpoint with its webhook secret and a service user.
    let hibob = HiBobEmulator::new();
    hibob.add_service_user("svc-iam", "token-iam");
    let (hibob_url, _server) = hibob.start().await.unwrap();
    let handle = w.emulator.tenant(tenant.as_str()).unwrap();
    let user = handle.user_ids()[5].clone();
    let upn = handle.user(&user).unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();
    let today = Utc::now().date_naive();
    hibob.put_employee(EmulatedEmployee {
        id: "3332883854254932743".into(),
        email: Some(upn.clone()),
        termination_date: Some((today - chrono::Days::new(1)).to_string()),
        ..Default::default()
    });
    // A hire the day before, onboarded into the team (a group named in the mapping).
    let joiner = handle.user_ids()[6].clone();
    let joiner_upn = handle.user(&joiner).unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_owned();
    hibob.put_employee(EmulatedEmployee {
        id: "3332883854254932744".into(),
        email: Some(joiner_upn),
        start_date: Some((today - chrono::Days::new(1)).to_string()),
        ..Default::default()
    });
    let mut settings = w.admin_store.get_settings(tenant).await.unwrap().unwrap();
    let expected = settings.version;
    settings.version += 1;
    settings.hr.groups = vec![team.to_owned()];
    w.admin_store
        .put_settings(tenant, &settings, expected)
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let admin_vault = Arc::new(SecretsManagerVault::new(
        w.admin.secrets.clone(),
        secret_prefix(),
        secrets::DEFAULT_TTL,
    ));
    let secret = "iam-hibob-webhook-secret";
    create_endpoint(
        &EndpointDeps {
            connections: w.admin_store.clone(),
            endpoints: w.admin_store.clone(),
            deliveries: w.admin_store.clone(),
            vault: admin_vault,
            clock: clock.clone(),
            config: WebhookConfig::default(),
        },
        CreateEndpoint {
            account: AccountId(ACCOUNT_ID.into()),
            source: Source::HiBob,
            tenant: tenant.clone(),
            secret: Some(entra_sync_core::ports::Secret::new(secret)),
            api_credential: Some(entra_sync_core::ports::Secret::new("svc-iam:token-iam")),
        },
    )
    .await
    .unwrap();

    // The route: a signed HiBob termination and a signed hire, as API Gateway hands them over.
    let key = SigningKey::from_secret(Source::HiBob, secret).unwrap();
    let vault = |c: &Clients| {
        Arc::new(SecretsManagerVault::new(
            c.secrets.clone(),
            secret_prefix(),
            secrets::DEFAULT_TTL,
        ))
    };
    let app = entra_sync_webhooks::app(entra_sync_http::hooks::router(
        entra_sync_http::hooks::HooksState::new(ReceiveDeps {
            endpoints: w.store(route),
            vault: vault(r),
            deliveries: w.store(route),
            queue: Arc::new(entra_sync_aws::SqsDeliveryQueue::new(
                r.sqs.clone(),
                w.delivery_queue.clone(),
            )),
            clock: clock.clone(),
            limits: WebhookConfig::default().limits,
        }),
    ));
    let post = |body: String| {
        let app = app.clone();
        let signature = sign::hibob(&key, body.as_bytes());
        async move {
            let req = Request::post(format!("/hooks/{ACCOUNT_ID}/hibob"))
                .header("content-type", "application/json")
                .header("bob-signature", signature)
                .body(Body::from(body))
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }
    };
    let event = |kind: &str, id: &str| {
        format!(
            r#"{{"companyId":1,"type":"{kind}","triggeredBy":"system","triggeredAt":"2026-12-01T09:00:00","version":"v2","data":{{"employeeId":"{id}"}}}}"#
        )
    };
    assert_eq!(
        post(event("employee.left", "3332883854254932743")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post(event("employee.joined", "3332883854254932744")).await,
        StatusCode::ACCEPTED
    );
    assert_none_refused(route, w.recorder(route));

    // The queue function: Lambda's event source mapping hands it the queued delivery.
    let store = w.store(queue);
    let graph = GraphClient::new(w.graph_config(queue).await).unwrap();
    let actions = action_deps(w, store.clone(), &q.sqs, graph, clock.clone());
    let deps = ProcessDeps {
        actions,
        endpoints: store.clone(),
        deliveries: store.clone(),
        reviews: store.clone(),
        people: store.clone(),
        employees: store,
        hr_api: Arc::new(
            entra_sync_hr::HiBobClient::new(entra_sync_hr::HiBobConfig {
                base_url: hibob_url,
                ..Default::default()
            })
            .unwrap(),
        ),
        vault: vault(q),
    };
    // Both deliveries in one batch, in the order accepted. HiBob's API is down for the first
    // (a retryable failure: the message fails and its claim is released), so the hire behind
    // it in the endpoint's group fails too; delivered again, both succeed.
    hibob.fail_next(503, 1);
    let batch = receive(&w.admin.sqs, &w.delivery_queue, 1).await;
    assert_eq!(batch.len(), 2);
    let r = entra_sync_webhooks::handler::handle_batch(&deps, as_event(&batch)).await;
    assert_eq!(r.batch_item_failures.len(), 2, "{r:?}");
    let mut handled = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = receive(&w.admin.sqs, &w.delivery_queue, 120).await;
        let r = entra_sync_webhooks::handler::handle_batch(&deps, as_event(&again)).await;
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
        acknowledge(&w.admin.sqs, &w.delivery_queue, &again).await;
        handled += again.len();
        if handled == 2 {
            break;
        }
    }
    assert_eq!(
        handled, 2,
        "both deliveries were processed when delivered again"
    );
    assert_none_refused(queue, w.recorder(queue));
    assert!(
        hibob.requests() >= 1,
        "the employee was read from HiBob's API"
    );
    let wfs = w
        .admin_store
        .list_workflows(tenant, None, 50)
        .await
        .unwrap();
    let started: Vec<&str> = wfs
        .items
        .iter()
        .filter(|wf| wf.requested_by == "hr-webhook:hibob")
        .map(|wf| wf.template.as_str())
        .collect();
    assert_eq!(
        started.len(),
        2,
        "an offboarding and an onboarding: {started:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_runs_under_exactly_its_template_policy() {
    let world = Arc::new(world().await);
    let w = world.as_ref();
    let tenant = |seed: u64, consent: bool| {
        let info = w.emulator.add_tenant(&TenantSpec::new(seed, 40, 6));
        if !consent {
            w.emulator.tenant(&info.tenant_id).unwrap().revoke_consent();
        }
        TenantId::new(info.tenant_id)
    };

    // Connect: consent (start, the admin's browser, callback), list, show.
    let hourly = tenant(21, false);
    let connect = connect(w).await;
    connect.consent().await;
    let (status, body) = connect
        .get(&format!("/accounts/{ACCOUNT_ID}/connections"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(hourly.as_str()), "{body}");
    let (status, body) = connect
        .get(&format!("/accounts/{ACCOUNT_ID}/connections/{hourly}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Two more connections: one synced daily at 03:00 UTC (not due at 10:00 or 11:00), one
    // that needs reauthorization.
    let daily = tenant(22, true);
    w.admin_store
        .put_connection(&connection(&daily, ConnectionStatus::Connected))
        .await
        .unwrap();
    w.admin_store
        .put_settings(
            &daily,
            &ConnectionSettings {
                version: 1,
                schedule: Schedule::Daily { hour_utc: 3 },
                ..ConnectionSettings::default()
            },
            0,
        )
        .await
        .unwrap();
    let revoked = tenant(23, false);
    w.admin_store
        .put_connection(&connection(
            &revoked,
            ConnectionStatus::NeedsReauthorization {
                reason: "consent revoked".into(),
                // Its next automatic attempt is tomorrow: the scheduler leaves it alone.
                retry: entra_sync_core::model::ReauthRetry {
                    since: Some(at("2026-01-01T09:00:00Z")),
                    attempts: 1,
                    next_attempt_at: Some(at("2026-01-02T09:00:00Z")),
                },
            },
        ))
        .await
        .unwrap();

    let pipeline = pipeline(world.clone()).await;
    // Round 1 at 10:00, the full read; reconcile commits it.
    let requested = pipeline.round(false).await;
    assert!(requested.contains(hourly.as_str()), "{requested:?}");
    assert!(
        !requested.contains(daily.as_str()),
        "a daily schedule is not synced outside its hour: {requested:?}"
    );
    // Round 2 at 11:00, after changes: a new email for one user, one disabled, one deleted,
    // some churn. Reconcile is faster than fetch, so fetch commits.
    let handle = w.emulator.tenant(hourly.as_str()).unwrap();
    let users = handle.user_ids();
    let mut patch = serde_json::Map::new();
    patch.insert("mail".into(), json!("renamed.user@contoso.example"));
    handle.update_user(&users[0], patch).unwrap();
    handle.set_account_enabled(&users[1], false).unwrap();
    handle.delete_user(&users[2]).unwrap();
    handle.random_churn(5, 10);
    pipeline.clock.advance(chrono::Duration::hours(1));
    let requested = pipeline.round(true).await;
    assert!(!requested.contains(daily.as_str()), "{requested:?}");
    // Round 3 at 12:00, another new email; reconcile commits.
    let mut patch = serde_json::Map::new();
    patch.insert("mail".into(), json!("renamed.again@contoso.example"));
    handle.update_user(&users[0], patch).unwrap();
    handle.random_churn(6, 5);
    let team = "IAM test team";
    handle.create_group(NewGroup::new(team, GroupKind::Security));
    pipeline.clock.advance(chrono::Duration::hours(1));
    pipeline.round(false).await;
    let runs = w.admin_store.list_runs(&hourly, 5).await.unwrap();
    assert!(
        runs.len() >= 3
            && runs
                .iter()
                .take(3)
                .all(|r| r.status == RunStatus::Succeeded),
        "{runs:?}"
    );

    // The actions function on the synced directory.
    act(w, &hourly, team).await;
    // The HR webhooks functions on it.
    hooks(w, &hourly, team).await;

    // The admin API on it.
    use_admin_api(w, &hourly, &daily, team).await;

    // Connect again: reconnect (a new consent link), then disconnect (the tenant's secrets
    // go, if any).
    let (status, body) = connect
        .post(&format!(
            "/accounts/{ACCOUNT_ID}/connections/{hourly}/reconnect"
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = connect
        .post(&format!(
            "/accounts/{ACCOUNT_ID}/connections/{hourly}/disconnect"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = w
        .admin_store
        .get_connection(&hourly)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, ConnectionStatus::Disconnected);

    // The publisher on everything the functions above wrote: the table's stream read as its
    // event source mapping reads it (with the administrator's keys here, as the other
    // mappings), each batch handed to its handler, which runs under its own policy.
    let records = entra_sync_tests::streams::stream_records(
        &w.admin.dynamodb,
        &w.admin.streams,
        &table_name(),
    )
    .await;
    let publisher = entra_sync_core::services::publish::PublishDeps {
        connections: w.store("PublisherFunction"),
        events: Arc::new(EventBridgeSink::new(
            w.clients("PublisherFunction").events.clone(),
            &w.bus,
        )),
        outbound: Some(entra_sync_core::services::publish::FanOutDeps {
            deliveries: w.store("PublisherFunction"),
            wake: Arc::new(entra_sync_aws::SqsDeliveryWake::new(
                w.clients("PublisherFunction").sqs.clone(),
                w.outbound_queue.clone(),
            )),
            clock: Arc::new(SystemClock),
        }),
    };
    for batch in records.chunks(100) {
        let r = entra_sync_publisher::handler::handle(
            &publisher,
            entra_sync_tests::streams::event(batch),
        )
        .await;
        assert_none_refused("PublisherFunction", w.recorder("PublisherFunction"));
        assert!(r.batch_item_failures.is_empty(), "publishing failed");
    }
    // The outbound webhook function on what the publisher fanned out.
    outbound(w).await;

    // Each function against its template statements.
    let mut all = Vec::new();
    for name in FUNCTIONS {
        let calls = w.recorder(name).calls();
        eprintln!("{name} called:");
        let mut seen = BTreeSet::new();
        for c in &calls {
            if seen.insert((c.action.clone(), c.resources.clone(), c.status)) {
                eprintln!("  {} {:?} -> {:?}", c.action, c.resources, c.status);
            }
        }
        all.extend(problems(name, template::function(name), &calls));
    }
    assert!(all.is_empty(), "\n{}", all.join("\n"));
}
