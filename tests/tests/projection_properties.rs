//! Property tests of the projection (mirror -> host product's users through the connection's
//! settings), on a `MemoryStore` whose mirror is written directly (no emulator: each case costs
//! milliseconds).
//!
//! 1. Idempotence: a second projection with the same settings over the same mirror changes
//!    nothing and leaves the same local users.
//! 2. Preview == import: an import applies exactly what the preview in the same mode listed,
//!    with the same counts, and the statuses it announced.
//! 3. Never duplicated, never deleted: across settings edits, directory changes and host-side
//!    changes, no two live local users share an email in an account, no local user disappears,
//!    and a linked local user keeps its local id. Access never outlives the directory account:
//!    the sign-in lookup refuses a disabled or deleted account, and a run that applies the rules
//!    leaves no such user pending or active, frozen by the filters or not.
//! 4. Breaker: with the default threshold, a run that would deactivate more than it allows is
//!    held; it applies what takes no access away, and the deactivations Graph reported for each
//!    user (disabled, deleted) when they alone stay within the threshold; it holds the ones
//!    inferred from a read (absent from a full read); an empty read writes nothing.
//! 5. Fuzz: `ConnectionSettings::from_json` never panics, and an error always says something.
//!
//! Failing seeds are persisted to `tests/proptest-regressions/projection_properties.txt` and
//! replayed first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::TimeZone;
use entra_sync_core::filters::{LicenseStatus, ScopeFilters, Section, UserType};
use entra_sync_core::mapping::{AttributeMapping, FieldMapping, SOURCE_ATTRIBUTES};
use entra_sync_core::memory::{ManualClock, MemoryStore};
use entra_sync_core::model::{
    AccountId, Connection, ConnectionStatus, DirectoryUser, MemberRef, MemberType, Presence,
    RemovalReason, StoredMembership, StoredUser, TenantId, VerifiedDomain, Version,
};
use entra_sync_core::model::{DirectoryGroup, StoredGroup};
use entra_sync_core::ports::{
    Clock, ConnectionStore, LocalUserStore, MirrorStore, RunStore, SettingsStore,
};
use entra_sync_core::provision::{LocalStatus, LocalUser};
use entra_sync_core::run::{ProvisioningCounts, SyncRun, Trigger};
use entra_sync_core::services::{
    ImportMode, LocalUserError, ProjectDeps, ProjectError, ProjectOutcome, activate_local_user,
    add_local_user, import, load_settings, preview, project_run, save_settings, set_local_status,
    sign_in_lookup,
};
use entra_sync_core::settings::{
    Automatic, BreakerThreshold, ConnectionSettings, Deprovisioning, GroupRole, ProvisioningRules,
};
use entra_sync_core::testing::DepsBuilder;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};
use serde_json::Value;

const ACCOUNT: &str = "acct-1";
const TENANT: &str = "tenant-1";

/// Every property keeps to at most this many cases (CI stays fast).
const CASES: u32 = 64;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/projection_properties.txt",
        ))),
        max_shrink_iters: 500,
        ..Config::default()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

// ---------------------------------------------------------------------------------------------
// The directory

const DOMAINS: &[&str] = &[
    "contoso.com",
    "CONTOSO.com",
    "fabrikam.com",
    "northwind.com",
];
const DEPARTMENTS: &[&str] = &["Sales", "sales ", "HR", "R&D", "Legal"];
const OFFICES: &[&str] = &["Paris", "BERLIN", "Oslo"];
const TITLES: &[&str] = &["Engineer", "Manager", ""];
/// Groups of the mirror; `g3` is a member of `g1` (nested), `g-gone` is deleted.
const GROUPS: &[&str] = &["g1", "g2", "g3", "g-gone"];
/// Local parts of emails: a small pool, so emails collide now and then.
const LOCALS: u8 = 40;

#[derive(Clone, Debug)]
struct UserSpec {
    local: u8,
    domain: usize,
    /// The email is in `mail` (else only in the UPN).
    has_mail: bool,
    department: Option<usize>,
    office: Option<usize>,
    /// None: no userType; Some(true): Guest; Some(false): Member.
    guest: Option<bool>,
    enabled: Option<bool>,
    licensed: bool,
    title: Option<usize>,
    phone: bool,
    /// Bit i: direct member of GROUPS[i].
    groups: u8,
}

fn email(local: u8, domain: usize) -> String {
    format!("User{local}@{}", DOMAINS[domain])
}

impl UserSpec {
    fn to_user(&self, id: &str) -> DirectoryUser {
        let address = email(self.local, self.domain);
        DirectoryUser {
            id: id.to_owned(),
            display_name: Some(format!("User {}", self.local)),
            mail: self.has_mail.then(|| address.clone()),
            user_principal_name: Some(match self.has_mail {
                true => format!("{id}@contoso.onmicrosoft.com"),
                false => address,
            }),
            department: self.department.map(|d| DEPARTMENTS[d].to_owned()),
            office_location: self.office.map(|o| OFFICES[o].to_owned()),
            user_type: self
                .guest
                .map(|g| if g { "Guest" } else { "Member" }.to_owned()),
            account_enabled: self.enabled,
            license_sku_ids: match self.licensed {
                true => vec!["sku-e3".to_owned()],
                false => vec![],
            },
            job_title: self.title.map(|t| TITLES[t].to_owned()),
            business_phones: match self.phone {
                true => vec![format!("+33 1 {}", self.local)],
                false => vec![],
            },
            employee_id: Some(format!("E-{id}")),
            ..Default::default()
        }
    }
}

