//! Seeded synthetic tenants: the same `TenantSpec` always yields the same directory (ids
//! included), drawn from a `ChaCha8Rng` seeded with `spec.seed`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::directory::{Directory, Edge, Entity, Group, Sku, TenantMeta, User, guid, slug};
use crate::model::{Kind, Pv, g, u};

/// What synthetic tenant to generate.
#[derive(Clone, Debug)]
pub struct TenantSpec {
    /// Same seed, same tenant (ids, names, memberships).
    pub seed: u64,
    pub users: usize,
    pub groups: usize,
    /// Organization display name; the initial domain is derived from it
    /// (`Contoso` -> `contoso.onmicrosoft.com`).
    pub name: String,
    /// Custom verified domains; the first is the default domain. Empty: the initial domain is
    /// the default.
    pub domains: Vec<String>,
    /// Share of users that are guests (B2B).
    pub guest_share: f64,
    /// Share of users whose account is disabled.
    pub disabled_share: f64,
    /// Groups holding about half of all users (split across delta pages).
    pub large_groups: usize,
    /// Groups that contain other groups.
    pub nested_groups: usize,
    /// Entra ID P1/P2: `signInActivity` and premium reports are available.
    pub premium: bool,
}

impl TenantSpec {
    /// `users` users and `groups` groups of "Contoso" with the usual defaults: three custom
    /// domains, 5 % guests, 3 % disabled, 2 large groups, a tenth of the groups nested,
    /// premium.
    pub fn new(seed: u64, users: usize, groups: usize) -> Self {
        Self {
            seed,
            users,
            groups,
            name: "Contoso".to_string(),
            domains: vec![
                "contoso.com".to_string(),
                "contoso.co.uk".to_string(),
                "fabrikam.io".to_string(),
            ],
            guest_share: 0.05,
            disabled_share: 0.03,
            large_groups: 2.min(groups),
            nested_groups: groups / 10,
            premium: true,
        }
    }
}

const GIVEN: &[&str] = &[
    "Adele", "Alex", "Allan", "Amara", "Ana", "Anders", "Aria", "Ben", "Bianca", "Carlos", "Chen",
    "Chloe", "Daniel", "Diego", "Elena", "Emma", "Farah", "Felix", "Fatima", "Grace", "Hana",
    "Henrik", "Isaac", "Isabel", "Ivan", "Jana", "Jonas", "Julia", "Kenji", "Lara", "Leo", "Lidia",
    "Lucas", "Maya", "Megan", "Miguel", "Nadia", "Nestor", "Nina", "Omar", "Olga", "Patti",
    "Pradeep", "Priya", "Quinn", "Rafael", "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Tom", "Uma",
    "Victor", "Wei", "Yara", "Yusuf", "Zoe", "Lynne", "Joni",
];

const SURNAMES: &[&str] = &[
    "Adams",
    "Ahmed",
    "Andersen",
    "Bauer",
    "Becker",
    "Brown",
    "Chen",
    "Costa",
    "Dubois",
    "Evans",
    "Fernandez",
    "Fischer",
    "Garcia",
    "Gomez",
    "Gupta",
    "Hansen",
    "Hughes",
    "Ito",
    "Jensen",
    "Johnson",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Muller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Perez",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Sousa",
    "Tanaka",
    "Taylor",
    "Thomas",
    "Vargas",
    "Wagner",
    "Walker",
    "Wang",
    "White",
    "Wilson",
    "Wright",
    "Yilmaz",
    "Young",
    "Zhang",
    "Ziegler",
    "Sherrod",
    "Bowen",
];

/// (department, job titles)
const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "Engineering",
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "QA Engineer",
            "DevOps Engineer",
            "Architect",
        ],
    ),
    (
        "Sales",
        &[
            "Account Executive",
            "Sales Representative",
            "Sales Engineer",
            "Inside Sales Rep",
        ],
    ),
    (
        "Finance",
        &[
            "Accountant",
            "Financial Analyst",
            "Controller",
            "Payroll Specialist",
        ],
    ),
    ("HR", &["HR Generalist", "Recruiter", "HR Business Partner"]),
    (
        "Support",
        &[
            "Support Engineer",
            "Customer Success Manager",
            "Support Specialist",
        ],
    ),
    (
        "Marketing",
        &[
            "Marketing Manager",
            "Content Writer",
            "Product Marketing Manager",
            "Designer",
        ],
    ),
    ("Legal", &["Counsel", "Paralegal", "Compliance Officer"]),
    (
        "Operations",
        &[
            "Operations Analyst",
            "Facilities Coordinator",
            "Logistics Specialist",
        ],
    ),
    (
        "IT",
        &[
            "IT Administrator",
            "Service Desk Analyst",
            "Security Analyst",
        ],
    ),
    (
        "Product",
        &["Product Manager", "UX Researcher", "Program Manager"],
    ),
];

