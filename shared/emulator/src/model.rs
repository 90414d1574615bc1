//! The property catalogue of users and groups, the stored value type and `$select` sets.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The two directory object kinds the emulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    User,
    Group,
}

impl Kind {
    /// Graph type name, as used in error messages (`microsoft.graph.user`).
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::User => "microsoft.graph.user",
            Kind::Group => "microsoft.graph.group",
        }
    }

    /// `@odata.type` value (`#microsoft.graph.user`).
    pub(crate) fn odata_type(self) -> &'static str {
        match self {
            Kind::User => "#microsoft.graph.user",
            Kind::Group => "#microsoft.graph.group",
        }
    }

    /// Collection segment (`users`).
    pub(crate) fn collection(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Group => "groups",
        }
    }

    /// The property table of this kind.
    pub(crate) fn props(self) -> &'static [PropDef] {
        match self {
            Kind::User => USER_PROPS,
            Kind::Group => GROUP_PROPS,
        }
    }

    /// Name of the relationship tracked through `<rel>@delta` (`manager` / `members`).
    pub(crate) fn relationship(self) -> &'static str {
        match self {
            Kind::User => "manager",
            Kind::Group => "members",
        }
    }

    /// Looks a property up by name, case-insensitively.
    pub(crate) fn prop_index(self, name: &str) -> Option<usize> {
        self.props()
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// JSON shape of a property, used to validate patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropType {
    Str,
    Bool,
    StrArray,
    DateTime,
    Licenses,
}

/// One property of a directory object.
#[derive(Debug)]
pub(crate) struct PropDef {
    pub(crate) name: &'static str,
    pub(crate) ty: PropType,
    /// Part of the set returned when no `$select` is given.
    pub(crate) default: bool,
    /// Cannot be patched (`id`, `createdDateTime`).
    pub(crate) read_only: bool,
}

const fn p(name: &'static str, ty: PropType, default: bool, read_only: bool) -> PropDef {
    PropDef {
        name,
        ty,
        default,
        read_only,
    }
}

/// Index of `id` in both tables.
pub(crate) const ID: usize = 0;

/// User properties served by the emulator (`manager` is the relationship, handled apart).
pub(crate) const USER_PROPS: &[PropDef] = &[
    p("id", PropType::Str, true, true),
    p("displayName", PropType::Str, true, false),
    p("givenName", PropType::Str, true, false),
    p("surname", PropType::Str, true, false),
    p("mail", PropType::Str, true, false),
    p("userPrincipalName", PropType::Str, true, false),
    p("jobTitle", PropType::Str, true, false),
    p("department", PropType::Str, false, false),
    p("officeLocation", PropType::Str, true, false),
    p("usageLocation", PropType::Str, false, false),
    p("businessPhones", PropType::StrArray, true, false),
    p("mobilePhone", PropType::Str, true, false),
    p("streetAddress", PropType::Str, false, false),
    p("city", PropType::Str, false, false),
    p("state", PropType::Str, false, false),
    p("postalCode", PropType::Str, false, false),
    p("country", PropType::Str, false, false),
    p("employeeId", PropType::Str, false, false),
    p("employeeHireDate", PropType::DateTime, false, false),
    p("accountEnabled", PropType::Bool, false, false),
    p("userType", PropType::Str, false, false),
    p("createdDateTime", PropType::DateTime, false, true),
    p("onPremisesSyncEnabled", PropType::Bool, false, false),
    p("assignedLicenses", PropType::Licenses, false, false),
    // In Graph's default set; the generator never sets it, so it is normally omitted.
    p("preferredLanguage", PropType::Str, true, false),
    // Set by `revokeSignInSessions` and by password resets; never patched directly.
    p(
        "signInSessionsValidFromDateTime",
        PropType::DateTime,
        false,
        true,
    ),
    p(
        "lastPasswordChangeDateTime",
        PropType::DateTime,
        false,
        true,
    ),
];

