//! Service tests of the HR webhooks over the in-memory adapters and the write half's test world.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};

use super::*;
use crate::actions::kind::ActionKind;
use crate::actions::testing::*;
use crate::actions::workflow::{StepSpec, Template, WorkflowOrigin, WorkflowStatus};
use crate::memory::MemoryVault;
use crate::model::{AccountId, Connection, ConnectionStatus, TenantId};
use crate::ports::{Clock, ConnectionStore, MirrorStore, Secret, SecretVault, SettingsStore};
use crate::services::actions::MessageVerdict;
use crate::webhooks::Source;
use crate::webhooks::delivery::{Answer, Outcome, Processing, Refusal};
use crate::webhooks::mapping::{HrField, HrRule, HrSettings};
use crate::webhooks::memory::{
    CollectingDeliveryQueue, MemoryHrDirectory, MemoryWebhooks, ScanningEmployeeLookup,
};
use crate::webhooks::ports::{DeliveryStore, HrEmployee};
use crate::webhooks::review::ReviewStatus;
use crate::webhooks::verify::{Headers, SigningKey, sign};

struct Hr {
    w: World,
    hooks: Arc<MemoryWebhooks>,
    vault: Arc<MemoryVault>,
    queue: Arc<CollectingDeliveryQueue>,
    hr_api: Arc<MemoryHrDirectory>,
    ep: EndpointDeps,
    rx: ReceiveDeps,
    px: ProcessDeps,
}

const ALL_KINDS: [ActionKind; 6] = [
    ActionKind::AddGroupMember,
    ActionKind::RemoveGroupMember,
    ActionKind::AssignAppRole,
    ActionKind::RemoveAppRole,
    ActionKind::RevokeSessions,
    ActionKind::BlockSignIn,
];

async fn hr() -> Hr {
    let mut w = world(&ALL_KINDS).await;
    workflows_shared(&mut w);
    let t = tenant();
    // Ann has employee id E100; Bob's mail is the only way to find him.
    let mut ann = user(ANN, "ann@contoso.com");
    ann.user.employee_id = Some("E100".into());
    ann.user.department = Some("Sales".into());
    ann.version = crate::model::Version::new(2, 0);
    w.store.put_users(&t, &[ann]).await.unwrap();
    let mut s = w.store.get_settings(&t).await.unwrap().unwrap();
    s.version = 2;
    s.hr = HrSettings {
        groups: vec!["All staff".into()],
        rules: vec![
            HrRule {
                field: HrField::Department,
                equals: "Sales".into(),
                groups: vec![SALES.into()],
                apps: vec![],
            },
            HrRule {
                field: HrField::Department,
                equals: "Apps".into(),
                groups: vec![],
                apps: vec![crate::actions::workflow::AppRef {
                    service_principal_id: APP.into(),
                    app_role_id: None,
                }],
            },
        ],
        ..Default::default()
    };
    w.store.put_settings(&t, &s, 1).await.unwrap();
    let hooks = Arc::new(MemoryWebhooks::new());
    let vault = Arc::new(MemoryVault::default());
    let queue = Arc::new(CollectingDeliveryQueue::new());
    let hr_api = Arc::new(MemoryHrDirectory::new());
    let ep = EndpointDeps {
        connections: w.store.clone(),
        endpoints: hooks.clone(),
        deliveries: hooks.clone(),
        vault: vault.clone(),
        clock: w.clock.clone(),
        config: WebhookConfig::default(),
    };
    let rx = ReceiveDeps {
        endpoints: hooks.clone(),
        vault: vault.clone(),
        deliveries: hooks.clone(),
        queue: queue.clone(),
        clock: w.clock.clone(),
        limits: Default::default(),
    };
    let px = ProcessDeps {
        actions: w.deps.clone(),
        endpoints: hooks.clone(),
        deliveries: hooks.clone(),
        reviews: hooks.clone(),
        people: hooks.clone(),
        employees: Arc::new(ScanningEmployeeLookup {
            mirror: w.store.clone(),
        }),
        hr_api: hr_api.clone(),
        vault: vault.clone(),
    };
    Hr {
        w,
        hooks,
        vault,
        queue,
        hr_api,
        ep,
        rx,
        px,
    }
}

