//! Sync semantics against the emulator (issue #6, docs/sync-semantics.md): scope filters,
//! attribute mapping, matching, provisioning rules, import preview and modes, the activity log
//! and the circuit breaker. Every test drives real delta rounds (emulator -> Graph client ->
//! fetch -> queue -> reconcile -> commit -> projection) and checks the host product's users.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use entra_sync_core::cursor::CursorState;
use entra_sync_core::filters::{LicenseStatus, Section, UserType};
use entra_sync_core::mapping::FieldMapping;
use entra_sync_core::memory::{CollectingEvents, CollectingQueue, ManualClock, MemoryStore};
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, Stream, TenantId, VerifiedDomain,
};
use entra_sync_core::ports::{ConnectionStore, CursorStore, LocalUserStore, RunStore, Secret};
use entra_sync_core::provision::{Action, LocalStatus, LocalUser};
use entra_sync_core::run::{RunStatus, SyncRun, Trigger};
use entra_sync_core::services::{
    FetchDeps, FetchOptions, ImportMode, ProjectDeps, ProjectError, ProjectOutcome,
    ProjectionPorts, PublishingLocalUsers, ReconcileDeps, add_local_user, confirm_held, import,
    load_settings, preview, reconcile_page, reject_held, run_fetch, save_settings,
    set_local_status, sign_in_lookup,
};
use entra_sync_core::settings::{Automatic, ConnectionSettings, Deprovisioning, GroupRole};
use entra_sync_core::testing::DepsBuilder;
use entra_sync_emulator::{
    Emulator, EmulatorConfig, Fault, FaultKind, GroupKind, NewGroup, NewUser, RouteMatch,
    TenantHandle, TenantSpec,
};
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use serde_json::json;

const ACCOUNT: &str = "acct-1";

struct World {
    emulator: Emulator,
    tenant: TenantId,
    account: AccountId,
    store: Arc<MemoryStore>,
    queue: Arc<CollectingQueue>,
    clock: Arc<ManualClock>,
    events: Arc<CollectingEvents>,
    fetch: FetchDeps,
    reconcile: ReconcileDeps,
}

/// Every event a test of this file produced matches its schema in `events/schemas/`.
impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            entra_sync_tests::event_schemas::assert_valid(&self.events.history());
        }
    }
}

impl World {
    /// An empty tenant (users are created by each test), connected to account `acct-1` with
    /// `contoso.com` verified. The clock reads 10:00 UTC.
    async fn new() -> Self {
        Self::with_local_users(None).await
    }

