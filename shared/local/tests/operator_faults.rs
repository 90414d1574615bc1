//! What a careless operator can do to the local program, and what it does now: the demo never
//! deletes or uses a directory it did not create, a vault key mistake changes nothing, a demo
//! killed with SIGKILL at any point continues, concurrent writers of one data directory are
//! refused (a `--full` they asked for is kept), and the command line speaks in sentences:
//! bad input, missing directories, closed pipes, pages set aside.
//!
//! Most cases run the real `entra-sync` binary; every child is bounded by a deadline (a hang
//! guard, not a speed assertion) and sees no `ENTRA_SYNC_*` variable of the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use entra_sync_core::model::TenantId;
use entra_sync_core::page::RoundMode;
use entra_sync_core::ports::{RunStore, Secret};
use entra_sync_core::run::RunStatus;
use entra_sync_core::services::{FetchOptions, run_fetch};
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_local::demo::connect;
use entra_sync_local::runtime::{DataDir, DirLock, LocalApp, SyncSettings};
use entra_sync_local::verify::compare;

const DEADLINE: Duration = Duration::from_secs(180);

/// The program, with none of the machine's `ENTRA_SYNC_*` variables.
fn program() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTRA_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Wait for a child (reading its output as it comes), killing it at the deadline (then the
/// test fails: it hung).
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // The child this test started, by its id.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("entra-sync (pid {pid}) did not finish");
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    finish(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small demo in `dir`: `entra-sync demo --data-dir DIR ...`.
fn demo(dir: &Path) -> Command {
    let mut cmd = program();
    cmd.args(["demo", "--users", "60", "--groups", "4", "--changes", "10"])
        .args(["--no-progress", "--data-dir"])
        .arg(dir);
    cmd
}

/// Every file under `dir` with its bytes, sorted by path.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

fn tenant_of(dir: &Path) -> String {
    let (runtime, app) = open_app(dir);
    runtime.block_on(async {
        use entra_sync_core::ports::ConnectionStore;
        let c = app.store.list_connections().await.unwrap();
        c[0].tenant_id.to_string()
    })
}

fn open_app(dir: &Path) -> (tokio::runtime::Runtime, LocalApp) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
    (runtime, app)
}

// ---- 1. The demo never deletes or uses what it did not create ---------------------------

#[test]
fn demo_fresh_refuses_a_directory_it_did_not_create_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    std::fs::write(x.join("k.txt"), "keep").unwrap();
    let before = tree(&x);
    let out = run(demo(&x).arg("--fresh"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not created by the demo"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(&x), before, "nothing deleted, nothing written");

    // `.` as the data directory, the issue's reproduction.
    let out = run(demo(Path::new(".")).arg("--fresh").current_dir(&x));
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(tree(&x), before);
}

#[test]
fn the_demo_refuses_a_real_store_and_never_reads_the_production_data_dir_variable() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    {
        let (_rt, _app) = open_app(&real);
    }
    assert!(DataDir::new(&real).has_store());
    let before = tree(&real);
    for fresh in [false, true] {
        let mut cmd = demo(&real);
        if fresh {
            cmd.arg("--fresh");
        }
        let out = run(&mut cmd);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("holds an entra-sync store that the demo did not create"),
            "{}",
            stderr(&out)
        );
        assert_eq!(tree(&real), before);
    }

    // ENTRA_SYNC_DATA_DIR names the real store: the demo does not use it (its own default).
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let out = run(program()
        .args([
            "demo",
            "--fresh",
            "--users",
            "60",
            "--groups",
            "4",
            "--no-progress",
        ])
        .env("ENTRA_SYNC_DATA_DIR", &real)
        .current_dir(&cwd));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(&real), before, "the real store is untouched");
    assert!(cwd.join(".entra-sync/demo/entra-sync-demo").is_file());
}

