//! The fetch function: an SQS batch of fetch requests (from the scheduler, an operator, or a
//! fetch that ran out of its page budget) -> one directory's delta pages on the page queue,
//! with cursor checkpoints and the per-directory lease (`run_fetch`).

pub mod handler;
