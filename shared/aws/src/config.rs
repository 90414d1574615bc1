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
