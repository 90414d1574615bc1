//! Attribute mapping: which directory attribute feeds which field of the host product's user.
//!
//! The defaults are `name`, `email`, `phone` and `department`; custom target fields can be fed
//! from any mirrored user attribute. A mapping is checked when it is saved, so a typo in a
//! source attribute is an error the admin sees, not an empty field discovered weeks later.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::DirectoryUser;

/// Target field fed from a source attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Field name in the host product: lower-case letters, digits and `_`, starting with a
    /// letter, at most 64 characters.
    pub target: String,
    /// A directory attribute, named as Graph names it (`jobTitle`, `employeeId`...), or one of
    /// the derived attributes `email` (mail, else UPN) and `phone` (first business phone, else
    /// mobile).
    pub source: String,
}

/// The whole mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributeMapping {
    pub fields: Vec<FieldMapping>,
}

/// The target that always carries the canonical email (matching depends on it).
pub const EMAIL_TARGET: &str = "email";

fn field(target: &str, source: &str) -> FieldMapping {
    FieldMapping {
        target: target.to_owned(),
        source: source.to_owned(),
    }
}

impl Default for AttributeMapping {
    fn default() -> Self {
        Self {
            fields: vec![
                field("name", "displayName"),
                field(EMAIL_TARGET, "email"),
                field("phone", "phone"),
                field("department", "department"),
            ],
        }
    }
}

/// Every attribute a mapping can read, as Graph names it.
pub const SOURCE_ATTRIBUTES: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "email",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "department",
    "officeLocation",
    "usageLocation",
    "phone",
    "businessPhones",
    "mobilePhone",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "employeeId",
    "employeeHireDate",
    "accountEnabled",
    "userType",
    "managerId",
];

/// The value of a source attribute for `user` (`None`: the user has no value).
pub fn source_value(user: &DirectoryUser, source: &str) -> Option<String> {
    let s = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    match source {
        "id" => Some(user.id.clone()),
        "displayName" => s(&user.display_name),
        "givenName" => s(&user.given_name),
        "surname" => s(&user.surname),
        "email" => user
            .mail
            .clone()
            .or_else(|| user.user_principal_name.clone())
            .filter(|v| !v.is_empty()),
        "mail" => s(&user.mail),
        "userPrincipalName" => s(&user.user_principal_name),
        "jobTitle" => s(&user.job_title),
        "department" => s(&user.department),
        "officeLocation" => s(&user.office_location),
        "usageLocation" => s(&user.usage_location),
        "phone" => user
            .business_phones
            .first()
            .cloned()
            .or_else(|| user.mobile_phone.clone())
            .filter(|v| !v.is_empty()),
        "businessPhones" => Some(user.business_phones.join(", ")).filter(|v| !v.is_empty()),
        "mobilePhone" => s(&user.mobile_phone),
        "streetAddress" => s(&user.street_address),
        "city" => s(&user.city),
        "state" => s(&user.state),
        "postalCode" => s(&user.postal_code),
        "country" => s(&user.country),
        "employeeId" => s(&user.employee_id),
        "employeeHireDate" => s(&user.employee_hire_date),
        "accountEnabled" => user.account_enabled.map(|b| b.to_string()),
        "userType" => s(&user.user_type),
        "managerId" => s(&user.manager_id),
        _ => None,
    }
}

