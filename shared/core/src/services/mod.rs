//! The use cases the functions and the local program call: one async fn each. Each takes a
//! `Deps` struct holding only the ports it uses.

mod commit;
mod fetch;
mod reconcile;
mod schedule;

pub use commit::{CommitDeps, try_commit};
pub use fetch::{FetchDeps, FetchOptions, FetchOutcome, FetchReport, plain_words, run_fetch};
pub use reconcile::{ReconcileDeps, ReconcileOutcome, reconcile_page};
pub use schedule::{ScheduleDeps, ScheduleReport, jitter_for, schedule_fetches};
