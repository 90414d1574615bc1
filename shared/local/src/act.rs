//! The action commands of the local program: `entra-sync act <kind> ...`, `entra-sync actions
//! enable|disable|list|show|approve|reject|cancel|retry|run` and `entra-sync workflow
//! start|list|show|cancel|retry|run-due`. Each is a thin call into
//! `entra_sync_core::services::actions`; the admin HTTP API calls the same services.
//!
//! Commands that change something take the data directory's lock. When a running
//! `entra-sync serve` holds it, they store the request and leave the execution to the worker
//! of `serve` (and wait a moment for its result); without `serve` they run the action queue in
//! this process until it is empty, so the action is done when the command returns.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use entra_sync_core::actions::kind::{ActionKind, permissions_for};
use entra_sync_core::actions::ports::{ActionFilter, ActionStore, WorkflowStore};
use entra_sync_core::actions::record::{ActionRecord, ActionStatus, Origin};
use entra_sync_core::actions::workflow::{AppRef, Template, Workflow, WorkflowOrigin};
use entra_sync_core::actions::{ActionSpec, WorkflowParams};
use entra_sync_core::directory_write::WRITE_PERMISSIONS;
use entra_sync_core::ports::{ConnectionStore, Secret};
use entra_sync_core::services::actions::{
    self as svc, DecideRequest, Decision, ExecuteOutcome, StartWorkflow, SubmitRequest,
};
use entra_sync_core::services::{load_settings, save_settings};
use entra_sync_graph::GraphClient;
use serde::Serialize;

use crate::action_worker::{DirectoryAccess, LocalActions, QueueRun, run_queue_until_idle, tick};
use crate::cli::{self, Hints, Opened, print_json as json};
use crate::outln;
use crate::runtime::tenant_id_arg;

/// The read permissions the sync needs: a reconsent that enables actions asks for them too
/// (an admin consent replaces what was granted).
pub const SYNC_PERMISSIONS: [&str; 3] = [
    "User.Read.All",
    "GroupMember.Read.All",
    "Organization.Read.All",
];

/// How long a command waits for the queue (or `serve`'s worker) to finish what it asked for.
const WAIT: Duration = Duration::from_secs(60);

/// Where the data lives, which directory, and how Microsoft Graph is reached.
#[derive(Args, Clone)]
pub struct Place {
    #[arg(long, default_value = cli::DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The directory (tenant) id, a GUID; may be left out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    pub tenant_id: Option<String>,
    /// The app registration's client (application) id. Default: what `entra-sync serve`
    /// noted in the data directory.
    #[arg(long, env = "ENTRA_SYNC_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Environment variable holding the client secret.
    #[arg(long, default_value = "ENTRA_SYNC_CLIENT_SECRET")]
    pub client_secret_env: String,
    /// Microsoft Graph base URL (with --client-id).
    #[arg(
        long,
        default_value = "https://graph.microsoft.com",
        env = "ENTRA_SYNC_GRAPH_URL"
    )]
    pub graph_url: url::Url,
    /// Login (authority) base URL (with --client-id).
    #[arg(
        long,
        default_value = "https://login.microsoftonline.com",
        env = "ENTRA_SYNC_LOGIN_URL"
    )]
    pub login_url: url::Url,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `entra-sync act <kind> ...`.
#[derive(Args)]
pub struct ActArgs {
    /// The action kind: add-group-member, remove-group-member, assign-app-role,
    /// remove-app-role, revoke-sessions, block-sign-in, unblock-sign-in, reset-password,
    /// delete-user, restore-user.
    pub kind: String,
    /// The user: object id, user principal name or email.
    #[arg(long)]
    pub user: String,
    /// The group (membership kinds): object id or display name.
    #[arg(long)]
    pub group: Option<String>,
    /// The Enterprise Application's service principal object id (app kinds).
    #[arg(long)]
    pub app: Option<String>,
    /// The app role id (app kinds; default: the default access role, or every role on removal).
    #[arg(long)]
    pub role: Option<String>,
    /// The idempotency key: the same key repeats the request safely (one effect, the same
    /// answer). Default: a fresh one, printed.
    #[arg(long)]
    pub key: Option<String>,
    /// Who asks (an approver must be someone else).
    #[arg(long, default_value = "local-admin")]
    pub requested_by: String,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Subcommand)]
