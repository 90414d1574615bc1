//! The synthetic tenant generator and random churn.

use std::collections::BTreeMap;

use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use serde_json::Value;

#[tokio::test]
async fn same_seed_gives_the_same_tenant() {
    let a = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let b = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let spec = TenantSpec::new(2024, 500, 40);
    let ta = a.add_tenant(&spec);
    let tb = b.add_tenant(&spec);
    assert_eq!(ta, tb);
    let sa = a.tenant(&ta.tenant_id).unwrap().snapshot();
    let sb = b.tenant(&tb.tenant_id).unwrap().snapshot();
    assert_eq!(sa, sb);
    // Churn is seeded too.
    let ca = a.tenant(&ta.tenant_id).unwrap().random_churn(9, 300);
    let cb = b.tenant(&tb.tenant_id).unwrap().random_churn(9, 300);
    assert_eq!(ca, cb);
    let (sa, sb) = (
        a.tenant(&ta.tenant_id).unwrap().snapshot(),
        b.tenant(&tb.tenant_id).unwrap().snapshot(),
    );
    let strip = |v: &Vec<Value>| -> Vec<Value> {
        v.iter()
            .map(|u| {
                let mut u = u.clone();
                u.as_object_mut().unwrap().remove("createdDateTime");
                u
            })
            .collect()
    };
    assert_eq!(strip(&sa.users), strip(&sb.users));
    assert_eq!(sa.memberships, sb.memberships);
    // Another seed, another tenant.
    let tc = a.add_tenant(&TenantSpec::new(2025, 500, 40));
    assert_ne!(tc.tenant_id, ta.tenant_id);
    assert_ne!(tc.initial_domain, ta.initial_domain, "domains stay unique");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn generated_tenant_looks_like_a_real_directory() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let info = emu.add_tenant(&TenantSpec::new(77, 2_000, 100));
    let t = emu.tenant(&info.tenant_id).unwrap();
    let snap = t.snapshot();
    assert_eq!(snap.users.len(), 2_000);
    assert_eq!(snap.groups.len(), 100);
    let count = |f: &dyn Fn(&Value) -> bool| snap.users.iter().filter(|u| f(u)).count();
    let guests = count(&|u| u["userType"] == "Guest");
    assert!((40..200).contains(&guests), "{guests}");
    assert!(
        snap.users
            .iter()
            .filter(|u| u["userType"] == "Guest")
            .all(|u| u["userPrincipalName"]
                .as_str()
                .unwrap()
                .contains("#EXT#@contoso.onmicrosoft.com"))
    );
    let disabled = count(&|u| u["accountEnabled"] == false);
    assert!((20..150).contains(&disabled), "{disabled}");
    assert!(
        count(&|u| u["mail"].is_null()) > 0,
        "some users have no mail"
    );
    assert!(
        count(&|u| u.get("mobilePhone").is_none()) > 0,
        "some never-set properties"
    );
    assert!(count(&|u| u["managerId"].is_string()) > 1_500);
    assert!(count(&|u| u["onPremisesSyncEnabled"] == true) > 0);
    assert!(
        count(&|u| u["assignedLicenses"]
            .as_array()
            .is_some_and(|a| a.is_empty()))
            > 0
    );
    assert!(
        count(&|u| u["assignedLicenses"]
            .as_array()
            .is_some_and(|a| !a.is_empty()))
            > 1_000
    );
    let mut domains = BTreeMap::new();
    for u in &snap.users {
        let upn = u["userPrincipalName"].as_str().unwrap();
        *domains
            .entry(upn.rsplit('@').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    for d in ["contoso.com", "contoso.co.uk", "fabrikam.io"] {
        assert!(domains.contains_key(d), "{domains:?}");
    }
    // Group sizes: large ones with about half the users, empty ones, nested ones.
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &snap.memberships {
        *sizes.entry(m.group_id.as_str()).or_default() += 1;
    }
    let large = sizes.values().filter(|n| **n > 800).count();
    assert!(large >= 2, "{sizes:?}");
    assert!(sizes.len() < 100, "some groups are empty");
    assert!(snap.memberships.iter().any(|m| m.member_type == "group"));
    let kinds: std::collections::BTreeSet<String> = snap
        .groups
        .iter()
        .map(|g| {
            format!(
                "{}{}{}",
                g["groupTypes"], g["mailEnabled"], g["securityEnabled"]
            )
        })
        .collect();
    assert!(kinds.len() >= 4, "{kinds:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn random_churn_reports_what_it_did() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let info = emu.add_tenant(&TenantSpec::new(5, 300, 30));
    let t = emu.tenant(&info.tenant_id).unwrap();
    let before = t.change_seq();
    let s = t.random_churn(1, 500);
    assert_eq!(s.total() + s.skipped, 500);
    assert!(s.users_created > 0 && s.users_updated > 0 && s.members_added > 0);
    assert!(s.users_soft_deleted > 0 && s.users_purged > 0 && s.managers_changed > 0);
    assert!(t.change_seq() > before);
    emu.shutdown().await;
}
