//! Assembles delta pages from a directory and a round position.
//!
//! Initial rounds walk live objects in id order; incremental rounds walk the change log in
//! sequence order from the round's `since` to its current end. An object changed while a
//! round is in progress moves to the end of the change log, so an incremental round reports
//! it again later (a legal replay) and never loses it; an initial round hands its deltaLink
//! the sequence at which it started, so the next round reports anything changed meanwhile.

use std::ops::Bound::{Excluded, Unbounded};

use serde_json::Value;

use crate::directory::{Directory, Group, member_entry};
use crate::model::{Kind, Select};
use crate::tokens::{Cursor, Round};

/// How to build a page.
#[derive(Clone, Debug)]
pub(crate) struct PageSpec<'a> {
    pub(crate) sel: Select,
    /// `$filter=id eq ...` ids, sorted and deduplicated.
    pub(crate) filter: Option<&'a [String]>,
    /// `Prefer: return=minimal`.
    pub(crate) minimal: bool,
    pub(crate) user_page_size: usize,
    pub(crate) group_page_size: usize,
    pub(crate) member_slice: usize,
    pub(crate) duplicate_every: Option<usize>,
}

impl PageSpec<'_> {
    fn admits(&self, id: &str) -> bool {
        self.filter
            .is_none_or(|ids| ids.binary_search_by(|x| x.as_str().cmp(id)).is_ok())
    }

    fn duplicated(&self, id: &str) -> bool {
        match self.duplicate_every {
            Some(n) if n > 0 => crate::state::fingerprint(id).is_multiple_of(n as u64),
            _ => false,
        }
    }

    /// Upper bound of change-log entries or objects looked at per page, so a page's cost is
    /// bounded even when most entries are skipped (the page is then short, or empty, with a
    /// nextLink: both legal).
    fn max_scan(&self, page: usize) -> usize {
        page.saturating_mul(20).saturating_add(1000)
    }
}

/// One page: its objects and, when the round is not finished, where the next page resumes.
#[derive(Debug)]
pub(crate) struct PageOut {
    pub(crate) items: Vec<Value>,
    pub(crate) next: Option<Cursor>,
}

/// The cursor does not fit the round (a token from elsewhere).
#[derive(Debug)]
pub(crate) struct BadCursor;

struct Collector<'s, 'a> {
    spec: &'s PageSpec<'a>,
    items: Vec<Value>,
    objects: usize,
    scanned: usize,
}

impl<'s, 'a> Collector<'s, 'a> {
    fn new(spec: &'s PageSpec<'a>) -> Self {
        Self {
            spec,
            items: Vec::new(),
            objects: 0,
            scanned: 0,
        }
    }

    fn push(&mut self, id: &str, v: Value) {
        if self.spec.duplicated(id) {
            self.items.push(v.clone());
        }
        self.items.push(v);
        self.objects += 1;
    }

    fn full(&self, page: usize) -> bool {
        self.objects >= page || self.scanned >= self.spec.max_scan(page)
    }

    fn done(self, next: Option<Cursor>) -> PageOut {
        PageOut {
            items: self.items,
            next,
        }
    }
}

