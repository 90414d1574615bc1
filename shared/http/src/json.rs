//! JSON routes: the content type they require, and body errors that say which field is wrong
//! without quoting what was sent.
//!
//! Requiring `Content-Type: application/json` on every request that may change something is the
//! routes' CSRF protection: a page on another site can make a browser send a form or `text/plain`
//! POST to any address without asking, but a JSON POST only after a CORS preflight, which these
//! routes never grant.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::HttpError;

/// Whether the request says its body is JSON (`application/json`, parameters such as
/// `charset=utf-8` allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Middleware of JSON routes (`route_layer(axum::middleware::from_fn(require_json))`): every
/// request but GET, HEAD and OPTIONS must carry `Content-Type: application/json`, with or
/// without a body; otherwise 415 and the route does not run.
pub async fn require_json(req: Request, next: Next) -> Response {
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if reads_only || is_json(req.headers()) {
        return next.run(req).await;
    }
    let sent = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or("none", |_| "another content type");
    HttpError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .with_detail(format_args!("content type {sent}, not application/json"))
        .into_response()
}

/// Why a JSON body was refused: where (the field's path, e.g. `label` or `mapping.rules[2]`),
/// and what is wrong, in serde's words with the sent value left out.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{}{problem}", path.as_deref().map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct JsonError {
    /// The field's path; `None` for the body as a whole.
    pub path: Option<String>,
    pub problem: String,
}

impl JsonError {
    fn whole(problem: impl Into<String>) -> Self {
        JsonError {
            path: None,
            problem: problem.into(),
        }
    }
}

/// Parse a JSON object body into `T`. Only an object is a body (serde's derived structs would
/// also take an array of the fields in order); trailing characters are refused.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JsonError::whole("expected a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != ".").then(|| bounded(&path));
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => JsonError {
                path,
                problem: data_problem(&inner),
            },
            _ => JsonError::whole(syntax_problem(&inner)),
        }
    })?;
    de.end().map_err(|e| JsonError::whole(syntax_problem(&e)))?;
    Ok(value)
}

/// A path as shown: map keys in it are the caller's field names, so control characters become
/// `?` and a very long path is cut.
fn bounded(path: &str) -> String {
    const MAX_CHARS: usize = 120;
    let mut out: String = path
        .chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if path.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

/// A syntax problem: its kind and position only (the text around it may be a secret).
fn syntax_problem(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Eof => "the JSON ends early",
        _ => "not valid JSON",
    };
    format!("{kind} (line {} column {})", e.line(), e.column())
}

/// A data problem in serde's words ("invalid type: integer, expected a string"), with every
/// quoted piece of the sent value removed. What follows ", expected" describes our type, not the
/// input, and stays; so do the names in "missing field" and "duplicate field", which are our
/// fields.
fn data_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let text = text.strip_suffix(&position).unwrap_or(&text);
    if text.starts_with("missing field ") || text.starts_with("duplicate field ") {
        return text.to_owned();
    }
    const DESCRIBED: [&str; 5] = [
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "unknown field ",
        "unknown variant ",
    ];
    match text.find(", expected ") {
        Some(i) if DESCRIBED.iter().any(|p| text.starts_with(p)) => {
            format!("{}{}", unquote(&text[..i]), &text[i..])
        }
        _ => unquote(text),
    }
}

/// Remove `` `…` `` and `"…"` pieces (serde quotes sent values so).
fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            c => out.push(c),
        }
    }
    // "integer `5`, expected" -> "integer , expected": drop the space left before a removed piece.
    let mut tidy = String::with_capacity(out.len());
    for word in out.split(' ').filter(|w| !w.is_empty()) {
        if !tidy.is_empty() && !word.starts_with(',') {
            tidy.push(' ');
        }
        tidy.push_str(word);
    }
    tidy
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        label: String,
        #[serde(default)]
        count: Option<u8>,
        #[serde(default)]
        rules: Vec<Rule>,
        #[serde(default)]
        names: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Include,
    }

    fn err(body: &str) -> String {
        from_slice::<Body>(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field_and_never_quote_the_value() {
        assert_eq!(
            err(r#"{"label": 5}"#),
            "label: invalid type: integer, expected a string"
        );
        assert_eq!(
            err(r#"{"label": "x", "count": 300}"#),
            "count: invalid value: integer, expected u8"
        );
        assert_eq!(
            err(r#"{"label": "x", "rules": [{"kind": "include"}, {"kind": "s3cr\"et"}]}"#),
            "rules[1].kind: unknown variant, expected `include`"
        );
        assert_eq!(
            err(r#"{"label": "x", "names": {"a": ["s3cret"]}}"#),
            "names.a: invalid type: sequence, expected a string"
        );
        assert_eq!(err(r#"{}"#), "missing field `label`");
        assert_eq!(
            err(r#"{"label": "a", "label": "b"}"#),
            "duplicate field `label`"
        );
        // An unknown field is named by its path (a field name, not a value).
        assert_eq!(
            err(r#"{"label": "x", "lable": 1}"#),
            "lable: unknown field, expected one of `label`, `count`, `rules`, `names`"
        );
        let long = format!(r#"{{"label": "x", "{}\n": 1}}"#, "k".repeat(500));
        let e = err(&long);
        assert!(
            e.starts_with(&format!("{}…: unknown field", "k".repeat(120))),
            "{e}"
        );
        for body in [
            r#"{"label": 5, "x": "s3cret"}"#,
            r#"{"label": "s3cret"#,
            r#"{"label": "s3cret"} trailing"#,
            r#"["s3cret"]"#,
            r#"{"count": "s3cret", "label": "x"}"#,
            r#"{"label": "x", "rules": "s3cret"}"#,
        ] {
            let e = err(body);
            assert!(!e.contains("s3cret"), "{body} -> {e}");
        }
    }

    #[test]
    fn syntax_errors_say_where_and_arrays_are_not_bodies() {
        assert_eq!(
            err(r#"{"label": "#),
            "the JSON ends early (line 1 column 10)"
        );
        assert_eq!(err(r#"{"label" "x"}"#), "not valid JSON (line 1 column 10)");
        assert_eq!(err(r#"["x"]"#), "expected a JSON object");
        assert_eq!(err(""), "expected a JSON object");
        assert_eq!(
            err(r#"{"label": "x"} {}"#),
            "not valid JSON (line 1 column 16)"
        );
    }

    #[test]
    fn content_type_is_json_with_or_without_parameters() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, v.parse().unwrap());
            m
        };
        assert!(is_json(&h("application/json")));
        assert!(is_json(&h("Application/JSON; charset=utf-8")));
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "text/plain; application/json",
        ] {
            assert!(!is_json(&h(other)), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
