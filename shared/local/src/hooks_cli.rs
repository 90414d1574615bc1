//! `entra-sync hooks ...`: the HR webhook endpoints of a data directory, their delivery log and
//! the review list. Each command is a thin call into `entra_sync_core::services::webhooks`;
//! output is plain lines, or JSON with `--json`. A generated signing secret is printed once, by
//! `create` or `rotate`; secrets given to us are read from an environment variable (never from
//! the command line, where other users of the machine can read them) and stored in the vault.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use entra_sync_core::ports::Secret;
use entra_sync_core::services::actions::ActionDeps;
use entra_sync_core::services::webhooks::{
    self as hooks, CreateEndpoint, WebhookError, create_endpoint, dismiss_review, list_deliveries,
    list_endpoints, list_reviews, replay_delivery, resolve_review, rotate_secret, set_enabled,
};
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::delivery::{Delivery, Outcome, Processing};
use entra_sync_core::webhooks::endpoint::WebhookEndpoint;
use entra_sync_core::webhooks::review::{ReviewItem, ReviewStatus};
use entra_sync_graph::{GraphClient, GraphConfig};

use crate::act::Place;
use crate::cli::{self, Opened};
use crate::hooks_worker::{
    LocalDeliveryQueue, endpoint_deps, process_deps, queue_path, receive_deps,
};
use crate::outln;
use crate::queue::QueueConfig;
use crate::runtime::{LocalApp, tenant_id_arg};

#[derive(Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub command: HooksCommand,
}

/// Where the data lives, which directory, and the output format.
#[derive(Args, Clone)]
pub struct HooksTarget {
    #[arg(long, default_value = cli::DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The directory (tenant) id, a GUID; may be left out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    pub tenant_id: Option<String>,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SourceArg {
    Bamboohr,
    Hibob,
    Standard,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Bamboohr => Source::BambooHr,
            SourceArg::Hibob => Source::HiBob,
            SourceArg::Standard => Source::Standard,
        }
    }
}

