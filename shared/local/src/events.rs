//! The local event sink: appends events as JSON lines to a file, so a person can see what the
//! host product would receive.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use entra_sync_core::error::EventError;
use entra_sync_core::events::ChangeEvent;
use entra_sync_core::ports::EventSink;

pub struct EventLog {
    file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl EventLog {
    /// Append events to `path` when given (without a path, events are dropped).
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
        Ok(Self { file })
    }
}

impl EventLog {
    /// Append `events` to the file (blocking file writes).
    pub fn append(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
        self.write_each(events, |f, e| {
            serde_json::to_writer(f, e).map_err(Into::into)
        })
    }

    /// Append events already in their wire form (one JSON envelope per line, as the outbox
    /// stores them), byte for byte.
    pub fn append_lines(&self, lines: &[String]) -> Result<(), EventError> {
        self.write_each(lines, |f, l| f.write_all(l.as_bytes()))
    }

    fn write_each<T>(
        &self,
        items: &[T],
        mut write: impl FnMut(&mut std::io::BufWriter<std::fs::File>, &T) -> std::io::Result<()>,
    ) -> Result<(), EventError> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let unavailable = |e: std::io::Error| EventError::Unavailable(Box::new(e));
        for item in items {
            write(&mut f, item).map_err(unavailable)?;
            f.write_all(b"\n").map_err(unavailable)?;
        }
        f.flush().map_err(unavailable)
    }
}

#[async_trait]
impl EventSink for EventLog {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
        self.append(events)
    }
}