fn user_spec() -> impl Strategy<Value = UserSpec> {
    (
        (0..LOCALS, 0..DOMAINS.len(), prop::bool::weighted(0.8)),
        (
            prop::option::of(0..DEPARTMENTS.len()),
            prop::option::of(0..OFFICES.len()),
            prop::option::weighted(0.8, prop::bool::weighted(0.2)),
        ),
        (
            prop::option::weighted(0.9, prop::bool::weighted(0.8)),
            any::<bool>(),
            prop::option::of(0..TITLES.len()),
            any::<bool>(),
            0u8..16,
        ),
    )
        .prop_map(
            |(
                (local, domain, has_mail),
                (department, office, guest),
                (enabled, licensed, title, phone, groups),
            )| UserSpec {
                local,
                domain,
                has_mail,
                department,
                office,
                guest,
                enabled,
                licensed,
                title,
                phone,
                groups,
            },
        )
}

/// A local user that exists before any sync (matching may link it).
#[derive(Clone, Debug)]
struct PreExisting {
    local: u8,
    domain: usize,
    status: LocalStatus,
}

fn pre_existing() -> impl Strategy<Value = Vec<PreExisting>> {
    prop::collection::vec(
        (
            0..LOCALS,
            0..DOMAINS.len(),
            prop::sample::select(vec![
                LocalStatus::Pending,
                LocalStatus::Active,
                LocalStatus::Deactivated,
            ]),
        )
            .prop_map(|(local, domain, status)| PreExisting {
                local,
                domain,
                status,
            }),
        0..6,
    )
}

fn uid(i: usize) -> String {
    format!("u{i:03}")
}

/// A world: one connected tenant of account `acct-1` (`contoso.com` verified), its mirror in a
/// `MemoryStore`, a manual clock at 10:00 UTC.
struct World {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    tenant: TenantId,
    account: AccountId,
    /// The last mirror version written (every write uses a newer one).
    cycle: u64,
    runs: u64,
    /// The directory as the mirror holds it.
    users: Vec<StoredUser>,
}

impl World {
    async fn new(users: &[UserSpec], locals: &[PreExisting]) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .unwrap(),
        ));
        let tenant = TenantId::new(TENANT);
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
                connected_at: clock.now(),
                granted_permissions: Default::default(),
            })
            .await
            .unwrap();
        let v = Version::new(1, 0);
        let stored: Vec<StoredUser> = users
            .iter()
            .enumerate()
            .map(|(i, s)| StoredUser {
                user: s.to_user(&uid(i)),
                presence: Presence::Present,
                version: v,
            })
            .collect();
        store.put_users(&tenant, &stored).await.unwrap();
        let groups: Vec<StoredGroup> = GROUPS
            .iter()
            .map(|g| StoredGroup {
                group: DirectoryGroup {
                    id: (*g).to_owned(),
                    display_name: Some(format!("Group {g}")),
                    security_enabled: Some(true),
                    ..Default::default()
                },
                presence: match *g {
                    "g-gone" => Presence::Removed {
                        reason: RemovalReason::SoftDeleted,
                    },
                    _ => Presence::Present,
                },
                version: v,
            })
            .collect();
        store.put_groups(&tenant, &groups).await.unwrap();
        let edge = |group: &str, id: &str, member_type| StoredMembership {
            group_id: group.to_owned(),
            member: MemberRef {
                id: id.to_owned(),
                member_type,
            },
            present: true,
            version: v,
        };
        let mut edges = vec![edge("g1", "g3", MemberType::Group)];
        for (i, s) in users.iter().enumerate() {
            for (bit, g) in GROUPS.iter().enumerate() {
                if s.groups & (1 << bit) != 0 {
                    edges.push(edge(g, &uid(i), MemberType::User));
                }
            }
        }
        store.put_memberships(&tenant, &edges).await.unwrap();
        for p in locals {
            match add_local_user(
                store.as_ref(),
                clock.as_ref(),
                &account,
                &email(p.local, p.domain),
                p.status,
            )
            .await
            {
                Ok(_) | Err(LocalUserError::DuplicateEmail(_)) => {}
                Err(e) => panic!("add_local_user: {e}"),
            }
        }
        Self {
            store,
            clock,
            tenant,
            account,
            cycle: 1,
            runs: 0,
            users: stored,
        }
    }

    fn deps(&self) -> ProjectDeps {
        DepsBuilder::on(&self.store)
            .clock(self.clock.clone())
            .project()
    }

    /// Store settings without projecting (the next run or import uses them).
    async fn put_settings(&self, settings: &ConnectionSettings) {
        let current = load_settings(self.store.as_ref(), &self.tenant)
            .await
            .unwrap()
            .version;
        let mut s = settings.clone();
        s.version = current + 1;
        self.store
            .put_settings(&self.tenant, &s, current)
            .await
            .unwrap();
    }

    /// A scheduled run whose reads are complete: its projection.
    async fn project(&mut self) -> (ProjectOutcome, SyncRun) {
        self.runs += 1;
        self.clock.advance(chrono::Duration::seconds(1));
        let run = SyncRun::new(
            format!("run-{}", self.runs),
            self.tenant.clone(),
            Trigger::Scheduled,
            self.clock.now(),
        );
        self.store.create_run(&run).await.unwrap();
        let outcome = project_run(&self.deps(), &self.tenant, &run.run_id)
            .await
            .unwrap();
        let run = self
            .store
            .get_run(&self.tenant, &run.run_id)
            .await
            .unwrap()
            .unwrap();
        (outcome, run)
    }

    async fn local_users(&self) -> Vec<LocalUser> {
        let listing = self
            .store
            .list_local_users(&self.account, None, 100_000)
            .await
            .unwrap();
        assert!(listing.next.is_none());
        listing.items
    }

    /// Apply one change to the directory (a mirror write with a newer version) or to the host
    /// product's users.
    async fn apply(&mut self, change: &Change) {
        let n = self.users.len();
        if n == 0 {
            return;
        }
        let mut write = |f: &mut dyn FnMut(&mut StoredUser), i: usize| -> StoredUser {
            self.cycle += 1;
            let u = &mut self.users[i % n];
            f(u);
            u.version = Version::new(self.cycle, 0);
            u.clone()
        };
        let written = match change {
            Change::Disable(i) => write(&mut |u| u.user.account_enabled = Some(false), *i),
            Change::Enable(i) => write(&mut |u| u.user.account_enabled = Some(true), *i),
            Change::Delete(i) => write(
                &mut |u| {
                    u.presence = Presence::Removed {
                        reason: RemovalReason::SoftDeleted,
                    }
                },
                *i,
            ),
            Change::Missing(i) => write(
                &mut |u| {
                    u.presence = Presence::Removed {
                        reason: RemovalReason::MissingFromFullRead,
                    }
                },
                *i,
            ),
            Change::Restore(i) => write(&mut |u| u.presence = Presence::Present, *i),
            Change::Rename(i, local, domain) => write(
                &mut |u| {
                    let address = email(*local, *domain);
                    match u.user.mail.is_some() {
                        true => u.user.mail = Some(address),
                        false => u.user.user_principal_name = Some(address),
                    }
                },
                *i,
            ),
            Change::Department(i, d) => write(
                &mut |u| u.user.department = d.map(|d| DEPARTMENTS[d].to_owned()),
                *i,
            ),
            Change::LocalStatus(i, status) => {
                let locals = self.local_users().await;
                if let Some(l) = locals.get(i % locals.len().max(1)) {
                    let changed = match status {
                        // The host product activates a pending user, or (explicitly) one it
                        // deactivated itself; the rules refuse the others.
                        LocalStatus::Active => activate_local_user(
                            self.store.as_ref(),
                            self.store.as_ref(),
                            self.clock.as_ref(),
                            &self.account,
                            &l.local_id,
                            true,
                        )
                        .await
                        .map(|_| ()),
                        s => set_local_status(
                            self.store.as_ref(),
                            self.clock.as_ref(),
                            &self.account,
                            &l.local_id,
                            *s,
                        )
                        .await
                        .map(|_| ()),
                    };
                    match changed {
                        Ok(()) | Err(LocalUserError::NotActivatable { .. }) => {}
                        Err(e) => panic!("local status change: {e}"),
                    }
                }
                return;
            }
        };
        let landed = self
            .store
            .put_users(&self.tenant, std::slice::from_ref(&written))
            .await
            .unwrap();
        assert_eq!(landed, 1, "a newer version always lands");
    }
}