fn create(source: Source, secret: Option<&str>) -> CreateEndpoint {
    CreateEndpoint {
        account: account(),
        source,
        tenant: tenant(),
        secret: secret.map(Secret::new),
        api_credential: None,
    }
}

fn std_headers(secret: &Secret, id: &str, ts: i64, body: &[u8]) -> Headers {
    let key = SigningKey::from_secret(Source::Standard, secret.expose()).unwrap();
    Headers::from_pairs([
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sign::standard(&key, id, ts, body)),
    ])
}

async fn post(h: &Hr, account: &str, source: &str, headers: &Headers, body: &[u8]) -> Answer {
    receive(
        &h.rx,
        Incoming {
            account,
            source,
            content_type: Some("application/json"),
            headers,
            body,
        },
    )
    .await
}

async fn post_std(h: &Hr, secret: &Secret, id: &str, body: &str) -> Answer {
    let headers = std_headers(secret, id, h.w.clock.now().timestamp(), body.as_bytes());
    post(h, "acct-a", "standard", &headers, body.as_bytes()).await
}

async fn run_queue(h: &Hr) -> Vec<crate::webhooks::delivery::Delivery> {
    let mut out = Vec::new();
    for m in h.queue.drain() {
        out.push(process_delivery(&h.px, &m).await.unwrap());
    }
    out
}

async fn standard_endpoint(h: &Hr) -> Secret {
    create_endpoint(&h.ep, create(Source::Standard, None))
        .await
        .unwrap()
        .secret
        .unwrap()
}

fn hire(emp: &str, email: &str, start: &str, dept: &str) -> String {
    format!(
        r#"{{"type":"hire","data":{{"employee_id":"{emp}","work_email":"{email}","start_date":"{start}","department":"{dept}"}}}}"#
    )
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[tokio::test]
async fn a_standard_endpoint_secret_is_shown_once_and_stored_only_in_the_vault() {
    let h = hr().await;
    let created = create_endpoint(&h.ep, create(Source::Standard, None))
        .await
        .unwrap();
    let secret = created.secret.clone().unwrap();
    assert!(secret.expose().starts_with("whsec_"));
    let record = serde_json::to_string(&created.endpoint).unwrap();
    assert!(
        !record.contains(secret.expose()),
        "the record holds names, never values"
    );
    assert!(
        !format!("{created:?}").contains(secret.expose()),
        "Debug hides it"
    );
    let stored = h
        .vault
        .get_secret(&created.endpoint.secrets[0].name)
        .await
        .unwrap();
    assert_eq!(stored, secret);
    // Reading the endpoint later never shows it again (there is no value in the record).
    let again = get_endpoint(&h.ep, &account(), Source::Standard)
        .await
        .unwrap();
    assert!(!serde_json::to_string(&again).unwrap().contains("whsec_"));
    assert!(matches!(
        create_endpoint(&h.ep, create(Source::Standard, None)).await,
        Err(WebhookError::EndpointExists { .. })
    ));
}

#[tokio::test]
async fn bamboohr_and_hibob_endpoints_take_the_key_their_system_generated() {
    let h = hr().await;
    let e = create_endpoint(&h.ep, create(Source::BambooHr, None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("BambooHR generates"), "{e}");
    let c = create_endpoint(&h.ep, create(Source::HiBob, Some("bob-secret")))
        .await
        .unwrap();
    assert!(
        c.secret.is_none(),
        "nothing to show: the admin already has it"
    );
    // Another account's tenant is refused like an unknown one.
    let mut other = create(Source::BambooHr, Some("k"));
    other.account = AccountId("acct-b".into());
    assert!(matches!(
        create_endpoint(&h.ep, other).await,
        Err(WebhookError::UnknownConnection { .. })
    ));
}

#[tokio::test]
async fn unknown_and_disabled_endpoints_get_the_same_404() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    let headers = std_headers(
        &secret,
        "msg_1",
        h.w.clock.now().timestamp(),
        body.as_bytes(),
    );
    let unknown = post(&h, "acct-zzz", "standard", &headers, body.as_bytes()).await;
    let bad_source = post(&h, "acct-a", "workday", &headers, body.as_bytes()).await;
    set_enabled(&h.ep, &account(), Source::Standard, false)
        .await
        .unwrap();
    let disabled = post(&h, "acct-a", "standard", &headers, body.as_bytes()).await;
    for a in [&unknown, &bad_source, &disabled] {
        assert_eq!(a, &Answer::Refused(Refusal::NotFound));
        assert_eq!(
            (a.status(), a.code(), a.message()),
            (404, "not_found", "no such webhook endpoint".to_string())
        );
    }
    assert!(h.queue.is_empty());
    set_enabled(&h.ep, &account(), Source::Standard, true)
        .await
        .unwrap();
    assert!(matches!(
        post(&h, "acct-a", "standard", &headers, body.as_bytes()).await,
        Answer::Accepted { .. }
    ));
}

#[tokio::test]
async fn an_accepted_delivery_is_stored_and_queued_before_the_answer_and_a_replay_does_nothing_twice()
 {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    let Answer::Accepted { delivery_id } = post_std(&h, &secret, "msg_1", &body).await else {
        panic!()
    };
    let key = crate::webhooks::endpoint::EndpointKey {
        account_id: account(),
        source: Source::Standard,
    };
    let stored = h
        .hooks
        .get_delivery(&key, &delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.processing, Processing::Queued);
    assert_eq!(stored.source_event_id.as_deref(), Some("msg_1"));
    assert_eq!(h.queue.len(), 1);
    let done = run_queue(&h).await;
    assert_eq!(done[0].workflow_ids.len(), 1);
    // The sender retries the same message (same webhook-id): 200, nothing new.
    let again = post_std(&h, &secret, "msg_1", &body).await;
    assert_eq!(
        again,
        Answer::Duplicate {
            delivery_id: delivery_id.clone()
        }
    );
    assert_eq!(again.status(), 200);
    assert!(
        h.queue.is_empty(),
        "a processed delivery is not queued again"
    );
    let wfs =
        h.w.deps
            .workflows
            .list_workflows(&tenant(), None, 50)
            .await
            .unwrap();
    assert_eq!(wfs.items.len(), 1);
    let log = list_deliveries(&h.ep, &account(), Source::Standard, None, 50)
        .await
        .unwrap();
    let outcomes: Vec<&str> = log.items.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "accepted").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == "duplicate").count(), 1);
}

