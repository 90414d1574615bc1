//! The change events' JSON Schemas (`events/schemas/<type>.v1.json`), loaded once, and the
//! check every flow runs over the events it produced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use entra_sync_core::events::ChangeEvent;
use serde_json::Value;

/// Where the schemas live.
pub fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/schemas")
}

/// Every schema file by its type and version (`user.created.v1`).
pub fn schema_files() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(schema_dir()).expect("events/schemas exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            panic!("{name}: only .json files belong in events/schemas");
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let schema: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        out.insert(stem.to_owned(), schema);
    }
    out
}

fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static V: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        schema_files()
            .into_iter()
            .map(|(k, s)| {
                let v = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&s)
                    .unwrap_or_else(|e| panic!("{k}: not a valid schema: {e}"));
                (k, v)
            })
            .collect()
    })
}

/// Why `wire` (one serialised event) does not match its schema; `None` when it does.
pub fn problems(wire: &Value) -> Option<String> {
    let ty = wire["type"].as_str().unwrap_or("<no type>");
    let version = wire["version"].as_u64().unwrap_or(0);
    let key = format!("{ty}.v{version}");
    let Some(v) = validators().get(&key) else {
        return Some(format!("no schema events/schemas/{key}.json"));
    };
    let errors: Vec<String> = v
        .iter_errors(wire)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| format!("{key}: {}", errors.join("; ")))
}

/// Panics naming every event that does not match its schema.
pub fn assert_valid(events: &[ChangeEvent]) {
    let bad: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let wire = serde_json::to_value(e).unwrap();
            problems(&wire).map(|p| format!("{p}\n  {wire}"))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "events not matching their schema:\n{}",
        bad.join("\n")
    );
}

/// The same check over an `events.jsonl` file; returns the events it read.
pub fn assert_valid_lines(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let wire: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON: {e}", i + 1));
        if let Some(p) = problems(&wire) {
            panic!("line {}: {p}\n  {wire}", i + 1);
        }
        out.push(wire);
    }
    out
}