/// A change to the directory, or one the host product makes to its own users.
#[derive(Clone, Debug)]
enum Change {
    Disable(usize),
    Enable(usize),
    Delete(usize),
    /// Absent from a complete full read (swept).
    Missing(usize),
    Restore(usize),
    /// New email (mail, or UPN when the user has no mail): local part, domain.
    Rename(usize, u8, usize),
    Department(usize, Option<usize>),
    /// The host product sets a local user's status (activation, local deletion).
    LocalStatus(usize, LocalStatus),
}

fn change() -> impl Strategy<Value = Change> {
    let i = 0usize..64;
    prop_oneof![
        3 => i.clone().prop_map(Change::Disable),
        2 => i.clone().prop_map(Change::Enable),
        2 => i.clone().prop_map(Change::Delete),
        1 => i.clone().prop_map(Change::Missing),
        1 => i.clone().prop_map(Change::Restore),
        2 => (i.clone(), 0..LOCALS, 0..DOMAINS.len()).prop_map(|(i, l, d)| Change::Rename(i, l, d)),
        1 => (i.clone(), prop::option::of(0..DEPARTMENTS.len()))
            .prop_map(|(i, d)| Change::Department(i, d)),
        2 => (
            i,
            prop::sample::select(vec![
                LocalStatus::Active,
                LocalStatus::Deactivated,
                LocalStatus::DeletedLocally
            ])
        )
            .prop_map(|(i, s)| Change::LocalStatus(i, s)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Settings

fn text_section(pool: &'static [&'static str]) -> impl Strategy<Value = Section<String>> {
    prop_oneof![
        Just(Section::All),
        prop::sample::subsequence(pool.to_vec(), 1..=pool.len()).prop_map(|v| Section::AnyOf {
            values: v.into_iter().map(str::to_owned).collect()
        }),
    ]
}

fn enum_section<T: Clone + std::fmt::Debug + 'static>(
    pool: Vec<T>,
) -> impl Strategy<Value = Section<T>> {
    let n = pool.len();
    prop_oneof![
        Just(Section::All),
        prop::sample::subsequence(pool, 1..=n).prop_map(|values| Section::AnyOf { values }),
    ]
}

fn filters() -> impl Strategy<Value = ScopeFilters> {
    (
        text_section(&["g1", "g2", "g3", "g-gone"]),
        text_section(&["contoso.com", "FABRIKAM.com", "northwind.com"]),
        enum_section(vec![UserType::Member, UserType::Guest]),
        text_section(&["Paris", "berlin"]),
        text_section(&["sales", "HR", "R&D", "Finance"]),
        enum_section(vec![LicenseStatus::Licensed, LicenseStatus::Unlicensed]),
        any::<bool>(),
    )
        .prop_map(
            |(
                groups,
                email_domains,
                user_types,
                office_locations,
                departments,
                license_status,
                include_disabled,
            )| ScopeFilters {
                groups,
                email_domains,
                user_types,
                office_locations,
                departments,
                license_status,
                include_disabled,
            },
        )
}

/// A filter that often admits most of the directory (the interesting cases need users in
/// scope): each section restricts with probability 1/4.
fn loose_filters() -> impl Strategy<Value = ScopeFilters> {
    prop_oneof![
        1 => filters(),
        2 => (
            text_section(&["g1", "g2", "g3", "g-gone"]),
            text_section(&["sales", "HR", "R&D", "Finance"]),
            any::<bool>(),
            prop::bool::weighted(0.3),
        )
            .prop_map(|(groups, departments, include_disabled, all_types)| {
                let mut f = ScopeFilters {
                    include_disabled,
                    ..ScopeFilters::default()
                };
                if all_types {
                    f.user_types = Section::All;
                }
                // One restricting section at most, half of the time.
                match (&groups, &departments) {
                    (Section::AnyOf { .. }, _) => f.groups = groups,
                    (_, Section::AnyOf { .. }) => f.departments = departments,
                    _ => {}
                }
                f
            }),
    ]
}

fn mapping() -> impl Strategy<Value = AttributeMapping> {
    (
        prop::option::of(prop::sample::select(SOURCE_ATTRIBUTES.to_vec())),
        any::<bool>(),
    )
        .prop_map(|(extra, drop_phone)| {
            let mut m = AttributeMapping::default();
            if drop_phone {
                m.fields.retain(|f| f.target != "phone");
            }
            if let Some(source) = extra {
                m.fields.push(FieldMapping {
                    target: "extra".to_owned(),
                    source: source.to_owned(),
                });
            }
            m
        })
}

fn group_roles() -> impl Strategy<Value = Vec<GroupRole>> {
    let pool: Vec<GroupRole> = [
        ("g1", "admin"),
        ("g2", "editor"),
        ("g3", "admin"),
        ("g3", "auditor"),
        ("g-gone", "viewer"),
    ]
    .iter()
    .map(|(g, r)| GroupRole {
        group_id: (*g).to_owned(),
        role: (*r).to_owned(),
    })
    .collect();
    prop::sample::subsequence(pool, 0..=5)
}

fn provisioning(automatic: BoxedStrategy<Automatic>) -> impl Strategy<Value = ProvisioningRules> {
    (
        automatic,
        any::<bool>(),
        prop_oneof![
            3 => Just(Deprovisioning::EveryRun),
            1 => Just(Deprovisioning::Nightly { hour_utc: 10 }),
            1 => Just(Deprovisioning::Nightly { hour_utc: 3 }),
        ],
        prop::bool::weighted(0.7),
    )
        .prop_map(
            |(automatic, auto_activate_verified_domains, deprovisioning, recreate)| {
                ProvisioningRules {
                    automatic,
                    auto_activate_verified_domains,
                    deprovisioning,
                    recreate_deleted_locally: recreate,
                }
            },
        )
}

fn any_automatic() -> BoxedStrategy<Automatic> {
    prop_oneof![
        2 => Just(Automatic::Everything),
        1 => Just(Automatic::UpdatesOnly),
        1 => Just(Automatic::Nothing),
    ]
    .boxed()
}

/// The breaker never holds (except on an empty read, which no threshold changes).
fn never_holds() -> BreakerThreshold {
    BreakerThreshold {
        max_count: u64::MAX.into(),
        max_percent: 100,
        min_count_for_percent: u64::MAX,
    }
}

/// Valid settings (checked by the properties: `validate` must accept them).
fn settings_with(automatic: BoxedStrategy<Automatic>) -> impl Strategy<Value = ConnectionSettings> {
    (
        loose_filters(),
        mapping(),
        provisioning(automatic),
        group_roles(),
    )
        .prop_map(
            |(filters, mapping, provisioning, group_roles)| ConnectionSettings {
                filters,
                mapping,
                provisioning,
                group_roles,
                breaker: never_holds(),
                ..ConnectionSettings::default()
            },
        )
}

fn settings() -> impl Strategy<Value = ConnectionSettings> {
    settings_with(any_automatic())
}

fn directory() -> impl Strategy<Value = Vec<UserSpec>> {
    prop::collection::vec(user_spec(), 1..40)
}

fn check_valid(s: &ConnectionSettings) -> Result<(), TestCaseError> {
    prop_assert!(
        s.validate().is_ok(),
        "generated settings are invalid: {:?}",
        s.validate()
    );
    Ok(())
}

fn changes_made(c: &ProvisioningCounts) -> u64 {
    c.created
        + c.linked
        + c.updated
        + c.deactivated
        + c.reactivated
        + c.disabled_in_directory
        + c.frozen
}

// ---------------------------------------------------------------------------------------------
// 1. Idempotence

#[derive(Clone, Debug)]
struct IdempotenceCase {
    users: Vec<UserSpec>,
    locals: Vec<PreExisting>,
    /// Settings of an earlier projection, and directory changes since (so the second settings
    /// meet frozen, deactivated, deleted and renamed users too).
    earlier: Option<(ConnectionSettings, Vec<Change>)>,
    settings: ConnectionSettings,
}

fn idempotence_case() -> impl Strategy<Value = IdempotenceCase> {
    (
        directory(),
        pre_existing(),
        prop::option::of((settings(), prop::collection::vec(change(), 0..8))),
        settings(),
    )
        .prop_map(|(users, locals, earlier, settings)| IdempotenceCase {
            users,
            locals,
            earlier,
            settings,
        })
}

async fn idempotence(case: IdempotenceCase) -> Result<(), TestCaseError> {
    check_valid(&case.settings)?;
    let mut w = World::new(&case.users, &case.locals).await;
    if let Some((earlier, changes)) = &case.earlier {
        check_valid(earlier)?;
        w.put_settings(earlier).await;
        w.project().await;
        for c in changes {
            w.apply(c).await;
        }
    }
    w.put_settings(&case.settings).await;
    let before_first = w.local_users().await;
    let (first, _) = w.project().await;
    let after_first = w.local_users().await;
    let (second, run) = w.project().await;
    if let ProjectOutcome::Held(hold) = &first {
        // The breaker never trips here; only an empty read (every user deleted) holds, and
        // then every run holds the same way, writing nothing.
        prop_assert!(hold.empty_read, "held: {:?}", hold);
        prop_assert!(w.users.iter().all(|u| !u.presence.is_present()));
        prop_assert!(matches!(second, ProjectOutcome::Held(_)), "{:?}", second);
        prop_assert_eq!(after_first, w.local_users().await);
        return Ok(());
    }
    let ProjectOutcome::Applied(counts) = second else {
        return Err(TestCaseError::fail(format!("second run: {second:?}")));
    };
    prop_assert_eq!(counts, run.provisioning);
    let after_second = w.local_users().await;
    if counts.created + counts.linked > 0 && changes_made(&counts) == counts.created + counts.linked
    {
        // Known limitation (not idempotence proper): an email handed over inside one delta. A
        // directory user whose email another (linked) local user held when the first run read
        // it is skipped; that holder is renamed away in the same run, so the second run
        // creates or links it. Only that case is let through, and a third run is quiet.
        let renamed_away = |email: &str| {
            before_first.iter().any(|b| {
                b.email == email
                    && b.link.is_some()
                    && after_first
                        .iter()
                        .any(|a| a.local_id == b.local_id && a.email != email)
            })
        };
        for u in &after_second {
            if !after_first.contains(u) {
                prop_assert!(
                    renamed_away(&u.email),
                    "the second run wrote {:?} ({:?})",
                    u,
                    counts
                );
            }
        }
        let (third, _) = w.project().await;
        prop_assert!(
            matches!(third, ProjectOutcome::Applied(c) if changes_made(&c) == 0),
            "third run: {:?}",
            third
        );
        prop_assert_eq!(after_second, w.local_users().await);
        return Ok(());
    }
    prop_assert_eq!(
        changes_made(&counts),
        0,
        "the second run changed something: {:?}",
        counts
    );
    prop_assert_eq!(after_first, after_second);
    Ok(())
}

#[test]
fn a_second_projection_changes_nothing() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&idempotence_case(), |case| block_on(idempotence(case)))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Preview == import

