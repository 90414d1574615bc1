//! The admin console in a real browser: Debian's `chromium`, driven through `chromedriver`
//! (WebDriver) by fantoccini, against the real `entra-sync serve --emulator` on 127.0.0.1.
//!
//! The flow: sign in with the address `serve` printed, connect the emulated directory through
//! the consent flow, run a sync and see it in the activity log, see the users and groups, set a
//! small breaker and narrow a filter (the import preview shows the deactivations), and confirm
//! the run the breaker held.
//!
//! Chromium and chromedriver are required: without them the test FAILS with how to install them
//! (`apt-get install -y chromium chromium-driver`; `scripts/test.sh` installs them when
//! missing). `ENTRA_SYNC_CHROMIUM` and `ENTRA_SYNC_CHROMEDRIVER` name other binaries.
//!
//! With `ENTRA_SYNC_CONSOLE_SCREENSHOTS=docs/console` (a directory, relative to the repository
//! root) the test saves a screenshot of each screen there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest wait for any one thing (a page, a run, a process).
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: the console's browser test needs Debian's chromium and chromedriver. \
         Install them with `apt-get install -y chromium chromium-driver` (scripts/test.sh does \
         when they are missing), or name other binaries with ENTRA_SYNC_CHROMIUM and \
         ENTRA_SYNC_CHROMEDRIVER.",
        path.display()
    );
    path
}

struct Serve {
    _child: Child,
    base: String,
    console_url: String,
}

/// `entra-sync serve` on 127.0.0.1 with `emulator` as its directory (the emulator this test
/// holds, so the test can change the directory between syncs; `--emulator` would start one
/// inside the server, out of the test's reach).
async fn serve(dir: &Path, emulator: &Emulator) -> Serve {
    let app = emulator.app();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTRA_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--client-id", &app.client_id])
        .args(["--graph-url", &emulator.graph_base_url()])
        .args(["--login-url", &emulator.login_base_url()])
        .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (base, console_url) = tokio::time::timeout(WAIT, async {
        let mut base = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("Serving the connect routes on ") {
                base = Some(url.trim().to_owned());
            }
            let line = line.trim();
            if line.contains("/console/login?token=") {
                return (base.expect("the base URL first"), line.to_owned());
            }
        }
        panic!("serve ended before it printed the console address");
    })
    .await
    .expect("serve did not print the console address");
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Serve {
        _child: child,
        base,
        console_url,
    }
}

async fn chromedriver(driver: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    tokio::time::timeout(WAIT, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .expect("chromedriver did not listen");
    (child, url)
}

async fn browser(driver_url: &str, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1100", "--lang=en-US"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a chromium session")
}

/// The page's visible text.
async fn text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Wait until the page shows `needle` (reloading when `reload`), or fail with what it shows.
async fn wait_for_text(c: &Client, needle: &str, reload: bool) -> String {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(body) = c.find(Locator::Css("body")).await
                && let Ok(t) = body.text().await
                && t.contains(needle)
            {
                return t;
            }
            tokio::time::sleep(POLL).await;
            if reload {
                c.refresh().await.unwrap();
            }
        }
    })
    .await;
    match waited {
        Ok(t) => t,
        Err(_) => panic!(
            "the page never showed {needle:?}; at {}:\n{}",
            c.current_url().await.unwrap(),
            text(c).await
        ),
    }
}

async fn click_link(c: &Client, name: &str) {
    c.find(Locator::LinkText(name))
        .await
        .unwrap_or_else(|_| panic!("no link {name:?}"))
        .click()
        .await
        .unwrap();
}

/// Click a submit button by its text.
async fn press(c: &Client, name: &str) {
    let xpath = format!("//button[normalize-space(.)='{name}']");
    c.find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|_| panic!("no button {name:?}"))
        .click()
        .await
        .unwrap();
}

