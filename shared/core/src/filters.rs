//! Scope filters: which directory users the host product gets. OR within a section, AND across
//! sections. A section set to `all` has no restriction, so it also admits values that appear in
//! the directory later (a new department, a new domain). Guests and disabled accounts are
//! excluded by default.
//!
//! Filters are evaluated on the mirror, never on a delta: an edit takes effect on the next
//! projection without reading the directory again. (Tools that filter the delta instead miss
//! the users an edit brings into scope: they never change, so no delta reports them.)

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::DirectoryUser;

/// One filter section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Section<T> {
    /// No restriction; values that appear later are admitted too.
    #[default]
    All,
    /// The user must have at least one of these values.
    AnyOf { values: Vec<T> },
}

impl<T: fmt::Display> Section<T> {
    fn describe(&self) -> String {
        match self {
            Section::All => "all".to_owned(),
            Section::AnyOf { values } => values
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }
}

/// Member or guest (Graph `userType`; a missing value counts as member).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    Member,
    Guest,
}

impl UserType {
    pub fn of(user: &DirectoryUser) -> Self {
        match user.user_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("guest") => UserType::Guest,
            _ => UserType::Member,
        }
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserType::Member => "member",
            UserType::Guest => "guest",
        })
    }
}

/// Whether the user holds any license.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    Licensed,
    Unlicensed,
}

impl LicenseStatus {
    pub fn of(user: &DirectoryUser) -> Self {
        match user.license_sku_ids.is_empty() {
            true => LicenseStatus::Unlicensed,
            false => LicenseStatus::Licensed,
        }
    }
}

impl fmt::Display for LicenseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LicenseStatus::Licensed => "licensed",
            LicenseStatus::Unlicensed => "unlicensed",
        })
    }
}

/// The scope filters of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeFilters {
    /// Group ids; a user matches when it is a member, directly or through nested groups.
    pub groups: Section<String>,
    /// Domains of the canonical email (mail, else UPN), case-insensitive.
    pub email_domains: Section<String>,
    pub user_types: Section<UserType>,
    /// Office location, case-insensitive.
    pub office_locations: Section<String>,
    /// Department, case-insensitive.
    pub departments: Section<String>,
    pub license_status: Section<LicenseStatus>,
    /// Import accounts that are disabled in the directory (as deactivated users). Off by
    /// default: a disabled account is never imported, but a user we already have is deactivated
    /// when its account is disabled.
    pub include_disabled: bool,
}

impl Default for ScopeFilters {
    fn default() -> Self {
        Self {
            groups: Section::All,
            email_domains: Section::All,
            user_types: Section::AnyOf {
                values: vec![UserType::Member],
            },
            office_locations: Section::All,
            departments: Section::All,
            license_status: Section::All,
            include_disabled: false,
        }
    }
}

/// Why a user is outside the filters, in plain words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfScope(pub String);

impl fmt::Display for OutOfScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn text_section(
    section: &Section<String>,
    value: Option<&str>,
    what: &str,
) -> Result<(), OutOfScope> {
    match section {
        Section::All => Ok(()),
        Section::AnyOf { values } => match value {
            Some(v) if values.iter().any(|x| eq_ci(x, v)) => Ok(()),
            Some(v) => Err(OutOfScope(format!(
                "{what} \"{v}\" is not one of the selected {what}s"
            ))),
            None => Err(OutOfScope(format!(
                "no {what}, and the filter selects specific {what}s"
            ))),
        },
    }
}

fn enum_section<T: PartialEq + fmt::Display>(
    section: &Section<T>,
    value: T,
    what: &str,
) -> Result<(), OutOfScope> {
    match section {
        Section::All => Ok(()),
        Section::AnyOf { values } if values.contains(&value) => Ok(()),
        Section::AnyOf { .. } => Err(OutOfScope(format!(
            "{what} is {value}, which the filter excludes"
        ))),
    }
}

/// The domain of an email address, lower-cased.
pub fn email_domain(email: &str) -> Option<String> {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_lowercase())
        .filter(|d| !d.is_empty())
}

impl ScopeFilters {
    /// The selected group ids, when the group section restricts.
    pub fn selected_groups(&self) -> Option<&[String]> {
        match &self.groups {
            Section::All => None,
            Section::AnyOf { values } => Some(values),
        }
    }

