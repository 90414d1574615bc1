//! The admin side of the local program: settings, import preview and import, held runs
//! (confirm / reject), the host product's users and the sign-in lookup. Each command is a thin
//! call into `entra_sync_core::services`; the admin HTTP API will call the same services.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use entra_sync_core::ports::{LocalUserStore, Pages};
use entra_sync_core::provision::{Action, LocalStatus, LocalUser};
use entra_sync_core::services::{
    ImportMode, LocalUserError, Preview, PreviewItem, ProjectError, ProjectOutcome,
    activate_local_user, add_local_user, check_settings_edit, confirm_held, import, load_settings,
    preview, reject_held, save_settings, set_local_status, sign_in_lookup,
};
use entra_sync_core::settings::{ConnectionSettings, SettingsChange, SettingsError, parse_edit};

use crate::cli::{self, Opened};
use crate::outln as out;
use crate::runtime::{DataDir, tenant_id_arg};

/// Where the data lives and which directory a command is about.
#[derive(Args, Clone)]
pub struct Target {
    #[arg(long, default_value = cli::DATA_DIR, env = "ENTRA_SYNC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The directory (tenant) id, a GUID; may be left out when only one directory is connected.
    #[arg(long, env = "ENTRA_SYNC_TENANT_ID", value_parser = tenant_id_arg)]
    pub tenant_id: Option<String>,
}

