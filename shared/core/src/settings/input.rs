//! Settings as people write them: a JSON object merged onto the stored settings, checked whole,
//! and the field-by-field changes it makes.
//!
//! - Only a JSON object is settings. An array, a string or a number is refused (an array once
//!   read as "all defaults" and reset everything).
//! - The object is a JSON Merge Patch (RFC 7396) of the stored settings: a field left out keeps
//!   its stored value, `null` puts a field back to its default, objects merge field by field,
//!   arrays replace the stored array whole. One refinement: an object that names its kind
//!   (`"mode"` of a filter section, `"every"` of the schedule, `"when"` of deprovisioning)
//!   replaces the stored one whole, so `{"mode":"all"}` does not inherit the old `values`.
//! - Every problem is listed at once: the shape (wrong types, unknown fields with a "did you
//!   mean", missing required fields), then the rules of [`ConnectionSettings::validate`] for
//!   every section whose shape is right.
//!
//! The same functions serve `entra-sync settings validate|set` and the admin API's PATCH.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Automatic, ConnectionSettings, MaxCount, SettingsError};
use crate::filters::{LicenseStatus, UserType};

/// Parse settings text into the edit it describes: a JSON object, nothing else.
pub fn parse_edit(text: &str) -> Result<Value, SettingsError> {
    let v: Value = serde_json::from_str(text).map_err(|e| SettingsError {
        problems: vec![format!("not valid JSON: {e}")],
    })?;
    match v {
        Value::Object(_) => Ok(v),
        other => Err(SettingsError {
            problems: vec![format!(
                "settings must be a JSON object ({{\"filters\": ..., \"breaker\": ...}}), got {}",
                kind(&other)
            )],
        }),
    }
}

/// The settings version an edit names (`settings show` prints it), if it names one.
pub fn edited_version(edit: &Value) -> Option<u64> {
    edit.get("version").and_then(Value::as_u64)
}

impl ConnectionSettings {
    /// These settings with `edit` merged onto them (see the module documentation), checked
    /// whole. The result keeps this version; saving names it as the one it replaces.
    pub fn apply_edit(&self, edit: &Value) -> Result<ConnectionSettings, SettingsError> {
        let Value::Object(patch) = edit else {
            return Err(SettingsError {
                problems: vec![format!(
                    "settings must be a JSON object, got {}",
                    kind(edit)
                )],
            });
        };
        let current = to_doc(self);
        let mut patch = patch.clone();
        patch.remove("version");
        let mut merged = current.clone();
        let mut patch = Value::Object(patch);
        whole_kinds(&mut merged, &mut patch);
        json_patch::merge(&mut merged, &patch);

        let mut problems = Vec::new();
        if let Some(v) = edit.get("version") {
            leaf::<u64>(v, "version", &mut problems);
        }
        // Shape, section by section: a section with a problem is checked no further (its
        // stored value stands in for the rules of the others).
        let mut repaired = merged.clone();
        if let (Value::Object(doc), Value::Object(stored)) = (&merged, &current) {
            for (key, value) in doc {
                let before = problems.len();
                match SECTIONS.iter().find(|(name, _)| name == key) {
                    Some((_, check)) => check(value, key, &mut problems),
                    None => problems.push(unknown_field("", key, SECTIONS.iter().map(|s| s.0))),
                }
                if problems.len() > before
                    && let Value::Object(r) = &mut repaired
                {
                    match stored.get(key) {
                        Some(v) => r.insert(key.clone(), v.clone()),
                        None => r.remove(key),
                    };
                }
            }
        }
        match serde_json::from_value::<ConnectionSettings>(repaired) {
            Ok(mut s) => {
                s.version = self.version;
                if let Err(e) = s.validate() {
                    problems.extend(e.problems);
                }
                match problems.is_empty() {
                    true => Ok(s),
                    false => Err(SettingsError { problems }),
                }
            }
            // The shape check let something through that serde refuses: say what serde says.
            Err(e) => {
                problems.push(format!("not valid settings: {e}"));
                Err(SettingsError { problems })
            }
        }
    }
}

