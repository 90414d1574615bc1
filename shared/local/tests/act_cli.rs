//! The action commands through the real `entra-sync` binary, against an emulated tenant this
//! test starts (so it can read the emulator's write and token counters): every kind once,
//! idempotency keys, approvals, refusals in sentences with nothing done, `--json`, and the
//! granted-permissions record. One case drives `entra-sync serve --emulator` end to end:
//! `actions enable` prints a consent link that grants exactly the enabled kinds.
//!
//! Every child is bounded by a deadline (a hang guard, not a speed assertion) and sees no
//! `ENTRA_SYNC_*` variable of the machine. All traffic stays on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use entra_sync_core::actions::ActionSpec;
use entra_sync_core::actions::record::Origin;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::{ConnectionStore, Secret};
use entra_sync_core::services::actions::{SubmitRequest, submit_action};
use entra_sync_emulator::{
    Emulator, EmulatorConfig, GroupKind, NewGroup, NewServicePrincipal, NewUser,
    ServicePrincipalInfo, TenantSpec, WriteOp,
};
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_local::action_worker::{QueueRun, run_queue_until_idle};
use entra_sync_local::runtime::{DataDir, LocalApp, SyncSettings};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(180);

const ALL_KINDS: &str = "add-group-member,remove-group-member,assign-app-role,remove-app-role,revoke-sessions,block-sign-in,unblock-sign-in,reset-password,delete-user,restore-user";

struct Env {
    emulator: Emulator,
    tenant: String,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ann: String,
    bob: String,
    sales: String,
    dl: String,
    app: ServicePrincipalInfo,
}

fn base_cmd() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_entra-sync"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTRA_SYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1")
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

impl Env {
    /// A tenant with Ann and Bob, a security group "Sales", a distribution list, two groups
    /// named "Project", and an enterprise application; synced once into a new data directory.
    async fn new() -> Env {
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        let info = emulator.add_tenant(&TenantSpec::new(7, 20, 3));
        let t = emulator.tenant(&info.tenant_id).unwrap();
        let ann = t.create_user(NewUser::new("Ann Archer", "ann@contoso.example"));
        let bob = t.create_user(NewUser::new("Bob Baker", "bob@contoso.example"));
        let sales = t.create_group(NewGroup::new("Sales", GroupKind::Security));
        let dl = t.create_group(NewGroup::new("All staff", GroupKind::Distribution));
        t.create_group(NewGroup::new("Project", GroupKind::Security));
        t.create_group(NewGroup::new("Project", GroupKind::Security));
        t.add_member(&sales, &bob).unwrap();
        let app = t.create_service_principal(NewServicePrincipal::new("Payroll", &["Reader"]));
        t.set_user_admin_role(true);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let env = Env {
            emulator,
            tenant: info.tenant_id,
            _tmp: tmp,
            dir,
            ann,
            bob,
            sales,
            dl,
            app,
        };
        let out = env.run(&["sync", "--no-progress"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        env
    }

    /// `entra-sync ARGS --data-dir D --tenant-id T` with the emulator's app (flags for the
    /// commands that take them).
    fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let app = self.emulator.app();
        let mut cmd = base_cmd();
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--tenant-id", &self.tenant])
            .env("ENTRA_SYNC_CLIENT_SECRET", &app.client_secret);
        // Read-only commands take no Graph flags.
        let reads = matches!(
            (args[0], args.get(1).copied()),
            ("actions", Some("list" | "show")) | ("workflow", Some("list" | "show"))
        );
        if !reads {
            cmd.args(["--client-id", &app.client_id])
                .args(["--graph-url", &self.emulator.graph_base_url()])
                .args(["--login-url", &self.emulator.login_base_url()]);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        output(self.cmd(args)).await
    }

    /// Run and parse `--json` output; the command must succeed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.run(&all).await;
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)))
    }

    async fn enable(&self, kinds: &str) {
        let out = self.run(&["actions", "enable", "--kind", kinds]).await;
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn writes(&self, op: WriteOp) -> u64 {
        self.emulator
            .counters()
            .tenant(&self.tenant)
            .write_requests(op)
    }

    fn all_writes(&self) -> u64 {
        self.emulator
            .counters()
            .tenant(&self.tenant)
            .writes
            .values()
            .map(|c| c.requests)
            .sum()
    }

    fn user(&self, id: &str) -> Value {
        self.emulator
            .tenant(&self.tenant)
            .unwrap()
            .user(id)
            .unwrap()
    }
}

