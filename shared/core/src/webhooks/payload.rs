//! The payloads we accept, parsed into [`HrEvent`]s: BambooHR field-based webhooks (employees
//! with their changed fields), HiBob v2 events (event type and employee id only; the rest is
//! read from HiBob's API), and our own documented schema for Standard Webhooks senders.
//! Sizes are bounded; every problem names the field.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Source;

/// The most events one delivery may carry.
pub const MAX_EVENTS: usize = 100;
/// The longest id or email we keep.
pub const MAX_ID_LEN: usize = 256;
/// The longest department or manager value we keep.
pub const MAX_VALUE_LEN: usize = 256;

/// What happened to the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HrEventKind {
    Hire,
    Termination,
    Update,
}

impl HrEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HrEventKind::Hire => "hire",
            HrEventKind::Termination => "termination",
            HrEventKind::Update => "update",
        }
    }
}

/// An HR event, whatever system sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HrEvent {
    pub kind: Option<HrEventKind>,
    /// The person's id in the HR system (BambooHR's employee id, HiBob's backend id, the
    /// sender's `employee_id`): keys the person's state and any API lookup.
    pub provider_id: String,
    /// The id matched against the directory's `employeeId` (BambooHR's "Employee #" when
    /// posted, else the provider id).
    pub employee_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The event carries ids only: the fields are read from the provider's API first.
    #[serde(default)]
    pub needs_lookup: bool,
}

impl HrEvent {
    pub fn kind(&self) -> HrEventKind {
        self.kind.unwrap_or(HrEventKind::Update)
    }
}

/// A parsed delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedDelivery {
    /// The provider's own event id, where the payload has one.
    pub event_id: Option<String>,
    pub events: Vec<HrEvent>,
    /// Events accepted but not acted on, in plain words (deleted records, other event types).
    pub ignored: Vec<String>,
}

/// Why a payload was refused: every problem, each naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct PayloadError {
    pub problems: Vec<String>,
}

impl PayloadError {
    fn one(p: impl Into<String>) -> Self {
        Self {
            problems: vec![p.into()],
        }
    }
}

/// Parse a verified body from `source`.
pub fn parse(source: Source, body: &[u8]) -> Result<ParsedDelivery, PayloadError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        PayloadError::one(format!("the body is not JSON ({})", plain_json_error(&e)))
    })?;
    match source {
        Source::Standard => parse_standard(&value),
        Source::BambooHr => parse_bamboohr(&value),
        Source::HiBob => parse_hibob(&value),
    }
}

fn plain_json_error(e: &serde_json::Error) -> String {
    format!("line {} column {}", e.line(), e.column())
}

fn text(v: &Value, field: &str, max: usize, problems: &mut Vec<String>) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) if s.chars().count() > max => {
            problems.push(format!("{field} is longer than {max} characters"));
            None
        }
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => {
            problems.push(format!("{field} must be a string"));
            None
        }
    }
}

