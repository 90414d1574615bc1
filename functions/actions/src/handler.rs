//! Translate the function's three events into the write half's services and their outcomes
//! back: the one place an action failure is classified for Lambda.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use entra_sync_core::actions::ActionSpec;
use entra_sync_core::actions::ports::ActionMessage;
use entra_sync_core::actions::record::{ActionRecord, Origin};
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::services::actions::{
    ActionDeps, ActionError, ExecuteOutcome, MessageVerdict, SubmitRequest, execute_action,
    expire_overdue, handle_action_message, run_due_workflows, submit_action,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, error, info, info_span, warn};

/// A direct invocation: submit an action (and, unless it waits for an approver, run it now), or
/// run an approved password reset as its requester.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Direct {
    Submit {
        account_id: AccountId,
        tenant_id: TenantId,
        idempotency_key: String,
        requested_by: String,
        action: ActionSpec,
    },
    Run {
        account_id: AccountId,
        tenant_id: TenantId,
        action_id: String,
        runner: String,
    },
}

/// The answer to a direct invocation.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum DirectAnswer {
    Ok {
        action: Box<ActionRecord>,
        /// A password reset's temporary password, shown this once.
        #[serde(skip_serializing_if = "Option::is_none")]
        temporary_password: Option<String>,
    },
    Error {
        error: &'static str,
        message: String,
        retryable: bool,
    },
}