/// Group properties served by the emulator (`members` is the relationship, handled apart).
pub(crate) const GROUP_PROPS: &[PropDef] = &[
    p("id", PropType::Str, true, true),
    p("displayName", PropType::Str, true, false),
    p("description", PropType::Str, true, false),
    p("groupTypes", PropType::StrArray, true, false),
    p("securityEnabled", PropType::Bool, true, false),
    p("mailEnabled", PropType::Bool, true, false),
    p("mail", PropType::Str, true, false),
    p("mailNickname", PropType::Str, true, false),
    p("createdDateTime", PropType::DateTime, true, true),
    // Dynamic membership: the rule and whether it is being processed ("On" / "Paused").
    p("membershipRule", PropType::Str, true, false),
    p("membershipRuleProcessingState", PropType::Str, true, false),
    // `true` for groups synchronized from on-premises Active Directory.
    p("onPremisesSyncEnabled", PropType::Bool, true, false),
];

/// User property indexes used by the generator and the mutation code.
pub(crate) mod u {
    pub(crate) const DISPLAY_NAME: usize = 1;
    pub(crate) const GIVEN_NAME: usize = 2;
    pub(crate) const SURNAME: usize = 3;
    pub(crate) const MAIL: usize = 4;
    pub(crate) const UPN: usize = 5;
    pub(crate) const JOB_TITLE: usize = 6;
    pub(crate) const DEPARTMENT: usize = 7;
    pub(crate) const OFFICE: usize = 8;
    pub(crate) const USAGE_LOCATION: usize = 9;
    pub(crate) const BUSINESS_PHONES: usize = 10;
    pub(crate) const MOBILE_PHONE: usize = 11;
    pub(crate) const STREET: usize = 12;
    pub(crate) const CITY: usize = 13;
    pub(crate) const STATE: usize = 14;
    pub(crate) const POSTAL_CODE: usize = 15;
    pub(crate) const COUNTRY: usize = 16;
    pub(crate) const EMPLOYEE_ID: usize = 17;
    pub(crate) const HIRE_DATE: usize = 18;
    pub(crate) const ACCOUNT_ENABLED: usize = 19;
    pub(crate) const USER_TYPE: usize = 20;
    pub(crate) const CREATED: usize = 21;
    pub(crate) const ON_PREM_SYNC: usize = 22;
    pub(crate) const LICENSES: usize = 23;
    pub(crate) const SESSIONS_VALID_FROM: usize = 25;
    pub(crate) const LAST_PASSWORD_CHANGE: usize = 26;
    pub(crate) const COUNT: usize = 27;
}

/// Group property indexes.
pub(crate) mod g {
    pub(crate) const DISPLAY_NAME: usize = 1;
    pub(crate) const DESCRIPTION: usize = 2;
    pub(crate) const GROUP_TYPES: usize = 3;
    pub(crate) const SECURITY_ENABLED: usize = 4;
    pub(crate) const MAIL_ENABLED: usize = 5;
    pub(crate) const MAIL: usize = 6;
    pub(crate) const MAIL_NICKNAME: usize = 7;
    pub(crate) const CREATED: usize = 8;
    pub(crate) const MEMBERSHIP_RULE: usize = 9;
    pub(crate) const MEMBERSHIP_RULE_STATE: usize = 10;
    pub(crate) const ON_PREM_SYNC: usize = 11;
    pub(crate) const COUNT: usize = 12;
}

/// Properties Graph refuses on delta with `501 NotImplemented` (not kept in the directory
/// store, or navigations).
pub(crate) const OFF_STORE_USER_PROPS: &[&str] = &[
    "skills",
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "photo",
    "mailboxSettings",
    "signInActivity",
];

/// A stored property value. `Unset` (never set) is omitted from responses; `Null` (explicitly
/// cleared) is sent as `null`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Pv {
    #[default]
    Unset,
    Null,
    Bool(bool),
    Str(Arc<str>),
    Json(Arc<Value>),
}

impl Pv {
    /// The JSON value, or `None` when the property was never set.
    pub(crate) fn to_json(&self) -> Option<Value> {
        match self {
            Pv::Unset => None,
            Pv::Null => Some(Value::Null),
            Pv::Bool(b) => Some(Value::Bool(*b)),
            Pv::Str(s) => Some(Value::String(s.to_string())),
            Pv::Json(v) => Some(Value::clone(v)),
        }
    }

