//! Saving and restoring the whole emulator (tenants, change history, token key, clock offset)
//! so a later process can continue the same tenants with its delta links still valid.
//!
//! The file is JSON with a `version`; objects are keyed by Graph property names, so it stays
//! readable. Derived indexes (change logs, reverse links) are rebuilt on load.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::directory::{Directory, Edge, Entity, Group, Life, TenantMeta, User};
use crate::generator::tenant_skus;
use crate::model::{Kind, Pv};
use crate::state::{DomainInfo, Inner, TenantState, fingerprint};

const VERSION: u32 = 1;

/// The saved emulator.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedState {
    version: u32,
    /// Port the emulator listened on (a restored emulator tries to get it back, so saved
    /// links still point at it).
    pub(crate) port: u16,
    token_key: String,
    pub(crate) clock_offset_ms: u64,
    #[serde(default)]
    sign_in_tenant: Option<String>,
    tenants: Vec<SavedTenant>,
}

#[derive(Serialize, Deserialize)]
struct SavedTenant {
    id: String,
    name: String,
    domains: Vec<SavedDomain>,
    consent: bool,
    roles: bool,
    premium: bool,
    password_reset_allowed: bool,
    directory: SavedDirectory,
    /// Granted permissions, enterprise applications and app role assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actions: Option<crate::apps::SavedActions>,
}

#[derive(Serialize, Deserialize)]
struct SavedDomain {
    name: String,
    is_initial: bool,
    is_default: bool,
}

#[derive(Serialize, Deserialize)]
struct SavedDirectory {
    seq: u64,
    initial_domain: String,
    default_domain: String,
    domains: Vec<String>,
    sku_users: usize,
    sku_premium: bool,
    /// In creation order (purged users included, as tombstones).
    users: Vec<SavedUser>,
    groups: Vec<SavedGroup>,
}