fn status(v: &Value) -> String {
    v["action"]["status"]["status"]
        .as_str()
        .or_else(|| v["status"]["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn id(v: &Value) -> String {
    v["action"]["id"]
        .as_str()
        .or_else(|| v["id"].as_str())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_runs_once_through_the_program() {
    let env = Env::new().await;
    env.enable(ALL_KINDS).await;
    let ann = env.ann.as_str();

    let v = env
        .json(&[
            "act",
            "add-group-member",
            "--user",
            "ann@contoso.example",
            "--group",
            "Sales",
        ])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::AddMember), 1);
    let members = env
        .emulator
        .tenant(&env.tenant)
        .unwrap()
        .members(&env.sales)
        .unwrap();
    assert!(members.iter().any(|(m, _)| m == ann));

    let v = env
        .json(&[
            "act",
            "remove-group-member",
            "--user",
            ann,
            "--group",
            &env.sales,
        ])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::RemoveMember), 1);

    let v = env
        .json(&[
            "act",
            "assign-app-role",
            "--user",
            ann,
            "--app",
            &env.app.id,
        ])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    let v = env
        .json(&[
            "act",
            "remove-app-role",
            "--user",
            ann,
            "--app",
            &env.app.id,
        ])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::AssignAppRole), 1);
    assert_eq!(env.writes(WriteOp::RemoveAppRole), 1);

    let v = env.json(&["act", "revoke-sessions", "--user", ann]).await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::RevokeSessions), 1);

    // Block waits for an approver (the default policy), then runs.
    let v = env.json(&["act", "block-sign-in", "--user", ann]).await;
    assert_eq!(status(&v), "pending_approval", "{v}");
    assert_eq!(env.writes(WriteOp::BlockSignIn), 0);
    let v = env
        .json(&["actions", "approve", &id(&v), "--by", "carol@host"])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.user(ann)["accountEnabled"], Value::Bool(false));

    let v = env.json(&["act", "unblock-sign-in", "--user", ann]).await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.user(ann)["accountEnabled"], Value::Bool(true));

    // A password reset: approved by another person, run by its requester, who sees the
    // temporary password once.
    let v = env.json(&["act", "reset-password", "--user", ann]).await;
    assert_eq!(status(&v), "pending_approval", "{v}");
    let reset = id(&v);
    let v = env
        .json(&["actions", "approve", &reset, "--by", "carol@host"])
        .await;
    assert_eq!(status(&v), "approved", "{v}");
    let out = env.run(&["actions", "run", &reset]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("temporary password"))
        .unwrap_or_else(|| panic!("{text}"));
    let password = line.rsplit(' ').next().unwrap();
    assert!(password.len() >= 12, "{line}");
    assert_eq!(env.writes(WriteOp::ResetPassword), 1);
    // Never stored: not in the audit trail.
    let shown = env.run(&["actions", "show", &reset, "--json"]).await;
    assert!(!stdout(&shown).contains(password));
    assert!(stdout(&shown).contains("succeeded"));

    // Delete (approved), then restore.
    let v = env.json(&["act", "delete-user", "--user", &env.bob]).await;
    let v = env
        .json(&["actions", "approve", &id(&v), "--by", "carol@host"])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::DeleteUser), 1);
    let v = env.json(&["act", "restore-user", "--user", &env.bob]).await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::RestoreUser), 1);
    assert!(
        env.emulator
            .tenant(&env.tenant)
            .unwrap()
            .user(&env.bob)
            .is_some()
    );

    // The audit trail lists all of them, as JSON and as lines.
    let list = env.json(&["actions", "list"]).await;
    assert_eq!(list.as_array().unwrap().len(), 10, "{list}");
    let out = env.run(&["actions", "list", "--user", ann]).await;
    assert_eq!(stdout(&out).lines().count(), 8, "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_is_one_write_and_the_same_answer_and_another_request_is_refused() {
    let env = Env::new().await;
    env.enable("revoke-sessions,add-group-member").await;
    let args = [
        "act",
        "revoke-sessions",
        "--user",
        "ann@contoso.example",
        "--key",
        "k-1",
    ];
    let first = env.json(&args).await;
    let second = env.json(&args).await;
    assert_eq!(status(&first), "succeeded");
    assert_eq!(first["action"], second["action"], "the same answer");
    assert_eq!(env.writes(WriteOp::RevokeSessions), 1, "one Graph write");

    let out = env
        .run(&[
            "act",
            "revoke-sessions",
            "--user",
            "bob@contoso.example",
            "--key",
            "k-1",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("idempotency key \"k-1\" was used before"), "{e}");
    assert_eq!(env.writes(WriteOp::RevokeSessions), 1);

    // Without --key a fresh one is made and printed.
    let out = env
        .run(&[
            "act",
            "add-group-member",
            "--user",
            "ann@contoso.example",
            "--group",
            "Sales",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("key: cli-"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_need_another_person_and_a_rejection_does_nothing() {
    let env = Env::new().await;
    env.enable("block-sign-in").await;
    let v = env
        .json(&[
            "act",
            "block-sign-in",
            "--user",
            "ann@contoso.example",
            "--requested-by",
            "dave@host",
        ])
        .await;
    assert_eq!(status(&v), "pending_approval");
    let action = id(&v);
    let out = env
        .run(&["actions", "approve", &action, "--by", "dave@host"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("dave@host") || e.contains("requester"), "{e}");
    assert!(!e.contains("Transition"), "no Rust names: {e}");

    let v = env
        .json(&[
            "actions",
            "reject",
            &action,
            "--by",
            "erin@host",
            "--comment",
            "not now",
        ])
        .await;
    assert_eq!(status(&v), "rejected");
    assert_eq!(env.writes(WriteOp::BlockSignIn), 0);
    let out = env.run(&["actions", "show", &action]).await;
    let text = stdout(&out);
    assert!(
        text.contains("rejected by erin@host") && text.contains("not now"),
        "{text}"
    );

    // Cancel an action waiting for approval.
    let v = env
        .json(&["act", "block-sign-in", "--user", "ann@contoso.example"])
        .await;
    let v = env.json(&["actions", "cancel", &id(&v)]).await;
    assert_eq!(status(&v), "cancelled");
    assert_eq!(env.writes(WriteOp::BlockSignIn), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_sentences_and_nothing_is_done() {
    let env = Env::new().await;
    env.enable("add-group-member,revoke-sessions").await;
    let cases: [(&[&str], &str); 5] = [
        (
            &["act", "revoke-sessions", "--user", "nobody@contoso.example"],
            "no user nobody@contoso.example",
        ),
        (
            &[
                "act",
                "add-group-member",
                "--user",
                "ann@contoso.example",
                "--group",
                "Project",
            ],
            "matches 2 groups",
        ),
        (
            &[
                "act",
                "add-group-member",
                "--user",
                "ann@contoso.example",
                "--group",
                "All staff",
            ],
            "cannot be changed by this app",
        ),
        (
            &["act", "block-sign-in", "--user", "ann@contoso.example"],
            "block_sign_in is not enabled",
        ),
        (
            &["act", "fly", "--user", "ann@contoso.example"],
            "no action kind \"fly\"",
        ),
    ];
    for (args, expected) in cases {
        let out = env.run(args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = stderr(&out);
        assert!(e.contains(expected), "{args:?}: {e}");
        assert!(
            !e.contains("Error {") && !e.contains("{ "),
            "no Debug text: {e}"
        );
    }
    // The way out is a command for this data directory, as printed.
    let out = env
        .run(&["act", "block-sign-in", "--user", "ann@contoso.example"])
        .await;
    assert!(
        stderr(&out).contains(&format!(
            "`entra-sync actions enable --kind block-sign-in --data-dir {}`",
            env.dir.display()
        )),
        "{}",
        stderr(&out)
    );
    let _ = &env.dl;
    assert_eq!(env.all_writes(), 0, "nothing reached Graph");
    let list = env.json(&["actions", "list"]).await;
    assert!(
        list.as_array().unwrap().is_empty(),
        "nothing stored: {list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_permission_is_named_and_a_later_grant_is_picked_up() {
    let env = Env::new().await;
    env.enable("revoke-sessions").await;
    let t = env.emulator.tenant(&env.tenant).unwrap();
    t.set_granted_permissions([
        "User.Read.All",
        "GroupMember.Read.All",
        "Organization.Read.All",
    ]);
    let out = env
        .run(&["act", "revoke-sessions", "--user", "ann@contoso.example"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("User.RevokeSessions.All") && e.contains("admin consent"),
        "{e}"
    );
    assert!(!e.to_lowercase().contains("insufficient privileges"), "{e}");
    assert_eq!(
        env.writes(WriteOp::RevokeSessions),
        0,
        "refused before Graph"
    );

    // The admin grants it: the record lacks it, so the next action reads a fresh token.
    t.set_granted_permissions([
        "User.Read.All",
        "GroupMember.Read.All",
        "Organization.Read.All",
        "User.RevokeSessions.All",
    ]);
    let v = env
        .json(&["act", "revoke-sessions", "--user", "ann@contoso.example"])
        .await;
    assert_eq!(status(&v), "succeeded", "{v}");
    assert_eq!(env.writes(WriteOp::RevokeSessions), 1);
    let app = LocalApp::open(&DataDir::new(&env.dir), &SyncSettings::default()).unwrap();
    let c = app
        .store
        .get_connection(&TenantId::new(env.tenant.clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(c.granted_permissions.contains("User.RevokeSessions.All"));
}

#[tokio::test(flavor = "multi_thread")]
async fn many_actions_take_one_token_not_one_each() {
    let env = Env::new().await;
    env.enable("revoke-sessions").await;
    let app = LocalApp::open(&DataDir::new(&env.dir), &SyncSettings::default()).unwrap();
    let creds = env.emulator.app();
    let client = GraphClient::new(GraphConfig::new(
        url::Url::parse(&env.emulator.graph_base_url()).unwrap(),
        url::Url::parse(&env.emulator.login_base_url()).unwrap(),
        creds.client_id.clone(),
        Secret::new(creds.client_secret.clone()),
    ))
    .unwrap();
    let actions = app.actions(Arc::new(client)).unwrap();
    let tenant = TenantId::new(env.tenant.clone());
    let account = app
        .store
        .get_connection(&tenant)
        .await
        .unwrap()
        .unwrap()
        .account_id;
    env.emulator.reset_counters();
    for n in 0..20 {
        submit_action(
            &actions.deps,
            SubmitRequest {
                account: account.clone(),
                tenant: tenant.clone(),
                key: format!("many-{n}"),
                spec: ActionSpec::RevokeSessions {
                    user: env.ann.clone(),
                },
                requested_by: "test".into(),
                origin: Origin::Cli,
            },
        )
        .await
        .unwrap();
    }
    let run = run_queue_until_idle(&actions, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(run, QueueRun::Empty);
    let counters = env.emulator.counters();
    assert_eq!(
        counters
            .tenant(&env.tenant)
            .write_requests(WriteOp::RevokeSessions),
        20
    );
    // The record was empty after the sync: one fresh token filled it; every check after read
    // the record, and the writes reused the cached token.
    assert_eq!(counters.token, 1, "token requests for 20 actions");
}

#[tokio::test(flavor = "multi_thread")]
async fn offboarding_blocks_the_user_and_removes_it_from_its_groups() {
    let env = Env::new().await;
    env.enable("revoke-sessions,remove-app-role,remove-group-member,block-sign-in")
        .await;
    let v = env
        .json(&[
            "workflow",
            "start",
            "offboarding",
            "--user",
            "bob@contoso.example",
        ])
        .await;
    // Revoke, remove apps, remove groups ran; the block waits for an approver (the default
    // policy), and the workflow resumes when it is approved.
    assert_eq!(v["status"]["status"], "waiting_approval", "{v}");
    assert_eq!(env.writes(WriteOp::RevokeSessions), 1);
    assert_eq!(env.writes(WriteOp::BlockSignIn), 0);
    let members = env
        .emulator
        .tenant(&env.tenant)
        .unwrap()
        .members(&env.sales)
        .unwrap();
    assert!(!members.iter().any(|(m, _)| *m == env.bob));
    let workflow = v["id"].as_str().unwrap().to_string();
    let action = v["status"]["action_id"].as_str().unwrap().to_string();
    env.json(&["actions", "approve", &action, "--by", "carol@host"])
        .await;
    let v = env.json(&["workflow", "show", &workflow]).await;
    assert_eq!(v["status"]["status"], "completed", "{v}");
    assert_eq!(env.user(&env.bob)["accountEnabled"], Value::Bool(false));
    let members = env
        .emulator
        .tenant(&env.tenant)
        .unwrap()
        .members(&env.sales)
        .unwrap();
    assert!(!members.iter().any(|(m, _)| *m == env.bob));
    let listed = env.json(&["workflow", "list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

// ---- serve --emulator: enable prints a consent link that grants the enabled kinds only ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Follow redirects by hand (the client does not), returning the last response's body.
async fn follow(client: &reqwest::Client, mut response: reqwest::Response) -> (u16, String) {
    for _ in 0..10 {
        if !response.status().is_redirection() {
            break;
        }
        let next = response.headers()["location"].to_str().unwrap().to_owned();
        let next = response.url().join(&next).unwrap();
        response = client.get(next).send().await.unwrap();
    }
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}

fn read_connection(dir: &Path) -> entra_sync_core::model::Connection {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let app = LocalApp::open(&DataDir::new(dir), &SyncSettings::default()).unwrap();
    runtime.block_on(async { app.store.list_connections().await.unwrap().remove(0) })
}

#[tokio::test(flavor = "multi_thread")]
async fn with_serve_the_consent_link_of_enable_grants_the_enabled_kinds_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("serve");
    let port = free_port();
    let mut serve = base_cmd();
    serve
        .args(["serve", "--emulator", "--users", "10", "--groups", "2"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = serve.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..400 {
        if client.get(format!("{base}/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "serve did not listen");

    // Connect through the local start page and the emulator's consent page.
    let start = client
        .post(format!("{base}/local/start"))
        .form(&[("account", "local"), ("label", "Test")])
        .send()
        .await
        .unwrap();
    let (code, body) = follow(&client, start).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Directory connected"), "{body}");
    let dir2 = dir.clone();
    let connected = tokio::task::spawn_blocking(move || read_connection(&dir2))
        .await
        .unwrap();
    assert!(
        connected
            .granted_permissions
            .contains("GroupMember.ReadWrite.All"),
        "the consent recorded the grant: {:?}",
        connected.granted_permissions
    );

    // Enable one kind next to the running serve: a link asking for it (and the reads) only.
    let mut enable = base_cmd();
    enable
        .args(["actions", "enable", "--kind", "block-sign-in", "--data-dir"])
        .arg(&dir);
    let out = output(enable).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let link = text
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("{text}"));
    let parsed = url::Url::parse(link).unwrap();
    assert!(parsed.path().ends_with("/v2.0/adminconsent"), "{link}");
    let scope = parsed
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert!(scope.contains("User.EnableDisableAccount.All"), "{scope}");
    assert!(!scope.contains("GroupMember.ReadWrite.All"), "{scope}");
    let (code, body) = follow(&client, client.get(link).send().await.unwrap()).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Directory connected"), "{body}");
    let dir2 = dir.clone();
    let c = tokio::task::spawn_blocking(move || read_connection(&dir2))
        .await
        .unwrap();
    assert!(
        c.granted_permissions
            .contains("User.EnableDisableAccount.All")
    );
    assert!(!c.granted_permissions.contains("GroupMember.ReadWrite.All"));
    // The child this test started, by its handle.
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_offboards_one_user_and_the_next_sync_shows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = base_cmd();
    demo.args([
        "demo",
        "--users",
        "80",
        "--groups",
        "6",
        "--changes",
        "5",
        "--no-progress",
    ])
    .arg("--data-dir")
    .arg(tmp.path().join("demo"));
    let out = output(demo).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("Acted on the directory: offboarding "),
        "{text}"
    );
    assert!(
        text.contains("workflow") && text.contains(": completed"),
        "{text}"
    );
    assert!(
        text.contains("the store shows the user blocked, in 0 groups the app may change"),
        "{text}"
    );
    assert!(text.contains("after offboarding incremental"), "{text}");
    assert!(text.contains("state matches directory: yes"), "{text}");
}
