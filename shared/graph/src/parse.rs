//! Graph wire JSON -> core model. Pure functions, no I/O.
//!
//! Entries are deserialised straight into small wire structs (serde derive, no `Value` trees);
//! unknown properties and `@odata.*` annotations are ignored. Errors never quote the payload
//! (it may hold personal data): they say what was wrong and where.

use std::borrow::Cow;

use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{
    DirectoryGroup, DirectoryUser, MemberRef, MemberType, RemovalReason, VerifiedDomain,
};
use entra_sync_core::page::{GroupDelta, ManagerChange, PageLink, UserDelta};
use serde::Deserialize;

/// The tenant as `GET /v1.0/organization` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// The tenant id.
    pub id: String,
    pub display_name: Option<String>,
    pub verified_domains: Vec<VerifiedDomain>,
}

/// One page of `/users/delta`: its entries and the link that follows it.
pub fn parse_users_page(body: &[u8]) -> Result<(Vec<UserDelta>, PageLink), DirectoryError> {
    let page: WirePage<WireUser<'_>> = from_slice(body, "users delta page")?;
    let link = page_link(page.next_link, page.delta_link)?;
    let entries = page
        .value
        .ok_or_else(|| invalid("users delta page has no `value` array"))?;
    let items = entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| entry.into_delta(index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, link))
}

/// One page of `/groups/delta`: its entries and the link that follows it. A large group appears
/// on several pages with different member slices; each page yields its own slice, so callers
/// accumulate members per group id.
pub fn parse_groups_page(body: &[u8]) -> Result<(Vec<GroupDelta>, PageLink), DirectoryError> {
    let page: WirePage<WireGroup<'_>> = from_slice(body, "groups delta page")?;
    let link = page_link(page.next_link, page.delta_link)?;
    let entries = page
        .value
        .ok_or_else(|| invalid("groups delta page has no `value` array"))?;
    let items = entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| entry.into_delta(index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, link))
}

/// A user object as Graph (or the emulator's snapshot) renders it, without delta annotations.
/// `manager_id` comes from a `managerId` string (emulator snapshots) or an expanded
/// `manager: {"id": ..}` object; `@removed` and `manager@delta` are ignored.
pub fn user_from_graph_json(value: &serde_json::Value) -> Result<DirectoryUser, DirectoryError> {
    let wire = WireUser::deserialize(value).map_err(|e| json_error("user object", &e))?;
    let manager_id = wire
        .manager_id
        .clone()
        .or_else(|| wire.manager.as_ref().and_then(|m| m.id.clone()));
    let mut user = wire.into_user(0)?;
    user.manager_id = manager_id;
    Ok(user)
}

/// A group object as Graph (or the emulator's snapshot) renders it. Members are not part of
/// [`DirectoryGroup`]; use [`parse_groups_page`] for `members@delta`.
pub fn group_from_graph_json(value: &serde_json::Value) -> Result<DirectoryGroup, DirectoryError> {
    let wire = WireGroup::deserialize(value).map_err(|e| json_error("group object", &e))?;
    let (group, _, _) = wire.into_parts(0)?;
    Ok(group)
}

/// The single organization of a `GET /v1.0/organization` response.
pub fn parse_organization(body: &[u8]) -> Result<Organization, DirectoryError> {
    let page: WireCollection<WireOrganization> = from_slice(body, "organization response")?;
    let mut orgs = page
        .value
        .ok_or_else(|| invalid("organization response has no `value` array"))?;
    if orgs.len() != 1 {
        return Err(invalid(format!(
            "organization response has {} entries, expected 1",
            orgs.len()
        )));
    }
    let org = orgs.remove(0);
    let id = org
        .id
        .ok_or_else(|| invalid("organization entry has no `id`"))?;
    let verified_domains = org
        .verified_domains
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| {
            Some(VerifiedDomain {
                name: d.name?,
                is_default: d.is_default.unwrap_or(false),
                is_initial: d.is_initial.unwrap_or(false),
            })
        })
        .collect();
    Ok(Organization {
        id,
        display_name: org.display_name,
        verified_domains,
    })
}