impl DirectAnswer {
    fn error(e: &ActionError) -> Self {
        DirectAnswer::Error {
            error: e.code(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

/// What the function answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Batch(SqsBatchResponse),
    Direct(DirectAnswer),
    Tick(TickReport),
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct TickReport {
    pub workflows_advanced: usize,
    pub approvals_expired: usize,
}

/// Route one event by its shape: SQS records, the schedule's tick (an EventBridge scheduled
/// event), or else a direct request. Anything that is neither a batch nor a tick is read as a
/// direct request, so a misspelt request is refused naming the field rather than taken for a
/// tick.
pub async fn handle(deps: &ActionDeps, payload: Value) -> Answer {
    if payload.get("Records").is_some() {
        return match serde_json::from_value::<SqsEvent>(payload) {
            Ok(event) => Answer::Batch(handle_batch(deps, event).await),
            Err(e) => {
                error!(error = %e, "unreadable SQS event");
                Answer::Batch(SqsBatchResponse::default())
            }
        };
    }
    if is_tick(&payload) {
        return Answer::Tick(handle_tick(deps).await);
    }
    Answer::Direct(match parse_direct(&payload) {
        Ok(d) => handle_direct(deps, d).await,
        Err(message) => DirectAnswer::Error {
            error: "invalid_request",
            message,
            retryable: false,
        },
    })
}

/// The schedule's event: EventBridge's scheduled event (`source` `aws.events`).
fn is_tick(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("aws.events")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// The fields of a direct request and of its action (all strings but `action`).
const REQUEST_FIELDS: [&str; 8] = [
    "op",
    "account_id",
    "tenant_id",
    "idempotency_key",
    "requested_by",
    "action",
    "action_id",
    "runner",
];
const ACTION_FIELDS: [&str; 5] = [
    "kind",
    "user",
    "group",
    "service_principal_id",
    "app_role_id",
];

/// Read a direct request. Refusals name the field (`action.user: must be a string`, `missing
/// field `tenant_id``, `unknown field `x``), so the caller knows what to fix. The type checks of
/// the known fields come first because serde's own type errors inside a tagged enum do not say
/// which field they are about; unknown and missing fields are serde's (it names them).
pub fn parse_direct(payload: &Value) -> Result<Direct, String> {
    let refuse = |m: String| format!("not an action request: {m}");
    let Some(fields) = payload.as_object() else {
        return Err(refuse("the request must be a JSON object".into()));
    };
    if !fields.contains_key("op") {
        return Err(refuse("missing field `op` (\"submit\" or \"run\")".into()));
    }
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("action", Value::Object(action)) => {
                for (field, v) in action {
                    let known = ACTION_FIELDS.contains(&field.as_str());
                    if known && !v.is_string() && !(v.is_null() && field == "app_role_id") {
                        return Err(refuse(format!("action.{field}: must be a string")));
                    }
                }
                if let Err(e) = serde_json::from_value::<ActionSpec>(value.clone()) {
                    let text = e.to_string();
                    let field = if text.starts_with("unknown variant") {
                        "action.kind"
                    } else {
                        "action"
                    };
                    return Err(refuse(format!("{field}: {text}")));
                }
            }
            ("action", _) => return Err(refuse("action: must be a JSON object".into())),
            (name, v) if REQUEST_FIELDS.contains(&name) && !v.is_string() => {
                return Err(refuse(format!("{name}: must be a string")));
            }
            _ => {}
        }
    }
    serde_json::from_value::<Direct>(payload.clone()).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("unknown variant") {
            refuse(format!("op: {text}"))
        } else {
            refuse(text)
        }
    })
}

/// A FIFO batch: messages of one group (tenant + user) run in order, and after a failure the
/// rest of that group fails too (so a later action never overtakes a retried one); groups run
/// concurrently.
pub async fn handle_batch(deps: &ActionDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut groups: BTreeMap<String, Vec<&SqsMessage>> = BTreeMap::new();
    for m in &event.records {
        let group = m
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        groups.entry(group).or_default().push(m);
    }
    let failed = futures::future::join_all(groups.into_values().map(|msgs| async move {
        let mut failed = Vec::new();
        let mut stop = false;
        for m in msgs {
            if stop || !handle_message(deps, m).await {
                stop = true;
                if let Some(id) = &m.message_id {
                    failed.push(id.clone());
                }
            }
        }
        failed
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}

/// One message; `true` when it may be acknowledged.
async fn handle_message(deps: &ActionDeps, m: &SqsMessage) -> bool {
    let message_id = m.message_id.as_deref().unwrap_or("");
    let parsed: Result<ActionMessage, String> = match m.body.as_deref() {
        Some(b) => serde_json::from_str(b).map_err(|e| e.to_string()),
        None => Err("no body".into()),
    };
    let msg = match parsed {
        Ok(msg) => msg,
        Err(e) => {
            // Fails on every delivery, so it ends in the dead-letter queue.
            error!(message_id, error = %e, "malformed action message");
            return false;
        }
    };
    let span = info_span!("action", message_id, tenant = %msg.tenant_id, action = %msg.action_id);
    match handle_action_message(deps, &msg).instrument(span).await {
        MessageVerdict::Ack => true,
        MessageVerdict::Retry { .. } => false,
        MessageVerdict::DeadLetter => false,
    }
}

pub async fn handle_direct(deps: &ActionDeps, d: Direct) -> DirectAnswer {
    match d {
        Direct::Submit {
            account_id,
            tenant_id,
            idempotency_key,
            requested_by,
            action,
        } => {
            let req = SubmitRequest {
                account: account_id,
                tenant: tenant_id.clone(),
                key: idempotency_key,
                spec: action,
                requested_by: requested_by.clone(),
                origin: Origin::Api,
            };
            let record = match submit_action(deps, req).await {
                Ok(r) => r,
                Err(e) => return DirectAnswer::error(&e),
            };
            // Run it now unless it waits: a reset password runs as its requester.
            let runner = matches!(
                record.kind(),
                entra_sync_core::actions::ActionKind::ResetPassword
            )
            .then_some(requested_by.as_str());
            run_now(deps, &tenant_id, record, runner).await
        }
        Direct::Run {
            account_id,
            tenant_id,
            action_id,
            runner,
        } => {
            match entra_sync_core::services::actions::get_action(
                deps,
                &account_id,
                &tenant_id,
                &action_id,
            )
            .await
            {
                Ok(record) => run_now(deps, &tenant_id, record, Some(&runner)).await,
                Err(e) => DirectAnswer::error(&e),
            }
        }
    }
}

async fn run_now(
    deps: &ActionDeps,
    tenant: &TenantId,
    record: ActionRecord,
    runner: Option<&str>,
) -> DirectAnswer {
    match execute_action(deps, tenant, &record.id, runner).await {
        Ok(ExecuteOutcome::Done(done)) => DirectAnswer::Ok {
            action: Box::new(done.record),
            temporary_password: done.temporary_password.map(|p| p.expose().to_string()),
        },
        Ok(
            ExecuteOutcome::AlreadyFinal(r)
            | ExecuteOutcome::NotReady(r)
            | ExecuteOutcome::RetryLater { record: r, .. },
        ) => DirectAnswer::Ok {
            action: Box::new(r),
            temporary_password: None,
        },
        // The queue's delivery is running it: answer with the record as it is.
        Ok(ExecuteOutcome::Busy { .. }) => DirectAnswer::Ok {
            action: Box::new(record),
            temporary_password: None,
        },
        Err(e) => DirectAnswer::error(&e),
    }
}

/// The schedule's tick: due workflows, then every connection's overdue approvals.
pub async fn handle_tick(deps: &ActionDeps) -> TickReport {
    let mut report = TickReport::default();
    match run_due_workflows(deps, 500).await {
        Ok(n) => report.workflows_advanced = n,
        Err(e) => warn!(error = %e, "due workflows not run"),
    }
    match deps.connections.list_connections().await {
        Ok(connections) => {
            for c in connections {
                match expire_overdue(deps, &c.tenant_id).await {
                    Ok(n) => report.approvals_expired += n,
                    Err(e) => warn!(tenant = %c.tenant_id, error = %e, "approvals not expired"),
                }
            }
        }
        Err(e) => warn!(error = %e, "connections not listed; approvals not expired"),
    }
    info!(
        workflows = report.workflows_advanced,
        expired = report.approvals_expired,
        "actions tick"
    );
    report
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::SqsEvent;
    use entra_sync_core::actions::kind::{ActionKind, ActionSpec};
    use entra_sync_core::actions::record::ActionStatus;
    use entra_sync_core::actions::testing::*;
    use entra_sync_core::directory_write::WriteKind;

    use super::*;

    fn sample(name: &str) -> Value {
        let text = match name {
            "happy" => include_str!("../../../events/actions/happy.json"),
            "malformed" => include_str!("../../../events/actions/malformed.json"),
            "direct" => include_str!("../../../events/actions/direct.json"),
            "tick" => include_str!("../../../events/actions/tick.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap_or_else(|e| panic!("events/actions/{name}.json: {e}"))
    }

    /// The sample batch with its message bodies naming `ids` (the samples carry placeholder ids).
    fn batch_for(ids: &[(&str, &str)]) -> Value {
        let mut v = sample("happy");
        let records = v["Records"].as_array_mut().unwrap();
        records.truncate(ids.len());
        for (r, (action, user)) in records.iter_mut().zip(ids) {
            r["body"] = Value::String(
                serde_json::json!({"tenant_id": T, "action_id": action, "user_id": user})
                    .to_string(),
            );
            r["attributes"]["MessageGroupId"] = Value::String(format!("{T}:{user}"));
        }
        v
    }

    #[tokio::test]
    async fn a_batch_with_duplicates_writes_once_per_action() {
        let w = world(&[ActionKind::AddGroupMember, ActionKind::RevokeSessions]).await;
        let a = submit_action(&w.deps, req("k1", add_ann_to(SALES)))
            .await
            .unwrap();
        let b = submit_action(
            &w.deps,
            req("k2", ActionSpec::RevokeSessions { user: BOB.into() }),
        )
        .await
        .unwrap();
        w.queue.drain();
        // The same message delivered twice in one batch, and again in a second batch.
        let batch = batch_for(&[(&a.id, ANN), (&a.id, ANN), (&b.id, BOB)]);
        let Answer::Batch(r) = handle(&w.deps, batch.clone()).await else {
            panic!()
        };
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
        let Answer::Batch(r) = handle(&w.deps, batch).await else {
            panic!()
        };
        assert!(r.batch_item_failures.is_empty());
        let t = tenant();
        assert_eq!(w.writer.calls(&t, WriteKind::AddGroupMember), 1);
        assert_eq!(w.writer.calls(&t, WriteKind::RevokeSessions), 1);
    }

    #[tokio::test]
    async fn a_malformed_message_fails_alone_and_holds_back_only_its_group() {
        let w = world(&[ActionKind::RevokeSessions]).await;
        let b = submit_action(
            &w.deps,
            req("k2", ActionSpec::RevokeSessions { user: BOB.into() }),
        )
        .await
        .unwrap();
        let mut event = sample("malformed");
        // Its second record is a good message of another group.
        event["Records"][1]["body"] = Value::String(
            serde_json::json!({"tenant_id": T, "action_id": b.id, "user_id": BOB}).to_string(),
        );
        let ids: Vec<String> = serde_json::from_value::<SqsEvent>(event.clone())
            .unwrap()
            .records
            .iter()
            .map(|m| m.message_id.clone().unwrap())
            .collect();
        let Answer::Batch(r) = handle(&w.deps, event).await else {
            panic!()
        };
        let failed: Vec<&str> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            failed,
            vec![ids[0].as_str(), ids[2].as_str()],
            "the bad one and its group's next"
        );
        assert_eq!(w.writer.calls(&tenant(), WriteKind::RevokeSessions), 1);
    }

    #[tokio::test]
    async fn a_direct_invocation_answers_with_the_result() {
        let w = world(&[ActionKind::RevokeSessions]).await;
        let Answer::Direct(answer) = handle(&w.deps, sample("direct")).await else {
            panic!()
        };
        let DirectAnswer::Ok {
            action,
            temporary_password,
        } = answer
        else {
            panic!("{answer:?}")
        };
        assert_eq!(
            action.status,
            ActionStatus::Succeeded {
                already_in_effect: false
            }
        );
        assert!(temporary_password.is_none());
        // The same key again: the same answer, no second write.
        let Answer::Direct(DirectAnswer::Ok { action: again, .. }) =
            handle(&w.deps, sample("direct")).await
        else {
            panic!()
        };
        assert_eq!(again.id, action.id);
        assert_eq!(w.writer.calls(&tenant(), WriteKind::RevokeSessions), 1);
    }

    #[tokio::test]
    async fn a_direct_request_for_another_accounts_tenant_is_not_found() {
        let w = world(&[ActionKind::RevokeSessions]).await;
        let mut d = sample("direct");
        d["account_id"] = Value::String("someone-else".into());
        let Answer::Direct(DirectAnswer::Error { error, .. }) = handle(&w.deps, d).await else {
            panic!()
        };
        assert_eq!(error, "not_found");
        assert_eq!(w.writer.total_calls(), 0);
    }

    #[tokio::test]
    async fn a_bad_direct_request_is_refused_naming_the_problem() {
        let w = world(&[ActionKind::RevokeSessions]).await;
        let mut d = sample("direct");
        d["action"]["kind"] = Value::String("nuke".into());
        let Answer::Direct(DirectAnswer::Error { error, message, .. }) = handle(&w.deps, d).await
        else {
            panic!()
        };
        assert_eq!(error, "invalid_request");
        assert!(message.contains("nuke"), "{message}");
    }

    #[tokio::test]
    async fn a_misspelt_request_is_refused_naming_the_field_and_never_taken_for_a_tick() {
        let w = world(&[ActionKind::BlockSignIn]).await;
        submit_action(
            &w.deps,
            req("k1", ActionSpec::BlockSignIn { user: BOB.into() }),
        )
        .await
        .unwrap();
        w.clock.advance(chrono::Duration::hours(73));
        let mut d = sample("direct");
        let op = d.as_object_mut().unwrap().remove("op").unwrap();
        d["Op"] = op;
        let Answer::Direct(DirectAnswer::Error { error, message, .. }) = handle(&w.deps, d).await
        else {
            panic!("a request without `op` is not a tick")
        };
        assert_eq!(error, "invalid_request");
        assert!(message.contains("`op`"), "{message}");
        // Nothing was expired by it.
        let Answer::Tick(report) = handle(&w.deps, sample("tick")).await else {
            panic!()
        };
        assert_eq!(report.approvals_expired, 1);
    }

    #[tokio::test]
    async fn a_field_of_the_wrong_type_is_named() {
        let w = world(&[ActionKind::RevokeSessions]).await;
        let mut d = sample("direct");
        d["action"]["user"] = serde_json::json!(42);
        let Answer::Direct(DirectAnswer::Error { message, .. }) = handle(&w.deps, d).await else {
            panic!()
        };
        assert!(message.contains("action.user"), "{message}");
        let mut d = sample("direct");
        d["requested_by"] = serde_json::json!(["x"]);
        let Answer::Direct(DirectAnswer::Error { message, .. }) = handle(&w.deps, d).await else {
            panic!()
        };
        assert!(message.contains("requested_by"), "{message}");
        assert_eq!(w.writer.total_calls(), 0);
    }

    #[tokio::test]
    async fn the_tick_runs_due_workflows_and_expires_approvals() {
        let w = world(&[ActionKind::BlockSignIn]).await;
        submit_action(
            &w.deps,
            req("k1", ActionSpec::BlockSignIn { user: BOB.into() }),
        )
        .await
        .unwrap();
        w.clock.advance(chrono::Duration::hours(73));
        let Answer::Tick(report) = handle(&w.deps, sample("tick")).await else {
            panic!()
        };
        assert_eq!(report.approvals_expired, 1);
    }
}
