//! A ready-made world for tests of the write half: one connected tenant with two users, a
//! security group, a distribution list and an app, in the in-memory store and the in-memory
//! directory writer, with actions enabled as asked. Service, handler and CLI tests use it
//! instead of assembling `ActionDeps` by hand.
// Test support: the in-memory adapters it calls cannot fail, and a test should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use crate::actions::kind::{ActionKind, ActionSpec};
use crate::actions::memory::{CollectingActionQueue, MemoryActions, ScanningLookup};
use crate::actions::record::Origin;
use crate::directory_write::{GroupTraits, MemoryDirectoryWriter};
use crate::idempotency::IdempotencyConfig;
use crate::memory::{ManualClock, MemoryStore};
use crate::memory_idempotency::MemoryIdempotency;
use crate::model::{
    AccountId, Connection, ConnectionStatus, DirectoryGroup, DirectoryUser, Presence, StoredGroup,
    StoredUser, TenantId, Version,
};
use crate::ports::{ConnectionStore, MirrorStore, SettingsStore};
use crate::services::actions::{ActionDeps, ActionsConfig, SubmitRequest, handle_action_message};
use crate::services::claim::Claims;
use crate::settings::ConnectionSettings;

pub const T: &str = "7d2c1f0e-0000-4000-8000-000000000001";
pub const ANN: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
pub const SALES: &str = "5a1e5000-0000-4000-8000-000000000010";
pub const DL: &str = "d1d1d1d1-0000-4000-8000-000000000011";
pub const APP: &str = "a9900000-0000-4000-8000-000000000020";

pub struct World {
    pub deps: ActionDeps,
    pub store: Arc<MemoryStore>,
    pub writer: Arc<MemoryDirectoryWriter>,
    pub queue: Arc<CollectingActionQueue>,
    pub clock: Arc<ManualClock>,
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

pub fn tenant() -> TenantId {
    TenantId::new(T)
}

pub fn account() -> AccountId {
    AccountId("acct-a".into())
}

pub fn user(id: &str, upn: &str) -> StoredUser {
    StoredUser {
        user: DirectoryUser {
            id: id.into(),
            user_principal_name: Some(upn.into()),
            account_enabled: Some(true),
            ..Default::default()
        },
        presence: Presence::Present,
        version: Version::new(1, 0),
    }
}

pub fn group(id: &str, name: &str, mail_enabled: bool) -> StoredGroup {
    StoredGroup {
        group: DirectoryGroup {
            id: id.into(),
            display_name: Some(name.into()),
            security_enabled: Some(!mail_enabled),
            mail_enabled: Some(mail_enabled),
            ..Default::default()
        },
        presence: Presence::Present,
        version: Version::new(1, 0),
    }
}

pub async fn world(enabled: &[ActionKind]) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    let writer = Arc::new(MemoryDirectoryWriter::new());
    let queue = Arc::new(CollectingActionQueue::new());
    let t = tenant();
    store
        .put_connection(&Connection {
            tenant_id: t.clone(),
            account_id: account(),
            label: "Test".into(),
            tenant_name: None,
            verified_domains: vec![],
            status: ConnectionStatus::Connected,
            connected_at: t0(),
            granted_permissions: Default::default(),
        })
        .await
        .unwrap();
    store
        .put_users(
            &t,
            &[user(ANN, "ann@contoso.com"), user(BOB, "bob@contoso.com")],
        )
        .await
        .unwrap();
    store
        .put_groups(
            &t,
            &[group(SALES, "Sales", false), group(DL, "All staff", true)],
        )
        .await
        .unwrap();
    let mut settings = ConnectionSettings {
        version: 1,
        ..Default::default()
    };
    settings.actions.enabled = enabled.iter().copied().collect();
    store.put_settings(&t, &settings, 0).await.unwrap();
    for u in [ANN, BOB] {
        writer.add_user(&t, u);
    }
    writer.add_group(
        &t,
        SALES,
        GroupTraits {
            security_enabled: Some(true),
            mail_enabled: Some(false),
            ..Default::default()
        },
    );
    writer.add_app(&t, APP, &[]);
    writer.grant_all(&t);
    let deps = memory_deps(&store, writer.clone(), queue.clone(), clock.clone());
    World {
        deps,
        store,
        writer,
        queue,
        clock,
    }
}

/// The write half on the in-memory ports around `store`: one action store serving both the
/// action and workflow ports (as every real adapter does), a lookup scanning the mirror.
pub fn memory_deps(
    store: &Arc<MemoryStore>,
    writer: Arc<MemoryDirectoryWriter>,
    queue: Arc<CollectingActionQueue>,
    clock: Arc<ManualClock>,
) -> ActionDeps {
    let actions = Arc::new(MemoryActions::new());
    ActionDeps {
        connections: store.clone(),
        settings: store.clone(),
        mirror: store.clone(),
        cursors: store.clone(),
        lookup: Arc::new(ScanningLookup {
            mirror: store.clone(),
        }),
        actions: actions.clone(),
        workflows: actions,
        queue,
        writer,
        claims: Claims::new(
            Arc::new(MemoryIdempotency::new()),
            IdempotencyConfig::default(),
            clock.clone(),
        ),
        budget: Arc::new(crate::actions::budget::WriteBudget::default()),
        clock,
        config: ActionsConfig::default(),
    }
}

pub fn workflows_shared(w: &mut World) {
    // One memory store serves both ports, as every real adapter does.
    let both = Arc::new(MemoryActions::new());
    w.deps.actions = both.clone();
    w.deps.workflows = both;
}

pub fn req(key: &str, spec: ActionSpec) -> SubmitRequest {
    SubmitRequest {
        account: account(),
        tenant: tenant(),
        key: key.into(),
        spec,
        requested_by: "alice@host".into(),
        origin: Origin::Cli,
    }
}

pub fn add_ann_to(group: &str) -> ActionSpec {
    ActionSpec::AddGroupMember {
        user: "ann@contoso.com".into(),
        group: group.into(),
    }
}

/// Deliver every queued message, `times` times each (duplicates), in reverse order.
pub async fn drain(w: &World, times: usize) {
    loop {
        let mut msgs = w.queue.drain();
        if msgs.is_empty() {
            return;
        }
        msgs.reverse();
        for m in &msgs {
            for _ in 0..times {
                handle_action_message(&w.deps, m).await;
            }
        }
    }
}