// ---------------------------------------------------------------------------------------------
// Wire types

#[derive(Deserialize)]
struct WirePage<T> {
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
    value: Option<Vec<T>>,
}

#[derive(Deserialize)]
struct WireCollection<T> {
    value: Option<Vec<T>>,
}

#[derive(Deserialize)]
struct WireRemoved<'a> {
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

/// An entry of `manager@delta` / `members@delta`, or an expanded `manager`.
#[derive(Deserialize)]
struct WireRef<'a> {
    #[serde(rename = "@odata.type", borrow)]
    odata_type: Option<Cow<'a, str>>,
    id: Option<String>,
    #[serde(rename = "@removed", borrow)]
    removed: Option<WireRemoved<'a>>,
}

#[derive(Deserialize)]
struct WireLicense {
    #[serde(rename = "skuId")]
    sku_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser<'a> {
    id: Option<String>,
    #[serde(rename = "@removed", borrow)]
    removed: Option<WireRemoved<'a>>,
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
    job_title: Option<String>,
    department: Option<String>,
    office_location: Option<String>,
    usage_location: Option<String>,
    business_phones: Option<Vec<String>>,
    mobile_phone: Option<String>,
    street_address: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
    employee_id: Option<String>,
    employee_hire_date: Option<String>,
    account_enabled: Option<bool>,
    user_type: Option<String>,
    on_premises_sync_enabled: Option<bool>,
    assigned_licenses: Option<Vec<WireLicense>>,
    #[serde(rename = "manager@delta", borrow)]
    manager_delta: Option<Vec<WireRef<'a>>>,
    /// Emulator snapshots only.
    manager_id: Option<String>,
    /// `$expand=manager` on list/get calls.
    #[serde(borrow)]
    manager: Option<WireRef<'a>>,
}

