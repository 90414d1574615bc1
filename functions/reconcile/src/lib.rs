//! The reconcile function: an SQS batch of page messages, each parsed and applied on its own
//! (`reconcile_page`), failures reported per message in `SqsBatchResponse.batchItemFailures`,
//! so a malformed or failing page is retried (and after `maxReceiveCount` dead-lettered) alone.

pub mod handler;
