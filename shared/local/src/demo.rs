//! The one-command demo: an emulated tenant, connect, full sync, directory changes, incremental
//! sync, and a check that the stored state equals the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use entra_sync_core::actions::kind::ActionKind;
use entra_sync_core::model::{AccountId, Connection, ConnectionStatus, TenantId};
use entra_sync_core::page::RoundMode;
use entra_sync_core::ports::{APP_CLIENT_SECRET, ConnectionStore, RunStore, Secret, SecretVault};
use entra_sync_core::run::{RunStatus, SyncRun};
use entra_sync_core::services::FetchOptions;
use entra_sync_emulator::{ChurnSummary, Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig};

use entra_sync_core::mapping::FieldMapping;
use entra_sync_core::services::{load_settings, save_settings};
use entra_sync_core::settings::ConnectionSettings;

use crate::runtime::{DataDir, DirLock, LocalApp, LocalError, SyncSettings};
use crate::verify::{Verification, compare};

/// The file that marks a directory as the demo's own. The demo writes it in a directory it
/// creates (or finds empty), and uses no other directory: a directory that is not empty and
/// has no marker may be a real store, or anything else, and is refused.
pub const DEMO_MARKER: &str = "entra-sync-demo";

/// Every file the demo makes in its directory besides the marker and the lock file. `--fresh`
/// deletes these and nothing else.
pub const DEMO_FILES: &[&str] = &[
    "store.sqlite",
    "store.sqlite-wal",
    "store.sqlite-shm",
    "store.sqlite-journal",
    "queue.sqlite",
    "queue.sqlite-wal",
    "queue.sqlite-shm",
    "queue.sqlite-journal",
    "vault.json",
    "vault.tmp",
    "vault.key",
    "events.jsonl",
    "emulator.json",
    "emulator.tmp",
    "actions.sqlite",
    "actions.sqlite-wal",
    "actions.sqlite-shm",
    "actions.sqlite-journal",
];

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    /// Start over: delete the demo's own files in `data_dir` first (never anything else).
    pub fresh: bool,
    pub users: usize,
    pub groups: usize,
    pub seed: u64,
    /// Directory changes between the two syncs (default: 2 % of users).
    pub changes: Option<usize>,
    /// Latency the emulator adds to every request.
    pub latency: Duration,
    pub settings: SyncSettings,
}

/// One sync as the summary table shows it.
#[derive(Clone, Debug)]
pub struct SyncSummary {
    pub label: String,
    pub run: SyncRun,
    pub mode: Option<RoundMode>,
    pub graph_requests: u64,
    pub wall: Duration,
}

#[derive(Clone, Debug)]
pub struct DemoSummary {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    /// The filters, mapping and rules the syncs used, one line each.
    pub settings: Vec<String>,
    pub syncs: Vec<SyncSummary>,
    pub churn: ChurnSummary,
    pub verification: Verification,
}

/// Something to tell the person watching.
pub enum DemoStep<'a> {
    Started {
        tenant: &'a str,
        users: usize,
        groups: usize,
    },
    Connected {
        tenant_name: &'a str,
        domains: usize,
    },
    SyncProgress {
        label: &'a str,
        run: &'a SyncRun,
    },
    SyncDone(&'a SyncSummary),
    Changed(&'a ChurnSummary),
    /// The act scene: one line of what was done on the directory.
    Acted(&'a str),
}

fn emulator_state(dir: &DataDir) -> PathBuf {
    dir.root.join("emulator.json")
}

/// Make sure `root` is the demo's own directory: create it with the marker when it does not
/// exist (or is empty); refuse any other directory, naming what it holds. Nothing is written
/// or deleted in a refused directory.
pub fn claim_demo_dir(root: &Path) -> Result<(), LocalError> {
    let data_dir = |source| LocalError::DataDir {
        path: root.to_owned(),
        source,
    };
    let marker = root.join(DEMO_MARKER);
    let empty = match std::fs::read_dir(root) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(root).map_err(data_dir)?;
            true
        }
        Err(e) => return Err(data_dir(e)),
    };
    if marker.is_file() {
        return Ok(());
    }
    if !empty {
        return Err(LocalError::NotADemoDirectory {
            path: root.to_owned(),
            holds_store: DataDir::new(root).has_store(),
        });
    }
    std::fs::write(
        &marker,
        "This directory belongs to `entra-sync demo`; `demo --fresh` deletes the demo's files in it.\n",
    )
    .map_err(data_dir)
}

