//! Parsers of what reaches the connect routes: the start and reconnect bodies and the consent
//! callback's query string. Bad input is a typed error, never a panic, and never quoted back.

use entra_sync_core::model::TenantId;
use entra_sync_core::ports::Secret;
use entra_sync_core::services::connect::{ConsentCallback, parse_tenant_id};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::json::JsonError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// Largest callback query string accepted.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Json(JsonError),
    #[error("expected_tenant_id must be a tenant id (GUID)")]
    TenantId,
}

/// `POST /accounts/{account}/connections/start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartBody {
    pub label: String,
    /// The tenant the admin is expected to consent in (optional).
    pub expected_tenant_id: Option<TenantId>,
}

/// `POST /accounts/{account}/connections/{tenant}/reconnect` (the body may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconnectBody {
    pub label: Option<String>,
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    // Names the field, never quotes the input (an array of the fields is no body either: found
    // by tests/tests/fuzz_parsers.rs).
    crate::json::from_slice(body).map_err(BodyError::Json)
}

pub fn parse_start_body(body: &[u8]) -> Result<StartBody, BodyError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        label: String,
        #[serde(default)]
        expected_tenant_id: Option<String>,
    }
    let w: Wire = json(body)?;
    let expected_tenant_id = match w.expected_tenant_id {
        None => None,
        Some(t) => Some(parse_tenant_id(&t).ok_or(BodyError::TenantId)?),
    };
    Ok(StartBody {
        label: w.label,
        expected_tenant_id,
    })
}

pub fn parse_reconnect_body(body: &[u8]) -> Result<ReconnectBody, BodyError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        #[serde(default)]
        label: Option<String>,
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ReconnectBody::default());
    }
    let w: Wire = json(body)?;
    Ok(ReconnectBody { label: w.label })
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("the query string is larger than {MAX_QUERY_BYTES} bytes")]
    TooLarge,
    #[error("parameter {0} appears more than once")]
    Duplicate(&'static str),
    #[error("the callback carries neither a consent nor an error")]
    Unrecognized,
}

const KNOWN: [&str; 6] = [
    "admin_consent",
    "tenant",
    "state",
    "scope",
    "error",
    "error_description",
];

/// The admin-consent callback: `?admin_consent=True&tenant=..&state=..[&scope=..]` or
/// `?error=..&error_description=..&state=..` (with or without `admin_consent`). A known
/// parameter given twice is refused (parameter pollution); unknown ones are ignored.
pub fn parse_callback_query(query: Option<&str>) -> Result<ConsentCallback, CallbackError> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY_BYTES {
        return Err(CallbackError::TooLarge);
    }
    let mut values: [Option<String>; 6] = Default::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(i) = KNOWN.iter().position(|n| *n == k) {
            if values[i].is_some() {
                return Err(CallbackError::Duplicate(KNOWN[i]));
            }
            values[i] = Some(v.into_owned());
        }
    }
    let [admin_consent, tenant, state, _scope, error, description] = values;
    let state = state.map(Secret::new);
    if let Some(error) = error.filter(|e| !e.is_empty()) {
        return Ok(ConsentCallback::Failed {
            state,
            error,
            description,
        });
    }
    match admin_consent {
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(ConsentCallback::Granted {
            state,
            tenant: tenant.filter(|t| !t.is_empty()),
        }),
        _ => Err(CallbackError::Unrecognized),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn start_bodies() {
        let b = parse_start_body(br#"{"label":"Contoso"}"#).unwrap();
        assert_eq!(b.label, "Contoso");
        assert!(b.expected_tenant_id.is_none());
        assert_eq!(
            parse_start_body(br#"{"label":"x","expected_tenant_id":"nope"}"#),
            Err(BodyError::TenantId)
        );
        assert!(matches!(
            parse_start_body(br#"{"label":"x","extra":1}"#),
            Err(BodyError::Json(_))
        ));
        assert!(matches!(parse_start_body(b"{"), Err(BodyError::Json(_))));
        assert!(matches!(
            parse_start_body(br#"["x"]"#),
            Err(BodyError::Json(_))
        ));
        assert_eq!(
            parse_start_body(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(BodyError::TooLarge)
        );
        assert_eq!(parse_reconnect_body(b"").unwrap(), ReconnectBody::default());
        assert_eq!(
            parse_reconnect_body(br#"{"label":"New"}"#)
                .unwrap()
                .label
                .as_deref(),
            Some("New")
        );
    }

    #[test]
    fn body_errors_name_the_field_without_its_value() {
        let e = parse_start_body(br#"{"label": 5}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label: invalid type: integer, expected a string"
        );
        let e = parse_reconnect_body(br#"{"label": ["secret-ish"]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label: invalid type: sequence, expected a string"
        );
        let e = parse_start_body(br#"{"label": "x", "expected_tenant_id": 7}"#).unwrap_err();
        assert!(e.to_string().starts_with("expected_tenant_id: "), "{e}");
    }

    #[test]
    fn callback_shapes() {
        let granted =
            parse_callback_query(Some("admin_consent=True&tenant=t&state=s&scope=x")).unwrap();
        assert_eq!(
            granted,
            ConsentCallback::Granted {
                state: Some(Secret::new("s")),
                tenant: Some("t".into())
            }
        );
        // An error wins even beside admin_consent=True.
        let denied = parse_callback_query(Some(
            "admin_consent=True&error=consent_required&error_description=AADSTS65004%3a+x&state=s",
        ))
        .unwrap();
        assert!(
            matches!(denied, ConsentCallback::Failed { error, description: Some(d), .. }
            if error == "consent_required" && d.starts_with("AADSTS65004:"))
        );
        assert_eq!(
            parse_callback_query(Some("state=a&state=b&admin_consent=True")),
            Err(CallbackError::Duplicate("state"))
        );
        assert_eq!(parse_callback_query(None), Err(CallbackError::Unrecognized));
        assert_eq!(
            parse_callback_query(Some("admin_consent=False&state=s")),
            Err(CallbackError::Unrecognized)
        );
    }
}
