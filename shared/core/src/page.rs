//! One page of a delta round, already translated from Graph JSON, and the message that carries it
//! from fetch to reconcile.

use serde::{Deserialize, Serialize};

use crate::model::{DirectoryGroup, DirectoryUser, MemberRef, RemovalReason, Stream, TenantId};

/// The manager relationship as a delta page reports it. In an incremental round `manager@delta`
/// only appears when the manager changed, so absence means "unchanged"; in a full round absence
/// means "no manager".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum ManagerChange {
    #[default]
    NotReported,
    Set(String),
    Removed,
}

/// One user entry of a delta page.
// Nearly every entry is an upsert; boxing it would cost an allocation per user for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserDelta {
    /// The object with every selected property: a full replace of the mirrored fields
    /// (the `manager_id` field of `user` is ignored; `manager` says what happened to it).
    Upsert {
        user: DirectoryUser,
        manager: ManagerChange,
    },
    Removed {
        id: String,
        reason: RemovalReason,
    },
}

impl UserDelta {
    pub fn id(&self) -> &str {
        match self {
            UserDelta::Upsert { user, .. } => &user.id,
            UserDelta::Removed { id, .. } => id,
        }
    }
}

/// One group entry of a delta page. A large group appears on several pages, each with a slice of
/// its member changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupDelta {
    Upsert {
        group: DirectoryGroup,
        members_added: Vec<MemberRef>,
        members_removed: Vec<MemberRef>,
    },
    Removed {
        id: String,
        reason: RemovalReason,
    },
}

impl GroupDelta {
    pub fn id(&self) -> &str {
        match self {
            GroupDelta::Upsert { group, .. } => &group.id,
            GroupDelta::Removed { id, .. } => id,
        }
    }
}

/// The entries of one page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stream", content = "items", rename_all = "lowercase")]
pub enum PageItems {
    Users(Vec<UserDelta>),
    Groups(Vec<GroupDelta>),
}

impl PageItems {
    pub fn stream(&self) -> Stream {
        match self {
            PageItems::Users(_) => Stream::Users,
            PageItems::Groups(_) => Stream::Groups,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            PageItems::Users(v) => v.len(),
            PageItems::Groups(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn empty(stream: Stream) -> Self {
        match stream {
            Stream::Users => PageItems::Users(Vec::new()),
            Stream::Groups => PageItems::Groups(Vec::new()),
        }
    }
}

/// Where the next page comes from, as Graph said on the last page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "url", rename_all = "snake_case")]
pub enum PageLink {
    /// `@odata.nextLink`: more pages in this round.
    Next(String),
    /// `@odata.deltaLink`: the round is over; this link starts the next one.
    Delta(String),
}

/// Which page to ask the directory for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// The first page of a full round.
    Initial,
    /// A nextLink or deltaLink, replayed verbatim.
    Link(String),
}

/// A page as the directory port returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedPage {
    pub items: PageItems,
    pub link: PageLink,
}

/// Whether a round reads everything (and may sweep what it did not see) or only changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundMode {
    Full,
    Incremental,
}

/// The work item fetch enqueues and reconcile consumes: one page of one round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMessage {
    pub tenant_id: TenantId,
    pub run_id: String,
    pub cycle: u64,
    pub page_seq: u32,
    pub mode: RoundMode,
    pub items: PageItems,
}

impl PageMessage {
    pub fn stream(&self) -> Stream {
        self.items.stream()
    }

    /// Stable id: redelivering or re-enqueueing the same page gives the same id, so queues that
    /// deduplicate can, and consumers can recognise it.
    pub fn message_id(&self) -> String {
        format!(
            "{}#{}#{}#{}",
            self.tenant_id,
            self.stream(),
            self.cycle,
            self.page_seq
        )
    }
}

/// Room left for the digits of a page number and JSON punctuation when measuring a message.
const SPLIT_SLACK: usize = 32;

impl PageMessage {
    /// The message as consecutive messages whose JSON is at most `max_bytes` long, numbered
    /// from `self.page_seq` on, entries in their original order (so later entries keep the
    /// higher version, as on one page). A group whose member slice alone is too large is split
    /// into several entries of the same group, as Graph itself does across pages. Always at
    /// least one message (an empty page stays one empty message, so page counting holds).
    /// A single user too large for `max_bytes` stays alone; the queue rejects it.
    pub fn split_to_fit(self, max_bytes: usize) -> Vec<PageMessage> {
        let overhead = json_len(&PageMessage {
            items: PageItems::empty(self.stream()),
            ..self.clone()
        }) + SPLIT_SLACK;
        let budget = max_bytes.saturating_sub(overhead).max(1);
        let parts: Vec<PageItems> = match self.items {
            PageItems::Users(ref entries) => chunk(entries.iter().cloned(), budget)
                .into_iter()
                .map(PageItems::Users)
                .collect(),
            PageItems::Groups(ref entries) => {
                let pieces = entries
                    .iter()
                    .flat_map(|e| split_group_entry(e, budget))
                    .collect::<Vec<_>>();
                chunk(pieces.into_iter(), budget)
                    .into_iter()
                    .map(PageItems::Groups)
                    .collect()
            }
        };
        if parts.len() <= 1 {
            return vec![self];
        }
        parts
            .into_iter()
            .enumerate()
            .map(|(i, items)| PageMessage {
                page_seq: self
                    .page_seq
                    .saturating_add(u32::try_from(i).unwrap_or(u32::MAX)),
                items,
                ..self.clone()
            })
            .collect()
    }
}

fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Greedy, order-keeping chunks whose summed entry sizes (plus commas) fit `budget`.
fn chunk<T: Serialize>(entries: impl Iterator<Item = T>, budget: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut current = Vec::new();
    let mut used = 0usize;
    for e in entries {
        let size = json_len(&e).saturating_add(1);
        if !current.is_empty() && used.saturating_add(size) > budget {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used = used.saturating_add(size);
        current.push(e);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// A group entry whose member changes do not fit `budget`, as several entries of the same
/// group carrying consecutive slices of the changes (added first, then removed).
fn split_group_entry(entry: &GroupDelta, budget: usize) -> Vec<GroupDelta> {
    let GroupDelta::Upsert {
        group,
        members_added,
        members_removed,
    } = entry
    else {
        return vec![entry.clone()];
    };
    if json_len(entry) < budget {
        return vec![entry.clone()];
    }
    let base = json_len(&GroupDelta::Upsert {
        group: group.clone(),
        members_added: Vec::new(),
        members_removed: Vec::new(),
    });
    let room = budget.saturating_sub(base).max(1);
    let mut out = Vec::new();
    for (added, refs) in [(true, members_added), (false, members_removed)] {
        for slice in chunk(refs.iter().cloned(), room) {
            if slice.is_empty() {
                continue;
            }
            let (a, r) = if added {
                (slice, Vec::new())
            } else {
                (Vec::new(), slice)
            };
            out.push(GroupDelta::Upsert {
                group: group.clone(),
                members_added: a,
                members_removed: r,
            });
        }
    }
    if out.is_empty() {
        out.push(entry.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MemberType, TenantId};

    fn msg(items: PageItems) -> PageMessage {
        PageMessage {
            tenant_id: TenantId::new("t"),
            run_id: "r".into(),
            cycle: 3,
            page_seq: 7,
            mode: RoundMode::Full,
            items,
        }
    }

    fn user(i: usize) -> UserDelta {
        UserDelta::Upsert {
            user: DirectoryUser {
                id: format!("user-{i:05}"),
                display_name: Some("x".repeat(200)),
                ..Default::default()
            },
            manager: ManagerChange::NotReported,
        }
    }

    #[test]
    fn a_page_that_fits_stays_one_message() {
        let m = msg(PageItems::Users((0..5).map(user).collect()));
        let parts = m.clone().split_to_fit(256 * 1024);
        assert_eq!(parts, vec![m]);
        let empty = msg(PageItems::empty(Stream::Users));
        assert_eq!(empty.clone().split_to_fit(100), vec![empty]);
    }

    #[test]
    fn a_large_page_splits_into_consecutive_pages_that_fit_and_keep_order() {
        let users: Vec<UserDelta> = (0..400).map(user).collect();
        let m = msg(PageItems::Users(users.clone()));
        let limit = 16 * 1024;
        let parts = m.split_to_fit(limit);
        assert!(parts.len() > 5);
        let mut seen = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.page_seq, 7 + i as u32);
            assert!(json_len(p) <= limit, "part {i} is {} bytes", json_len(p));
            match &p.items {
                PageItems::Users(u) => seen.extend(u.iter().cloned()),
                PageItems::Groups(_) => panic!("stream changed"),
            }
        }
        assert_eq!(seen, users);
    }

    #[test]
    fn a_group_with_a_huge_member_slice_is_split_into_entries_of_the_same_group() {
        let members: Vec<MemberRef> = (0..3000)
            .map(|i| MemberRef {
                id: format!("00000000-0000-0000-0000-{i:012}"),
                member_type: MemberType::User,
            })
            .collect();
        let entry = GroupDelta::Upsert {
            group: DirectoryGroup {
                id: "g1".into(),
                ..Default::default()
            },
            members_added: members.clone(),
            members_removed: vec![],
        };
        let limit = 32 * 1024;
        let parts = msg(PageItems::Groups(vec![entry])).split_to_fit(limit);
        assert!(parts.len() > 3);
        let mut all = Vec::new();
        for p in &parts {
            assert!(json_len(p) <= limit);
            let PageItems::Groups(g) = &p.items else {
                panic!("stream changed")
            };
            for e in g {
                let GroupDelta::Upsert {
                    group,
                    members_added,
                    ..
                } = e
                else {
                    panic!("entry kind changed")
                };
                assert_eq!(group.id, "g1");
                all.extend(members_added.iter().cloned());
            }
        }
        assert_eq!(all, members);
    }
}
