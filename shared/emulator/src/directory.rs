//! One tenant's directory: users, groups, memberships and the change log that delta rounds
//! read.
//!
//! Change tracking: every mutation takes a fresh value of the tenant's change sequence (`seq`)
//! and stamps the object it touches (and, for membership changes, the edge). Each object also
//! remembers the sequence at which every property last changed, so a delta round "since S"
//! can tell whether a *selected* property changed after S. Two ordered indexes keep per-request
//! work proportional to what changed, not to the tenant size:
//! - `user_log` / `group_log`: `seq -> id`, each object once, at its latest change;
//! - per group `member_log`: `seq -> member id`, each member once, at its latest add/remove.
//!
//! Objects made by the generator carry sequence 0 and are in neither index (no delta token can
//! predate them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::model::{Kind, Pv, Select, g, put, u};

/// Lifecycle of a directory object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    Live,
    /// In deleted items (restorable); delta reports `@removed: {reason: "changed"}`.
    SoftDeleted,
    /// Gone for good; delta reports `@removed: {reason: "deleted"}`.
    Purged,
}

/// State shared by users and groups.
#[derive(Debug)]
pub(crate) struct Entity {
    pub(crate) id: Arc<str>,
    /// Indexed like the kind's property table (index 0, `id`, is unused).
    pub(crate) props: Box<[Pv]>,
    /// Sequence at which the object (re)appeared: every property counts as changed then.
    pub(crate) base_seq: u64,
    /// Properties changed after `base_seq`, with the sequence of their last change.
    pub(crate) prop_seqs: Vec<(u8, u64)>,
    /// Last change of the relationship (`manager` / `members`).
    pub(crate) rel_seq: u64,
    /// Latest change of anything (the key of this object in the tenant's change log).
    pub(crate) seq: u64,
    pub(crate) life: Life,
    pub(crate) life_seq: u64,
}

impl Entity {
    pub(crate) fn new(id: Arc<str>, props: Box<[Pv]>, seq: u64) -> Self {
        Self {
            id,
            props,
            base_seq: seq,
            prop_seqs: Vec::new(),
            rel_seq: 0,
            seq,
            life: Life::Live,
            life_seq: seq,
        }
    }

    /// Sequence of the last change of property `i`.
    pub(crate) fn prop_seq(&self, i: usize) -> u64 {
        self.prop_seqs
            .iter()
            .find(|(p, _)| usize::from(*p) == i)
            .map_or(self.base_seq, |(_, s)| (*s).max(self.base_seq))
    }

    /// Sets property `i`; returns whether the value changed.
    pub(crate) fn set_prop(&mut self, i: usize, v: Pv, seq: u64) -> bool {
        let Some(slot) = self.props.get_mut(i) else {
            return false;
        };
        if *slot == v {
            return false;
        }
        *slot = v;
        let Ok(i8) = u8::try_from(i) else {
            return true;
        };
        if let Some(entry) = self.prop_seqs.iter_mut().find(|(p, _)| *p == i8) {
            entry.1 = seq;
        } else {
            self.prop_seqs.push((i8, seq));
        }
        true
    }

    /// Whether a round since `since` must report this (live) object for `sel`.
    pub(crate) fn tracked_change_since(&self, sel: &Select, since: u64) -> bool {
        if self.base_seq > since {
            return true;
        }
        if sel.rel && self.rel_seq > since {
            return true;
        }
        self.prop_seqs
            .iter()
            .any(|(p, s)| *s > since && sel.has(usize::from(*p)))
    }

    pub(crate) fn prop(&self, i: usize) -> &Pv {
        self.props.get(i).unwrap_or(&Pv::Unset)
    }

    pub(crate) fn is_live(&self) -> bool {
        self.life == Life::Live
    }

    /// Selected properties as a JSON object. `since`: the round's lower bound for incremental
    /// rounds, used with `minimal` (`Prefer: return=minimal`) to keep only changed properties.
    pub(crate) fn json(
        &self,
        kind: Kind,
        sel: &Select,
        since: Option<u64>,
        minimal: bool,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        put(&mut m, "id", Value::String(self.id.to_string()));
        let only_changed = match since {
            Some(s) if minimal && self.base_seq <= s => Some(s),
            _ => None,
        };
        for i in 1..kind.props().len() {
            if !sel.has(i) {
                continue;
            }
            if let Some(s) = only_changed
                && self.prop_seq(i) <= s
            {
                continue;
            }
            if let Some(v) = self.prop(i).to_json() {
                m.insert(kind.props()[i].name.to_string(), v);
            }
        }
        m
    }

