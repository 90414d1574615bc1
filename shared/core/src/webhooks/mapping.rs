//! From HR events to workflows: the `hr` section of a connection's settings (which HR fields
//! select which groups and apps, and the hours dated steps run at), the state we keep per HR
//! person, and the pure decision [`decide`]: given an event, the person's state and the
//! person's current workflows, what to start, re-schedule or cancel. The service does the I/O.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::Source;
use super::payload::{HrEvent, HrEventKind};
use crate::actions::kind::is_guid;
use crate::actions::workflow::AppRef;
use crate::model::TenantId;

/// Which HR field a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HrField {
    Department,
    /// The manager as the HR system names them (an email or an HR id).
    Manager,
}

impl HrField {
    /// The documented (serialised) word: `department`, `manager`.
    pub fn as_str(self) -> &'static str {
        match self {
            HrField::Department => "department",
            HrField::Manager => "manager",
        }
    }
}

/// People whose `field` equals `equals` (case-insensitive) get these groups and apps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrRule {
    pub field: HrField,
    pub equals: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppRef>,
}

/// The `hr` section of a connection's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HrSettings {
    /// Groups every hire joins (ids or display names).
    pub groups: Vec<String>,
    /// Apps every hire gets.
    pub apps: Vec<AppRef>,
    /// More groups and apps selected by department or manager.
    pub rules: Vec<HrRule>,
    /// The UTC hour of the start date at which onboarding runs.
    pub onboarding_hour_utc: u8,
    /// The UTC hour of the end date at which offboarding runs.
    pub offboarding_hour_utc: u8,
}

impl Default for HrSettings {
    fn default() -> Self {
        Self {
            groups: vec![],
            apps: vec![],
            rules: vec![],
            onboarding_hour_utc: 6,
            offboarding_hour_utc: 18,
        }
    }
}

/// Groups and apps, deduplicated and sorted (case-insensitive for group names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub groups: Vec<String>,
    pub apps: Vec<AppRef>,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.apps.is_empty()
    }

    fn from_parts<'a>(
        groups: impl Iterator<Item = &'a String>,
        apps: impl Iterator<Item = &'a AppRef>,
    ) -> Self {
        let mut seen = BTreeSet::new();
        let mut g: Vec<String> = groups
            .map(|s| s.trim().to_string())
            .filter(|s| seen.insert(s.to_ascii_lowercase()))
            .collect();
        g.sort_by_key(|s| s.to_ascii_lowercase());
        let mut seen = BTreeSet::new();
        let mut a: Vec<AppRef> = apps
            .filter(|a| {
                seen.insert((
                    a.service_principal_id.to_ascii_lowercase(),
                    a.app_role_id.clone(),
                ))
            })
            .cloned()
            .collect();
        a.sort_by(|x, y| x.service_principal_id.cmp(&y.service_principal_id));
        Self { groups: g, apps: a }
    }

    /// What `self` has that `other` does not.
    pub fn minus(&self, other: &Grants) -> Grants {
        let og: BTreeSet<String> = other
            .groups
            .iter()
            .map(|g| g.to_ascii_lowercase())
            .collect();
        Grants {
            groups: self
                .groups
                .iter()
                .filter(|g| !og.contains(&g.to_ascii_lowercase()))
                .cloned()
                .collect(),
            apps: self
                .apps
                .iter()
                .filter(|a| !other.apps.contains(a))
                .cloned()
                .collect(),
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl HrSettings {
    /// Every problem, each naming its field under `hr.`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, h) in [
            ("onboarding_hour_utc", self.onboarding_hour_utc),
            ("offboarding_hour_utc", self.offboarding_hour_utc),
        ] {
            if h > 23 {
                p.push(format!("hr.{name} must be 0-23, got {h}"));
            }
        }
        let check_groups = |at: &str, groups: &[String], p: &mut Vec<String>| {
            for (i, g) in groups.iter().enumerate() {
                if g.trim().is_empty() {
                    p.push(format!("{at}.groups[{i}] is empty"));
                }
            }
        };
        let check_apps = |at: &str, apps: &[AppRef], p: &mut Vec<String>| {
            for (i, a) in apps.iter().enumerate() {
                if !is_guid(&a.service_principal_id) {
                    p.push(format!(
                        "{at}.apps[{i}].service_principal_id must be a GUID"
                    ));
                }
                if a.app_role_id.as_deref().is_some_and(|r| !is_guid(r)) {
                    p.push(format!("{at}.apps[{i}].app_role_id must be a GUID"));
                }
            }
        };
        check_groups("hr", &self.groups, &mut p);
        check_apps("hr", &self.apps, &mut p);
        let mut seen = BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("hr.rules[{i}]");
            if r.equals.trim().is_empty() {
                p.push(format!("{at}.equals is empty"));
            }
            if r.groups.is_empty() && r.apps.is_empty() {
                p.push(format!("{at} gives no groups or apps"));
            }
            check_groups(&at, &r.groups, &mut p);
            check_apps(&at, &r.apps, &mut p);
            if !seen.insert((r.field, r.equals.trim().to_ascii_lowercase())) {
                p.push(format!(
                    "{at} repeats a rule for the same {} value \"{}\"",
                    r.field.as_str(),
                    r.equals.trim()
                ));
            }
        }
        p
    }

    /// What the rules give someone in `department` reporting to `manager` (without the groups
    /// every hire gets).
    pub fn rule_grants(&self, department: Option<&str>, manager: Option<&str>) -> Grants {
        let hits: Vec<&HrRule> = self
            .rules
            .iter()
            .filter(|r| match r.field {
                HrField::Department => department.is_some_and(|d| same(d, &r.equals)),
                HrField::Manager => manager.is_some_and(|m| same(m, &r.equals)),
            })
            .collect();
        Grants::from_parts(
            hits.iter().flat_map(|r| r.groups.iter()),
            hits.iter().flat_map(|r| r.apps.iter()),
        )
    }

    /// What a hire gets: the groups every hire gets plus the rules'.
    pub fn hire_grants(&self, department: Option<&str>, manager: Option<&str>) -> Grants {
        let rules = self.rule_grants(department, manager);
        Grants::from_parts(
            self.groups.iter().chain(rules.groups.iter()),
            self.apps.iter().chain(rules.apps.iter()),
        )
    }

    pub fn onboarding_at(&self, d: NaiveDate) -> DateTime<Utc> {
        at_hour(d, self.onboarding_hour_utc)
    }

    pub fn offboarding_at(&self, d: NaiveDate) -> DateTime<Utc> {
        at_hour(d, self.offboarding_hour_utc)
    }
}

