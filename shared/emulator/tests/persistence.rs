//! Saving and restoring the emulator keeps tenants, history and delta links.

mod common;

use common::Fx;
use entra_sync_emulator::{Emulator, EmulatorConfig, TenantSpec};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn restored_emulator_continues_the_same_tenant_and_links() {
    let fx = Fx::new(EmulatorConfig::default(), TenantSpec::new(71, 150, 12)).await;
    let t = fx.handle();
    let token = fx.token().await;
    let (_, user_link) = fx
        .round(&fx.graph("users/delta?$select=displayName,manager"), &token)
        .await;
    let (_, group_link) = fx.round(&fx.graph("groups/delta"), &token).await;
    let churn = t.random_churn(3, 40);
    assert!(churn.total() > 0);
    let before = t.snapshot();
    let (expected_users, _) = fx.round_items(&user_link, &token).await;
    let (expected_groups, _) = fx.round_items(&group_link, &token).await;

    let dir = std::env::temp_dir().join(format!("emu-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emulator.json");
    fx.emu.save_state(&path).unwrap();
    let old_base = fx.emu.graph_base_url();
    fx.emu.clone().shutdown().await;

    let emu = Emulator::start_from_state(EmulatorConfig::default(), &path)
        .await
        .unwrap();
    // The saved port is taken back when free (it nearly always is); links are absolute.
    let new_base = emu.graph_base_url();
    let user_link = user_link.replace(&old_base, &new_base);
    let group_link = group_link.replace(&old_base, &new_base);
    assert_eq!(emu.tenant_ids(), vec![fx.tenant.tenant_id.clone()]);
    assert_eq!(emu.tenant_info(&fx.tenant.tenant_id).unwrap(), fx.tenant);
    let t2 = emu.tenant(&fx.tenant.tenant_id).unwrap();
    assert_eq!(t2.snapshot(), before);

    let fx2 = Fx {
        emu: emu.clone(),
        http: reqwest::Client::new(),
        tenant: fx.tenant.clone(),
    };
    let token = fx2.token().await;
    let (users, _) = fx2.round_items(&user_link, &token).await;
    assert_eq!(users, expected_users);
    let (groups, _) = fx2.round_items(&group_link, &token).await;
    assert_eq!(groups, expected_groups);
    // Mutations continue after the restore.
    let u = t2.user_ids()[0].clone();
    let mut p = serde_json::Map::new();
    p.insert("displayName".into(), json!("After Restore"));
    t2.update_user(&u, p).unwrap();
    let (_, _, body) = fx2.get(&fx2.graph("organization"), &token).await;
    assert_eq!(body["value"][0]["id"], fx.tenant.tenant_id);
    let (items, _) = fx2.round_items(&user_link, &token).await;
    assert!(items.iter().any(|v| v["displayName"] == "After Restore"));
    t2.random_churn(4, 20);
    let (status, _, _) = fx2.get(&fx2.graph("users/delta"), &token).await;
    assert_eq!(status, StatusCode::OK);
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// An emulator started from `path` (on another port: the first one still runs).
#[allow(clippy::unwrap_used)]
async fn restored(path: &std::path::Path) -> Emulator {
    Emulator::start_from_state(EmulatorConfig::default(), path)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_persisting_emulator_has_every_change_on_disk_without_a_final_save() {
    let fx = Fx::new(EmulatorConfig::default(), TenantSpec::new(72, 60, 6)).await;
    let t = fx.handle();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emulator.json");
    fx.emu.persist_to(&path).unwrap();
    let id = fx.tenant.tenant_id.clone();

    // A TenantHandle mutation (the demo's churn) is on disk as soon as it returns.
    t.random_churn(5, 15);
    let emu = restored(&path).await;
    assert!(
        emu.tenant(&id).unwrap().snapshot() == t.snapshot(),
        "the churn is on disk"
    );
    emu.shutdown().await;

    // So is a consent change, and a write through Graph's routes.
    t.revoke_consent();
    let emu = restored(&path).await;
    assert!(!emu.tenant(&id).unwrap().has_consent());
    emu.shutdown().await;
    t.grant_consent();
    // A profile write needs User.ReadWrite.All, which the default consent does not grant.
    let mut granted = t.granted_permissions();
    granted.push("User.ReadWrite.All".into());
    t.set_granted_permissions(granted);
    let token = fx.token().await;
    let user = t.user_ids()[0].clone();
    let resp = fx
        .http
        .patch(fx.graph(&format!("users/{user}")))
        .bearer_auth(&token)
        .json(&json!({"displayName": "Saved At Once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let emu = restored(&path).await;
    let t2 = emu.tenant(&id).unwrap();
    assert!(t2.has_consent());
    assert_eq!(t2.user(&user).unwrap()["displayName"], "Saved At Once");
    assert!(t2.snapshot() == t.snapshot(), "the write is on disk");
    emu.shutdown().await;

    // A save is atomic: no temporary file is left beside the state.
    assert!(!path.with_extension("tmp").exists());
    fx.emu.clone().shutdown().await;
}