#[derive(Subcommand)]
pub enum HooksCommand {
    /// Create the endpoint of an HR system for the directory. Standard Webhooks: the secret is
    /// generated and printed once. BambooHR and HiBob: give the key their settings page
    /// generated, in an environment variable (`--secret-env`).
    Create {
        #[arg(long, value_enum)]
        source: SourceArg,
        /// Environment variable holding the signing secret (required for bamboohr and hibob).
        #[arg(long)]
        secret_env: Option<String>,
        /// Environment variable holding the HR API credential (HiBob: `service-user-id:token`).
        #[arg(long)]
        api_credential_env: Option<String>,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// The account's endpoints.
    List {
        #[command(flatten)]
        target: HooksTarget,
    },
    /// A new current secret; the previous ones stay valid for the grace period.
    Rotate {
        #[arg(long, value_enum)]
        source: SourceArg,
        #[arg(long)]
        secret_env: Option<String>,
        /// Hours the previous secret stays valid (default 24, at most 720).
        #[arg(long)]
        grace_hours: Option<u32>,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// Answer 404 to every delivery until enabled again.
    Disable {
        #[arg(long, value_enum)]
        source: SourceArg,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// Accept deliveries again.
    Enable {
        #[arg(long, value_enum)]
        source: SourceArg,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// The delivery log of an endpoint, newest first.
    Deliveries {
        #[arg(long, value_enum)]
        source: SourceArg,
        /// At most this many (read from the store page by page).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// The people held for review (open ones; `--all` for every item).
    Reviews {
        #[arg(long)]
        all: bool,
        /// At most this many (read from the store page by page).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// Apply a held event to the directory user you pick (object id).
    Resolve {
        id: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "cli")]
        by: String,
        /// Where the data lives, which directory, and how Microsoft Graph is reached (the
        /// workflow's actions run now, unless a running `serve` runs them).
        #[command(flatten)]
        place: Box<Place>,
    },
    /// Close a review item without starting anything.
    Dismiss {
        id: String,
        #[arg(long, default_value = "cli")]
        by: String,
        #[command(flatten)]
        target: HooksTarget,
    },
    /// Queue an accepted delivery again (after fixing what kept its events from applying).
    Replay {
        #[arg(long, value_enum)]
        source: SourceArg,
        id: String,
        #[command(flatten)]
        target: HooksTarget,
    },
}

async fn open(t: &HooksTarget, write: bool) -> Result<Opened> {
    let tenant = t.tenant_id.as_deref();
    if write {
        cli::open_write_beside_serve(&t.data_dir, tenant).await
    } else {
        cli::open_read(&t.data_dir, tenant).await
    }
}

fn secret_from_env(var: &Option<String>) -> Result<Option<Secret>> {
    var.as_deref()
        .map(|name| {
            std::env::var(name)
                .map(Secret::new)
                .map_err(|_| anyhow!("the environment variable {name} is not set"))
        })
        .transpose()
}

/// A webhook error in plain words (the service's message).
fn plain(e: WebhookError) -> anyhow::Error {
    anyhow!("{e}")
}

fn endpoint_line(e: &WebhookEndpoint) -> String {
    format!(
        "{} {} directory {} {}, {} live secret(s), created {}{}",
        e.key.account_id,
        e.key.source,
        e.tenant_id,
        if e.enabled { "enabled" } else { "DISABLED" },
        e.secrets.len(),
        e.created_at.format("%Y-%m-%d %H:%M:%S"),
        if e.api_credential.is_some() {
            ", API credential set"
        } else {
            ""
        }
    )
}

fn delivery_line(d: &Delivery) -> String {
    let outcome = match &d.outcome {
        Outcome::Accepted => "accepted".to_owned(),
        Outcome::Duplicate { of } => format!("duplicate of {of}"),
        Outcome::Refused {
            status,
            code,
            reason,
        } => format!("refused {status} {code}: {reason}"),
    };
    let processing = match &d.processing {
        Processing::Queued => "; queued".to_owned(),
        Processing::Done { notes } if notes.is_empty() => "; done".to_owned(),
        Processing::Done { notes } => format!("; done: {}", notes.join("; ")),
        Processing::NotApplicable => String::new(),
    };
    let mut line = format!(
        "{} {} {outcome}{processing}",
        d.id,
        d.received_at.format("%Y-%m-%d %H:%M:%S")
    );
    if !d.events.is_empty() {
        line.push_str(&format!("; {} event(s)", d.events.len()));
    }
    if !d.workflow_ids.is_empty() {
        line.push_str(&format!("; workflows {}", d.workflow_ids.join(", ")));
    }
    if !d.review_ids.is_empty() {
        line.push_str(&format!("; held for review {}", d.review_ids.join(", ")));
    }
    line
}

fn review_line(r: &ReviewItem) -> String {
    let status = match &r.status {
        ReviewStatus::Open => "open".to_owned(),
        ReviewStatus::Resolved { user_id, by, .. } => format!("resolved by {by} as {user_id}"),
        ReviewStatus::Dismissed { by, .. } => format!("dismissed by {by}"),
    };
    format!(
        "{} {} {status}: {} (delivery {}, {})",
        r.id,
        r.created_at.format("%Y-%m-%d %H:%M:%S"),
        r.message,
        r.delivery_id,
        r.endpoint.source
    )
}

/// The processor's deps for the commands that never write the directory (listing and
/// dismissing reviews): the writer points at a closed loopback port, so a write could never
/// leave the machine.
fn processor(app: &LocalApp) -> Result<hooks::ProcessDeps> {
    let nowhere = url::Url::parse("http://127.0.0.1:9/").context("loopback URL")?;
    let config = GraphConfig::new(nowhere.clone(), nowhere, String::new(), Secret::new(""));
    let client = GraphClient::new(config).context("building the Graph client")?;
    processor_with(app, app.actions(Arc::new(client))?.deps)
}

fn processor_with(app: &LocalApp, actions: ActionDeps) -> Result<hooks::ProcessDeps> {
    let hr_api = crate::hooks_worker::hibob_client().context("building the HiBob client")?;
    Ok(process_deps(app, actions, Arc::new(hr_api)))
}

async fn toggle(source: SourceArg, target: HooksTarget, enabled: bool) -> Result<()> {
    let o = open(&target, true).await?;
    let e = set_enabled(&endpoint_deps(&o.app), &o.account, source.into(), enabled)
        .await
        .map_err(plain)?;
    cli::print_one(target.json, &e, |e| outln!("{}", endpoint_line(e)))
}

fn grace(hours: Option<u32>) -> Result<Option<chrono::Duration>> {
    match hours {
        None => Ok(None),
        Some(h) if h <= 720 => Ok(Some(chrono::Duration::hours(i64::from(h)))),
        Some(h) => Err(anyhow!(
            "--grace-hours {h} is longer than 720 (30 days), the longest grace period"
        )),
    }
}

pub async fn run_hooks(args: HooksArgs) -> Result<ExitCode> {
    match args.command {
        HooksCommand::Create {
            source,
            secret_env,
            api_credential_env,
            target,
        } => {
            let secret = secret_from_env(&secret_env)?;
            let api_credential = secret_from_env(&api_credential_env)?;
            let o = open(&target, true).await?;
            let created = create_endpoint(
                &endpoint_deps(&o.app),
                CreateEndpoint {
                    account: o.account.clone(),
                    source: source.into(),
                    tenant: o.tenant.clone(),
                    secret,
                    api_credential,
                },
            )
            .await
            .map_err(plain)?;
            let path = format!("/hooks/{}/{}", o.account, created.endpoint.key.source);
            if target.json {
                cli::print_json(&serde_json::json!({
                    "endpoint": created.endpoint,
                    "path": path,
                    "secret": created.secret.as_ref().map(Secret::expose),
                }))?;
            } else {
                outln!("{}", endpoint_line(&created.endpoint));
                outln!("URL path: {path}");
                if let Some(s) = &created.secret {
                    outln!("signing secret (shown only this once): {}", s.expose());
                }
            }
        }
        HooksCommand::List { target } => {
            let o = open(&target, false).await?;
            let all = list_endpoints(&endpoint_deps(&o.app), &o.account)
                .await
                .map_err(plain)?;
            let empty = format!("no webhook endpoints for account {}", o.account);
            cli::print_list(target.json, &all, &empty, |e| {
                outln!("{}", endpoint_line(e))
            })?;
        }
        HooksCommand::Rotate {
            source,
            secret_env,
            grace_hours,
            target,
        } => {
            let secret = secret_from_env(&secret_env)?;
            let grace = grace(grace_hours)?;
            let o = open(&target, true).await?;
            let rotated = rotate_secret(
                &endpoint_deps(&o.app),
                &o.account,
                source.into(),
                secret,
                grace,
            )
            .await
            .map_err(plain)?;
            if target.json {
                cli::print_json(&serde_json::json!({
                    "endpoint": rotated.endpoint,
                    "secret": rotated.secret.as_ref().map(Secret::expose),
                }))?;
            } else {
                outln!("{}", endpoint_line(&rotated.endpoint));
                if let Some(s) = &rotated.secret {
                    outln!("new signing secret (shown only this once): {}", s.expose());
                }
            }
        }
        HooksCommand::Disable { source, target } => toggle(source, target, false).await?,
        HooksCommand::Enable { source, target } => toggle(source, target, true).await?,
        HooksCommand::Deliveries {
            source,
            limit,
            target,
        } => {
            let o = open(&target, false).await?;
            let deps = endpoint_deps(&o.app);
            let items =
                cli::read_up_to(limit as usize, |after, n| {
                    let (deps, account) = (&deps, &o.account);
                    async move {
                        list_deliveries(deps, account, source.into(), after.as_deref(), n).await
                    }
                })
                .await
                .map_err(plain)?;
            cli::print_list(target.json, &items, "no deliveries", |d| {
                outln!("{}", delivery_line(d))
            })?;
        }
        HooksCommand::Reviews { all, limit, target } => {
            let o = open(&target, false).await?;
            let deps = processor(&o.app)?;
            let items = cli::read_up_to(limit as usize, |after, n| {
                let (deps, account, tenant) = (&deps, &o.account, &o.tenant);
                async move { list_reviews(deps, account, tenant, !all, after.as_deref(), n).await }
            })
            .await
            .map_err(plain)?;
            cli::print_list(target.json, &items, "no review items", |r| {
                outln!("{}", review_line(r))
            })?;
        }
        HooksCommand::Resolve {
            id,
            user,
            by,
            place,
        } => {
            let o =
                cli::open_write_beside_serve(&place.data_dir, place.tenant_id.as_deref()).await?;
            let (actions, _) = crate::act::services(&place, &o).await?;
            let deps = processor_with(&o.app, actions.deps.clone())?;
            let item = resolve_review(&deps, &o.account, &o.tenant, &id, &user, &by)
                .await
                .map_err(plain)?;
            if let ReviewStatus::Resolved { workflow_ids, .. } = &item.status {
                // The workflows' due steps run now (or in `serve`, when it runs).
                for wf in workflow_ids {
                    crate::act::settle_workflow(&o, &actions, wf).await?;
                }
            }
            cli::print_one(place.json, &item, |r| outln!("{}", review_line(r)))?;
        }
        HooksCommand::Dismiss { id, by, target } => {
            let o = open(&target, true).await?;
            let deps = processor(&o.app)?;
            let item = dismiss_review(&deps, &o.account, &o.tenant, &id, &by)
                .await
                .map_err(plain)?;
            cli::print_one(target.json, &item, |r| outln!("{}", review_line(r)))?;
        }
        HooksCommand::Replay { source, id, target } => {
            let o = open(&target, true).await?;
            let queue =
                LocalDeliveryQueue::open(&queue_path(&o.app.data_dir()), QueueConfig::default())?;
            let d = replay_delivery(
                &receive_deps(&o.app, Arc::new(queue)),
                &o.account,
                source.into(),
                &id,
            )
            .await
            .map_err(plain)?;
            cli::print_one(target.json, &d, |d| {
                outln!("queued again: {}", delivery_line(d));
                if !o.served {
                    outln!("(`{}` processes it when it runs)", o.hints.command("serve"));
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
