//! Helpers shared by the HTTP tests: a started emulator with one tenant, a token, paging
//! through delta rounds, and a tiny mirror that applies delta pages like a sync client would.

#![allow(dead_code)]
// Test helpers: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use entra_sync_emulator::{Emulator, EmulatorConfig, TenantInfo, TenantSpec};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const ALL_USER_PROPS: &str = "id,displayName,givenName,surname,mail,userPrincipalName,jobTitle,department,officeLocation,usageLocation,businessPhones,mobilePhone,streetAddress,city,state,postalCode,country,employeeId,employeeHireDate,accountEnabled,userType,createdDateTime,onPremisesSyncEnabled,assignedLicenses,preferredLanguage,manager";
pub const ALL_GROUP_PROPS: &str = "id,displayName,description,groupTypes,securityEnabled,mailEnabled,mail,mailNickname,createdDateTime,members";

pub struct Fx {
    pub emu: Emulator,
    pub http: reqwest::Client,
    pub tenant: TenantInfo,
}

impl Fx {
    pub async fn new(config: EmulatorConfig, spec: TenantSpec) -> Fx {
        let emu = Emulator::start(config).await.unwrap();
        let tenant = emu.add_tenant(&spec);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Fx { emu, http, tenant }
    }

    pub async fn small() -> Fx {
        Fx::new(EmulatorConfig::default(), TenantSpec::new(7, 120, 12)).await
    }

    pub fn handle(&self) -> entra_sync_emulator::TenantHandle {
        self.emu.tenant(&self.tenant.tenant_id).unwrap()
    }

    pub fn graph(&self, path: &str) -> String {
        format!("{}/v1.0/{path}", self.emu.graph_base_url())
    }

    /// Raw token request (form body).
    pub async fn token_response(&self, tenant: &str, secret: &str) -> (StatusCode, Value) {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.emu.login_base_url());
        let app = self.emu.app();
        let resp = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub async fn token_for(&self, tenant: &str) -> String {
        let (status, body) = self
            .token_response(tenant, &self.emu.app().client_secret)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn token(&self) -> String {
        self.token_for(&self.tenant.tenant_id).await
    }

    pub async fn get(&self, url: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
        self.get_with(url, token, &[]).await
    }

    pub async fn get_with(
        &self,
        url: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self.http.get(url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, body)
    }

    /// Follows nextLinks to the end of a round: (pages, deltaLink).
    pub async fn round(&self, url: &str, token: &str) -> (Vec<Value>, String) {
        let mut pages = Vec::new();
        let mut next = url.to_string();
        for _ in 0..10_000 {
            let (status, _, body) = self.get(&next, token).await;
            assert_eq!(status, StatusCode::OK, "{next}: {body}");
            let has_next = body.get("@odata.nextLink").is_some();
            let has_delta = body.get("@odata.deltaLink").is_some();
            assert!(has_next ^ has_delta, "exactly one link per page: {body}");
            assert!(body.get("@odata.context").is_some());
            pages.push(body.clone());
            if has_delta {
                return (
                    pages,
                    body["@odata.deltaLink"].as_str().unwrap().to_string(),
                );
            }
            next = body["@odata.nextLink"].as_str().unwrap().to_string();
        }
        panic!("round did not end");
    }

    /// All `value` items of a round.
    pub async fn round_items(&self, url: &str, token: &str) -> (Vec<Value>, String) {
        let (pages, link) = self.round(url, token).await;
        let items = pages
            .iter()
            .flat_map(|p| p["value"].as_array().unwrap().clone())
            .collect();
        (items, link)
    }
}

/// What a sync client would have learnt from delta rounds.
#[derive(Default, Debug)]
pub struct Mirror {
    pub users: BTreeMap<String, Value>,
    pub managers: BTreeMap<String, String>,
    pub groups: BTreeMap<String, Value>,
    pub members: BTreeSet<(String, String, String)>,
}

impl Mirror {
    pub fn apply_users(&mut self, items: &[Value]) {
        for item in items {
            let id = item["id"].as_str().unwrap().to_string();
            if item.get("@removed").is_some() {
                self.users.remove(&id);
                self.managers.remove(&id);
                continue;
            }
            let mut obj = item.as_object().unwrap().clone();
            if let Some(md) = obj.remove("manager@delta") {
                for e in md.as_array().unwrap() {
                    if e.get("@removed").is_some() {
                        self.managers.remove(&id);
                    } else {
                        self.managers
                            .insert(id.clone(), e["id"].as_str().unwrap().to_string());
                    }
                }
            } else {
                // Full-replace semantics: a returned user without manager@delta (manager
                // selected) has no manager.
                self.managers.remove(&id);
            }
            self.users.insert(id, Value::Object(obj));
        }
    }

    pub fn apply_groups(&mut self, items: &[Value]) {
        for item in items {
            let id = item["id"].as_str().unwrap().to_string();
            if item.get("@removed").is_some() {
                self.groups.remove(&id);
                self.members.retain(|(g, _, _)| *g != id);
                continue;
            }
            let mut obj = item.as_object().unwrap().clone();
            if let Some(md) = obj.remove("members@delta") {
                for e in md.as_array().unwrap() {
                    let mid = e["id"].as_str().unwrap().to_string();
                    let t = e["@odata.type"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("#microsoft.graph.")
                        .to_string();
                    if e.get("@removed").is_some() {
                        self.members.remove(&(id.clone(), mid, t));
                    } else {
                        self.members.insert((id.clone(), mid, t));
                    }
                }
            }
            self.groups.insert(id, Value::Object(obj));
        }
    }

    /// Drops memberships whose member was removed (a client does this when a user goes).
    pub fn prune_members(&mut self) {
        let users = &self.users;
        let groups = &self.groups;
        self.members.retain(|(g, m, t)| {
            groups.contains_key(g)
                && if t == "user" {
                    users.contains_key(m)
                } else {
                    groups.contains_key(m)
                }
        });
    }
}