/// The admin commands.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Show, validate or change a connection's settings (filters, mapping, rules, breaker).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// What an import would create, update and skip, with reasons. Writes nothing.
    Preview(ImportArgs),
    /// Apply an import (the same decisions the preview lists).
    Import(ImportArgs),
    /// Apply a run the circuit breaker held.
    Confirm(HeldArgs),
    /// Reject a held run: nothing is applied and the next run reads the whole directory.
    Reject(HeldArgs),
    /// The host product's users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// What the host product learns at sign-in: status and roles of a user, by email.
    Lookup(LookupArgs),
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Print the settings as JSON (the defaults when never saved).
    Show(Target),
    /// Check a settings file and list every problem, and what it would change; saves nothing.
    /// Checked against the stored settings and the mirror when the data directory holds a store,
    /// else against the defaults. Only reads (works beside a running `serve`).
    Validate {
        /// JSON object: the fields to change (fields left out keep their value).
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Merge a settings file onto the stored settings, print what changes, save, and re-project
    /// the users at once (no directory read). Fields the file leaves out keep their value;
    /// `null` puts a field back to its default.
    Set {
        /// JSON object: the fields to change (`settings show` prints them all).
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Every new user and every change to existing users.
    NewAndUpdated,
    /// Changes to existing users only.
    OnlyUpdated,
    /// New users only.
    OnlyNew,
    /// Only the new users named with --user.
    Selected,
}

#[derive(Args)]
pub struct ImportArgs {
    #[arg(long, value_enum, default_value_t = ModeArg::NewAndUpdated)]
    pub mode: ModeArg,
    /// Directory object ids of the new users to import (with --mode selected).
    #[arg(long = "user", value_delimiter = ',')]
    pub users: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
pub struct HeldArgs {
    /// The held run's id (see `entra-sync runs`).
    pub run_id: String,
    /// Who decides (recorded in the activity log).
    #[arg(long, default_value = "local-admin")]
    pub by: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List the host product's users of the connection's account.
    List(ListUsersArgs),
    /// Add a user that exists in the host product before any sync (matching links it).
    Add {
        email: String,
        #[arg(long, value_enum, default_value_t = StatusArg::Active)]
        status: StatusArg,
        #[command(flatten)]
        target: Target,
    },
    /// Activate a pending user. Any other status is refused with the reason.
    Activate {
        local_id: String,
        /// Also activate a user deactivated in the host product (never one whose directory
        /// account is disabled or deleted: the directory decides those).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user in the host product (the next sync recreates it if it still matches and
    /// recreating is on).
    Delete {
        local_id: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Args)]
pub struct ListUsersArgs {
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Pending,
    Active,
}

#[derive(Args)]
pub struct LookupArgs {
    pub email: String,
    #[command(flatten)]
    pub target: Target,
}

/// Open the data directory for a command that writes it (holding its lock, which names the
/// command: `settings set`, `users add`, ...).
async fn open(t: &Target) -> Result<Opened> {
    cli::open_write(&t.data_dir, t.tenant_id.as_deref()).await
}

/// Open the data directory for a command that only reads: no lock, and nothing is created.
async fn open_read(t: &Target) -> Result<Opened> {
    cli::open_read(&t.data_dir, t.tenant_id.as_deref()).await
}

fn mode_of(args: &ImportArgs) -> Result<ImportMode> {
    Ok(match args.mode {
        ModeArg::NewAndUpdated => ImportMode::NewAndUpdated,
        ModeArg::OnlyUpdated => ImportMode::OnlyUpdated,
        ModeArg::OnlyNew => ImportMode::OnlyNew,
        ModeArg::Selected => {
            if args.users.is_empty() {
                bail!(
                    "--mode selected needs the users to import: --user <object id>[,<object id>...]"
                );
            }
            ImportMode::SelectedNew {
                object_ids: args.users.iter().cloned().collect::<BTreeSet<_>>(),
            }
        }
    })
}

/// With `--mode selected`: refuse ids that name no user of the directory (naming them), so a
/// typo is not silently "nothing to import".
async fn check_selected(o: &Opened, mode: &ImportMode) -> Result<()> {
    let ImportMode::SelectedNew { object_ids } = mode else {
        return Ok(());
    };
    let unknown = o.app.unknown_users(&o.tenant, object_ids).await?;
    if !unknown.is_empty() {
        bail!(
            "no user {} in directory {}; give the object ids of users the directory holds (see `{}`)",
            unknown.join(", "),
            o.tenant,
            o.hints.command("export")
        );
    }
    Ok(())
}

/// With `--mode selected`, the preview of the selected users only. Every other user's
/// decision is a skip ("not part of this import"), and unchanged users are not listed, so the
/// counts are narrowed the same way.
fn narrow_to_selected(p: &mut Preview, mode: &ImportMode) {
    let ImportMode::SelectedNew { object_ids } = mode else {
        return;
    };
    let before = p.items.len();
    p.items.retain(|i| object_ids.contains(&i.object_id));
    let dropped = (before - p.items.len()) as u64;
    p.counts.skipped = p.counts.skipped.saturating_sub(dropped);
    p.counts.unchanged = object_ids.len().saturating_sub(p.items.len()) as u64;
}

async fn print_confirmed(o: &Opened, run_id: &str, outcome: &ProjectOutcome) -> Result<()> {
    use entra_sync_core::ports::RunStore;
    match (outcome, o.app.store.get_run(&o.tenant, run_id).await?) {
        (ProjectOutcome::ClaimedElsewhere, _) => out!(
            "run {run_id} is being applied by another process; see `{}`",
            o.hints.command("runs")
        ),
        (_, Some(run)) => crate::print_run_line(&run, &o.hints),
        (_, None) => out!("run {run_id} was applied"),
    }
    Ok(())
}

/// The columns of the preview's and the import's lines.
fn item_header() -> String {
    format!(
        "{:<20} {:<38} {:<32} reason",
        "action", "directory object id", "email"
    )
}

fn print_items(items: &[PreviewItem]) {
    if !items.is_empty() {
        out!("{}", item_header());
    }
    for i in items {
        out!(
            "{:<20} {:<38} {:<32} {}",
            crate::words(&i.action),
            i.object_id,
            i.email.as_deref().unwrap_or("-"),
            i.reason
        );
    }
}

fn print_preview(p: &Preview) {
    print_items(&p.items);
    let c = &p.counts;
    out!(
        "would create {}, link {}, update {}, deactivate {}, reactivate {}, mark disabled in directory {}, freeze {}; skip {}; unchanged {}",
        c.created,
        c.linked,
        c.updated,
        c.deactivated,
        c.reactivated,
        c.disabled_in_directory,
        c.frozen,
        c.skipped,
        c.unchanged
    );
}

fn print_user_header() {
    out!(
        "{:<38} {:<32} {:<22} {:<38} roles",
        "local id",
        "email",
        "status",
        "directory object id"
    );
}

fn print_user(u: &LocalUser) {
    let link = u
        .link
        .as_ref()
        .map_or_else(|| "-".to_owned(), |l| l.object_id.clone());
    out!(
        "{:<38} {:<32} {:<22} {:<38} {}{}",
        u.local_id,
        u.email,
        u.status.as_str(),
        link,
        u.roles.join(","),
        if u.frozen { " (frozen)" } else { "" }
    );
}

fn json<T: serde::Serialize>(v: &T) -> Result<()> {
    cli::print_json(v)
}

fn read_edit(file: &PathBuf) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    parse_edit(&text).map_err(problems)
}

/// Every problem on its own line.
fn problems(e: SettingsError) -> anyhow::Error {
    anyhow::anyhow!("invalid settings:\n  - {}", e.problems.join("\n  - "))
}

fn project_problems(e: ProjectError) -> anyhow::Error {
    match e {
        ProjectError::Settings(e) => problems(e),
        e => e.into(),
    }
}

fn print_changes(changes: &[SettingsChange]) {
    match changes.is_empty() {
        true => out!("nothing changes"),
        false => {
            out!("changes:");
            for c in changes {
                out!("  {c}");
            }
        }
    }
}

async fn set_status(target: &Target, local_id: &str, status: LocalStatus) -> Result<()> {
    let o = open(target).await?;
    let u = set_local_status(
        o.app.projection_ports().local_users.as_ref(),
        o.app.clock.as_ref(),
        &o.account,
        local_id,
        status,
    )
    .await?;
    print_user(&u);
    Ok(())
}

/// Run one admin command.
pub async fn run_admin(cmd: AdminCommand) -> Result<ExitCode> {
    match cmd {
        AdminCommand::Settings(SettingsCommand::Show(t)) => {
            let o = open_read(&t).await?;
            json(&load_settings(o.app.store.as_ref(), &o.tenant).await?)?;
        }
        AdminCommand::Settings(SettingsCommand::Validate { file, target }) => {
            let edit = read_edit(&file)?;
            // Saves nothing, so it only reads (and works beside a running `serve`).
            if DataDir::new(&target.data_dir).has_store() {
                let o = open_read(&target).await?;
                let checked = check_settings_edit(&o.app.project_deps(), &o.tenant, &edit)
                    .await
                    .map_err(project_problems)?;
                print_changes(&checked.changes);
                for line in checked.proposed.describe() {
                    out!("{line}");
                }
                out!("valid");
            } else {
                let s = ConnectionSettings::default()
                    .apply_edit(&edit)
                    .map_err(problems)?;
                for line in s.describe() {
                    out!("{line}");
                }
                out!(
                    "valid (checked against the defaults: there is no entra-sync store at {}, so group ids were not checked)",
                    target.data_dir.display()
                );
            }
        }
        AdminCommand::Settings(SettingsCommand::Set { file, target }) => {
            let edit = read_edit(&file)?;
            let o = open(&target).await?;
            let deps = o.app.project_deps();
            let checked = check_settings_edit(&deps, &o.tenant, &edit)
                .await
                .map_err(project_problems)?;
            print_changes(&checked.changes);
            if checked.changes.is_empty() {
                out!("settings version {} kept", checked.current.version);
                return Ok(ExitCode::SUCCESS);
            }
            let (saved, run) =
                save_settings(&deps, &o.tenant, checked.proposed, checked.current.version)
                    .await
                    .map_err(project_problems)?;
            out!("saved settings version {}", saved.version);
            crate::print_run_line(&run, &o.hints);
        }
        AdminCommand::Preview(args) => {
            let o = open_read(&args.target).await?;
            let mode = mode_of(&args)?;
            check_selected(&o, &mode).await?;
            let mut p = preview(&o.app.project_deps(), &o.tenant, mode.clone()).await?;
            narrow_to_selected(&mut p, &mode);
            match args.json {
                true => json(&p)?,
                false => print_preview(&p),
            }
        }
        AdminCommand::Import(args) => {
            let o = open(&args.target).await?;
            let mode = mode_of(&args)?;
            check_selected(&o, &mode).await?;
            let report = import(&o.app.project_deps(), &o.tenant, mode).await?;
            match args.json {
                true => json(&report)?,
                false => {
                    let applied: Vec<PreviewItem> = report
                        .items
                        .iter()
                        .filter(|i| !matches!(i.action, Action::Skip | Action::Unchanged))
                        .cloned()
                        .collect();
                    print_items(&applied);
                    crate::print_run_line(&report.run, &o.hints);
                }
            }
        }
        AdminCommand::Confirm(args) => {
            let o = open(&args.target).await?;
            let outcome =
                confirm_held(&o.app.project_deps(), &o.tenant, &args.run_id, &args.by).await?;
            print_confirmed(&o, &args.run_id, &outcome).await?;
        }
        AdminCommand::Reject(args) => {
            let o = open(&args.target).await?;
            let run = reject_held(&o.app.project_deps(), &o.tenant, &args.run_id, &args.by).await?;
            crate::print_run_line(&run, &o.hints);
        }
        AdminCommand::Users(UsersCommand::List(args)) => {
            let o = open_read(&args.target).await?;
            let mut all = Vec::new();
            let mut header = !args.json;
            let mut pages = Pages::default();
            while let Some(after) = pages.next_after() {
                let page = o.app.store.list_local_users(&o.account, after, 500).await?;
                if args.json {
                    all.extend(page.items);
                } else {
                    if header && !page.items.is_empty() {
                        print_user_header();
                        header = false;
                    }
                    page.items.iter().for_each(print_user);
                }
                pages.advance(page.next);
            }
            if args.json {
                json(&all)?;
            } else if header {
                out!("no host users yet");
            }
        }
        AdminCommand::Users(UsersCommand::Add {
            email,
            status,
            target,
        }) => {
            let o = open(&target).await?;
            let status = match status {
                StatusArg::Pending => LocalStatus::Pending,
                StatusArg::Active => LocalStatus::Active,
            };
            let u = add_local_user(
                o.app.projection_ports().local_users.as_ref(),
                o.app.clock.as_ref(),
                &o.account,
                &email,
                status,
            )
            .await?;
            print_user(&u);
        }
        AdminCommand::Users(UsersCommand::Activate {
            local_id,
            force,
            target,
        }) => {
            let o = open(&target).await?;
            let activated = activate_local_user(
                o.app.projection_ports().local_users.as_ref(),
                o.app.store.as_ref(),
                o.app.clock.as_ref(),
                &o.account,
                &local_id,
                force,
            )
            .await;
            match activated {
                Ok(u) => print_user(&u),
                Err(e @ LocalUserError::NotActivatable { force_allowed, .. }) => {
                    let hint = match force_allowed {
                        true => " (`--force` activates it anyway)",
                        false => "",
                    };
                    bail!("{e}{hint}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        AdminCommand::Users(UsersCommand::Delete { local_id, target }) => {
            set_status(&target, &local_id, LocalStatus::DeletedLocally).await?;
        }
        AdminCommand::Lookup(args) => {
            let o = open_read(&args.target).await?;
            let found = sign_in_lookup(
                o.app.store.as_ref(),
                o.app.store.as_ref(),
                &o.account,
                &args.email,
            )
            .await?;
            match found {
                Some(found) => json(&found)?,
                None => {
                    out!("no user with that email in this account");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
