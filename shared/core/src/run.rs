//! Sync runs: the activity-log entry of one fetch of one directory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Stream, TenantId};
use crate::page::RoundMode;

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Scheduled,
    Manual,
    Resync,
    /// Settings (filters, mapping, rules) changed: the mirror is projected again at once,
    /// without reading the directory.
    SettingsChanged,
    /// A manual import chosen from a preview.
    Import,
}

impl Trigger {
    /// The snake_case name (`scheduled`, `manual`, ...), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Manual => "manual",
            Trigger::Resync => "resync",
            Trigger::SettingsChanged => "settings_changed",
            Trigger::Import => "import",
        }
    }

    /// Started by a person ("sync now", an operator's resync, an import), not by the
    /// schedule: such a run is tried at once even while the connection needs reauthorization.
    pub fn is_manual(self) -> bool {
        !matches!(self, Trigger::Scheduled)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    /// Fetch is reading pages or reconcile is applying them.
    Running,
    Succeeded,
    /// In plain words, what went wrong and what to do. Nothing was deactivated.
    Failed {
        error: String,
    },
    /// The circuit breaker stopped the run before it changed any local user: it would have
    /// deactivated more than the connection's threshold. Waits for a confirm or a reject.
    Held {
        hold: BreakerHold,
    },
    /// An admin rejected a held run: nothing was applied, and the next run reads the whole
    /// directory again.
    Rejected {
        by: String,
        at: DateTime<Utc>,
    },
    /// The run did not start; `reason` says why and what to do (for example: the connection
    /// needs reauthorization).
    Skipped {
        reason: String,
    },
}

/// Why the circuit breaker held a run, and what it held.
///
/// A held run still applies what does not take access away (creations, updates,
/// reactivations, freezes) and, when they alone stay within the threshold, the deactivations
/// Graph reported for each user (`accountEnabled: false`, deletions): those leavers lose access
/// at once. It holds the deactivations concluded from what a read did not contain (users absent
/// from a full read), or every deactivation when the reported ones alone trip the threshold. An
/// empty read writes nothing at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerHold {
    /// Local users whose deactivation (or "disabled in directory") waits for a confirm.
    pub deactivations: u64,
    /// Local users active or pending before the run.
    pub active_before: u64,
    /// The threshold that tripped, in plain words ("more than 50 users", "more than 10 %").
    pub threshold: String,
    /// True when the directory read returned no users at all although we had some.
    pub empty_read: bool,
    /// When this run was held.
    pub held_at: DateTime<Utc>,
    /// When the question was first asked: the hold of the oldest held run this one replaced
    /// (a newer run's hold supersedes an older one), else `held_at`.
    #[serde(default)]
    pub held_since: Option<DateTime<Utc>>,
    /// Deactivations of accounts the directory reported disabled or deleted that the run
    /// applied despite the hold.
    #[serde(default)]
    pub applied_deactivations: u64,
}

impl BreakerHold {
    /// When the question was first asked.
    pub fn since(&self) -> DateTime<Utc> {
        self.held_since.unwrap_or(self.held_at)
    }

    /// How long the deactivations have been waiting, at `now`.
    pub fn held_for(&self, now: DateTime<Utc>) -> chrono::Duration {
        (now - self.since()).max(chrono::Duration::zero())
    }

    /// "held since 2026-11-23 10:00 UTC (for 2 d 3 h)", for people.
    pub fn describe_age(&self, now: DateTime<Utc>) -> String {
        format!(
            "held since {} (for {})",
            self.since().format("%Y-%m-%d %H:%M UTC"),
            plain_duration(self.held_for(now))
        )
    }
}

/// A duration for people: "45 min", "3 h 5 min", "2 d 3 h".
pub fn plain_duration(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, h) => format!("{h} h {mins} min"),
        (d, h) => format!("{d} d {h} h"),
    }
}

/// What a run did to the host product's users (the projection of the mirror through the
/// connection's filters, mapping and provisioning rules).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvisioningCounts {
    pub created: u64,
    /// Existing local users linked to a directory user by email.
    pub linked: u64,
    pub updated: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    /// Deleted in the directory: marked "disabled in directory".
    pub disabled_in_directory: u64,
    /// Stopped matching the filters: kept as they are, no longer updated.
    pub frozen: u64,
    pub unchanged: u64,
    /// Not imported (out of scope, guest, disabled, waiting for manual import...).
    pub skipped: u64,
    pub failed: u64,
    /// Deactivations the circuit breaker holds (not applied; a confirm applies them).
    pub held: u64,
}

/// Counts of what a run changed. Additive: pages add their counts as they are applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Entries ignored because a newer state was already applied (replays, late pages).
    pub skipped: u64,
    pub failed: u64,
    pub groups_created: u64,
    pub groups_updated: u64,
    pub groups_removed: u64,
    pub memberships_added: u64,
    pub memberships_removed: u64,
    pub pages_applied: u64,
    /// Store writes performed (conditional puts that landed).
    pub writes: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.created += o.created;
        self.updated += o.updated;
        self.deactivated += o.deactivated;
        self.reactivated += o.reactivated;
        self.removed += o.removed;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.groups_created += o.groups_created;
        self.groups_updated += o.groups_updated;
        self.groups_removed += o.groups_removed;
        self.memberships_added += o.memberships_added;
        self.memberships_removed += o.memberships_removed;
        self.pages_applied += o.pages_applied;
        self.writes += o.writes;
    }
}

/// Progress of one stream within a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamProgress {
    pub cycle: u64,
    pub mode: Option<RoundMode>,
    pub pages_fetched: u64,
    /// Known once the last page is fetched.
    pub pages_total: Option<u64>,
    pub committed: bool,
}

