//! What the commands share: opening a data directory for one command, the commands a
//! message suggests (with the `--data-dir` in use), reading listings page by page, and
//! printing plain lines or `--json`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::Listing;
use serde::Serialize;

use crate::outln;
use crate::runtime::{Access, LocalApp, LocalError, OpenedDirectory, open_directory};

/// The data directory of every command that works on a connected directory, unless
/// `--data-dir` or `ENTRA_SYNC_DATA_DIR` names another.
pub const DATA_DIR: &str = ".entra-sync/data";
/// The data directory of `serve` and `api-key`, unless named.
pub const SERVE_DATA_DIR: &str = ".entra-sync/serve";
/// The demo's own data directory, unless `--data-dir` or `ENTRA_SYNC_DEMO_DIR` names another.
pub const DEMO_DATA_DIR: &str = ".entra-sync/demo";

/// The commands a message suggests ("run `entra-sync confirm RUN`"), written so that a
/// copy-paste works on the same data: with `--data-dir` whenever the data directory in use is
/// not the suggested command's default, and with `--tenant-id` when the command must name the
/// directory (several are connected).
#[derive(Clone, Debug, Default)]
pub struct Hints {
    data_dir: Option<PathBuf>,
    tenant: Option<TenantId>,
}

impl Hints {
    /// Hints for the data directory at `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: Some(data_dir.to_owned()),
            tenant: None,
        }
    }

    /// Name `tenant` with `--tenant-id` in every command that takes it.
    pub fn with_tenant(mut self, tenant: &TenantId) -> Self {
        self.tenant = Some(tenant.clone());
        self
    }

    /// `entra-sync <words>` and the flags that point it at this data.
    pub fn command(&self, words: &str) -> String {
        let first = words.split_whitespace().next().unwrap_or_default();
        // The suggested command's own default data directory (`bench` takes none), and
        // whether it takes `--tenant-id`.
        let (default_dir, takes_tenant) = match first {
            "serve" | "api-key" => (Some(SERVE_DATA_DIR), false),
            "demo" => (Some(DEMO_DATA_DIR), false),
            "bench" => (None, false),
            _ => (Some(DATA_DIR), true),
        };
        let mut line = format!("entra-sync {words}");
        if let (Some(t), true) = (&self.tenant, takes_tenant) {
            line.push_str(&format!(" --tenant-id {t}"));
        }
        if let (Some(dir), Some(default_dir)) = (&self.data_dir, default_dir)
            && dir != Path::new(default_dir)
        {
            line.push_str(" --data-dir ");
            line.push_str(&shell_word(&dir.to_string_lossy()));
        }
        line
    }
}

/// `s` as one shell word: as is when it needs no quoting, else quoted the way a POSIX shell
/// reads it back as that one word (shlex).
fn shell_word(s: &str) -> String {
    match shlex::try_quote(s) {
        Ok(q) => q.into_owned(),
        // A NUL byte cannot be in a path; shown as is.
        Err(_) => s.to_owned(),
    }
}

/// A data directory opened for a command, with its one (or chosen) connection.
pub struct Opened {
    pub app: LocalApp,
    pub tenant: TenantId,
    pub account: AccountId,
    /// A running `serve` holds the lock (and runs the queues); this command works beside it.
    pub served: bool,
    /// How the commands this one suggests name the data in use.
    pub hints: Hints,
}

