//! Per-connection settings: schedule, scope filters, attribute mapping, provisioning rules,
//! group -> role mapping and the circuit breaker's threshold (PRODUCT.md section 2).
//!
//! Settings are stored whole and versioned: every save names the version it replaces, so two
//! admins editing at once cannot silently overwrite each other. [`ConnectionSettings::validate`]
//! runs before every save and says, in plain words, what is wrong.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::filters::ScopeFilters;
use crate::mapping::AttributeMapping;

/// How often a directory is synced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "every", rename_all = "snake_case")]
pub enum Schedule {
    /// Every scheduler tick (hourly).
    #[default]
    Hourly,
    /// Once a day, in the scheduler tick of this UTC hour.
    Daily { hour_utc: u8 },
}

impl Schedule {
    /// Whether a scheduler tick at `now` should sync this directory.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        use chrono::Timelike;
        match self {
            Schedule::Hourly => true,
            Schedule::Daily { hour_utc } => now.hour() == u32::from(*hour_utc),
        }
    }
}

/// When users whose directory account was disabled are deactivated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum Deprovisioning {
    /// In every run that sees the account disabled.
    #[default]
    EveryRun,
    /// Nightly deprovisioning: only in the run of this UTC hour; other runs keep the user as it
    /// is (and the activity log says the deactivation waits for the night).
    Nightly { hour_utc: u8 },
}

impl Deprovisioning {
    pub fn allows_deactivation_at(&self, now: DateTime<Utc>) -> bool {
        use chrono::Timelike;
        match self {
            Deprovisioning::EveryRun => true,
            Deprovisioning::Nightly { hour_utc } => now.hour() == u32::from(*hour_utc),
        }
    }
}

/// What a scheduled (or "sync now") run applies by itself; the rest waits for a manual import
/// chosen from the preview.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Automatic {
    /// New users are created and existing ones updated.
    #[default]
    Everything,
    /// Existing users are updated (and deactivated); new users wait for a manual import.
    UpdatesOnly,
    /// Runs keep the mirror current but change no local user; imports apply changes.
    Nothing,
}

/// What a sync does to the host product's users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvisioningRules {
    /// What runs apply without a manual import.
    pub automatic: Automatic,
    /// New users whose email domain is one of the tenant's verified domains start *active*
    /// instead of *pending* (which needs an activation in the host product).
    pub auto_activate_verified_domains: bool,
    pub deprovisioning: Deprovisioning,
    /// A user deleted in the host product is created again by the next run if it still matches.
    pub recreate_deleted_locally: bool,
}

impl Default for ProvisioningRules {
    fn default() -> Self {
        Self {
            automatic: Automatic::Everything,
            auto_activate_verified_domains: false,
            deprovisioning: Deprovisioning::EveryRun,
            recreate_deleted_locally: true,
        }
    }
}

/// A directory group whose members (direct or nested) get a role in the host product.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    pub group_id: String,
    pub role: String,
}

/// The mass-change circuit breaker: a run that would deactivate more than `max_count` users, or
/// more than `max_percent` of the active and pending users it manages (once at least
/// `min_count_for_percent` would go), stops before writing and waits for a confirm or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerThreshold {
    pub max_count: u64,
    pub max_percent: u8,
    pub min_count_for_percent: u64,
}

impl Default for BreakerThreshold {
    /// 50 users, or 10 % once at least 5 would go: a few leavers pass, a bad read or a mass
    /// disable never does.
    fn default() -> Self {
        Self {
            max_count: 50,
            max_percent: 10,
            min_count_for_percent: 5,
        }
    }
}

impl BreakerThreshold {
    /// The threshold that `deactivations` out of `active_before` exceeds, in plain words.
    pub fn tripped_by(&self, deactivations: u64, active_before: u64) -> Option<String> {
        if deactivations > self.max_count {
            return Some(format!("more than {} users", self.max_count));
        }
        if deactivations >= self.min_count_for_percent.max(1)
            && active_before > 0
            && deactivations.saturating_mul(100)
                > u64::from(self.max_percent).saturating_mul(active_before)
        {
            return Some(format!(
                "more than {} % of the {} users it manages",
                self.max_percent, active_before
            ));
        }
        None
    }
}

/// Everything a customer can configure for one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// Bumped by every save; 0 means "never saved" (the defaults).
    pub version: u64,
    pub schedule: Schedule,
    pub filters: ScopeFilters,
    pub mapping: AttributeMapping,
    pub provisioning: ProvisioningRules,
    pub group_roles: Vec<GroupRole>,
    pub breaker: BreakerThreshold,
    /// Actions on the directory: which kinds are enabled and which wait for an approver.
    pub actions: crate::actions::ActionSettings,
    /// HR webhooks: which HR fields select which groups and apps, and when dated steps run.
    pub hr: crate::webhooks::HrSettings,
}

