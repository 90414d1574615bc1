//! The publisher function: the table's DynamoDB Stream (old and new images) in batches, each
//! record decoded into the committed write it describes, the write's change events derived by
//! the core (`entra_sync_core::committed`, as the local outbox derives them) and put on
//! EventBridge; for each event of an account, its outbound webhook deliveries are created (one
//! per endpoint and event, whatever the replays) and the delivery function woken. A failure
//! reports the first record not fully published in `batchItemFailures`, so the stream retries
//! from there (docs/events.md, "On AWS").

pub mod handler;