fn at_hour(d: NaiveDate, h: u8) -> DateTime<Utc> {
    let t = NaiveTime::from_hms_opt(u32::from(h.min(23)), 0, 0).unwrap_or(NaiveTime::MIN);
    d.and_time(t).and_utc()
}

/// Where a person stands in the HR lifecycle, as far as our workflows know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    #[default]
    Unknown,
    Hired,
    Terminated,
}

/// What we keep per HR person (by tenant, source and the HR system's id): the directory user
/// they were matched to, their workflows, and the department and manager last seen (an update
/// event often carries only the new values, and a move must know the old ones).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HrPerson {
    pub tenant_id: TenantId,
    pub source: Source,
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onboarding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offboarding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(default)]
    pub rev: u64,
}

impl HrPerson {
    pub fn new(tenant_id: TenantId, source: Source, provider_id: &str) -> Self {
        Self {
            tenant_id,
            source,
            provider_id: provider_id.to_string(),
            user_id: None,
            lifecycle: Lifecycle::Unknown,
            onboarding: None,
            offboarding: None,
            department: None,
            manager: None,
            rev: 0,
        }
    }
}

/// A workflow of the person, as the decision needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowView {
    pub id: String,
    /// No step has started yet (it can still be re-scheduled or cancelled cleanly).
    pub not_started: bool,
    /// Completed or cancelled (a failed one counts as open: someone should look at it).
    pub finished: bool,
    pub at: Option<DateTime<Utc>>,
}

fn pending(w: Option<&WorkflowView>) -> Option<&WorkflowView> {
    w.filter(|w| !w.finished && w.not_started)
}

fn open(w: Option<&WorkflowView>) -> Option<&WorkflowView> {
    w.filter(|w| !w.finished)
}

/// What the service should do for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    /// Start onboarding with these grants, at `at` (now when `None`).
    Onboard {
        grants: Grants,
        at: Option<DateTime<Utc>>,
    },
    /// Start offboarding at `at` (now when `None`).
    Offboard { at: Option<DateTime<Utc>> },
    /// The person moved: add the new department's grants, remove the old one's.
    Move { add: Grants, remove: Grants },
    Reschedule {
        workflow_id: String,
        at: Option<DateTime<Utc>>,
    },
    Cancel {
        workflow_id: String,
        why: &'static str,
    },
}

