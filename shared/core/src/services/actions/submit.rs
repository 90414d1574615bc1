//! Submitting an action: check the request, the connection and its policy, resolve the targets
//! from the mirror, and store the action once per idempotency key. The same key with the same
//! request answers with the same action (and never reaches the directory twice); the same key
//! with another request is refused.

use sha2::{Digest, Sha256};

use super::permissions::check_permission;
use super::{ActionDeps, ActionError, owned_connection, usable};
use crate::actions::kind::ActionSpec;
use crate::actions::ports::ActionMessage;
use crate::actions::record::{ActionRecord, ActionStatus, Origin, Target};
use crate::actions::resolve::{GroupName, UserName, pick_group, pick_user};
use crate::idempotency::IdempotencyConfig;
use crate::model::{AccountId, Connection, StoredGroup, StoredUser, TenantId};
use crate::services::claim::{ClaimError, Claimed, Claims};
use crate::services::project::load_settings;

/// An action as a caller submits it.
#[derive(Clone, Debug)]
pub struct SubmitRequest {
    pub account: AccountId,
    pub tenant: TenantId,
    /// The caller's idempotency key (the API's `Idempotency-Key`, the CLI's `--key`, a
    /// workflow step's own id).
    pub key: String,
    pub spec: ActionSpec,
    /// Who asks (an approver must be someone else).
    pub requested_by: String,
    pub origin: Origin,
}

/// The longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 200;

/// Problems with a key, in plain words.
pub fn key_problems(key: &str) -> Vec<String> {
    let mut p = Vec::new();
    if key.is_empty() {
        p.push("idempotency key: must not be empty".to_string());
    } else if key.len() > MAX_KEY_LEN {
        p.push(format!(
            "idempotency key: longer than {MAX_KEY_LEN} characters"
        ));
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        p.push("idempotency key: only printable ASCII without spaces".to_string());
    }
    p
}

/// The action id a key names in a tenant: stable, so a lost answer is found again.
pub fn action_id(tenant: &TenantId, key: &str) -> String {
    let ns = uuid::Uuid::from_bytes(*b"entra-sync:actio");
    uuid::Uuid::new_v5(&ns, format!("{tenant}\n{key}").as_bytes()).to_string()
}

