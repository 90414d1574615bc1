//! Delta cursor state of one stream of one tenant, as an explicit state machine, checkpointed
//! so a crash resumes the round mid-way (docs/reliability.md).
//!
//! ```text
//!  NeedsFull ──start──▶ InRound(Full) ──deltaLink──▶ Applying ──all pages applied──▶ Idle
//!      ▲                    ▲  │nextLink (checkpoint)                                  │
//!      │                    └──┘                                                       │
//!      │          Idle ──start──▶ InRound(Incremental) ──…──▶ Applying ──▶ Idle ◀──────┘
//!      └──── token expired / 410 / resyncRequired, from any state ────────────────────┘
//! ```
//! The deltaLink that starts the next round is only committed (`Idle`) after every page of the
//! round has been applied; a failure before that leaves the previous watermark in place.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::page::{PageRequest, RoundMode};

/// Why a full round is needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullReason {
    /// Never synced.
    Initial,
    /// Graph said the delta token is no longer valid (410, `syncStateNotFound`, `resyncRequired`).
    TokenExpired,
    /// An operator asked for it.
    Requested,
    /// A stored or returned link could not be followed (not on the configured Graph host).
    LinkUnusable,
}

/// The state of one stream's delta cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CursorState {
    /// The next round must read everything.
    NeedsFull { reason: FullReason },
    /// Between rounds: the next round starts from `delta_link`.
    Idle {
        delta_link: String,
        committed_at: DateTime<Utc>,
    },
    /// Fetch is reading a round; `next` is the checkpoint to resume from after a crash.
    InRound {
        cycle: u64,
        run_id: String,
        mode: RoundMode,
        next: ResumePoint,
        next_page: u32,
        /// The watermark to fall back to if this incremental round cannot finish.
        previous_delta_link: Option<String>,
        /// Page numbers from `next_page` on that an interrupted enqueue of the page at `next`
        /// may have used (a split page reserves its numbers before it is enqueued). Fetch
        /// numbers the re-read page after them and fills them with empty pages, so an old part
        /// never shares a number with a part of another page (docs/data-model.md).
        #[serde(default, skip_serializing_if = "is_zero")]
        reserved: u32,
    },
    /// Every page is enqueued; waiting for reconcile to apply all `pages` before committing.
    Applying {
        cycle: u64,
        run_id: String,
        mode: RoundMode,
        pages: u32,
        delta_link: String,
    },
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Where a round in progress continues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "url", rename_all = "snake_case")]
pub enum ResumePoint {
    Initial,
    Link(String),
}

impl ResumePoint {
    pub fn request(&self) -> PageRequest {
        match self {
            ResumePoint::Initial => PageRequest::Initial,
            ResumePoint::Link(url) => PageRequest::Link(url.clone()),
        }
    }
}

/// The stored cursor of one stream: the state plus the counters that outlive rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRecord {
    pub state: CursorState,
    /// The last cycle number handed out; cycles only grow.
    pub last_cycle: u64,
    /// Pages of cycles below this are from abandoned rounds and are ignored by reconcile:
    /// the full round that started at this cycle re-reads everything they carried.
    pub min_valid_cycle: u64,
}

impl Default for CursorRecord {
    fn default() -> Self {
        Self {
            state: CursorState::NeedsFull {
                reason: FullReason::Initial,
            },
            last_cycle: 0,
            min_valid_cycle: 0,
        }
    }
}

impl CursorRecord {
    /// Begin a round (or return the one in progress). Returns the new record and whether this is
    /// a fresh round.
    pub fn begin_round(&self, run_id: &str) -> (CursorRecord, bool) {
        match &self.state {
            CursorState::InRound { .. } | CursorState::Applying { .. } => (self.clone(), false),
            CursorState::NeedsFull { .. } => {
                let cycle = self.last_cycle + 1;
                (
                    CursorRecord {
                        state: CursorState::InRound {
                            cycle,
                            run_id: run_id.to_owned(),
                            mode: RoundMode::Full,
                            next: ResumePoint::Initial,
                            next_page: 0,
                            previous_delta_link: None,
                            reserved: 0,
                        },
                        last_cycle: cycle,
                        min_valid_cycle: cycle,
                    },
                    true,
                )
            }
            CursorState::Idle { delta_link, .. } => {
                let cycle = self.last_cycle + 1;
                (
                    CursorRecord {
                        state: CursorState::InRound {
                            cycle,
                            run_id: run_id.to_owned(),
                            mode: RoundMode::Incremental,
                            next: ResumePoint::Link(delta_link.clone()),
                            next_page: 0,
                            previous_delta_link: Some(delta_link.clone()),
                            reserved: 0,
                        },
                        last_cycle: cycle,
                        min_valid_cycle: self.min_valid_cycle,
                    },
                    true,
                )
            }
        }
    }

