//! Every store port on one DynamoDB table (single-table design; docs/data-model.md has the keys,
//! the index and every access pattern).
//!
//! * Keys are strings `pk`/`sk`; the tenant id leads every partition key (`T#<tenant>...`), and
//!   each user, group and group's edges have their own partition, so a large tenant's writes
//!   spread over many partitions.
//! * One sparse, KEYS_ONLY global index `gsi1` lists a tenant's users, groups and edges in key
//!   order (write-sharded: `T#<tenant>#USERS#<shard>`, merged on read), its runs by start time
//!   and the connections. Listings read the items themselves back from the table with strongly
//!   consistent reads, so a decision (the sweep) never rests on a lagging index projection.
//! * Mirror puts are conditional per item: `attribute_not_exists(pk) OR cycle < :c OR
//!   (cycle = :c AND page < :p)`, so an older (cycle, page) never overwrites a newer one.
//! * Cursors carry a `revision` for optimistic concurrency; the lease and the applied-page
//!   markers carry an `expires_at` TTL attribute.
//!
//! Items keep their core value as JSON in `body` (the encoding the SQLite store uses too), beside
//! the attributes that conditions and keys need.
//!
//! One file per port, named as on the SQLite side (`shared/local/src/sqlite/`): `connections`,
//! `cursors`, `leases`, `mirror`, `runs`, `settings`, `local_users`, `idempotency`, `consent`,
//! `actions` (actions and workflows), `lookup` (the actions' target lookup and the employee-id
//! handles), `webhooks` (the HR webhook stores), `outbound` (outbound webhook endpoints and
//! deliveries, with the sparse due index `gsi2`); `stream` reads the table's stream records back
//! as committed writes with those modules' codecs; `table` holds what
//! they share (attribute helpers, conditional puts, batch reads, index queries, the table's
//! creation).

mod actions;
mod connections;
mod consent;
mod cursors;
mod idempotency;
mod leases;
mod local_users;
mod lookup;
mod mirror;
mod outbound;
mod runs;
mod settings;
pub mod stream;
mod table;
mod webhooks;

use aws_sdk_dynamodb::Client;

pub(crate) use mirror::shard_of;
pub use outbound::{DUE_SHARDS, GSI2};
pub(crate) use table::*;
pub use table::{DEFAULT_LISTING_SHARDS, GSI1};

/// Every store port on one DynamoDB table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    shards: u32,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            shards: DEFAULT_LISTING_SHARDS,
        }
    }
}