/// One activity-log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    pub run_id: String,
    pub tenant_id: TenantId,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub users: StreamProgress,
    pub groups: StreamProgress,
    pub counts: Counts,
    /// Graph requests fetch made for this run (includes retries).
    pub graph_requests: u64,
    /// What the run did to the host product's users (set once the projection ran).
    #[serde(default)]
    pub provisioning: ProvisioningCounts,
    /// The settings version the projection used.
    #[serde(default)]
    pub settings_version: Option<u64>,
    /// Who is projecting this run: one projection per run at a time.
    #[serde(default)]
    pub projection_claim: Option<ProjectionClaim>,
    /// The run that failed while reading the round this run finishes (a failed run keeps its
    /// own id and entry; the next run continues its round under a new id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
    /// What else the activity log tells about this run, in plain words (access restored after
    /// a reauthorization, a delta link abandoned for a full read...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A claim on a run's projection. A claim older than the caller's patience can be taken over
/// (its holder crashed); a projection is idempotent, so a takeover repeats no effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionClaim {
    pub token: String,
    pub at: DateTime<Utc>,
}

/// A new run id: time-ordered (`20261123T100000Z-1a2b3c4d`) so the activity log sorts
/// naturally, with eight random hex digits to keep it unique. Every kind of run (sync, import,
/// settings change) gets its id here.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    format!(
        "{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

impl SyncRun {
    pub fn new(run_id: String, tenant_id: TenantId, trigger: Trigger, now: DateTime<Utc>) -> Self {
        Self {
            run_id,
            tenant_id,
            trigger,
            started_at: now,
            finished_at: None,
            status: RunStatus::Running,
            users: StreamProgress::default(),
            groups: StreamProgress::default(),
            counts: Counts::default(),
            graph_requests: 0,
            provisioning: ProvisioningCounts::default(),
            settings_version: None,
            projection_claim: None,
            continues: None,
            notes: Vec::new(),
        }
    }

    pub fn stream_mut(&mut self, s: Stream) -> &mut StreamProgress {
        match s {
            Stream::Users => &mut self.users,
            Stream::Groups => &mut self.groups,
        }
    }

    pub fn stream(&self, s: Stream) -> &StreamProgress {
        match s {
            Stream::Users => &self.users,
            Stream::Groups => &self.groups,
        }
    }

    /// Finished runs never change again. A held run is not finished: it waits for a confirm
    /// or a reject.
    pub fn is_finished(&self) -> bool {
        !matches!(self.status, RunStatus::Running | RunStatus::Held { .. })
    }
}

/// A change to apply to a stored run, so concurrent reconcilers never overwrite each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunUpdate {
    AddCounts(Counts),
    AddGraphRequests(u64),
    PageFetched {
        stream: Stream,
        cycle: u64,
        mode: RoundMode,
        last: bool,
        page_seq: u32,
    },
    StreamCommitted(Stream),
    /// Add a line to the run's notes (once: the same text is not added twice).
    Note(String),
    /// The projection ran: set (not add) what it did to local users, so a repeated projection
    /// cannot double the counts.
    Provisioned {
        counts: ProvisioningCounts,
        settings_version: u64,
    },
    /// The circuit breaker held the run.
    Hold(BreakerHold),
    /// Take the projection of this run unless someone else holds a claim younger than
    /// `stale_after`. The caller compares the returned run's claim token with its own.
    ClaimProjection {
        token: String,
        at: DateTime<Utc>,
        stale_after: chrono::Duration,
    },
    Finish {
        status: RunStatus,
        at: DateTime<Utc>,
    },
}

impl RunUpdate {
    /// Apply to a run in memory (stores that cannot update atomically in place read, apply and
    /// write under their own lock or condition).
    pub fn apply(&self, run: &mut SyncRun) {
        match self {
            RunUpdate::AddCounts(c) => run.counts.add(c),
            RunUpdate::AddGraphRequests(n) => run.graph_requests += n,
            RunUpdate::PageFetched {
                stream,
                cycle,
                mode,
                last,
                page_seq,
            } => {
                let p = run.stream_mut(*stream);
                p.cycle = *cycle;
                p.mode = Some(*mode);
                p.pages_fetched = p.pages_fetched.max(u64::from(*page_seq) + 1);
                if *last {
                    p.pages_total = Some(u64::from(*page_seq) + 1);
                }
            }
            RunUpdate::StreamCommitted(s) => run.stream_mut(*s).committed = true,
            RunUpdate::Note(text) => {
                if !run.notes.contains(text) {
                    run.notes.push(text.clone());
                }
            }
            RunUpdate::Provisioned {
                counts,
                settings_version,
            } => {
                run.provisioning = *counts;
                run.settings_version = Some(*settings_version);
            }
            RunUpdate::ClaimProjection {
                token,
                at,
                stale_after,
            } => {
                let free = match &run.projection_claim {
                    None => true,
                    Some(c) => c.token == *token || *at - c.at > *stale_after,
                };
                if free {
                    run.projection_claim = Some(ProjectionClaim {
                        token: token.clone(),
                        at: *at,
                    });
                }
            }
            RunUpdate::Hold(hold) => {
                if !run.is_finished() {
                    run.status = RunStatus::Held { hold: hold.clone() };
                }
            }
            RunUpdate::Finish { status, at } => {
                if !run.is_finished() {
                    run.status = status.clone();
                    run.finished_at = Some(*at);
                }
            }
        }
    }
}