    /// After a page with a nextLink was enqueued.
    pub fn checkpoint_next(&self, next_link: String) -> Option<CursorRecord> {
        self.checkpoint_next_by(next_link, 1)
    }

    /// After a directory page with a nextLink was enqueued as `messages` consecutive page
    /// numbers (a page too large for one queue message is split; see `PageMessage::split_to_fit`).
    pub fn checkpoint_next_by(&self, next_link: String, messages: u32) -> Option<CursorRecord> {
        match &self.state {
            CursorState::InRound {
                cycle,
                run_id,
                mode,
                next_page,
                previous_delta_link,
                ..
            } => Some(CursorRecord {
                state: CursorState::InRound {
                    cycle: *cycle,
                    run_id: run_id.clone(),
                    mode: *mode,
                    next: ResumePoint::Link(next_link),
                    next_page: next_page + messages.max(1),
                    previous_delta_link: previous_delta_link.clone(),
                    reserved: 0,
                },
                ..self.clone()
            }),
            _ => None,
        }
    }

    /// Before enqueueing the page at `next` as messages numbered `next_page..next_page +
    /// messages`: reserve those numbers, so a fetch that crashes mid-enqueue and re-reads the
    /// page numbers it after them (`None` outside a round).
    pub fn reserve(&self, messages: u32) -> Option<CursorRecord> {
        match &self.state {
            CursorState::InRound { .. } => {
                let mut next = self.clone();
                if let CursorState::InRound { reserved, .. } = &mut next.state {
                    *reserved = messages;
                }
                Some(next)
            }
            _ => None,
        }
    }

    /// After the last page (the one with the deltaLink) was enqueued.
    pub fn checkpoint_last(&self, delta_link: String) -> Option<CursorRecord> {
        self.checkpoint_last_by(delta_link, 1)
    }

    /// After the last directory page was enqueued as `messages` consecutive page numbers.
    pub fn checkpoint_last_by(&self, delta_link: String, messages: u32) -> Option<CursorRecord> {
        match &self.state {
            CursorState::InRound {
                cycle,
                run_id,
                mode,
                next_page,
                ..
            } => Some(CursorRecord {
                state: CursorState::Applying {
                    cycle: *cycle,
                    run_id: run_id.clone(),
                    mode: *mode,
                    pages: next_page + messages.max(1),
                    delta_link,
                },
                ..self.clone()
            }),
            _ => None,
        }
    }

    /// Every page of the round is applied: commit the watermark.
    pub fn commit(&self, now: DateTime<Utc>) -> Option<CursorRecord> {
        match &self.state {
            CursorState::Applying { delta_link, .. } => Some(CursorRecord {
                state: CursorState::Idle {
                    delta_link: delta_link.clone(),
                    committed_at: now,
                },
                ..self.clone()
            }),
            _ => None,
        }
    }

    /// Graph rejected the token: the next round reads everything.
    pub fn require_full(&self, reason: FullReason) -> CursorRecord {
        CursorRecord {
            state: CursorState::NeedsFull { reason },
            ..self.clone()
        }
    }

    /// Hand the round in progress over to run `run_id` (the run that read it failed; a new
    /// run continues it under its own id). `None` outside a round.
    pub fn adopt(&self, run_id: &str) -> Option<CursorRecord> {
        let mut next = self.clone();
        match &mut next.state {
            CursorState::InRound { run_id: r, .. } | CursorState::Applying { run_id: r, .. } => {
                *r = run_id.to_owned();
                Some(next)
            }
            _ => None,
        }
    }

    /// Whether a page of `cycle` still counts (it is not from an abandoned round).
    pub fn accepts_cycle(&self, cycle: u64) -> bool {
        cycle >= self.min_valid_cycle && cycle <= self.last_cycle
    }