/// (office, street, city, state, postal code, country, usage location, phone prefix)
type Office = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const OFFICES: &[Office] = &[
    (
        "Seattle HQ",
        "100 Pine Street",
        "Seattle",
        "WA",
        "98101",
        "United States",
        "US",
        "+1 206 555",
    ),
    (
        "New York",
        "350 Fifth Avenue",
        "New York",
        "NY",
        "10118",
        "United States",
        "US",
        "+1 212 555",
    ),
    (
        "Austin",
        "500 Congress Ave",
        "Austin",
        "TX",
        "78701",
        "United States",
        "US",
        "+1 512 555",
    ),
    (
        "London",
        "20 Fenchurch Street",
        "London",
        "England",
        "EC3M 3BY",
        "United Kingdom",
        "GB",
        "+44 20 7946",
    ),
    (
        "Berlin",
        "Friedrichstrasse 68",
        "Berlin",
        "Berlin",
        "10117",
        "Germany",
        "DE",
        "+49 30 5557",
    ),
    (
        "Paris",
        "12 Rue de la Paix",
        "Paris",
        "Ile-de-France",
        "75002",
        "France",
        "FR",
        "+33 1 5555",
    ),
    (
        "Bangalore",
        "80 MG Road",
        "Bengaluru",
        "Karnataka",
        "560001",
        "India",
        "IN",
        "+91 80 5555",
    ),
    (
        "Sydney",
        "1 Martin Place",
        "Sydney",
        "NSW",
        "2000",
        "Australia",
        "AU",
        "+61 2 5550",
    ),
    (
        "Toronto",
        "100 King St W",
        "Toronto",
        "ON",
        "M5X 1A9",
        "Canada",
        "CA",
        "+1 416 555",
    ),
];

const GUEST_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "partner.example",
    "vendor-corp.example",
    "agency.example",
];

const GROUP_TOPICS: &[&str] = &[
    "Project Falcon",
    "Project Orion",
    "Leadership",
    "Interns",
    "Book Club",
    "Security Champions",
    "Cloud Guild",
    "Data Council",
    "Release Managers",
    "On-Call",
    "Mentors",
    "Hackathon",
    "Wellbeing",
    "Green Team",
    "Travel Approvers",
    "VPN Users",
    "Printer Admins",
    "Wiki Editors",
    "Budget Owners",
    "Architecture Board",
    "Customer Advisory",
    "Partners",
    "Contractors",
];