/// The decision for one event: the moves in order, and notes for the delivery log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub moves: Vec<Move>,
    pub notes: Vec<String>,
}

/// Decide what `event` means for a person whose state is `person`, given their current
/// onboarding and offboarding workflows (when they exist) and the department and manager the
/// directory shows for them (the old values when we never saw the person before).
pub fn decide(
    settings: &HrSettings,
    event: &HrEvent,
    person: &HrPerson,
    onboarding: Option<&WorkflowView>,
    offboarding: Option<&WorkflowView>,
    directory_department: Option<&str>,
) -> Decision {
    let mut d = Decision::default();
    let department = event.department.as_deref().or(person.department.as_deref());
    let manager = event.manager.as_deref().or(person.manager.as_deref());
    let kind = match event.kind() {
        // An update that sets an end date is a termination being scheduled.
        HrEventKind::Update
            if event.end_date.is_some() && person.lifecycle != Lifecycle::Terminated =>
        {
            HrEventKind::Termination
        }
        k => k,
    };
    match kind {
        HrEventKind::Hire => {
            let at = event.start_date.map(|s| settings.onboarding_at(s));
            if let Some(off) = pending(offboarding) {
                d.moves.push(Move::Cancel {
                    workflow_id: off.id.clone(),
                    why: "rehired before the offboarding ran",
                });
            } else if let Some(off) = open(offboarding) {
                d.notes.push(format!(
                    "rehired while offboarding {} is under way; it is left to finish",
                    off.id
                ));
            }
            match (person.lifecycle, open(onboarding)) {
                (Lifecycle::Hired, Some(on)) if on.not_started && on.at != at => {
                    d.moves.push(Move::Reschedule {
                        workflow_id: on.id.clone(),
                        at,
                    });
                }
                (Lifecycle::Hired, Some(on)) => {
                    d.notes
                        .push(format!("onboarding {} already covers this hire", on.id));
                }
                (Lifecycle::Hired, None) if onboarding.is_some() => {
                    d.notes.push("already onboarded".into());
                }
                _ => {
                    let grants = settings.hire_grants(department, manager);
                    if grants.is_empty() {
                        d.notes.push(
                            "the hr settings give this hire no groups or apps; no onboarding"
                                .into(),
                        );
                    } else {
                        d.moves.push(Move::Onboard { grants, at });
                    }
                }
            }
        }
        HrEventKind::Termination => {
            let at = event.end_date.map(|e| settings.offboarding_at(e));
            if let Some(on) = pending(onboarding) {
                d.moves.push(Move::Cancel {
                    workflow_id: on.id.clone(),
                    why: "terminated before the onboarding ran",
                });
            }
            match open(offboarding) {
                Some(off) if off.not_started && off.at != at => {
                    d.moves.push(Move::Reschedule {
                        workflow_id: off.id.clone(),
                        at,
                    });
                }
                Some(off) => d.notes.push(format!(
                    "offboarding {} already covers this termination",
                    off.id
                )),
                None if person.lifecycle == Lifecycle::Terminated && offboarding.is_some() => {
                    d.notes.push("already offboarded".into());
                }
                None => d.moves.push(Move::Offboard { at }),
            }
        }
        HrEventKind::Update => {
            if person.lifecycle == Lifecycle::Terminated {
                d.notes
                    .push("the person is terminated; updates start nothing".into());
                return d;
            }
            if let (Some(s), Some(on)) = (event.start_date, pending(onboarding)) {
                let at = Some(settings.onboarding_at(s));
                if on.at != at {
                    d.moves.push(Move::Reschedule {
                        workflow_id: on.id.clone(),
                        at,
                    });
                }
            }
            let old_department = person.department.as_deref().or(directory_department);
            let new_department = event.department.as_deref().or(old_department);
            let old_manager = person.manager.as_deref();
            let new_manager = event.manager.as_deref().or(old_manager);
            let changed = new_department.map(str::to_ascii_lowercase)
                != old_department.map(str::to_ascii_lowercase)
                || new_manager.map(str::to_ascii_lowercase)
                    != old_manager.map(str::to_ascii_lowercase);
            if changed {
                let old = settings.rule_grants(old_department, old_manager);
                let new = settings.rule_grants(new_department, new_manager);
                // What every hire gets is never removed by a move.
                let base = settings.hire_grants(None, None);
                let add = new.minus(&old);
                let remove = old.minus(&new).minus(&base);
                if add.is_empty() && remove.is_empty() {
                    d.notes
                        .push("the change selects the same groups and apps".into());
                } else {
                    d.moves.push(Move::Move { add, remove });
                }
            } else if d.moves.is_empty() {
                d.notes.push("nothing the mapping uses changed".into());
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SP: &str = "a9900000-0000-4000-8000-000000000020";

    fn settings() -> HrSettings {
        HrSettings {
            groups: vec!["All staff".into()],
            rules: vec![
                HrRule {
                    field: HrField::Department,
                    equals: "Sales".into(),
                    groups: vec!["Sales".into()],
                    apps: vec![],
                },
                HrRule {
                    field: HrField::Department,
                    equals: "Ops".into(),
                    groups: vec!["Ops".into()],
                    apps: vec![AppRef {
                        service_principal_id: SP.into(),
                        app_role_id: None,
                    }],
                },
            ],
            ..Default::default()
        }
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn person(l: Lifecycle) -> HrPerson {
        let mut p = HrPerson::new(TenantId::new("t"), Source::Standard, "E1");
        p.lifecycle = l;
        p
    }

    fn ev(kind: HrEventKind) -> HrEvent {
        HrEvent {
            kind: Some(kind),
            provider_id: "E1".into(),
            employee_id: "E1".into(),
            ..Default::default()
        }
    }

    fn view(
        id: &str,
        not_started: bool,
        finished: bool,
        at: Option<DateTime<Utc>>,
    ) -> WorkflowView {
        WorkflowView {
            id: id.into(),
            not_started,
            finished,
            at,
        }
    }

    #[test]
    fn hr_settings_report_every_problem_with_field_names() {
        let s = HrSettings {
            groups: vec![" ".into()],
            apps: vec![AppRef {
                service_principal_id: "x".into(),
                app_role_id: None,
            }],
            rules: vec![
                HrRule {
                    field: HrField::Department,
                    equals: "".into(),
                    groups: vec![],
                    apps: vec![],
                },
                HrRule {
                    field: HrField::Manager,
                    equals: "m@x".into(),
                    groups: vec!["A".into()],
                    apps: vec![],
                },
                HrRule {
                    field: HrField::Manager,
                    equals: "M@X".into(),
                    groups: vec!["B".into()],
                    apps: vec![],
                },
            ],
            onboarding_hour_utc: 24,
            offboarding_hour_utc: 3,
        };
        let p = s.problems().join("\n");
        for needle in [
            "hr.onboarding_hour_utc",
            "hr.groups[0]",
            "hr.apps[0].service_principal_id",
            "hr.rules[0].equals",
            "hr.rules[0] gives no",
            // The field's word, and the value as written (not lower-cased with the message).
            "hr.rules[2] repeats a rule for the same manager value \"M@X\"",
        ] {
            assert!(p.contains(needle), "{needle} in {p}");
        }
        assert!(HrSettings::default().problems().is_empty());
    }

    #[test]
    fn a_hire_onboards_at_the_start_date_with_base_and_department_grants() {
        let mut e = ev(HrEventKind::Hire);
        e.start_date = Some(d("2026-12-14"));
        e.department = Some("sales".into());
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Unknown),
            None,
            None,
            None,
        );
        assert_eq!(
            dec.moves,
            vec![Move::Onboard {
                grants: Grants {
                    groups: vec!["All staff".into(), "Sales".into()],
                    apps: vec![]
                },
                at: Some(Utc.with_ymd_and_hms(2026, 12, 14, 6, 0, 0).unwrap()),
            }]
        );
    }

    #[test]
    fn a_new_start_date_reschedules_a_pending_onboarding_and_the_same_date_does_nothing() {
        let mut e = ev(HrEventKind::Hire);
        e.start_date = Some(d("2026-12-21"));
        let at = Some(settings().onboarding_at(d("2026-12-14")));
        let on = view("w-on", true, false, at);
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Hired),
            Some(&on),
            None,
            None,
        );
        assert_eq!(
            dec.moves,
            vec![Move::Reschedule {
                workflow_id: "w-on".into(),
                at: Some(settings().onboarding_at(d("2026-12-21")))
            }]
        );
        e.start_date = Some(d("2026-12-14"));
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Hired),
            Some(&on),
            None,
            None,
        );
        assert!(dec.moves.is_empty(), "{dec:?}");
    }

    #[test]
    fn a_rehire_cancels_a_pending_offboarding_and_onboards_again() {
        let mut e = ev(HrEventKind::Hire);
        e.start_date = Some(d("2027-01-04"));
        let off = view("w-off", true, false, None);
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Terminated),
            None,
            Some(&off),
            None,
        );
        assert!(
            matches!(&dec.moves[0], Move::Cancel { workflow_id, .. } if workflow_id == "w-off")
        );
        assert!(matches!(&dec.moves[1], Move::Onboard { .. }));
    }

    #[test]
    fn a_termination_offboards_at_the_end_date_and_cancels_a_pending_onboarding() {
        let mut e = ev(HrEventKind::Termination);
        e.end_date = Some(d("2026-12-31"));
        let on = view("w-on", true, false, None);
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Hired),
            Some(&on),
            None,
            None,
        );
        assert_eq!(
            dec.moves,
            vec![
                Move::Cancel {
                    workflow_id: "w-on".into(),
                    why: "terminated before the onboarding ran"
                },
                Move::Offboard {
                    at: Some(Utc.with_ymd_and_hms(2026, 12, 31, 18, 0, 0).unwrap())
                },
            ]
        );
        // A later end date moves the pending offboarding.
        let off = view(
            "w-off",
            true,
            false,
            Some(settings().offboarding_at(d("2026-12-31"))),
        );
        e.end_date = Some(d("2027-01-15"));
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Terminated),
            None,
            Some(&off),
            None,
        );
        assert_eq!(
            dec.moves,
            vec![Move::Reschedule {
                workflow_id: "w-off".into(),
                at: Some(settings().offboarding_at(d("2027-01-15")))
            }]
        );
    }

    #[test]
    fn a_department_change_adds_the_new_grants_and_removes_the_old_but_never_the_base() {
        let mut p = person(Lifecycle::Hired);
        p.department = Some("Sales".into());
        let mut e = ev(HrEventKind::Update);
        e.department = Some("Ops".into());
        let dec = decide(&settings(), &e, &p, None, None, None);
        assert_eq!(
            dec.moves,
            vec![Move::Move {
                add: Grants {
                    groups: vec!["Ops".into()],
                    apps: vec![AppRef {
                        service_principal_id: SP.into(),
                        app_role_id: None
                    }]
                },
                remove: Grants {
                    groups: vec!["Sales".into()],
                    apps: vec![]
                },
            }]
        );
        // Never seen before: the directory's department is the old one.
        let dec = decide(
            &settings(),
            &e,
            &person(Lifecycle::Unknown),
            None,
            None,
            Some("Sales"),
        );
        assert!(
            matches!(&dec.moves[0], Move::Move { remove, .. } if remove.groups == vec!["Sales".to_string()])
        );
        // Same department: nothing.
        let mut same = e.clone();
        same.department = Some("ops".into());
        p.department = Some("Ops".into());
        assert!(
            decide(&settings(), &same, &p, None, None, None)
                .moves
                .is_empty()
        );
    }

    #[test]
    fn the_hr_section_is_validated_with_the_other_settings() {
        let e = crate::settings::ConnectionSettings::from_json(
            r#"{"schedule":{"every":"daily","hour_utc":25},"hr":{"onboarding_hour_utc":30,"rules":[{"field":"department","equals":"","groups":["A"]}]}}"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "schedule.hour_utc",
            "hr.onboarding_hour_utc",
            "hr.rules[0].equals",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        let e =
            crate::settings::ConnectionSettings::from_json(r#"{"hr":{"rulez":[]}}"#).unwrap_err();
        assert!(e.to_string().contains("rulez"), "{e}");
        let ok = crate::settings::ConnectionSettings::from_json(
            r#"{"hr":{"groups":["All staff"],"rules":[{"field":"manager","equals":"boss@contoso.com","groups":["Leads"]}]}}"#,
        )
        .unwrap();
        assert_eq!(ok.hr.rules[0].field, HrField::Manager);
    }
}
