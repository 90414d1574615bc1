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

    // `.` as the data directory, the reproduction.
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

#[test]
fn read_only_commands_on_a_missing_directory_or_unknown_tenant_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let t = "0b4a3f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let m = missing.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["export", "--tenant-id", t, "--data-dir", m],
        vec!["runs", "--tenant-id", t, "--data-dir", m],
        vec!["settings", "show", "--tenant-id", t, "--data-dir", m],
        vec!["users", "list", "--tenant-id", t, "--data-dir", m],
        vec!["lookup", "a@example.com", "--tenant-id", t, "--data-dir", m],
        vec!["preview", "--tenant-id", t, "--data-dir", m],
    ];
    for args in &commands {
        let out = run(program().args(args));
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("no directory {t} in {m}")),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert!(!missing.exists(), "{args:?} created the data directory");
    }

    // An existing store, another tenant.
    let d = dir.path().join("demo");
    assert!(run(&mut demo(&d)).status.success());
    let before = tree(&d);
    let dd = d.to_str().unwrap();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(|a| if *a == m { dd } else { a }).collect();
        let out = run(program().args(&args));
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("no directory {t} in {dd}")),
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
    assert_eq!(listed.len(), 1, "{lines:?}");
    assert!(listed[0].contains(picked), "{lines:?}");
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