    /// The `@removed` form of this object.
    pub(crate) fn removed_json(&self) -> Value {
        let reason = if self.life == Life::Purged {
            "deleted"
        } else {
            "changed"
        };
        json!({"id": &*self.id, "@removed": {"reason": reason}})
    }
}

/// A user and its relationships.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) e: Entity,
    pub(crate) manager: Option<Arc<str>>,
    /// The manager most recently removed (reported as a `manager@delta` removal).
    pub(crate) manager_removed: Option<Arc<str>>,
    pub(crate) reports: BTreeSet<Arc<str>>,
    pub(crate) member_of: BTreeSet<Arc<str>>,
}

impl User {
    pub(crate) fn new(e: Entity) -> Self {
        Self {
            e,
            manager: None,
            manager_removed: None,
            reports: BTreeSet::new(),
            member_of: BTreeSet::new(),
        }
    }

    /// The user as delta returns it (without `@removed` handling).
    pub(crate) fn delta_json(&self, sel: &Select, since: Option<u64>, minimal: bool) -> Value {
        let mut m = self.e.json(Kind::User, sel, since, minimal);
        if sel.rel {
            let changed = since.is_none_or(|s| self.e.rel_seq > s || self.e.base_seq > s);
            if let Some(mgr) = &self.manager {
                if !minimal || changed {
                    put(
                        &mut m,
                        "manager@delta",
                        json!([{"@odata.type": "#microsoft.graph.user", "id": &**mgr}]),
                    );
                }
            } else if let (Some(s), Some(old)) = (since, &self.manager_removed)
                && self.e.rel_seq > s
            {
                put(
                    &mut m,
                    "manager@delta",
                    json!([{"@odata.type": "#microsoft.graph.user", "id": &**old,
                            "@removed": {"reason": "deleted"}}]),
                );
            }
        }
        Value::Object(m)
    }
}

/// A membership edge: the member's kind and the sequence of its last add/remove.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub(crate) kind: Kind,
    pub(crate) seq: u64,
}

/// A group, its direct members and its membership change log.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) e: Entity,
    pub(crate) members: BTreeMap<Arc<str>, Edge>,
    /// Members removed after generation (with the removal's sequence).
    pub(crate) removed: BTreeMap<Arc<str>, Edge>,
    /// `seq -> member id` for every add/remove after generation (latest per member).
    pub(crate) member_log: BTreeMap<u64, Arc<str>>,
    pub(crate) member_of: BTreeSet<Arc<str>>,
}

impl Group {
    pub(crate) fn new(e: Entity) -> Self {
        Self {
            e,
            members: BTreeMap::new(),
            removed: BTreeMap::new(),
            member_log: BTreeMap::new(),
            member_of: BTreeSet::new(),
        }
    }

    /// The member entry logged at `seq`, as a `members@delta` item (add or removal).
    pub(crate) fn logged_member_json(&self, seq: u64, id: &Arc<str>) -> Option<Value> {
        if let Some(edge) = self.members.get(id).filter(|e| e.seq == seq) {
            return Some(member_entry(id, edge.kind, false));
        }
        self.removed
            .get(id)
            .filter(|e| e.seq == seq)
            .map(|edge| member_entry(id, edge.kind, true))
    }

    /// Why Graph refuses member writes to this group: synchronized from on-premises AD,
    /// dynamic membership (members follow the rule), or mail-enabled without being a
    /// Microsoft 365 group (distribution lists and mail-enabled security groups, managed by
    /// Exchange). `None`: member writes are accepted.
    pub(crate) fn membership_refusal(&self) -> Option<Refusal> {
        let has_type = |t: &str| match self.e.prop(g::GROUP_TYPES) {
            Pv::Json(v) => v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(t)))
            }),
            _ => false,
        };
        if matches!(self.e.prop(g::ON_PREM_SYNC), Pv::Bool(true)) {
            return Some(Refusal::OnPremisesSynced);
        }
        if has_type("DynamicMembership") {
            return Some(Refusal::Dynamic);
        }
        let mail_enabled = matches!(self.e.prop(g::MAIL_ENABLED), Pv::Bool(true));
        (mail_enabled && !has_type("Unified")).then_some(Refusal::ExchangeManaged)
    }
}

