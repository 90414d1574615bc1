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
