//! Seeded random mutations of a tenant (`TenantHandle::random_churn`).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::directory::{Directory, GroupKind, Life, NewGroup, NewUser, Patch, slug};
use crate::model::{Pv, u};

/// What `random_churn` did, by kind of change.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChurnSummary {
    pub users_created: usize,
    pub users_updated: usize,
    pub users_disabled: usize,
    pub users_enabled: usize,
    pub users_soft_deleted: usize,
    pub users_restored: usize,
    pub users_purged: usize,
    pub managers_changed: usize,
    pub members_added: usize,
    pub members_removed: usize,
    pub groups_created: usize,
    pub groups_updated: usize,
    pub groups_deleted: usize,
    /// Attempts that found nothing suitable (e.g. no deleted user to restore).
    pub skipped: usize,
}

impl ChurnSummary {
    /// Changes applied (without `skipped`).
    pub fn total(&self) -> usize {
        self.users_created
            + self.users_updated
            + self.users_disabled
            + self.users_enabled
            + self.users_soft_deleted
            + self.users_restored
            + self.users_purged
            + self.managers_changed
            + self.members_added
            + self.members_removed
            + self.groups_created
            + self.groups_updated
            + self.groups_deleted
    }
}

impl std::fmt::Display for ChurnSummary {
    /// `"57 changes: 6 users created, 16 users updated, ..."` (kinds with a zero count left
    /// out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.users_created, "users created"),
            (self.users_updated, "users updated"),
            (self.users_disabled, "users disabled"),
            (self.users_enabled, "users enabled"),
            (self.users_soft_deleted, "users soft-deleted"),
            (self.users_restored, "users restored"),
            (self.users_purged, "users purged"),
            (self.managers_changed, "managers changed"),
            (self.members_added, "members added"),
            (self.members_removed, "members removed"),
            (self.groups_created, "groups created"),
            (self.groups_updated, "groups updated"),
            (self.groups_deleted, "groups deleted"),
        ];
        let listed: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        write!(f, "{} changes", self.total())?;
        if !listed.is_empty() {
            write!(f, ": {}", listed.join(", "))?;
        }
        Ok(())
    }
}

const TITLES: &[&str] = &[
    "Senior Software Engineer",
    "Principal Engineer",
    "Sales Director",
    "Analyst",
    "Team Lead",
    "Consultant",
    "Specialist",
    "Coordinator",
    "Manager",
];
const DEPTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Finance",
    "HR",
    "Support",
    "Marketing",
    "Legal",
    "Operations",
];
const OFFICES: &[&str] = &[
    "Seattle HQ",
    "New York",
    "London",
    "Berlin",
    "Remote",
    "Toronto",
];
const NAMES: &[&str] = &[
    "Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan", "Kai", "Logan",
    "Morgan", "Parker", "Reese", "Rowan", "Skyler", "Taylor",
];
const SURNAMES: &[&str] = &[
    "Stone", "Rivers", "Hale", "Brooks", "Frost", "Lane", "Marsh", "Reed", "Shaw", "Vale",
];