#[derive(Clone, Debug)]
struct ImportCase {
    users: Vec<UserSpec>,
    locals: Vec<PreExisting>,
    /// Settings of an earlier run (what the import changes from), and directory changes since.
    earlier: ConnectionSettings,
    changes: Vec<Change>,
    settings: ConnectionSettings,
    mode: ModeSpec,
}

#[derive(Clone, Debug)]
enum ModeSpec {
    /// Indices (modulo the directory size) of the users selected.
    SelectedNew(Vec<usize>),
    NewAndUpdated,
    OnlyUpdated,
    OnlyNew,
}

impl ModeSpec {
    fn mode(&self, n: usize) -> ImportMode {
        match self {
            ModeSpec::SelectedNew(picks) => ImportMode::SelectedNew {
                object_ids: picks.iter().map(|i| uid(i % n)).collect(),
            },
            ModeSpec::NewAndUpdated => ImportMode::NewAndUpdated,
            ModeSpec::OnlyUpdated => ImportMode::OnlyUpdated,
            ModeSpec::OnlyNew => ImportMode::OnlyNew,
        }
    }
}

fn import_case() -> impl Strategy<Value = ImportCase> {
    (
        directory(),
        pre_existing(),
        settings(),
        prop::collection::vec(change(), 0..10),
        settings(),
        prop_oneof![
            prop::collection::vec(0usize..64, 0..12).prop_map(ModeSpec::SelectedNew),
            Just(ModeSpec::NewAndUpdated),
            Just(ModeSpec::OnlyUpdated),
            Just(ModeSpec::OnlyNew),
        ],
    )
        .prop_map(
            |(users, locals, earlier, changes, settings, mode)| ImportCase {
                users,
                locals,
                earlier,
                changes,
                settings,
                mode,
            },
        )
}

