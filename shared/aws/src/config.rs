//! Reading a function's typed configuration from the environment, once, at cold start. A
//! missing variable fails the cold start with its name (never its value: some are secret names).

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: expected {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

/// A variable that must be set (and not empty).
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// A variable with a default.
pub fn optional(name: &'static str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A whole number of seconds, with a default.
pub fn seconds(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    number(name, default).map(Duration::from_secs)
}

/// A whole number, with a default.
pub fn number(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            expected: "a whole number",
        }),
    }
}

/// How a function reaches Microsoft Graph: `GRAPH_CLIENT_ID` (the app registration, required),
/// `GRAPH_BASE_URL` and `LOGIN_BASE_URL` (default: the global cloud; a national cloud names
/// its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphApp {
    pub client_id: String,
    pub graph_url: url::Url,
    pub login_url: url::Url,
}

/// Read [`GraphApp`] from the environment.
pub fn graph_app() -> Result<GraphApp, ConfigError> {
    Ok(GraphApp {
        client_id: required("GRAPH_CLIENT_ID")?,
        graph_url: url("GRAPH_BASE_URL", "https://graph.microsoft.com")?,
        login_url: url("LOGIN_BASE_URL", "https://login.microsoftonline.com")?,
    })
}

/// An absolute URL, with a default.
pub fn url(name: &'static str, default: &str) -> Result<url::Url, ConfigError> {
    parse_url(name, &optional(name, default))
}

/// An absolute URL, or none when the variable is unset or empty.
pub fn optional_url(name: &'static str) -> Result<Option<url::Url>, ConfigError> {
    match optional(name, "") {
        v if v.trim().is_empty() => Ok(None),
        v => parse_url(name, &v).map(Some),
    }
}

fn parse_url(name: &'static str, value: &str) -> Result<url::Url, ConfigError> {
    url::Url::parse(value.trim()).map_err(|_| ConfigError::Invalid {
        name,
        expected: "an absolute URL (https://...)",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bad_url_is_named_and_never_echoed() {
        let err = parse_url("GRAPH_BASE_URL", "graph.microsoft.us")
            .unwrap_err()
            .to_string();
        assert!(err.contains("GRAPH_BASE_URL"), "{err}");
        assert!(
            !err.contains("graph.microsoft.us"),
            "names, never values: {err}"
        );
        let ok = parse_url("GRAPH_BASE_URL", " https://graph.microsoft.us ").unwrap();
        assert_eq!(ok.host_str(), Some("graph.microsoft.us"));
    }
}