impl WireUser<'_> {
    fn into_delta(mut self, index: usize) -> Result<UserDelta, DirectoryError> {
        if let Some(removed) = &self.removed {
            let id = self.id.ok_or_else(|| missing_id("user", index))?;
            return Ok(UserDelta::Removed {
                id,
                reason: removal_reason(removed),
            });
        }
        let manager = match self.manager_delta.take() {
            None => ManagerChange::NotReported,
            Some(entries) => manager_change(entries, index)?,
        };
        let user = self.into_user(index)?;
        Ok(UserDelta::Upsert { user, manager })
    }

    fn into_user(self, index: usize) -> Result<DirectoryUser, DirectoryError> {
        let id = self.id.ok_or_else(|| missing_id("user", index))?;
        let mut license_sku_ids: Vec<String> = self
            .assigned_licenses
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| l.sku_id)
            .collect();
        license_sku_ids.sort_unstable();
        license_sku_ids.dedup();
        Ok(DirectoryUser {
            id,
            display_name: self.display_name,
            given_name: self.given_name,
            surname: self.surname,
            mail: self.mail,
            user_principal_name: self.user_principal_name,
            job_title: self.job_title,
            department: self.department,
            office_location: self.office_location,
            usage_location: self.usage_location,
            business_phones: self.business_phones.unwrap_or_default(),
            mobile_phone: self.mobile_phone,
            street_address: self.street_address,
            city: self.city,
            state: self.state,
            postal_code: self.postal_code,
            country: self.country,
            employee_id: self.employee_id,
            employee_hire_date: self.employee_hire_date,
            account_enabled: self.account_enabled,
            user_type: self.user_type,
            on_premises_sync_enabled: self.on_premises_sync_enabled,
            license_sku_ids,
            manager_id: None,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGroup<'a> {
    id: Option<String>,
    #[serde(rename = "@removed", borrow)]
    removed: Option<WireRemoved<'a>>,
    display_name: Option<String>,
    description: Option<String>,
    group_types: Option<Vec<String>>,
    security_enabled: Option<bool>,
    mail_enabled: Option<bool>,
    mail: Option<String>,
    on_premises_sync_enabled: Option<bool>,
    #[serde(rename = "members@delta", borrow)]
    members_delta: Option<Vec<WireRef<'a>>>,
}

type GroupParts = (DirectoryGroup, Vec<MemberRef>, Vec<MemberRef>);

impl WireGroup<'_> {
    fn into_delta(self, index: usize) -> Result<GroupDelta, DirectoryError> {
        if let Some(removed) = &self.removed {
            let id = self.id.ok_or_else(|| missing_id("group", index))?;
            return Ok(GroupDelta::Removed {
                id,
                reason: removal_reason(removed),
            });
        }
        let (group, members_added, members_removed) = self.into_parts(index)?;
        Ok(GroupDelta::Upsert {
            group,
            members_added,
            members_removed,
        })
    }

    fn into_parts(self, index: usize) -> Result<GroupParts, DirectoryError> {
        let id = self.id.ok_or_else(|| missing_id("group", index))?;
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for entry in self.members_delta.unwrap_or_default() {
            let member_type = entry
                .odata_type
                .as_deref()
                .map_or(MemberType::Other, MemberType::from_odata_type);
            let member = MemberRef {
                id: entry.id.ok_or_else(|| {
                    invalid(format!(
                        "group entry {index}: a members@delta entry has no `id`"
                    ))
                })?,
                member_type,
            };
            if entry.removed.is_some() {
                removed.push(member);
            } else {
                added.push(member);
            }
        }
        let group = DirectoryGroup {
            id,
            display_name: self.display_name,
            description: self.description,
            group_types: self.group_types.unwrap_or_default(),
            security_enabled: self.security_enabled,
            mail_enabled: self.mail_enabled,
            mail: self.mail,
            on_premises_sync_enabled: self.on_premises_sync_enabled,
        };
        Ok((group, added, removed))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOrganization {
    id: Option<String>,
    display_name: Option<String>,
    verified_domains: Option<Vec<WireDomain>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDomain {
    name: Option<String>,
    is_default: Option<bool>,
    is_initial: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `"changed"` is a soft delete, `"deleted"` a permanent one. An unknown or missing reason is
/// read as a soft delete: the object is gone from the view either way, and "may come back" is
/// the less destructive reading.
fn removal_reason(removed: &WireRemoved<'_>) -> RemovalReason {
    match removed.reason.as_deref() {
        Some(r) if r.eq_ignore_ascii_case("deleted") => RemovalReason::HardDeleted,
        _ => RemovalReason::SoftDeleted,
    }
}

/// `manager@delta`: the last entry without `@removed` is the new manager; only removals (or an
/// empty array) mean the manager was taken away.
fn manager_change(
    entries: Vec<WireRef<'_>>,
    index: usize,
) -> Result<ManagerChange, DirectoryError> {
    let mut set = None;
    for entry in entries {
        let Some(id) = entry.id else {
            return Err(invalid(format!(
                "user entry {index}: a manager@delta entry has no `id`"
            )));
        };
        if entry.removed.is_none() {
            set = Some(id);
        }
    }
    Ok(set.map_or(ManagerChange::Removed, ManagerChange::Set))
}

fn page_link(next: Option<String>, delta: Option<String>) -> Result<PageLink, DirectoryError> {
    match (next, delta) {
        (Some(next), None) => Ok(PageLink::Next(next)),
        (None, Some(delta)) => Ok(PageLink::Delta(delta)),
        (Some(_), Some(_)) => Err(invalid(
            "delta page has both @odata.nextLink and @odata.deltaLink",
        )),
        (None, None) => Err(invalid(
            "delta page has neither @odata.nextLink nor @odata.deltaLink",
        )),
    }
}

fn from_slice<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, DirectoryError> {
    serde_json::from_slice(body).map_err(|e| json_error(what, &e))
}

/// Describes a JSON error by category and position only: serde_json's own message can quote
/// the offending value, which may be personal data.
fn json_error(what: &str, e: &serde_json::Error) -> DirectoryError {
    let category = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    if e.line() == 0 {
        invalid(format!("{what}: {category}"))
    } else {
        invalid(format!(
            "{what}: {category} at line {} column {}",
            e.line(),
            e.column()
        ))
    }
}

fn missing_id(kind: &str, index: usize) -> DirectoryError {
    invalid(format!("{kind} entry {index} has no `id`"))
}

fn invalid(message: impl Into<String>) -> DirectoryError {
    DirectoryError::InvalidResponse(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users(body: serde_json::Value) -> Result<(Vec<UserDelta>, PageLink), DirectoryError> {
        parse_users_page(body.to_string().as_bytes())
    }

    fn groups(body: serde_json::Value) -> Result<(Vec<GroupDelta>, PageLink), DirectoryError> {
        parse_groups_page(body.to_string().as_bytes())
    }

    #[test]
    fn full_user_maps_every_selected_property() {
        let (items, link) = users(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc",
            "value": [{
                "@odata.type": "#microsoft.graph.user",
                "id": "u1", "displayName": "Ada Lovelace", "givenName": "Ada", "surname": "Lovelace",
                "mail": "ada@contoso.com", "userPrincipalName": "ada@contoso.com",
                "jobTitle": "Engineer", "department": "R&D", "officeLocation": "B1",
                "usageLocation": "GB", "businessPhones": ["+44 1"], "mobilePhone": null,
                "streetAddress": "1 Road", "city": "London", "state": null, "postalCode": "N1",
                "country": "UK", "employeeId": "E1", "employeeHireDate": "2020-01-01T00:00:00Z",
                "accountEnabled": true, "userType": "Member", "onPremisesSyncEnabled": null,
                "assignedLicenses": [
                    {"skuId": "sku-b", "disabledPlans": []},
                    {"skuId": "sku-a", "disabledPlans": ["p"]}
                ],
                "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1"}],
                "someFutureProperty": {"nested": [1, 2, 3]}
            }]
        }))
        .unwrap();
        assert_eq!(
            link,
            PageLink::Next("https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc".into())
        );
        let UserDelta::Upsert { user, manager } = &items[0] else {
            panic!("expected upsert")
        };
        assert_eq!(manager, &ManagerChange::Set("m1".into()));
        assert_eq!(user.id, "u1");
        assert_eq!(user.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(user.business_phones, vec!["+44 1".to_string()]);
        assert_eq!(user.mobile_phone, None);
        assert_eq!(user.license_sku_ids, vec!["sku-a", "sku-b"]);
        assert_eq!(user.account_enabled, Some(true));
        assert_eq!(
            user.employee_hire_date.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(user.manager_id, None, "pages never set manager_id");
    }

    #[test]
    fn removed_users_map_reason() {
        let (items, link) = users(json!({
            "@odata.deltaLink": "https://g/v1.0/users/delta?$deltatoken=x",
            "value": [
                {"id": "a", "@removed": {"reason": "changed"}},
                {"id": "b", "@removed": {"reason": "deleted"}},
                {"id": "c", "@removed": {}}
            ]
        }))
        .unwrap();
        assert!(matches!(link, PageLink::Delta(_)));
        assert_eq!(
            items,
            vec![
                UserDelta::Removed {
                    id: "a".into(),
                    reason: RemovalReason::SoftDeleted
                },
                UserDelta::Removed {
                    id: "b".into(),
                    reason: RemovalReason::HardDeleted
                },
                UserDelta::Removed {
                    id: "c".into(),
                    reason: RemovalReason::SoftDeleted
                },
            ]
        );
    }

    #[test]
    fn manager_delta_absent_removed_and_replaced() {
        let (items, _) = users(json!({
            "@odata.deltaLink": "d",
            "value": [
                {"id": "a"},
                {"id": "b", "manager@delta": [{"id": "m", "@removed": {"reason": "deleted"}}]},
                {"id": "c", "manager@delta": [
                    {"id": "old", "@removed": {"reason": "deleted"}},
                    {"@odata.type": "#microsoft.graph.user", "id": "new"}
                ]},
                {"id": "d", "manager@delta": []}
            ]
        }))
        .unwrap();
        let managers: Vec<_> = items
            .iter()
            .map(|i| match i {
                UserDelta::Upsert { manager, .. } => manager.clone(),
                UserDelta::Removed { .. } => panic!("unexpected removal"),
            })
            .collect();
        assert_eq!(
            managers,
            vec![
                ManagerChange::NotReported,
                ManagerChange::Removed,
                ManagerChange::Set("new".into()),
                ManagerChange::Removed,
            ]
        );
    }

    #[test]
    fn empty_page_with_next_link_is_valid() {
        let (items, link) = users(json!({"@odata.nextLink": "n", "value": []})).unwrap();
        assert!(items.is_empty());
        assert_eq!(link, PageLink::Next("n".into()));
    }

    #[test]
    fn page_needs_exactly_one_link() {
        assert!(matches!(
            users(json!({"value": []})),
            Err(DirectoryError::InvalidResponse(_))
        ));
        assert!(matches!(
            users(json!({"@odata.nextLink": "n", "@odata.deltaLink": "d", "value": []})),
            Err(DirectoryError::InvalidResponse(_))
        ));
        assert!(matches!(
            users(json!({"@odata.nextLink": null, "value": []})),
            Err(DirectoryError::InvalidResponse(_))
        ));
    }

    #[test]
    fn entry_without_id_is_invalid() {
        let err =
            users(json!({"@odata.deltaLink": "d", "value": [{"displayName": "x"}]})).unwrap_err();
        assert!(matches!(err, DirectoryError::InvalidResponse(_)));
        let err =
            users(json!({"@odata.deltaLink": "d", "value": [{"@removed": {"reason": "deleted"}}]}))
                .unwrap_err();
        assert!(matches!(err, DirectoryError::InvalidResponse(_)));
        let err = groups(json!({"@odata.deltaLink": "d", "value": [{"id": "g", "members@delta": [{"@odata.type": "#microsoft.graph.user"}]}]}))
            .unwrap_err();
        assert!(matches!(err, DirectoryError::InvalidResponse(_)));
    }

    #[test]
    fn garbage_never_panics_and_errors_do_not_quote_payload() {
        let inputs: Vec<&[u8]> = vec![
            b"",
            b"null",
            b"[]",
            b"{",
            b"{\"value\": null, \"@odata.deltaLink\": \"d\"}",
            b"{\"value\": [null], \"@odata.deltaLink\": \"d\"}",
            b"{\"value\": [1], \"@odata.deltaLink\": \"d\"}",
            b"{\"value\": [{\"id\": 5}], \"@odata.deltaLink\": \"d\"}",
            b"{\"value\": [{\"id\": \"a\", \"displayName\": [\"secret-name\"]}], \"@odata.deltaLink\": \"d\"}",
            b"{\"value\": [{\"id\": \"a\", \"accountEnabled\": \"secret-name\"}], \"@odata.deltaLink\": \"d\"}",
            b"\xff\xfe",
        ];
        for input in inputs {
            let u = parse_users_page(input);
            let g = parse_groups_page(input);
            for err in [u.err(), g.err()].into_iter().flatten() {
                assert!(matches!(err, DirectoryError::InvalidResponse(_)));
                let text = format!("{err} {err:?}");
                assert!(!text.contains("secret-name"), "{text}");
            }
        }
    }

    #[test]
    fn groups_members_split_added_and_removed() {
        let (items, _) = groups(json!({
            "@odata.nextLink": "n",
            "value": [
                {"id": "g1", "displayName": "Eng", "groupTypes": ["Unified"], "securityEnabled": false,
                 "mailEnabled": true, "mail": "eng@contoso.com", "description": null,
                 "members@delta": [
                    {"@odata.type": "#microsoft.graph.user", "id": "u1"},
                    {"@odata.type": "#microsoft.graph.group", "id": "g2"},
                    {"@odata.type": "#microsoft.graph.user", "id": "u2", "@removed": {"reason": "deleted"}},
                    {"id": "x"}
                 ]},
                {"id": "g3", "groupTypes": null},
                {"id": "g4", "@removed": {"reason": "deleted"}}
            ]
        }))
        .unwrap();
        let GroupDelta::Upsert {
            group,
            members_added,
            members_removed,
        } = &items[0]
        else {
            panic!("expected upsert")
        };
        assert_eq!(group.group_types, vec!["Unified".to_string()]);
        assert_eq!(group.mail_enabled, Some(true));
        assert_eq!(
            members_added,
            &vec![
                MemberRef {
                    id: "u1".into(),
                    member_type: MemberType::User
                },
                MemberRef {
                    id: "g2".into(),
                    member_type: MemberType::Group
                },
                MemberRef {
                    id: "x".into(),
                    member_type: MemberType::Other
                },
            ]
        );
        assert_eq!(
            members_removed,
            &vec![MemberRef {
                id: "u2".into(),
                member_type: MemberType::User
            }]
        );
        let GroupDelta::Upsert {
            group,
            members_added,
            ..
        } = &items[1]
        else {
            panic!("expected upsert")
        };
        assert!(group.group_types.is_empty());
        assert!(members_added.is_empty());
        assert_eq!(
            items[2],
            GroupDelta::Removed {
                id: "g4".into(),
                reason: RemovalReason::HardDeleted
            }
        );
    }

    #[test]
    fn snapshot_user_takes_manager_id() {
        let user = user_from_graph_json(&json!({
            "id": "u1", "displayName": "A", "managerId": "m1", "accountEnabled": false,
            "assignedLicenses": [{"skuId": "z"}, {"skuId": "a"}, {"skuId": "a"}]
        }))
        .unwrap();
        assert_eq!(user.manager_id.as_deref(), Some("m1"));
        assert_eq!(user.license_sku_ids, vec!["a", "z"]);
        assert_eq!(user.account_enabled, Some(false));

        let expanded = user_from_graph_json(&json!({"id": "u2", "manager": {"id": "m2"}})).unwrap();
        assert_eq!(expanded.manager_id.as_deref(), Some("m2"));
        assert!(user_from_graph_json(&json!({"displayName": "no id"})).is_err());
        assert!(user_from_graph_json(&json!("string")).is_err());
    }

    #[test]
    fn snapshot_group_maps_fields() {
        let group = group_from_graph_json(&json!({
            "id": "g", "displayName": "G", "securityEnabled": true, "mailEnabled": false,
            "groupTypes": [], "members@delta": [{"id": "u"}]
        }))
        .unwrap();
        assert_eq!(group.id, "g");
        assert_eq!(group.security_enabled, Some(true));
    }

    #[test]
    fn organization_parses_domains() {
        let org = parse_organization(
            json!({"value": [{"id": "t1", "displayName": "Contoso", "countryLetterCode": "US",
            "verifiedDomains": [
                {"name": "contoso.onmicrosoft.com", "isDefault": false, "isInitial": true,
                 "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnlineService"},
                {"name": "contoso.com", "isDefault": true, "isInitial": false, "type": "Managed",
                 "capabilities": "Email"}
            ]}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(org.id, "t1");
        assert_eq!(org.display_name.as_deref(), Some("Contoso"));
        assert_eq!(org.verified_domains.len(), 2);
        assert!(org.verified_domains[0].is_initial);
        assert!(org.verified_domains[1].is_default);
        assert!(parse_organization(b"{\"value\": []}").is_err());
    }
}