pub enum ActionsCommand {
    /// Enable action kinds for the directory and print the admin-consent link that grants
    /// their permissions.
    Enable(EnableArgs),
    /// Disable action kinds (their permissions are left granted until an admin removes them).
    Disable(EnableArgs),
    /// The audit trail, newest first.
    List(ListArgs),
    /// One action with its history.
    Show(IdArgs),
    /// Approve a pending action (by someone other than its requester).
    Approve(DecideArgs),
    /// Reject a pending action.
    Reject(DecideArgs),
    /// Cancel an action that has not started.
    Cancel(ByArgs),
    /// Queue a failed action again.
    Retry(ByArgs),
    /// Run queued actions now; with an id, run that action (a password reset is run by its
    /// requester, who sees the temporary password once).
    Run(RunArgs),
}

#[derive(Args)]
pub struct EnableArgs {
    /// Kinds to enable or disable (repeat, or comma-separated).
    #[arg(long = "kind", value_delimiter = ',', required = true)]
    pub kinds: Vec<String>,
    /// The callback URL the admin is sent back to (default: what `entra-sync serve` noted).
    #[arg(long, env = "ENTRA_SYNC_REDIRECT_URI")]
    pub redirect_uri: Option<url::Url>,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only actions on this user (object id).
    #[arg(long)]
    pub user: Option<String>,
    /// Only actions in this status (pending_approval, queued, succeeded, failed, ...).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many, newest first (read from the store page by page).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Args)]
pub struct IdArgs {
    pub id: String,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Args)]
pub struct DecideArgs {
    pub id: String,
    /// The approver (recorded in the audit trail; never the requester).
    #[arg(long)]
    pub by: String,
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Args)]
pub struct ByArgs {
    pub id: String,
    /// Who does it (recorded in the audit trail).
    #[arg(long, default_value = "local-admin")]
    pub by: String,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Args)]
pub struct RunArgs {
    /// The action to run (default: every queued action).
    pub id: Option<String>,
    /// Who runs it (a password reset: its requester).
    #[arg(long, default_value = "local-admin")]
    pub by: String,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// Start a workflow from a template: onboarding, offboarding, lost-device.
    Start(StartArgs),
    /// The workflows, newest first.
    List(ListWorkflowsArgs),
    /// One workflow with its steps.
    Show(IdArgs),
    /// Cancel a workflow (and the not-yet-started actions of its current step).
    Cancel(ByArgs),
    /// Run a failed workflow's failed step again.
    Retry(IdArgs),
    /// Move on the workflows whose date has come, and expire overdue approvals.
    RunDue(Place),
}

#[derive(Args)]
pub struct StartArgs {
    pub template: String,
    /// The user: object id, user principal name or email.
    #[arg(long)]
    pub user: String,
    /// Onboarding: a group to add the user to (repeat).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Onboarding: an app to assign, as SERVICE_PRINCIPAL_ID[:APP_ROLE_ID] (repeat).
    #[arg(long = "app")]
    pub apps: Vec<String>,
    /// When the steps run (RFC 3339, e.g. 2027-01-31T17:00:00Z): the start date (onboarding)
    /// or the end date (offboarding). Default: now.
    #[arg(long)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Makes the start idempotent: the same key starts one workflow.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, default_value = "local-admin")]
    pub requested_by: String,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Args)]
pub struct ListWorkflowsArgs {
    /// At most this many, newest first (read from the store page by page).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    #[command(flatten)]
    pub place: Place,
}

/// Open for a command that changes something: with the lock, or next to the `serve` that
/// holds it.
async fn open_write(p: &Place) -> Result<Opened> {
    cli::open_write_beside_serve(&p.data_dir, p.tenant_id.as_deref()).await
}

async fn open_read(p: &Place) -> Result<Opened> {
    cli::open_read(&p.data_dir, p.tenant_id.as_deref()).await
}