    /// The round in progress, if any: (cycle, run id, mode).
    pub fn current_round(&self) -> Option<(u64, &str, RoundMode)> {
        match &self.state {
            CursorState::InRound {
                cycle,
                run_id,
                mode,
                ..
            }
            | CursorState::Applying {
                cycle,
                run_id,
                mode,
                ..
            } => Some((*cycle, run_id.as_str(), *mode)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn first_round_is_full_and_raises_the_valid_cycle() {
        let (rec, fresh) = CursorRecord::default().begin_round("r1");
        assert!(fresh);
        assert_eq!(rec.last_cycle, 1);
        assert_eq!(rec.min_valid_cycle, 1);
        assert!(matches!(
            rec.state,
            CursorState::InRound {
                mode: RoundMode::Full,
                next: ResumePoint::Initial,
                ..
            }
        ));
    }

    #[test]
    fn watermark_is_committed_only_after_applying() {
        let (rec, _) = CursorRecord::default().begin_round("r1");
        let rec = rec.checkpoint_next("n1".into()).unwrap();
        let rec = rec.checkpoint_last("d1".into()).unwrap();
        assert!(matches!(rec.state, CursorState::Applying { pages: 2, .. }));
        let idle = rec.commit(now()).unwrap();
        assert!(
            matches!(idle.state, CursorState::Idle { ref delta_link, .. } if delta_link == "d1")
        );
        let (next, fresh) = idle.begin_round("r2");
        assert!(fresh);
        assert!(matches!(
            next.state,
            CursorState::InRound { mode: RoundMode::Incremental, cycle: 2, ref next, .. } if *next == ResumePoint::Link("d1".into())
        ));
        assert_eq!(next.min_valid_cycle, 1);
    }

    #[test]
    fn begin_round_resumes_a_round_in_progress() {
        let (rec, _) = CursorRecord::default().begin_round("r1");
        let rec = rec.checkpoint_next("n1".into()).unwrap();
        let (again, fresh) = rec.begin_round("r2");
        assert!(!fresh);
        assert_eq!(again, rec);
    }

    #[test]
    fn expired_token_forces_full_round_that_invalidates_older_cycles() {
        let (rec, _) = CursorRecord::default().begin_round("r1");
        let rec = rec
            .checkpoint_last("d1".into())
            .unwrap()
            .commit(now())
            .unwrap();
        let (inc, _) = rec.begin_round("r2");
        let full = inc.require_full(FullReason::TokenExpired);
        let (round, _) = full.begin_round("r3");
        assert_eq!(round.last_cycle, 3);
        assert!(!round.accepts_cycle(2));
        assert!(round.accepts_cycle(3));
    }

    #[test]
    fn a_page_split_into_several_messages_advances_the_page_count_by_all_of_them() {
        let (rec, _) = CursorRecord::default().begin_round("r1");
        let rec = rec.checkpoint_next_by("n1".into(), 3).unwrap();
        assert!(matches!(
            rec.state,
            CursorState::InRound { next_page: 3, .. }
        ));
        let rec = rec.checkpoint_last_by("d1".into(), 2).unwrap();
        assert!(matches!(rec.state, CursorState::Applying { pages: 5, .. }));
    }

    #[test]
    fn a_reservation_is_kept_until_the_checkpoint_moves_past_it() {
        let (rec, _) = CursorRecord::default().begin_round("r1");
        let rec = rec.reserve(3).unwrap();
        assert!(matches!(
            rec.state,
            CursorState::InRound {
                next_page: 0,
                reserved: 3,
                ..
            }
        ));
        // Resumed after a crash: the re-read page used the 3 reserved numbers and 2 more.
        let rec = rec.checkpoint_next_by("n1".into(), 5).unwrap();
        assert!(matches!(
            rec.state,
            CursorState::InRound {
                next_page: 5,
                reserved: 0,
                ..
            }
        ));
        assert!(CursorRecord::default().reserve(2).is_none());
        // Records written before the field existed read as "nothing reserved".
        let json = serde_json::to_string(&rec)
            .unwrap()
            .replace(",\"reserved\":0", "");
        let back: CursorRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn a_round_in_progress_can_be_handed_to_another_run() {
        let (rec, _) = CursorRecord::default().begin_round("r1");
        let rec = rec.checkpoint_next("n1".into()).unwrap();
        let adopted = rec.adopt("r2").unwrap();
        assert_eq!(adopted.current_round().map(|(_, r, _)| r), Some("r2"));
        assert_eq!(adopted.adopt("r1").unwrap(), rec, "only the run id changes");
        let applying = adopted.checkpoint_last("d1".into()).unwrap();
        assert_eq!(
            applying
                .adopt("r3")
                .unwrap()
                .current_round()
                .map(|(_, r, _)| r),
            Some("r3")
        );
        assert!(CursorRecord::default().adopt("r2").is_none());
    }

    #[test]
    fn commit_is_refused_outside_applying() {
        assert!(CursorRecord::default().commit(now()).is_none());
        assert!(
            CursorRecord::default()
                .checkpoint_next("x".into())
                .is_none()
        );
    }
}