#[test]
fn demo_fresh_deletes_only_the_demos_own_files_and_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let out = run(&mut demo(&d));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(d.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/more.txt"), "mine too").unwrap();

    let out = run(demo(&d).arg("--fresh"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("before changes: full sync"),
        "the demo started over: {}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("sub/more.txt")).unwrap(),
        "mine too"
    );
}

// ---- 4. Vault key mistakes fail clearly and change nothing --------------------------------

#[test]
fn a_wrong_vault_key_or_a_missing_key_file_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let vault = || std::fs::read(d.join("vault.json")).unwrap();
    let key = || std::fs::read(d.join("vault.key")).ok();
    let (vault_before, key_before) = (vault(), key());

    // A valid key, but not this vault's.
    let other = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let out = run(demo(&d).env("ENTRA_SYNC_VAULT_KEY", other));
    assert!(!out.status.success(), "{}", stdout(&out));
    let e = stderr(&out);
    assert!(
        e.contains("ENTRA_SYNC_VAULT_KEY") && e.contains("vault.json") && e.contains("another key"),
        "{e}"
    );
    assert_eq!((vault(), key()), (vault_before.clone(), key_before.clone()));

    // The key file is gone: no new key replaces it.
    std::fs::remove_file(d.join("vault.key")).unwrap();
    let out = run(&mut demo(&d));
    assert!(!out.status.success(), "{}", stdout(&out));
    let e = stderr(&out);
    assert!(
        e.contains("vault.key is missing") && e.contains("Restore"),
        "{e}"
    );
    assert_eq!(vault(), vault_before);
    assert_eq!(key(), None, "no new key file");

    // Put back, everything works again.
    std::fs::write(d.join("vault.key"), key_before.unwrap()).unwrap();
    assert!(run(&mut demo(&d)).status.success());
}

// ---- 6. The emulator's state survives SIGKILL ------------------------------------------------

