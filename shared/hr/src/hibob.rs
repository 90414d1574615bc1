//! HiBob's People API, for the fields HiBob's v2 webhook events do not carry: `POST
//! {base}/v1/people/{id}` with the fields we need and `humanReadable: REPLACE` (names instead
//! of list ids), authenticated with a service user (HTTP Basic: the service user id and its
//! token). The endpoint's credential in the vault is `service-user-id:token`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use entra_sync_core::ports::Secret;
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::endpoint::WebhookEndpoint;
use entra_sync_core::webhooks::ports::{HrDirectory, HrDirectoryError, HrEmployee};
use serde_json::Value;

/// The fields read, as HiBob names them.
pub const FIELDS: [&str; 7] = [
    "root.id",
    "root.email",
    "work.employeeIdInCompany",
    "work.startDate",
    "work.department",
    "work.reportsTo.email",
    "internal.terminationDate",
];

/// Where HiBob's API is.
#[derive(Clone, Debug)]
pub struct HiBobConfig {
    /// `https://api.hibob.com` in production (`https://api.sandbox.hibob.com` for a sandbox);
    /// tests point it at the emulator.
    pub base_url: String,
    pub request_timeout: Duration,
}

impl Default for HiBobConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.hibob.com".into(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The client: built once, shared by every request.
#[derive(Clone, Debug)]
pub struct HiBobClient {
    http: reqwest::Client,
    base_url: String,
}

impl HiBobClient {
    pub fn new(config: HiBobConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("entra-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
        })
    }
}

fn unavailable(status: Option<u16>, e: Option<reqwest::Error>) -> HrDirectoryError {
    HrDirectoryError::Unavailable {
        status,
        source: e.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
    }
}

#[async_trait]
impl HrDirectory for HiBobClient {
    async fn employee(
        &self,
        endpoint: &WebhookEndpoint,
        credential: &Secret,
        provider_id: &str,
    ) -> Result<Option<HrEmployee>, HrDirectoryError> {
        if endpoint.key.source != Source::HiBob {
            return Err(HrDirectoryError::InvalidResponse(format!(
                "{} events need no API lookup",
                endpoint.key.source
            )));
        }
        let Some((user, token)) = credential.expose().split_once(':') else {
            return Err(HrDirectoryError::Unauthorized { status: 0 });
        };
        // HiBob's ids are digits; anything else cannot be an employee (and stays out of URLs).
        if provider_id.is_empty() || !provider_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let url = format!("{}/v1/people/{provider_id}", self.base_url);
        let resp = self
            .http
            .post(url)
            .basic_auth(user, Some(token))
            .header("accept", "application/json")
            .json(&serde_json::json!({ "fields": FIELDS, "humanReadable": "REPLACE" }))
            .send()
            .await
            .map_err(|e| unavailable(None, Some(e)))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(None),
            401 | 403 => return Err(HrDirectoryError::Unauthorized { status }),
            429 | 500..=599 => return Err(unavailable(Some(status), None)),
            _ => {
                return Err(HrDirectoryError::InvalidResponse(format!(
                    "status {status}"
                )));
            }
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| HrDirectoryError::InvalidResponse("the body is not JSON".into()))?;
        Ok(Some(parse_employee(provider_id, &body)?))
    }
}

fn path<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn text(v: &Value, dotted: &str) -> Option<String> {
    match path(v, dotted)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn date(v: &Value, dotted: &str) -> Result<Option<NaiveDate>, HrDirectoryError> {
    let Some(s) = text(v, dotted) else {
        return Ok(None);
    };
    // HiBob writes dates as YYYY-MM-DD (or DD/MM/YYYY when human readable in some sites).
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&s, "%d/%m/%Y"))
        .map(Some)
        .map_err(|_| HrDirectoryError::InvalidResponse(format!("{dotted} is not a date")))
}

/// One employee from HiBob's JSON (fields nested by their dotted path; `root.` fields at the top).
pub fn parse_employee(provider_id: &str, v: &Value) -> Result<HrEmployee, HrDirectoryError> {
    if !v.is_object() {
        return Err(HrDirectoryError::InvalidResponse("not an object".into()));
    }
    Ok(HrEmployee {
        provider_id: text(v, "id").unwrap_or_else(|| provider_id.to_string()),
        employee_number: text(v, "work.employeeIdInCompany"),
        work_email: text(v, "email"),
        start_date: date(v, "work.startDate")?,
        termination_date: date(v, "internal.terminationDate")?,
        department: text(v, "work.department"),
        manager: text(v, "work.reportsTo.email"),
    })
}
