//! End to end on moto + the Graph emulator, through the Lambda handlers: scheduler handler ->
//! fetch request in SQS -> fetch handler -> page messages in SQS -> reconcile handler fed the
//! received messages -> DynamoDB equals the emulator's directory. Every page is then delivered
//! again, twice, out of order (nothing changes), and a poison message ends in the dead-letter
//! queue without holding back the valid message received with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use entra_sync_aws::{
    DynamoStore, EventBridgeSink, SqsFetchRequests, SqsPageQueue, sdk_config_for_endpoint,
};
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::ports::{ConnectionStore, LocalUserStore, RunStore, Secret, SystemClock};
use entra_sync_core::run::RunStatus;

use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_local::runtime::export_mirror;
use entra_sync_local::verify::compare;
use entra_sync_tests::moto;

struct Queues {
    sqs: aws_sdk_sqs::Client,
    fetch: String,
    pages: String,
    pages_dlq: String,
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, dlq_arn: Option<&str>) -> String {
    let mut req = sqs.create_queue().queue_name(moto::unique_name(name));
    if let Some(arn) = dlq_arn {
        req = req.attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"2"}}"#),
        );
    }
    req.send().await.unwrap().queue_url.unwrap()
}

async fn arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap()
}

/// One ReceiveMessage call: up to ten visible messages, hidden for `visibility` seconds.
async fn receive_once(sqs: &aws_sdk_sqs::Client, url: &str, visibility: i32) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// Everything visible now (bounded), hidden for `visibility` (> 0) seconds.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, visibility: i32) -> Vec<Message> {
    let mut out = Vec::new();
    for _ in 0..200 {
        let got = receive_once(sqs, url, visibility).await;
        if got.is_empty() {
            break;
        }
        out.extend(got);
    }
    out
}

/// What Lambda's event source mapping hands the function.
fn as_event(messages: &[Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r
        })
        .collect();
    event
}