/// A users-delta page.
pub(crate) fn users_page(
    dir: &Directory,
    spec: &PageSpec<'_>,
    round: &Round,
    cursor: &Cursor,
) -> Result<PageOut, BadCursor> {
    let size = spec.user_page_size.max(1);
    let mut c = Collector::new(spec);
    match round {
        Round::Initial { .. } => {
            let after = match cursor {
                Cursor::Start => None,
                Cursor::Id(s) => Some(s.as_str()),
                _ => return Err(BadCursor),
            };
            let iter: Box<dyn Iterator<Item = &str>> = match spec.filter {
                Some(ids) => Box::new(
                    ids.iter()
                        .map(String::as_str)
                        .filter(move |id| after.is_none_or(|a| *id > a)),
                ),
                None => match after {
                    Some(a) => Box::new(
                        dir.users
                            .range::<str, _>((Excluded(a), Unbounded))
                            .map(|(k, _)| &**k),
                    ),
                    None => Box::new(dir.users.keys().map(|k| &**k)),
                },
            };
            let mut last: Option<&str> = None;
            for id in iter {
                if c.full(size) {
                    return Ok(c.done(last.map(|l| Cursor::Id(l.to_string()))));
                }
                c.scanned += 1;
                last = Some(id);
                if let Some(user) = dir.users.get(id).filter(|u| u.e.is_live()) {
                    c.push(id, user.delta_json(&spec.sel, None, false));
                }
            }
            Ok(c.done(None))
        }
        Round::Incremental { since } => {
            let since = *since;
            let from = match cursor {
                Cursor::Start => since,
                Cursor::Seq(s) => (*s).max(since),
                _ => return Err(BadCursor),
            };
            let mut last = from;
            for (seq, id) in dir.user_log.range((Excluded(from), Unbounded)) {
                if c.full(size) {
                    return Ok(c.done(Some(Cursor::Seq(last))));
                }
                c.scanned += 1;
                last = *seq;
                if !spec.admits(id) {
                    continue;
                }
                let Some(user) = dir.users.get(id) else {
                    continue;
                };
                if user.e.is_live() {
                    if user.e.tracked_change_since(&spec.sel, since) {
                        c.push(id, user.delta_json(&spec.sel, Some(since), spec.minimal));
                    }
                } else if user.e.life_seq > since {
                    c.push(id, user.e.removed_json());
                }
            }
            Ok(c.done(None))
        }
    }
}

/// Emits one group object with the next slice of its members; returns the last member key
/// served when more remain.
fn group_with_slice<K: Copy>(
    grp: &Group,
    spec: &PageSpec<'_>,
    since: Option<u64>,
    slice: impl Iterator<Item = (K, Value)>,
    budget: &mut usize,
) -> (Value, Option<K>) {
    let mut obj = grp.e.json(Kind::Group, &spec.sel, since, spec.minimal);
    let mut entries = Vec::new();
    let mut more = None;
    let mut last = None;
    if spec.sel.rel {
        for (key, entry) in slice {
            if entries.len() >= *budget {
                more = last;
                break;
            }
            entries.push(entry);
            last = Some(key);
        }
        *budget -= entries.len();
    }
    if !entries.is_empty() {
        obj.insert("members@delta".to_string(), Value::Array(entries));
    }
    (Value::Object(obj), more)
}

