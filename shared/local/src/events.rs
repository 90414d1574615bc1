//! The local event sink: counts events by kind and appends them as JSON lines to a file, so a
//! person can see what the host product would receive.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use entra_sync_core::error::EventError;
use entra_sync_core::events::{ChangeEvent, ChangeKind};
use entra_sync_core::ports::EventSink;

pub struct EventLog {
    file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

fn kind_name(k: &ChangeKind) -> &'static str {
    match k {
        ChangeKind::UserCreated => "user_created",
        ChangeKind::UserUpdated => "user_updated",
        ChangeKind::UserDeactivated => "user_deactivated",
        ChangeKind::UserReactivated => "user_reactivated",
        ChangeKind::UserRemovedFromDirectory => "user_removed_from_directory",
        ChangeKind::GroupCreated => "group_created",
        ChangeKind::GroupUpdated => "group_updated",
        ChangeKind::GroupRemovedFromDirectory => "group_removed_from_directory",
        ChangeKind::MemberAdded { .. } => "member_added",
        ChangeKind::MemberRemoved { .. } => "member_removed",
        ChangeKind::SyncCompleted { .. } => "sync_completed",
        ChangeKind::SyncFailed { .. } => "sync_failed",
        ChangeKind::SyncHeld { .. } => "sync_held",
        ChangeKind::ActionUpdated { .. } => "action_updated",
        ChangeKind::WorkflowUpdated { .. } => "workflow_updated",
    }
}

impl EventLog {
    /// Count events, and append them to `path` when given.
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ))),
            None => None,
        };
        Ok(Self {
            file,
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Events seen so far by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl EventSink for EventLog {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
        {
            let mut c = self
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for e in events {
                *c.entry(kind_name(&e.kind)).or_default() += 1;
            }
        }
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for e in events {
                serde_json::to_writer(&mut *f, e)
                    .map_err(|e| EventError::Unavailable(Box::new(e)))?;
                f.write_all(b"\n")
                    .map_err(|e| EventError::Unavailable(Box::new(e)))?;
            }
            f.flush()
                .map_err(|e| EventError::Unavailable(Box::new(e)))?;
        }
        Ok(())
    }
}
