//! Processing a queued delivery: for each HR event, fill what the event lacks from the HR
//! system's API, match the person to a directory user (employee id, then work email), decide
//! ([`decide`]) and start, re-schedule or cancel workflows. Idempotent: every workflow is
//! started under a key made of the delivery id and the event's place in it, so a redelivered
//! message (or a crash half-way) starts nothing twice.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{WebhookError, requested_by};
use crate::actions::kind::ActionSpec;
use crate::actions::resolve::UserName;
use crate::actions::workflow::{
    Step, StepSpec, StepStatus, Template, Workflow, WorkflowOrigin, WorkflowParams, WorkflowStatus,
    steps_for,
};
use crate::error::StoreError;
use crate::model::StoredUser;
use crate::ports::SecretVault;
use crate::services::actions::{
    ActionDeps, ActionError, StartWorkflow, advance_workflow, cancel_workflow, owned_connection,
    start_workflow, usable,
};
use crate::services::load_settings;
use crate::webhooks::delivery::{Delivery, Processing};
use crate::webhooks::endpoint::{WebhookEndpoint, WebhookEndpointStore};
use crate::webhooks::mapping::{
    Grants, HrPerson, HrSettings, Lifecycle, Move, WorkflowView, decide,
};
use crate::webhooks::payload::{HrEvent, HrEventKind};
use crate::webhooks::ports::{
    DeliveryMessage, DeliveryStore, EmployeeLookup, HrDirectory, HrDirectoryError, HrPersonStore,
    ReviewStore,
};
use crate::webhooks::review::{ReviewItem, ReviewReason, ReviewStatus, review_id};

/// What the processor uses: the write half's deps (workflows run there) plus the webhook
/// stores, the employee-id lookup and the HR systems' APIs.
#[derive(Clone)]
pub struct ProcessDeps {
    pub actions: ActionDeps,
    pub endpoints: Arc<dyn WebhookEndpointStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub reviews: Arc<dyn ReviewStore>,
    pub people: Arc<dyn HrPersonStore>,
    pub employees: Arc<dyn EmployeeLookup>,
    pub hr_api: Arc<dyn HrDirectory>,
    pub vault: Arc<dyn SecretVault>,
}

