//! EventBridge event sink: change events as `PutEvents` entries (source `entra-sync`, detail
//! type = the event's catalog type, detail = the versioned envelope; see `docs/events.md`). At most 10 entries per call;
//! entries EventBridge could not take are sent again (bounded).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use entra_sync_core::error::EventError;
use entra_sync_core::events::{ChangeEvent, ChangeKind};
use entra_sync_core::ports::EventSink;

use crate::error::{AwsCallError, Class};

const SERVICE: &str = "events";
/// The `source` of every event.
pub const EVENT_SOURCE: &str = "entra-sync";
const BATCH: usize = 10;
const MAX_ATTEMPTS: u32 = 5;

/// The EventBridge `detail-type` of an event: its catalog type (`directory.user.created`...).
pub fn detail_type(kind: &ChangeKind) -> &'static str {
    kind.as_str()
}

#[derive(Clone, Debug)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish(&self, events: &[ChangeEvent]) -> Result<(), EventError> {
        for chunk in events.chunks(BATCH) {
            let mut pending = Vec::with_capacity(chunk.len());
            for e in chunk {
                let detail = serde_json::to_string(e)
                    .map_err(|err| EventError::Unavailable(Box::new(err)))?;
                pending.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(EVENT_SOURCE)
                        .detail_type(detail_type(&e.kind))
                        .detail(detail)
                        .build(),
                );
            }
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(EventError::Unavailable(
                        format!("{} event(s) still failing after retries", pending.len()).into(),
                    ));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50u64 << attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        AwsCallError::from_sdk(SERVICE, "PutEvents", e, |e| {
                            if e.is_internal_exception() {
                                Class::Retryable
                            } else {
                                Class::Permanent
                            }
                        })
                        .into_event()
                    })?;
                if out.failed_entry_count() == 0 {
                    break;
                }
                // Results are positional: keep the entries that carry an error code.
                pending = pending
                    .into_iter()
                    .zip(out.entries())
                    .filter(|(_, r)| r.error_code().is_some())
                    .map(|(e, _)| e)
                    .collect();
            }
        }
        Ok(())
    }
}