    /// As `new`, with the projection writing through `local_users` (a fault injector).
    async fn with_local_users(local_users: Option<Arc<dyn LocalUserStore>>) -> Self {
        let config = EmulatorConfig {
            user_page_size: 7,
            group_page_size: 3,
            member_slice: 4,
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(config).await.unwrap();
        let mut spec = TenantSpec::new(1, 0, 0);
        spec.domains = vec!["contoso.com".into()];
        let info = emulator.add_tenant(&spec);
        let app = emulator.app();
        let mut gc = GraphConfig::new(
            url::Url::parse(&emulator.graph_base_url()).unwrap(),
            url::Url::parse(&emulator.login_base_url()).unwrap(),
            app.client_id.clone(),
            Secret::new(app.client_secret.clone()),
        );
        gc.retry = RetryPolicy {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let client = Arc::new(GraphClient::new(gc).unwrap());
        let tenant = TenantId::new(info.tenant_id);
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(CollectingQueue::new());
        let events = Arc::new(CollectingEvents::new());
        let clock = Arc::new(ManualClock::new(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .unwrap(),
        ));
        let ports = ProjectionPorts {
            connections: store.clone(),
            settings: store.clone(),
            // Every host-user write publishes its `user.*` event, as the local program does.
            local_users: Arc::new(PublishingLocalUsers::new(
                local_users.unwrap_or_else(|| store.clone()),
                events.clone(),
            )),
        };
        let deps = DepsBuilder::on(&store)
            .events(events.clone())
            .clock(clock.clone())
            .projection(ports);
        let fetch = deps.fetch(client, queue.clone());
        let reconcile = deps.reconcile();
        let account = AccountId(ACCOUNT.into());
        store
            .put_connection(&Connection {
                tenant_id: tenant.clone(),
                account_id: account.clone(),
                label: "HQ".into(),
                tenant_name: Some("Contoso".into()),
                verified_domains: vec![VerifiedDomain {
                    name: "Contoso.com".into(),
                    is_default: true,
                    is_initial: false,
                }],
                status: ConnectionStatus::Connected,
                connected_at: entra_sync_core::ports::Clock::now(clock.as_ref()),
                granted_permissions: Default::default(),
            })
            .await
            .unwrap();
        Self {
            emulator,
            tenant,
            account,
            store,
            queue,
            clock,
            events,
            fetch,
            reconcile,
        }
    }

    fn dir(&self) -> TenantHandle {
        self.emulator.tenant(self.tenant.as_str()).unwrap()
    }

    fn deps(&self) -> ProjectDeps {
        DepsBuilder::on(&self.store)
            .clock(self.clock.clone())
            .project()
    }

    /// One scheduled run: fetch every page, deliver every message, return the run.
    async fn sync_with(&self, force_full: bool) -> SyncRun {
        let opts = FetchOptions {
            trigger: Trigger::Scheduled,
            force_full,
            ..FetchOptions::default()
        };
        let report = run_fetch(&self.fetch, &self.tenant, &opts).await.unwrap();
        for m in self.queue.drain() {
            reconcile_page(&self.reconcile, &m).await.unwrap();
        }
        self.store
            .get_run(&self.tenant, &report.run_id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn sync(&self) -> SyncRun {
        self.sync_with(false).await
    }

    fn user(&self, name: &str, upn: &str, props: serde_json::Value) -> String {
        let mut u = NewUser::new(name, upn);
        if let serde_json::Value::Object(map) = props {
            u.properties = map;
        }
        self.dir().create_user(u)
    }

    async fn local(&self, object_id: &str) -> Option<LocalUser> {
        self.store
            .find_linked(&self.tenant, &[object_id.to_owned()])
            .await
            .unwrap()
            .into_iter()
            .next()
    }

    async fn status(&self, object_id: &str) -> Option<LocalStatus> {
        self.local(object_id).await.map(|u| u.status)
    }

    async fn all_local(&self) -> Vec<LocalUser> {
        self.store
            .list_local_users(&self.account, None, 10_000)
            .await
            .unwrap()
            .items
    }

    async fn settings(&self) -> ConnectionSettings {
        load_settings(self.store.as_ref(), &self.tenant)
            .await
            .unwrap()
    }

    /// Save settings edited by `f` and return the re-projection run.
    async fn edit(&self, f: impl FnOnce(&mut ConnectionSettings)) -> SyncRun {
        let mut s = self.settings().await;
        let expected = s.version;
        f(&mut s);
        save_settings(&self.deps(), &self.tenant, s, expected)
            .await
            .unwrap()
            .1
    }
}

/// A settings edit in a table of cases.
type Edit = Box<dyn Fn(&mut ConnectionSettings)>;

fn any<T>(values: Vec<T>) -> Section<T> {
    Section::AnyOf { values }
}

#[tokio::test]
async fn provisioning_rules_table() {
    let w = World::new().await;
    w.edit(|s| s.provisioning.auto_activate_verified_domains = true)
        .await;
    let verified = w.user("Ada", "ada@contoso.com", json!({}));
    let unverified = w.user("Bob", "bob@fabrikam.io", json!({}));
    let guest = w.user("Gus", "gus_ext@contoso.com", json!({"userType": "Guest"}));
    let disabled = w.user("Dee", "dee@contoso.com", json!({"accountEnabled": false}));
    let run = w.sync().await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let cases: Vec<(&str, &str, Option<LocalStatus>)> = vec![
        (
            "enabled, verified domain, auto-activate on",
            &verified,
            Some(LocalStatus::Active),
        ),
        (
            "enabled, unverified domain",
            &unverified,
            Some(LocalStatus::Pending),
        ),
        ("guest excluded by default", &guest, None),
        ("disabled account not imported by default", &disabled, None),
    ];
    for (name, id, expected) in cases {
        assert_eq!(w.status(id).await, expected, "{name}");
    }
    assert_eq!(run.provisioning.created, 2);
    assert!(run.provisioning.skipped >= 2);

    // Disabled in the directory -> deactivated; enabled again -> back to its earlier status.
    w.dir().set_account_enabled(&verified, false).unwrap();
    w.dir().set_account_enabled(&unverified, false).unwrap();
    let run = w.sync().await;
    assert_eq!(run.provisioning.deactivated, 2, "{run:?}");
    assert_eq!(w.status(&verified).await, Some(LocalStatus::Deactivated));
    w.dir().set_account_enabled(&verified, true).unwrap();
    w.dir().set_account_enabled(&unverified, true).unwrap();
    let run = w.sync().await;
    assert_eq!(run.provisioning.reactivated, 2);
    assert_eq!(w.status(&verified).await, Some(LocalStatus::Active));
    assert_eq!(w.status(&unverified).await, Some(LocalStatus::Pending));

    // Deleted in the directory -> disabled in directory; restored -> reactivated. Nothing is
    // ever hard-deleted.
    w.dir().delete_user(&unverified).unwrap();
    let run = w.sync().await;
    assert_eq!(run.provisioning.disabled_in_directory, 1);
    assert_eq!(
        w.status(&unverified).await,
        Some(LocalStatus::DisabledInDirectory)
    );
    w.dir().restore_user(&unverified).unwrap();
    w.sync().await;
    assert_eq!(w.status(&unverified).await, Some(LocalStatus::Pending));
    w.dir().delete_user(&verified).unwrap();
    w.dir().purge_user(&verified).unwrap();
    w.sync().await;
    assert_eq!(
        w.status(&verified).await,
        Some(LocalStatus::DisabledInDirectory)
    );
    assert_eq!(
        w.all_local().await.len(),
        2,
        "no local user is ever removed"
    );
}

#[tokio::test]
async fn include_disabled_imports_disabled_accounts_as_deactivated() {
    let w = World::new().await;
    let disabled = w.user("Dee", "dee@contoso.com", json!({"accountEnabled": false}));
    w.sync().await;
    assert_eq!(w.status(&disabled).await, None);
    w.edit(|s| s.filters.include_disabled = true).await;
    assert_eq!(w.status(&disabled).await, Some(LocalStatus::Deactivated));
}

#[tokio::test]
async fn filter_edits_reproject_from_the_mirror_freeze_and_never_delete() {
    let w = World::new().await;
    let sales = w.user("Sal", "sal@contoso.com", json!({"department": "Sales"}));
    let hr = w.user("Har", "har@contoso.com", json!({"department": "HR"}));
    w.edit(|s| s.filters.departments = any(vec!["sales".into()]))
        .await;
    w.sync().await;
    assert!(w.status(&sales).await.is_some());
    assert_eq!(w.status(&hr).await, None, "outside the department filter");

    // Widening the filter imports HR at once, from the mirror: no Graph request at all.
    let before = w.emulator.counters().requests;
    let run = w.edit(|s| s.filters.departments = Section::All).await;
    assert_eq!(w.emulator.counters().requests, before, "no directory read");
    assert_eq!(run.trigger, Trigger::SettingsChanged);
    assert_eq!(run.provisioning.created, 1);
    assert_eq!(w.status(&hr).await, Some(LocalStatus::Pending));

    // Narrowing it again freezes HR: kept, not deleted, no longer updated.
    let run = w
        .edit(|s| s.filters.departments = any(vec!["Sales".into()]))
        .await;
    assert_eq!(run.provisioning.frozen, 1);
    let frozen = w.local(&hr).await.unwrap();
    assert!(frozen.frozen);
    assert_eq!(frozen.status, LocalStatus::Pending);
    w.dir()
        .update_user(
            &hr,
            json!({"displayName": "Harriet"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
    w.sync().await;
    assert_eq!(w.local(&hr).await.unwrap().fields["name"], "Har", "frozen");

    // Matching again: updated with what changed meanwhile.
    w.edit(|s| s.filters.departments = Section::All).await;
    let back = w.local(&hr).await.unwrap();
    assert!(!back.frozen);
    assert_eq!(back.fields["name"], "Harriet");
}

#[tokio::test]
async fn every_filter_section_and_their_combination() {
    let w = World::new().await;
    let a = w.user(
        "A",
        "a@contoso.com",
        json!({"department": "Sales", "officeLocation": "Paris"}),
    );
    let b = w.user(
        "B",
        "b@fabrikam.io",
        json!({"department": "Sales", "officeLocation": "Berlin"}),
    );
    let c = w.user(
        "C",
        "c@contoso.com",
        json!({"department": "HR", "officeLocation": "Paris", "userType": "Guest"}),
    );
    // Mirror only: the table previews what each filter would create.
    w.edit(|s| s.provisioning.automatic = Automatic::Nothing)
        .await;
    w.sync().await;
    let table: Vec<(&str, Edit, Vec<&str>)> = vec![
        ("defaults: members", Box::new(|_| {}), vec![&a, &b]),
        (
            "email domain",
            Box::new(|s| s.filters.email_domains = any(vec!["contoso.com".into()])),
            vec![&a],
        ),
        (
            "guests admitted, office Paris",
            Box::new(|s| {
                s.filters.user_types = any(vec![UserType::Member, UserType::Guest]);
                s.filters.office_locations = any(vec!["paris".into()]);
            }),
            vec![&a, &c],
        ),
        (
            "AND across sections",
            Box::new(|s| {
                s.filters.user_types = Section::All;
                s.filters.office_locations = any(vec!["Paris".into()]);
                s.filters.departments = any(vec!["Sales".into(), "Ops".into()]);
            }),
            vec![&a],
        ),
        (
            "unlicensed only",
            Box::new(|s| s.filters.license_status = any(vec![LicenseStatus::Unlicensed])),
            vec![&a, &b],
        ),
        (
            "licensed only",
            Box::new(|s| s.filters.license_status = any(vec![LicenseStatus::Licensed])),
            vec![],
        ),
    ];
    for (name, edit, expected) in table {
        let mut s = ConnectionSettings::default();
        s.provisioning.automatic = Automatic::Nothing;
        edit(&mut s);
        let p = preview(
            &w.deps_with_settings(s).await,
            &w.tenant,
            ImportMode::NewAndUpdated,
        )
        .await
        .unwrap();
        let created: BTreeSet<&str> = p
            .items
            .iter()
            .filter(|i| i.action == Action::Create)
            .map(|i| i.object_id.as_str())
            .collect();
        let expected: BTreeSet<&str> = expected.into_iter().collect();
        assert_eq!(created, expected, "{name}");
        for i in p.items.iter().filter(|i| i.action == Action::Skip) {
            assert!(!i.reason.is_empty(), "{name}: a skip says why");
        }
    }
}

impl World {
    /// Store `s` as the current settings (without re-projecting) and return the deps.
    async fn deps_with_settings(&self, mut s: ConnectionSettings) -> ProjectDeps {
        use entra_sync_core::ports::SettingsStore;
        let current = self.settings().await.version;
        s.version = current + 1;
        self.store
            .put_settings(&self.tenant, &s, current)
            .await
            .unwrap();
        self.deps()
    }
}

#[tokio::test]
async fn nested_groups_count_for_the_group_filter_and_for_roles() {
    let w = World::new().await;
    let outer = w
        .dir()
        .create_group(NewGroup::new("Outer", GroupKind::Security));
    let inner = w
        .dir()
        .create_group(NewGroup::new("Inner", GroupKind::Security));
    let direct = w.user("Direct", "direct@contoso.com", json!({}));
    let nested = w.user("Nested", "nested@contoso.com", json!({}));
    let outside = w.user("Outside", "outside@contoso.com", json!({}));
    w.dir().add_member(&outer, &direct).unwrap();
    w.dir().add_member(&outer, &inner).unwrap();
    w.dir().add_member(&inner, &nested).unwrap();
    // The settings may only name groups the mirror knows: read the directory first.
    w.edit(|s| s.provisioning.automatic = Automatic::Nothing)
        .await;
    w.sync().await;
    let (o, i) = (outer.clone(), inner.clone());
    w.edit(move |s| {
        s.provisioning.automatic = Automatic::Everything;
        s.filters.groups = any(vec![o.clone()]);
        s.group_roles = vec![
            GroupRole {
                group_id: o,
                role: "staff".into(),
            },
            GroupRole {
                group_id: i,
                role: "engineer".into(),
            },
        ];
    })
    .await;
    w.sync().await;
    assert!(w.status(&direct).await.is_some());
    assert!(
        w.status(&nested).await.is_some(),
        "nested member is in scope"
    );
    assert_eq!(w.status(&outside).await, None);
    assert_eq!(w.local(&direct).await.unwrap().roles, vec!["staff"]);
    assert_eq!(
        w.local(&nested).await.unwrap().roles,
        vec!["engineer", "staff"]
    );

    // Sign-in lookup, case-insensitive, and roles follow membership changes on the next run.
    let look = sign_in_lookup(
        w.store.as_ref(),
        w.store.as_ref(),
        &w.account,
        "NESTED@contoso.com",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(look.roles, vec!["engineer", "staff"]);
    assert!(!look.may_sign_in, "pending until activated");
    w.dir().remove_member(&inner, &nested).unwrap();
    w.dir().add_member(&outer, &nested).unwrap();
    w.sync().await;
    assert_eq!(w.local(&nested).await.unwrap().roles, vec!["staff"]);
    let other = AccountId("acct-2".into());
    assert!(
        sign_in_lookup(
            w.store.as_ref(),
            w.store.as_ref(),
            &other,
            "nested@contoso.com"
        )
        .await
        .unwrap()
        .is_none(),
        "another account sees nothing"
    );
}

#[tokio::test]
async fn all_admits_values_that_appear_later_a_list_does_not() {
    let w = World::new().await;
    w.user("S", "s@contoso.com", json!({"department": "Sales"}));
    w.sync().await;
    let newcomer = w.user("Q", "q@contoso.com", json!({"department": "Quantum"}));
    w.sync().await;
    assert!(
        w.status(&newcomer).await.is_some(),
        "all admits a new department"
    );

    let w = World::new().await;
    w.user("S", "s@contoso.com", json!({"department": "Sales"}));
    w.edit(|s| s.filters.departments = any(vec!["Sales".into()]))
        .await;
    w.sync().await;
    let newcomer = w.user("Q", "q@contoso.com", json!({"department": "Quantum"}));
    w.sync().await;
    assert_eq!(w.status(&newcomer).await, None, "a list does not");
}

#[tokio::test]
async fn matching_links_existing_local_users_by_email_and_renames_keep_the_link() {
    let w = World::new().await;
    let existing = add_local_user(
        w.store.as_ref(),
        w.clock.as_ref(),
        &w.account,
        "ADA@Contoso.com",
        LocalStatus::Active,
    )
    .await
    .unwrap();
    // The same email in another account is someone else's user: never touched.
    let elsewhere = add_local_user(
        w.store.as_ref(),
        w.clock.as_ref(),
        &AccountId("acct-2".into()),
        "ada@contoso.com",
        LocalStatus::Active,
    )
    .await
    .unwrap();
    // UPN only (no mail): the canonical email is the UPN.
    let ada = {
        let mut u = NewUser::new("Ada", "ada@contoso.com");
        u.mail = None;
        w.dir().create_user(u)
    };
    let bob = w.user("Bob", "bob@contoso.com", json!({}));
    let run = w.sync().await;
    assert_eq!(run.provisioning.linked, 1);
    assert_eq!(run.provisioning.created, 1);
    let linked = w.local(&ada).await.unwrap();
    assert_eq!(linked.local_id, existing.local_id, "linked, not duplicated");
    assert_eq!(linked.status, LocalStatus::Active, "keeps its status");
    assert!(w.local(&bob).await.is_some());
    assert_eq!(w.all_local().await.len(), 2);
    let other = w
        .store
        .get_local_user(&elsewhere.account_id, &elsewhere.local_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other, elsewhere);

    // The email changes in the directory: the object id is the link.
    w.dir()
        .update_user(
            &ada,
            json!({"userPrincipalName": "ada.lovelace@contoso.com", "mail": "Ada.Lovelace@contoso.com"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
    w.sync().await;
    let renamed = w.local(&ada).await.unwrap();
    assert_eq!(renamed.local_id, existing.local_id);
    assert_eq!(renamed.email, "ada.lovelace@contoso.com");
    assert_eq!(w.all_local().await.len(), 2);

    // A second sync with nothing new changes nothing.
    let idle = w.sync().await;
    assert_eq!(
        idle.provisioning.created + idle.provisioning.linked + idle.provisioning.updated,
        0
    );
}

#[tokio::test]
async fn two_directory_users_with_one_email_never_make_two_local_users() {
    let w = World::new().await;
    let first = w.user("One", "same@contoso.com", json!({}));
    let second = {
        let mut u = NewUser::new("Two", "two@contoso.com");
        u.mail = Some("SAME@contoso.com".into());
        w.dir().create_user(u)
    };
    let p = preview(&w.deps(), &w.tenant, ImportMode::NewAndUpdated)
        .await
        .unwrap();
    assert!(p.items.is_empty(), "nothing mirrored before the first sync");
    w.sync().await;
    let locals = w.all_local().await;
    assert_eq!(locals.len(), 1);
    let linked_to = &locals[0].link.as_ref().unwrap().object_id;
    assert!(linked_to == &first || linked_to == &second);
}

#[tokio::test]
async fn attribute_mapping_custom_fields_and_invalid_mappings_rejected() {
    let w = World::new().await;
    let u = w.user(
        "Ada",
        "ada@contoso.com",
        json!({"jobTitle": "Engineer", "employeeId": "E-42", "businessPhones": ["+1 555"], "department": "R&D"}),
    );
    w.edit(|s| {
        s.mapping.fields.push(FieldMapping {
            target: "title".into(),
            source: "jobTitle".into(),
        });
        s.mapping.fields.push(FieldMapping {
            target: "badge".into(),
            source: "employeeId".into(),
        });
    })
    .await;
    w.sync().await;
    let fields = w.local(&u).await.unwrap().fields;
    let expected: BTreeMap<String, String> = [
        ("name", "Ada"),
        ("email", "ada@contoso.com"),
        ("phone", "+1 555"),
        ("department", "R&D"),
        ("title", "Engineer"),
        ("badge", "E-42"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(fields, expected);

    // Invalid mapping: rejected with a clear error, nothing saved.
    let before = w.settings().await;
    let mut bad = before.clone();
    bad.mapping.fields.push(FieldMapping {
        target: "x".into(),
        source: "jobtitle".into(),
    });
    let err = save_settings(&w.deps(), &w.tenant, bad, before.version)
        .await
        .unwrap_err();
    assert!(matches!(err, ProjectError::Settings(_)));
    assert!(
        err.to_string().contains("did you mean \"jobTitle\""),
        "{err}"
    );
    assert_eq!(w.settings().await, before);

    // A stale editor cannot overwrite a newer version.
    let stale = save_settings(&w.deps(), &w.tenant, before.clone(), before.version - 1)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, ProjectError::SettingsConflict { .. }),
        "{stale}"
    );
}

#[tokio::test]
async fn locally_deleted_users_are_recreated_only_when_configured() {
    let w = World::new().await;
    let u = w.user("Ada", "ada@contoso.com", json!({}));
    w.sync().await;
    let local = w.local(&u).await.unwrap();
    set_local_status(
        w.store.as_ref(),
        w.clock.as_ref(),
        &w.account,
        &local.local_id,
        LocalStatus::DeletedLocally,
    )
    .await
    .unwrap();
    w.edit(|s| s.provisioning.recreate_deleted_locally = false)
        .await;
    assert_eq!(w.status(&u).await, Some(LocalStatus::DeletedLocally));
    let run = w
        .edit(|s| s.provisioning.recreate_deleted_locally = true)
        .await;
    assert_eq!(run.provisioning.created, 1);
    assert_eq!(w.status(&u).await, Some(LocalStatus::Pending));
}

#[tokio::test]
async fn nightly_deprovisioning_waits_for_the_night() {
    let w = World::new().await;
    let u = w.user("Ada", "ada@contoso.com", json!({}));
    w.edit(|s| s.provisioning.deprovisioning = Deprovisioning::Nightly { hour_utc: 2 })
        .await;
    w.sync().await;
    w.dir().set_account_enabled(&u, false).unwrap();
    w.sync().await;
    assert_eq!(
        w.status(&u).await,
        Some(LocalStatus::Pending),
        "10:00, not the night"
    );
    w.clock.advance(chrono::Duration::hours(16)); // 02:00 the next day
    let run = w.sync().await;
    assert_eq!(run.provisioning.deactivated, 1);
    assert_eq!(w.status(&u).await, Some(LocalStatus::Deactivated));
}

#[tokio::test]
async fn preview_and_import_agree_exactly_in_every_mode() {
    for mode in [
        ImportMode::NewAndUpdated,
        ImportMode::OnlyUpdated,
        ImportMode::OnlyNew,
        ImportMode::SelectedNew {
            object_ids: BTreeSet::new(),
        },
    ] {
        let w = World::new().await;
        let known = w.user("Known", "known@contoso.com", json!({"department": "Ops"}));
        let leaver = w.user("Leaver", "leaver@contoso.com", json!({}));
        w.sync().await;
        // From now on runs keep the mirror current and apply nothing by themselves.
        w.edit(|s| s.provisioning.automatic = Automatic::Nothing)
            .await;
        let new_ids: Vec<String> = (0..4)
            .map(|i| w.user(&format!("N{i}"), &format!("n{i}@contoso.com"), json!({})))
            .collect();
        w.dir()
            .update_user(
                &known,
                json!({"department": "Sales"}).as_object().unwrap().clone(),
            )
            .unwrap();
        w.dir().set_account_enabled(&leaver, false).unwrap();
        let run = w.sync().await;
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(
            run.provisioning.created + run.provisioning.updated + run.provisioning.deactivated,
            0,
            "nothing applied automatically"
        );
        assert_eq!(w.local(&known).await.unwrap().fields["department"], "Ops");

        let mode = match mode {
            ImportMode::SelectedNew { .. } => ImportMode::SelectedNew {
                object_ids: new_ids[1..3].iter().cloned().collect(),
            },
            m => m,
        };
        let p = preview(&w.deps(), &w.tenant, mode.clone()).await.unwrap();
        let expected: Vec<_> = p.applied().cloned().collect();
        let report = import(&w.deps(), &w.tenant, mode.clone()).await.unwrap();
        assert_eq!(
            report.items, p.items,
            "{mode:?}: same decisions, same reasons"
        );
        assert_eq!(report.run.trigger, Trigger::Import);
        assert_eq!(report.run.provisioning, p.counts);
        let actions: Vec<(Action, &str)> = expected
            .iter()
            .map(|i| (i.action, i.object_id.as_str()))
            .collect();
        let (creates, updates) = match &mode {
            ImportMode::NewAndUpdated => (4, 2),
            ImportMode::OnlyUpdated => (0, 2),
            ImportMode::OnlyNew => (4, 0),
            ImportMode::SelectedNew { .. } => (2, 0),
        };
        assert_eq!(
            actions.iter().filter(|(a, _)| *a == Action::Create).count(),
            creates,
            "{mode:?}: {actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|(a, _)| a.is_update()).count(),
            updates,
            "{mode:?}: {actions:?}"
        );
        // What the preview promised is what the store now holds.
        for item in &expected {
            let local = w.local(&item.object_id).await.unwrap();
            assert_eq!(Some(local.status), item.status_after, "{mode:?}: {item:?}");
        }
        // After the import, the same preview has nothing left to apply for that mode.
        let after = preview(&w.deps(), &w.tenant, mode.clone()).await.unwrap();
        assert_eq!(after.applied().count(), 0, "{mode:?}: {:?}", after.items);
    }
}

async fn twenty_users(w: &World) -> Vec<String> {
    let ids: Vec<String> = (0..20)
        .map(|i| w.user(&format!("U{i}"), &format!("u{i}@contoso.com"), json!({})))
        .collect();
    let run = w.sync().await;
    assert_eq!(run.provisioning.created, 20);
    ids
}

#[tokio::test]
async fn breaker_holds_a_mass_deactivation_and_confirm_applies_it() {
    let w = World::new().await;
    let ids = twenty_users(&w).await;
    for id in &ids[..8] {
        w.dir().set_account_enabled(id, false).unwrap();
    }
    let before = w.all_local().await;
    let run = w.sync().await;
    let RunStatus::Held { hold } = &run.status else {
        panic!("expected a hold: {run:?}");
    };
    assert_eq!(hold.deactivations, 8);
    assert_eq!(hold.active_before, 20);
    assert!(hold.threshold.contains("10 %"), "{}", hold.threshold);
    assert_eq!(w.all_local().await, before, "held: nothing written");
    assert!(!run.is_finished());

    let out = confirm_held(&w.deps(), &w.tenant, &run.run_id, "admin@host")
        .await
        .unwrap();
    assert!(matches!(out, ProjectOutcome::Applied(c) if c.deactivated == 8));
    for id in &ids[..8] {
        assert_eq!(w.status(id).await, Some(LocalStatus::Deactivated));
    }
    let done = w
        .store
        .get_run(&w.tenant, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.provisioning.deactivated, 8);
    // Confirming twice is refused: the run is no longer held.
    let again = confirm_held(&w.deps(), &w.tenant, &run.run_id, "admin@host").await;
    assert!(matches!(again, Err(ProjectError::NotHeld { .. })));
}

#[tokio::test]
async fn rejecting_a_hold_changes_nothing_and_forces_a_full_read() {
    let w = World::new().await;
    let ids = twenty_users(&w).await;
    for id in &ids[..10] {
        w.dir().delete_user(id).unwrap();
    }
    let run = w.sync().await;
    assert!(matches!(run.status, RunStatus::Held { .. }), "{run:?}");
    let rejected = reject_held(&w.deps(), &w.tenant, &run.run_id, "admin@host")
        .await
        .unwrap();
    assert!(matches!(rejected.status, RunStatus::Rejected { .. }));
    for id in &ids {
        assert_eq!(w.status(id).await, Some(LocalStatus::Pending));
    }
    for stream in Stream::ALL {
        let (c, _) = w
            .store
            .load_cursor(&w.tenant, stream)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(c.state, CursorState::NeedsFull { .. }),
            "{stream}: {c:?}"
        );
    }
    // The full re-read still lacks them: the breaker asks again.
    let next = w.sync().await;
    assert!(matches!(next.status, RunStatus::Held { .. }), "{next:?}");
}

#[tokio::test]
async fn an_empty_full_read_is_held_even_below_the_threshold() {
    let w = World::new().await;
    let ids: Vec<String> = (0..3)
        .map(|i| w.user(&format!("U{i}"), &format!("u{i}@contoso.com"), json!({})))
        .collect();
    w.sync().await;
    for id in &ids {
        w.dir().delete_user(id).unwrap();
    }
    let run = w.sync_with(true).await;
    let RunStatus::Held { hold } = &run.status else {
        panic!("expected a hold: {run:?}");
    };
    assert!(hold.empty_read);
    for id in &ids {
        assert_eq!(w.status(id).await, Some(LocalStatus::Pending));
    }
}

#[tokio::test]
async fn a_failed_read_deactivates_nobody() {
    let w = World::new().await;
    let ids = twenty_users(&w).await;
    w.edit(|s| s.breaker.max_count = 1000.into()).await;
    for id in &ids[..2] {
        w.dir().delete_user(id).unwrap();
    }
    w.clock.advance(chrono::Duration::minutes(1));
    // Every users delta request fails from now on: the round cannot complete.
    w.emulator.faults().inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Unavailable {
                status: 503,
                retry_after_secs: None,
            },
        )
        .times(1000),
    );
    let opts = FetchOptions {
        trigger: Trigger::Scheduled,
        force_full: true,
        ..FetchOptions::default()
    };
    let _ = run_fetch(&w.fetch, &w.tenant, &opts).await;
    for m in w.queue.drain() {
        let _ = reconcile_page(&w.reconcile, &m).await;
    }
    for id in &ids {
        assert_eq!(
            w.status(id).await,
            Some(LocalStatus::Pending),
            "nobody deactivated"
        );
    }
    let runs = w.store.list_runs(&w.tenant, 1).await.unwrap();
    assert!(
        matches!(&runs[0].status, RunStatus::Failed { error } if !error.is_empty()),
        "{runs:?}"
    );
}

#[tokio::test]
async fn activity_log_records_every_run_with_trigger_and_counts() {
    let w = World::new().await;
    w.user("Ada", "ada@contoso.com", json!({}));
    let sync = w.sync().await;
    let edit = w.edit(|s| s.filters.include_disabled = true).await;
    let imp = import(&w.deps(), &w.tenant, ImportMode::OnlyNew)
        .await
        .unwrap()
        .run;
    let runs = w.store.list_runs(&w.tenant, 10).await.unwrap();
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    for r in [&sync, &edit, &imp] {
        assert!(ids.contains(r.run_id.as_str()));
        assert!(r.finished_at.is_some() && r.finished_at.unwrap() >= r.started_at);
        assert_eq!(r.status, RunStatus::Succeeded);
        assert!(r.settings_version.is_some());
    }
    assert_eq!(sync.trigger, Trigger::Scheduled);
    assert_eq!(sync.provisioning.created, 1);
    assert_eq!(edit.trigger, Trigger::SettingsChanged);
    assert_eq!(imp.trigger, Trigger::Import);
}

#[tokio::test]
async fn disconnected_connections_are_not_projected() {
    let w = World::new().await;
    w.user("Ada", "ada@contoso.com", json!({}));
    w.sync().await;
    let mut c = w.store.get_connection(&w.tenant).await.unwrap().unwrap();
    c.status = ConnectionStatus::Disconnected;
    w.store.put_connection(&c).await.unwrap();
    let err = preview(&w.deps(), &w.tenant, ImportMode::NewAndUpdated)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disconnected"), "{err}");
    assert_eq!(w.all_local().await.len(), 1, "synced users are kept");
}

#[tokio::test]
async fn a_daily_schedule_syncs_once_a_day_hourly_every_tick() {
    use entra_sync_core::memory::CollectingFetchRequests;
    use entra_sync_core::services::{ScheduleDeps, schedule_fetches};
    use entra_sync_core::settings::Schedule;
    let w = World::new().await;
    let requests = Arc::new(CollectingFetchRequests::new());
    let deps = DepsBuilder::on(&w.store)
        .clock(w.clock.clone())
        .schedule(requests.clone());
    let tick =
        |deps: ScheduleDeps| async move { schedule_fetches(&deps, Duration::ZERO).await.unwrap() };
    assert_eq!(tick(deps.clone()).await.requested, 1, "hourly by default");
    w.edit(|s| s.schedule = Schedule::Daily { hour_utc: 3 })
        .await;
    let r = tick(deps.clone()).await;
    assert_eq!((r.requested, r.not_due), (0, 1), "10:00 is not 03:00");
    w.clock.advance(chrono::Duration::hours(17)); // 03:00 the next day
    assert_eq!(tick(deps.clone()).await.requested, 1);
    assert_eq!(requests.take().len(), 2);
}

/// Local users whose writes fail while `failing` is set.
struct FlakyLocalUsers {
    inner: Arc<MemoryStore>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl LocalUserStore for FlakyLocalUsers {
    async fn get_local_user(
        &self,
        account: &AccountId,
        local_id: &str,
    ) -> Result<Option<LocalUser>, entra_sync_core::error::StoreError> {
        self.inner.get_local_user(account, local_id).await
    }
    async fn find_by_emails(
        &self,
        account: &AccountId,
        emails: &[String],
    ) -> Result<Vec<LocalUser>, entra_sync_core::error::StoreError> {
        self.inner.find_by_emails(account, emails).await
    }
    async fn find_linked(
        &self,
        tenant: &TenantId,
        object_ids: &[String],
    ) -> Result<Vec<LocalUser>, entra_sync_core::error::StoreError> {
        self.inner.find_linked(tenant, object_ids).await
    }
    async fn put_local_users(
        &self,
        users: &[LocalUser],
    ) -> Result<(), entra_sync_core::error::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(entra_sync_core::error::StoreError::Unavailable(
                "local user table unavailable".into(),
            ));
        }
        self.inner.put_local_users(users).await
    }
    async fn list_local_users(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<entra_sync_core::ports::Listing<LocalUser>, entra_sync_core::error::StoreError>
    {
        self.inner.list_local_users(account, after, limit).await
    }
}

#[tokio::test]
async fn a_failed_projection_closes_its_run_and_the_next_run_catches_up() {
    // The World's own store is a different one; the flaky wrapper writes into its own.
    let inner = Arc::new(MemoryStore::new());
    let flaky = Arc::new(FlakyLocalUsers {
        inner: inner.clone(),
        failing: std::sync::atomic::AtomicBool::new(true),
    });
    let w = World::with_local_users(Some(flaky.clone())).await;
    let u = w.user("Ada", "ada@contoso.com", json!({}));
    let opts = FetchOptions {
        trigger: Trigger::Scheduled,
        ..FetchOptions::default()
    };
    let report = run_fetch(&w.fetch, &w.tenant, &opts).await.unwrap();
    let mut failures = 0;
    for m in w.queue.drain() {
        failures += usize::from(reconcile_page(&w.reconcile, &m).await.is_err());
    }
    assert!(
        failures > 0,
        "the page that committed the run reports the failure"
    );
    let run = w
        .store
        .get_run(&w.tenant, &report.run_id)
        .await
        .unwrap()
        .unwrap();
    let RunStatus::Failed { error } = &run.status else {
        panic!("a failed projection must not leave the run running: {run:?}");
    };
    assert!(error.contains("updating users failed"), "{error}");
    assert!(
        inner
            .find_linked(&w.tenant, std::slice::from_ref(&u))
            .await
            .unwrap()
            .is_empty()
    );

    flaky
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let next = w.sync().await;
    assert_eq!(next.status, RunStatus::Succeeded);
    assert_eq!(next.provisioning.created, 1);
    assert_eq!(inner.find_linked(&w.tenant, &[u]).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Access follows the directory account, whatever the filters say (issue #16)

impl World {
    async fn lookup(&self, email: &str) -> entra_sync_core::services::SignInLookup {
        sign_in_lookup(
            self.store.as_ref(),
            self.store.as_ref(),
            &self.account,
            email,
        )
        .await
        .unwrap()
        .unwrap()
    }

    /// Two active users, Sal (Sales) and Har (HR), and a department filter that freezes Har.
    async fn frozen_hr(&self) -> (String, String) {
        self.edit(|s| s.provisioning.auto_activate_verified_domains = true)
            .await;
        let sales = self.user("Sal", "sal@contoso.com", json!({"department": "Sales"}));
        let hr = self.user("Har", "har@contoso.com", json!({"department": "HR"}));
        self.sync().await;
        let run = self
            .edit(|s| s.filters.departments = any(vec!["Sales".into()]))
            .await;
        assert_eq!(run.provisioning.frozen, 1, "{run:?}");
        let frozen = self.local(&hr).await.unwrap();
        assert!(frozen.frozen);
        assert_eq!(frozen.status, LocalStatus::Active);
        assert!(self.lookup("har@contoso.com").await.may_sign_in);
        (sales, hr)
    }
}

#[tokio::test]
async fn a_frozen_user_disabled_or_deleted_in_the_directory_loses_access() {
    // (what happens in the directory, the status it leads to, undo, the status after the undo)
    type Dir = fn(&TenantHandle, &str);
    let cases: Vec<(&str, Dir, LocalStatus, Dir, LocalStatus)> = vec![
        (
            "disabled",
            |d, id| d.set_account_enabled(id, false).unwrap(),
            LocalStatus::Deactivated,
            |d, id| d.set_account_enabled(id, true).unwrap(),
            LocalStatus::Active,
        ),
        (
            "deleted",
            |d, id| d.delete_user(id).unwrap(),
            LocalStatus::DisabledInDirectory,
            |d, id| d.restore_user(id).unwrap(),
            LocalStatus::Active,
        ),
    ];
    for (name, change, lost, undo, back) in cases {
        let w = World::new().await;
        let (_, hr) = w.frozen_hr().await;
        change(&w.dir(), &hr);
        let run = w.sync().await;
        assert_eq!(run.status, RunStatus::Succeeded, "{name}: {run:?}");
        let after = w.local(&hr).await.unwrap();
        assert_eq!(after.status, lost, "{name}: a frozen user loses access");
        assert!(after.frozen, "{name}: still frozen");
        assert_eq!(after.fields["department"], "HR", "{name}: attributes kept");
        let look = w.lookup("har@contoso.com").await;
        assert!(!look.may_sign_in, "{name}: {look:?}");
        // The directory gives the account back: so does the host product (still frozen).
        undo(&w.dir(), &hr);
        w.sync().await;
        let again = w.local(&hr).await.unwrap();
        assert_eq!(again.status, back, "{name}: access restored");
        assert!(again.frozen, "{name}");
        assert!(w.lookup("har@contoso.com").await.may_sign_in, "{name}");
    }
}

#[tokio::test]
async fn a_frozen_disabled_user_loses_access_through_preview_import_and_a_confirmed_hold() {
    // Preview and import (runs apply nothing by themselves).
    let w = World::new().await;
    let (_, hr) = w.frozen_hr().await;
    w.edit(|s| s.provisioning.automatic = Automatic::Nothing)
        .await;
    w.dir().set_account_enabled(&hr, false).unwrap();
    w.sync().await;
    assert_eq!(w.status(&hr).await, Some(LocalStatus::Active));
    // The account is disabled in the mirror: the lookup refuses it before any import.
    let look = w.lookup("har@contoso.com").await;
    assert!(!look.may_sign_in, "{look:?}");
    assert!(look.reason.unwrap().contains("disabled"));
    let p = preview(&w.deps(), &w.tenant, ImportMode::OnlyUpdated)
        .await
        .unwrap();
    let item = p.items.iter().find(|i| i.object_id == hr).unwrap();
    assert_eq!(item.action, Action::Deactivate, "{item:?}");
    assert_eq!(item.status_after, Some(LocalStatus::Deactivated));
    import(&w.deps(), &w.tenant, ImportMode::OnlyUpdated)
        .await
        .unwrap();
    assert_eq!(w.status(&hr).await, Some(LocalStatus::Deactivated));

    // A held run, confirmed.
    let w = World::new().await;
    let (sales, hr) = w.frozen_hr().await;
    w.edit(|s| {
        s.breaker.max_count = 0.into();
    })
    .await;
    w.dir().set_account_enabled(&hr, false).unwrap();
    w.dir().set_account_enabled(&sales, false).unwrap();
    let run = w.sync().await;
    assert!(matches!(run.status, RunStatus::Held { .. }), "{run:?}");
    assert!(
        !w.lookup("har@contoso.com").await.may_sign_in,
        "held, yet refused"
    );
    confirm_held(&w.deps(), &w.tenant, &run.run_id, "admin@host")
        .await
        .unwrap();
    assert_eq!(w.status(&hr).await, Some(LocalStatus::Deactivated));
    assert_eq!(w.status(&sales).await, Some(LocalStatus::Deactivated));
}

#[tokio::test]
async fn nightly_deprovisioning_never_lets_a_disabled_account_sign_in() {
    let w = World::new().await;
    w.edit(|s| {
        s.provisioning.auto_activate_verified_domains = true;
        s.provisioning.deprovisioning = Deprovisioning::Nightly { hour_utc: 2 };
    })
    .await;
    let u = w.user("Ada", "ada@contoso.com", json!({}));
    w.sync().await;
    assert!(w.lookup("ada@contoso.com").await.may_sign_in);
    w.dir().set_account_enabled(&u, false).unwrap();
    w.sync().await;
    assert_eq!(
        w.status(&u).await,
        Some(LocalStatus::Active),
        "waits for the night"
    );
    let look = w.lookup("ada@contoso.com").await;
    assert!(!look.may_sign_in, "{look:?}");
}

#[tokio::test]
async fn settings_naming_groups_the_mirror_does_not_know_are_refused() {
    let w = World::new().await;
    let staff = w
        .dir()
        .create_group(NewGroup::new("Staff", GroupKind::Security));
    let gone = w
        .dir()
        .create_group(NewGroup::new("Old team", GroupKind::Security));
    let u = w.user("Ada", "ada@contoso.com", json!({}));
    w.dir().add_member(&staff, &u).unwrap();
    w.sync().await;
    w.dir().delete_group(&gone).unwrap();
    w.sync().await;
    let late = w
        .dir()
        .create_group(NewGroup::new("Created later", GroupKind::Security));
    let before = w.settings().await;
    // (filter groups, role groups, what the problems must say)
    let cases: Vec<(Vec<String>, Vec<String>, Vec<String>)> = vec![
        (
            vec!["no-such-group".into()],
            vec![],
            vec![
                "filters.groups.values[0]".into(),
                "no-such-group".into(),
                "run a sync first".into(),
            ],
        ),
        (
            vec![late.clone()],
            vec![],
            vec![late.clone(), "run a sync first".into()],
        ),
        (
            vec!["staff".into()],
            vec![],
            vec![format!("is the name of group {staff}")],
        ),
        (
            vec![staff.clone()],
            vec![gone.clone(), "typo".into()],
            vec![
                format!("group_roles[0].group_id: group {gone}"),
                "deleted in the directory".into(),
                "group_roles[1].group_id".into(),
            ],
        ),
    ];
    for (filter, roles, expected) in cases {
        let mut s = before.clone();
        s.filters.groups = any(filter.clone());
        s.group_roles = roles
            .iter()
            .map(|g| GroupRole {
                group_id: g.clone(),
                role: "agent".into(),
            })
            .collect();
        let err = save_settings(&w.deps(), &w.tenant, s, before.version)
            .await
            .unwrap_err();
        let text = err.to_string();
        for e in &expected {
            assert!(text.contains(e.as_str()), "{filter:?} {roles:?}: {text}");
        }
        assert_eq!(w.settings().await, before, "nothing saved");
        assert_eq!(
            w.status(&u).await,
            Some(LocalStatus::Pending),
            "nobody frozen"
        );
    }
    // Known and present: saved.
    let run = w
        .edit(|s| {
            s.filters.groups = any(vec![staff.clone()]);
            s.group_roles = vec![GroupRole {
                group_id: staff.clone(),
                role: "agent".into(),
            }];
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(w.local(&u).await.unwrap().roles, vec!["agent"]);
}

async fn activate_in(
    w: &World,
    object_id: &str,
    force: bool,
) -> Result<LocalUser, entra_sync_core::services::LocalUserError> {
    let local_id = w.local(object_id).await.unwrap().local_id;
    entra_sync_core::services::activate_local_user(
        w.store.as_ref(),
        w.store.as_ref(),
        w.clock.as_ref(),
        &w.account,
        &local_id,
        force,
    )
    .await
}

#[tokio::test]
async fn users_activate_only_pending_users() {
    use entra_sync_core::services::LocalUserError;
    let w = World::new().await;
    let ids: Vec<String> = [
        "pending", "active", "disabled", "deleted", "local", "nightly",
    ]
    .iter()
    .map(|n| w.user(n, &format!("{n}@contoso.com"), json!({})))
    .collect();
    w.sync().await;
    activate_in(&w, &ids[1], false).await.unwrap();
    w.dir().set_account_enabled(&ids[2], false).unwrap();
    w.dir().delete_user(&ids[3]).unwrap();
    w.sync().await;
    // Disabled in the directory, not deactivated yet (nightly deprovisioning).
    w.edit(|s| s.provisioning.deprovisioning = Deprovisioning::Nightly { hour_utc: 2 })
        .await;
    w.dir().set_account_enabled(&ids[5], false).unwrap();
    w.sync().await;
    assert_eq!(w.status(&ids[5]).await, Some(LocalStatus::Pending));
    // Deactivated by the host product itself (its account is enabled).
    set_local_status(
        w.store.as_ref(),
        w.clock.as_ref(),
        &w.account,
        &w.local(&ids[4]).await.unwrap().local_id,
        LocalStatus::Deactivated,
    )
    .await
    .unwrap();

    // (user, force, activated?, the reason must say)
    let cases: Vec<(usize, bool, bool, &str)> = vec![
        (1, false, false, "already active"),
        (2, false, false, "disabled"),
        (2, true, false, "disabled"),
        (3, true, false, "deleted"),
        (5, true, false, "disabled"),
        (4, false, false, "deactivated in the host product"),
        (4, true, true, ""),
        (0, false, true, ""),
    ];
    for (i, force, ok, why) in cases {
        let before = w.local(&ids[i]).await.unwrap();
        match activate_in(&w, &ids[i], force).await {
            Ok(u) => {
                assert!(ok, "user {i} (force {force}) activated: {u:?}");
                assert_eq!(u.status, LocalStatus::Active);
                assert_eq!(w.status(&ids[i]).await, Some(LocalStatus::Active));
            }
            Err(e @ LocalUserError::NotActivatable { .. }) => {
                assert!(!ok, "user {i} (force {force}): {e}");
                assert!(e.to_string().contains(why), "user {i}: {e}");
                assert_eq!(w.local(&ids[i]).await.unwrap(), before, "nothing changed");
            }
            Err(e) => panic!("user {i}: {e}"),
        }
    }
}

#[tokio::test]
async fn a_held_run_lets_reported_leavers_go_holds_the_missing_and_tells_its_age() {
    use entra_sync_core::events::ChangeKind;
    use entra_sync_core::model::{Presence, RemovalReason};
    use entra_sync_core::ports::{Clock, MirrorStore};
    let w = World::new().await;
    let ids: Vec<String> = (0..30)
        .map(|i| w.user(&format!("U{i}"), &format!("u{i}@contoso.com"), json!({})))
        .collect();
    w.edit(|s| {
        s.breaker.max_count = 5.into();
        s.breaker.max_percent = 100;
    })
    .await;
    w.sync().await;
    // Three leavers disabled in Entra (reported), eight users the next full read does not
    // return (inferred: they could as well be a bad read), one newcomer.
    let (leavers, missing) = (&ids[..3], &ids[3..11]);
    for id in leavers {
        w.dir().set_account_enabled(id, false).unwrap();
    }
    for id in missing {
        w.dir().delete_user(id).unwrap();
        w.dir().purge_user(id).unwrap();
    }
    let newcomer = w.user("New", "new@contoso.com", json!({}));
    w.events.take();
    let run = w.sync_with(true).await;
    let RunStatus::Held { hold } = &run.status else {
        panic!("expected a hold: {run:?}");
    };
    let swept = w
        .store
        .get_users(&w.tenant, missing)
        .await
        .unwrap()
        .into_iter()
        .all(|u| {
            u.presence
                == Presence::Removed {
                    reason: RemovalReason::MissingFromFullRead,
                }
        });
    assert!(swept, "the full read swept them");
    assert_eq!(hold.applied_deactivations, 3, "{hold:?}");
    assert_eq!(hold.deactivations, 8, "{hold:?}");
    assert_eq!(run.provisioning.held, 8);
    assert_eq!(run.provisioning.deactivated, 3);
    assert_eq!(run.provisioning.created, 1, "creations flow");
    for id in leavers {
        assert_eq!(w.status(id).await, Some(LocalStatus::Deactivated));
    }
    for id in missing {
        assert_eq!(w.status(id).await, Some(LocalStatus::Pending), "held");
    }
    assert!(w.status(&newcomer).await.is_some());
    let first_held_at = hold.held_at;
    assert_eq!(hold.since(), first_held_at);
    let held = |events: Vec<entra_sync_core::events::ChangeEvent>| {
        events
            .into_iter()
            .find_map(|e| match e.kind {
                ChangeKind::SyncHeld {
                    run_id,
                    deactivations_held,
                    held_since,
                    held_for_seconds,
                    ..
                } => Some((run_id, deactivations_held, held_since, held_for_seconds)),
                _ => None,
            })
            .expect("a held run sends sync_held")
    };
    assert_eq!(
        held(w.events.take()),
        (run.run_id.clone(), 8, first_held_at, 0)
    );

    // Three hours later the question is still open: the next run holds again, supersedes the
    // first and says how long it has been waiting.
    w.clock.advance(chrono::Duration::hours(3));
    let next = w.sync().await;
    let RunStatus::Held { hold: again } = &next.status else {
        panic!("expected a hold: {next:?}");
    };
    assert_eq!(again.since(), first_held_at);
    assert_eq!(again.held_for(w.clock.now()), chrono::Duration::hours(3));
    assert!(
        again.describe_age(w.clock.now()).contains("for 3 h 0 min"),
        "{}",
        again.describe_age(w.clock.now())
    );
    let (run_id, _, since, seconds) = held(w.events.take());
    assert_eq!(
        (run_id, since, seconds),
        (next.run_id.clone(), first_held_at, 3 * 3600)
    );
    let first = w
        .store
        .get_run(&w.tenant, &run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(first.status, RunStatus::Rejected { .. }),
        "{first:?}"
    );

    confirm_held(&w.deps(), &w.tenant, &next.run_id, "admin@host")
        .await
        .unwrap();
    for id in missing {
        assert_eq!(w.status(id).await, Some(LocalStatus::DisabledInDirectory));
    }
}

#[tokio::test]
async fn a_mass_disable_in_the_directory_is_still_held_whole() {
    let w = World::new().await;
    let ids = twenty_users(&w).await;
    let newcomer = w.user("New", "new@contoso.com", json!({}));
    for id in &ids[..8] {
        w.dir().set_account_enabled(id, false).unwrap();
    }
    let run = w.sync().await;
    let RunStatus::Held { hold } = &run.status else {
        panic!("expected a hold: {run:?}");
    };
    // Reported, but more than the threshold on their own: every one waits.
    assert_eq!((hold.deactivations, hold.applied_deactivations), (8, 0));
    for id in &ids[..8] {
        assert_eq!(w.status(id).await, Some(LocalStatus::Pending));
    }
    assert!(w.status(&newcomer).await.is_some(), "the rest flows");
}