/// Start the demo, SIGKILL it once a stdout line starts with `point`, and return the lines
/// seen.
fn kill_demo_at(dir: &Path, point: &str) -> Vec<String> {
    let mut child = program()
        .args(["demo", "--users", "200", "--groups", "10", "--no-progress"])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in lines.lines() {
        let line = line.unwrap();
        let hit = line.starts_with(point);
        seen.push(line);
        if hit {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let status = finish(child).status;
    assert!(
        seen.last().is_some_and(|l| l.starts_with(point)),
        "the demo ended ({status}) before {point:?}: {seen:?}"
    );
    seen
}

#[test]
fn a_demo_killed_with_sigkill_at_any_step_continues_and_matches_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (i, point) in [
        "Emulated tenant",
        "Connected to",
        "before changes:",
        "Changed the directory",
    ]
    .into_iter()
    .enumerate()
    {
        let d = dir.path().join(format!("demo{i}"));
        kill_demo_at(&d, point);
        // The lock died with the process, and the demo continues where it was killed.
        let out = run(program()
            .args(["demo", "--users", "200", "--groups", "10", "--no-progress"])
            .arg("--data-dir")
            .arg(&d));
        assert!(
            out.status.success() && stdout(&out).contains("state matches directory: yes"),
            "killed after {point:?}, the rerun: {}{}",
            stdout(&out),
            stderr(&out)
        );
        // Killed twice in a row, during the incremental sync of the rerun, too.
        if point == "Changed the directory" {
            kill_demo_at(&d, point);
            let out = run(program()
                .args(["demo", "--users", "200", "--groups", "10", "--no-progress"])
                .arg("--data-dir")
                .arg(&d));
            assert!(
                stdout(&out).contains("state matches directory: yes"),
                "{}{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
}

// ---- 8. One writer per data directory ------------------------------------------------------

struct Tenant {
    emulator: Emulator,
    id: String,
}

async fn emulated(users: usize) -> Tenant {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let info = emulator.add_tenant(&TenantSpec::new(11, users, 6));
    Tenant {
        emulator,
        id: info.tenant_id,
    }
}

fn sync_cmd(t: &Tenant, dir: &Path) -> tokio::process::Command {
    let app = t.emulator.app();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTRA_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(["sync", "--no-progress", "--tenant-id", &t.id])
        .args(["--client-id", &app.client_id])
        .args(["--graph-url", &t.emulator.graph_base_url()])
        .args(["--login-url", &t.emulator.login_base_url()])
        .arg("--data-dir")
        .arg(dir)
        .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: tokio::process::Command) -> Output {
    tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("entra-sync did not finish")
        .unwrap()
}

async fn last_run(dir: &Path, tenant: &str) -> entra_sync_core::run::SyncRun {
    let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
    app.store
        .list_runs(&TenantId::new(tenant), 1)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_of_a_directory_is_refused_and_its_full_request_is_kept() {
    let t = emulated(80).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let out = output(sync_cmd(&t, &d)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last_run(&d, &t.id).await.users.mode, Some(RoundMode::Full));

    // Another sync is running (this test holds the directory's lock as a sync does).
    let held = DirLock::acquire(&DataDir::new(&d), "sync").unwrap();
    let mut full = sync_cmd(&t, &d);
    full.arg("--full");
    let out = output(full).await;
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("another sync of this directory")
            && e.contains(&format!("pid {}", std::process::id()))
            && e.contains("kept"),
        "{e}"
    );
    assert!(!e.contains("conflict"), "{e}");
    drop(held);

    // The next sync does the full read that was asked for, and only that one does.
    let out = output(sync_cmd(&t, &d)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("reads everything again"));
    let run = last_run(&d, &t.id).await;
    assert_eq!(run.users.mode, Some(RoundMode::Full), "the kept --full");
    assert_eq!(run.status, RunStatus::Succeeded);
    let out = output(sync_cmd(&t, &d)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        last_run(&d, &t.id).await.users.mode,
        Some(RoundMode::Incremental)
    );
}

#[test]
fn every_command_that_writes_a_directory_takes_its_lock_and_readers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let tenant = tenant_of(&d);
    let settings = dir.path().join("settings.json");
    let show = run(program().args(["settings", "show", "--data-dir"]).arg(&d));
    assert!(show.status.success(), "{}", stderr(&show));
    std::fs::write(&settings, &show.stdout).unwrap();

    let held = DirLock::acquire(&DataDir::new(&d), "sync").unwrap();
    let dd = d.to_str().unwrap();
    let sf = settings.to_str().unwrap();
    let writers: Vec<Vec<&str>> = vec![
        vec!["demo", "--users", "60", "--groups", "4", "--data-dir", dd],
        vec!["import", "--data-dir", dd],
        vec!["settings", "set", sf, "--data-dir", dd],
        vec!["confirm", "some-run", "--data-dir", dd],
        vec!["reject", "some-run", "--data-dir", dd],
        vec!["users", "add", "new@example.com", "--data-dir", dd],
        vec![
            "serve",
            "--emulator",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dd,
        ],
    ];
    for args in writers {
        let out = run(program().args(&args));
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("another sync of this directory"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let readers: Vec<Vec<&str>> = vec![
        vec!["runs", "--tenant-id", &tenant, "--data-dir", dd],
        vec!["export", "--tenant-id", &tenant, "--data-dir", dd],
        vec!["settings", "show", "--data-dir", dd],
        vec!["users", "list", "--data-dir", dd],
        vec!["preview", "--data-dir", dd],
    ];
    for args in readers {
        let out = run(program().args(&args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    drop(held);
}

// ---- 10. Messages for people, bad input ------------------------------------------------------

/// The read-only commands, each with `--data-dir D` appended by the caller.
fn read_only_commands(t: Option<&str>) -> Vec<Vec<String>> {
    let commands: Vec<&[&str]> = vec![
        &["export"],
        &["export", "--json"],
        &["runs"],
        &["settings", "show"],
        &["users", "list"],
        &["lookup", "a@example.com"],
        &["preview"],
        &["actions", "list"],
        &["actions", "show", "some-action"],
        &["workflow", "list"],
        &["workflow", "show", "some-workflow"],
        &["hooks", "list"],
        &["hooks", "deliveries", "--source", "standard"],
        &["hooks", "reviews"],
    ];
    commands
        .into_iter()
        .map(|c| {
            let mut args: Vec<String> = c.iter().map(|a| a.to_string()).collect();
            if let Some(t) = t {
                args.extend(["--tenant-id".to_owned(), t.to_owned()]);
            }
            args
        })
        .collect()
}

#[test]
fn read_only_commands_on_a_missing_directory_or_unknown_tenant_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let t = "0b4a3f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let m = missing.to_str().unwrap();
    for args in read_only_commands(Some(t))
        .into_iter()
        .chain(read_only_commands(None))
    {
        let out = run(program().args(&args).args(["--data-dir", m]));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        // One line that says what is missing and what to do.
        let e = stderr(&out);
        assert!(
            e.starts_with(&format!("error: no data directory at {m}; connect a directory with `entra-sync serve --data-dir {m}`"))
                && e.contains("or pass --data-dir")
                && e.lines().count() == 1,
            "{args:?}: {e}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert!(!missing.exists(), "{args:?} created the data directory");
    }
    // An existing directory without a store: said so, and still nothing created.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in read_only_commands(None) {
        let out = run(program().args(&args).arg("--data-dir").arg(&empty));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("holds no entra-sync store"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "{args:?} wrote into the directory"
        );
    }

    // An existing store, another tenant: named, with the connected ones.
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let before = tree(&d);
    let dd = d.to_str().unwrap();
    let connected = tenant_of(&d);
    for args in read_only_commands(Some(t)) {
        let out = run(program().args(&args).args(["--data-dir", dd]));
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!(
                "no directory {t} in {dd}; connected: {connected} (Contoso)"
            )),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(tree(&d), before, "read-only commands wrote nothing");
}

#[test]
fn a_tenant_id_that_is_not_a_guid_is_refused_before_any_url_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    for bad in ["../../etc", "contoso.onmicrosoft.com", "x/y?z", ""] {
        let out = run(program()
            .args(["sync", "--tenant-id", bad, "--client-id", "c", "--data-dir"])
            .arg(&d)
            .env("ENTRA_SYNC_CLIENT_SECRET", "s"));
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("must be a GUID"),
            "{bad}: {}",
            stderr(&out)
        );
        assert!(!d.exists(), "{bad}: nothing was created");
    }
    let out = run(program()
        .args(["runs", "--tenant-id", "nope", "--data-dir"])
        .arg(&d));
    assert!(stderr(&out).contains("must be a GUID"), "{}", stderr(&out));
}

#[test]
fn printing_commands_end_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let tenant = tenant_of(&d);
    let dd = d.to_str().unwrap();
    // The activity log is words, not Rust debug text.
    let runs = run(program().args(["runs", "--tenant-id", &tenant, "--data-dir", dd]));
    let text = stdout(&runs);
    assert!(
        text.contains("(manual, started") && !text.contains("Manual"),
        "{text}"
    );
    assert!(
        text.contains(", ended ") && text.contains(" after "),
        "{text}"
    );
    // One directory connected: no --tenant-id needed; --json is the stored runs.
    let json = run(program().args(["runs", "--json", "--limit", "2", "--data-dir", dd]));
    let runs: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().all(|r| r["finished_at"].is_string()),
        "{runs:?}"
    );
    let users = run(program().args(["users", "list", "--data-dir", dd]));
    assert!(
        stdout(&users).starts_with("local id "),
        "a header: {}",
        stdout(&users)
    );
    let users = run(program().args(["users", "list", "--json", "--data-dir", dd]));
    let users: serde_json::Value = serde_json::from_slice(&users.stdout).unwrap();
    assert!(
        users
            .as_array()
            .is_some_and(|u| !u.is_empty() && u[0]["email"].is_string()),
        "{users}"
    );
    for args in [
        vec!["runs", "--tenant-id", &tenant, "--data-dir", dd],
        vec!["export", "--tenant-id", &tenant, "--data-dir", dd],
        vec!["users", "list", "--data-dir", dd],
        vec!["preview", "--data-dir", dd],
        vec![
            "demo",
            "--users",
            "60",
            "--groups",
            "4",
            "--no-progress",
            "--data-dir",
            dd,
        ],
    ] {
        // `| head -0`: the reader is gone before the first line is written.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = finish(
            program()
                .args(&args)
                .stdin(Stdio::null())
                .stdout(writer)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn preview_of_selected_users_lists_only_them_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let dd = d.to_str().unwrap();
    let unknown = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
    for command in ["preview", "import"] {
        let out = run(program().args([
            command,
            "--mode",
            "selected",
            "--user",
            unknown,
            "--data-dir",
            dd,
        ]));
        assert!(!out.status.success(), "{command}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("no user {unknown}")),
            "{command}: {}",
            stderr(&out)
        );
    }

    // Every user the directory holds shows up in the ordinary preview (skipped ones at
    // least); selecting one lists that one only.
    let all = run(program().args(["preview", "--json", "--data-dir", dd]));
    assert!(all.status.success(), "{}", stderr(&all));
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    let items = all["items"].as_array().unwrap();
    assert!(items.len() > 1, "the demo has users the preview lists");
    let picked = items[0]["object_id"].as_str().unwrap();
    let out = run(program().args([
        "preview",
        "--mode",
        "selected",
        "--user",
        picked,
        "--data-dir",
        dd,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let (summary, listed) = lines.split_last().unwrap();
    assert!(summary.starts_with("would create"), "{summary}");
    assert_eq!(listed.len(), 2, "the header and the one user: {lines:?}");
    assert!(listed[0].starts_with("action "), "{lines:?}");
    assert!(listed[1].contains(picked), "{lines:?}");
    let json = run(program().args([
        "preview",
        "--json",
        "--mode",
        "selected",
        "--user",
        picked,
        "--data-dir",
        dd,
    ]));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 1);
}

/// A page message of a round in progress damaged in the queue file: the run fails saying
/// which file, what happened and what to do, and doing that (a full sync) recovers.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_queue_message_names_the_file_and_the_way_out() {
    let t = emulated(150).await;
    let dir = tempfile::tempdir().unwrap();
    let app = LocalApp::open(&DataDir::new(dir.path()), &SyncSettings::default()).unwrap();
    let a = t.emulator.app();
    let client = std::sync::Arc::new(
        GraphClient::new(GraphConfig::new(
            url::Url::parse(&t.emulator.graph_base_url()).unwrap(),
            url::Url::parse(&t.emulator.login_base_url()).unwrap(),
            a.client_id.clone(),
            Secret::new(a.client_secret.clone()),
        ))
        .unwrap(),
    );
    let tenant = TenantId::new(t.id.clone());
    connect(&app, &client, &tenant).await.unwrap();
    // The fetch enqueues the round's pages; nobody applies them yet.
    run_fetch(
        &app.fetch_deps(client.clone()),
        &tenant,
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    let queue_file = DataDir::new(dir.path()).queue();
    {
        let db = rusqlite::Connection::open(&queue_file).unwrap();
        let n = db
            .execute(
                "UPDATE queue SET body = '{\"tenant_id\": \"trunc' WHERE seq = (SELECT MIN(seq) FROM queue)",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let run = app
        .sync(
            client.clone(),
            &tenant,
            &FetchOptions::default(),
            &SyncSettings::default(),
            |_| {},
        )
        .await
        .unwrap();
    let RunStatus::Failed { error } = &run.status else {
        panic!("the run cannot finish: {:?}", run.status);
    };
    assert!(
        error.contains(&queue_file.display().to_string())
            && error.contains("cannot be read")
            && error.contains("sync --full")
            && !error.contains("resumes on the next run"),
        "{error}"
    );
    // What the message says to do works.
    let full = FetchOptions {
        force_full: true,
        ..FetchOptions::default()
    };
    let run = app
        .sync(client, &tenant, &full, &SyncSettings::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let stored = app.export(&tenant).await.unwrap();
    assert!(compare(&stored, &t.emulator.tenant(&t.id).unwrap().snapshot()).matches());
}

#[tokio::test(flavor = "multi_thread")]
async fn confirm_of_a_held_run_prints_the_run_in_words() {
    let t = emulated(80).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let out = output(sync_cmd(&t, &d)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // Most users vanish from the directory: the full read's deactivations are held.
    let h = t.emulator.tenant(&t.id).unwrap();
    for id in h.user_ids().into_iter().take(70) {
        h.purge_user(&id).unwrap();
    }
    let mut full = sync_cmd(&t, &d);
    full.arg("--full");
    let out = output(full).await;
    assert!(!out.status.success(), "a held run is not a success");
    let held = last_run(&d, &t.id).await;
    assert!(
        matches!(held.status, RunStatus::Held { .. }),
        "{:?}",
        held.status
    );
    let out = run(program()
        .args(["confirm", &held.run_id, "--data-dir"])
        .arg(&d));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&held.run_id) && text.contains("succeeded"),
        "{text}"
    );
    assert!(
        !text.contains("Applied(") && !text.contains("ProvisioningCounts"),
        "{text}"
    );
}

// ---- 11. One command line: --tenant-id, --data-dir in hints, words, headers, pages ----------

/// `entra-sync ARGS --data-dir DIR` with the emulator's app and URLs (for the commands that
/// reach Microsoft Graph).
fn graph_cmd(emulator: &Emulator, dir: &Path, args: &[&str]) -> Command {
    let app = emulator.app();
    let mut cmd = program();
    cmd.args(args)
        .args(["--client-id", &app.client_id])
        .args(["--graph-url", &emulator.graph_base_url()])
        .args(["--login-url", &emulator.login_base_url()])
        .arg("--data-dir")
        .arg(dir)
        .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret);
    cmd
}

/// Rust `Debug` text in `s`: `Some(`, `None`, a type or variant name followed by `(` or ` {`
/// (`Applied(ProvisioningCounts { .. })`, `Rejected { by, at }`).
fn debug_text(s: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = chars[i].is_ascii_uppercase()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'));
        if !starts_word {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let word: String = chars[i..j].iter().collect();
        let rest: String = chars[j..(j + 2).min(chars.len())].iter().collect();
        if rest.starts_with('(') {
            found.push(format!("{word}("));
        } else if rest == " {" {
            found.push(format!("{word} {{"));
        } else if word == "None" {
            found.push(word);
        }
        i = j;
    }
    found
}

#[test]
fn debug_text_is_found_where_it_is_and_not_in_sentences() {
    assert_eq!(
        debug_text("run x: Applied(ProvisioningCounts { created: 1 })"),
        vec!["Applied(", "ProvisioningCounts {"]
    );
    assert_eq!(debug_text("Rejected { by: \"a\" }"), vec!["Rejected {"]);
    assert_eq!(debug_text("status Some(503), None"), vec!["Some(", "None"]);
    assert!(debug_text("Connected to \"Contoso\" (3 verified domains); HELD by X").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_id_may_be_left_out_with_one_directory_and_several_are_listed_by_name() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let one = emulator.add_tenant(&TenantSpec::new(3, 40, 4));
    let mut spec = TenantSpec::new(4, 30, 3);
    spec.name = "Fabrikam".into();
    let two = emulator.add_tenant(&spec);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let dd = d.to_str().unwrap().to_owned();
    let (emu, dir, t1) = (emulator.clone(), d.clone(), one.tenant_id.clone());
    let out = tokio::task::spawn_blocking(move || {
        // Nothing connected yet: `sync` needs the directory to connect, and says so.
        let none = run(&mut graph_cmd(&emu, &dir, &["sync", "--no-progress"]));
        assert_eq!(none.status.code(), Some(1), "{}", stdout(&none));
        assert!(
            stderr(&none).contains("no directory is connected in")
                && stderr(&none).contains("--tenant-id <guid>"),
            "{}",
            stderr(&none)
        );
        assert!(!dir.exists(), "nothing created");
        run(&mut graph_cmd(
            &emu,
            &dir,
            &["sync", "--no-progress", "--tenant-id", &t1],
        ))
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // One directory: every command finds it alone (sync and export included).
    let commands: Vec<Vec<&str>> = vec![
        vec!["runs"],
        vec!["export"],
        vec!["export", "--json"],
        vec!["preview"],
        vec!["settings", "show"],
        vec!["users", "list"],
        vec!["actions", "list"],
        vec!["workflow", "list"],
        vec!["hooks", "list"],
        vec!["hooks", "reviews"],
    ];
    let (emu, dir, cmds) = (emulator.clone(), d.clone(), commands.clone());
    tokio::task::spawn_blocking(move || {
        let out = run(&mut graph_cmd(&emu, &dir, &["sync", "--no-progress"]));
        assert!(out.status.success(), "sync alone: {}", stderr(&out));
        for args in &cmds {
            let out = run(program().args(args).arg("--data-dir").arg(&dir));
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        }
    })
    .await
    .unwrap();

    // A second directory: the commands that do not name one say which there are.
    let (emu, dir) = (emulator.clone(), d.clone());
    let t2 = two.tenant_id.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(&mut graph_cmd(
            &emu,
            &dir,
            &["sync", "--no-progress", "--tenant-id", &t2],
        ))
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (emu, dir) = (emulator.clone(), d.clone());
    let (t1, t2) = (one.tenant_id.clone(), two.tenant_id.clone());
    tokio::task::spawn_blocking(move || {
        let mut all: Vec<Command> = commands
            .iter()
            .map(|args| {
                let mut c = program();
                c.args(args).arg("--data-dir").arg(&dir);
                c
            })
            .collect();
        all.push(graph_cmd(&emu, &dir, &["sync", "--no-progress"]));
        all.push(graph_cmd(
            &emu,
            &dir,
            &["act", "revoke-sessions", "--user", "x"],
        ));
        let mut import = program();
        import.args(["import", "--data-dir", &dd]);
        all.push(import);
        for mut cmd in all {
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", stdout(&out));
            let e = stderr(&out);
            assert!(
                e.starts_with(&format!(
                    "error: 2 directories are connected in {dd}; name one with --tenant-id: "
                )) && e.contains(&format!("{t1} (Contoso)"))
                    && e.contains(&format!("{t2} (Fabrikam)"))
                    && e.lines().count() == 1,
                "{cmd:?}: {e}"
            );
            assert!(stdout(&out).is_empty(), "{cmd:?}: {}", stdout(&out));
        }
        // Named, each works on its own directory.
        for t in [&t1, &t2] {
            let out =
                run(program().args(["export", "--json", "--tenant-id", t, "--data-dir", &dd]));
            assert!(out.status.success(), "{}", stderr(&out));
            let data: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(!data["users"].as_array().unwrap().is_empty());
            let out = run(&mut graph_cmd(
                &emu,
                &dir,
                &["sync", "--no-progress", "--tenant-id", t],
            ));
            assert!(out.status.success(), "{}", stderr(&out));
        }
    })
    .await
    .unwrap();
}

/// A sync into a data directory whose path needs quoting in a shell, then most users vanish:
/// the full read's deactivations are held.
async fn held_run_in(t: &Tenant, d: &Path) -> entra_sync_core::run::SyncRun {
    let out = output(sync_cmd(t, d)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let h = t.emulator.tenant(&t.id).unwrap();
    for id in h.user_ids().into_iter().take(70) {
        h.purge_user(&id).unwrap();
    }
    let mut full = sync_cmd(t, d);
    full.arg("--full");
    let out = output(full).await;
    assert!(!out.status.success(), "a held run is not a success");
    let held = last_run(d, &t.id).await;
    assert!(
        matches!(held.status, RunStatus::Held { .. }),
        "{:?}",
        held.status
    );
    held
}

/// The command inside the first backticks of `line` that starts with `entra-sync {verb}`.
fn hinted(line: &str, verb: &str) -> Vec<String> {
    let start = format!("`entra-sync {verb}");
    let at = line
        .find(&start)
        .unwrap_or_else(|| panic!("no {start} in {line}"));
    let rest = &line[at + 1..];
    let end = rest.find('`').unwrap();
    shlex::split(&rest[..end]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hints_name_the_data_dir_in_use_and_run_as_printed_and_runs_print_words() {
    let t = emulated(80).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("my data");
    let held = held_run_in(&t, &d).await;
    let dir = d.clone();
    tokio::task::spawn_blocking(move || {
        let runs = run(program().arg("runs").arg("--data-dir").arg(&dir));
        assert!(runs.status.success(), "{}", stderr(&runs));
        let text = stdout(&runs);
        let line = text.lines().find(|l| l.starts_with(&held.run_id)).unwrap();
        assert!(line.contains("HELD by the circuit breaker"), "{line}");
        let confirm = hinted(line, "confirm");
        assert_eq!(
            confirm[1..],
            [
                "confirm",
                held.run_id.as_str(),
                "--data-dir",
                dir.to_str().unwrap()
            ],
            "{line}"
        );
        // The printed `reject` runs as printed, on this data directory.
        let reject = hinted(line, "reject");
        let out = run(program().args(&reject[1..]));
        assert!(out.status.success(), "{reject:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("rejected by local-admin"), "{text}");
        // Neither the reject, the activity log nor a confirm refused afterwards is Debug text.
        let again = run(program()
            .args(["confirm", &held.run_id, "--data-dir"])
            .arg(&dir));
        assert!(!again.status.success());
        assert!(
            stderr(&again).contains("is rejected, not held"),
            "{}",
            stderr(&again)
        );
        let runs = run(program().arg("runs").arg("--data-dir").arg(&dir));
        for printed in [text, stdout(&runs), stderr(&again)] {
            assert_eq!(debug_text(&printed), Vec::<String>::new(), "{printed}");
        }

        // A missing data directory's hint names it too.
        let missing = dir.with_file_name("not there");
        let out = run(program().arg("runs").arg("--data-dir").arg(&missing));
        let serve = hinted(&stderr(&out), "serve");
        assert_eq!(
            serve[1..],
            ["serve", "--data-dir", missing.to_str().unwrap()],
            "{}",
            stderr(&out)
        );
    })
    .await
    .unwrap();
}

#[test]
fn commands_print_words_headers_and_json_never_debug_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let dd = d.to_str().unwrap();
    let tenant = tenant_of(&d);
    let id_of = |args: &[&str]| -> String {
        let out = run(program().args(args).args(["--json", "--data-dir", dd]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["id"].as_str().unwrap().to_owned()
    };
    let action = id_of(&["actions", "list"]);
    let workflow = id_of(&["workflow", "list"]);
    // A settings file with a repeated HR rule (its problem names the field and the value).
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"hr": {"rules": [{"field": "department", "equals": "Sales", "groups": ["A"]}, {"field": "department", "equals": "SALES", "groups": ["B"]}]}}"#,
    )
    .unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["runs"],
        vec!["export"],
        vec!["preview"],
        vec!["preview", "--mode", "only-updated"],
        vec!["users", "list"],
        vec!["actions", "list"],
        vec!["actions", "show", &action],
        vec!["workflow", "list"],
        vec!["workflow", "show", &workflow],
        vec!["hooks", "list"],
        vec!["hooks", "reviews", "--all"],
        vec!["settings", "validate", settings.to_str().unwrap()],
        vec!["confirm", "no-such-run"],
        vec!["lookup", "nobody@example.com"],
        vec!["import"],
    ];
    for args in &commands {
        let out = run(program().args(args).args(["--data-dir", dd]));
        let printed = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(
            debug_text(&printed),
            Vec::<String>::new(),
            "{args:?}: {printed}"
        );
    }
    let validate = run(program()
        .args(["settings", "validate"])
        .arg(&settings)
        .args(["--data-dir", dd]));
    assert!(
        stderr(&validate).contains("repeats a rule for the same department value \"SALES\""),
        "{}",
        stderr(&validate)
    );

    // Headers above the lines; --json instead.
    let preview = stdout(&run(program().args(["preview", "--data-dir", dd])));
    assert!(
        preview.starts_with("action ") && preview.contains(" reason\n"),
        "{preview}"
    );
    let export = stdout(&run(program().args(["export", "--data-dir", dd])));
    let mut lines = export.lines();
    assert!(
        lines.next().is_some_and(
            |l| l.starts_with(&format!("directory {tenant}: ")) && l.contains(" users (")
        ),
        "{export}"
    );
    for header in ["user object id ", "group object id ", "member object id "] {
        assert!(
            export
                .lines()
                .any(|l| l.starts_with(header) || l.contains(header)),
            "{header} in {export}"
        );
    }
    let json = run(program().args(["export", "--json", "--data-dir", dd]));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let users = json["users"].as_array().unwrap();
    assert!(
        export.contains(users[0]["user"]["id"].as_str().unwrap()),
        "the lines show the stored users"
    );
    assert!(json["groups"].is_array() && json["memberships"].is_array());
}

#[test]
fn workflow_and_action_listings_page_through_the_store_up_to_the_limit() {
    use entra_sync_core::actions::ports::{ActionFilter, ActionStore, WorkflowStore};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let dd = d.to_str().unwrap();
    // 250 more of the demo's workflow and of one of its actions, a second apart.
    let (runtime, app) = open_app(&d);
    runtime.block_on(async {
        let t = TenantId::new(tenant_of_app(&app).await);
        let wf = app
            .store
            .list_workflows(&t, None, 1)
            .await
            .unwrap()
            .items
            .remove(0);
        let action = app
            .store
            .list_actions(&t, &ActionFilter::default(), None, 1)
            .await
            .unwrap()
            .items
            .remove(0);
        for i in 1..=250i64 {
            let mut w = wf.clone();
            w.id = format!("{}-copy-{i:03}", wf.id);
            w.created_at = wf.created_at - chrono::Duration::seconds(i);
            assert!(app.store.create_workflow(&w).await.unwrap().is_none());
            let mut a = action.clone();
            a.id = format!("{}-copy-{i:03}", action.id);
            a.requested_at = action.requested_at - chrono::Duration::seconds(i);
            assert!(app.store.create_action(&a).await.unwrap().is_none());
        }
    });
    drop(app);
    let actions_before = {
        let out = run(program().args([
            "actions",
            "list",
            "--json",
            "--limit",
            "1000",
            "--data-dir",
            dd,
        ]));
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        actions_before,
        4 + 250,
        "every action of the demo and the copies"
    );
    for (what, total) in [("workflow", 251), ("actions", actions_before)] {
        for limit in [1, 199, 200, 201, 240, 1000] {
            let out = run(program().args([
                what,
                "list",
                "--json",
                "--limit",
                &limit.to_string(),
                "--data-dir",
                dd,
            ]));
            assert!(out.status.success(), "{what} {limit}: {}", stderr(&out));
            let items: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(items.len(), limit.min(total), "{what} list --limit {limit}");
            let mut ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), items.len(), "{what}: no item twice");
        }
        // The plain lines follow the same pages.
        let out = run(program().args([what, "list", "--limit", "240", "--data-dir", dd]));
        assert_eq!(stdout(&out).lines().count(), 240, "{what}");
    }
}

async fn tenant_of_app(app: &LocalApp) -> String {
    use entra_sync_core::ports::ConnectionStore;
    app.store.list_connections().await.unwrap()[0]
        .tenant_id
        .to_string()
}
