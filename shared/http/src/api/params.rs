//! Query parameters of the list routes: an opaque `cursor`, a `limit` with a maximum, and each
//! list's filters. A parameter that is not valid, or that the route does not know, is a 400
//! naming it.

use std::collections::BTreeMap;

use axum::http::{StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::HttpError;

/// The page size when `limit` is left out.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 200;

/// A refused parameter: 400 naming it.
pub fn bad_param(name: &str, why: &str) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        format!("The query parameter {name} is not valid: {why}."),
    )
    .with_detail(format_args!("query parameter {name} refused"))
}

/// The parameters of one request, each checked against what the route accepts.
pub struct Query {
    values: BTreeMap<String, String>,
}

impl Query {
    /// Parse `uri`'s query; a parameter outside `known` (or given twice) is refused.
    pub fn parse(uri: &Uri, known: &[&str]) -> Result<Self, HttpError> {
        let mut values = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            if !known.contains(&k.as_ref()) {
                let shown: String = k.chars().take(40).filter(|c| !c.is_control()).collect();
                return Err(bad_param(
                    &shown,
                    &format!("this address takes {}", known.join(", ")),
                ));
            }
            if values.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad_param(&k, "given more than once"));
            }
        }
        Ok(Query { values })
    }

    /// A parameter's value; an empty one counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
    pub fn limit(&self) -> Result<usize, HttpError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(bad_param(
                    "limit",
                    &format!("give a whole number from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }

    /// `cursor` of the list `kind`: the key to continue after.
    pub fn cursor(&self, kind: &str) -> Result<Option<String>, HttpError> {
        self.get("cursor")
            .map(|c| {
                decode_cursor(kind, c).ok_or_else(|| {
                    bad_param(
                        "cursor",
                        "pass the next_cursor of the previous page of this list unchanged",
                    )
                })
            })
            .transpose()
    }
}

/// An opaque cursor for list `kind` continuing after `key`.
pub fn encode_cursor(kind: &str, key: &str) -> String {
    B64.encode(format!("{kind}\n{key}"))
}

fn decode_cursor(kind: &str, cursor: &str) -> Option<String> {
    let raw = String::from_utf8(B64.decode(cursor).ok()?).ok()?;
    let (k, key) = raw.split_once('\n')?;
    (k == kind && !key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn q(s: &str) -> Result<Query, HttpError> {
        Query::parse(
            &format!("/x?{s}").parse().unwrap(),
            &["cursor", "limit", "status"],
        )
    }

    #[test]
    fn limits_and_cursors_are_checked_and_name_the_parameter() {
        assert_eq!(q("").unwrap().limit().unwrap(), DEFAULT_LIMIT);
        assert_eq!(q("limit=200").unwrap().limit().unwrap(), 200);
        for bad in ["limit=0", "limit=201", "limit=x", "limit=-1"] {
            let e = q(bad).unwrap().limit().unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.message().contains("limit"), "{}", e.message());
        }
        let c = encode_cursor("runs", "r-1");
        assert_eq!(
            q(&format!("cursor={c}")).unwrap().cursor("runs").unwrap(),
            Some("r-1".to_owned())
        );
        for bad in [encode_cursor("users", "r-1"), "%%%".into(), "bm9uZQ".into()] {
            let e = q(&format!("cursor={bad}"))
                .unwrap()
                .cursor("runs")
                .unwrap_err();
            assert!(e.message().contains("cursor"), "{}", e.message());
        }
        let e = q("colour=red").err().unwrap();
        assert!(e.message().contains("colour"));
        assert!(q("limit=1&limit=2").is_err());
    }
}