    /// The string content, if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Pv::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `Pv::Str` from anything string-like.
    pub(crate) fn str(s: impl AsRef<str>) -> Pv {
        Pv::Str(Arc::from(s.as_ref()))
    }

    /// Converts a patch value, checking it against the property type.
    pub(crate) fn from_patch(ty: PropType, v: &Value) -> Option<Pv> {
        match (ty, v) {
            (_, Value::Null) => Some(Pv::Null),
            (PropType::Str, Value::String(s)) => Some(Pv::str(s)),
            (PropType::DateTime, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|_| Pv::str(s)),
            (PropType::Bool, Value::Bool(b)) => Some(Pv::Bool(*b)),
            (PropType::StrArray, Value::Array(a)) if a.iter().all(Value::is_string) => {
                Some(Pv::Json(Arc::new(v.clone())))
            }
            (PropType::Licenses, Value::Array(a)) if a.iter().all(valid_license) => {
                Some(Pv::Json(Arc::new(v.clone())))
            }
            _ => None,
        }
    }
}

fn valid_license(v: &Value) -> bool {
    v.get("skuId").is_some_and(Value::is_string)
        && v.get("disabledPlans")
            .is_none_or(|d| d.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
}

/// A `$select` set: a bit per property of the kind's table plus the relationship flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Select {
    pub(crate) props: u64,
    /// `manager` (users) / `members` (groups) selected.
    pub(crate) rel: bool,
    /// `$select` was given explicitly (affects `@odata.context` only).
    pub(crate) explicit: bool,
}

impl Select {
    /// Graph's default set for a kind when no `$select` is given. Groups without `$select`
    /// include `members@delta`, as Graph does.
    pub(crate) fn default_for(kind: Kind) -> Select {
        let mut props = 0u64;
        for (i, d) in kind.props().iter().enumerate() {
            if d.default {
                props |= 1 << i;
            }
        }
        Select {
            props,
            rel: kind == Kind::Group,
            explicit: false,
        }
    }

    /// Every property, with or without the relationship.
    pub(crate) fn all(kind: Kind, rel: bool) -> Select {
        let n = kind.props().len();
        Select {
            props: (1u64 << n) - 1,
            rel,
            explicit: true,
        }
    }

    /// Whether property `i` is selected (`id` always is).
    pub(crate) fn has(&self, i: usize) -> bool {
        i == ID || self.props & (1 << i) != 0
    }

    /// Comma-separated names for `@odata.context`.
    pub(crate) fn names(&self, kind: Kind) -> String {
        let mut out: Vec<&str> = kind
            .props()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != ID && self.props & (1 << i) != 0)
            .map(|(_, d)| d.name)
            .collect();
        if self.rel {
            out.push(kind.relationship());
        }
        out.join(",")
    }
}

/// Outcome of parsing a `$select` value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// Not a property of the type.
    Unknown(String),
    /// A property Graph does not track in delta (or not here).
    NotImplemented(String),
}

/// Parses `$select` for `kind`. `extra` names are accepted and returned separately (for
/// list-only properties such as `signInActivity`).
pub(crate) fn parse_select(
    kind: Kind,
    raw: &str,
    extra: &[&'static str],
    off_store_is_error: bool,
) -> Result<(Select, Vec<&'static str>), SelectError> {
    let mut sel = Select {
        props: 1,
        rel: false,
        explicit: true,
    };
    let mut extras = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(i) = kind.prop_index(name) {
            sel.props |= 1 << i;
        } else if name.eq_ignore_ascii_case(kind.relationship()) {
            sel.rel = true;
        } else if let Some(x) = extra.iter().find(|x| x.eq_ignore_ascii_case(name)) {
            extras.push(*x);
        } else if kind == Kind::User
            && off_store_is_error
            && OFF_STORE_USER_PROPS
                .iter()
                .any(|o| o.eq_ignore_ascii_case(name))
        {
            return Err(SelectError::NotImplemented(name.to_string()));
        } else {
            return Err(SelectError::Unknown(name.to_string()));
        }
    }
    Ok((sel, extras))
}