/// Why a group refuses member writes (see `Group::membership_refusal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    OnPremisesSynced,
    Dynamic,
    ExchangeManaged,
}

/// A `members@delta` item.
pub(crate) fn member_entry(id: &str, kind: Kind, removed: bool) -> Value {
    if removed {
        json!({"@odata.type": kind.odata_type(), "id": id, "@removed": {"reason": "deleted"}})
    } else {
        json!({"@odata.type": kind.odata_type(), "id": id})
    }
}

/// A license SKU the tenant has bought.
#[derive(Clone, Debug)]
pub(crate) struct Sku {
    pub(crate) sku_id: &'static str,
    pub(crate) part_number: &'static str,
    pub(crate) prepaid: u64,
    pub(crate) plans: &'static [(&'static str, &'static str)],
}

/// Why a `TenantHandle` mutation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    /// No live object (or, for restore/purge, no deleted object) with this id.
    #[error("object {0} not found")]
    NotFound(String),
    /// The patch names a property the emulator does not know.
    #[error("unknown property {0}")]
    UnknownProperty(String),
    /// The property cannot be written (`id`, `createdDateTime`).
    #[error("property {0} is read-only")]
    ReadOnlyProperty(String),
    /// The value has the wrong JSON type for the property.
    #[error("invalid value for property {0}")]
    InvalidValue(String),
    /// The member is already a direct member of the group.
    #[error("{member} is already a member of {group}")]
    AlreadyMember { group: String, member: String },
    /// The object is not a direct member of the group.
    #[error("{member} is not a member of {group}")]
    NotMember { group: String, member: String },
    /// The operation makes no sense for the object's state (e.g. a group containing itself).
    #[error("invalid operation: {0}")]
    Invalid(String),
}

/// Type of a group to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// `groupTypes: []`, security only.
    Security,
    /// `groupTypes: ["Unified"]`, mail-enabled.
    Microsoft365,
    /// `groupTypes: []`, mail- and security-enabled (Exchange-managed membership).
    MailEnabledSecurity,
    /// `groupTypes: []`, mail-enabled only (Exchange-managed membership).
    Distribution,
}

/// A user to create through `TenantHandle::create_user`.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub display_name: String,
    pub user_principal_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    /// `None` leaves `mail` null.
    pub mail: Option<String>,
    pub account_enabled: bool,
    /// `Member` or `Guest`; `None` means `Member`.
    pub user_type: Option<String>,
    /// Any other supported property (Graph names), applied as a patch.
    pub properties: Map<String, Value>,
}

impl NewUser {
    /// An enabled member user with the given name and UPN (mail = UPN).
    pub fn new(display_name: impl Into<String>, user_principal_name: impl Into<String>) -> Self {
        let upn = user_principal_name.into();
        Self {
            display_name: display_name.into(),
            mail: Some(upn.clone()),
            user_principal_name: upn,
            account_enabled: true,
            ..Self::default()
        }
    }
}

/// A group to create through `TenantHandle::create_group`.
#[derive(Clone, Debug)]
pub struct NewGroup {
    pub display_name: String,
    pub description: Option<String>,
    pub kind: GroupKind,
    /// Adds `DynamicMembership` to `groupTypes` and sets `membershipRule` (to
    /// `membership_rule`, or a rule matching every member user) with processing "On".
    pub dynamic: bool,
    /// The dynamic membership rule (only used with `dynamic`).
    pub membership_rule: Option<String>,
    /// `onPremisesSyncEnabled: true`: the group is synchronized from on-premises AD.
    pub on_premises_synced: bool,
    /// Defaults to a slug of the display name.
    pub mail_nickname: Option<String>,
}

impl NewGroup {
    /// A static group of the given kind.
    pub fn new(display_name: impl Into<String>, kind: GroupKind) -> Self {
        Self {
            display_name: display_name.into(),
            description: None,
            kind,
            dynamic: false,
            membership_rule: None,
            on_premises_synced: false,
            mail_nickname: None,
        }
    }