/// How Graph is reached: the flags, else what `serve` noted.
fn access(p: &Place, o: &Opened) -> Result<(DirectoryAccess, Option<Secret>)> {
    let secret = std::env::var(&p.client_secret_env)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    if let Some(client_id) = &p.client_id {
        let access = DirectoryAccess {
            graph_url: p.graph_url.clone(),
            login_url: p.login_url.clone(),
            client_id: client_id.clone(),
            secret_in_vault: false,
            redirect_uri: None,
        };
        if secret.is_none() {
            bail!(
                "the client secret is read from the environment variable {} (set it, or name another with --client-secret-env)",
                p.client_secret_env
            );
        }
        return Ok((access, secret));
    }
    match DirectoryAccess::load(&o.app.data_dir())? {
        Some(a) => Ok((a, secret)),
        None => bail!(
            "this command calls Microsoft Graph: pass --client-id (and the secret in {}), with --graph-url and --login-url for another cloud, or run it next to a running `{}`, which notes them in {}",
            p.client_secret_env,
            o.hints.command("serve"),
            o.app.data_dir().root.display()
        ),
    }
}

pub(crate) async fn services(p: &Place, o: &Opened) -> Result<(LocalActions, DirectoryAccess)> {
    let (access, secret) = access(p, o)?;
    let client: GraphClient = access.client(&o.app, secret).await?;
    Ok((o.app.actions(Arc::new(client))?, access))
}

/// One line per action, for people (the commands it suggests point at the data of `h`).
pub fn action_line(r: &ActionRecord, h: &Hints) -> String {
    let mut target = r
        .target
        .user_name
        .clone()
        .unwrap_or_else(|| r.target.user_id.clone());
    if let Some(g) = r.target.group_name.as_ref().or(r.target.group_id.as_ref()) {
        target.push_str(&format!(" in group {g}"));
    }
    if let Some(sp) = &r.target.service_principal_id {
        target.push_str(&format!(" on app {sp}"));
    }
    let status = match &r.status {
        ActionStatus::PendingApproval { expires_at } => format!(
            "pending approval until {} (approve with `{}`)",
            expires_at.format("%Y-%m-%d %H:%M UTC"),
            h.command(&format!("actions approve {} --by <someone else>", r.id))
        ),
        ActionStatus::Succeeded {
            already_in_effect: true,
        } => "succeeded (it was already in effect)".into(),
        ActionStatus::Failed { reason, retryable } => format!(
            "failed: {reason}{}",
            if *retryable {
                format!(
                    " (`{}` may succeed)",
                    h.command(&format!("actions retry {}", r.id))
                )
            } else {
                String::new()
            }
        ),
        ActionStatus::Approved if r.kind() == ActionKind::ResetPassword => format!(
            "approved; its requester runs it with `{}`",
            h.command(&format!(
                "actions run {} --by {}",
                r.id,
                shlex::try_quote(&r.requested_by).unwrap_or_default()
            ))
        ),
        other => crate::words(&other.as_str()),
    };
    format!(
        "{} {} {} by {} at {}: {}",
        r.id,
        r.kind().as_str(),
        target,
        r.requested_by,
        r.requested_at.format("%Y-%m-%d %H:%M:%S"),
        status
    )
}