/// One field a settings edit changes. `before`/`after` are absent where the field (or list
/// element) did not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsChange {
    /// `filters.departments`, `group_roles[1]`, `breaker.max_count`.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl fmt::Display for SettingsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| match v {
            Some(v) => v.to_string(),
            None => "(not set)".to_owned(),
        };
        write!(
            f,
            "{}: {} -> {}",
            self.path,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// What changes from `before` to `after`, field by field, in document order (the version is
/// not a setting and is left out).
pub fn changes(before: &ConnectionSettings, after: &ConnectionSettings) -> Vec<SettingsChange> {
    let (a, b) = (to_doc(before), to_doc(after));
    let mut seen = BTreeSet::new();
    json_patch::diff(&a, &b)
        .0
        .iter()
        .filter_map(|op| {
            let pointer = match op {
                json_patch::PatchOperation::Add(o) => o.path.to_string(),
                json_patch::PatchOperation::Remove(o) => o.path.to_string(),
                json_patch::PatchOperation::Replace(o) => o.path.to_string(),
                json_patch::PatchOperation::Move(o) => o.path.to_string(),
                json_patch::PatchOperation::Copy(o) => o.path.to_string(),
                json_patch::PatchOperation::Test(o) => o.path.to_string(),
            };
            seen.insert(pointer.clone()).then(|| SettingsChange {
                path: dotted(&pointer),
                before: a.pointer(&pointer).cloned(),
                after: b.pointer(&pointer).cloned(),
            })
        })
        .collect()
}

/// The settings as a JSON document, without the version.
fn to_doc(s: &ConnectionSettings) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("version");
    }
    v
}

/// `/filters/departments/values/0` -> `filters.departments.values[0]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match token.parse::<usize>() {
            Ok(i) => out.push_str(&format!("[{i}]")),
            Err(_) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&token);
            }
        }
    }
    out
}

/// The fields whose object names its kind: such an object replaces the stored one whole.
const KIND_TAGS: &[&str] = &["mode", "every", "when"];

/// Before merging: where the patch gives an object naming its kind, drop the stored value, so
/// the merge writes the patch's object as it is.
fn whole_kinds(target: &mut Value, patch: &mut Value) {
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return;
    };
    for (key, pv) in p.iter_mut() {
        let names_kind = pv
            .as_object()
            .is_some_and(|o| KIND_TAGS.iter().any(|tag| o.contains_key(*tag)));
        match (names_kind, t.get_mut(key)) {
            (true, Some(slot)) => *slot = Value::Null,
            (false, Some(tv)) => whole_kinds(tv, pv),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shape of settings, checked whole. Each function checks one value at `path` and appends
// its problems; leaves are checked by serde with the very type the settings use, so the
// messages and the accepted values cannot drift from the types.

type Check = fn(&Value, &str, &mut Vec<String>);

/// A field of an object: name, check, required.
type Field = (&'static str, Check, bool);

const SECTIONS: &[(&str, Check)] = &[
    ("schedule", schedule),
    ("filters", filters),
    ("mapping", mapping),
    ("provisioning", provisioning),
    ("group_roles", group_roles),
    ("breaker", breaker),
    // The write half's and the HR mapping's sections: their types refuse unknown fields, and
    // their own validation names each field under `actions.` / `hr.`.
    ("actions", leaf::<crate::actions::ActionSettings>),
    ("hr", leaf::<crate::webhooks::HrSettings>),
];

fn schedule(v: &Value, path: &str, p: &mut Vec<String>) {
    tagged(
        v,
        path,
        p,
        "every",
        &[
            ("hourly", &[]),
            ("daily", &[("hour_utc", leaf::<u8>, true)]),
        ],
    );
}

fn filters(v: &Value, path: &str, p: &mut Vec<String>) {
    object(
        v,
        path,
        p,
        &[
            ("groups", section::<String>, false),
            ("email_domains", section::<String>, false),
            ("user_types", section::<UserType>, false),
            ("office_locations", section::<String>, false),
            ("departments", section::<String>, false),
            ("license_status", section::<LicenseStatus>, false),
            ("include_disabled", leaf::<bool>, false),
        ],
    );
}

fn section<T: DeserializeOwned>(v: &Value, path: &str, p: &mut Vec<String>) {
    tagged(
        v,
        path,
        p,
        "mode",
        &[("all", &[]), ("any_of", &[("values", list::<T>, true)])],
    );
}

fn list<T: DeserializeOwned>(v: &Value, path: &str, p: &mut Vec<String>) {
    items(v, path, p, leaf::<T>);
}

fn mapping(v: &Value, path: &str, p: &mut Vec<String>) {
    object(v, path, p, &[("fields", field_mappings, false)]);
}

fn field_mappings(v: &Value, path: &str, p: &mut Vec<String>) {
    items(v, path, p, |v, path, p| {
        object(
            v,
            path,
            p,
            &[
                ("target", leaf::<String>, true),
                ("source", leaf::<String>, true),
            ],
        );
    });
}

fn provisioning(v: &Value, path: &str, p: &mut Vec<String>) {
    object(
        v,
        path,
        p,
        &[
            ("automatic", leaf::<Automatic>, false),
            ("auto_activate_verified_domains", leaf::<bool>, false),
            ("deprovisioning", deprovisioning, false),
            ("recreate_deleted_locally", leaf::<bool>, false),
        ],
    );
}

fn deprovisioning(v: &Value, path: &str, p: &mut Vec<String>) {
    tagged(
        v,
        path,
        p,
        "when",
        &[
            ("every_run", &[]),
            ("nightly", &[("hour_utc", leaf::<u8>, true)]),
        ],
    );
}

fn group_roles(v: &Value, path: &str, p: &mut Vec<String>) {
    items(v, path, p, |v, path, p| {
        object(
            v,
            path,
            p,
            &[
                ("group_id", leaf::<String>, true),
                ("role", leaf::<String>, true),
            ],
        );
    });
}

fn breaker(v: &Value, path: &str, p: &mut Vec<String>) {
    object(
        v,
        path,
        p,
        &[
            ("max_count", leaf::<MaxCount>, false),
            ("max_percent", leaf::<u8>, false),
            ("min_count_for_percent", leaf::<u64>, false),
        ],
    );
}

fn leaf<T: DeserializeOwned>(v: &Value, path: &str, p: &mut Vec<String>) {
    if let Err(e) = T::deserialize(v) {
        p.push(format!("{path}: {e}"));
    }
}

fn items(v: &Value, path: &str, p: &mut Vec<String>, item: Check) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                item(x, &format!("{path}[{i}]"), p);
            }
        }
        other => p.push(format!(
            "{path}: must be a list ([...]), got {}",
            kind(other)
        )),
    }
}