async fn preview_equals_import(case: ImportCase) -> Result<(), TestCaseError> {
    check_valid(&case.earlier)?;
    check_valid(&case.settings)?;
    let mut w = World::new(&case.users, &case.locals).await;
    w.put_settings(&case.earlier).await;
    w.project().await;
    for c in &case.changes {
        w.apply(c).await;
    }
    w.put_settings(&case.settings).await;
    let mode = case.mode.mode(case.users.len());
    let deps = w.deps();
    let shown = preview(&deps, &w.tenant, mode.clone()).await.unwrap();
    let before = w.local_users().await;
    prop_assert_eq!(&before, &w.local_users().await, "a preview writes nothing");
    let report = import(&deps, &w.tenant, mode).await.unwrap();
    prop_assert_eq!(&report.items, &shown.items);
    prop_assert_eq!(report.run.provisioning, shown.counts);
    let after: HashMap<String, LocalUser> = w
        .local_users()
        .await
        .into_iter()
        .map(|u| (u.local_id.clone(), u))
        .collect();
    for item in shown.applied() {
        let id = item.local_id.as_ref();
        prop_assert!(
            id.is_some(),
            "applied item without a local user: {:?}",
            item
        );
        let stored = after.get(id.unwrap());
        prop_assert!(stored.is_some(), "{:?}: no local user afterwards", item);
        prop_assert_eq!(
            Some(stored.unwrap().status),
            item.status_after,
            "{:?}",
            item
        );
        prop_assert!(stored.unwrap().is_linked_to(&w.tenant, &item.object_id));
    }
    // What the import did not select is left alone.
    let touched: BTreeSet<&str> = shown
        .applied()
        .filter_map(|i| i.local_id.as_deref())
        .collect();
    for u in &before {
        if !touched.contains(u.local_id.as_str()) {
            prop_assert_eq!(Some(u), after.get(&u.local_id), "not part of the import");
        }
    }
    Ok(())
}

#[test]
fn an_import_applies_exactly_its_preview() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&import_case(), |case| block_on(preview_equals_import(case)))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Never duplicated, never deleted

#[derive(Clone, Debug)]
enum Step {
    /// Saved through `save_settings` (which re-projects at once).
    Save(Box<ConnectionSettings>),
    Change(Change),
    /// A scheduled run's projection.
    Run,
}