#[tokio::test]
async fn concurrent_duplicate_deliveries_store_one_and_answer_the_other_as_duplicate() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    let (a, b) = tokio::join!(
        post_std(&h, &secret, "msg_c", &body),
        post_std(&h, &secret, "msg_c", &body)
    );
    let accepted = [&a, &b]
        .iter()
        .filter(|x| matches!(x, Answer::Accepted { .. }))
        .count();
    let dup = [&a, &b]
        .iter()
        .filter(|x| matches!(x, Answer::Duplicate { .. }))
        .count();
    assert_eq!((accepted, dup), (1, 1), "{a:?} {b:?}");
    // Even if both were queued, processing is idempotent.
    for m in h.queue.drain().into_iter().chain(h.queue.drain()) {
        process_delivery(&h.px, &m).await.unwrap();
        process_delivery(&h.px, &m).await.unwrap();
    }
    assert_eq!(
        h.w.deps
            .workflows
            .list_workflows(&tenant(), None, 50)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn a_queue_outage_answers_503_and_the_senders_retry_queues_the_stored_delivery() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    h.queue.set_failing(true);
    assert_eq!(
        post_std(&h, &secret, "msg_q", &body).await,
        Answer::Unavailable
    );
    assert_eq!(
        h.hooks.all_deliveries().len(),
        1,
        "stored before the answer"
    );
    h.queue.set_failing(false);
    let again = post_std(&h, &secret, "msg_q", &body).await;
    assert!(matches!(again, Answer::Duplicate { .. }));
    assert_eq!(h.queue.len(), 1, "the retry queued what was stored");
    assert_eq!(run_queue(&h).await[0].workflow_ids.len(), 1);
}

