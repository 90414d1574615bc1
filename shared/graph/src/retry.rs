//! Retry timing: `Retry-After` parsing and exponential backoff with full jitter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::config::RetryPolicy;

/// `Retry-After` as delta-seconds (what Graph sends) or an HTTP-date. A date in the past means
/// "now". Anything unparseable is ignored (the caller falls back to backoff).
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Fractional seconds are not in the RFC, but cost nothing to accept.
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Full-jitter backoff before retry number `retry` (1 for the first retry): a uniform draw from
/// `[0, min(max_delay, base_delay * 2^(retry-1))]`.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let cap = backoff_cap(policy, retry);
    if cap.is_zero() {
        return cap;
    }
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// The upper bound of [`backoff`] for retry number `retry`.
pub(crate) fn backoff_cap(policy: &RetryPolicy, retry: u32) -> Duration {
    let exponent = retry.saturating_sub(1).min(31);
    policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(backoff_cap(&policy, 1), Duration::from_secs(1));
        assert_eq!(backoff_cap(&policy, 2), Duration::from_secs(2));
        assert_eq!(backoff_cap(&policy, 6), Duration::from_secs(32));
        assert_eq!(backoff_cap(&policy, 7), Duration::from_secs(60));
        assert_eq!(backoff_cap(&policy, 100), Duration::from_secs(60));
        for retry in 1..10 {
            assert!(backoff(&policy, retry) <= backoff_cap(&policy, retry));
        }
    }
}
