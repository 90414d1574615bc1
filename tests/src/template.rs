//! infra/template.yaml as CloudFormation receives it, through `scripts/sam_template.py`: the SAM
//! translator (the same package `sam deploy` uses) run from the virtualenv `.venv` that
//! scripts/test.sh installs. Without that virtualenv a test fails and says how to get it.
//!
//! Also a small evaluator of the IAM policy grammar the template uses (Allow statements,
//! `Action` and `Resource` with `*` and `?` wildcards), so a test can ask whether a call is
//! allowed by the template's policy exactly as written, resources included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// Names the policies are resolved to: the stage, region and account of the IAM test
/// (moto's default account).
pub const STAGE: &str = "iamtest";
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// The variable that points at another virtualenv (default: `.venv` in the workspace).
pub const VENV_VAR: &str = "ENTRA_SYNC_VENV";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A program of the test virtualenv (`python`, `moto_server`), or a panic that says how to
/// install it.
pub fn venv_program(name: &str) -> PathBuf {
    let venv = std::env::var_os(VENV_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv"));
    let program = venv.join("bin").join(name);
    assert!(
        program.exists(),
        "{} is missing: the template and IAM tests need the Python tools that scripts/test.sh \
         installs into .venv (moto, cfn-lint, aws-sam-translator at the versions pinned there). \
         Run scripts/test.sh once, or create the virtualenv yourself and point {VENV_VAR} at it",
        program.display()
    );
    program
}

/// The arguments the tests resolve the template with.
fn arguments() -> Vec<String> {
    vec![
        "all".to_owned(),
        format!("Stage={STAGE}"),
        "GraphClientId=00000000-0000-0000-0000-000000000000".to_owned(),
        format!("AWS::Region={REGION}"),
        format!("AWS::AccountId={ACCOUNT}"),
    ]
}

/// What `scripts/sam_template.py all` prints for the current template: `transformed`,
/// `cycles`, `functions`. The transform takes a couple of seconds and every test process
/// needs it, so the answer is kept in the temporary directory, under a name derived from the
/// template, the script and the arguments (any change to them runs the script again).
fn answer() -> &'static Value {
    static A: OnceLock<Value> = OnceLock::new();
    A.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let script = workspace().join("scripts").join("sam_template.py");
        let template = workspace().join("infra").join("template.yaml");
        let args = arguments();
        let mut key = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(&script)
            .expect("reading scripts/sam_template.py")
            .hash(&mut key);
        std::fs::read(&template)
            .expect("reading infra/template.yaml")
            .hash(&mut key);
        args.hash(&mut key);
        let cache = std::env::temp_dir().join(format!("entra-sync-sam-{:016x}.json", key.finish()));
        if let Some(v) = std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return v;
        }
        let out = Command::new(venv_program("python"))
            .arg(&script)
            .args(&args)
            .output()
            .expect("running scripts/sam_template.py");
        assert!(
            out.status.success(),
            "scripts/sam_template.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
        // Written aside, then renamed: test processes running at once never read half a file.
        let part = cache.with_extension(format!("{}.part", std::process::id()));
        if std::fs::write(&part, &out.stdout).is_ok() {
            let _ = std::fs::rename(&part, &cache);
        }
        v
    })
}

/// The transformed template (CloudFormation JSON; intrinsic functions left as they are).
pub fn transformed() -> &'static Value {
    &answer()["transformed"]
}

/// One resource of the transformed template, or a panic naming it.
pub fn resource(name: &str) -> &'static Value {
    let r = &transformed()["Resources"][name];
    assert!(
        r.is_object(),
        "the transformed template has no resource {name}"
    );
    r
}

/// Every dependency cycle between the transformed template's resources (Ref, Fn::GetAtt,
/// Fn::Sub, DependsOn), as sorted lists of logical ids.
pub fn cycles() -> Vec<Vec<String>> {
    serde_json::from_value(answer()["cycles"].clone()).expect("cycles are lists of names")
}

/// One statement of an identity policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// A function after the transform, every reference resolved.
#[derive(Clone, Debug)]
pub struct Function {
    /// The Lambda function's properties (without its code and role).
    pub properties: Value,
    /// The statements the template writes in the function's `Policies` (Allow only).
    pub statements: Vec<Statement>,
    /// The inline policy documents SAM adds for Lambda's own use (an on-failure destination).
    pub service_policies: Vec<Value>,
    /// Managed policies SAM attaches (logs, SQS polling, X-Ray).
    pub managed: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("a string").to_owned())
            .collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn documents(v: &Value) -> Vec<Value> {
    v.as_array()
        .expect("a list of policies")
        .iter()
        .map(|p| p["document"].clone())
        .collect()
}

/// Each SAM function (by its logical id), resolved for [`STAGE`], [`REGION`] and [`ACCOUNT`]
/// and the parameters' defaults.
pub fn functions() -> &'static BTreeMap<String, Function> {
    static F: OnceLock<BTreeMap<String, Function>> = OnceLock::new();
    F.get_or_init(|| {
        let v = &answer()["functions"];
        v.as_object()
            .expect("an object")
            .iter()
            .map(|(name, f)| {
                let statements = documents(&f["own"])
                    .iter()
                    .flat_map(|d| d["Statement"].as_array().cloned().unwrap_or_default())
                    .map(|s| {
                        assert_eq!(s["Effect"], "Allow", "{name}: only Allow statements: {s}");
                        assert!(
                            s.get("Condition").is_none() && s.get("NotAction").is_none(),
                            "{name}: the evaluator knows Action and Resource only: {s}"
                        );
                        Statement {
                            actions: strings(&s["Action"]),
                            resources: strings(&s["Resource"]),
                        }
                    })
                    .collect();
                (
                    name.clone(),
                    Function {
                        properties: f["properties"].clone(),
                        statements,
                        service_policies: documents(&f["service"]),
                        managed: strings(&f["managed"]),
                    },
                )
            })
            .collect()
    })
}

/// One function, or a panic naming it.
pub fn function(name: &str) -> &'static Function {
    functions()
        .get(name)
        .unwrap_or_else(|| panic!("the template has no function {name}"))
}

/// IAM's wildcard match: `*` any run of characters, `?` any one character. Actions compare
/// case-insensitively, as IAM does; resources exactly.
pub fn iam_match(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    // Classic glob matching with one backtrack point for the last `*`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

impl Statement {
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.actions.iter().any(|a| iam_match(a, action, true))
            && self.resources.iter().any(|r| iam_match(r, resource, false))
    }
}

impl Function {
    /// Whether the template's own statements allow `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.statements.iter().any(|s| s.allows(action, resource))
    }
}

#[cfg(test)]
mod tests {
    use super::iam_match;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(iam_match("dynamodb:GetItem", "dynamodb:getitem", true));
        assert!(!iam_match("dynamodb:GetItem", "dynamodb:getitem", false));
        assert!(iam_match("a:secret:x-??????", "a:secret:x-Ab12Cd", false));
        assert!(!iam_match("a:secret:x-??????", "a:secret:x-Ab12Cde", false));
        assert!(!iam_match("a:secret:x-??????", "a:secret:x", false));
        assert!(iam_match(
            "t/*/access-token-??????",
            "t/42/access-token-abcdef",
            false
        ));
        assert!(iam_match("table/t*", "table/t/index/gsi1", false));
        assert!(!iam_match("table/t", "table/t/index/gsi1", false));
        assert!(iam_match("*", "", false));
    }
}