#[tokio::test]
async fn refused_deliveries_are_logged_with_their_reason() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    let mut headers = std_headers(
        &secret,
        "msg_t",
        h.w.clock.now().timestamp(),
        body.as_bytes(),
    );
    headers = Headers::from_pairs(
        [("webhook-id".to_string(), "msg_t".to_string())]
            .into_iter()
            .chain([(
                "webhook-timestamp".into(),
                headers.get("webhook-timestamp").unwrap().to_string(),
            )])
            .chain([("webhook-signature".into(), "v1,AAAA".into())]),
    );
    let a = post(&h, "acct-a", "standard", &headers, body.as_bytes()).await;
    assert_eq!(a.status(), 401);
    let a = receive(
        &h.rx,
        Incoming {
            account: "acct-a",
            source: "standard",
            content_type: Some("text/xml"),
            headers: &headers,
            body: body.as_bytes(),
        },
    )
    .await;
    assert_eq!(a.status(), 415);
    let log = list_deliveries(&h.ep, &account(), Source::Standard, None, 50)
        .await
        .unwrap();
    let reasons: Vec<String> = log
        .items
        .iter()
        .map(|d| match &d.outcome {
            Outcome::Refused { status, reason, .. } => format!("{status} {reason}"),
            o => o.as_str().to_string(),
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("401 no signature matched")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.starts_with("415")), "{reasons:?}");
    assert!(
        !serde_json::to_string(&log.items)
            .unwrap()
            .contains(secret.expose())
    );
}

#[tokio::test]
async fn a_rotated_secret_keeps_the_old_one_valid_for_the_grace_period_only() {
    let h = hr().await;
    let old = standard_endpoint(&h).await;
    let rotated = rotate_secret(
        &h.ep,
        &account(),
        Source::Standard,
        None,
        Some(Duration::hours(24)),
    )
    .await
    .unwrap();
    let new = rotated.secret.unwrap();
    assert_ne!(old, new);
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    assert!(matches!(
        post_std(&h, &old, "m1", &body).await,
        Answer::Accepted { .. }
    ));
    assert!(matches!(
        post_std(&h, &new, "m2", &body).await,
        Answer::Accepted { .. }
    ));
    h.w.clock.advance(Duration::hours(24));
    assert_eq!(post_std(&h, &old, "m3", &body).await.status(), 401);
    assert!(matches!(
        post_std(&h, &new, "m4", &body).await,
        Answer::Accepted { .. }
    ));
    // Forgetting the expired one deletes it from the vault.
    let old_name = rotated.endpoint.secrets[1].name.clone();
    assert_eq!(
        forget_expired_secrets(&h.ep, &account(), Source::Standard)
            .await
            .unwrap(),
        1
    );
    assert!(h.vault.get_secret(&old_name).await.is_err());
}