fn valid_target(t: &str) -> bool {
    let mut chars = t.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && t.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl AttributeMapping {
    /// The mapped fields of `user` (fields without a value are left out).
    pub fn apply(&self, user: &DirectoryUser) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter_map(|f| source_value(user, &f.source).map(|v| (f.target.clone(), v)))
            .collect()
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut targets = BTreeSet::new();
        let mut has_email = false;
        for (i, f) in self.fields.iter().enumerate() {
            if !valid_target(&f.target) {
                p.push(format!(
                    "mapping.fields[{i}].target \"{}\" must be lower-case letters, digits or _ and start with a letter (at most 64)",
                    f.target
                ));
            }
            if !targets.insert(f.target.as_str()) {
                p.push(format!(
                    "mapping.fields[{i}].target \"{}\" is mapped twice",
                    f.target
                ));
            }
            if !SOURCE_ATTRIBUTES.contains(&f.source.as_str()) {
                let hint = SOURCE_ATTRIBUTES
                    .iter()
                    .find(|a| a.eq_ignore_ascii_case(&f.source))
                    .map(|a| format!(" (did you mean \"{a}\"?)"))
                    .unwrap_or_default();
                p.push(format!(
                    "mapping.fields[{i}].source \"{}\" is not a directory attribute{hint}; known: {}",
                    f.source,
                    SOURCE_ATTRIBUTES.join(", ")
                ));
            }
            if f.target == EMAIL_TARGET {
                has_email = true;
                if f.source != "email" {
                    p.push(format!(
                        "mapping.fields[{i}]: the email field always comes from \"email\" (mail, else UPN); matching depends on it"
                    ));
                }
            }
        }
        if !has_email {
            p.push("mapping must map the email field (target \"email\", source \"email\")".into());
        }
        p
    }

    /// `target <- source, ...`, for people.
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("{} <- {}", f.target, f.source))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_name_email_phone_department() {
        let u = DirectoryUser {
            id: "u1".into(),
            display_name: Some("Ada".into()),
            user_principal_name: Some("ada@contoso.com".into()),
            mobile_phone: Some("+33 1".into()),
            department: Some("R&D".into()),
            ..Default::default()
        };
        let m = AttributeMapping::default();
        assert!(m.problems().is_empty());
        let out = m.apply(&u);
        assert_eq!(out["name"], "Ada");
        assert_eq!(out["email"], "ada@contoso.com");
        assert_eq!(out["phone"], "+33 1");
        assert_eq!(out["department"], "R&D");
    }

    #[test]
    fn custom_fields_come_from_any_attribute() {
        let mut m = AttributeMapping::default();
        m.fields.push(field("title", "jobTitle"));
        m.fields.push(field("badge", "employeeId"));
        let u = DirectoryUser {
            id: "u1".into(),
            job_title: Some("Engineer".into()),
            employee_id: Some("E-7".into()),
            ..Default::default()
        };
        let out = m.apply(&u);
        assert_eq!(out["title"], "Engineer");
        assert_eq!(out["badge"], "E-7");
        assert!(!out.contains_key("name"), "no value, no field");
    }

    #[test]
    fn invalid_mappings_are_rejected_with_reasons() {
        let cases = [
            (field("Title", "jobTitle"), "lower-case"),
            (field("title", "jobtitle"), "did you mean \"jobTitle\""),
            (field("name", "surname"), "mapped twice"),
            (field("x", "extension9"), "not a directory attribute"),
        ];
        for (f, expected) in cases {
            let mut m = AttributeMapping::default();
            m.fields.push(f.clone());
            let p = m.problems().join("; ");
            assert!(p.contains(expected), "{f:?}: {p}");
        }
        let no_email = AttributeMapping {
            fields: vec![field("name", "displayName")],
        };
        assert!(no_email.problems().join(" ").contains("email"));
    }

    #[test]
    fn every_source_attribute_is_readable() {
        let v = |s: &str| Some(s.to_owned());
        let u = DirectoryUser {
            id: "u1".into(),
            display_name: v("d"),
            given_name: v("g"),
            surname: v("s"),
            mail: v("m@x.com"),
            user_principal_name: v("u@x.com"),
            job_title: v("j"),
            department: v("dep"),
            office_location: v("o"),
            usage_location: v("FR"),
            business_phones: vec!["1".into()],
            mobile_phone: v("2"),
            street_address: v("st"),
            city: v("c"),
            state: v("sta"),
            postal_code: v("p"),
            country: v("co"),
            employee_id: v("e"),
            employee_hire_date: v("2020-01-01"),
            account_enabled: Some(true),
            user_type: v("Member"),
            on_premises_sync_enabled: None,
            license_sku_ids: vec![],
            manager_id: v("boss"),
        };
        for a in SOURCE_ATTRIBUTES {
            assert!(source_value(&u, a).is_some(), "{a} has no reader");
        }
        assert_eq!(source_value(&u, "nope"), None);
    }
}