/// Delete the demo's own files in its directory (the caller holds the directory's lock).
fn remove_demo_files(root: &Path) -> Result<(), LocalError> {
    for name in DEMO_FILES {
        let path = root.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LocalError::DataDir { path, source: e });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Run the demo. A second run on the same data directory continues the same emulated tenant
/// (its state is saved beside the store), so its first sync is incremental.
pub async fn run_demo(
    opts: &DemoOptions,
    mut on_step: impl FnMut(DemoStep<'_>),
) -> Result<DemoSummary, LocalError> {
    let dir = DataDir::new(&opts.data_dir);
    claim_demo_dir(&dir.root)?;
    let lock = DirLock::acquire(&dir, "demo")?;
    if opts.fresh {
        remove_demo_files(&dir.root)?;
    }
    let app = LocalApp::open_locked(&dir, &opts.settings, lock)?;
    let config = EmulatorConfig {
        latency: opts.latency,
        ..EmulatorConfig::default()
    };
    let state_file = emulator_state(&dir);
    let emulator = if state_file.exists() {
        Emulator::start_from_state(config, &state_file)
            .await
            .map_err(|e| LocalError::Failed(format!("cannot restore the emulator: {e}")))?
    } else {
        Emulator::start(config)
            .await
            .map_err(|e| LocalError::Failed(format!("cannot start the emulator: {e}")))?
    };
    let tenant_info = match emulator.tenant_ids().first() {
        Some(id) => emulator
            .tenant_info(id)
            .ok_or_else(|| LocalError::Failed("restored emulator lost its tenant".into()))?,
        None => {
            let info = emulator.add_tenant(&TenantSpec::new(opts.seed, opts.users, opts.groups));
            // A new tenant has not consented yet: the demo's consent flow grants it.
            if let Some(t) = emulator.tenant(&info.tenant_id) {
                t.revoke_consent();
            }
            info
        }
    };
    // From here on the emulator saves itself after every change (consent, the directory
    // changes), so a demo killed at any moment (even with SIGKILL) continues on its next run
    // from a state at least as new as anything the store has read.
    emulator.persist_to(&state_file).map_err(|e| {
        LocalError::Failed(format!(
            "cannot save the emulator state in {}: {e}",
            state_file.display()
        ))
    })?;
    let tenant = TenantId::new(tenant_info.tenant_id.clone());
    let handle = emulator
        .tenant(&tenant_info.tenant_id)
        .ok_or_else(|| LocalError::Failed("emulated tenant missing".into()))?;
    let size = handle.snapshot();
    on_step(DemoStep::Started {
        tenant: &tenant_info.tenant_id,
        users: size.users.len(),
        groups: size.groups.len(),
    });

    // Connect: keep the app secret in the vault, read the tenant's details, store the connection.
    let app_creds = emulator.app();
    app.vault
        .put_secret(
            APP_CLIENT_SECRET,
            &Secret::new(app_creds.client_secret.clone()),
        )
        .await?;
    let secret = app.vault.get_secret(APP_CLIENT_SECRET).await?;
    let graph_config = GraphConfig::new(
        url(&emulator.graph_base_url())?,
        url(&emulator.login_base_url())?,
        app_creds.client_id.clone(),
        secret,
    );
    let client = Arc::new(
        GraphClient::new(graph_config)
            .map_err(|e| LocalError::Failed(format!("graph client: {e}")))?,
    );
    let connection = match app.store.get_connection(&tenant).await? {
        Some(c) if c.can_sync() => c,
        existing => {
            connect_with_consent(
                &app,
                &client,
                &emulator,
                &tenant,
                existing.map(|c| c.account_id),
            )
            .await?
        }
    };
    let tenant_name = connection.tenant_name.clone().unwrap_or_default();
    on_step(DemoStep::Connected {
        tenant_name: &tenant_name,
        domains: connection.verified_domains.len(),
    });

    let settings = demo_settings(&app, &tenant).await?;

    let mut syncs = Vec::new();
    let first = sync_once(
        &app,
        &client,
        &emulator,
        &tenant,
        "before changes",
        &opts.settings,
        &mut on_step,
    )
    .await?;
    syncs.push(first);

    let changes = opts.changes.unwrap_or((opts.users / 50).max(10));
    // Each demo run changes the directory differently, but reproducibly: the salt is the
    // number of runs the activity log already holds.
    let salt = app.store.list_runs(&tenant, usize::MAX).await?.len() as u64;
    let churn = handle.random_churn(opts.seed.wrapping_add(salt), changes);
    on_step(DemoStep::Changed(&churn));

    let second = sync_once(
        &app,
        &client,
        &emulator,
        &tenant,
        "after changes",
        &opts.settings,
        &mut on_step,
    )
    .await?;
    syncs.push(second);

    // The act scene: offboard one user (a workflow), then the next incremental sync shows the
    // user blocked and out of its groups.
    if let Some(offboarded) =
        act_scene(&app, &client, &tenant, &connection.account_id, &mut on_step).await?
    {
        let third = sync_once(
            &app,
            &client,
            &emulator,
            &tenant,
            "after offboarding",
            &opts.settings,
            &mut on_step,
        )
        .await?;
        syncs.push(third);
        // What the mirror holds for the user now that the directory's delta confirmed it.
        let stored = app.export(&tenant).await?;
        let blocked = stored
            .users
            .iter()
            .find(|u| u.user.id == offboarded)
            .is_some_and(|u| u.user.account_enabled == Some(false));
        let writable = |group_id: &str| {
            stored.groups.iter().any(|g| {
                g.group.id == group_id
                    && entra_sync_core::actions::resolve::not_a_target(&g.group).is_none()
            })
        };
        let (changeable, managed): (Vec<_>, Vec<_>) = stored
            .memberships
            .iter()
            .filter(|m| m.present && m.member.id == offboarded)
            .partition(|m| writable(&m.group_id));
        on_step(DemoStep::Acted(&format!(
            "after the incremental sync the store shows the user {}, in {} groups the app may change (and {} that Exchange, a membership rule or on-premises AD manages)",
            if blocked { "blocked" } else { "NOT blocked" },
            changeable.len(),
            managed.len()
        )));
    }

    let stored = app.export(&tenant).await?;
    let verification = compare(&stored, &handle.snapshot());
    emulator
        .save_state(&state_file)
        .map_err(|e| LocalError::Failed(format!("cannot save the emulator state: {e}")))?;
    emulator.shutdown().await;
    Ok(DemoSummary {
        tenant_id: tenant,
        tenant_name,
        settings,
        syncs,
        churn,
        verification,
    })
}

/// The demo's settings, saved on its first run: the default filters (members with enabled
/// accounts, every department, domain and office) and mapping, plus a custom field, auto-
/// activation for verified domains, and a breaker sized for the demo's churn (the default, 50
/// users, would hold the second sync of a 10,000-user tenant with 2 % churn for confirmation).
async fn demo_settings(app: &LocalApp, tenant: &TenantId) -> Result<Vec<String>, LocalError> {
    let deps = app.project_deps();
    let current = load_settings(app.store.as_ref(), tenant).await?;
    let settings = match current.version {
        0 => {
            let mut s = ConnectionSettings::default();
            s.mapping.fields.push(FieldMapping {
                target: "title".into(),
                source: "jobTitle".into(),
            });
            s.provisioning.auto_activate_verified_domains = true;
            s.breaker.max_count = 1_000.into();
            s.breaker.max_percent = 20;
            save_settings(&deps, tenant, s, 0)
                .await
                .map_err(|e| LocalError::Failed(format!("demo settings: {e}")))?
                .0
        }
        _ => current,
    };
    let mut lines = settings.describe();
    lines.push(format!(
        "rules: automatic {}, auto-activate verified domains {}, deprovisioning {}, breaker: more than {} users or {} %",
        crate::words(&settings.provisioning.automatic),
        settings.provisioning.auto_activate_verified_domains,
        crate::words(&settings.provisioning.deprovisioning),
        settings.breaker.max_count,
        settings.breaker.max_percent
    ));
    Ok(lines)
}

/// The kinds offboarding uses, enabled for the demo's directory.
const OFFBOARDING_KINDS: [ActionKind; 4] = [
    ActionKind::RevokeSessions,
    ActionKind::RemoveAppRole,
    ActionKind::RemoveGroupMember,
    ActionKind::BlockSignIn,
];

/// Offboard one enabled member of a group that takes member writes: the workflow revokes its
/// sessions, removes its app assignments and group memberships, and asks for an approval of
/// the block (the default policy), which a second person gives. Returns the user's object id,
/// if there was a user to offboard.
async fn act_scene(
    app: &LocalApp,
    client: &Arc<GraphClient>,
    tenant: &TenantId,
    account: &AccountId,
    on_step: &mut impl FnMut(DemoStep<'_>),
) -> Result<Option<String>, LocalError> {
    use entra_sync_core::actions::WorkflowStatus;
    use entra_sync_core::actions::resolve::not_a_target;
    use entra_sync_core::actions::workflow::{Template, WorkflowOrigin, WorkflowParams};
    use entra_sync_core::services::actions::{
        DecideRequest, Decision, StartWorkflow, decide_action, get_workflow, start_workflow,
    };

    let failed = |e: &dyn std::fmt::Display| LocalError::Failed(format!("act scene: {e}"));
    // Enable the kinds (the demo's consent granted every permission of its app).
    let deps = app.project_deps();
    let current = load_settings(app.store.as_ref(), tenant).await?;
    if !OFFBOARDING_KINDS
        .iter()
        .all(|k| current.actions.enabled.contains(k))
    {
        let mut s = current.clone();
        s.actions.enabled.extend(OFFBOARDING_KINDS);
        save_settings(&deps, tenant, s, current.version)
            .await
            .map_err(|e| failed(&e))?;
    }
    let actions = app.actions(client.clone())?;
    // The user: enabled, present, a member of a group the app may change.
    let stored = app.export(tenant).await?;
    let writable: std::collections::BTreeSet<&str> = stored
        .groups
        .iter()
        .filter(|g| g.presence.is_present() && not_a_target(&g.group).is_none())
        .map(|g| g.group.id.as_str())
        .collect();
    let user = stored.users.iter().find(|u| {
        u.presence.is_present()
            && u.user.account_enabled == Some(true)
            && u.user.user_type.as_deref() != Some("Guest")
            && stored.memberships.iter().any(|m| {
                m.present && m.member.id == u.user.id && writable.contains(m.group_id.as_str())
            })
    });
    let Some(user) = user else {
        return Ok(None);
    };
    let name = user
        .user
        .user_principal_name
        .clone()
        .unwrap_or_else(|| user.user.id.clone());
    let groups = stored
        .memberships
        .iter()
        .filter(|m| m.present && m.member.id == user.user.id)
        .count();
    let wf = start_workflow(
        &actions.deps,
        StartWorkflow {
            account: account.clone(),
            tenant: tenant.clone(),
            template: Template::Offboarding,
            params: WorkflowParams {
                user: user.user.id.clone(),
                groups: vec![],
                apps: vec![],
                at: None,
            },
            requested_by: "demo-admin".into(),
            origin: WorkflowOrigin::Cli,
            key: Some(format!("demo-offboard-{}", user.user.id)),
        },
    )
    .await
    .map_err(|e| failed(&e))?;
    on_step(DemoStep::Acted(&format!(
        "offboarding {name} (member of {groups} groups), requested by demo-admin"
    )));
    crate::action_worker::run_queue_until_idle(&actions, Duration::from_secs(60)).await?;
    let mut wf = get_workflow(&actions.deps, account, tenant, &wf.id)
        .await
        .map_err(|e| failed(&e))?;
    if let WorkflowStatus::WaitingApproval { action_id } = wf.status.clone() {
        on_step(DemoStep::Acted(&format!(
            "block sign-in of {name} waits for an approver; approved by demo-approver"
        )));
        decide_action(
            &actions.deps,
            DecideRequest {
                account: account.clone(),
                tenant: tenant.clone(),
                action_id,
                decision: Decision::Approve,
                by: "demo-approver".into(),
                comment: Some("demo".into()),
            },
        )
        .await
        .map_err(|e| failed(&e))?;
        crate::action_worker::run_queue_until_idle(&actions, Duration::from_secs(60)).await?;
        wf = get_workflow(&actions.deps, account, tenant, &wf.id)
            .await
            .map_err(|e| failed(&e))?;
    }
    on_step(DemoStep::Acted(&format!(
        "offboarding workflow {}: {}",
        wf.id,
        crate::words(&wf.status.as_str())
    )));
    Ok(Some(user.user.id.clone()))
}

fn url(s: &str) -> Result<url::Url, LocalError> {
    url::Url::parse(s).map_err(|e| LocalError::Failed(format!("bad URL {s}: {e}")))
}

/// The demo's account and the callback URL the demo's consent flow uses (handled in-process,
/// never listened on).
const DEMO_ACCOUNT: &str = "local";
const DEMO_REDIRECT_URI: &str = "http://127.0.0.1/connect/callback";

/// Connect through the admin-consent flow, as a browser would: ask the connect routes for a
/// consent URL (a reconnect when the account already holds the tenant), follow it to the
/// emulator's consent page, and hand its redirect back to the callback route.
pub async fn connect_with_consent(
    app: &LocalApp,
    client: &GraphClient,
    emulator: &Emulator,
    tenant: &TenantId,
    account: Option<AccountId>,
) -> Result<Connection, LocalError> {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let failed = |what: &str, e: &dyn std::fmt::Display| LocalError::Failed(format!("{what}: {e}"));
    let redirect_uri = url(DEMO_REDIRECT_URI)?;
    let config = entra_sync_http::connect::ConnectConfig {
        login_base_url: url(&emulator.login_base_url())?,
        client_id: client.config().client_id.clone(),
        redirect_uri: Some(redirect_uri.clone()),
        scope: client.config().scope(),
        state_ttl: chrono::Duration::minutes(10),
        return_url: None,
    };
    let routes = crate::serve::connect_router(app, client.clone(), config);
    let call = |req: Request<Body>| {
        let routes = routes.clone();
        async move {
            let resp = routes
                .oneshot(req)
                .await
                .map_err(|e| failed("connect route", &e))?;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .map_err(|e| failed("connect route body", &e))?;
            Ok::<_, LocalError>((status, body))
        }
    };
    let account = account.unwrap_or_else(|| AccountId(DEMO_ACCOUNT.into()));
    let (path, body) = match &account {
        a if app.store.get_connection(tenant).await?.is_some() => (
            format!("/accounts/{a}/connections/{tenant}/reconnect"),
            String::new(),
        ),
        a => (
            format!("/accounts/{a}/connections/start"),
            serde_json::json!({"label": "Demo directory", "expected_tenant_id": tenant.as_str()})
                .to_string(),
        ),
    };
    let start = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .map_err(|e| failed("start request", &e))?;
    let (status, body) = call(start).await?;
    if status != StatusCode::CREATED {
        return Err(LocalError::Failed(format!(
            "the consent could not start ({status}): {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let link: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| failed("start answer", &e))?;
    let consent_url = link["consent_url"]
        .as_str()
        .ok_or_else(|| LocalError::Failed("the start answer has no consent_url".into()))?;
    // The admin's browser: one GET to the consent page, which redirects to our callback.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed("http client", &e))?;
    let consent = http
        .get(consent_url)
        .send()
        .await
        .map_err(|e| failed("consent page", &e))?;
    let location = consent
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(url)
        .transpose()?
        .ok_or_else(|| {
            LocalError::Failed(format!("the consent page answered {}", consent.status()))
        })?;
    if location.origin() != redirect_uri.origin() || location.path() != redirect_uri.path() {
        return Err(LocalError::Failed(
            "the consent page redirected elsewhere".into(),
        ));
    }
    let callback = Request::get(format!(
        "{}?{}",
        location.path(),
        location.query().unwrap_or("")
    ))
    .body(Body::empty())
    .map_err(|e| failed("callback request", &e))?;
    let (status, page) = call(callback).await?;
    if status != StatusCode::OK {
        return Err(LocalError::Failed(format!(
            "the consent callback refused the connection ({status}): {}",
            String::from_utf8_lossy(&page)
        )));
    }
    app.store
        .get_connection(tenant)
        .await?
        .ok_or_else(|| LocalError::Failed("the callback stored no connection".into()))
}

/// Read the tenant's details and store the connection directly, for a tenant whose admin
/// consented outside this program (`entra-sync sync`). Connecting an already connected tenant
/// keeps its label and date. The demo and `entra-sync serve` use the consent flow instead.
pub async fn connect(
    app: &LocalApp,
    client: &GraphClient,
    tenant: &TenantId,
) -> Result<Connection, LocalError> {
    let org = client
        .organization(tenant)
        .await
        .map_err(|e| LocalError::Failed(format!("cannot read the tenant's details: {e}")))?;
    let existing = app.store.get_connection(tenant).await?;
    let name = org
        .display_name
        .clone()
        .unwrap_or_else(|| tenant.to_string());
    let connection = Connection {
        tenant_id: tenant.clone(),
        account_id: existing
            .as_ref()
            .map_or_else(|| AccountId("local".into()), |c| c.account_id.clone()),
        label: existing
            .as_ref()
            .map_or_else(|| name.clone(), |c| c.label.clone()),
        tenant_name: Some(name),
        verified_domains: org.verified_domains.clone(),
        status: ConnectionStatus::Connected,
        connected_at: existing
            .as_ref()
            .map_or_else(|| app.clock.now(), |c| c.connected_at),
        granted_permissions: existing
            .as_ref()
            .map(|c| c.granted_permissions.clone())
            .unwrap_or_default(),
    };
    app.store.put_connection(&connection).await?;
    Ok(connection)
}

#[allow(clippy::too_many_arguments)]
async fn sync_once(
    app: &LocalApp,
    client: &Arc<GraphClient>,
    emulator: &Emulator,
    tenant: &TenantId,
    label: &str,
    settings: &SyncSettings,
    on_step: &mut impl FnMut(DemoStep<'_>),
) -> Result<SyncSummary, LocalError> {
    let before = emulator.counters().requests;
    let started = Instant::now();
    let run = app
        .sync(
            client.clone(),
            tenant,
            &FetchOptions::default(),
            settings,
            |run| {
                on_step(DemoStep::SyncProgress { label, run });
            },
        )
        .await?;
    let summary = SyncSummary {
        label: label.to_owned(),
        mode: run.users.mode,
        graph_requests: emulator.counters().requests - before,
        wall: started.elapsed(),
        run,
    };
    on_step(DemoStep::SyncDone(&summary));
    if let RunStatus::Failed { error } = &summary.run.status {
        return Err(LocalError::Failed(format!("{label} failed: {error}")));
    }
    Ok(summary)
}
