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
    k.as_str()
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

impl EventLog {
    /// Count `events` and append them to the file (blocking file writes).
    pub fn append(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
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

#[async_trait]
impl EventSink for EventLog {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
        self.append(events)
    }
}
