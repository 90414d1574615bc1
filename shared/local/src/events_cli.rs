//! `entra-sync events ...`: the outbound webhook endpoints of the account of a data
//! directory, their delivery log and manual redelivery, and `events deliver` (send what is due
//! now, as `serve` does every second). Each command is a thin call into
//! `entra_sync_core::outbound::service`; output is plain lines, or JSON with `--json`. A
//! generated signing secret is printed once, by `create` or `rotate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use chrono::Utc;
use clap::{Args, Subcommand};
use entra_sync_core::outbound::ports::OutboundStore;
use entra_sync_core::outbound::service::{
    NewEndpoint, OutboundError, create_endpoint, disable_endpoint, enable_endpoint, redeliver,
    rotate_secret,
};
use entra_sync_core::outbound::ssrf::UrlPolicy;
use entra_sync_core::outbound::{
    AttemptOutcome, DeliveryState, EndpointState, OutboundDelivery, OutboundEndpoint,
    OutboundPolicy,
};
use entra_sync_core::ports::Secret;

use crate::cli::{self, Opened};
use crate::outbound::SystemResolver;
use crate::outln;
use crate::runtime::tenant_id_arg;

#[derive(Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: EventsCommand,
}

/// Where the data lives, which directory (its account owns the endpoints), and the output.
#[derive(Args, Clone)]
pub struct EventsTarget {
    #[arg(long, default_value = cli::DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The directory (tenant) id, a GUID; may be left out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    pub tenant_id: Option<String>,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Test setting: allow http:// to a loopback address (127.0.0.1, [::1]). Off by default.
    #[arg(long, env = "ENTRA_SYNC_WEBHOOKS_ALLOW_INSECURE_LOOPBACK")]
    pub allow_insecure_loopback: bool,
}

impl EventsTarget {
    fn policy(&self) -> OutboundPolicy {
        OutboundPolicy {
            urls: UrlPolicy {
                allow_insecure_loopback: self.allow_insecure_loopback,
            },
            ..Default::default()
        }
    }
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// The account's outbound webhook endpoints.
    Endpoints {
        #[command(subcommand)]
        command: EndpointsCommand,
    },
    /// Send the outbound webhooks that are due now (`serve` does it every second).
    Deliver {
        #[command(flatten)]
        target: EventsTarget,
    },
}

#[derive(Subcommand)]
pub enum EndpointsCommand {
    /// Create an endpoint; its signing secret is printed once.
    Create {
        /// The https URL that receives the events.
        #[arg(long)]
        url: String,
        /// Only these event types (comma separated); every type when left out.
        #[arg(long, value_delimiter = ',')]
        types: Option<Vec<String>>,
        #[command(flatten)]
        target: EventsTarget,
    },
    /// The account's endpoints.
    List {
        #[command(flatten)]
        target: EventsTarget,
    },
    /// One endpoint.
    Show {
        id: String,
        #[command(flatten)]
        target: EventsTarget,
    },
    /// A new signing secret, printed once; the previous one keeps signing for 24 hours.
    Rotate {
        id: String,
        #[command(flatten)]
        target: EventsTarget,
    },
    /// Stop deliveries to the endpoint (pending ones wait until it is enabled).
    Disable {
        id: String,
        #[arg(long, default_value = "disabled by an administrator")]
        reason: String,
        #[command(flatten)]
        target: EventsTarget,
    },
    /// Deliver to the endpoint again (its URL is checked again).
    Enable {
        id: String,
        #[command(flatten)]
        target: EventsTarget,
    },
    /// The delivery log of an endpoint, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        #[command(flatten)]
        target: EventsTarget,
    },
    /// Send a delivery again now, with a fresh retry schedule.
    Redeliver {
        delivery_id: String,
        #[command(flatten)]
        target: EventsTarget,
    },
}

fn plain(e: OutboundError) -> anyhow::Error {
    anyhow!("{e}")
}

fn endpoint_line(e: &OutboundEndpoint) -> String {
    let state = match &e.state {
        EndpointState::Enabled => "enabled".to_owned(),
        EndpointState::Disabled { reason, at } => {
            format!("DISABLED {} ({reason})", at.format("%Y-%m-%d %H:%M:%S"))
        }
    };
    let types = e
        .event_types
        .as_ref()
        .map_or_else(|| "all types".to_owned(), |t| t.join(","));
    format!(
        "{} {} {state}, {types}, created {}",
        e.id,
        e.url,
        e.created_at.format("%Y-%m-%d %H:%M:%S")
    )
}

fn delivery_line(d: &OutboundDelivery) -> String {
    let state = match &d.state {
        DeliveryState::Pending { next_attempt_at } => {
            format!(
                "pending, next attempt {}",
                next_attempt_at.format("%Y-%m-%d %H:%M:%S")
            )
        }
        DeliveryState::Delivered { at } => format!("delivered {}", at.format("%Y-%m-%d %H:%M:%S")),
        DeliveryState::Failed { at } => format!("FAILED {}", at.format("%Y-%m-%d %H:%M:%S")),
    };
    let last = d.attempts.last().map(|a| {
        let what = match &a.outcome {
            AttemptOutcome::Status { status } => format!("HTTP {status}"),
            AttemptOutcome::Timeout => "no answer in time".to_owned(),
            AttemptOutcome::Error { error } => error.clone(),
        };
        format!("; last attempt {what} in {} ms", a.latency_ms)
    });
    format!(
        "{} {} {} {state}, {} attempt(s){}",
        d.id,
        d.event_type,
        d.event_id,
        d.attempts.len(),
        last.unwrap_or_default()
    )
}