/// Process one queued delivery. `Ok` means the message can be deleted (done now or before, or
/// nothing can ever be done: the outcome is in the delivery log); `Err` with a retryable error
/// means try the message again later.
pub async fn process_delivery(
    deps: &ProcessDeps,
    msg: &DeliveryMessage,
) -> Result<Delivery, WebhookError> {
    let key = msg.endpoint();
    let Some(mut delivery) = deps.deliveries.get_delivery(&key, &msg.delivery_id).await? else {
        return Err(WebhookError::UnknownDelivery {
            id: msg.delivery_id.clone(),
        });
    };
    if delivery.processing != Processing::Queued {
        return Ok(delivery);
    }
    let endpoint = deps.endpoints.get_endpoint(&key).await?;
    let settings = load_settings(deps.actions.settings.as_ref(), &delivery.tenant_id).await?;
    let mut notes = Vec::new();
    // A replay keeps what earlier runs started (the log never forgets a link).
    let mut workflow_ids = delivery.workflow_ids.clone();
    let mut review_ids = delivery.review_ids.clone();
    for (n, event) in delivery.events.clone().into_iter().enumerate() {
        let r = match &endpoint {
            Some(e) => process_event(deps, e, &settings.hr, &delivery, n, event).await,
            None => Err(WebhookError::UnknownEndpoint {
                system: key.source.to_string(),
            }),
        };
        match r {
            Ok(out) => {
                for id in out.workflow_ids {
                    if !workflow_ids.contains(&id) {
                        workflow_ids.push(id);
                    }
                }
                if let Some(id) = out.review_id
                    && !review_ids.contains(&id)
                {
                    review_ids.push(id);
                }
                notes.extend(out.notes.into_iter().map(|t| format!("event {n}: {t}")));
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, delivery = %delivery.id, event = n, "hr event not applied");
                notes.push(format!("event {n}: not applied: {e}"));
            }
        }
    }
    for _ in 0..8 {
        delivery.processing = Processing::Done {
            notes: notes.clone(),
        };
        delivery.workflow_ids = workflow_ids.clone();
        delivery.review_ids = review_ids.clone();
        let expected = delivery.rev;
        delivery.rev += 1;
        match deps.deliveries.update_delivery(&delivery, expected).await {
            Ok(()) => {
                tracing::info!(delivery = %delivery.id, workflows = workflow_ids.len(), held = review_ids.len(), "webhook delivery processed");
                return Ok(delivery);
            }
            Err(StoreError::Conflict(_)) => {
                match deps.deliveries.get_delivery(&key, &msg.delivery_id).await? {
                    Some(d) if d.processing != Processing::Queued => return Ok(d),
                    Some(d) => delivery = d,
                    None => break,
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(format!("delivery {}", msg.delivery_id)).into())
}

/// What one event led to.
#[derive(Debug, Default)]
pub(crate) struct EventOutcome {
    pub workflow_ids: Vec<String>,
    pub review_id: Option<String>,
    pub notes: Vec<String>,
}

async fn process_event(
    deps: &ProcessDeps,
    endpoint: &WebhookEndpoint,
    settings: &HrSettings,
    delivery: &Delivery,
    n: usize,
    mut event: HrEvent,
) -> Result<EventOutcome, WebhookError> {
    let mut out = EventOutcome::default();
    if event.needs_lookup {
        match fill_from_api(deps, endpoint, &mut event).await? {
            true => {}
            false => {
                out.notes.push(format!(
                    "employee {} not found in {}'s API",
                    event.provider_id, endpoint.key.source
                ));
                return Ok(out);
            }
        }
    }
    let tenant = &delivery.tenant_id;
    let person = deps
        .people
        .get_person(tenant, endpoint.key.source, &event.provider_id)
        .await?;
    let user = match known_user(deps, person.as_ref()).await? {
        Some(u) => u,
        None => match match_user(deps, tenant, &event).await? {
            Matched::One(u) => *u,
            Matched::Review(reason) => {
                let id = hold(deps, endpoint, delivery, n, &event, reason).await?;
                out.notes.push("held for review".into());
                out.review_id = Some(id);
                return Ok(out);
            }
        },
    };
    apply(
        deps, endpoint, settings, delivery, n, &event, person, &user, &mut out,
    )
    .await?;
    Ok(out)
}

/// Decide and apply the moves for a matched person; then store the person's state.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply(
    deps: &ProcessDeps,
    endpoint: &WebhookEndpoint,
    settings: &HrSettings,
    delivery: &Delivery,
    n: usize,
    event: &HrEvent,
    person: Option<HrPerson>,
    user: &StoredUser,
    out: &mut EventOutcome,
) -> Result<(), WebhookError> {
    let tenant = &delivery.tenant_id;
    let source = endpoint.key.source;
    let mut person =
        person.unwrap_or_else(|| HrPerson::new(tenant.clone(), source, &event.provider_id));
    let expected_rev = person.rev;
    let on = view(deps, person.onboarding.as_deref(), tenant).await?;
    let off = view(deps, person.offboarding.as_deref(), tenant).await?;
    let decision = decide(
        settings,
        event,
        &person,
        on.as_ref(),
        off.as_ref(),
        user.user.department.as_deref(),
    );
    out.notes.extend(decision.notes);
    let base_key = format!("hr:{}:{n}", delivery.id);
    let origin = WorkflowOrigin::HrWebhook {
        delivery_id: delivery.id.clone(),
    };
    let by = requested_by(source);
    let account = &endpoint.key.account_id;
    for mv in decision.moves {
        match mv {
            Move::Onboard { grants, at } => {
                let wf = start_workflow(
                    &deps.actions,
                    StartWorkflow {
                        account: account.clone(),
                        tenant: tenant.clone(),
                        template: Template::Onboarding,
                        params: WorkflowParams {
                            user: user.user.id.clone(),
                            groups: grants.groups,
                            apps: grants.apps,
                            at,
                        },
                        requested_by: by.clone(),
                        origin: origin.clone(),
                        key: Some(format!("{base_key}:onboarding")),
                    },
                )
                .await?;
                person.onboarding = Some(wf.id.clone());
                out.workflow_ids.push(wf.id);
            }
            Move::Offboard { at } => {
                let wf = start_workflow(
                    &deps.actions,
                    StartWorkflow {
                        account: account.clone(),
                        tenant: tenant.clone(),
                        template: Template::Offboarding,
                        params: WorkflowParams {
                            user: user.user.id.clone(),
                            groups: vec![],
                            apps: vec![],
                            at,
                        },
                        requested_by: by.clone(),
                        origin: origin.clone(),
                        key: Some(format!("{base_key}:offboarding")),
                    },
                )
                .await?;
                person.offboarding = Some(wf.id.clone());
                out.workflow_ids.push(wf.id);
            }
            Move::Move { add, remove } => {
                let wf = start_move(
                    &deps.actions,
                    endpoint,
                    delivery,
                    &user.user.id,
                    add,
                    remove,
                    &format!("{base_key}:move"),
                    &by,
                )
                .await?;
                out.workflow_ids.push(wf.id);
            }
            Move::Reschedule { workflow_id, at } => {
                if reschedule(&deps.actions, tenant, &workflow_id, at).await? {
                    out.notes
                        .push(format!("workflow {workflow_id} re-scheduled"));
                } else {
                    out.notes.push(format!(
                        "workflow {workflow_id} has started; its date was not changed"
                    ));
                }
            }
            Move::Cancel { workflow_id, why } => {
                match cancel_workflow(&deps.actions, account, tenant, &workflow_id, &by).await {
                    Ok(_) => out
                        .notes
                        .push(format!("workflow {workflow_id} cancelled: {why}")),
                    Err(ActionError::Workflow(reason)) => out.notes.push(reason),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    person.user_id = Some(user.user.id.clone());
    match event.kind() {
        HrEventKind::Hire => person.lifecycle = Lifecycle::Hired,
        HrEventKind::Termination => person.lifecycle = Lifecycle::Terminated,
        HrEventKind::Update if event.end_date.is_some() && person.offboarding.is_some() => {
            person.lifecycle = Lifecycle::Terminated;
        }
        HrEventKind::Update => {
            if person.lifecycle == Lifecycle::Unknown {
                person.lifecycle = Lifecycle::Hired;
            }
        }
    }
    if event.department.is_some() {
        person.department = event.department.clone();
    }
    if event.manager.is_some() {
        person.manager = event.manager.clone();
    }
    person.rev = expected_rev + 1;
    match deps.people.put_person(&person, expected_rev).await {
        Ok(()) => Ok(()),
        // Another worker processed an event of the same person meanwhile: the workflows
        // started above are keyed, so processing again (retryable) converges.
        Err(e) => Err(e.into()),
    }
}

/// Fill what a lookup event lacks from the HR system's API. `false`: the API does not know
/// the employee.
async fn fill_from_api(
    deps: &ProcessDeps,
    endpoint: &WebhookEndpoint,
    event: &mut HrEvent,
) -> Result<bool, WebhookError> {
    let Some(name) = &endpoint.api_credential else {
        return Err(HrDirectoryError::NoCredential.into());
    };
    let credential = deps.vault.get_secret(name).await?;
    let Some(emp) = deps
        .hr_api
        .employee(endpoint, &credential, &event.provider_id)
        .await?
    else {
        return Ok(false);
    };
    if let Some(num) = emp.employee_number.filter(|s| !s.trim().is_empty()) {
        event.employee_id = num;
    }
    event.work_email = emp
        .work_email
        .map(|e| e.to_ascii_lowercase())
        .or(event.work_email.take());
    event.start_date = emp.start_date.or(event.start_date);
    event.end_date = emp.termination_date.or(event.end_date);
    event.department = emp.department.or(event.department.take());
    event.manager = emp.manager.or(event.manager.take());
    // A hire only needs the start date; an update that finds no end date is not a termination.
    if event.kind() == HrEventKind::Hire {
        event.end_date = None;
    }
    event.needs_lookup = false;
    Ok(true)
}

/// The user a person was matched to before, if still in the mirror.
async fn known_user(
    deps: &ProcessDeps,
    person: Option<&HrPerson>,
) -> Result<Option<StoredUser>, WebhookError> {
    let Some(p) = person else { return Ok(None) };
    let Some(id) = &p.user_id else {
        return Ok(None);
    };
    let users = deps
        .actions
        .mirror
        .get_users(&p.tenant_id, std::slice::from_ref(id))
        .await
        .map_err(WebhookError::Store)?;
    Ok(users.into_iter().find(|u| u.presence.is_present()))
}

pub(crate) enum Matched {
    One(Box<StoredUser>),
    Review(ReviewReason),
}

/// One user, several (ambiguous), or none (`None`: try the next way of matching).
fn pick(mut users: Vec<StoredUser>) -> Option<Matched> {
    users.retain(|u| u.presence.is_present());
    match users.len() {
        0 => None,
        1 => users.pop().map(|u| Matched::One(Box::new(u))),
        _ => Some(Matched::Review(ReviewReason::Ambiguous {
            candidates: users.into_iter().map(|u| u.user.id).collect(),
        })),
    }
}

/// Match by employee id first, then by work email; present users only.
pub(crate) async fn match_user(
    deps: &ProcessDeps,
    tenant: &crate::model::TenantId,
    event: &HrEvent,
) -> Result<Matched, WebhookError> {
    if !event.employee_id.trim().is_empty()
        && let Some(m) = pick(
            deps.employees
                .users_by_employee_id(tenant, &event.employee_id)
                .await?,
        )
    {
        return Ok(m);
    }
    if let Some(email) = &event.work_email
        && let Ok(UserName::Handle(h)) = UserName::parse(email)
        && let Some(m) = pick(deps.actions.lookup.users_by_handle(tenant, h).await?)
    {
        return Ok(m);
    }
    Ok(Matched::Review(ReviewReason::NoMatch))
}

async fn hold(
    deps: &ProcessDeps,
    endpoint: &WebhookEndpoint,
    delivery: &Delivery,
    n: usize,
    event: &HrEvent,
    reason: ReviewReason,
) -> Result<String, WebhookError> {
    let item = ReviewItem {
        id: review_id(&delivery.id, n),
        tenant_id: delivery.tenant_id.clone(),
        endpoint: endpoint.key.clone(),
        delivery_id: delivery.id.clone(),
        event_index: n as u32,
        event: event.clone(),
        message: reason.describe(event),
        reason,
        created_at: deps.actions.clock.now(),
        status: ReviewStatus::Open,
        rev: 0,
    };
    deps.reviews.create_review(&item).await?;
    tracing::info!(review = %item.id, delivery = %delivery.id, "hr person held for review");
    Ok(item.id)
}

async fn view(
    deps: &ProcessDeps,
    id: Option<&str>,
    tenant: &crate::model::TenantId,
) -> Result<Option<WorkflowView>, WebhookError> {
    let Some(id) = id else { return Ok(None) };
    let Some(wf) = deps.actions.workflows.get_workflow(tenant, id).await? else {
        return Ok(None);
    };
    Ok(Some(WorkflowView {
        id: wf.id.clone(),
        not_started: wf.current_step() == Some(0)
            && wf.steps[0].status == StepStatus::Pending
            && !wf.status.is_final(),
        finished: wf.status.is_final(),
        at: wf.params.at,
    }))
}

/// Move a not-yet-started workflow to a new date. `false`: it has started.
async fn reschedule(
    deps: &ActionDeps,
    tenant: &crate::model::TenantId,
    id: &str,
    at: Option<DateTime<Utc>>,
) -> Result<bool, WebhookError> {
    for _ in 0..8 {
        let Some(mut wf) = deps.workflows.get_workflow(tenant, id).await? else {
            return Ok(false);
        };
        if !wf.reschedule(at) {
            return Ok(false);
        }
        let expected = wf.rev;
        wf.rev += 1;
        match deps.workflows.update_workflow(&wf, expected).await {
            Ok(()) => {
                // A date now in the past runs at once.
                advance_workflow(deps, tenant, id).await?;
                return Ok(true);
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(format!("workflow {id}")).into())
}

/// The workflow of a department (or manager) change: an onboarding-like workflow whose steps
/// add the new grants (groups, then apps) and whose last step removes the old ones. Started
/// idempotently under `key`, like every workflow of a delivery.
#[allow(clippy::too_many_arguments)]
async fn start_move(
    deps: &ActionDeps,
    endpoint: &WebhookEndpoint,
    delivery: &Delivery,
    user_id: &str,
    add: Grants,
    remove: Grants,
    key: &str,
    by: &str,
) -> Result<Workflow, WebhookError> {
    let tenant = &delivery.tenant_id;
    let connection = owned_connection(deps, &endpoint.key.account_id, tenant).await?;
    usable(&connection)?;
    let params = WorkflowParams {
        user: user_id.to_string(),
        groups: add.groups.clone(),
        apps: add.apps.clone(),
        at: None,
    };
    let mut steps = if add.is_empty() {
        vec![]
    } else {
        steps_for(Template::Onboarding, &params).map_err(ActionError::from)?
    };
    let mut removals: Vec<ActionSpec> = remove
        .groups
        .iter()
        .map(|g| ActionSpec::RemoveGroupMember {
            user: user_id.to_string(),
            group: g.clone(),
        })
        .collect();
    removals.extend(remove.apps.iter().map(|a| ActionSpec::RemoveAppRole {
        user: user_id.to_string(),
        service_principal_id: a.service_principal_id.clone(),
        app_role_id: a.app_role_id.clone(),
    }));
    if !removals.is_empty() {
        steps.push(Step {
            spec: StepSpec::Actions { actions: removals },
            run_at: None,
            status: StepStatus::Pending,
            action_ids: vec![],
            attempt: 0,
        });
    }
    let ns = uuid::Uuid::from_bytes(*b"entra-sync:hrmov");
    let wf = Workflow {
        id: uuid::Uuid::new_v5(&ns, format!("{tenant}\n{key}").as_bytes()).to_string(),
        tenant_id: tenant.clone(),
        account_id: endpoint.key.account_id.clone(),
        template: Template::Onboarding,
        params,
        requested_by: by.to_string(),
        origin: WorkflowOrigin::HrWebhook {
            delivery_id: delivery.id.clone(),
        },
        created_at: deps.clock.now(),
        steps,
        status: WorkflowStatus::Running,
        finished_at: None,
        rev: 0,
    };
    if let Some(existing) = deps.workflows.create_workflow(&wf).await? {
        return Ok(existing);
    }
    Ok(advance_workflow(deps, tenant, &wf.id).await?)
}