#[tokio::test]
async fn a_secret_of_account_a_never_verifies_on_account_bs_endpoint() {
    let h = hr().await;
    let secret_a = standard_endpoint(&h).await;
    let t_b = TenantId::new("7d2c1f0e-0000-4000-8000-0000000000bb");
    h.w.store
        .put_connection(&Connection {
            tenant_id: t_b.clone(),
            account_id: AccountId("acct-b".into()),
            label: "B".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: t0(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    let mut req = create(Source::Standard, None);
    req.account = AccountId("acct-b".into());
    req.tenant = t_b;
    create_endpoint(&h.ep, req).await.unwrap();
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    let headers = std_headers(
        &secret_a,
        "msg_x",
        h.w.clock.now().timestamp(),
        body.as_bytes(),
    );
    assert_eq!(
        post(&h, "acct-b", "standard", &headers, body.as_bytes())
            .await
            .status(),
        401
    );
    assert!(matches!(
        post(&h, "acct-a", "standard", &headers, body.as_bytes()).await,
        Answer::Accepted { .. }
    ));
}

#[tokio::test]
async fn a_hire_starts_onboarding_at_the_start_date_linked_to_its_delivery() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let Answer::Accepted { delivery_id } = post_std(
        &h,
        &secret,
        "msg_h",
        &hire("E100", "someone-else@contoso.com", "2026-12-14", "Sales"),
    )
    .await
    else {
        panic!()
    };
    let d = run_queue(&h).await.remove(0);
    let wf =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &d.workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert_eq!(wf.template, Template::Onboarding);
    assert_eq!(wf.origin, WorkflowOrigin::HrWebhook { delivery_id });
    assert_eq!(
        wf.params.user, ANN,
        "matched by employee id before the (different) email"
    );
    assert_eq!(
        wf.params.groups,
        vec![SALES.to_string(), "All staff".to_string()],
        "sorted"
    );
    let at = Utc.with_ymd_and_hms(2026, 12, 14, 6, 0, 0).unwrap();
    assert_eq!(wf.status, WorkflowStatus::Scheduled { at });
    assert!(h.w.queue.is_empty(), "nothing runs before the start date");
}

#[tokio::test]
async fn a_new_start_date_reschedules_the_pending_onboarding() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    post_std(
        &h,
        &secret,
        "m1",
        &hire("E100", "ann@contoso.com", "2026-12-14", "Sales"),
    )
    .await;
    let first = run_queue(&h).await.remove(0);
    post_std(
        &h,
        &secret,
        "m2",
        &hire("E100", "ann@contoso.com", "2026-12-21", "Sales"),
    )
    .await;
    let second = run_queue(&h).await.remove(0);
    assert!(second.workflow_ids.is_empty(), "no second onboarding");
    let wf =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &first.workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        wf.status,
        WorkflowStatus::Scheduled {
            at: Utc.with_ymd_and_hms(2026, 12, 21, 6, 0, 0).unwrap()
        }
    );
    assert_eq!(
        wf.steps[0].run_at,
        Some(Utc.with_ymd_and_hms(2026, 12, 21, 6, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn a_termination_schedules_offboarding_and_a_rehire_cancels_it() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    post_std(
        &h,
        &secret,
        "t1",
        r#"{"type":"termination","data":{"employee_id":"E100","end_date":"2026-12-31"}}"#,
    )
    .await;
    let d = run_queue(&h).await.remove(0);
    let off_id = d.workflow_ids[0].clone();
    let off =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &off_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(off.template, Template::Offboarding);
    assert_eq!(
        off.status,
        WorkflowStatus::Scheduled {
            at: Utc.with_ymd_and_hms(2026, 12, 31, 18, 0, 0).unwrap()
        }
    );
    post_std(
        &h,
        &secret,
        "h2",
        &hire("E100", "ann@contoso.com", "2027-01-04", "Sales"),
    )
    .await;
    let d = run_queue(&h).await.remove(0);
    let off =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &off_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(off.status, WorkflowStatus::Cancelled, "{:?}", d.processing);
    let on =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &d.workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert_eq!(on.template, Template::Onboarding);
}

#[tokio::test]
async fn an_unmatched_person_is_held_for_review_and_resolving_starts_the_workflow() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    post_std(
        &h,
        &secret,
        "u1",
        &hire("E999", "nobody@contoso.com", "2026-12-14", "Sales"),
    )
    .await;
    let d = run_queue(&h).await.remove(0);
    assert!(d.workflow_ids.is_empty());
    assert_eq!(d.review_ids.len(), 1);
    let list = list_reviews(&h.px, &account(), &tenant(), true, None, 50)
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.items[0].message.contains("E999"),
        "{}",
        list.items[0].message
    );
    // Processing the same delivery again opens no second item.
    let m = crate::webhooks::ports::DeliveryMessage {
        account_id: account(),
        source: Source::Standard,
        delivery_id: d.id.clone(),
    };
    process_delivery(&h.px, &m).await.unwrap();
    assert_eq!(
        list_reviews(&h.px, &account(), &tenant(), false, None, 50)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let resolved = resolve_review(
        &h.px,
        &account(),
        &tenant(),
        &list.items[0].id,
        BOB,
        "alice@host",
    )
    .await
    .unwrap();
    let ReviewStatus::Resolved {
        workflow_ids,
        user_id,
        ..
    } = &resolved.status
    else {
        panic!()
    };
    assert_eq!(user_id, BOB);
    let wf =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert_eq!(wf.params.user, BOB);
    assert_eq!(
        wf.origin,
        WorkflowOrigin::HrWebhook {
            delivery_id: d.id.clone()
        }
    );
    assert!(matches!(
        resolve_review(
            &h.px,
            &account(),
            &tenant(),
            &list.items[0].id,
            BOB,
            "alice@host"
        )
        .await,
        Err(WebhookError::ReviewClosed { .. })
    ));
    assert!(
        list_reviews(&h.px, &account(), &tenant(), true, None, 50)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn several_users_with_one_employee_id_are_held_as_ambiguous() {
    let h = hr().await;
    let mut bob = user(BOB, "bob@contoso.com");
    bob.user.employee_id = Some("e100".into());
    bob.version = crate::model::Version::new(3, 0);
    h.w.store.put_users(&tenant(), &[bob]).await.unwrap();
    let secret = standard_endpoint(&h).await;
    post_std(
        &h,
        &secret,
        "a1",
        &hire("E100", "ann@contoso.com", "2026-12-14", "Sales"),
    )
    .await;
    let d = run_queue(&h).await.remove(0);
    let item =
        h.px.reviews
            .get_review(&tenant(), &d.review_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert!(
        matches!(&item.reason, crate::webhooks::review::ReviewReason::Ambiguous { candidates } if candidates.len() == 2)
    );
}

#[tokio::test]
async fn a_department_change_adds_the_new_grants_and_removes_the_old_ones() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    post_std(
        &h,
        &secret,
        "d1",
        r#"{"type":"update","data":{"employee_id":"E100","department":"Apps"}}"#,
    )
    .await;
    let d = run_queue(&h).await.remove(0);
    let wf =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &d.workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    let specs: Vec<String> = wf.steps.iter().map(|s| s.spec.describe()).collect();
    assert_eq!(
        specs,
        vec!["assign_app_role", "remove_group_member"],
        "old department (from the directory) Sales is left"
    );
    let StepSpec::Actions { actions } = &wf.steps[1].spec else {
        panic!()
    };
    assert_eq!(
        actions[0],
        crate::actions::kind::ActionSpec::RemoveGroupMember {
            user: ANN.into(),
            group: SALES.into()
        }
    );
}

#[tokio::test]
async fn a_hibob_termination_reads_the_end_date_from_hibobs_api() {
    let h = hr().await;
    let mut req = create(Source::HiBob, Some("bob-webhook-secret"));
    req.api_credential = Some(Secret::new("service-user:token"));
    create_endpoint(&h.ep, req).await.unwrap();
    h.hr_api.put(HrEmployee {
        provider_id: "3332883854254932743".into(),
        employee_number: Some("E100".into()),
        work_email: Some("ann@contoso.com".into()),
        termination_date: Some(day("2027-01-15")),
        ..Default::default()
    });
    let body = br#"{"companyId":636192,"type":"employee.left","triggeredBy":"system","triggeredAt":"2027-01-15T00:00:00","version":"v2","data":{"employeeId":"3332883854254932743"}}"#;
    let key = SigningKey::from_secret(Source::HiBob, "bob-webhook-secret").unwrap();
    let headers = Headers::from_pairs([("Bob-Signature", sign::hibob(&key, body))]);
    assert!(matches!(
        post(&h, "acct-a", "hibob", &headers, body).await,
        Answer::Accepted { .. }
    ));
    // HiBob signs no timestamp: the same body again is a duplicate, the only replay defence.
    assert!(matches!(
        post(&h, "acct-a", "hibob", &headers, body).await,
        Answer::Duplicate { .. }
    ));
    let d = run_queue(&h).await.remove(0);
    assert_eq!(h.hr_api.calls(), 1);
    let wf =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &d.workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert_eq!(wf.template, Template::Offboarding);
    assert_eq!(wf.params.user, ANN);
    assert_eq!(
        wf.params.at,
        Some(Utc.with_ymd_and_hms(2027, 1, 15, 18, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn a_hibob_event_without_an_api_credential_is_logged_not_applied() {
    let h = hr().await;
    create_endpoint(&h.ep, create(Source::HiBob, Some("s")))
        .await
        .unwrap();
    let body = br#"{"type":"employee.created","version":"v2","data":{"employeeId":"77"}}"#;
    let key = SigningKey::from_secret(Source::HiBob, "s").unwrap();
    let headers = Headers::from_pairs([("Bob-Signature", sign::hibob(&key, body))]);
    post(&h, "acct-a", "hibob", &headers, body).await;
    let d = run_queue(&h).await.remove(0);
    let Processing::Done { notes } = &d.processing else {
        panic!("{:?}", d.processing)
    };
    assert!(notes[0].contains("no API credential"), "{notes:?}");
    // Fix the cause, replay: the event is applied now.
    set_api_credential(&h.ep, &account(), Source::HiBob, Secret::new("svc:tok"))
        .await
        .unwrap();
    h.hr_api.put(HrEmployee {
        provider_id: "77".into(),
        work_email: Some("bob@contoso.com".into()),
        start_date: Some(day("2026-12-14")),
        ..Default::default()
    });
    replay_delivery(&h.rx, &account(), Source::HiBob, &d.id)
        .await
        .unwrap();
    let d = run_queue(&h).await.remove(0);
    assert_eq!(d.workflow_ids.len(), 1, "{:?}", d.processing);
    let wf =
        h.w.deps
            .workflows
            .get_workflow(&tenant(), &d.workflow_ids[0])
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (wf.template, wf.params.user.as_str()),
        (Template::Onboarding, BOB)
    );
    // Replaying again starts nothing new (same keys).
    replay_delivery(&h.rx, &account(), Source::HiBob, &d.id)
        .await
        .unwrap();
    let again = run_queue(&h).await.remove(0);
    assert_eq!(again.workflow_ids, d.workflow_ids);
    assert_eq!(
        h.w.deps
            .workflows
            .list_workflows(&tenant(), None, 50)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn a_signed_bamboohr_batch_starts_one_workflow_per_employee() {
    let h = hr().await;
    create_endpoint(&h.ep, create(Source::BambooHr, Some("bamboo-key")))
        .await
        .unwrap();
    let body = br#"{"employees":[
        {"id":"1","action":"Updated","changedFields":["Termination Date"],"fields":{"Employee #":"E100","Termination Date":"2026-12-31"}},
        {"id":"2","action":"Created","fields":{"Work Email":"bob@contoso.com","Hire Date":"2026-12-14","Department":"Sales"}}
    ]}"#;
    let key = SigningKey::from_secret(Source::BambooHr, "bamboo-key").unwrap();
    let ts = h.w.clock.now().timestamp();
    let headers = Headers::from_pairs([
        ("X-BambooHR-Signature", sign::bamboohr(&key, ts, body)),
        ("X-BambooHR-Timestamp", ts.to_string()),
    ]);
    assert!(matches!(
        post(&h, "acct-a", "bamboohr", &headers, body).await,
        Answer::Accepted { .. }
    ));
    let d = run_queue(&h).await.remove(0);
    assert_eq!(d.workflow_ids.len(), 2, "{:?}", d.processing);
    let templates: Vec<(Template, String)> = {
        let mut v = Vec::new();
        for id in &d.workflow_ids {
            let wf =
                h.w.deps
                    .workflows
                    .get_workflow(&tenant(), id)
                    .await
                    .unwrap()
                    .unwrap();
            v.push((wf.template, wf.params.user));
        }
        v
    };
    assert_eq!(
        templates,
        vec![
            (Template::Offboarding, ANN.to_string()),
            (Template::Onboarding, BOB.to_string())
        ]
    );
    // A stale timestamp is refused even with a valid signature over it.
    let old = ts - 3600;
    let stale = Headers::from_pairs([
        ("X-BambooHR-Signature", sign::bamboohr(&key, old, body)),
        ("X-BambooHR-Timestamp", old.to_string()),
    ]);
    assert_eq!(
        post(&h, "acct-a", "bamboohr", &stale, body).await.status(),
        401
    );
}

#[tokio::test]
async fn a_signed_bamboohr_termination_blocks_the_user_and_empties_their_groups_at_the_end_date() {
    use crate::directory_write::WriteKind;
    use crate::services::actions::{
        DecideRequest, Decision, decide_action, get_workflow, run_due_workflows, submit_action,
    };
    let h = hr().await;
    let t = tenant();
    // Ann is in Sales in the directory (and the mirror learns it from the action).
    submit_action(&h.w.deps, req("pre", add_ann_to(SALES)))
        .await
        .unwrap();
    drain(&h.w, 1).await;
    assert_eq!(h.w.writer.members(&t, SALES), Some(vec![ANN.to_string()]));
    create_endpoint(&h.ep, create(Source::BambooHr, Some("bamboo-key")))
        .await
        .unwrap();
    let body = br#"{"employees":[{"id":"1","action":"Updated","changedFields":["Status","Termination Date"],"fields":{"Employee #":"E100","Status":"Inactive","Termination Date":"2026-12-04"}}]}"#;
    let key = SigningKey::from_secret(Source::BambooHr, "bamboo-key").unwrap();
    let ts = h.w.clock.now().timestamp();
    let headers = Headers::from_pairs([
        ("X-BambooHR-Signature", sign::bamboohr(&key, ts, body)),
        ("X-BambooHR-Timestamp", ts.to_string()),
    ]);
    assert!(matches!(
        post(&h, "acct-a", "bamboohr", &headers, body).await,
        Answer::Accepted { .. }
    ));
    let d = run_queue(&h).await.remove(0);
    let wf_id = d.workflow_ids[0].clone();
    // Nothing happens before the end date (18:00 UTC on 2026-12-04).
    assert_eq!(run_due_workflows(&h.w.deps, 10).await.unwrap(), 0);
    assert_eq!(h.w.writer.calls(&t, WriteKind::RevokeSessions), 0);
    h.w.clock.advance(Duration::days(3) + Duration::hours(9));
    assert_eq!(run_due_workflows(&h.w.deps, 10).await.unwrap(), 1);
    drain(&h.w, 2).await;
    let wf = get_workflow(&h.w.deps, &account(), &t, &wf_id)
        .await
        .unwrap();
    let WorkflowStatus::WaitingApproval { action_id } = &wf.status else {
        panic!("{:?}", wf.status)
    };
    decide_action(
        &h.w.deps,
        DecideRequest {
            account: account(),
            tenant: t.clone(),
            action_id: action_id.clone(),
            decision: Decision::Approve,
            by: "it@host".into(),
            comment: None,
        },
    )
    .await
    .unwrap();
    drain(&h.w, 1).await;
    let wf = get_workflow(&h.w.deps, &account(), &t, &wf_id)
        .await
        .unwrap();
    assert_eq!(wf.status, WorkflowStatus::Completed, "{wf:#?}");
    assert_eq!(h.w.writer.user_enabled(&t, ANN), Some(false), "blocked");
    assert_eq!(
        h.w.writer.members(&t, SALES),
        Some(vec![]),
        "out of its groups"
    );
    assert_eq!(wf.origin, WorkflowOrigin::HrWebhook { delivery_id: d.id });
}

/// The queue consumer: a message is processed under a claim on its queue message id, so a
/// copy of it that arrives while a worker holds it is retried later, never processed at once.
#[tokio::test]
async fn a_delivery_message_is_processed_once_and_a_copy_held_by_another_worker_waits() {
    let h = hr().await;
    let secret = standard_endpoint(&h).await;
    let body = hire("E100", "ann@contoso.com", "2026-12-14", "Sales");
    let Answer::Accepted { delivery_id } = post_std(&h, &secret, "msg_c", &body).await else {
        panic!()
    };
    let queued = h.queue.drain().remove(0);
    let msg = serde_json::to_string(&queued).unwrap();

    // Another worker holds message m-2 (its visibility timeout ran out mid-processing).
    let claims = &h.px.actions.claims;
    let claim = claims
        .config
        .claim(claim_key("m-2"), queued.dedup_id(), claims.clock.now());
    claims.store.begin(&tenant(), &claim).await.unwrap();
    let verdict = handle_delivery_message(&h.px, "m-2", &msg).await;
    assert!(
        matches!(verdict, MessageVerdict::Retry { after: Some(_) }),
        "{verdict:?}"
    );
    let key = crate::webhooks::endpoint::EndpointKey {
        account_id: account(),
        source: Source::Standard,
    };
    let stored = h
        .hooks
        .get_delivery(&key, &delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.processing,
        Processing::Queued,
        "nothing was processed"
    );

    // Its own message is processed, once; the same message again is acknowledged.
    assert_eq!(
        handle_delivery_message(&h.px, "m-1", &msg).await,
        MessageVerdict::Ack
    );
    assert_eq!(
        handle_delivery_message(&h.px, "m-1", &msg).await,
        MessageVerdict::Ack
    );
    let done = h
        .hooks
        .get_delivery(&key, &delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.workflow_ids.len(), 1);
    let wfs =
        h.w.deps
            .workflows
            .list_workflows(&tenant(), None, 50)
            .await
            .unwrap();
    assert_eq!(wfs.items.len(), 1);
}

#[tokio::test]
async fn malformed_and_unknown_delivery_messages_go_to_the_dead_letter_queue() {
    let h = hr().await;
    assert_eq!(
        handle_delivery_message(&h.px, "m-x", "{not json").await,
        MessageVerdict::DeadLetter
    );
    let unknown = r#"{"account_id":"acct-a","source":"standard","delivery_id":"nope"}"#;
    assert_eq!(
        handle_delivery_message(&h.px, "m-y", unknown).await,
        MessageVerdict::DeadLetter
    );
}
