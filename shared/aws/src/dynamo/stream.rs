//! The table's DynamoDB Stream, read as committed writes: a stream record's old and new images
//! decoded into the model's before and after with the same item layouts the store ports write
//! (each port's `*_from_image` beside its item codec). Items no event is derived from (cursors,
//! markers, leases, idempotency claims, index items...) decode to `None` from their
//! key alone, without reading their body. Action and workflow items give `action.updated` and
//! `workflow.updated`; their index and due-list items give nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use entra_sync_core::committed::CommittedChange;
use entra_sync_core::error::StoreError;

use super::{actions, connections, local_users, mirror, outbound, runs};

/// The committed write a stream record describes, from its images (`None` when absent: a new
/// item has no old image, a deleted one no new image); `None` when no event is derived from
/// the item. A record whose item matches a layout but whose body does not decode is
/// `StoreError::Corrupt`.
pub fn committed_change(
    old: Option<&HashMap<String, AttributeValue>>,
    new: Option<&HashMap<String, AttributeValue>>,
) -> Result<Option<CommittedChange>, StoreError> {
    for decode in [
        mirror::mirror_from_image,
        local_users::local_user_from_image,
        runs::run_from_image,
        connections::connection_from_image,
        outbound::endpoint_from_image,
        actions::action_from_image,
        actions::workflow_from_image,
    ] {
        if let Some(change) = decode(old, new)? {
            return Ok(Some(change));
        }
    }
    Ok(None)
}