fn date(v: &Value, field: &str, problems: &mut Vec<String>) -> Option<NaiveDate> {
    let s = text(v, field, 32, problems)?;
    // BambooHR writes an empty date as 0000-00-00.
    if s == "0000-00-00" {
        return None;
    }
    match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(format!(
                "{field} must be a date like 2026-12-31, got \"{}\"",
                clip(&s)
            ));
            None
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn email(v: &Value, field: &str, problems: &mut Vec<String>) -> Option<String> {
    let e = text(v, field, MAX_ID_LEN, problems)?;
    if !e.contains('@') || e.starts_with('@') || e.ends_with('@') || e.contains(char::is_whitespace)
    {
        problems.push(format!("{field} is not an email address"));
        return None;
    }
    Some(e.to_ascii_lowercase())
}

// ---- Standard Webhooks senders: our schema -------------------------------------------------

const STANDARD_DATA_FIELDS: [&str; 6] = [
    "employee_id",
    "work_email",
    "start_date",
    "end_date",
    "department",
    "manager",
];

fn parse_standard(v: &Value) -> Result<ParsedDelivery, PayloadError> {
    let mut problems = Vec::new();
    let Value::Object(top) = v else {
        return Err(PayloadError::one("the body must be a JSON object"));
    };
    for k in top.keys() {
        if !["type", "timestamp", "data"].contains(&k.as_str()) {
            problems.push(format!(
                "unknown field \"{}\" (expected type, timestamp, data)",
                clip(k)
            ));
        }
    }
    let kind = match top.get("type").and_then(Value::as_str) {
        Some("hire") => Some(HrEventKind::Hire),
        Some("termination") => Some(HrEventKind::Termination),
        Some("update") => Some(HrEventKind::Update),
        Some(other) => {
            problems.push(format!(
                "type must be hire, termination or update, got \"{}\"",
                clip(other)
            ));
            None
        }
        None => {
            problems.push("type is missing (hire, termination or update)".into());
            None
        }
    };
    let Some(Value::Object(data)) = top.get("data") else {
        problems.push("data is missing or not an object".into());
        return Err(PayloadError { problems });
    };
    for k in data.keys() {
        if !STANDARD_DATA_FIELDS.contains(&k.as_str()) {
            problems.push(format!(
                "unknown field data.{} (expected {})",
                clip(k),
                STANDARD_DATA_FIELDS.join(", ")
            ));
        }
    }
    let null = Value::Null;
    let get = |k: &str| data.get(k).unwrap_or(&null);
    let employee_id = text(
        get("employee_id"),
        "data.employee_id",
        MAX_ID_LEN,
        &mut problems,
    );
    if employee_id.is_none() && !problems.iter().any(|p| p.starts_with("data.employee_id")) {
        problems.push("data.employee_id is missing".into());
    }
    let ev = HrEvent {
        kind,
        provider_id: employee_id.clone().unwrap_or_default(),
        employee_id: employee_id.unwrap_or_default(),
        work_email: email(get("work_email"), "data.work_email", &mut problems),
        start_date: date(get("start_date"), "data.start_date", &mut problems),
        end_date: date(get("end_date"), "data.end_date", &mut problems),
        department: text(
            get("department"),
            "data.department",
            MAX_VALUE_LEN,
            &mut problems,
        ),
        manager: text(get("manager"), "data.manager", MAX_VALUE_LEN, &mut problems),
        needs_lookup: false,
    };
    match kind {
        Some(HrEventKind::Hire) if ev.start_date.is_none() && problems.is_empty() => {
            problems.push("data.start_date is required for a hire".into());
        }
        Some(HrEventKind::Termination) if ev.end_date.is_none() && problems.is_empty() => {
            problems.push("data.end_date is required for a termination".into());
        }
        Some(HrEventKind::Update)
            if problems.is_empty()
                && ev.department.is_none()
                && ev.manager.is_none()
                && ev.work_email.is_none()
                && ev.start_date.is_none()
                && ev.end_date.is_none() =>
        {
            problems.push(
                "an update needs at least one of data.department, data.manager, data.work_email, data.start_date, data.end_date".into(),
            );
        }
        _ => {}
    }
    if !problems.is_empty() {
        return Err(PayloadError { problems });
    }
    Ok(ParsedDelivery {
        event_id: None,
        events: vec![ev],
        ignored: vec![],
    })
}

// ---- BambooHR field-based webhooks ---------------------------------------------------------

/// The field names BambooHR posts by default (English) and their API aliases; compared
/// case-insensitively, ignoring spaces and underscores.
const BAMBOO_EMPLOYEE_NUMBER: [&str; 2] = ["employee#", "employeenumber"];
const BAMBOO_WORK_EMAIL: [&str; 1] = ["workemail"];
const BAMBOO_HIRE_DATE: [&str; 1] = ["hiredate"];
const BAMBOO_TERMINATION_DATE: [&str; 1] = ["terminationdate"];
const BAMBOO_DEPARTMENT: [&str; 1] = ["department"];
const BAMBOO_MANAGER: [&str; 4] = [
    "reportingto",
    "supervisor",
    "supervisoremail",
    "supervisorid",
];
const BAMBOO_STATUS: [&str; 2] = ["status", "employmentstatus"];

fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn parse_bamboohr(v: &Value) -> Result<ParsedDelivery, PayloadError> {
    let Some(employees) = v.get("employees") else {
        if v.get("type").is_some() && v.get("data").is_some() {
            return Err(PayloadError::one(
                "this is an event-based BambooHR webhook; choose the Field-Based data structure with JSON encoding in BambooHR's webhook settings",
            ));
        }
        return Err(PayloadError::one(
            "employees is missing (a BambooHR field-based webhook posts {\"employees\": [...]})",
        ));
    };
    let Value::Array(employees) = employees else {
        return Err(PayloadError::one("employees must be an array"));
    };
    if employees.len() > MAX_EVENTS {
        return Err(PayloadError::one(format!(
            "employees has {} entries; at most {MAX_EVENTS} per delivery",
            employees.len()
        )));
    }
    let mut problems = Vec::new();
    let mut out = ParsedDelivery::default();
    for (i, emp) in employees.iter().enumerate() {
        let at = format!("employees[{i}]");
        let Value::Object(emp) = emp else {
            problems.push(format!("{at} must be an object"));
            continue;
        };
        let null = Value::Null;
        let Some(id) = text(
            emp.get("id").unwrap_or(&null),
            &format!("{at}.id"),
            MAX_ID_LEN,
            &mut problems,
        ) else {
            if !problems.iter().any(|p| p.starts_with(&format!("{at}.id"))) {
                problems.push(format!("{at}.id is missing"));
            }
            continue;
        };
        let action = emp
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("Updated")
            .to_ascii_lowercase();
        let empty = serde_json::Map::new();
        let fields = match emp.get("fields") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => {
                problems.push(format!("{at}.fields must be an object"));
                continue;
            }
        };
        let changed: Option<Vec<String>> = match emp.get("changedFields") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).map(norm).collect()),
            Some(_) => {
                problems.push(format!("{at}.changedFields must be an array"));
                continue;
            }
        };
        // Each field name normalised once.
        let normed: Vec<(String, &String, &Value)> =
            fields.iter().map(|(k, v)| (norm(k), k, v)).collect();
        let find = |names: &[&str]| -> Option<(String, &Value)> {
            normed
                .iter()
                .find(|(n, _, _)| names.contains(&n.as_str()))
                .map(|(_, k, v)| ((*k).clone(), *v))
        };
        let was_changed = |names: &[&str]| match &changed {
            None => find(names).is_some(),
            Some(c) => c.iter().any(|n| names.contains(&n.as_str())),
        };
        let field = |names: &[&str], problems: &mut Vec<String>| {
            find(names)
                .and_then(|(k, v)| text(v, &format!("{at}.fields.{k}"), MAX_VALUE_LEN, problems))
        };
        let field_date = |names: &[&str], problems: &mut Vec<String>| {
            find(names).and_then(|(k, v)| date(v, &format!("{at}.fields.{k}"), problems))
        };
        if action == "deleted" {
            out.ignored.push(format!(
                "{at}: employee {id} was deleted in BambooHR (no workflow)"
            ));
            continue;
        }
        let employee_number = field(&BAMBOO_EMPLOYEE_NUMBER, &mut problems);
        let work_email = find(&BAMBOO_WORK_EMAIL)
            .and_then(|(k, v)| email(v, &format!("{at}.fields.{k}"), &mut problems));
        let start_date = field_date(&BAMBOO_HIRE_DATE, &mut problems);
        let end_date = field_date(&BAMBOO_TERMINATION_DATE, &mut problems);
        let status = field(&BAMBOO_STATUS, &mut problems).map(|s| s.to_ascii_lowercase());
        let inactive = status
            .as_deref()
            .is_some_and(|s| s == "inactive" || s == "terminated");
        let kind = if (was_changed(&BAMBOO_TERMINATION_DATE) && end_date.is_some())
            || (was_changed(&BAMBOO_STATUS) && inactive)
        {
            HrEventKind::Termination
        } else if action == "created" || was_changed(&BAMBOO_HIRE_DATE) {
            HrEventKind::Hire
        } else if was_changed(&BAMBOO_DEPARTMENT)
            || was_changed(&BAMBOO_MANAGER)
            || was_changed(&BAMBOO_WORK_EMAIL)
        {
            HrEventKind::Update
        } else {
            out.ignored.push(format!(
                "{at}: no field the mapping uses changed for employee {id}"
            ));
            continue;
        };
        out.events.push(HrEvent {
            kind: Some(kind),
            employee_id: employee_number.unwrap_or_else(|| id.clone()),
            provider_id: id,
            work_email,
            start_date,
            end_date,
            department: field(&BAMBOO_DEPARTMENT, &mut problems),
            manager: field(&BAMBOO_MANAGER, &mut problems),
            needs_lookup: false,
        });
    }
    if !problems.is_empty() {
        return Err(PayloadError { problems });
    }
    Ok(out)
}