    /// The same group with dynamic membership (`rule`, or one matching every member user).
    pub fn dynamic(mut self, rule: Option<&str>) -> Self {
        self.dynamic = true;
        self.membership_rule = rule.map(str::to_string);
        self
    }

    /// The same group, synchronized from on-premises Active Directory.
    pub fn on_premises_synced(mut self) -> Self {
        self.on_premises_synced = true;
        self
    }
}

/// A property patch: Graph property name -> new value (`null` clears the property).
pub type Patch = Map<String, Value>;
/// Patch for `TenantHandle::update_user`.
pub type UserPatch = Patch;
/// Patch for `TenantHandle::update_group`.
pub type GroupPatch = Patch;

/// A direct membership edge in a `DirectorySnapshot`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Membership {
    pub group_id: String,
    pub member_id: String,
    /// `"user"` or `"group"`.
    pub member_type: String,
}

/// The live directory at one moment (see `TenantHandle::snapshot` for the JSON shape).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DirectorySnapshot {
    pub users: Vec<Value>,
    pub groups: Vec<Value>,
    pub memberships: Vec<Membership>,
}

/// Tenant-wide facts the mutation code needs (domains for UPNs, SKUs for licenses).
#[derive(Debug, Clone)]
pub(crate) struct TenantMeta {
    pub(crate) initial_domain: String,
    pub(crate) default_domain: String,
    pub(crate) domains: Vec<String>,
    pub(crate) skus: Vec<Sku>,
    /// Inputs of `generator::tenant_skus` (to rebuild `skus` from saved state).
    pub(crate) sku_users: usize,
    pub(crate) sku_premium: bool,
}

/// The whole directory of one tenant.
#[derive(Debug)]
pub(crate) struct Directory {
    /// Last sequence handed out.
    pub(crate) seq: u64,
    pub(crate) users: BTreeMap<Arc<str>, User>,
    pub(crate) groups: BTreeMap<Arc<str>, Group>,
    pub(crate) user_log: BTreeMap<u64, Arc<str>>,
    pub(crate) group_log: BTreeMap<u64, Arc<str>>,
    /// Every user id ever created, for O(1) random picks.
    pub(crate) user_ids: Vec<Arc<str>>,
    pub(crate) group_ids: Vec<Arc<str>>,
    /// Source of ids for objects created after generation.
    pub(crate) id_rng: ChaCha8Rng,
    pub(crate) meta: TenantMeta,
    /// Enterprise applications and app role assignments.
    pub(crate) apps: crate::apps::Apps,
}