#[derive(Clone, Debug)]
struct HistoryCase {
    users: Vec<UserSpec>,
    locals: Vec<PreExisting>,
    steps: Vec<Step>,
}

fn history_case() -> impl Strategy<Value = HistoryCase> {
    (
        directory(),
        pre_existing(),
        prop::collection::vec(
            prop_oneof![
                1 => settings().prop_map(|s| Step::Save(Box::new(s))),
                3 => change().prop_map(Step::Change),
                1 => Just(Step::Run),
            ],
            1..16,
        ),
    )
        .prop_map(|(users, locals, steps)| HistoryCase {
            users,
            locals,
            steps,
        })
}

/// What the invariants remember between steps.
#[derive(Default)]
struct Seen {
    local_ids: BTreeSet<String>,
    links: BTreeMap<String, String>,
}

fn check_invariants(
    seen: &mut Seen,
    locals: &[LocalUser],
    step: usize,
) -> Result<(), TestCaseError> {
    let mut by_email: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for u in locals
        .iter()
        .filter(|u| u.status != LocalStatus::DeletedLocally)
    {
        by_email
            .entry((u.account_id.0.as_str(), u.email.as_str()))
            .or_default()
            .push(&u.local_id);
    }
    for ((_, e), ids) in &by_email {
        let users: Vec<&LocalUser> = locals
            .iter()
            .filter(|u| ids.contains(&u.local_id.as_str()))
            .collect();
        prop_assert!(
            ids.len() <= 1,
            "step {}: local users share the email {}: {:?}",
            step,
            e,
            users
        );
    }
    let now: BTreeSet<String> = locals.iter().map(|u| u.local_id.clone()).collect();
    let gone: Vec<&String> = seen.local_ids.difference(&now).collect();
    prop_assert!(
        gone.is_empty(),
        "step {}: local users {:?} vanished",
        step,
        gone
    );
    seen.local_ids = now;
    let mut linked_now: BTreeMap<&str, &str> = BTreeMap::new();
    for u in locals {
        let Some(link) = &u.link else { continue };
        let object = link.object_id.as_str();
        if let Some(other) = linked_now.insert(object, &u.local_id) {
            return Err(TestCaseError::fail(format!(
                "step {step}: directory user {object} is linked to {other} and {}",
                u.local_id
            )));
        }
        match seen.links.get(object) {
            Some(id) => prop_assert_eq!(
                id,
                &u.local_id,
                "step {}: directory user {} changed local user",
                step,
                object
            ),
            None => {
                seen.links.insert(object.to_owned(), u.local_id.clone());
            }
        }
    }
    // A link, once made, is never lost.
    for (object, id) in &seen.links {
        prop_assert_eq!(
            linked_now.get(object.as_str()).copied(),
            Some(id.as_str()),
            "step {}: the link of {} is gone",
            step,
            object
        );
    }
    Ok(())
}

/// Access never outlives the directory account: the sign-in lookup refuses every local user
/// whose mirrored account Graph reported disabled or deleted, and after a run that applied the rules (every
/// run deprovisions, runs apply changes) no linked user is still pending or active with such an
/// account, frozen by the filters or not.
async fn check_access(w: &World, after_run: bool, step: usize) -> Result<(), TestCaseError> {
    let settings = load_settings(w.store.as_ref(), &w.tenant).await.unwrap();
    let rules_applied = after_run
        && settings.provisioning.deprovisioning == Deprovisioning::EveryRun
        && settings.provisioning.automatic != Automatic::Nothing;
    for u in w.local_users().await {
        let Some(link) = &u.link else { continue };
        let mirrored = w
            .users
            .iter()
            .find(|s| s.user.id == link.object_id)
            .unwrap();
        let lost = !mirrored.presence.is_present() || !mirrored.user.is_enabled();
        // Reported by Graph for this user (a loss inferred from a read is the breaker's).
        let reported = matches!(
            mirrored.presence,
            Presence::Removed {
                reason: RemovalReason::SoftDeleted | RemovalReason::HardDeleted
            }
        ) || (mirrored.presence.is_present()
            && mirrored.user.account_enabled == Some(false));
        if !lost {
            continue;
        }
        if rules_applied {
            prop_assert!(
                !u.status.is_active_or_pending(),
                "step {}: {} is {} although its account is disabled or deleted: {:?}",
                step,
                u.local_id,
                u.status,
                u
            );
        }
        let look = sign_in_lookup(w.store.as_ref(), w.store.as_ref(), &w.account, &u.email)
            .await
            .unwrap();
        if let Some(look) = look.filter(|l| reported && l.local_id == u.local_id) {
            prop_assert!(
                !look.may_sign_in,
                "step {}: the lookup lets {} sign in with a disabled or deleted account",
                step,
                u.local_id
            );
        }
    }
    Ok(())
}

async fn never_duplicated(case: HistoryCase) -> Result<(), TestCaseError> {
    let mut w = World::new(&case.users, &case.locals).await;
    let mut seen = Seen::default();
    check_invariants(&mut seen, &w.local_users().await, 0)?;
    for (i, step) in case.steps.iter().enumerate() {
        let mut applied = false;
        match step {
            Step::Save(s) => {
                check_valid(s)?;
                let before = load_settings(w.store.as_ref(), &w.tenant).await.unwrap();
                w.clock.advance(chrono::Duration::seconds(1));
                match save_settings(&w.deps(), &w.tenant, (**s).clone(), before.version).await {
                    Ok((_, run)) => {
                        applied = run.status == entra_sync_core::run::RunStatus::Succeeded
                    }
                    // The only group the mirror knows as deleted: refused, nothing saved.
                    Err(ProjectError::Settings(e)) => {
                        prop_assert!(
                            e.problems.iter().all(|p| p.contains("g-gone")),
                            "{:?}",
                            e.problems
                        );
                        prop_assert_eq!(
                            load_settings(w.store.as_ref(), &w.tenant).await.unwrap(),
                            before
                        );
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("save: {e}"))),
                }
            }
            Step::Change(c) => w.apply(c).await,
            Step::Run => {
                applied = matches!(w.project().await.0, ProjectOutcome::Applied(_));
            }
        }
        check_invariants(&mut seen, &w.local_users().await, i + 1)?;
        check_access(&w, applied, i + 1).await?;
    }
    Ok(())
}

