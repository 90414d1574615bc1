//! Per-connection settings: schedule, scope filters, attribute mapping, provisioning rules,
//! group -> role mapping and the circuit breaker's threshold (docs/sync-semantics.md is the
//! reference for people).
//!
//! Settings are stored whole and versioned: every save names the version it replaces, so two
//! admins editing at once cannot silently overwrite each other. [`ConnectionSettings::validate`]
//! runs before every save and says, in plain words, what is wrong. People edit them with a JSON
//! object merged onto the stored settings ([`ConnectionSettings::apply_edit`], [`changes`]).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::filters::ScopeFilters;
use crate::mapping::AttributeMapping;

mod input;
pub use input::{SettingsChange, changes, edited_version, parse_edit};

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

/// The count rule of the circuit breaker: a fixed number of users, or `"auto"`, which scales
/// with the users the connection manages (see [`MaxCount::AUTO_SHARE_PERCENT`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxCount {
    /// 1 % of the active and pending users, at least 50 and at most 500.
    #[default]
    Auto,
    Fixed(u64),
}

impl MaxCount {
    /// The share of the managed users the automatic count allows...
    pub const AUTO_SHARE_PERCENT: u64 = 1;
    /// ... never fewer than this many (a small directory keeps the old default) ...
    pub const AUTO_MIN: u64 = 50;
    /// ... and never more (the default of Entra's own accidental-deletions prevention).
    pub const AUTO_MAX: u64 = 500;

    /// The number of users a run may deactivate without a hold, for `managed` active and
    /// pending users.
    pub fn limit(self, managed: u64) -> u64 {
        match self {
            MaxCount::Fixed(n) => n,
            MaxCount::Auto => (managed.saturating_mul(Self::AUTO_SHARE_PERCENT) / 100)
                .clamp(Self::AUTO_MIN, Self::AUTO_MAX),
        }
    }
}

impl From<u64> for MaxCount {
    fn from(n: u64) -> Self {
        MaxCount::Fixed(n)
    }
}

impl std::fmt::Display for MaxCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxCount::Auto => write!(
                f,
                "auto ({} % of the managed users, {} to {})",
                Self::AUTO_SHARE_PERCENT,
                Self::AUTO_MIN,
                Self::AUTO_MAX
            ),
            MaxCount::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for MaxCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxCount::Auto => s.serialize_str("auto"),
            MaxCount::Fixed(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for MaxCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MaxCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"auto\" or a number of users")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<MaxCount, E> {
                Ok(MaxCount::Fixed(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<MaxCount, E> {
                u64::try_from(n)
                    .map(MaxCount::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxCount, E> {
                match v {
                    "auto" => Ok(MaxCount::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The mass-change circuit breaker: a run that would deactivate more than `max_count` users, or
/// more than `max_percent` of the active and pending users it manages (once at least
/// `min_count_for_percent` would go), stops before writing those deactivations and waits for a
/// confirm or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerThreshold {
    pub max_count: MaxCount,
    pub max_percent: u8,
    pub min_count_for_percent: u64,
}

impl Default for BreakerThreshold {
    /// An automatic count (1 % of the managed users, 50 to 500), or 10 % once at least 5 would
    /// go: an ordinary day's leavers pass in a large directory, a bad read or a mass disable
    /// never does.
    fn default() -> Self {
        Self {
            max_count: MaxCount::Auto,
            max_percent: 10,
            min_count_for_percent: 5,
        }
    }
}

impl BreakerThreshold {
    /// The threshold that `deactivations` out of `active_before` exceeds, in plain words.
    pub fn tripped_by(&self, deactivations: u64, active_before: u64) -> Option<String> {
        let limit = self.max_count.limit(active_before);
        if deactivations > limit {
            return Some(match self.max_count {
                MaxCount::Fixed(_) => format!("more than {limit} users"),
                MaxCount::Auto => format!(
                    "more than {limit} users (the automatic count for {active_before} managed users)"
                ),
            });
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

    /// Parse settings from JSON and validate them: a JSON object whose fields left out keep
    /// their defaults (unknown fields are errors, so a typo is never ignored; every problem is
    /// listed). To edit stored settings, see [`ConnectionSettings::apply_edit`].
    pub fn from_json(json: &str) -> Result<Self, SettingsError> {
        let edit = parse_edit(json)?;
        let mut s = ConnectionSettings::default().apply_edit(&edit)?;
        s.version = edited_version(&edit).unwrap_or(0);
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
        assert_eq!(t.tripped_by(0, 0), None);
        let fixed = BreakerThreshold {
            max_count: MaxCount::Fixed(50),
            ..t
        };
        assert!(fixed.tripped_by(51, 100_000).is_some(), "count rule");
    }

    #[test]
    fn the_automatic_count_scales_with_the_directory() {
        let t = BreakerThreshold::default();
        // (deactivations, managed users, held?)
        let cases = [
            (100, 100_000, false), // an ordinary day of a large tenant: 0.1 %
            (500, 100_000, false),
            (501, 100_000, true), // never more than Entra's default of 500
            (501, 10_000_000, true),
            (51, 1_000, true), // at least 50 (and the share rule)
            (50, 4_000, false),
            (51, 4_000, true),
            (150, 15_000, false), // 1 %
            (151, 15_000, true),
        ];
        for (n, managed, held) in cases {
            assert_eq!(t.tripped_by(n, managed).is_some(), held, "{n} of {managed}");
        }
        assert!(
            t.tripped_by(501, 100_000).unwrap().contains("500"),
            "names the number"
        );
    }

    #[test]
    fn max_count_reads_auto_or_a_number() {
        let b: BreakerThreshold = serde_json::from_str(r#"{"max_count":"auto"}"#).unwrap();
        assert_eq!(b.max_count, MaxCount::Auto);
        let b: BreakerThreshold = serde_json::from_str(r#"{"max_count":7}"#).unwrap();
        assert_eq!(b.max_count, MaxCount::Fixed(7));
        assert_eq!(serde_json::to_value(b).unwrap()["max_count"], 7);
        assert_eq!(
            serde_json::to_value(BreakerThreshold::default()).unwrap()["max_count"],
            "auto"
        );
        for bad in [
            r#"{"max_count":"many"}"#,
            r#"{"max_count":-1}"#,
            r#"{"max_count":1.5}"#,
        ] {
            assert!(
                serde_json::from_str::<BreakerThreshold>(bad).is_err(),
                "{bad}"
            );
        }
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