    /// Whether `user` matches every section. `in_groups` is the set of user ids that are members
    /// (directly or nested) of the selected groups; it is only consulted when the group section
    /// restricts. Account status is not a filter here: see [`ScopeFilters::include_disabled`].
    pub fn admits(
        &self,
        user: &DirectoryUser,
        in_groups: Option<&HashSet<String>>,
    ) -> Result<(), OutOfScope> {
        enum_section(&self.user_types, UserType::of(user), "user type")?;
        if let Section::AnyOf { .. } = self.groups {
            let member = in_groups.is_some_and(|set| set.contains(&user.id));
            if !member {
                return Err(OutOfScope(
                    "not a member of any selected group (directly or nested)".to_owned(),
                ));
            }
        }
        let domain = user.canonical_email().and_then(|e| email_domain(&e));
        text_section(&self.email_domains, domain.as_deref(), "email domain")?;
        text_section(
            &self.office_locations,
            user.office_location.as_deref(),
            "office location",
        )?;
        text_section(&self.departments, user.department.as_deref(), "department")?;
        enum_section(
            &self.license_status,
            LicenseStatus::of(user),
            "license status",
        )?;
        Ok(())
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut empty = |name: &str, len: Option<usize>| {
            if len == Some(0) {
                p.push(format!(
                    "filters.{name} selects nothing; use {{\"mode\":\"all\"}} for no restriction"
                ));
            }
        };
        let len = |s: &Section<String>| match s {
            Section::All => None,
            Section::AnyOf { values } => Some(values.len()),
        };
        empty("groups", len(&self.groups));
        empty("email_domains", len(&self.email_domains));
        empty("office_locations", len(&self.office_locations));
        empty("departments", len(&self.departments));
        if let Section::AnyOf { values } = &self.user_types {
            empty("user_types", Some(values.len()));
        }
        if let Section::AnyOf { values } = &self.license_status {
            empty("license_status", Some(values.len()));
        }
        for (name, s) in [
            ("groups", &self.groups),
            ("email_domains", &self.email_domains),
            ("office_locations", &self.office_locations),
            ("departments", &self.departments),
        ] {
            if let Section::AnyOf { values } = s
                && values.iter().any(|v| v.trim().is_empty())
            {
                p.push(format!("filters.{name} has an empty value"));
            }
        }
        if let Section::AnyOf { values } = &self.email_domains {
            for v in values {
                if v.contains('@') || v.contains(char::is_whitespace) {
                    p.push(format!(
                        "filters.email_domains: \"{v}\" is not a domain (write contoso.com, not an address)"
                    ));
                }
            }
        }
        p
    }

    /// One line per section, for people.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!("filter groups (incl. nested): {}", self.groups.describe()),
            format!("filter email domains: {}", self.email_domains.describe()),
            format!("filter user types: {}", self.user_types.describe()),
            format!(
                "filter office locations: {}",
                self.office_locations.describe()
            ),
            format!("filter departments: {}", self.departments.describe()),
            format!("filter license status: {}", self.license_status.describe()),
            format!(
                "disabled accounts: {}",
                match self.include_disabled {
                    true => "imported as deactivated",
                    false => "not imported",
                }
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(f: impl FnOnce(&mut DirectoryUser)) -> DirectoryUser {
        let mut u = DirectoryUser {
            id: "u1".into(),
            mail: Some("Ada@Contoso.com".into()),
            account_enabled: Some(true),
            user_type: Some("Member".into()),
            department: Some("Sales".into()),
            office_location: Some("Paris".into()),
            ..Default::default()
        };
        f(&mut u);
        u
    }

    fn any<T>(values: Vec<T>) -> Section<T> {
        Section::AnyOf { values }
    }

    #[test]
    fn table_of_sections() {
        let cases: Vec<(&str, ScopeFilters, DirectoryUser, bool)> = vec![
            (
                "defaults admit a member",
                ScopeFilters::default(),
                user(|_| {}),
                true,
            ),
            (
                "defaults exclude a guest",
                ScopeFilters::default(),
                user(|u| u.user_type = Some("Guest".into())),
                false,
            ),
            (
                "missing user type counts as member",
                ScopeFilters::default(),
                user(|u| u.user_type = None),
                true,
            ),
            (
                "domain matches case-insensitively, UPN when no mail",
                ScopeFilters {
                    email_domains: any(vec!["CONTOSO.COM".into()]),
                    ..Default::default()
                },
                user(|u| {
                    u.mail = None;
                    u.user_principal_name = Some("ada@contoso.com".into());
                }),
                true,
            ),
            (
                "OR within a section",
                ScopeFilters {
                    departments: any(vec!["HR".into(), "sales".into()]),
                    ..Default::default()
                },
                user(|_| {}),
                true,
            ),
            (
                "AND across sections",
                ScopeFilters {
                    departments: any(vec!["Sales".into()]),
                    office_locations: any(vec!["Berlin".into()]),
                    ..Default::default()
                },
                user(|_| {}),
                false,
            ),
            (
                "all admits a department that appears later",
                ScopeFilters::default(),
                user(|u| u.department = Some("Brand New Team".into())),
                true,
            ),
            (
                "a specific list does not admit a new department",
                ScopeFilters {
                    departments: any(vec!["Sales".into()]),
                    ..Default::default()
                },
                user(|u| u.department = Some("Brand New Team".into())),
                false,
            ),
            (
                "missing department fails a specific list",
                ScopeFilters {
                    departments: any(vec!["Sales".into()]),
                    ..Default::default()
                },
                user(|u| u.department = None),
                false,
            ),
            (
                "license status",
                ScopeFilters {
                    license_status: any(vec![LicenseStatus::Licensed]),
                    ..Default::default()
                },
                user(|_| {}),
                false,
            ),
            (
                "group filter without membership",
                ScopeFilters {
                    groups: any(vec!["g1".into()]),
                    ..Default::default()
                },
                user(|_| {}),
                false,
            ),
        ];
        for (name, filters, u, expected) in cases {
            assert_eq!(filters.admits(&u, None).is_ok(), expected, "{name}");
        }
    }

    #[test]
    fn group_filter_uses_the_member_set() {
        let f = ScopeFilters {
            groups: any(vec!["g1".into()]),
            ..Default::default()
        };
        let set: HashSet<String> = ["u1".to_owned()].into();
        assert!(f.admits(&user(|_| {}), Some(&set)).is_ok());
        let reason = f
            .admits(&user(|u| u.id = "u2".into()), Some(&set))
            .unwrap_err();
        assert!(reason.0.contains("selected group"), "{reason}");
    }

    #[test]
    fn empty_selections_and_addresses_are_problems() {
        let f = ScopeFilters {
            departments: any(vec![]),
            email_domains: any(vec!["ada@contoso.com".into()]),
            ..Default::default()
        };
        let p = f.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