#[test]
fn local_users_are_never_duplicated_deleted_or_relinked() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&history_case(), |case| block_on(never_duplicated(case)))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 4. Breaker

/// How a user of a breaker case loses access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gone {
    /// `accountEnabled: false` (reported by Graph for this user).
    Disabled,
    /// An `@removed` entry (reported).
    Deleted,
    /// Absent from a complete full read (inferred).
    Missing,
}

#[derive(Clone, Debug)]
struct BreakerCase {
    users: usize,
    /// Activated in the host product before the mass change (index modulo the size).
    activated: Vec<usize>,
    /// Users that lose access, and how, by index.
    gone: BTreeMap<usize, Gone>,
    /// Users whose department changes (an update, which no hold keeps back).
    moved: BTreeSet<usize>,
}

fn gone() -> impl Strategy<Value = Gone> {
    prop::sample::select(vec![Gone::Disabled, Gone::Deleted, Gone::Missing])
}

fn breaker_case() -> impl Strategy<Value = BreakerCase> {
    prop_oneof![
        // Small directories: the share rule (and the empty read when every user is gone).
        3 => (1usize..60).prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec(0..n, 0..5),
                prop::collection::btree_map(0..n, gone(), 0..=n),
                prop::collection::btree_set(0..n, 0..4),
            )
        }),
        // Large ones: the count rule (automatic: 50 up to 5,000 managed users) with a small
        // share.
        1 => (520usize..560).prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec(0..n, 0..5),
                prop::collection::btree_map(0..n, gone(), 40..110),
                prop::collection::btree_set(0..n, 0..4),
            )
        }),
    ]
    .prop_map(|(users, activated, gone, moved)| BreakerCase {
        users,
        activated,
        gone,
        moved,
    })
}

async fn breaker_holds(case: BreakerCase) -> Result<(), TestCaseError> {
    let specs: Vec<UserSpec> = (0..case.users)
        .map(|_| UserSpec {
            local: 0,
            domain: 0,
            has_mail: false,
            department: Some(0),
            office: None,
            guest: Some(false),
            enabled: Some(true),
            licensed: true,
            title: None,
            phone: false,
            groups: 0,
        })
        .collect();
    let mut w = World::new(&[], &[]).await;
    // Unique emails: one per user.
    w.users = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut u = s.to_user(&uid(i));
            u.user_principal_name = Some(format!("{}@contoso.com", uid(i)));
            StoredUser {
                user: u,
                presence: Presence::Present,
                version: Version::new(1, 0),
            }
        })
        .collect();
    w.store.put_users(&w.tenant, &w.users).await.unwrap();
    let (first, _) = w.project().await;
    let ProjectOutcome::Applied(c) = first else {
        return Err(TestCaseError::fail(format!("first run: {first:?}")));
    };
    prop_assert_eq!(c.created, case.users as u64);
    for i in &case.activated {
        let local = w.local_users().await;
        let id = local
            .iter()
            .find(|u| u.is_linked_to(&w.tenant, &uid(*i)))
            .map(|u| u.local_id.clone())
            .unwrap();
        // Twice the same index: the second activation is refused (already active).
        match activate_local_user(
            w.store.as_ref(),
            w.store.as_ref(),
            w.clock.as_ref(),
            &w.account,
            &id,
            false,
        )
        .await
        {
            Ok(_) | Err(LocalUserError::NotActivatable { .. }) => {}
            Err(e) => panic!("activate: {e}"),
        }
    }
    for (i, how) in &case.gone {
        let c = match how {
            Gone::Disabled => Change::Disable(*i),
            Gone::Deleted => Change::Delete(*i),
            Gone::Missing => Change::Missing(*i),
        };
        w.apply(&c).await;
    }
    for i in &case.moved {
        w.apply(&Change::Department(*i, Some(2))).await;
    }
    let before: BTreeMap<String, LocalUser> = w
        .local_users()
        .await
        .into_iter()
        .map(|u| (u.link.clone().unwrap().object_id, u))
        .collect();
    let total = case.gone.len() as u64;
    let reported = case.gone.values().filter(|g| **g != Gone::Missing).count() as u64;
    let active_before = case.users as u64;
    let empty_read =
        case.gone.len() == case.users && case.gone.values().all(|g| *g != Gone::Disabled);
    let threshold = BreakerThreshold::default();
    prop_assert_eq!(
        load_settings(w.store.as_ref(), &w.tenant)
            .await
            .unwrap()
            .breaker,
        threshold
    );
    let should_hold = threshold.tripped_by(total, active_before).is_some() || empty_read;
    // In a held run, the reported losses pass when they alone stay within the threshold.
    let reported_pass = !empty_read && threshold.tripped_by(reported, active_before).is_none();
    let (outcome, run) = w.project().await;
    let after: BTreeMap<String, LocalUser> = w
        .local_users()
        .await
        .into_iter()
        .map(|u| (u.link.clone().unwrap().object_id, u))
        .collect();
    let applied = |i: usize| {
        let id = uid(i);
        after[&id].status != before[&id].status
    };
    match outcome {
        ProjectOutcome::Held(hold) => {
            prop_assert!(
                should_hold,
                "held although within the threshold: {:?}",
                hold
            );
            prop_assert_eq!(hold.active_before, active_before);
            prop_assert_eq!(hold.empty_read, empty_read);
            let expected_applied = if reported_pass { reported } else { 0 };
            prop_assert_eq!(hold.applied_deactivations, expected_applied);
            prop_assert_eq!(hold.deactivations, total - expected_applied);
            prop_assert_eq!(run.provisioning.held, total - expected_applied);
            for (i, how) in &case.gone {
                let lost = reported_pass && *how != Gone::Missing;
                prop_assert_eq!(
                    applied(*i),
                    lost,
                    "{:?} user {} (reported pass: {})",
                    how,
                    i,
                    reported_pass
                );
            }
            // What takes no access away flows on; an empty read writes nothing at all.
            if empty_read {
                prop_assert!(before == after, "an empty read wrote something");
            }
            for i in case.moved.iter().filter(|i| !case.gone.contains_key(i)) {
                let dept = after[&uid(*i)].fields.get("department").cloned();
                prop_assert_eq!(dept.as_deref(), Some("HR"), "user {}", i);
            }
        }
        ProjectOutcome::Applied(c) => {
            prop_assert!(
                !should_hold,
                "{} of {} deactivated without a hold",
                total,
                active_before
            );
            prop_assert_eq!(c.deactivated + c.disabled_in_directory, total);
            prop_assert_eq!(c.held, 0);
        }
        other => return Err(TestCaseError::fail(format!("{other:?}"))),
    }
    Ok(())
}

