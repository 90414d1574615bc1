//! Scale check (ignored by default; run with `--release -- --ignored`): a 100k-user tenant is
//! generated quickly and a full users + groups delta round is served with bounded pages.

mod common;

use std::time::Instant;

use common::{ALL_GROUP_PROPS, ALL_USER_PROPS, Fx};
use entra_sync_emulator::{EmulatorConfig, TenantSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale check; run in release"]
async fn hundred_thousand_users_generate_and_sync_quickly() {
    let start = Instant::now();
    let fx = Fx::new(
        EmulatorConfig::default(),
        TenantSpec::new(1, 100_000, 5_000),
    )
    .await;
    let generated = start.elapsed();
    let token = fx.token().await;
    let start = Instant::now();
    let (pages, _) = fx
        .round(
            &fx.graph(&format!("users/delta?$select={ALL_USER_PROPS}")),
            &token,
        )
        .await;
    let users_round = start.elapsed();
    let start = Instant::now();
    let (gpages, _) = fx
        .round(
            &fx.graph(&format!("groups/delta?$select={ALL_GROUP_PROPS}")),
            &token,
        )
        .await;
    let groups_round = start.elapsed();
    let start = Instant::now();
    fx.handle().random_churn(3, 5_000);
    let churn = start.elapsed();
    println!(
        "generate {generated:?}; users round {} pages in {users_round:?}; groups round {} pages in {groups_round:?}; churn 5000 in {churn:?}",
        pages.len(),
        gpages.len()
    );
    assert!(generated.as_secs() < 20);
}
