//! The use cases the functions and the local program call: one async fn each. Each takes a
//! `Deps` struct holding only the ports it uses.

pub mod actions;
pub mod browse;
pub mod claim;
mod commit;
pub mod connect;
mod deps;
mod fetch;
mod project;
pub mod publish;
mod reconcile;
mod schedule;
pub mod sync_now;
pub mod webhooks;

pub use commit::{CommitDeps, try_commit};
pub use connect::{
    ConnectDeps, ConnectError, complete_consent, disconnect, start_consent, start_reconnect,
};
pub use deps::{StorePorts, SyncDeps, SyncStore};
pub use fetch::{FetchDeps, FetchOptions, FetchOutcome, FetchReport, plain_words, run_fetch};
pub use project::{
    ImportMode, ImportReport, LocalUserError, Preview, PreviewItem, ProjectDeps, ProjectError,
    ProjectOutcome, ProjectionPorts, PublishingLocalUsers, SettingsEdit, SignInLookup,
    activate_local_user, add_local_user, check_settings_edit, confirm_held, group_problems, import,
    load_settings, preview, project_run, reject_held, save_settings, set_local_status,
    sign_in_lookup, stamp_host_users,
};
pub use reconcile::{
    DELIVERY_KEY_PREFIX, DeliveryOutcome, ReconcileDeps, ReconcileOutcome, delivery_key,
    payload_hash, reconcile_delivery, reconcile_page,
};
pub use schedule::{ScheduleDeps, ScheduleReport, jitter_for, schedule_fetches};
