//! "Does the stored state equal the directory?" — the check the demo, the end-to-end tests and
//! the benchmarks make. The directory side is the emulator's snapshot, read through the same
//! Graph JSON mapping the client uses, so both sides speak the core model.

use std::collections::{BTreeMap, BTreeSet};

use entra_sync_core::model::{DirectoryGroup, DirectoryUser};
use entra_sync_emulator::DirectorySnapshot;
use entra_sync_graph::{group_from_graph_json, user_from_graph_json};

use crate::runtime::Export;

/// The outcome of a comparison; `differences` names the first few mismatches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    pub users_expected: usize,
    pub users_stored: usize,
    pub groups_expected: usize,
    pub groups_stored: usize,
    pub memberships_expected: usize,
    pub memberships_stored: usize,
    pub mismatches: usize,
    pub differences: Vec<String>,
}

impl Verification {
    pub fn matches(&self) -> bool {
        self.mismatches == 0
    }

    fn differ(&mut self, what: String) {
        self.mismatches += 1;
        if self.differences.len() < 10 {
            self.differences.push(what);
        }
    }
}

/// Compare what the mirror holds as present with the live directory.
pub fn compare(stored: &Export, directory: &DirectorySnapshot) -> Verification {
    let mut v = Verification::default();

    let mut expected_users: BTreeMap<String, DirectoryUser> = BTreeMap::new();
    for u in &directory.users {
        match user_from_graph_json(u) {
            Ok(user) => {
                expected_users.insert(user.id.clone(), user);
            }
            Err(e) => v.differ(format!("directory user not understood: {e}")),
        }
    }
    let stored_users: BTreeMap<&str, &DirectoryUser> = stored
        .users
        .iter()
        .filter(|u| u.presence.is_present())
        .map(|u| (u.user.id.as_str(), &u.user))
        .collect();
    v.users_expected = expected_users.len();
    v.users_stored = stored_users.len();
    for (id, want) in &expected_users {
        match stored_users.get(id.as_str()) {
            None => v.differ(format!("user {id} missing from the store")),
            Some(got) if *got != want => v.differ(format!(
                "user {id} differs in {}",
                user_fields_differing(got, want)
            )),
            Some(_) => {}
        }
    }
    for id in stored_users.keys() {
        if !expected_users.contains_key(*id) {
            v.differ(format!("user {id} stored but not in the directory"));
        }
    }

    let mut expected_groups: BTreeMap<String, DirectoryGroup> = BTreeMap::new();
    for g in &directory.groups {
        match group_from_graph_json(g) {
            Ok(group) => {
                expected_groups.insert(group.id.clone(), group);
            }
            Err(e) => v.differ(format!("directory group not understood: {e}")),
        }
    }
    let stored_groups: BTreeMap<&str, &DirectoryGroup> = stored
        .groups
        .iter()
        .filter(|g| g.presence.is_present())
        .map(|g| (g.group.id.as_str(), &g.group))
        .collect();
    v.groups_expected = expected_groups.len();
    v.groups_stored = stored_groups.len();
    for (id, want) in &expected_groups {
        match stored_groups.get(id.as_str()) {
            None => v.differ(format!("group {id} missing from the store")),
            Some(got) if *got != want => v.differ(format!("group {id} differs")),
            Some(_) => {}
        }
    }
    for id in stored_groups.keys() {
        if !expected_groups.contains_key(*id) {
            v.differ(format!("group {id} stored but not in the directory"));
        }
    }

    let expected_edges: BTreeSet<(&str, &str)> = directory
        .memberships
        .iter()
        .map(|m| (m.group_id.as_str(), m.member_id.as_str()))
        .collect();
    let stored_edges: BTreeSet<(&str, &str)> = stored
        .memberships
        .iter()
        .filter(|e| e.present)
        .map(|e| (e.group_id.as_str(), e.member.id.as_str()))
        .collect();
    v.memberships_expected = expected_edges.len();
    v.memberships_stored = stored_edges.len();
    for (g, m) in expected_edges.difference(&stored_edges) {
        v.differ(format!("membership {g}/{m} missing from the store"));
    }
    for (g, m) in stored_edges.difference(&expected_edges) {
        v.differ(format!(
            "membership {g}/{m} stored but not in the directory"
        ));
    }
    v
}

/// Names (never values: they are personal data) of the fields where two users differ.
fn user_fields_differing(a: &DirectoryUser, b: &DirectoryUser) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return "unknown fields".to_owned();
    };
    let names: Vec<&str> = a
        .iter()
        .filter(|(k, v)| b.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    names.join(", ")
}
