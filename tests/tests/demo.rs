//! The demo, small: full sync, changes, incremental sync, state equals directory; and a second
//! run on the same data directory continues incrementally.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use entra_sync_core::page::RoundMode;
use entra_sync_local::demo::{DemoOptions, run_demo};
use entra_sync_local::runtime::SyncSettings;

#[tokio::test]
async fn demo_converges_and_a_second_run_is_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        data_dir: dir.path().to_owned(),
        fresh: false,
        users: 600,
        groups: 40,
        seed: 3,
        changes: Some(40),
        latency: Duration::ZERO,
        settings: SyncSettings::default(),
    };
    let first = run_demo(&opts, |_| {}).await.unwrap();
    assert!(
        first.verification.matches(),
        "{:?}",
        first.verification.differences
    );
    assert_eq!(
        first.verification.users_expected,
        first.verification.users_stored
    );
    assert_eq!(first.syncs[0].mode, Some(RoundMode::Full));
    assert_eq!(first.syncs[1].mode, Some(RoundMode::Incremental));
    assert!(first.syncs[1].graph_requests * 3 < first.syncs[0].graph_requests);
    assert_eq!(
        first.syncs[0].run.counts.created, 600,
        "the full sync creates every user"
    );

    let second = run_demo(&opts, |_| {}).await.unwrap();
    assert!(
        second.verification.matches(),
        "{:?}",
        second.verification.differences
    );
    assert_eq!(
        second.tenant_id, first.tenant_id,
        "the same emulated tenant continues"
    );
    assert_eq!(second.syncs[0].mode, Some(RoundMode::Incremental));
}