// ---- HiBob webhooks v2 ---------------------------------------------------------------------

/// Whether `body` is HiBob's connection test ("Ping test", as text or `{"text":"Ping test"}`).
pub fn is_hibob_ping(body: &[u8]) -> bool {
    let b = body.trim_ascii();
    b == b"Ping test"
        || b == b"\"Ping test\""
        || serde_json::from_slice::<Value>(b)
            .ok()
            .is_some_and(|v| v == serde_json::json!({"text": "Ping test"}))
}

fn parse_hibob(v: &Value) -> Result<ParsedDelivery, PayloadError> {
    let mut problems = Vec::new();
    if !v.is_object() {
        return Err(PayloadError::one("the body must be a JSON object"));
    }
    let ty = match v.get("type").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => {
            problems.push("type is missing".into());
            String::new()
        }
    };
    if let Some(version) = v.get("version").and_then(Value::as_str)
        && version != "v2"
    {
        problems.push(format!(
            "version is \"{}\"; only HiBob webhooks v2 are accepted",
            clip(version)
        ));
    }
    let null = Value::Null;
    let data = v.get("data").unwrap_or(&null);
    let employee_id = text(
        data.get("employeeId").unwrap_or(&null),
        "data.employeeId",
        MAX_ID_LEN,
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(PayloadError { problems });
    }
    let kind = match ty.as_str() {
        "employee.created" | "employee.joined" => Some(HrEventKind::Hire),
        "employee.left" => Some(HrEventKind::Termination),
        "employee.updated" => Some(HrEventKind::Update),
        "table.entry.created" | "table.entry.updated" => {
            match data.get("tableId").and_then(Value::as_str) {
                Some("lifecycle" | "work" | "employment") => Some(HrEventKind::Update),
                _ => None,
            }
        }
        _ => None,
    };
    let Some(kind) = kind else {
        return Ok(ParsedDelivery {
            event_id: None,
            events: vec![],
            ignored: vec![format!(
                "HiBob event {} is not one the mapping uses",
                clip(&ty)
            )],
        });
    };
    let Some(employee_id) = employee_id else {
        return Err(PayloadError::one("data.employeeId is missing"));
    };
    Ok(ParsedDelivery {
        event_id: None,
        events: vec![HrEvent {
            kind: Some(kind),
            provider_id: employee_id.clone(),
            employee_id,
            needs_lookup: true,
            ..Default::default()
        }],
        ignored: vec![],
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn standard_hire_parses_and_every_problem_is_named() {
        let p = parse(
            Source::Standard,
            br#"{"type":"hire","data":{"employee_id":"E1","work_email":"Ann@Contoso.com","start_date":"2026-12-14","department":"Sales"}}"#,
        )
        .unwrap();
        let e = &p.events[0];
        assert_eq!(e.kind(), HrEventKind::Hire);
        assert_eq!(e.work_email.as_deref(), Some("ann@contoso.com"));
        assert_eq!(e.start_date, Some(d("2026-12-14")));
        let err = parse(
            Source::Standard,
            br#"{"type":"hire","extra":1,"data":{"employee_id":"","start_date":"14/12/2026","work_email":"nope","colour":"red"}}"#,
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "\"extra\"",
            "data.colour",
            "data.employee_id",
            "data.start_date",
            "data.work_email",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let err = parse(
            Source::Standard,
            br#"{"type":"termination","data":{"employee_id":"E1"}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("data.end_date is required"),
            "{err}"
        );
        let err = parse(
            Source::Standard,
            br#"{"type":"fired","data":{"employee_id":"E1"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("type must be"), "{err}");
        assert!(
            parse(Source::Standard, b"not json")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }

    #[test]
    fn bamboohr_field_based_payload_yields_one_event_per_employee() {
        let body = br#"{"employees":[
            {"id":"101","action":"Created","changedFields":["Hire Date"],"fields":{"Employee #":"E101","Work Email":"new@contoso.com","Hire Date":"2026-12-14","Department":"Sales"}},
            {"id":"102","action":"Updated","changedFields":["Status","Termination Date"],"fields":{"Status":"Inactive","Termination Date":"2026-12-31","Work Email":"bob@contoso.com"}},
            {"id":"103","action":"Updated","changedFields":["Department"],"fields":{"Department":"Ops","Reporting to":"boss@contoso.com"}},
            {"id":"104","action":"Updated","changedFields":["Mobile Phone"],"fields":{"Mobile Phone":"123"}},
            {"id":"105","action":"Deleted","fields":{}}
        ]}"#;
        let p = parse(Source::BambooHr, body).unwrap();
        let kinds: Vec<_> = p
            .events
            .iter()
            .map(|e| (e.provider_id.as_str(), e.kind()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("101", HrEventKind::Hire),
                ("102", HrEventKind::Termination),
                ("103", HrEventKind::Update)
            ]
        );
        assert_eq!(
            p.events[0].employee_id, "E101",
            "Employee # is matched against employeeId"
        );
        assert_eq!(p.events[1].employee_id, "102");
        assert_eq!(p.events[1].end_date, Some(d("2026-12-31")));
        assert_eq!(p.events[2].manager.as_deref(), Some("boss@contoso.com"));
        assert_eq!(p.ignored.len(), 2);
    }

    #[test]
    fn bamboohr_problems_name_the_employee_and_field() {
        let e = parse(
            Source::BambooHr,
            br#"{"employees":[{"id":"1","fields":{"Hire Date":"soon"}},{"fields":{}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("employees[0].fields.Hire Date"), "{e}");
        assert!(e.contains("employees[1].id is missing"), "{e}");
        let e = parse(
            Source::BambooHr,
            br#"{"type":"employee.updated","data":{}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Field-Based"), "{e}");
    }

    #[test]
    fn hibob_v2_events_carry_the_id_and_ask_for_a_lookup() {
        let p = parse(
            Source::HiBob,
            br#"{"companyId":636192,"type":"employee.left","triggeredBy":"system","triggeredAt":"2026-12-01T00:00:00","version":"v2","data":{"employeeId":"333"}}"#,
        )
        .unwrap();
        assert_eq!(p.events[0].kind(), HrEventKind::Termination);
        assert!(p.events[0].needs_lookup);
        let p = parse(
            Source::HiBob,
            br#"{"type":"task.created","version":"v2","data":{}}"#,
        )
        .unwrap();
        assert!(p.events.is_empty() && p.ignored.len() == 1);
        let e = parse(
            Source::HiBob,
            br#"{"type":"employee.created","version":"v1","data":{}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("v2"), "{e}");
        assert!(is_hibob_ping(b"Ping test"));
        assert!(is_hibob_ping(br#"{"text":"Ping test"}"#));
        assert!(!is_hibob_ping(br#"{"text":"Ping"}"#));
    }

    proptest! {
        #[test]
        fn no_body_makes_a_parser_panic(
            source in prop_oneof![Just(Source::Standard), Just(Source::BambooHr), Just(Source::HiBob)],
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                "\\{\"(type|data|employees|version)\": ?(\"[a-z.]{0,20}\"|\\[\\]|\\{\\}|null|1)\\}".prop_map(String::into_bytes),
            ],
        ) {
            let _ = parse(source, &body);
        }
    }
}