const P_EXCHANGE: (&str, &str) = (
    "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "EXCHANGE_S_ENTERPRISE",
);
const P_SHAREPOINT: (&str, &str) = (
    "5dbe027f-2339-4123-9542-606e4d348a72",
    "SHAREPOINTENTERPRISE",
);
const P_TEAMS: (&str, &str) = ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1");
const P_YAMMER: (&str, &str) = ("7547a3fe-08ee-4ccb-b430-5077c5041653", "YAMMER_ENTERPRISE");
const P_AAD_P1: (&str, &str) = ("41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AAD_PREMIUM");
const P_INTUNE: (&str, &str) = ("c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "INTUNE_A");
const P_BI: (&str, &str) = ("70d33638-9c74-4d01-bfd3-562de28bd4ba", "BI_AZURE_P2");
const P_FLOW: (&str, &str) = ("50e68c76-46c6-4674-81f9-75456511b170", "FLOW_P2_VIRAL");

const E3_PLANS: &[(&str, &str)] = &[P_EXCHANGE, P_SHAREPOINT, P_TEAMS, P_YAMMER];
const M365_E3_PLANS: &[(&str, &str)] = &[
    P_EXCHANGE,
    P_SHAREPOINT,
    P_TEAMS,
    P_YAMMER,
    P_AAD_P1,
    P_INTUNE,
];
const EMS_PLANS: &[(&str, &str)] = &[P_AAD_P1, P_INTUNE];

/// The tenant's SKUs (Microsoft's public SKU ids). Premium tenants also own EMS (Entra ID P1).
pub(crate) fn tenant_skus(users: usize, premium: bool) -> Vec<Sku> {
    let seats = |share: f64| ((users as f64) * share).ceil() as u64 + 5;
    let mut skus = vec![
        Sku {
            sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900",
            part_number: "ENTERPRISEPACK",
            prepaid: seats(0.6),
            plans: E3_PLANS,
        },
        Sku {
            sku_id: "05e9a617-0261-4cee-bb44-138d3ef5d965",
            part_number: "SPE_E3",
            prepaid: seats(0.4),
            plans: M365_E3_PLANS,
        },
        Sku {
            sku_id: "f8a1db68-be16-40ed-86d5-cb42ce701560",
            part_number: "POWER_BI_PRO",
            prepaid: seats(0.15),
            plans: &[P_BI],
        },
        Sku {
            sku_id: "f30db892-07e9-47e9-837c-80727f46fd3d",
            part_number: "FLOW_FREE",
            prepaid: 10_000,
            plans: &[P_FLOW],
        },
    ];
    if premium {
        skus.push(Sku {
            sku_id: "efccb6f7-5641-4e0e-bd10-b4976e1bf68e",
            part_number: "EMS",
            prepaid: seats(0.4),
            plans: EMS_PLANS,
        });
    }
    skus
}

/// Facts about a generated tenant besides its directory.
#[derive(Debug)]
pub(crate) struct Generated {
    pub(crate) tenant_id: String,
    pub(crate) dir: Directory,
}

fn date(rng: &mut ChaCha8Rng, from_year: i32, to_year: i32) -> String {
    let start = Utc
        .with_ymd_and_hms(from_year, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let days = i64::from((to_year - from_year).max(1)) * 365;
    let secs = rng.random_range(0..days * 86_400);
    (start + ChronoDuration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn day(rng: &mut ChaCha8Rng, from_year: i32, to_year: i32) -> String {
    let d = date(rng, from_year, to_year);
    format!("{}T00:00:00Z", &d[..10])
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    // The tables are non-empty constants; index 0 is a safe fallback.
    items.choose(rng).unwrap_or(&items[0])
}

/// Interned strings so 100k users share one allocation per distinct city, title...
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Pv {
        if let Some(a) = self.0.get(s) {
            return Pv::Str(a.clone());
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), a.clone());
        Pv::Str(a)
    }
}

/// The initial `*.onmicrosoft.com` domain for a tenant name.
pub(crate) fn initial_domain_for(name: &str) -> String {
    let s = slug(name);
    let s = if s.is_empty() {
        "tenant".to_string()
    } else {
        s
    };
    format!("{s}.onmicrosoft.com")
}

/// Generates a tenant. `initial_domain` is passed in so the caller can keep it unique.
pub(crate) fn generate(spec: &TenantSpec, initial_domain: &str) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let tenant_id = guid(&mut rng);
    let default_domain = spec
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| initial_domain.to_string());
    let skus = tenant_skus(spec.users, spec.premium);
    let meta = TenantMeta {
        initial_domain: initial_domain.to_string(),
        default_domain: default_domain.clone(),
        domains: spec.domains.clone(),
        skus: skus.clone(),
        sku_users: spec.users,
        sku_premium: spec.premium,
    };
    let mut dir = Directory::new(
        meta,
        ChaCha8Rng::seed_from_u64(spec.seed ^ 0x9e37_79b9_7f4a_7c15),
    );
    let mut strings = Interner::default();
    let mut license_pool: HashMap<Vec<usize>, Pv> = HashMap::new();
    let mut upn_counts: HashMap<String, u32> = HashMap::new();
    let empty_phones = Pv::Json(Arc::new(json!([])));

    // Per department: head and team leads (indexes into `ids`).
    let mut heads: Vec<Option<usize>> = vec![None; DEPARTMENTS.len()];
    let mut leads: Vec<Vec<usize>> = vec![Vec::new(); DEPARTMENTS.len()];
    let mut ids: Vec<Arc<str>> = Vec::with_capacity(spec.users);
    let mut dept_of: Vec<Option<usize>> = Vec::with_capacity(spec.users);
    let mut managers: Vec<Option<usize>> = Vec::with_capacity(spec.users);
    let mut users: Vec<User> = Vec::with_capacity(spec.users);

    for i in 0..spec.users {
        let id: Arc<str> = Arc::from(guid(&mut rng));
        let given = *pick(&mut rng, GIVEN);
        let surname = *pick(&mut rng, SURNAMES);
        let guest = i > 0 && rng.random_bool(spec.guest_share.clamp(0.0, 1.0));
        let mut props = vec![Pv::Unset; u::COUNT];
        props[u::DISPLAY_NAME] = Pv::str(format!("{given} {surname}"));
        props[u::GIVEN_NAME] = strings.get(given);
        props[u::SURNAME] = strings.get(surname);
        props[u::CREATED] = Pv::str(date(&mut rng, 2016, 2025));
        let enabled = i == 0 || !rng.random_bool(spec.disabled_share.clamp(0.0, 1.0));
        props[u::ACCOUNT_ENABLED] = Pv::Bool(enabled);
        let base = format!("{}.{}", given.to_lowercase(), surname.to_lowercase());
        let n = upn_counts.entry(base.clone()).or_insert(0);
        *n += 1;
        let local = if *n == 1 { base } else { format!("{base}{n}") };
        let mut manager = None;
        let mut dept = None;
        if guest {
            let ext = *pick(&mut rng, GUEST_DOMAINS);
            let mail = format!("{local}@{ext}");
            props[u::UPN] = Pv::str(format!("{local}_{ext}#EXT#@{initial_domain}",));
            props[u::MAIL] = Pv::str(&mail);
            props[u::USER_TYPE] = strings.get("Guest");
            props[u::BUSINESS_PHONES] = empty_phones.clone();
        } else {
            let domain = if spec.domains.is_empty() || rng.random_bool(0.7) {
                default_domain.as_str()
            } else {
                pick(&mut rng, &spec.domains).as_str()
            };
            let upn = Pv::str(format!("{local}@{domain}"));
            props[u::MAIL] = if rng.random_bool(0.05) {
                Pv::Null
            } else {
                upn.clone()
            };
            props[u::UPN] = upn;
            props[u::USER_TYPE] = strings.get("Member");
            let d = if i == 0 {
                7
            } else {
                rng.random_range(0..DEPARTMENTS.len())
            };
            dept = Some(d);
            let (dname, titles) = DEPARTMENTS[d];
            props[u::DEPARTMENT] = strings.get(dname);
            let title = if i == 0 {
                "Chief Executive Officer".to_string()
            } else if heads[d].is_none() {
                heads[d] = Some(i);
                manager = Some(0);
                format!("Head of {dname}")
            } else if rng.random_bool(0.12) {
                leads[d].push(i);
                manager = heads[d];
                format!("{} Lead", pick(&mut rng, titles))
            } else {
                manager = if rng.random_bool(0.04) {
                    None
                } else if leads[d].is_empty() {
                    heads[d]
                } else {
                    leads[d].choose(&mut rng).copied()
                };
                (*pick(&mut rng, titles)).to_string()
            };
            props[u::JOB_TITLE] = strings.get(&title);
            let office = *pick(&mut rng, OFFICES);
            let (oname, street, city, state, postal, country, usage, phone) = office;
            props[u::OFFICE] = strings.get(oname);
            props[u::STREET] = strings.get(street);
            props[u::CITY] = strings.get(city);
            props[u::STATE] = strings.get(state);
            props[u::POSTAL_CODE] = strings.get(postal);
            props[u::COUNTRY] = strings.get(country);
            props[u::USAGE_LOCATION] = strings.get(usage);
            props[u::BUSINESS_PHONES] = if rng.random_bool(0.8) {
                Pv::Json(Arc::new(json!([format!(
                    "{phone} {:04}",
                    rng.random_range(0..10_000)
                )])))
            } else {
                empty_phones.clone()
            };
            if rng.random_bool(0.6) {
                props[u::MOBILE_PHONE] =
                    Pv::str(format!("{phone} {:04}", rng.random_range(0..10_000)));
            }
            if rng.random_bool(0.9) {
                props[u::EMPLOYEE_ID] = Pv::str(format!("E{:06}", 100_000 + i));
                props[u::HIRE_DATE] = Pv::str(day(&mut rng, 2010, 2025));
            }
            if rng.random_bool(0.3) {
                props[u::ON_PREM_SYNC] = Pv::Bool(true);
            }
            if rng.random_bool(0.85) {
                let mut combo = vec![if rng.random_bool(0.6) { 0 } else { 1 }];
                if rng.random_bool(0.15) {
                    combo.push(2);
                }
                if spec.premium && combo[0] == 0 && rng.random_bool(0.4) {
                    combo.push(4);
                }
                if rng.random_bool(0.1) {
                    combo.push(3);
                }
                // Some licenses have Yammer disabled.
                if rng.random_bool(0.1) {
                    combo.push(100);
                }
                let lic = license_pool
                    .entry(combo.clone())
                    .or_insert_with(|| licenses_value(&skus, &combo))
                    .clone();
                props[u::LICENSES] = lic;
            } else {
                props[u::LICENSES] = Pv::Json(Arc::new(json!([])));
            }
        }
        if guest {
            props[u::LICENSES] = Pv::Json(Arc::new(json!([])));
        }
        ids.push(id.clone());
        dept_of.push(dept);
        managers.push(manager);
        users.push(User::new(Entity::new(id, props.into_boxed_slice(), 0)));
    }
    for (i, mgr) in managers.iter().enumerate() {
        if let Some(m) = *mgr {
            let mid = ids[m].clone();
            let rid = ids[i].clone();
            users[i].manager = Some(mid);
            users[m].reports.insert(rid);
        }
    }

    // Groups.
    let mut groups: Vec<Group> = Vec::with_capacity(spec.groups);
    let mut members: Vec<Vec<(usize, Kind)>> = Vec::with_capacity(spec.groups);
    let n_users = spec.users;
    let mut used_nicknames: HashMap<String, u32> = HashMap::new();
    // Department groups: one per department, but leave most of a small tenant's groups to
    // the random mix.
    let dept_groups = DEPARTMENTS
        .len()
        .min(spec.groups.saturating_sub(spec.large_groups) / 3);
    let first_random = spec.large_groups + dept_groups;
    for gi in 0..spec.groups {
        let gid: Arc<str> = Arc::from(guid(&mut rng));
        let mut list: Vec<(usize, Kind)> = Vec::new();
        let (name, kind_roll, description): (String, u32, Option<String>);
        if gi < spec.large_groups {
            name = if gi == 0 {
                "All Company".to_string()
            } else {
                format!("All Staff {}", gi + 1)
            };
            kind_roll = if gi == 0 { 1 } else { 0 };
            description = Some("Everyone (about half the company, for testing)".to_string());
            for ui in 0..n_users {
                if rng.random_bool(0.5) {
                    list.push((ui, Kind::User));
                }
            }
        } else if gi < first_random {
            let d = gi - spec.large_groups;
            name = format!("{} Team", DEPARTMENTS[d].0);
            kind_roll = 0;
            description = Some(format!(
                "All members of the {} department",
                DEPARTMENTS[d].0
            ));
            for (ui, dd) in dept_of.iter().enumerate() {
                if *dd == Some(d) {
                    list.push((ui, Kind::User));
                }
            }
        } else {
            let topic = *pick(&mut rng, GROUP_TOPICS);
            name = format!("{topic} {}", gi + 1);
            // The first random groups cover every kind once; then a weighted mix.
            kind_roll = match gi - first_random {
                0 => 2,
                1 => 40,
                2 => 70,
                3 => 80,
                4 => 95,
                _ => rng.random_range(0..100),
            };
            description = if rng.random_bool(0.6) {
                Some(format!("{topic} group"))
            } else {
                None
            };
            let size = match rng.random_range(0..100) {
                // One guaranteed empty group (no members@delta key in delta).
                _ if gi - first_random == 5 => 0,
                0..5 => 0,
                5..45 => rng.random_range(1..6),
                45..85 => rng.random_range(6..50),
                85..98 => rng.random_range(50..300),
                _ => rng.random_range(300..1500),
            }
            .min(n_users);
            let mut seen = BTreeMap::new();
            for _ in 0..size {
                if n_users == 0 {
                    break;
                }
                seen.insert(rng.random_range(0..n_users), ());
            }
            list.extend(seen.into_keys().map(|ui| (ui, Kind::User)));
        }
        // kind_roll: 0..40 security, 40..70 M365, 70..80 mail-enabled security,
        // 80..95 distribution, 95..100 dynamic security; 1 = M365 ("All Company").
        let (types, security, mail_enabled): (Vec<&str>, bool, bool) = match kind_roll {
            1 => (vec!["Unified"], false, true),
            0 | 2..40 => (vec![], true, false),
            40..70 => (vec!["Unified"], false, true),
            70..80 => (vec![], true, true),
            80..95 => (vec![], false, true),
            _ => (vec!["DynamicMembership"], true, false),
        };
        let mut nick = slug(&name);
        let count = used_nicknames.entry(nick.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            nick = format!("{nick}{count}");
        }
        let mut props = vec![Pv::Unset; g::COUNT];
        props[g::DISPLAY_NAME] = Pv::str(&name);
        if let Some(d) = description {
            props[g::DESCRIPTION] = Pv::str(d);
        }
        props[g::GROUP_TYPES] = Pv::Json(Arc::new(json!(types)));
        props[g::SECURITY_ENABLED] = Pv::Bool(security);
        props[g::MAIL_ENABLED] = Pv::Bool(mail_enabled);
        props[g::MAIL] = if mail_enabled {
            Pv::str(format!("{nick}@{default_domain}"))
        } else {
            Pv::Null
        };
        props[g::MAIL_NICKNAME] = Pv::str(&nick);
        props[g::CREATED] = Pv::str(date(&mut rng, 2016, 2025));
        groups.push(Group::new(Entity::new(gid, props.into_boxed_slice(), 0)));
        members.push(list);
    }
    // Nested groups: the last `nested_groups` groups (never the large ones) each contain one
    // to three groups with a lower index, so nesting has no cycles.
    let first_parent = spec
        .groups
        .saturating_sub(spec.nested_groups)
        .max(spec.large_groups + 1);
    for (gi, list) in members.iter_mut().enumerate().skip(first_parent) {
        let k = rng.random_range(1..4);
        for _ in 0..k {
            let child = rng.random_range(0..gi);
            if child != gi && !list.iter().any(|(c, kd)| *kd == Kind::Group && *c == child) {
                list.push((child, Kind::Group));
            }
        }
    }
    let gids: Vec<Arc<str>> = groups.iter().map(|g| g.e.id.clone()).collect();
    for (gi, list) in members.into_iter().enumerate() {
        for (idx, kind) in list {
            let mid = match kind {
                Kind::User => ids[idx].clone(),
                Kind::Group => gids[idx].clone(),
            };
            match kind {
                Kind::User => {
                    users[idx].member_of.insert(gids[gi].clone());
                }
                Kind::Group => {
                    groups[idx].member_of.insert(gids[gi].clone());
                }
            }
            groups[gi].members.insert(mid, Edge { kind, seq: 0 });
        }
    }

    for user in users {
        let id = user.e.id.clone();
        dir.user_ids.push(id.clone());
        dir.users.insert(id, user);
    }
    for grp in groups {
        let id = grp.e.id.clone();
        dir.group_ids.push(id.clone());
        dir.groups.insert(id, grp);
    }
    Generated { tenant_id, dir }
}

/// `assignedLicenses` for a combination of SKU indexes (100 = disable Yammer on the first).
fn licenses_value(skus: &[Sku], combo: &[usize]) -> Pv {
    let disable_yammer = combo.contains(&100);
    let list: Vec<Value> = combo
        .iter()
        .filter_map(|i| skus.get(*i))
        .enumerate()
        .map(|(n, sku)| {
            let disabled: Vec<&str> = if n == 0 && disable_yammer {
                vec![P_YAMMER.0]
            } else {
                vec![]
            };
            json!({"skuId": sku.sku_id, "disabledPlans": disabled})
        })
        .collect();
    Pv::Json(Arc::new(Value::Array(list)))
}