async fn fill(c: &Client, id: &str, value: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

struct Shots(Option<PathBuf>);

impl Shots {
    fn from_env() -> Self {
        Shots(std::env::var_os("ENTRA_SYNC_CONSOLE_SCREENSHOTS").map(|d| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let dir = root.join(d);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }))
    }

    async fn take(&self, c: &Client, name: &str) {
        if let Some(dir) = &self.0 {
            let png = c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_connects_syncs_previews_and_confirms_a_held_run_in_chromium() {
    let chromium = binary("ENTRA_SYNC_CHROMIUM", "/usr/bin/chromium");
    let driver = binary("ENTRA_SYNC_CHROMEDRIVER", "/usr/bin/chromedriver");
    let tmp = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let tenant = emulator.add_tenant(&TenantSpec::new(42, 40, 5));
    let directory = emulator.tenant(&tenant.tenant_id).unwrap();
    // Not consented yet: the browser's consent flow grants it.
    directory.revoke_consent();
    let served = serve(&tmp.path().join("data"), &emulator).await;
    let (_driver, driver_url) = chromedriver(&driver).await;
    let c = browser(&driver_url, &chromium).await;
    let shots = Shots::from_env();

    // Without the sign-in address the console is closed.
    c.goto(&format!("{}/console/", served.base)).await.unwrap();
    wait_for_text(&c, "Sign in to the console", false).await;

    // Sign in, then connect the emulated directory through the consent flow.
    c.goto(&served.console_url).await.unwrap();
    wait_for_text(&c, "Directories of local", false).await;
    wait_for_text(&c, "No directory is connected yet", false).await;
    fill(&c, "label", "Emulated directory").await;
    press(&c, "Connect with Microsoft").await;
    // The emulator consents and sends the browser back to the callback's page.
    wait_for_text(&c, "Continue", false).await;
    c.goto(&format!("{}/console/", served.base)).await.unwrap();
    let page = wait_for_text(&c, "Connected directories", false).await;
    assert!(page.contains("Connected"), "{page}");
    let tenant_link = c.find(Locator::Css("table tbody tr td a")).await.unwrap();
    tenant_link.click().await.unwrap();
    let details = wait_for_text(&c, "Verified domains", false).await;
    assert!(details.contains("Tenant name"), "{details}");
    assert!(details.contains("Reconnect") && details.contains("Disconnect"));
    shots.take(&c, "details").await;

    // Run a sync and see it in the activity log.
    click_link(&c, "Activity Log").await;
    wait_for_text(&c, "No runs yet", false).await;
    press(&c, "Sync now").await;
    let log = wait_for_text(&c, "Succeeded", true).await;
    assert!(log.contains("Manual"), "{log}");
    assert!(
        log.contains("host users: 40 created") || log.contains("created"),
        "{log}"
    );
    shots.take(&c, "activity-log").await;

    // See the users (and filter them), and the groups.
    click_link(&c, "Users").await;
    wait_for_text(&c, "Pending", false).await;
    click_link(&c, "All").await;
    let users = wait_for_text(&c, "Users: All", false).await;
    assert!(users.contains('@'), "users with emails: {users}");
    shots.take(&c, "users").await;
    click_link(&c, "User Groups").await;
    wait_for_text(&c, "Groups of the directory", false).await;
    shots.take(&c, "groups").await;

    // Change a filter and see the import preview follow; set a small breaker.
    click_link(&c, "Import").await;
    let before = wait_for_text(&c, "Would create", false).await;
    assert!(
        !before.contains("not one of the selected departments"),
        "{before}"
    );
    click_link(&c, "Settings").await;
    wait_for_text(&c, "Breaker", false).await;
    shots.take(&c, "settings").await;
    fill(&c, "max_count", "2").await;
    c.find(Locator::Id("departments-any"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&c, "departments-values", "Engineering").await;
    press(&c, "Save settings").await;
    let saved = wait_for_text(&c, "Saved. What changed", false).await;
    assert!(saved.contains("filters.departments"), "{saved}");
    assert!(saved.contains("breaker.max_count"), "{saved}");
    click_link(&c, "Preview an import with these settings").await;
    let preview = wait_for_text(&c, "Would create", false).await;
    assert!(
        preview.contains("not one of the selected departments"),
        "{preview}"
    );
    shots.take(&c, "import").await;

    // Accounts disabled in the directory: the next sync would deactivate more users than the
    // breaker allows, so it is held.
    for id in directory.user_ids().iter().take(12) {
        directory.set_account_enabled(id, false).unwrap();
    }
    click_link(&c, "Activity Log").await;
    press(&c, "Sync now").await;
    wait_for_text(&c, "Held", true).await;
    c.find(Locator::XPath(
        "//tr[td[normalize-space(.)='Held']]/td[1]/a",
    ))
    .await
    .expect("a held run in the log")
    .click()
    .await
    .unwrap();
    let held = wait_for_text(&c, "Held for your decision", false).await;
    assert!(held.contains("would deactivate"), "{held}");
    shots.take(&c, "held-run").await;
    press(&c, "Confirm").await;
    let done = wait_for_text(&c, "Confirmed", false).await;
    assert!(!done.contains("Held for your decision"), "{done}");

    click_link(&c, "Users").await;
    click_link(&c, "Deactivated").await;
    let deactivated = wait_for_text(&c, "Users: Deactivated", false).await;
    assert!(deactivated.contains('@'), "{deactivated}");

    c.close().await.unwrap();
}