#[test]
fn a_held_run_holds_the_inferred_deactivations_and_lets_the_rest_through() {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&breaker_case(), |case| block_on(breaker_holds(case)))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 5. Fuzz: ConnectionSettings::from_json

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..30).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "all",
            "any_of",
            "daily",
            "hourly",
            "nightly",
            "every_run",
            "member",
            "guest",
            "licensed",
            "everything",
            "updates_only",
            "nothing",
            "email",
            "jobTitle",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

/// Keys of the settings schema (so values get past the first level of serde often).
const KEYS: &[&str] = &[
    "version",
    "schedule",
    "every",
    "hour_utc",
    "filters",
    "groups",
    "email_domains",
    "user_types",
    "office_locations",
    "departments",
    "license_status",
    "include_disabled",
    "mode",
    "values",
    "mapping",
    "fields",
    "target",
    "source",
    "provisioning",
    "automatic",
    "auto_activate_verified_domains",
    "deprovisioning",
    "when",
    "recreate_deleted_locally",
    "group_roles",
    "group_id",
    "role",
    "breaker",
    "max_count",
    "max_percent",
    "min_count_for_percent",
];

fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                        1 => "[a-z_]{0,10}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Valid settings serialized, then one value somewhere replaced by an arbitrary one.
fn mutated_settings() -> impl Strategy<Value = String> {
    (
        settings(),
        prop::collection::vec(any::<prop::sample::Index>(), 1..5),
        arb_json(),
    )
        .prop_map(|(s, path, replacement)| {
            let mut v = serde_json::to_value(&s).unwrap();
            replace_at(&mut v, &path, replacement);
            v.to_string()
        })
}

/// Replace the value `path` leads to (each step picks a key or an element; the walk stops at a
/// scalar or an empty container).
fn replace_at(v: &mut Value, path: &[prop::sample::Index], replacement: Value) {
    let Some((step, rest)) = path.split_first() else {
        *v = replacement;
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step.index(m.len())).cloned().unwrap();
            replace_at(m.get_mut(&key).unwrap(), rest, replacement);
        }
        Value::Array(a) if !a.is_empty() => {
            let i = step.index(a.len());
            replace_at(&mut a[i], rest, replacement);
        }
        _ => *v = replacement,
    }
}

fn check_from_json(json: &str) -> Result<(), TestCaseError> {
    match ConnectionSettings::from_json(json) {
        Ok(s) => prop_assert!(s.validate().is_ok(), "accepted invalid settings: {}", json),
        Err(e) => {
            prop_assert!(!e.problems.is_empty(), "no problem listed for {}", json);
            prop_assert!(
                e.problems.iter().all(|p| !p.trim().is_empty()),
                "an empty problem for {}: {:?}",
                json,
                e.problems
            );
            prop_assert!(!e.to_string().trim().is_empty());
        }
    }
    Ok(())
}

#[test]
fn settings_from_json_never_panics_and_always_explains() {
    let inputs = prop_oneof![
        any::<String>(),
        "[{}\\[\\]\":,a-z0-9_ .-]{0,80}",
        arb_json().prop_map(|v| v.to_string()),
        mutated_settings(),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner.run(&inputs, |json| check_from_json(&json)).unwrap();
    // Every valid generated settings object round-trips through its JSON.
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&settings(), |s| {
            let back = ConnectionSettings::from_json(&serde_json::to_string(&s).unwrap());
            prop_assert_eq!(back.ok(), Some(s));
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_group_filter_sees_nested_members() {
    // A sanity check of the fixture the properties rely on: g3 is nested in g1.
    let spec = UserSpec {
        local: 1,
        domain: 0,
        has_mail: true,
        department: None,
        office: None,
        guest: None,
        enabled: Some(true),
        licensed: false,
        title: None,
        phone: false,
        groups: 0b0100,
    };
    block_on(async {
        let mut w = World::new(&[spec], &[]).await;
        let s = ConnectionSettings {
            filters: ScopeFilters {
                groups: Section::AnyOf {
                    values: vec!["g1".into()],
                },
                ..ScopeFilters::default()
            },
            group_roles: vec![GroupRole {
                group_id: "g1".into(),
                role: "admin".into(),
            }],
            ..ConnectionSettings::default()
        };
        w.put_settings(&s).await;
        let (outcome, _) = w.project().await;
        assert!(matches!(outcome, ProjectOutcome::Applied(c) if c.created == 1));
        let locals = w.local_users().await;
        assert_eq!(locals[0].roles, vec!["admin".to_owned()]);
        assert_eq!(
            locals[0].status,
            LocalStatus::Pending,
            "auto-activation is off"
        );
    });
}