fn payload_hash(spec: &ActionSpec) -> String {
    let digest = Sha256::digest(spec.canonical_json().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Submit an action. Returns the stored action: `queued` (the executor runs it) or
/// `pending_approval`, or, for a key seen before, that action as it is now.
pub async fn submit_action(
    deps: &ActionDeps,
    req: SubmitRequest,
) -> Result<ActionRecord, ActionError> {
    let mut problems = key_problems(&req.key);
    problems.extend(req.spec.problems());
    if req.requested_by.trim().is_empty() {
        problems.push("requested_by: must name who asks".to_string());
    }
    if !problems.is_empty() {
        return Err(ActionError::Invalid(problems));
    }
    let connection = owned_connection(deps, &req.account, &req.tenant).await?;
    usable(&connection)?;
    let id = action_id(&req.tenant, &req.key);
    let hash = payload_hash(&req.spec);
    let claims = Claims {
        config: IdempotencyConfig {
            expiry: deps.config.key_ttl,
            in_progress_expiry: chrono::Duration::minutes(2),
        },
        ..deps.claims.clone()
    };
    let claim_key = format!("action#{}", req.key);
    let claimed = claims
        .run_once(
            &req.tenant,
            &claim_key,
            &hash,
            |r: &ActionRecord| r.id.clone(),
            || create(deps, &req, &connection, &id, &hash),
        )
        .await;
    let record = match claimed {
        Ok(Claimed::Ran(r)) => r,
        Ok(Claimed::AlreadyDone(stored_id)) => existing(deps, &req, &stored_id, &hash).await?,
        Ok(Claimed::Busy { .. }) => return Err(ActionError::KeyBusy { key: req.key }),
        Ok(Claimed::Mismatch) => return Err(ActionError::KeyReused { key: req.key }),
        Err(ClaimError::Store(e)) => return Err(e.into()),
        Err(ClaimError::Work(e)) => return Err(e),
    };
    Ok(record)
}

/// The action a completed key names, as it is now. A queued action is enqueued again: if the
/// first enqueue was lost, this delivers it; if not, the queue's deduplication (and the
/// executor's claim) makes the copy harmless.
async fn existing(
    deps: &ActionDeps,
    req: &SubmitRequest,
    id: &str,
    hash: &str,
) -> Result<ActionRecord, ActionError> {
    let record = deps
        .actions
        .get_action(&req.tenant, id)
        .await?
        .ok_or_else(|| ActionError::UnknownAction {
            tenant: req.tenant.clone(),
            id: id.to_string(),
        })?;
    if record.payload_hash != hash {
        return Err(ActionError::KeyReused {
            key: req.key.clone(),
        });
    }
    if record.status == ActionStatus::Queued {
        enqueue(deps, &record).await?;
    }
    Ok(record)
}

async fn create(
    deps: &ActionDeps,
    req: &SubmitRequest,
    connection: &Connection,
    id: &str,
    hash: &str,
) -> Result<ActionRecord, ActionError> {
    let settings = load_settings(deps.settings.as_ref(), &req.tenant).await?;
    let kind = req.spec.kind();
    check_permission(deps, connection, &settings.actions, kind).await??;
    let target = resolve(deps, &req.tenant, &req.spec).await?;
    let now = deps.clock.now();
    let mut record = ActionRecord {
        id: id.to_string(),
        tenant_id: req.tenant.clone(),
        account_id: req.account.clone(),
        key: req.key.clone(),
        payload_hash: hash.to_string(),
        spec: req.spec.clone(),
        target,
        requested_by: req.requested_by.trim().to_string(),
        origin: req.origin.clone(),
        requested_at: now,
        status: ActionStatus::Queued,
        decision: None,
        attempts: 0,
        graph_request_id: None,
        finished_at: None,
        history: vec![],
        rev: 0,
    };
    let expires_at =
        now + chrono::Duration::hours(i64::from(settings.actions.approval_expiry_hours));
    record.submitted(settings.actions.needs_approval(kind), expires_at);
    if let Some(stored) = deps.actions.create_action(&record).await? {
        // The key's record expired but its action is still here: answer with it.
        if stored.payload_hash != hash {
            return Err(ActionError::KeyReused {
                key: req.key.clone(),
            });
        }
        return Ok(stored);
    }
    if record.status == ActionStatus::Queued {
        enqueue(deps, &record).await?;
    }
    Ok(record)
}

pub(crate) async fn enqueue(deps: &ActionDeps, r: &ActionRecord) -> Result<(), ActionError> {
    deps.queue
        .enqueue_actions(vec![ActionMessage {
            tenant_id: r.tenant_id.clone(),
            action_id: r.id.clone(),
            user_id: r.target.user_id.clone(),
        }])
        .await
        .map_err(|e| ActionError::Store(crate::error::StoreError::Unavailable(Box::new(e))))
}

/// The targets of `spec` as object ids, from the mirror.
pub(crate) async fn resolve(
    deps: &ActionDeps,
    tenant: &TenantId,
    spec: &ActionSpec,
) -> Result<Target, ActionError> {
    let kind = spec.kind();
    let user = pick_user(
        spec.user(),
        kind,
        user_candidates(deps, tenant, spec.user()).await?,
    )?;
    let mut target = Target {
        user_id: user.user.id.clone(),
        user_name: user
            .user
            .user_principal_name
            .clone()
            .or_else(|| user.user.mail.clone()),
        ..Target::default()
    };
    if let Some(g) = spec.group() {
        let group = pick_group(g, group_candidates(deps, tenant, g).await?)?;
        target.group_id = Some(group.group.id.clone());
        target.group_name = group.group.display_name.clone();
    }
    if let Some((sp, role)) = spec.app() {
        target.service_principal_id = Some(sp.to_ascii_lowercase());
        target.app_role_id = role.map(str::to_ascii_lowercase);
    }
    Ok(target)
}

async fn user_candidates(
    deps: &ActionDeps,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<StoredUser>, ActionError> {
    Ok(match UserName::parse(name)? {
        UserName::ObjectId(id) => {
            deps.mirror
                .get_users(tenant, &[id.to_ascii_lowercase()])
                .await?
        }
        UserName::Handle(h) => deps.lookup.users_by_handle(tenant, h).await?,
    })
}

async fn group_candidates(
    deps: &ActionDeps,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<StoredGroup>, ActionError> {
    Ok(match GroupName::parse(name) {
        GroupName::ObjectId(id) => {
            deps.mirror
                .get_groups(tenant, &[id.to_ascii_lowercase()])
                .await?
        }
        GroupName::DisplayName(n) => deps.lookup.groups_by_name(tenant, n).await?,
    })
}