/// A groups-delta page (member lists split across pages by `member_slice`).
pub(crate) fn groups_page(
    dir: &Directory,
    spec: &PageSpec<'_>,
    round: &Round,
    cursor: &Cursor,
) -> Result<PageOut, BadCursor> {
    let size = spec.group_page_size.max(1);
    let mut budget = spec.member_slice.max(1);
    let mut c = Collector::new(spec);
    match round {
        Round::Initial { .. } => {
            let (after, resume) = match cursor {
                Cursor::Start => (None, None),
                Cursor::Id(s) => (Some(s.as_str()), None),
                Cursor::GroupId { id, member } => (Some(id.as_str()), Some((id, member))),
                _ => return Err(BadCursor),
            };
            if let Some((gid, member)) = resume
                && let Some(grp) = dir.groups.get(gid.as_str()).filter(|g| g.e.is_live())
                && spec.admits(gid)
            {
                let slice = grp
                    .members
                    .range::<str, _>((Excluded(member.as_str()), Unbounded))
                    .map(|(k, e)| (&**k, member_entry(k, e.kind, false)));
                let (v, more) = group_with_slice(grp, spec, None, slice, &mut budget);
                c.push(gid, v);
                if let Some(m) = more {
                    return Ok(c.done(Some(Cursor::GroupId {
                        id: gid.clone(),
                        member: m.to_string(),
                    })));
                }
            }
            let iter: Box<dyn Iterator<Item = &str>> = match spec.filter {
                Some(ids) => Box::new(
                    ids.iter()
                        .map(String::as_str)
                        .filter(move |id| after.is_none_or(|a| *id > a)),
                ),
                None => match after {
                    Some(a) => Box::new(
                        dir.groups
                            .range::<str, _>((Excluded(a), Unbounded))
                            .map(|(k, _)| &**k),
                    ),
                    None => Box::new(dir.groups.keys().map(|k| &**k)),
                },
            };
            let mut last: Option<&str> = after;
            for gid in iter {
                if c.full(size) || (spec.sel.rel && budget == 0) {
                    return Ok(c.done(last.map(|l| Cursor::Id(l.to_string()))));
                }
                c.scanned += 1;
                let Some(grp) = dir.groups.get(gid).filter(|g| g.e.is_live()) else {
                    last = Some(gid);
                    continue;
                };
                let slice = grp
                    .members
                    .iter()
                    .map(|(k, e)| (&**k, member_entry(k, e.kind, false)));
                let (v, more) = group_with_slice(grp, spec, None, slice, &mut budget);
                c.push(gid, v);
                if let Some(m) = more {
                    return Ok(c.done(Some(Cursor::GroupId {
                        id: gid.to_string(),
                        member: m.to_string(),
                    })));
                }
                last = Some(gid);
            }
            Ok(c.done(None))
        }
        Round::Incremental { since } => {
            let since = *since;
            let (from, resume) = match cursor {
                Cursor::Start => (since, None),
                Cursor::Seq(s) => ((*s).max(since), None),
                Cursor::GroupSeq {
                    id,
                    seq,
                    member_seq,
                } => ((*seq).max(since), Some((id, *member_seq))),
                _ => return Err(BadCursor),
            };
            if let Some((gid, mseq)) = resume
                && let Some(grp) = dir.groups.get(gid.as_str()).filter(|g| g.e.is_live())
                && spec.admits(gid)
            {
                let start = mseq.max(since);
                let slice = incremental_slice(grp, start);
                let (v, more) = group_with_slice(grp, spec, Some(since), slice, &mut budget);
                c.push(gid, v);
                if let Some(m) = more {
                    return Ok(c.done(Some(Cursor::GroupSeq {
                        id: gid.clone(),
                        seq: from,
                        member_seq: m,
                    })));
                }
            }
            let mut last = from;
            for (seq, gid) in dir.group_log.range((Excluded(from), Unbounded)) {
                if c.full(size) || (spec.sel.rel && budget == 0) {
                    return Ok(c.done(Some(Cursor::Seq(last))));
                }
                c.scanned += 1;
                last = *seq;
                if !spec.admits(gid) {
                    continue;
                }
                let Some(grp) = dir.groups.get(gid) else {
                    continue;
                };
                if grp.e.is_live() {
                    if !grp.e.tracked_change_since(&spec.sel, since) {
                        continue;
                    }
                    let slice = incremental_slice(grp, since);
                    let (v, more) = group_with_slice(grp, spec, Some(since), slice, &mut budget);
                    c.push(gid, v);
                    if let Some(m) = more {
                        return Ok(c.done(Some(Cursor::GroupSeq {
                            id: gid.to_string(),
                            seq: *seq,
                            member_seq: m,
                        })));
                    }
                } else if grp.e.life_seq > since {
                    c.push(gid, grp.e.removed_json());
                }
            }
            Ok(c.done(None))
        }
    }
}

/// Membership changes of `grp` after `start`, keyed by their sequence.
fn incremental_slice(grp: &Group, start: u64) -> impl Iterator<Item = (u64, Value)> + '_ {
    grp.member_log
        .range((Excluded(start), Unbounded))
        .filter_map(|(seq, mid)| grp.logged_member_json(*seq, mid).map(|v| (*seq, v)))
}
