//! What the commands share: opening a data directory for one command, and printing plain
//! lines or `--json`.

use std::path::Path;

use anyhow::Result;
use entra_sync_core::model::{AccountId, TenantId};
use serde::Serialize;

use crate::outln;
use crate::runtime::{Access, LocalApp, LocalError, open_directory};

/// A data directory opened for a command, with its one (or chosen) connection.
pub struct Opened {
    pub app: LocalApp,
    pub tenant: TenantId,
    pub account: AccountId,
    /// A running `serve` holds the lock (and runs the queues); this command works beside it.
    pub served: bool,
}

/// The command's words (`settings set`, `hooks create`), which the lock names for whoever
/// finds the directory busy.
pub fn command_name() -> String {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .take_while(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    words.join(" ")
}

/// Open for a command that only reads: no lock, and nothing is created.
pub async fn open_read(data_dir: &Path, tenant_id: Option<&str>) -> Result<Opened> {
    let (app, c) = open_directory(data_dir, tenant_id, Access::Read).await?;
    Ok(Opened {
        app,
        tenant: c.tenant_id,
        account: c.account_id,
        served: false,
    })
}

/// Open for a command that writes, holding the directory's lock.
pub async fn open_write(data_dir: &Path, tenant_id: Option<&str>) -> Result<Opened> {
    let command = command_name();
    let (app, c) = open_directory(data_dir, tenant_id, Access::Write(&command)).await?;
    Ok(Opened {
        app,
        tenant: c.tenant_id,
        account: c.account_id,
        served: false,
    })
}

/// Open for a command that writes, holding the lock, or beside the `serve` that holds it (the
/// store takes writers from several processes; `serve` then runs the queues the command fills).
pub async fn open_write_beside_serve(data_dir: &Path, tenant_id: Option<&str>) -> Result<Opened> {
    match open_write(data_dir, tenant_id).await {
        Ok(o) => Ok(o),
        Err(e) => match e.downcast_ref::<LocalError>() {
            Some(LocalError::Busy {
                holder: Some(h), ..
            }) if h.command == "serve" => {
                let o = open_read(data_dir, tenant_id).await?;
                Ok(Opened { served: true, ..o })
            }
            _ => Err(e),
        },
    }
}

/// `v` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// One item: JSON, or what `plain` prints.
pub fn print_one<T: Serialize>(json: bool, item: &T, plain: impl FnOnce(&T)) -> Result<()> {
    if json {
        print_json(item)
    } else {
        plain(item);
        Ok(())
    }
}

/// A list: JSON (`[]` when empty), or `empty` when there is nothing, else a line per item.
pub fn print_list<T: Serialize>(
    json: bool,
    items: &[T],
    empty: &str,
    line: impl Fn(&T),
) -> Result<()> {
    if json {
        return print_json(items);
    }
    if items.is_empty() {
        outln!("{empty}");
    }
    items.iter().for_each(line);
    Ok(())
}