fn pick_str(rng: &mut ChaCha8Rng, items: &[&'static str]) -> &'static str {
    items.choose(rng).copied().unwrap_or("x")
}

fn pick_owned(rng: &mut ChaCha8Rng, items: &[String]) -> String {
    items.choose(rng).cloned().unwrap_or_default()
}

/// A random user id in the given life state (a few tries, then `None`).
fn random_user(dir: &Directory, rng: &mut ChaCha8Rng, life: Life) -> Option<String> {
    for _ in 0..32 {
        let id = dir.user_ids.choose(rng)?;
        if dir.users.get(id).is_some_and(|u| u.e.life == life) {
            return Some(id.to_string());
        }
    }
    None
}

fn random_live_group(dir: &Directory, rng: &mut ChaCha8Rng) -> Option<String> {
    for _ in 0..32 {
        let id = dir.group_ids.choose(rng)?;
        if dir.groups.get(id).is_some_and(|g| g.e.is_live()) {
            return Some(id.to_string());
        }
    }
    None
}

/// Applies `n` seeded random changes.
pub(crate) fn random_churn(dir: &mut Directory, seed: u64, n: usize, now: &str) -> ChurnSummary {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = ChurnSummary::default();
    for _ in 0..n {
        let roll = rng.random_range(0..100u32);
        let done = match roll {
            0..10 => create_user(dir, &mut rng, now).map(|()| s.users_created += 1),
            10..38 => update_user(dir, &mut rng).map(|()| s.users_updated += 1),
            38..45 => set_enabled(dir, &mut rng, false).map(|()| s.users_disabled += 1),
            45..49 => set_enabled(dir, &mut rng, true).map(|()| s.users_enabled += 1),
            49..55 => random_user(dir, &mut rng, Life::Live)
                .and_then(|id| dir.delete_user(&id).ok())
                .map(|()| s.users_soft_deleted += 1),
            55..58 => random_user(dir, &mut rng, Life::SoftDeleted)
                .and_then(|id| dir.restore_user(&id).ok())
                .map(|()| s.users_restored += 1),
            58..61 => {
                let id = random_user(dir, &mut rng, Life::SoftDeleted)
                    .or_else(|| random_user(dir, &mut rng, Life::Live));
                id.and_then(|id| dir.purge_user(&id).ok())
                    .map(|()| s.users_purged += 1)
            }
            61..69 => change_manager(dir, &mut rng).map(|()| s.managers_changed += 1),
            69..82 => add_member(dir, &mut rng).map(|()| s.members_added += 1),
            82..93 => remove_member(dir, &mut rng).map(|()| s.members_removed += 1),
            93..95 => {
                let kind = *[GroupKind::Security, GroupKind::Microsoft365]
                    .choose(&mut rng)
                    .unwrap_or(&GroupKind::Security);
                let name = format!("Churn Group {}", rng.random_range(0..1_000_000));
                let mut g = NewGroup::new(name, kind);
                g.description = Some("created by random churn".into());
                dir.create_group(&g, now);
                s.groups_created += 1;
                Some(())
            }
            95..98 => random_live_group(dir, &mut rng)
                .and_then(|id| {
                    let mut p = Patch::new();
                    p.insert(
                        "description".into(),
                        json!(format!("updated {}", rng.random_range(0..1_000_000))),
                    );
                    dir.update_group(&id, &p).ok()
                })
                .map(|()| s.groups_updated += 1),
            _ => random_live_group(dir, &mut rng)
                .and_then(|id| dir.delete_group(&id).ok())
                .map(|()| s.groups_deleted += 1),
        };
        if done.is_none() {
            s.skipped += 1;
        }
    }
    s
}

fn create_user(dir: &mut Directory, rng: &mut ChaCha8Rng, now: &str) -> Option<()> {
    let given = pick_str(rng, NAMES);
    let surname = pick_str(rng, SURNAMES);
    let n = rng.random_range(0..1_000_000);
    let local = format!("{}.{}{n}", given.to_lowercase(), slug(surname));
    if rng.random_bool(0.1) {
        // A B2B guest.
        let mail = format!("{local}@partner.example");
        let upn = format!("{local}_partner.example#EXT#@{}", dir.meta.initial_domain);
        let mut new = NewUser::new(format!("{given} {surname} (Guest)"), upn);
        new.mail = Some(mail);
        new.user_type = Some("Guest".into());
        return dir.create_user(&new, now).ok().map(|_| ());
    }
    let domain = if dir.meta.domains.is_empty() || rng.random_bool(0.7) {
        dir.meta.default_domain.clone()
    } else {
        pick_owned(rng, &dir.meta.domains)
    };
    let upn = format!("{local}@{domain}");
    let mut new = NewUser::new(format!("{given} {surname}"), upn);
    new.given_name = Some(given.to_string());
    new.surname = Some(surname.to_string());
    new.properties
        .insert("department".into(), json!(pick_str(rng, DEPTS)));
    new.properties
        .insert("jobTitle".into(), json!(pick_str(rng, TITLES)));
    new.properties.insert("usageLocation".into(), json!("US"));
    new.properties
        .insert("employeeId".into(), json!(format!("N{n:06}")));
    let id = dir.create_user(&new, now).ok()?;
    if rng.random_bool(0.8)
        && let Some(mgr) = random_user(dir, rng, Life::Live).filter(|m| *m != id)
    {
        let _ = dir.set_manager(&id, Some(&mgr));
    }
    Some(())
}

fn update_user(dir: &mut Directory, rng: &mut ChaCha8Rng) -> Option<()> {
    let id = random_user(dir, rng, Life::Live)?;
    let mut p = Patch::new();
    let fields = rng.random_range(1..4);
    for _ in 0..fields {
        match rng.random_range(0..7) {
            0 => {
                p.insert("jobTitle".into(), json!(pick_str(rng, TITLES)));
            }
            1 => {
                p.insert("department".into(), json!(pick_str(rng, DEPTS)));
            }
            2 => {
                p.insert("officeLocation".into(), json!(pick_str(rng, OFFICES)));
            }
            3 => {
                let v = if rng.random_bool(0.3) {
                    Value::Null
                } else {
                    json!(format!("+1 425 555 {:04}", rng.random_range(0..10_000)))
                };
                p.insert("mobilePhone".into(), v);
            }
            4 => {
                let user = dir.users.get(id.as_str())?;
                let given = user
                    .e
                    .prop(u::GIVEN_NAME)
                    .as_str()
                    .unwrap_or("Pat")
                    .to_string();
                let surname = pick_str(rng, SURNAMES);
                p.insert("surname".into(), json!(surname));
                p.insert("displayName".into(), json!(format!("{given} {surname}")));
            }
            5 => {
                p.insert(
                    "businessPhones".into(),
                    json!([format!("+1 206 555 {:04}", rng.random_range(0..10_000))]),
                );
            }
            _ => {
                let user = dir.users.get(id.as_str())?;
                if matches!(user.e.prop(u::MAIL), Pv::Str(_)) && rng.random_bool(0.5) {
                    p.insert("mail".into(), Value::Null);
                } else {
                    p.insert("city".into(), json!(pick_str(rng, OFFICES)));
                }
            }
        }
    }
    dir.update_user(&id, &p).ok()
}

fn set_enabled(dir: &mut Directory, rng: &mut ChaCha8Rng, enabled: bool) -> Option<()> {
    for _ in 0..16 {
        let id = random_user(dir, rng, Life::Live)?;
        let current = dir
            .users
            .get(id.as_str())
            .map(|u| u.e.prop(u::ACCOUNT_ENABLED).clone());
        if current == Some(Pv::Bool(enabled)) {
            continue;
        }
        let mut p = Patch::new();
        p.insert("accountEnabled".into(), Value::Bool(enabled));
        return dir.update_user(&id, &p).ok();
    }
    None
}

fn change_manager(dir: &mut Directory, rng: &mut ChaCha8Rng) -> Option<()> {
    let id = random_user(dir, rng, Life::Live)?;
    if rng.random_bool(0.15) {
        let has = dir.users.get(id.as_str())?.manager.is_some();
        if has {
            return dir.set_manager(&id, None).ok();
        }
    }
    let mgr = random_user(dir, rng, Life::Live)?;
    if mgr == id || dir.users.get(id.as_str())?.manager.as_deref() == Some(mgr.as_str()) {
        return None;
    }
    dir.set_manager(&id, Some(&mgr)).ok()
}

fn add_member(dir: &mut Directory, rng: &mut ChaCha8Rng) -> Option<()> {
    let gid = random_live_group(dir, rng)?;
    let member = if rng.random_bool(0.05) {
        random_live_group(dir, rng)?
    } else {
        random_user(dir, rng, Life::Live)?
    };
    dir.add_member(&gid, &member).ok()
}

fn remove_member(dir: &mut Directory, rng: &mut ChaCha8Rng) -> Option<()> {
    for _ in 0..8 {
        let gid = random_live_group(dir, rng)?;
        let grp = dir.groups.get(gid.as_str())?;
        if grp.members.is_empty() {
            continue;
        }
        let idx = rng.random_range(0..grp.members.len());
        let mid = grp.members.keys().nth(idx)?.to_string();
        return dir.remove_member(&gid, &mid).ok();
    }
    None
}