fn print_action(r: &ActionRecord, detail: bool, h: &Hints) {
    outln!("{}", action_line(r, h));
    if detail {
        if let Some(id) = &r.graph_request_id {
            outln!("  Graph request id: {id}");
        }
        if let Some(d) = &r.decision {
            outln!(
                "  {} by {} at {}{}",
                if d.approved { "approved" } else { "rejected" },
                d.by,
                d.at.format("%Y-%m-%d %H:%M:%S"),
                d.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            );
        }
        for h in &r.history {
            outln!(
                "  {} {}{}{}",
                h.at.format("%Y-%m-%d %H:%M:%S"),
                crate::words(&h.status),
                h.by.as_deref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                h.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
    }
}

fn workflow_line(w: &Workflow, h: &Hints) -> String {
    let status = match &w.status {
        entra_sync_core::actions::WorkflowStatus::Scheduled { at } => {
            format!("scheduled for {}", at.format("%Y-%m-%d %H:%M UTC"))
        }
        entra_sync_core::actions::WorkflowStatus::WaitingApproval { action_id } => {
            format!("waiting for the approval of action {action_id}")
        }
        entra_sync_core::actions::WorkflowStatus::Failed { step, reason } => {
            format!(
                "failed at step {}: {reason} (`{}` runs it again)",
                step + 1,
                h.command(&format!("workflow retry {}", w.id))
            )
        }
        other => crate::words(&other.as_str()),
    };
    format!(
        "{} {} of {} by {} at {}: {}",
        w.id,
        w.template.as_str(),
        w.params.user,
        w.requested_by,
        w.created_at.format("%Y-%m-%d %H:%M:%S"),
        status
    )
}

fn print_workflow(w: &Workflow, detail: bool, h: &Hints) {
    outln!("{}", workflow_line(w, h));
    if detail {
        for (i, s) in w.steps.iter().enumerate() {
            outln!(
                "  step {}: {}: {}{}{}",
                i + 1,
                s.spec.describe(),
                crate::words(&s.status),
                s.run_at
                    .map(|t| format!(", at {}", t.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default(),
                match s.action_ids.is_empty() {
                    true => String::new(),
                    false => format!(", actions {}", s.action_ids.join(", ")),
                }
            );
        }
    }
}

fn kind_of(s: &str) -> Result<ActionKind> {
    ActionKind::parse_loose(s).ok_or_else(|| {
        let all: Vec<String> = ActionKind::ALL
            .iter()
            .map(|k| k.as_str().replace('_', "-"))
            .collect();
        anyhow::anyhow!(
            "there is no action kind \"{s}\"; the kinds are {}",
            all.join(", ")
        )
    })
}

fn spec_of(a: &ActionArgsView<'_>) -> Result<ActionSpec> {
    let kind = kind_of(a.kind)?;
    let user = a.user.to_string();
    let need = |what: Option<&String>, flag: &str| -> Result<String> {
        what.cloned()
            .ok_or_else(|| anyhow::anyhow!("{} needs {flag}", kind.as_str().replace('_', "-")))
    };
    if !kind.needs_group() && a.group.is_some() {
        bail!("--group is only for add-group-member and remove-group-member");
    }
    let is_app = matches!(kind, ActionKind::AssignAppRole | ActionKind::RemoveAppRole);
    if !is_app && (a.app.is_some() || a.role.is_some()) {
        bail!("--app and --role are only for assign-app-role and remove-app-role");
    }
    Ok(match kind {
        ActionKind::AddGroupMember => ActionSpec::AddGroupMember {
            user,
            group: need(a.group, "--group <object id or display name>")?,
        },
        ActionKind::RemoveGroupMember => ActionSpec::RemoveGroupMember {
            user,
            group: need(a.group, "--group <object id or display name>")?,
        },
        ActionKind::AssignAppRole => ActionSpec::AssignAppRole {
            user,
            service_principal_id: need(a.app, "--app <service principal object id>")?,
            app_role_id: a.role.cloned(),
        },
        ActionKind::RemoveAppRole => ActionSpec::RemoveAppRole {
            user,
            service_principal_id: need(a.app, "--app <service principal object id>")?,
            app_role_id: a.role.cloned(),
        },
        ActionKind::RevokeSessions => ActionSpec::RevokeSessions { user },
        ActionKind::BlockSignIn => ActionSpec::BlockSignIn { user },
        ActionKind::UnblockSignIn => ActionSpec::UnblockSignIn { user },
        ActionKind::ResetPassword => ActionSpec::ResetPassword { user },
        ActionKind::DeleteUser => ActionSpec::DeleteUser { user },
        ActionKind::RestoreUser => ActionSpec::RestoreUser { user },
    })
}

struct ActionArgsView<'a> {
    kind: &'a str,
    user: &'a str,
    group: Option<&'a String>,
    app: Option<&'a String>,
    role: Option<&'a String>,
}

/// The JSON answer of the commands that run an action.
#[derive(Serialize)]
struct ActAnswer<'a> {
    action: &'a ActionRecord,
    /// The idempotency key of the request.
    key: &'a str,
    /// A password reset's temporary password: shown once, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    temporary_password: Option<&'a str>,
}

/// Wait until the action is final (or waits for someone), running the queue in this process
/// unless `serve` runs it.
async fn settle(o: &Opened, actions: &LocalActions, id: &str) -> Result<ActionRecord> {
    if o.served {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = current(o, actions, id).await?;
            let waiting = matches!(
                r.status,
                ActionStatus::Queued | ActionStatus::Running { .. }
            );
            if !waiting || tokio::time::Instant::now() >= deadline {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if let QueueRun::Waiting { messages } = run_queue_until_idle(actions, WAIT).await? {
        eprintln_note(&format!(
            "{messages} queued action(s) wait for a later retry (the directory asked to slow down); `{}` or `{}` runs them",
            o.hints.command("actions run"),
            o.hints.command("serve")
        ));
    }
    current(o, actions, id).await
}

#[allow(clippy::print_stderr)]
fn eprintln_note(s: &str) {
    eprintln!("note: {s}");
}

async fn current(o: &Opened, actions: &LocalActions, id: &str) -> Result<ActionRecord> {
    Ok(svc::get_action(&actions.deps, &o.account, &o.tenant, id).await?)
}

/// Run a password reset (or any startable action) in this process, as `runner`.
async fn run_one(
    o: &Opened,
    actions: &LocalActions,
    id: &str,
    runner: &str,
) -> Result<(ActionRecord, Option<Secret>)> {
    // Only an action of this connection (the executor itself does not check the account).
    svc::get_action(&actions.deps, &o.account, &o.tenant, id).await?;
    match svc::execute_action(&actions.deps, &o.tenant, id, Some(runner)).await? {
        ExecuteOutcome::Done(e) => Ok((e.record, e.temporary_password)),
        ExecuteOutcome::AlreadyFinal(r) | ExecuteOutcome::NotReady(r) => Ok((r, None)),
        ExecuteOutcome::RetryLater { record, .. } => Ok((record, None)),
        ExecuteOutcome::Busy { .. } => bail!(
            "action {id} is being run by another process right now; see `{}`",
            o.hints.command(&format!("actions show {id}"))
        ),
    }
}

fn answer(
    p: &Place,
    h: &Hints,
    r: &ActionRecord,
    key: &str,
    fresh_key: bool,
    password: Option<&Secret>,
) -> Result<ExitCode> {
    if p.json {
        json(&ActAnswer {
            action: r,
            key,
            temporary_password: password.map(Secret::expose),
        })?;
    } else {
        print_action(r, false, h);
        if fresh_key {
            outln!("key: {key} (send the same --key to repeat this request safely)");
        }
        if let Some(pw) = password {
            outln!(
                "temporary password (shown once, never stored; the user changes it at the next sign-in): {}",
                pw.expose()
            );
        }
    }
    Ok(match &r.status {
        ActionStatus::Failed { .. } => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// `entra-sync act <kind> ...`.
pub async fn run_act(args: ActArgs) -> Result<ExitCode> {
    let spec = spec_of(&ActionArgsView {
        kind: &args.kind,
        user: &args.user,
        group: args.group.as_ref(),
        app: args.app.as_ref(),
        role: args.role.as_ref(),
    })?;
    let o = open_write(&args.place).await?;
    let (actions, _) = services(&args.place, &o).await?;
    let fresh_key = args.key.is_none();
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    ticked(&actions).await;
    let record = svc::submit_action(
        &actions.deps,
        SubmitRequest {
            account: o.account.clone(),
            tenant: o.tenant.clone(),
            key: key.clone(),
            spec,
            requested_by: args.requested_by.clone(),
            origin: Origin::Cli,
        },
    )
    .await
    .map_err(|e| refusal(e, &o.hints))?;
    let (record, password) = match (&record.status, record.kind()) {
        (ActionStatus::Queued | ActionStatus::Approved, ActionKind::ResetPassword) => {
            run_one(&o, &actions, &record.id, &args.requested_by).await?
        }
        (ActionStatus::Queued | ActionStatus::Running { .. }, _) => {
            (settle(&o, &actions, &record.id).await?, None)
        }
        _ => (record, None),
    };
    ticked(&actions).await;
    answer(
        &args.place,
        &o.hints,
        &record,
        &key,
        fresh_key,
        password.as_ref(),
    )
}

/// An action error for this command line: a kind that is not enabled says how to enable it
/// here (the command with the data directory in use); any other error as the service says it.
fn refusal(e: svc::ActionError, h: &Hints) -> anyhow::Error {
    use entra_sync_core::actions::policy::Refusal;
    match e {
        svc::ActionError::Refused(Refusal::NotEnabled { kind, permission }) => anyhow::anyhow!(
            "{kind} is not enabled for this directory: an admin enables it with `{}` (which asks the directory's admin to consent to {permission})",
            h.command(&format!(
                "actions enable --kind {}",
                kind.as_str().replace('_', "-")
            ))
        ),
        e => e.into(),
    }
}

/// The tick at the start and end of a command (best effort: a failure is only logged).
async fn ticked(actions: &LocalActions) {
    if let Err(e) = tick(&actions.deps).await {
        tracing::warn!(error = %e, "action tick failed");
    }
}

/// The admin-consent link that grants the sync's read permissions and the write permissions
/// of `kinds`.
pub fn consent_scope(graph_url: &url::Url, kinds: impl IntoIterator<Item = ActionKind>) -> String {
    let base = graph_url.as_str().trim_end_matches('/').to_owned();
    SYNC_PERMISSIONS
        .iter()
        .copied()
        .chain(permissions_for(kinds))
        .map(|p| format!("{base}/{p}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn enable(args: EnableArgs, on: bool) -> Result<ExitCode> {
    let kinds = args
        .kinds
        .iter()
        .map(|k| kind_of(k))
        .collect::<Result<Vec<_>>>()?;
    let o = open_write(&args.place).await?;
    let deps = o.app.project_deps();
    let current = load_settings(o.app.store.as_ref(), &o.tenant).await?;
    let mut proposed = current.clone();
    for k in &kinds {
        match on {
            true => proposed.actions.enabled.insert(*k),
            false => proposed.actions.enabled.remove(k),
        };
    }
    if proposed.actions.enabled != current.actions.enabled {
        let (saved, _) = save_settings(&deps, &o.tenant, proposed, current.version)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        outln!("saved settings version {}", saved.version);
    } else {
        outln!("nothing changes");
    }
    let settings = load_settings(o.app.store.as_ref(), &o.tenant).await?;
    let enabled: Vec<&str> = settings
        .actions
        .enabled
        .iter()
        .map(|k| k.as_str())
        .collect();
    outln!(
        "enabled action kinds: {}",
        if enabled.is_empty() {
            "none (actions are off)".to_string()
        } else {
            enabled.join(", ")
        }
    );
    if !on {
        return Ok(ExitCode::SUCCESS);
    }
    let connection = o
        .app
        .store
        .get_connection(&o.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no directory {} is connected", o.tenant))?;
    let needed = settings.actions.write_permissions();
    // Least privilege: the grant should hold the enabled kinds' write permissions, and no
    // other write permission.
    let mut granted_writes: Vec<&str> = WRITE_PERMISSIONS
        .iter()
        .copied()
        .filter(|p| connection.granted_permissions.contains(p))
        .collect();
    granted_writes.sort_unstable();
    if granted_writes == needed {
        outln!("the directory's admin granted exactly the permissions they need");
        return Ok(ExitCode::SUCCESS);
    }
    let reach = access(&args.place, &o).ok();
    let redirect = args
        .redirect_uri
        .clone()
        .or_else(|| reach.as_ref().and_then(|(a, _)| a.redirect_uri.clone()));
    let (Some(redirect), Some((access, secret))) = (redirect, reach) else {
        outln!(
            "the directory's admin grants {} with an admin consent: run `{}` (it receives Microsoft's answer), then this command again for the link, or pass --redirect-uri",
            needed.join(", "),
            o.hints.command("serve")
        );
        return Ok(ExitCode::SUCCESS);
    };
    let client = access.client(&o.app, secret).await?;
    let connect = crate::serve::connect_deps(&o.app, client);
    let pending = entra_sync_core::services::connect::start_reconnect(
        &connect,
        &o.account,
        &o.tenant,
        None,
        chrono::Duration::hours(1),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let config = entra_sync_http::connect::ConnectConfig {
        login_base_url: access.login_url.clone(),
        client_id: access.client_id.clone(),
        redirect_uri: Some(redirect.clone()),
        scope: consent_scope(&access.graph_url, settings.actions.enabled.iter().copied()),
        state_ttl: chrono::Duration::hours(1),
        return_url: None,
    };
    let url = config
        .consent_url(&pending, &redirect)
        .context("building the consent link")?;
    outln!(
        "The directory's admin grants {} (and the sync's read permissions) by opening this link within an hour:",
        needed.join(", ")
    );
    outln!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// `entra-sync actions ...`.
pub async fn run_actions(cmd: ActionsCommand) -> Result<ExitCode> {
    match cmd {
        ActionsCommand::Enable(a) => enable(a, true).await,
        ActionsCommand::Disable(a) => enable(a, false).await,
        ActionsCommand::List(a) => {
            let o = open_read(&a.place).await?;
            let filter = ActionFilter {
                user_id: a.user.clone(),
                status: a.status.clone(),
            };
            let items = cli::read_up_to(a.limit as usize, |after, n| {
                let (store, tenant, filter) = (&o.app.store, &o.tenant, &filter);
                async move {
                    store
                        .list_actions(tenant, filter, after.as_deref(), n)
                        .await
                }
            })
            .await?;
            cli::print_list(a.place.json, &items, "no actions", |r| {
                print_action(r, false, &o.hints)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Show(a) => {
            let o = open_read(&a.place).await?;
            let r = o
                .app
                .store
                .get_action(&o.tenant, &a.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no action {} in directory {}", a.id, o.tenant))?;
            cli::print_one(a.place.json, &r, |r| print_action(r, true, &o.hints))?;
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Approve(a) => decide(a, Decision::Approve).await,
        ActionsCommand::Reject(a) => decide(a, Decision::Reject).await,
        ActionsCommand::Cancel(a) => {
            let o = open_write(&a.place).await?;
            let (actions, _) = services(&a.place, &o).await?;
            let r = svc::cancel_action(&actions.deps, &o.account, &o.tenant, &a.id, &a.by).await?;
            show_result(&a.place, &o.hints, &r)
        }
        ActionsCommand::Retry(a) => {
            let o = open_write(&a.place).await?;
            let (actions, _) = services(&a.place, &o).await?;
            let r = svc::retry_action(&actions.deps, &o.account, &o.tenant, &a.id, &a.by).await?;
            let r = match r.kind() {
                ActionKind::ResetPassword => r,
                _ => settle(&o, &actions, &r.id).await?,
            };
            show_result(&a.place, &o.hints, &r)
        }
        ActionsCommand::Run(a) => {
            let o = open_write(&a.place).await?;
            let (actions, _) = services(&a.place, &o).await?;
            ticked(&actions).await;
            match &a.id {
                Some(id) => {
                    let (r, password) = run_one(&o, &actions, id, &a.by).await?;
                    let r = match r.status {
                        ActionStatus::Queued | ActionStatus::Running { .. } => {
                            settle(&o, &actions, id).await?
                        }
                        _ => r,
                    };
                    answer(
                        &a.place,
                        &o.hints,
                        &r,
                        &r.key.clone(),
                        false,
                        password.as_ref(),
                    )
                }
                None => {
                    if o.served {
                        outln!("the running `entra-sync serve` runs the queued actions");
                        return Ok(ExitCode::SUCCESS);
                    }
                    match run_queue_until_idle(&actions, WAIT).await? {
                        QueueRun::Empty => outln!("no queued actions left"),
                        QueueRun::Waiting { messages } => outln!(
                            "{messages} queued action(s) wait for a later retry (the directory asked to slow down)"
                        ),
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

fn show_result(p: &Place, h: &Hints, r: &ActionRecord) -> Result<ExitCode> {
    cli::print_one(p.json, r, |r| print_action(r, false, h))?;
    Ok(ExitCode::SUCCESS)
}

async fn decide(a: DecideArgs, decision: Decision) -> Result<ExitCode> {
    let o = open_write(&a.place).await?;
    let (actions, _) = services(&a.place, &o).await?;
    ticked(&actions).await;
    let r = svc::decide_action(
        &actions.deps,
        DecideRequest {
            account: o.account.clone(),
            tenant: o.tenant.clone(),
            action_id: a.id.clone(),
            decision,
            by: a.by.clone(),
            comment: a.comment.clone(),
        },
    )
    .await?;
    let r = match r.status {
        ActionStatus::Queued => settle(&o, &actions, &r.id).await?,
        _ => r,
    };
    show_result(&a.place, &o.hints, &r)
}

fn parse_app(s: &str) -> AppRef {
    match s.split_once(':') {
        Some((sp, role)) => AppRef {
            service_principal_id: sp.trim().to_owned(),
            app_role_id: Some(role.trim().to_owned()),
        },
        None => AppRef {
            service_principal_id: s.trim().to_owned(),
            app_role_id: None,
        },
    }
}

/// `entra-sync workflow ...`.
pub async fn run_workflow(cmd: WorkflowCommand) -> Result<ExitCode> {
    match cmd {
        WorkflowCommand::Start(a) => {
            let Some(template) = Template::parse(&a.template) else {
                let all: Vec<String> = Template::ALL
                    .iter()
                    .map(|t| t.as_str().replace('_', "-"))
                    .collect();
                bail!(
                    "there is no workflow template \"{}\"; the templates are {}",
                    a.template,
                    all.join(", ")
                );
            };
            let o = open_write(&a.place).await?;
            let (actions, _) = services(&a.place, &o).await?;
            ticked(&actions).await;
            let wf = svc::start_workflow(
                &actions.deps,
                StartWorkflow {
                    account: o.account.clone(),
                    tenant: o.tenant.clone(),
                    template,
                    params: WorkflowParams {
                        user: a.user.clone(),
                        groups: a.groups.clone(),
                        apps: a.apps.iter().map(|s| parse_app(s)).collect(),
                        at: a.at,
                    },
                    requested_by: a.requested_by.clone(),
                    origin: WorkflowOrigin::Cli,
                    key: a.key.clone(),
                },
            )
            .await
            .map_err(|e| refusal(e, &o.hints))?;
            let wf = settle_workflow(&o, &actions, &wf.id).await?;
            show_workflow(&a.place, &o.hints, &wf)
        }
        WorkflowCommand::List(a) => {
            let o = open_read(&a.place).await?;
            let items = cli::read_up_to(a.limit as usize, |after, n| {
                let (store, tenant) = (&o.app.store, &o.tenant);
                async move { store.list_workflows(tenant, after.as_deref(), n).await }
            })
            .await?;
            cli::print_list(a.place.json, &items, "no workflows", |w| {
                print_workflow(w, false, &o.hints)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Show(a) => {
            let o = open_read(&a.place).await?;
            let wf = o
                .app
                .store
                .get_workflow(&o.tenant, &a.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no workflow {} in directory {}", a.id, o.tenant))?;
            cli::print_one(a.place.json, &wf, |w| print_workflow(w, true, &o.hints))?;
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Cancel(a) => {
            let o = open_write(&a.place).await?;
            let (actions, _) = services(&a.place, &o).await?;
            let wf =
                svc::cancel_workflow(&actions.deps, &o.account, &o.tenant, &a.id, &a.by).await?;
            show_workflow(&a.place, &o.hints, &wf)
        }
        WorkflowCommand::Retry(a) => {
            let o = open_write(&a.place).await?;
            let (actions, _) = services(&a.place, &o).await?;
            let wf = svc::retry_workflow(&actions.deps, &o.account, &o.tenant, &a.id).await?;
            let wf = settle_workflow(&o, &actions, &wf.id).await?;
            show_workflow(&a.place, &o.hints, &wf)
        }
        WorkflowCommand::RunDue(p) => {
            let o = open_write(&p).await?;
            let (actions, _) = services(&p, &o).await?;
            let t = tick(&actions.deps).await?;
            if !o.served {
                run_queue_until_idle(&actions, WAIT).await?;
            }
            outln!(
                "{} workflow(s) moved on, {} approval request(s) expired",
                t.workflows_moved,
                t.expired
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Run the queue (unless `serve` does) and return the workflow as it is then.
pub(crate) async fn settle_workflow(
    o: &Opened,
    actions: &LocalActions,
    id: &str,
) -> Result<Workflow> {
    if o.served {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let wf = svc::get_workflow(&actions.deps, &o.account, &o.tenant, id).await?;
            if !matches!(wf.status, entra_sync_core::actions::WorkflowStatus::Running)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(wf);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if let QueueRun::Waiting { messages } = run_queue_until_idle(actions, WAIT).await? {
        eprintln_note(&format!(
            "{messages} queued action(s) wait for a later retry; `{}` or `{}` runs them",
            o.hints.command("actions run"),
            o.hints.command("serve")
        ));
    }
    Ok(svc::get_workflow(&actions.deps, &o.account, &o.tenant, id).await?)
}

fn show_workflow(p: &Place, h: &Hints, wf: &Workflow) -> Result<ExitCode> {
    cli::print_one(p.json, wf, |w| print_workflow(w, true, h))?;
    Ok(match wf.status {
        entra_sync_core::actions::WorkflowStatus::Failed { .. } => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}