/// Delete what the function did not report as failed (the event source mapping's job).
async fn acknowledge(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Message],
    failed: &[String],
) {
    for m in messages {
        if !failed.contains(m.message_id.as_ref().unwrap()) {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn scheduled_sync_through_the_lambda_handlers_on_moto_converges_and_shrugs_off_redelivery_and_poison()
 {
    // The directory: a small emulated tenant with small pages, so rounds span many pages.
    let emulator = Emulator::start(EmulatorConfig {
        user_page_size: 23,
        group_page_size: 7,
        member_slice: 20,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let info = emulator.add_tenant(&TenantSpec::new(11, 120, 15));
    let tenant = TenantId::new(info.tenant_id.clone());
    let app = emulator.app();
    let mut gc = GraphConfig::new(
        url::Url::parse(&emulator.graph_base_url()).unwrap(),
        url::Url::parse(&emulator.login_base_url()).unwrap(),
        app.client_id.clone(),
        Secret::new(app.client_secret.clone()),
    );
    gc.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    let graph = Arc::new(GraphClient::new(gc).unwrap());

    // AWS on moto: the table, the two queues (pages with a DLQ), the event bus.
    let config = sdk_config_for_endpoint(&moto::endpoint()).await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        moto::unique_name("e2e"),
    ));
    store.create_table().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let pages_dlq = queue(&sqs, "pages-dlq", None).await;
    let dlq_arn = arn(&sqs, &pages_dlq).await;
    let q = Queues {
        fetch: queue(&sqs, "fetch", None).await,
        pages: queue(&sqs, "pages", Some(&dlq_arn)).await,
        pages_dlq,
        sqs,
    };
    let events_client = aws_sdk_eventbridge::Client::new(&config);
    let bus = moto::unique_name("bus");
    events_client
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let events = Arc::new(EventBridgeSink::new(events_client, &bus));
    // Small message limit: big pages are split, as they would be for 256 KiB with 999-user pages.
    let page_queue =
        Arc::new(SqsPageQueue::new(q.sqs.clone(), &q.pages).with_max_message_bytes(8 * 1024));
    let fetch_requests = Arc::new(SqsFetchRequests::new(q.sqs.clone(), &q.fetch));

    store
        .put_connection(&Connection {
            tenant_id: tenant.clone(),
            account_id: AccountId("acct-1".into()),
            label: "Contoso".into(),
            tenant_name: Some(info.name.clone()),
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: chrono::Utc::now(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();

    // 1. The hourly schedule fires.
    let scheduled = entra_sync_scheduler::handler::handle(
        &DepsBuilder::on(&store).schedule(fetch_requests.clone()),
        &entra_sync_scheduler::handler::Settings {
            max_jitter: Duration::ZERO,
        },
        serde_json::from_str(include_str!("../../events/scheduler/happy.json")).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(scheduled.requested, 1);

    // 2. Fetch, a few pages per invocation: each paused fetch requests its continuation.
    let fetch_deps = entra_sync_fetch::handler::Deps {
        fetch: DepsBuilder::on(&store)
            .events(events.clone())
            .projected()
            .fetch(graph.clone(), page_queue.clone()),
        requests: fetch_requests.clone(),
    };
    let settings = entra_sync_fetch::handler::Settings {
        max_pages: 4,
        lease_ttl: Duration::from_secs(900),
    };
    let mut invocations = 0;
    loop {
        let requests = receive(&q.sqs, &q.fetch, 60).await;
        if requests.is_empty() {
            break;
        }
        invocations += 1;
        assert!(invocations < 50, "fetch does not finish");
        let response = entra_sync_fetch::handler::handle(
            &fetch_deps,
            &settings,
            &format!("invocation-{invocations}"),
            as_event(&requests),
        )
        .await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert!(failed.is_empty(), "fetch failed: {failed:?}");
        acknowledge(&q.sqs, &q.fetch, &requests, &failed).await;
    }
    assert!(
        invocations > 1,
        "the page budget made fetch continue itself"
    );

    // 3. Reconcile every page message SQS holds, in batches of ten, newest first.
    let reconcile_deps = entra_sync_reconcile::handler::Deps {
        reconcile: DepsBuilder::on(&store)
            .events(events.clone())
            .projected()
            .reconcile(),
        // The message idempotency records on the same table, as in the deployed function.
        claims: entra_sync_core::services::claim::Claims::new(
            store.clone(),
            entra_sync_core::idempotency::IdempotencyConfig::default(),
            Arc::new(SystemClock),
        ),
    };
    let mut pages = receive(&q.sqs, &q.pages, 120).await;
    assert!(pages.len() > 10, "only {} page messages", pages.len());
    pages.reverse();
    for batch in pages.chunks(10) {
        let r = entra_sync_reconcile::handler::handle(&reconcile_deps, as_event(batch)).await;
        assert!(r.batch_item_failures.is_empty());
    }
    acknowledge(&q.sqs, &q.pages, &pages, &[]).await;
    let directory = emulator.tenant(tenant.as_str()).unwrap().snapshot();
    let v = compare(
        &export_mirror(store.as_ref(), &tenant).await.unwrap(),
        &directory,
    );
    assert!(v.matches(), "store differs: {:?}", v.differences);
    assert!(v.users_expected == 120 && v.memberships_expected > 0);
    let runs = store.list_runs(&tenant, 5).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    // The run's projection wrote the host product's users to DynamoDB: one per directory user
    // the default filters admit (enabled members), each linked to its directory user.
    let admitted = directory
        .users
        .iter()
        .filter(|u| {
            u["accountEnabled"] == serde_json::json!(true)
                && u["userType"] != serde_json::json!("Guest")
        })
        .count() as u64;
    assert!(admitted > 0);
    assert_eq!(
        runs[0].provisioning.created, admitted,
        "{:?}",
        runs[0].provisioning
    );
    let account = store
        .get_connection(&tenant)
        .await
        .unwrap()
        .unwrap()
        .account_id;
    let locals = store
        .list_local_users(&account, None, 1000)
        .await
        .unwrap()
        .items;
    assert_eq!(locals.len() as u64, admitted);
    assert!(
        locals
            .iter()
            .all(|u| u.link.as_ref().is_some_and(|l| l.tenant_id == tenant))
    );

    // 4. Every page again, twice, in another order: nothing changes (each message id is
    //    acknowledged from its idempotency record).
    let before = export_mirror(store.as_ref(), &tenant).await.unwrap();
    let mut again: Vec<Message> = pages.iter().step_by(2).cloned().collect();
    again.extend(pages.iter().skip(1).step_by(2).cloned());
    again.extend(pages.iter().cloned());
    for batch in again.chunks(7) {
        let r = entra_sync_reconcile::handler::handle(&reconcile_deps, as_event(batch)).await;
        assert!(r.batch_item_failures.is_empty());
    }
    let after = export_mirror(store.as_ref(), &tenant).await.unwrap();
    assert_eq!(after.users, before.users);
    assert_eq!(after.groups, before.groups);
    assert_eq!(after.memberships, before.memberships);

    // 5. A poison message beside a valid (redelivered) page: the page is applied, the poison
    //    fails every delivery and SQS moves it to the dead-letter queue.
    q.sqs
        .send_message()
        .queue_url(&q.pages)
        .message_body("{\"tenant_id\": \"truncated")
        .send()
        .await
        .unwrap();
    q.sqs
        .send_message()
        .queue_url(&q.pages)
        .message_body(pages[0].body.clone().unwrap())
        .send()
        .await
        .unwrap();
    let mut poison_failures = 0;
    let mut valid_applied = 0;
    for _ in 0..10 {
        // Visibility 0: a failed message is visible again at once, as after its timeout.
        let got = receive_once(&q.sqs, &q.pages, 0).await;
        if got.is_empty() {
            break;
        }
        let r = entra_sync_reconcile::handler::handle(&reconcile_deps, as_event(&got)).await;
        let failed: Vec<String> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        poison_failures += failed.len();
        valid_applied += got.len() - failed.len();
        acknowledge(&q.sqs, &q.pages, &got, &failed).await;
    }
    assert_eq!(
        valid_applied, 1,
        "the valid page is applied once, not held back"
    );
    assert_eq!(
        poison_failures, 2,
        "the poison failed on each of its deliveries"
    );
    let dead = receive(&q.sqs, &q.pages_dlq, 60).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("{\"tenant_id\": \"truncated"));
    let v = compare(
        &export_mirror(store.as_ref(), &tenant).await.unwrap(),
        &directory,
    );
    assert!(v.matches(), "store differs: {:?}", v.differences);
}