async fn own_endpoint(o: &Opened, id: &str) -> Result<OutboundEndpoint> {
    match o.app.store.get_endpoint(id).await? {
        Some(e) if e.account_id == o.account => Ok(e),
        _ => Err(anyhow!(
            "no endpoint {id} (see {})",
            o.hints.command("events endpoints list")
        )),
    }
}

fn print_secret(json: bool, e: &OutboundEndpoint, secret: &Secret) -> Result<()> {
    if json {
        cli::print_json(&serde_json::json!({
            "endpoint": e,
            "secret": secret.expose(),
        }))
    } else {
        outln!("{}", endpoint_line(e));
        outln!("signing secret (shown only this once): {}", secret.expose());
        Ok(())
    }
}

pub async fn run_events(args: EventsArgs) -> Result<ExitCode> {
    match args.command {
        EventsCommand::Deliver { target } => {
            let o =
                cli::open_write_beside_serve(&target.data_dir, target.tenant_id.as_deref()).await?;
            o.app.deliver_events().await?;
            let worker = o.app.outbound_worker(target.policy())?;
            let r = worker.deliver_due(Utc::now()).await.map_err(plain)?;
            if target.json {
                cli::print_json(&serde_json::json!({
                    "attempted": r.attempted,
                    "delivered": r.delivered,
                    "failed_attempts": r.failed_attempts,
                    "endpoints_disabled": r.endpoints_disabled,
                }))?;
            } else {
                outln!(
                    "{} attempted, {} delivered, {} failed (retried by the schedule), {} endpoint(s) disabled",
                    r.attempted,
                    r.delivered,
                    r.failed_attempts,
                    r.endpoints_disabled
                );
            }
        }
        EventsCommand::Endpoints { command } => run_endpoints(command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_endpoints(command: EndpointsCommand) -> Result<()> {
    match command {
        EndpointsCommand::Create { url, types, target } => {
            let o =
                cli::open_write_beside_serve(&target.data_dir, target.tenant_id.as_deref()).await?;
            let created = create_endpoint(
                o.app.store.as_ref(),
                o.app.vault.as_ref(),
                &SystemResolver,
                &target.policy(),
                NewEndpoint {
                    account: o.account.clone(),
                    url,
                    event_types: types,
                },
                Utc::now(),
            )
            .await
            .map_err(plain)?;
            print_secret(target.json, &created.endpoint, &created.secret)?;
        }
        EndpointsCommand::List { target } => {
            let o = cli::open_read(&target.data_dir, target.tenant_id.as_deref()).await?;
            let all = o.app.store.list_endpoints(&o.account).await?;
            cli::print_list(target.json, &all, "no endpoints", |e| {
                outln!("{}", endpoint_line(e))
            })?;
        }
        EndpointsCommand::Show { id, target } => {
            let o = cli::open_read(&target.data_dir, target.tenant_id.as_deref()).await?;
            let e = own_endpoint(&o, &id).await?;
            cli::print_one(target.json, &e, |e| outln!("{}", endpoint_line(e)))?;
        }
        EndpointsCommand::Rotate { id, target } => {
            let o =
                cli::open_write_beside_serve(&target.data_dir, target.tenant_id.as_deref()).await?;
            own_endpoint(&o, &id).await?;
            let r = rotate_secret(o.app.store.as_ref(), o.app.vault.as_ref(), &id, Utc::now())
                .await
                .map_err(plain)?;
            print_secret(target.json, &r.endpoint, &r.secret)?;
        }
        EndpointsCommand::Disable { id, reason, target } => {
            let o =
                cli::open_write_beside_serve(&target.data_dir, target.tenant_id.as_deref()).await?;
            own_endpoint(&o, &id).await?;
            let e = disable_endpoint(o.app.store.as_ref(), &id, &reason, Utc::now())
                .await
                .map_err(plain)?;
            cli::print_one(target.json, &e, |e| outln!("{}", endpoint_line(e)))?;
        }
        EndpointsCommand::Enable { id, target } => {
            let o =
                cli::open_write_beside_serve(&target.data_dir, target.tenant_id.as_deref()).await?;
            own_endpoint(&o, &id).await?;
            let e = enable_endpoint(
                o.app.store.as_ref(),
                &SystemResolver,
                &target.policy(),
                &id,
                Utc::now(),
            )
            .await
            .map_err(plain)?;
            cli::print_one(target.json, &e, |e| outln!("{}", endpoint_line(e)))?;
        }
        EndpointsCommand::Deliveries { id, limit, target } => {
            let o = cli::open_read(&target.data_dir, target.tenant_id.as_deref()).await?;
            own_endpoint(&o, &id).await?;
            let all = o
                .app
                .store
                .list_deliveries(&id, None, limit as usize)
                .await?;
            cli::print_list(target.json, &all, "no deliveries", |d| {
                outln!("{}", delivery_line(d))
            })?;
        }
        EndpointsCommand::Redeliver {
            delivery_id,
            target,
        } => {
            let o =
                cli::open_write_beside_serve(&target.data_dir, target.tenant_id.as_deref()).await?;
            let d = o
                .app
                .store
                .get_delivery(&delivery_id)
                .await?
                .ok_or_else(|| anyhow!("no delivery {delivery_id}"))?;
            own_endpoint(&o, &d.endpoint_id).await?;
            let d = redeliver(o.app.store.as_ref(), &delivery_id, Utc::now())
                .await
                .map_err(plain)?;
            cli::print_one(target.json, &d, |d| outln!("{}", delivery_line(d)))?;
        }
    }
    Ok(())
}