fn join(path: &str, key: &str) -> String {
    match path.is_empty() {
        true => key.to_owned(),
        false => format!("{path}.{key}"),
    }
}

fn object(v: &Value, path: &str, p: &mut Vec<String>, fields: &[Field]) {
    let Value::Object(map) = v else {
        p.push(format!(
            "{path}: must be an object ({{...}}), got {}",
            kind(v)
        ));
        return;
    };
    fields_of(map, path, p, fields, &[]);
}

/// The fields of `map` against `fields` (plus `also`, known keys checked elsewhere).
fn fields_of(
    map: &Map<String, Value>,
    path: &str,
    p: &mut Vec<String>,
    fields: &[Field],
    also: &[&'static str],
) {
    for (key, value) in map {
        if also.contains(&key.as_str()) {
            continue;
        }
        match fields.iter().find(|(name, _, _)| name == key) {
            Some((_, check, _)) => check(value, &join(path, key), p),
            None => p.push(unknown_field(
                path,
                key,
                fields.iter().map(|f| f.0).chain(also.iter().copied()),
            )),
        }
    }
    for (name, _, required) in fields {
        if *required && !map.contains_key(*name) {
            p.push(format!("{}: missing", join(path, name)));
        }
    }
}

/// An object whose `tag` names its kind; each kind has its own fields.
fn tagged(
    v: &Value,
    path: &str,
    p: &mut Vec<String>,
    tag: &'static str,
    kinds: &[(&'static str, &[Field])],
) {
    let Value::Object(map) = v else {
        p.push(format!(
            "{path}: must be an object naming its {tag} ({{\"{tag}\": \"{}\", ...}}), got {}",
            kinds[0].0,
            kind(v)
        ));
        return;
    };
    let names = || kinds.iter().map(|k| k.0);
    let Some(given) = map.get(tag) else {
        p.push(format!(
            "{}: missing (one of {})",
            join(path, tag),
            quoted(names())
        ));
        return;
    };
    let Some((_, fields)) = given
        .as_str()
        .and_then(|g| kinds.iter().find(|(name, _)| *name == g))
    else {
        let hint = given
            .as_str()
            .and_then(|g| did_you_mean(g, names()))
            .map(|m| format!(" (did you mean \"{m}\"?)"))
            .unwrap_or_default();
        p.push(format!(
            "{}: {given} is not one of {}{hint}",
            join(path, tag),
            quoted(names())
        ));
        return;
    };
    fields_of(map, path, p, fields, &[tag]);
}

fn unknown_field<'a>(
    path: &str,
    key: &str,
    known: impl Iterator<Item = &'a str> + Clone,
) -> String {
    let hint = did_you_mean(key, known.clone())
        .map(|m| format!("; did you mean \"{m}\"?"))
        .unwrap_or_default();
    format!(
        "{}: unknown field{hint} (known here: {})",
        join(path, key),
        quoted(known)
    )
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known name closest to `given`, if it is close (a typo, a case slip).
fn did_you_mean<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let g = given.to_lowercase();
    known
        .map(|k| (strsim::damerau_levenshtein(&g, &k.to_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Section;
    use serde_json::json;

    fn problems(current: &ConnectionSettings, edit: Value) -> Vec<String> {
        current.apply_edit(&edit).unwrap_err().problems
    }

    #[test]
    fn only_an_object_is_settings() {
        for text in ["[]", "[{\"filters\":{}}]", "\"x\"", "3", "null", "true"] {
            let e = parse_edit(text).unwrap_err();
            assert!(
                e.problems[0].contains("must be a JSON object"),
                "{text}: {e}"
            );
        }
        assert!(parse_edit("{").unwrap_err().problems[0].contains("not valid JSON"));
        assert!(parse_edit("{}").is_ok());
        let e = ConnectionSettings::default()
            .apply_edit(&json!([]))
            .unwrap_err();
        assert!(e.problems[0].contains("JSON object"), "{e}");
    }

    #[test]
    fn an_edit_keeps_every_field_it_leaves_out() {
        let mut stored = ConnectionSettings {
            version: 4,
            ..ConnectionSettings::default()
        };
        stored.breaker.max_percent = 20;
        stored.filters.departments = Section::AnyOf {
            values: vec!["Sales".into()],
        };
        stored.provisioning.automatic = Automatic::UpdatesOnly;
        let after = stored
            .apply_edit(&json!({"provisioning": {"auto_activate_verified_domains": true}}))
            .unwrap();
        assert!(after.provisioning.auto_activate_verified_domains);
        assert_eq!(after.provisioning.automatic, Automatic::UpdatesOnly, "kept");
        assert_eq!(after.breaker.max_percent, 20, "kept");
        assert_eq!(
            after.filters.departments, stored.filters.departments,
            "kept"
        );
        assert_eq!(after.version, 4);
        let changed: Vec<String> = changes(&stored, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changed,
            vec!["provisioning.auto_activate_verified_domains: false -> true"]
        );
        // An empty edit changes nothing.
        assert_eq!(stored.apply_edit(&json!({})).unwrap(), stored);
    }

    #[test]
    fn null_resets_a_field_and_a_kind_replaces_the_stored_one_whole() {
        let mut stored = ConnectionSettings::default();
        stored.breaker.max_count = MaxCount::Fixed(7);
        stored.filters.departments = Section::AnyOf {
            values: vec!["Sales".into()],
        };
        let after = stored
            .apply_edit(&json!({
                "breaker": {"max_count": null},
                "filters": {"departments": {"mode": "all"}}
            }))
            .unwrap();
        assert_eq!(after.breaker.max_count, MaxCount::Auto);
        assert_eq!(after.filters.departments, Section::All);
        let paths: Vec<String> = changes(&stored, &after)
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert!(paths.iter().any(|p| p == "breaker.max_count"), "{paths:?}");
        assert!(
            paths.iter().any(|p| p.starts_with("filters.departments")),
            "{paths:?}"
        );
    }

    #[test]
    fn every_shape_problem_is_listed_at_once() {
        let p = problems(
            &ConnectionSettings::default(),
            json!({
                "filtres": {},
                "schedule": {"every": "weekly"},
                "filters": {
                    "departmens": {"mode": "all"},
                    "user_types": {"mode": "any_of", "values": ["member", "robot"]},
                    "include_disabled": "yes"
                },
                "mapping": {"fields": [{"target": "title"}]},
                "group_roles": {"group_id": "g"},
                "breaker": {"max_count": "lots", "max_percent": 300},
                "provisioning": {"deprovisioning": {"when": "nightly"}},
                "version": "two"
            }),
        );
        let text = p.join("\n");
        for expected in [
            "filtres: unknown field; did you mean \"filters\"?",
            "schedule.every: \"weekly\" is not one of",
            "filters.departmens: unknown field; did you mean \"departments\"?",
            "filters.user_types.values[1]",
            "robot",
            "filters.include_disabled",
            "mapping.fields[0].source: missing",
            "group_roles: must be a list",
            "breaker.max_count",
            "breaker.max_percent",
            "provisioning.deprovisioning.hour_utc: missing",
            "version",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn rule_problems_of_well_shaped_sections_come_with_the_shape_problems() {
        let p = problems(
            &ConnectionSettings::default(),
            json!({
                "breaker": {"max_percent": "ten"},
                "schedule": {"every": "daily", "hour_utc": 25},
                "mapping": {"fields": [{"target": "Bad Name", "source": "jobTitle"}]}
            }),
        );
        let text = p.join("\n");
        assert!(text.contains("breaker.max_percent"), "{text}");
        assert!(text.contains("schedule.hour_utc must be 0-23"), "{text}");
        assert!(text.contains("Bad Name"), "{text}");
    }

    #[test]
    fn a_kind_with_fields_of_another_kind_is_refused() {
        let p = problems(
            &ConnectionSettings::default(),
            json!({"filters": {"departments": {"mode": "all", "values": ["Sales"]}}}),
        );
        assert!(
            p.join(" ")
                .contains("filters.departments.values: unknown field"),
            "{p:?}"
        );
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(
            dotted("/filters/departments/values/0"),
            "filters.departments.values[0]"
        );
        assert_eq!(dotted("/group_roles/1"), "group_roles[1]");
        assert_eq!(dotted("/breaker"), "breaker");
    }
}
