//! Keys and hashes that the store adapters (memory, SQLite, DynamoDB) share, so every store lists
//! and shards the same way.

use std::hash::Hasher;

/// The key of a membership edge in listings: `group/member`, so a group's edges sort together.
pub fn edge_listing_key(group_id: &str, member_id: &str) -> String {
    format!("{group_id}/{member_id}")
}

/// A stable 64-bit hash of `s` (FNV-1a): the same on every machine, build and run, unlike the
/// standard library's `DefaultHasher`. For values that are stored or must be reproducible (the
/// DynamoDB listing shard of a key, a tenant's schedule jitter); not for security.
pub fn stable_hash(s: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_hash_is_fnv_1a_and_never_changes() {
        // Stored shard numbers depend on these values: a change would hide stored items.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn an_edge_key_is_group_then_member() {
        assert_eq!(edge_listing_key("g1", "u1"), "g1/u1");
    }
}