/// Inserts `key: value` into a JSON object map.
pub(crate) fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.insert(key.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_constants_match_the_tables() {
        let ui = |n: &str| Kind::User.prop_index(n).unwrap();
        assert_eq!(USER_PROPS.len(), u::COUNT);
        assert_eq!(ui("displayName"), u::DISPLAY_NAME);
        assert_eq!(ui("givenName"), u::GIVEN_NAME);
        assert_eq!(ui("surname"), u::SURNAME);
        assert_eq!(ui("mail"), u::MAIL);
        assert_eq!(ui("userPrincipalName"), u::UPN);
        assert_eq!(ui("jobTitle"), u::JOB_TITLE);
        assert_eq!(ui("department"), u::DEPARTMENT);
        assert_eq!(ui("officeLocation"), u::OFFICE);
        assert_eq!(ui("usageLocation"), u::USAGE_LOCATION);
        assert_eq!(ui("businessPhones"), u::BUSINESS_PHONES);
        assert_eq!(ui("mobilePhone"), u::MOBILE_PHONE);
        assert_eq!(ui("streetAddress"), u::STREET);
        assert_eq!(ui("city"), u::CITY);
        assert_eq!(ui("state"), u::STATE);
        assert_eq!(ui("postalCode"), u::POSTAL_CODE);
        assert_eq!(ui("country"), u::COUNTRY);
        assert_eq!(ui("employeeId"), u::EMPLOYEE_ID);
        assert_eq!(ui("employeeHireDate"), u::HIRE_DATE);
        assert_eq!(ui("accountEnabled"), u::ACCOUNT_ENABLED);
        assert_eq!(ui("userType"), u::USER_TYPE);
        assert_eq!(ui("createdDateTime"), u::CREATED);
        assert_eq!(ui("onPremisesSyncEnabled"), u::ON_PREM_SYNC);
        assert_eq!(ui("assignedLicenses"), u::LICENSES);
        assert_eq!(
            ui("signInSessionsValidFromDateTime"),
            u::SESSIONS_VALID_FROM
        );
        assert_eq!(ui("lastPasswordChangeDateTime"), u::LAST_PASSWORD_CHANGE);
        let gi = |n: &str| Kind::Group.prop_index(n).unwrap();
        assert_eq!(GROUP_PROPS.len(), g::COUNT);
        assert_eq!(gi("displayName"), g::DISPLAY_NAME);
        assert_eq!(gi("description"), g::DESCRIPTION);
        assert_eq!(gi("groupTypes"), g::GROUP_TYPES);
        assert_eq!(gi("securityEnabled"), g::SECURITY_ENABLED);
        assert_eq!(gi("mailEnabled"), g::MAIL_ENABLED);
        assert_eq!(gi("mail"), g::MAIL);
        assert_eq!(gi("mailNickname"), g::MAIL_NICKNAME);
        assert_eq!(gi("createdDateTime"), g::CREATED);
        assert_eq!(gi("membershipRule"), g::MEMBERSHIP_RULE);
        assert_eq!(
            gi("membershipRuleProcessingState"),
            g::MEMBERSHIP_RULE_STATE
        );
        assert_eq!(gi("onPremisesSyncEnabled"), g::ON_PREM_SYNC);
    }

    #[test]
    fn select_parsing() {
        let (s, _) = parse_select(Kind::User, "DisplayName, mail,manager", &[], true).unwrap();
        assert!(s.has(ID) && s.has(u::DISPLAY_NAME) && s.has(u::MAIL) && s.rel);
        assert!(!s.has(u::CITY));
        assert_eq!(s.names(Kind::User), "displayName,mail,manager");
        assert_eq!(
            parse_select(Kind::User, "skills", &[], true),
            Err(SelectError::NotImplemented("skills".into()))
        );
        assert_eq!(
            parse_select(Kind::Group, "foo", &[], true),
            Err(SelectError::Unknown("foo".into()))
        );
    }
}
