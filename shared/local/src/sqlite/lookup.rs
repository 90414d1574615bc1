//! The actions' target lookup on SQLite: directory users by handle (UPN or mail) and groups by
//! name, through the expression indexes of the mirror's tables (migration 5 in schema.rs).

use async_trait::async_trait;
use entra_sync_core::actions::ports::TargetLookup;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{StoredGroup, StoredUser, TenantId};
use rusqlite::params;

use crate::sqlite::{SqliteStore, from_json, internal};

/// The whitespace the group-name index trims (SQLite's `trim(x, chars)` takes a list; these
/// are the ASCII spaces). Display names padded with other Unicode spaces are not found.
const NAME_TRIM: &[char] = &[' ', '\t', '\n', '\u{0B}', '\u{0C}', '\r'];

/// The normalised name the group index holds: trimmed as above, ASCII lower case (SQLite's
/// built-in `lower` folds ASCII only, like the comparison the resolver makes).
fn index_name(name: &str) -> String {
    name.trim_matches(NAME_TRIM).to_ascii_lowercase()
}

pub(super) const USERS_BY_HANDLE: &str = "SELECT id, body FROM users WHERE tenant_id = ?1
       AND lower(json_extract(body, '$.user.user_principal_name')) = ?2
     UNION
     SELECT id, body FROM users WHERE tenant_id = ?1
       AND lower(json_extract(body, '$.user.mail')) = ?2";

pub(super) const GROUPS_BY_NAME: &str = "SELECT body FROM groups WHERE tenant_id = ?1
       AND lower(trim(json_extract(body, '$.group.display_name'), char(32, 9, 10, 11, 12, 13))) = ?2";

pub(super) const GROUPS_OF_USER: &str = "SELECT json_extract(body, '$.group_id') FROM memberships
     WHERE tenant_id = ?1 AND json_extract(body, '$.member.id') = ?2
       AND json_extract(body, '$.present') = 1";

/// The lookups query the mirror's tables through the expression indexes of migration 5; each
/// query repeats its index's expression exactly, which is what lets SQLite use the index, and
/// sorts its few results itself: an `ORDER BY id` would make the planner walk the tenant's
/// rows in primary-key order instead (a test checks the query plans).
#[async_trait]
impl TargetLookup for SqliteStore {
    async fn users_by_handle(
        &self,
        tenant: &TenantId,
        handle: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        let t = tenant.as_str().to_owned();
        let h = handle.to_ascii_lowercase();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(USERS_BY_HANDLE).map_err(internal)?;
            let rows = stmt
                .query_map(params![t, h], |r| r.get::<_, String>(1))
                .map_err(internal)?;
            let mut out: Vec<StoredUser> = Vec::new();
            for body in rows {
                out.push(from_json(&body.map_err(internal)?)?);
            }
            out.sort_by(|a, b| a.user.id.cmp(&b.user.id));
            Ok(out)
        })
        .await
    }

    async fn groups_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<StoredGroup>, StoreError> {
        let t = tenant.as_str().to_owned();
        let wanted = name.trim().to_owned();
        let key = index_name(name);
        self.with(move |c| {
            let mut stmt = c.prepare_cached(GROUPS_BY_NAME).map_err(internal)?;
            let rows = stmt
                .query_map(params![t, key], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut out = Vec::new();
            for body in rows {
                let g: StoredGroup = from_json(&body.map_err(internal)?)?;
                // The index narrows; the resolver's own rule decides.
                if g.group
                    .display_name
                    .as_deref()
                    .is_some_and(|d| d.trim().eq_ignore_ascii_case(&wanted))
                {
                    out.push(g);
                }
            }
            out.sort_by(|a, b| a.group.id.cmp(&b.group.id));
            Ok(out)
        })
        .await
    }

    async fn groups_of_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let t = tenant.as_str().to_owned();
        let u = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(GROUPS_OF_USER).map_err(internal)?;
            let rows = stmt
                .query_map(params![t, u], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            let mut groups = rows.collect::<Result<Vec<_>, _>>().map_err(internal)?;
            groups.sort();
            Ok(groups)
        })
        .await
    }
}