#[derive(Serialize, Deserialize)]
struct SavedEntity {
    id: String,
    #[serde(default)]
    props: Map<String, Value>,
    base_seq: u64,
    #[serde(default)]
    prop_seqs: Vec<(String, u64)>,
    rel_seq: u64,
    seq: u64,
    life: SavedLife,
    life_seq: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum SavedLife {
    Live,
    SoftDeleted,
    Purged,
}

#[derive(Serialize, Deserialize)]
struct SavedUser {
    #[serde(flatten)]
    e: SavedEntity,
    #[serde(default)]
    manager: Option<String>,
    #[serde(default)]
    manager_removed: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SavedGroup {
    #[serde(flatten)]
    e: SavedEntity,
    #[serde(default)]
    members: Vec<SavedEdge>,
    #[serde(default)]
    removed: Vec<SavedEdge>,
}

#[derive(Serialize, Deserialize)]
struct SavedEdge {
    id: String,
    group: bool,
    seq: u64,
}

fn save_entity(e: &Entity, kind: Kind) -> SavedEntity {
    let table = kind.props();
    let mut props = Map::new();
    for (i, pv) in e.props.iter().enumerate().skip(1) {
        if let (Some(def), Some(v)) = (table.get(i), pv.to_json()) {
            props.insert(def.name.to_string(), v);
        }
    }
    let prop_seqs = e
        .prop_seqs
        .iter()
        .filter_map(|(i, s)| table.get(usize::from(*i)).map(|d| (d.name.to_string(), *s)))
        .collect();
    SavedEntity {
        id: e.id.to_string(),
        props,
        base_seq: e.base_seq,
        prop_seqs,
        rel_seq: e.rel_seq,
        seq: e.seq,
        life: match e.life {
            Life::Live => SavedLife::Live,
            Life::SoftDeleted => SavedLife::SoftDeleted,
            Life::Purged => SavedLife::Purged,
        },
        life_seq: e.life_seq,
    }
}

fn edges(map: &BTreeMap<Arc<str>, Edge>) -> Vec<SavedEdge> {
    map.iter()
        .map(|(id, e)| SavedEdge {
            id: id.to_string(),
            group: e.kind == Kind::Group,
            seq: e.seq,
        })
        .collect()
}

fn save_directory(dir: &Directory) -> SavedDirectory {
    let users = dir
        .user_ids
        .iter()
        .filter_map(|id| dir.users.get(id))
        .map(|u| SavedUser {
            e: save_entity(&u.e, Kind::User),
            manager: u.manager.as_deref().map(str::to_string),
            manager_removed: u.manager_removed.as_deref().map(str::to_string),
        })
        .collect();
    let groups = dir
        .group_ids
        .iter()
        .filter_map(|id| dir.groups.get(id))
        .map(|g| SavedGroup {
            e: save_entity(&g.e, Kind::Group),
            members: edges(&g.members),
            removed: edges(&g.removed),
        })
        .collect();
    SavedDirectory {
        seq: dir.seq,
        initial_domain: dir.meta.initial_domain.clone(),
        default_domain: dir.meta.default_domain.clone(),
        domains: dir.meta.domains.clone(),
        sku_users: dir.meta.sku_users,
        sku_premium: dir.meta.sku_premium,
        users,
        groups,
    }
}

/// Captures the emulator's state.
pub(crate) fn capture(inner: &Inner) -> SavedState {
    let tenants = inner.tenants_read();
    let saved = tenants
        .order
        .iter()
        .filter_map(|id| tenants.by_id.get(id))
        .map(|t| SavedTenant {
            id: t.id.clone(),
            name: t.name.clone(),
            domains: t
                .domains
                .iter()
                .map(|d| SavedDomain {
                    name: d.name.clone(),
                    is_initial: d.is_initial,
                    is_default: d.is_default,
                })
                .collect(),
            consent: t.consent.load(Ordering::SeqCst),
            roles: t.roles.load(Ordering::SeqCst),
            premium: t.premium.load(Ordering::SeqCst),
            password_reset_allowed: t.password_reset_allowed.load(Ordering::SeqCst),
            directory: save_directory(&t.read()),
            actions: Some(crate::apps::capture(t)),
        })
        .collect();
    SavedState {
        version: VERSION,
        port: inner.addr.port(),
        token_key: STANDARD.encode(inner.codec.key()),
        clock_offset_ms: inner.clock.offset_ms(),
        sign_in_tenant: tenants.sign_in_tenant.clone(),
        tenants: saved,
    }
}

/// Writes `state` to `path` (through a temporary file, then a rename).
pub(crate) fn write(state: &SavedState, path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer(&mut w, state).map_err(io::Error::other)?;
        w.flush()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a saved state.
pub(crate) fn read(path: &Path) -> io::Result<SavedState> {
    let file = std::fs::File::open(path)?;
    let state: SavedState =
        serde_json::from_reader(BufReader::new(file)).map_err(io::Error::other)?;
    if state.version != VERSION {
        return Err(io::Error::other(format!(
            "unsupported emulator state version {}",
            state.version
        )));
    }
    Ok(state)
}

impl SavedState {
    /// The token key.
    pub(crate) fn token_key(&self) -> io::Result<[u8; 32]> {
        let bytes = STANDARD
            .decode(self.token_key.as_bytes())
            .map_err(io::Error::other)?;
        bytes
            .try_into()
            .map_err(|_| io::Error::other("token key must be 32 bytes"))
    }
}

fn pv_from_json(v: Value) -> Pv {
    match v {
        Value::Null => Pv::Null,
        Value::Bool(b) => Pv::Bool(b),
        Value::String(s) => Pv::Str(Arc::from(s)),
        other => Pv::Json(Arc::new(other)),
    }
}

fn restore_entity(s: SavedEntity, kind: Kind) -> Entity {
    let id: Arc<str> = Arc::from(s.id);
    let life = match s.life {
        SavedLife::Live => Life::Live,
        SavedLife::SoftDeleted => Life::SoftDeleted,
        SavedLife::Purged => Life::Purged,
    };
    let props: Box<[Pv]> = if life == Life::Purged {
        Box::new([])
    } else {
        let mut props = vec![Pv::Unset; kind.props().len()];
        for (name, v) in s.props {
            if let Some(i) = kind.prop_index(&name) {
                props[i] = pv_from_json(v);
            }
        }
        props.into_boxed_slice()
    };
    let prop_seqs = s
        .prop_seqs
        .into_iter()
        .filter_map(|(name, seq)| {
            let i = kind.prop_index(&name)?;
            Some((u8::try_from(i).ok()?, seq))
        })
        .collect();
    Entity {
        id,
        props,
        base_seq: s.base_seq,
        prop_seqs,
        rel_seq: s.rel_seq,
        seq: s.seq,
        life,
        life_seq: s.life_seq,
    }
}

fn restore_edges(list: Vec<SavedEdge>) -> BTreeMap<Arc<str>, Edge> {
    list.into_iter()
        .map(|e| {
            let kind = if e.group { Kind::Group } else { Kind::User };
            (Arc::from(e.id), Edge { kind, seq: e.seq })
        })
        .collect()
}

fn restore_directory(tenant_id: &str, s: SavedDirectory) -> Directory {
    let meta = TenantMeta {
        initial_domain: s.initial_domain,
        default_domain: s.default_domain,
        domains: s.domains,
        skus: tenant_skus(s.sku_users, s.sku_premium),
        sku_users: s.sku_users,
        sku_premium: s.sku_premium,
    };
    let rng = ChaCha8Rng::seed_from_u64(fingerprint(tenant_id) ^ s.seq.rotate_left(29) ^ 0x5eed);
    let mut dir = Directory::new(meta, rng);
    dir.seq = s.seq;
    for su in s.users {
        let mut user = User::new(restore_entity(su.e, Kind::User));
        user.manager = su.manager.map(Arc::from);
        user.manager_removed = su.manager_removed.map(Arc::from);
        let id = user.e.id.clone();
        if user.e.seq > 0 {
            dir.user_log.insert(user.e.seq, id.clone());
        }
        dir.user_ids.push(id.clone());
        dir.users.insert(id, user);
    }
    for sg in s.groups {
        let mut grp = Group::new(restore_entity(sg.e, Kind::Group));
        grp.members = restore_edges(sg.members);
        grp.removed = restore_edges(sg.removed);
        for (mid, edge) in grp.members.iter().chain(grp.removed.iter()) {
            if edge.seq > 0 {
                grp.member_log.insert(edge.seq, mid.clone());
            }
        }
        let id = grp.e.id.clone();
        if grp.e.seq > 0 {
            dir.group_log.insert(grp.e.seq, id.clone());
        }
        dir.group_ids.push(id.clone());
        dir.groups.insert(id, grp);
    }
    // Reverse links: reports and memberships of live objects.
    let managed: Vec<(Arc<str>, Arc<str>)> = dir
        .users
        .values()
        .filter(|u| u.e.is_live())
        .filter_map(|u| u.manager.clone().map(|m| (m, u.e.id.clone())))
        .collect();
    for (m, report) in managed {
        if let Some(mgr) = dir.users.get_mut(&m) {
            mgr.reports.insert(report);
        }
    }
    let edges: Vec<(Arc<str>, Arc<str>, Kind)> = dir
        .groups
        .values()
        .filter(|g| g.e.is_live())
        .flat_map(|g| {
            g.members
                .iter()
                .map(|(m, e)| (g.e.id.clone(), m.clone(), e.kind))
        })
        .collect();
    for (gid, mid, kind) in edges {
        match kind {
            Kind::User => {
                if let Some(u) = dir.users.get_mut(&mid) {
                    u.member_of.insert(gid);
                }
            }
            Kind::Group => {
                if let Some(child) = dir.groups.get_mut(&mid) {
                    child.member_of.insert(gid);
                }
            }
        }
    }
    dir
}

/// Registers the saved tenants in a fresh emulator.
pub(crate) fn restore_into(inner: &Inner, state: SavedState) {
    inner
        .clock
        .advance(std::time::Duration::from_millis(state.clock_offset_ms));
    let now = inner.clock.now_ms();
    let mut tenants = inner.tenants_write();
    tenants.sign_in_tenant = state.sign_in_tenant;
    for st in state.tenants {
        let domains: Vec<DomainInfo> = st
            .domains
            .into_iter()
            .map(|d| DomainInfo {
                name: d.name,
                is_initial: d.is_initial,
                is_default: d.is_default,
            })
            .collect();
        let dir = restore_directory(&st.id, st.directory);
        let t = TenantState::new(
            st.id.clone(),
            st.name,
            domains.clone(),
            st.premium,
            dir,
            &inner.config,
            now,
        );
        t.consent.store(st.consent, Ordering::SeqCst);
        t.roles.store(st.roles, Ordering::SeqCst);
        t.password_reset_allowed
            .store(st.password_reset_allowed, Ordering::SeqCst);
        if let Some(actions) = st.actions {
            crate::apps::restore(&t, actions);
        }
        for d in &domains {
            tenants
                .by_domain
                .entry(d.name.to_ascii_lowercase())
                .or_insert_with(|| st.id.clone());
        }
        tenants.by_id.insert(st.id.clone(), Arc::new(t));
        tenants.order.push(st.id);
    }
}