impl Opened {
    fn of(data_dir: &Path, o: OpenedDirectory) -> Self {
        let mut hints = Hints::new(data_dir);
        if o.several {
            hints = hints.with_tenant(&o.connection.tenant_id);
        }
        Self {
            app: o.app,
            tenant: o.connection.tenant_id,
            account: o.connection.account_id,
            served: false,
            hints,
        }
    }
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

/// Open for a command that only reads: no lock, and nothing is created. A missing data
/// directory is "no data directory at D".
pub async fn open_read(data_dir: &Path, tenant_id: Option<&str>) -> Result<Opened> {
    let o = open_directory(data_dir, tenant_id, Access::Read).await?;
    Ok(Opened::of(data_dir, o))
}

/// Open for a command that writes, holding the directory's lock.
pub async fn open_write(data_dir: &Path, tenant_id: Option<&str>) -> Result<Opened> {
    let command = command_name();
    let o = open_directory(data_dir, tenant_id, Access::Write(&command)).await?;
    Ok(Opened::of(data_dir, o))
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

/// How many items a listing command reads from the store at once.
pub const PAGE: usize = 200;

/// Up to `limit` items of a listing, following its cursor page by page (`read(after, n)`
/// reads one page of at most `n`), in the listing's order.
pub async fn read_up_to<T, E, F, Fut>(limit: usize, mut read: F) -> Result<Vec<T>, E>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Listing<T>, E>>,
{
    let mut items = Vec::new();
    let mut after = None;
    while items.len() < limit {
        let page = read(after.take(), (limit - items.len()).min(PAGE)).await?;
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    items.truncate(limit);
    Ok(items)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_commands_name_the_data_directory_unless_it_is_their_default() {
        let default = Hints::new(Path::new(DATA_DIR));
        assert_eq!(default.command("runs"), "entra-sync runs");
        // `serve` has a default of its own: the readers' default is named for it.
        assert_eq!(
            default.command("serve"),
            "entra-sync serve --data-dir .entra-sync/data"
        );
        let serve = Hints::new(Path::new(SERVE_DATA_DIR));
        assert_eq!(serve.command("api-key rotate"), "entra-sync api-key rotate");
        assert_eq!(
            serve.command("confirm r1"),
            "entra-sync confirm r1 --data-dir .entra-sync/serve"
        );
        assert_eq!(
            Hints::new(Path::new(DEMO_DATA_DIR)).command("runs"),
            "entra-sync runs --data-dir .entra-sync/demo"
        );
        let other = Hints::new(Path::new("/srv/sync data/it's"));
        assert_eq!(
            other.command("reject r1"),
            "entra-sync reject r1 --data-dir \"/srv/sync data/it's\"",
            "a path a shell reads back as one word"
        );
        assert_eq!(
            shlex::split(&other.command("reject r1"))
                .unwrap()
                .last()
                .unwrap(),
            "/srv/sync data/it's"
        );
        // No data directory known: nothing added.
        assert_eq!(Hints::default().command("runs"), "entra-sync runs");
    }

    #[test]
    fn suggested_commands_name_the_directory_when_several_are_connected() {
        let t = TenantId::new("0b4a3f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        let h = Hints::new(Path::new("/d")).with_tenant(&t);
        assert_eq!(
            h.command("confirm r1"),
            format!("entra-sync confirm r1 --tenant-id {t} --data-dir /d")
        );
        // Commands that take no --tenant-id get none.
        assert_eq!(h.command("serve"), "entra-sync serve --data-dir /d");
        assert_eq!(h.command("demo"), "entra-sync demo --data-dir /d");
        assert_eq!(
            h.command("bench"),
            "entra-sync bench",
            "bench has no --data-dir"
        );
    }

    #[tokio::test]
    async fn listings_are_read_page_by_page_up_to_the_limit() {
        let all: Vec<u32> = (0..450).collect();
        let read = |after: Option<String>, n: usize| {
            let all = all.clone();
            async move {
                assert!(n <= PAGE, "pages of at most {PAGE}, asked {n}");
                let start = after.map_or(0, |a| a.parse::<usize>().unwrap_or(0));
                let end = (start + n).min(all.len());
                Ok::<_, std::convert::Infallible>(Listing {
                    items: all[start..end].to_vec(),
                    next: (end < all.len()).then(|| end.to_string()),
                })
            }
        };
        assert_eq!(read_up_to(250, read).await.unwrap(), all[..250].to_vec());
        assert_eq!(read_up_to(1000, read).await.unwrap(), all);
        assert_eq!(read_up_to(3, read).await.unwrap(), vec![0, 1, 2]);
    }
}