/// Why settings cannot be saved: every problem, each in plain words naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid settings: {}", .problems.join("; "))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

impl ConnectionSettings {
    /// Check everything and list every problem (not just the first).
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let hour_ok = |h: u8| h < 24;
        if let Schedule::Daily { hour_utc } = self.schedule
            && !hour_ok(hour_utc)
        {
            problems.push(format!("schedule.hour_utc must be 0-23, got {hour_utc}"));
        }
        if let Deprovisioning::Nightly { hour_utc } = self.provisioning.deprovisioning
            && !hour_ok(hour_utc)
        {
            problems.push(format!(
                "provisioning.deprovisioning.hour_utc must be 0-23, got {hour_utc}"
            ));
        }
        problems.extend(self.filters.problems());
        problems.extend(self.mapping.problems());
        problems.extend(self.actions.problems());
        problems.extend(self.hr.problems());
        let mut seen = BTreeSet::new();
        for (i, gr) in self.group_roles.iter().enumerate() {
            if gr.group_id.trim().is_empty() {
                problems.push(format!("group_roles[{i}].group_id is empty"));
            }
            if gr.role.trim().is_empty() {
                problems.push(format!("group_roles[{i}].role is empty"));
            }
            if !seen.insert((gr.group_id.as_str(), gr.role.as_str())) {
                problems.push(format!(
                    "group_roles[{i}] repeats group {} -> role {}",
                    gr.group_id, gr.role
                ));
            }
        }
        if self.breaker.max_percent > 100 {
            problems.push(format!(
                "breaker.max_percent must be 0-100, got {}",
                self.breaker.max_percent
            ));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(SettingsError { problems }),
        }
    }

    /// Parse settings from JSON (unknown fields are errors, so a typo is never ignored) and
    /// validate them.
    pub fn from_json(json: &str) -> Result<Self, SettingsError> {
        let s: Self = serde_json::from_str(json).map_err(|e| SettingsError {
            problems: vec![format!("not valid settings JSON: {e}")],
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Roles for the given set of groups a user belongs to (directly or nested), sorted.
    pub fn roles_for<'a>(&'a self, is_member: impl Fn(&str) -> bool) -> Vec<String> {
        let roles: BTreeSet<&'a str> = self
            .group_roles
            .iter()
            .filter(|gr| is_member(&gr.group_id))
            .map(|gr| gr.role.as_str())
            .collect();
        roles.into_iter().map(str::to_owned).collect()
    }

    /// A short human description of the filters and mapping (the demo and the CLI print it).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = self.filters.describe();
        lines.push(format!("mapping: {}", self.mapping.describe()));
        if !self.group_roles.is_empty() {
            let roles: Vec<String> = self
                .group_roles
                .iter()
                .map(|gr| format!("{} -> {}", gr.group_id, gr.role))
                .collect();
            lines.push(format!("group roles: {}", roles.join(", ")));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_exclude_guests_and_disabled() {
        let s = ConnectionSettings::default();
        s.validate().unwrap();
        assert!(!s.filters.include_disabled);
        assert_eq!(s.provisioning.automatic, Automatic::Everything);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let json = r#"{"schedule":{"every":"daily","hour_utc":25},
            "mapping":{"fields":[{"target":"Bad Name","source":"jobTitle"},{"target":"x","source":"nope"}]},
            "group_roles":[{"group_id":"","role":"admin"}],
            "breaker":{"max_percent":150}}"#;
        let e = ConnectionSettings::from_json(json).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("schedule.hour_utc"), "{text}");
        assert!(text.contains("Bad Name"), "{text}");
        assert!(text.contains("nope"), "{text}");
        assert!(text.contains("group_roles[0].group_id"), "{text}");
        assert!(text.contains("max_percent"), "{text}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = ConnectionSettings::from_json(r#"{"filtres":{}}"#).unwrap_err();
        assert!(e.to_string().contains("filtres"), "{e}");
    }

    #[test]
    fn breaker_trips_on_count_or_share() {
        let t = BreakerThreshold::default();
        assert_eq!(
            t.tripped_by(3, 10),
            None,
            "below the minimum for the share rule"
        );
        assert!(t.tripped_by(5, 10).is_some(), "50 % of 10");
        assert_eq!(t.tripped_by(5, 1000), None);
        assert!(t.tripped_by(51, 100_000).is_some(), "count rule");
        assert_eq!(t.tripped_by(0, 0), None);
    }

    #[test]
    fn daily_schedule_is_due_once_a_day() {
        let s = Schedule::Daily { hour_utc: 3 };
        let at = |h: u32| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 23, h, 17, 0).unwrap();
        assert!(s.is_due(at(3)));
        assert!(!s.is_due(at(4)));
        assert!(Schedule::Hourly.is_due(at(4)));
    }
}
