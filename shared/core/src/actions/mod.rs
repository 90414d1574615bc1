//! The write half: actions on the directory, their approvals, workflows of actions, and the
//! audit trail. Pure decisions live in these modules; the use cases are in
//! [`crate::services::actions`] and the directory calls behind [`crate::directory_write`].
//! docs/actions.md describes every kind, its permission, its errors and the approval defaults.

pub mod budget;
pub mod kind;
pub mod memory;
pub mod password;
pub mod policy;
pub mod ports;
pub mod record;
pub mod resolve;
pub mod testing;
pub mod workflow;

pub use kind::{ActionKind, ActionSpec};
pub use policy::ActionSettings;
pub use record::{ActionRecord, ActionStatus, Origin, Target};
pub use workflow::{Template, Workflow, WorkflowParams, WorkflowStatus};