/// Draws a GUID-shaped id (version 4 layout) from `rng`.
pub(crate) fn guid(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl Directory {
    pub(crate) fn new(meta: TenantMeta, id_rng: ChaCha8Rng) -> Self {
        Self {
            seq: 0,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            user_log: BTreeMap::new(),
            group_log: BTreeMap::new(),
            user_ids: Vec::new(),
            group_ids: Vec::new(),
            id_rng,
            meta,
            apps: crate::apps::Apps::default(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Gives a user a fresh sequence and moves it to the end of the change log.
    fn bump_user(&mut self, id: &str) -> Option<u64> {
        if !self.users.contains_key(id) {
            return None;
        }
        let seq = self.next_seq();
        let user = self.users.get_mut(id)?;
        let old = std::mem::replace(&mut user.e.seq, seq);
        if old != 0 {
            self.user_log.remove(&old);
        }
        self.user_log.insert(seq, user.e.id.clone());
        Some(seq)
    }

    fn bump_group(&mut self, id: &str) -> Option<u64> {
        if !self.groups.contains_key(id) {
            return None;
        }
        let seq = self.next_seq();
        let group = self.groups.get_mut(id)?;
        let old = std::mem::replace(&mut group.e.seq, seq);
        if old != 0 {
            self.group_log.remove(&old);
        }
        self.group_log.insert(seq, group.e.id.clone());
        Some(seq)
    }

    /// A live user's id as stored (shared `Arc`).
    fn live_user(&self, id: &str) -> Result<&User, MutationError> {
        self.users
            .get(id)
            .filter(|u| u.e.is_live())
            .ok_or_else(|| MutationError::NotFound(id.to_string()))
    }

    fn live_group(&self, id: &str) -> Result<&Group, MutationError> {
        self.groups
            .get(id)
            .filter(|g| g.e.is_live())
            .ok_or_else(|| MutationError::NotFound(id.to_string()))
    }

    /// Validates a patch against a property table.
    fn validate_patch(kind: Kind, patch: &Patch) -> Result<Vec<(usize, Pv)>, MutationError> {
        let mut out = Vec::with_capacity(patch.len());
        for (name, value) in patch {
            let i = kind
                .prop_index(name)
                .ok_or_else(|| MutationError::UnknownProperty(name.clone()))?;
            let def = &kind.props()[i];
            if def.read_only {
                return Err(MutationError::ReadOnlyProperty(name.clone()));
            }
            let pv = Pv::from_patch(def.ty, value)
                .ok_or_else(|| MutationError::InvalidValue(name.clone()))?;
            out.push((i, pv));
        }
        Ok(out)
    }

    // ----- users -------------------------------------------------------------------------

    /// Adds a new live user with a fresh id; returns the id.
    pub(crate) fn create_user(
        &mut self,
        new: &NewUser,
        created: &str,
    ) -> Result<String, MutationError> {
        let extra = Self::validate_patch(Kind::User, &new.properties)?;
        let id: Arc<str> = Arc::from(guid(&mut self.id_rng));
        let mut props = vec![Pv::Unset; u::COUNT];
        props[u::DISPLAY_NAME] = Pv::str(&new.display_name);
        props[u::UPN] = Pv::str(&new.user_principal_name);
        props[u::MAIL] = new.mail.as_deref().map_or(Pv::Null, Pv::str);
        if let Some(gn) = &new.given_name {
            props[u::GIVEN_NAME] = Pv::str(gn);
        }
        if let Some(sn) = &new.surname {
            props[u::SURNAME] = Pv::str(sn);
        }
        props[u::ACCOUNT_ENABLED] = Pv::Bool(new.account_enabled);
        props[u::USER_TYPE] = Pv::str(new.user_type.as_deref().unwrap_or("Member"));
        props[u::CREATED] = Pv::str(created);
        props[u::BUSINESS_PHONES] = Pv::Json(Arc::new(json!([])));
        for (i, pv) in extra {
            props[i] = pv;
        }
        let seq = self.next_seq();
        let user = User::new(Entity::new(id.clone(), props.into_boxed_slice(), seq));
        self.users.insert(id.clone(), user);
        self.user_log.insert(seq, id.clone());
        self.user_ids.push(id.clone());
        Ok(id.to_string())
    }

    /// Applies a property patch to a live user. A patch that changes nothing records nothing.
    pub(crate) fn update_user(&mut self, id: &str, patch: &Patch) -> Result<(), MutationError> {
        let changes = Self::validate_patch(Kind::User, patch)?;
        let user = self.live_user(id)?;
        if changes.iter().all(|(i, pv)| user.e.prop(*i) == pv) {
            return Ok(());
        }
        let seq = self
            .bump_user(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(user) = self.users.get_mut(id) {
            for (i, pv) in changes {
                user.e.set_prop(i, pv, seq);
            }
        }
        Ok(())
    }

    /// Sets or clears a live user's manager.
    pub(crate) fn set_manager(
        &mut self,
        id: &str,
        manager: Option<&str>,
    ) -> Result<(), MutationError> {
        let user = self.live_user(id)?;
        let uid = user.e.id.clone();
        let new_mgr = match manager {
            Some(m) if m == id => {
                return Err(MutationError::Invalid("a user cannot manage itself".into()));
            }
            Some(m) => Some(self.live_user(m)?.e.id.clone()),
            None => None,
        };
        if user.manager == new_mgr {
            return Ok(());
        }
        let seq = self
            .bump_user(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        let old = match self.users.get_mut(id) {
            Some(user) => {
                user.e.rel_seq = seq;
                let old = std::mem::replace(&mut user.manager, new_mgr.clone());
                if old.is_some() {
                    user.manager_removed = old.clone();
                }
                old
            }
            None => None,
        };
        if let Some(old) = old
            && let Some(m) = self.users.get_mut(&old)
        {
            m.reports.remove(&uid);
        }
        if let Some(new) = new_mgr
            && let Some(m) = self.users.get_mut(&new)
        {
            m.reports.insert(uid);
        }
        Ok(())
    }

    /// Drops every relationship of a user that is leaving (soft delete or purge): group
    /// memberships (recorded as removals in each group), its own manager and its reports'
    /// manager links.
    fn detach_user(&mut self, id: &str) {
        let (groups, reports, manager) = match self.users.get_mut(id) {
            Some(u) => (
                std::mem::take(&mut u.member_of),
                std::mem::take(&mut u.reports),
                u.manager.clone(),
            ),
            None => return,
        };
        for gid in groups {
            self.remove_edge(&gid, id);
        }
        for rid in reports {
            let _ = self.set_manager(&rid, None);
        }
        if manager.is_some() {
            let _ = self.set_manager(id, None);
        }
    }

    /// Soft-deletes a live user.
    pub(crate) fn delete_user(&mut self, id: &str) -> Result<(), MutationError> {
        self.live_user(id)?;
        self.detach_user(id);
        let seq = self
            .bump_user(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(u) = self.users.get_mut(id) {
            u.e.life = Life::SoftDeleted;
            u.e.life_seq = seq;
        }
        Ok(())
    }

    /// Restores a soft-deleted user (memberships are not restored).
    pub(crate) fn restore_user(&mut self, id: &str) -> Result<(), MutationError> {
        if !self
            .users
            .get(id)
            .is_some_and(|u| u.e.life == Life::SoftDeleted)
        {
            return Err(MutationError::NotFound(id.to_string()));
        }
        let seq = self
            .bump_user(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(u) = self.users.get_mut(id) {
            u.e.life = Life::Live;
            u.e.life_seq = seq;
            u.e.base_seq = seq;
            u.e.prop_seqs.clear();
        }
        Ok(())
    }

    /// Permanently deletes a live or soft-deleted user.
    pub(crate) fn purge_user(&mut self, id: &str) -> Result<(), MutationError> {
        match self.users.get(id).map(|u| u.e.life) {
            Some(Life::Live) => self.detach_user(id),
            Some(Life::SoftDeleted) => {}
            _ => return Err(MutationError::NotFound(id.to_string())),
        }
        let seq = self
            .bump_user(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(u) = self.users.get_mut(id) {
            u.e.life = Life::Purged;
            u.e.life_seq = seq;
            u.e.props = Box::new([]);
            u.e.prop_seqs = Vec::new();
            u.manager_removed = None;
        }
        self.apps.drop_user(id);
        Ok(())
    }

    /// Sets a property Graph maintains itself (read-only to clients, such as
    /// `signInSessionsValidFromDateTime`) on a live user; the change shows in delta rounds
    /// that select it.
    pub(crate) fn stamp_user(
        &mut self,
        id: &str,
        prop: usize,
        value: &str,
    ) -> Result<(), MutationError> {
        self.live_user(id)?;
        let seq = self
            .bump_user(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(user) = self.users.get_mut(id) {
            user.e.set_prop(prop, Pv::str(value), seq);
        }
        Ok(())
    }

    // ----- groups ------------------------------------------------------------------------

    /// Adds a new group; returns its id.
    pub(crate) fn create_group(&mut self, new: &NewGroup, created: &str) -> String {
        let id: Arc<str> = Arc::from(guid(&mut self.id_rng));
        let nickname = new.mail_nickname.clone().unwrap_or_else(|| {
            let slug = slug(&new.display_name);
            format!("{slug}{}", &id[..4])
        });
        let mut props = vec![Pv::Unset; g::COUNT];
        props[g::DISPLAY_NAME] = Pv::str(&new.display_name);
        if let Some(d) = &new.description {
            props[g::DESCRIPTION] = Pv::str(d);
        }
        let (mut types, security, mail_enabled) = match new.kind {
            GroupKind::Security => (vec![], true, false),
            GroupKind::Microsoft365 => (vec!["Unified"], false, true),
            GroupKind::MailEnabledSecurity => (vec![], true, true),
            GroupKind::Distribution => (vec![], false, true),
        };
        if new.dynamic {
            types.push("DynamicMembership");
            let rule = new
                .membership_rule
                .as_deref()
                .unwrap_or("(user.userType -eq \"Member\")");
            props[g::MEMBERSHIP_RULE] = Pv::str(rule);
            props[g::MEMBERSHIP_RULE_STATE] = Pv::str("On");
        }
        if new.on_premises_synced {
            props[g::ON_PREM_SYNC] = Pv::Bool(true);
        }
        props[g::GROUP_TYPES] = Pv::Json(Arc::new(json!(types)));
        props[g::SECURITY_ENABLED] = Pv::Bool(security);
        props[g::MAIL_ENABLED] = Pv::Bool(mail_enabled);
        props[g::MAIL] = if mail_enabled {
            Pv::str(format!("{nickname}@{}", self.meta.default_domain))
        } else {
            Pv::Null
        };
        props[g::MAIL_NICKNAME] = Pv::str(&nickname);
        props[g::CREATED] = Pv::str(created);
        let seq = self.next_seq();
        let group = Group::new(Entity::new(id.clone(), props.into_boxed_slice(), seq));
        self.groups.insert(id.clone(), group);
        self.group_log.insert(seq, id.clone());
        self.group_ids.push(id.clone());
        id.to_string()
    }

    /// Applies a property patch to a live group.
    pub(crate) fn update_group(&mut self, id: &str, patch: &Patch) -> Result<(), MutationError> {
        let changes = Self::validate_patch(Kind::Group, patch)?;
        let group = self.live_group(id)?;
        if changes.iter().all(|(i, pv)| group.e.prop(*i) == pv) {
            return Ok(());
        }
        let seq = self
            .bump_group(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(group) = self.groups.get_mut(id) {
            for (i, pv) in changes {
                group.e.set_prop(i, pv, seq);
            }
        }
        Ok(())
    }

    /// Deletes a group permanently: it leaves its parent groups (recorded as removals there)
    /// and its members lose it from their memberships.
    pub(crate) fn delete_group(&mut self, id: &str) -> Result<(), MutationError> {
        self.live_group(id)?;
        let (parents, members) = match self.groups.get_mut(id) {
            Some(grp) => (
                std::mem::take(&mut grp.member_of),
                std::mem::take(&mut grp.members),
            ),
            None => return Err(MutationError::NotFound(id.to_string())),
        };
        for parent in parents {
            self.remove_edge(&parent, id);
        }
        for (mid, edge) in members {
            match edge.kind {
                Kind::User => {
                    if let Some(u) = self.users.get_mut(&mid) {
                        u.member_of.remove(id);
                    }
                }
                Kind::Group => {
                    if let Some(child) = self.groups.get_mut(&mid) {
                        child.member_of.remove(id);
                    }
                }
            }
        }
        let seq = self
            .bump_group(id)
            .ok_or_else(|| MutationError::NotFound(id.to_string()))?;
        if let Some(grp) = self.groups.get_mut(id) {
            grp.e.life = Life::Purged;
            grp.e.life_seq = seq;
            grp.e.props = Box::new([]);
            grp.e.prop_seqs = Vec::new();
            grp.removed = BTreeMap::new();
            grp.member_log = BTreeMap::new();
        }
        Ok(())
    }

    /// Adds a direct member (a live user or group) to a live group.
    pub(crate) fn add_member(
        &mut self,
        group_id: &str,
        member_id: &str,
    ) -> Result<(), MutationError> {
        let grp = self.live_group(group_id)?;
        let gid = grp.e.id.clone();
        if grp.members.contains_key(member_id) {
            return Err(MutationError::AlreadyMember {
                group: group_id.to_string(),
                member: member_id.to_string(),
            });
        }
        if group_id == member_id {
            return Err(MutationError::Invalid(
                "a group cannot contain itself".into(),
            ));
        }
        let (mid, kind) = if let Ok(user) = self.live_user(member_id) {
            (user.e.id.clone(), Kind::User)
        } else if let Ok(child) = self.live_group(member_id) {
            (child.e.id.clone(), Kind::Group)
        } else {
            return Err(MutationError::NotFound(member_id.to_string()));
        };
        let seq = self
            .bump_group(group_id)
            .ok_or_else(|| MutationError::NotFound(group_id.to_string()))?;
        if let Some(grp) = self.groups.get_mut(group_id) {
            if let Some(old) = grp.removed.remove(&mid) {
                grp.member_log.remove(&old.seq);
            }
            grp.members.insert(mid.clone(), Edge { kind, seq });
            grp.member_log.insert(seq, mid.clone());
            grp.e.rel_seq = seq;
        }
        match kind {
            Kind::User => {
                if let Some(u) = self.users.get_mut(&mid) {
                    u.member_of.insert(gid);
                }
            }
            Kind::Group => {
                if let Some(child) = self.groups.get_mut(&mid) {
                    child.member_of.insert(gid);
                }
            }
        }
        Ok(())
    }

    /// Removes a direct member from a live group.
    pub(crate) fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
    ) -> Result<(), MutationError> {
        let grp = self.live_group(group_id)?;
        let Some(edge) = grp.members.get(member_id).copied() else {
            return Err(MutationError::NotMember {
                group: group_id.to_string(),
                member: member_id.to_string(),
            });
        };
        self.remove_edge(group_id, member_id);
        match edge.kind {
            Kind::User => {
                if let Some(u) = self.users.get_mut(member_id) {
                    u.member_of.remove(group_id);
                }
            }
            Kind::Group => {
                if let Some(child) = self.groups.get_mut(member_id) {
                    child.member_of.remove(group_id);
                }
            }
        }
        Ok(())
    }

    /// Removes the edge group -> member and logs the removal (the member side is the
    /// caller's business).
    fn remove_edge(&mut self, group_id: &str, member_id: &str) {
        if !self
            .groups
            .get(group_id)
            .is_some_and(|g| g.members.contains_key(member_id))
        {
            return;
        }
        let Some(seq) = self.bump_group(group_id) else {
            return;
        };
        if let Some(grp) = self.groups.get_mut(group_id)
            && let Some((mid, edge)) = grp.members.remove_entry(member_id)
        {
            grp.member_log.remove(&edge.seq);
            grp.removed.insert(
                mid.clone(),
                Edge {
                    kind: edge.kind,
                    seq,
                },
            );
            grp.member_log.insert(seq, mid);
            grp.e.rel_seq = seq;
        }
    }

    // ----- inspection --------------------------------------------------------------------

    /// The user as `snapshot()` shows it: every property as a delta page with all properties
    /// selected would show it, without `manager@delta`, plus `managerId` (string or null).
    pub(crate) fn user_snapshot_json(user: &User) -> Value {
        let mut m = user
            .e
            .json(Kind::User, &Select::all(Kind::User, false), None, false);
        put(
            &mut m,
            "managerId",
            user.manager
                .as_deref()
                .map_or(Value::Null, |s| Value::String(s.to_string())),
        );
        Value::Object(m)
    }

    /// Live objects and direct memberships, sorted by id.
    pub(crate) fn snapshot(&self) -> DirectorySnapshot {
        let users = self
            .users
            .values()
            .filter(|u| u.e.is_live())
            .map(Self::user_snapshot_json)
            .collect();
        let all_groups = Select::all(Kind::Group, false);
        let mut groups = Vec::new();
        let mut memberships = Vec::new();
        for grp in self.groups.values().filter(|g| g.e.is_live()) {
            groups.push(Value::Object(grp.e.json(
                Kind::Group,
                &all_groups,
                None,
                false,
            )));
            for (mid, edge) in &grp.members {
                memberships.push(Membership {
                    group_id: grp.e.id.to_string(),
                    member_id: mid.to_string(),
                    member_type: match edge.kind {
                        Kind::User => "user".to_string(),
                        Kind::Group => "group".to_string(),
                    },
                });
            }
        }
        DirectorySnapshot {
            users,
            groups,
            memberships,
        }
    }

    /// Number of live users and groups.
    pub(crate) fn live_counts(&self) -> (usize, usize) {
        (
            self.users.values().filter(|u| u.e.is_live()).count(),
            self.groups.values().filter(|g| g.e.is_live()).count(),
        )
    }

    /// Looks up a user id by (case-insensitive) UPN, for tests and the HTTP surface.
    pub(crate) fn user_by_upn(&self, upn: &str) -> Option<&User> {
        self.users.values().find(|u| {
            u.e.is_live()
                && u.e
                    .prop(u::UPN)
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(upn))
        })
    }
}

/// Lower-case alphanumerics of a display name (for mail nicknames and domains).
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
