//! Events derived from committed state: pure functions of what a store held before a write
//! and what it holds after. A store that records its own changes (the local program's SQLite
//! outbox, written in the write's transaction) calls them, so an event exists exactly when its
//! change was committed; the planning step calls the same functions, so both agree.

use chrono::{DateTime, Utc};

use crate::actions::{ActionRecord, Workflow};
use crate::events::{ChangeEvent, ChangeKind, directory_user_changes};
use crate::model::{
    AccountId, Connection, ConnectionStatus, Presence, StoredGroup, StoredMembership, StoredUser,
    TenantId,
};
use crate::run::{RunStatus, SyncRun};

/// The sequence of a run's `sync.*` events: a run starts, may be held, and finishes.
pub const RUN_STARTED: u64 = 1;
pub const RUN_HELD: u64 = 2;
pub const RUN_FINISHED: u64 = 3;

/// The `directory.user.*` event of a user write, if the write changed what a consumer sees.
pub fn directory_user_event(
    tenant: &TenantId,
    before: Option<&StoredUser>,
    after: &StoredUser,
) -> Option<ChangeEvent> {
    let was_active = before.is_some_and(|b| b.presence.is_present() && b.user.is_enabled());
    let kind = match (before, after.presence) {
        (None, Presence::Present) => ChangeKind::DirectoryUserCreated {},
        // A removal of an object never seen (a tombstone), or of one already removed.
        (None, Presence::Removed { .. }) => return None,
        (Some(b), Presence::Removed { .. }) => {
            if !b.presence.is_present() {
                return None;
            }
            ChangeKind::DirectoryUserRemoved {}
        }
        (Some(b), Presence::Present) => {
            if b.presence == after.presence && b.user == after.user {
                return None;
            }
            let now_active = after.user.is_enabled();
            if was_active && !now_active {
                ChangeKind::DirectoryUserDeactivated {}
            } else if !was_active && now_active {
                ChangeKind::DirectoryUserReactivated {}
            } else {
                ChangeKind::DirectoryUserUpdated {
                    changes: directory_user_changes(b, after),
                }
            }
        }
    };
    Some(ChangeEvent::new(
        tenant,
        after.user.id.clone(),
        after.version.sequence(),
        kind,
    ))
}

/// The `directory.group.*` event of a group write.
pub fn directory_group_event(
    tenant: &TenantId,
    before: Option<&StoredGroup>,
    after: &StoredGroup,
) -> Option<ChangeEvent> {
    let was_present = before.is_some_and(|b| b.presence.is_present());
    let kind = match (after.presence.is_present(), was_present) {
        (true, true) if before.is_some_and(|b| b.group == after.group) => return None,
        (true, true) => ChangeKind::DirectoryGroupUpdated {},
        (true, false) => ChangeKind::DirectoryGroupCreated {},
        (false, true) => ChangeKind::DirectoryGroupDeleted {},
        (false, false) => return None,
    };
    Some(ChangeEvent::new(
        tenant,
        after.group.id.clone(),
        after.version.sequence(),
        kind,
    ))
}

/// The `directory.membership.*` event of an edge write.
pub fn membership_event(
    tenant: &TenantId,
    before: Option<&StoredMembership>,
    after: &StoredMembership,
) -> Option<ChangeEvent> {
    let was_present = before.is_some_and(|b| b.present);
    if was_present == after.present {
        return None;
    }
    let (member_id, member_type) = (after.member.id.clone(), after.member.member_type);
    let kind = match after.present {
        true => ChangeKind::MembershipAdded {
            member_id,
            member_type,
        },
        false => ChangeKind::MembershipRemoved {
            member_id,
            member_type,
        },
    };
    Some(ChangeEvent::new(
        tenant,
        after.group_id.clone(),
        after.version.sequence(),
        kind,
    ))
}

/// The `sync.*` events of a run write (`before` is `None` for a new run), at `now`.
pub fn run_events(
    before: Option<&SyncRun>,
    after: &SyncRun,
    account: Option<AccountId>,
    now: DateTime<Utc>,
) -> Vec<ChangeEvent> {
    let run_id = after.run_id.clone();
    let event = |sequence, kind, at| {
        ChangeEvent::new(&after.tenant_id, run_id.clone(), sequence, kind)
            .account(account.clone())
            .at(at)
    };
    let Some(before) = before else {
        return vec![event(
            RUN_STARTED,
            ChangeKind::SyncStarted {
                run_id: run_id.clone(),
                trigger: after.trigger.as_str().to_owned(),
            },
            after.started_at,
        )];
    };
    let mut out = Vec::new();
    let was_held = matches!(before.status, RunStatus::Held { .. });
    match &after.status {
        RunStatus::Held { hold } if !was_held => out.push(event(
            RUN_HELD,
            ChangeKind::SyncHeld {
                run_id: run_id.clone(),
                deactivations_held: hold.deactivations,
                deactivations_applied: hold.applied_deactivations,
                held_since: hold.since(),
                held_for_seconds: hold.held_for(now).num_seconds(),
            },
            now,
        )),
        RunStatus::Succeeded if before.status != RunStatus::Succeeded => out.push(event(
            RUN_FINISHED,
            ChangeKind::SyncCompleted {
                run_id: run_id.clone(),
            },
            after.finished_at.unwrap_or(now),
        )),
        RunStatus::Failed { error } if !matches!(before.status, RunStatus::Failed { .. }) => out
            .push(event(
                RUN_FINISHED,
                ChangeKind::SyncFailed {
                    run_id: run_id.clone(),
                    error: error.clone(),
                },
                after.finished_at.unwrap_or(now),
            )),
        _ => {}
    }
    out
}

/// The `connection.*` event of a connection write: when its status changes kind. The
/// sequence is the time of the change in microseconds (a connection record has no version).
pub fn connection_event(
    before: Option<&Connection>,
    after: &Connection,
    now: DateTime<Utc>,
) -> Option<ChangeEvent> {
    let same_kind = before.is_some_and(|b| {
        std::mem::discriminant(&b.status) == std::mem::discriminant(&after.status)
    });
    if same_kind {
        return None;
    }
    let kind = match &after.status {
        ConnectionStatus::Connected => ChangeKind::ConnectionConnected {},
        ConnectionStatus::NeedsReauthorization { reason, retry } => {
            ChangeKind::ConnectionNeedsReauthorization {
                reason: reason.clone(),
                next_attempt_at: retry.next_attempt_at,
            }
        }
        ConnectionStatus::Disconnected => ChangeKind::ConnectionDisconnected {},
    };
    let sequence = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    Some(
        ChangeEvent::new(&after.tenant_id, after.tenant_id.0.clone(), sequence, kind)
            .account(Some(after.account_id.clone()))
            .at(now),
    )
}

/// What an `action.updated` event says about `r`.
fn action_payload(r: &ActionRecord) -> ChangeKind {
    ChangeKind::ActionUpdated {
        action_id: r.id.clone(),
        action: r.kind().as_str().to_string(),
        status: r.status.as_str().to_string(),
        user_id: r.target.user_id.clone(),
    }
}

/// The `action.updated` event of an action write: a new action, or one whose status (or
/// another field the event carries) changed. A write that only adds history, attempts or a
/// request id gives none. The sequence is the record's revision, which every stored change
/// bumps, so a replay of the same write has the same id.
pub fn action_event(before: Option<&ActionRecord>, after: &ActionRecord) -> Option<ChangeEvent> {
    let kind = action_payload(after);
    if before.is_some_and(|b| action_payload(b) == kind) {
        return None;
    }
    Some(
        ChangeEvent::new(&after.tenant_id, after.id.clone(), after.rev, kind)
            .account(Some(after.account_id.clone())),
    )
}

/// What a `workflow.updated` event says about `w`: ids and words, never the user's name.
fn workflow_payload(w: &Workflow) -> ChangeKind {
    ChangeKind::WorkflowUpdated {
        workflow_id: w.id.clone(),
        template: w.template.as_str().to_string(),
        status: w.status.as_str().to_string(),
    }
}

/// The `workflow.updated` event of a workflow write: a new workflow, or one whose status
/// changed (a step moving on inside a running workflow gives none). Sequence: the revision.
pub fn workflow_event(before: Option<&Workflow>, after: &Workflow) -> Option<ChangeEvent> {
    let kind = workflow_payload(after);
    if before.is_some_and(|b| workflow_payload(b) == kind) {
        return None;
    }
    Some(
        ChangeEvent::new(&after.tenant_id, after.id.clone(), after.rev, kind)
            .account(Some(after.account_id.clone())),
    )
}

/// One committed write of a store item that events are derived from, in model terms: what
/// the item held before (`None` when it was new) and what it holds after. A store whose
/// writes are reported after the fact (the DynamoDB table's stream on AWS) decodes each write
/// into one of these and derives its events with [`CommittedChange::events`], so AWS and the
/// local outbox derive the same events from the same writes.
#[derive(Clone, Debug, PartialEq)]
pub enum CommittedChange {
    User {
        tenant: TenantId,
        before: Option<StoredUser>,
        after: StoredUser,
    },
    Group {
        tenant: TenantId,
        before: Option<StoredGroup>,
        after: StoredGroup,
    },
    Membership {
        tenant: TenantId,
        before: Option<StoredMembership>,
        after: StoredMembership,
    },
    HostUser {
        before: Option<crate::provision::LocalUser>,
        after: crate::provision::LocalUser,
    },
    Run {
        before: Option<SyncRun>,
        after: SyncRun,
    },
    Connection {
        before: Option<Connection>,
        after: Connection,
    },
    /// An outbound webhook endpoint (its `webhook_endpoint.disabled`).
    OutboundEndpoint {
        before: Option<crate::outbound::OutboundEndpoint>,
        after: crate::outbound::OutboundEndpoint,
    },
    Action {
        before: Option<Box<ActionRecord>>,
        after: Box<ActionRecord>,
    },
    Workflow {
        before: Option<Box<Workflow>>,
        after: Box<Workflow>,
    },
}

impl CommittedChange {
    /// The tenant of a run write, whose `sync.*` events carry the account of the tenant's
    /// connection (the caller looks it up); `None` for every other write.
    pub fn run_tenant(&self) -> Option<&TenantId> {
        match self {
            CommittedChange::Run { after, .. } => Some(&after.tenant_id),
            _ => None,
        }
    }

    /// The events of this write, committed at `at`: the functions above, with events that
    /// carry no time of their own stamped with `at`. `account` is used by run writes only
    /// (see [`Self::run_tenant`]).
    pub fn events(&self, account: Option<AccountId>, at: DateTime<Utc>) -> Vec<ChangeEvent> {
        let mut out: Vec<ChangeEvent> = match self {
            CommittedChange::User {
                tenant,
                before,
                after,
            } => directory_user_event(tenant, before.as_ref(), after)
                .into_iter()
                .collect(),
            CommittedChange::Group {
                tenant,
                before,
                after,
            } => directory_group_event(tenant, before.as_ref(), after)
                .into_iter()
                .collect(),
            CommittedChange::Membership {
                tenant,
                before,
                after,
            } => membership_event(tenant, before.as_ref(), after)
                .into_iter()
                .collect(),
            CommittedChange::HostUser { before, after } => {
                crate::events::host_user_change(before.as_ref(), after)
                    .into_iter()
                    .collect()
            }
            CommittedChange::Run { before, after } => {
                run_events(before.as_ref(), after, account, at)
            }
            CommittedChange::Connection { before, after } => {
                connection_event(before.as_ref(), after, at)
                    .into_iter()
                    .collect()
            }
            CommittedChange::OutboundEndpoint { before, after } => {
                crate::outbound::endpoint_event(before.as_ref(), after)
                    .into_iter()
                    .collect()
            }
            CommittedChange::Action { before, after } => {
                action_event(before.as_deref(), after).into_iter().collect()
            }
            CommittedChange::Workflow { before, after } => workflow_event(before.as_deref(), after)
                .into_iter()
                .collect(),
        };
        for e in &mut out {
            if e.occurred_at == DateTime::<Utc>::UNIX_EPOCH {
                e.occurred_at = at;
            }
        }
        out
    }
}

/// The services' [`EventSink`](crate::ports::EventSink) where the stores derive every event
/// from their own commits (the local outbox, the DynamoDB stream's publisher on AWS): the
/// copies the services make while planning are dropped here, so each change is published
/// once, from the committed write, and none is published before (or without) its write.
pub struct FromCommitsOnly;

#[async_trait::async_trait]
impl crate::ports::EventSink for FromCommitsOnly {
    async fn publish(&self, _events: &[ChangeEvent]) -> Result<(), crate::error::EventError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DirectoryUser, RemovalReason, Version};

    fn user(enabled: bool, title: &str, v: u32) -> StoredUser {
        StoredUser {
            user: DirectoryUser {
                id: "u1".into(),
                account_enabled: Some(enabled),
                job_title: Some(title.into()),
                ..Default::default()
            },
            presence: Presence::Present,
            version: Version::new(1, v),
        }
    }

    #[test]
    fn a_user_write_names_its_transition() {
        let t = TenantId::new("t");
        let a = user(true, "a", 1);
        let ty = |b: Option<&StoredUser>, a: &StoredUser| {
            directory_user_event(&t, b, a).map(|e| e.event_type())
        };
        assert_eq!(ty(None, &a), Some("directory.user.created"));
        assert_eq!(ty(Some(&a), &user(true, "a", 2)), None, "version only");
        assert_eq!(
            ty(Some(&a), &user(true, "b", 2)),
            Some("directory.user.updated")
        );
        assert_eq!(
            ty(Some(&a), &user(false, "a", 2)),
            Some("directory.user.deactivated")
        );
        let mut gone = user(true, "a", 3);
        gone.presence = Presence::Removed {
            reason: RemovalReason::SoftDeleted,
        };
        assert_eq!(ty(Some(&a), &gone), Some("directory.user.removed"));
        assert_eq!(ty(Some(&gone), &gone), None);
        assert_eq!(ty(Some(&gone), &a), Some("directory.user.reactivated"));
        assert_eq!(
            directory_user_event(&t, None, &a).unwrap().sequence,
            Version::new(1, 1).sequence()
        );
    }

    #[tokio::test]
    async fn an_action_write_gives_an_event_when_its_status_changes_with_its_revision() {
        use crate::actions::ActionKind;
        use crate::actions::testing::{SALES, add_ann_to, req, world};

        let w = world(&[ActionKind::AddGroupMember]).await;
        let a = crate::services::actions::submit_action(&w.deps, req("k1", add_ann_to(SALES)))
            .await
            .unwrap();
        let created = action_event(None, &a).unwrap();
        assert_eq!(created.event_type(), "action.updated");
        assert_eq!(created.sequence, a.rev);
        assert_eq!(created.account_id, Some(a.account_id.clone()));

        // More history and attempts, same status: nothing a consumer sees.
        let mut noted = a.clone();
        noted.rev += 1;
        noted.attempts += 1;
        noted.graph_request_id = Some("req-1".into());
        assert_eq!(action_event(Some(&a), &noted), None);

        let mut cancelled = noted.clone();
        cancelled
            .cancel("alice@host", crate::actions::testing::t0())
            .unwrap();
        cancelled.rev += 1;
        let e = action_event(Some(&noted), &cancelled).unwrap();
        assert!(
            matches!(&e.kind, ChangeKind::ActionUpdated { status, .. } if status == "cancelled")
        );
        assert_eq!(e.sequence, cancelled.rev);
        // A replay of the same write has the same id; the next write another.
        assert_eq!(e.id(), action_event(Some(&noted), &cancelled).unwrap().id());
        assert_ne!(e.id(), created.id());
    }

    #[test]
    fn a_workflow_write_gives_an_event_when_its_status_changes() {
        use crate::actions::workflow::WorkflowOrigin;
        use crate::actions::{Template, WorkflowParams, WorkflowStatus};

        let at = chrono::DateTime::from_timestamp(1_796_115_600, 0).unwrap();
        let wf = Workflow {
            id: "wf-1".into(),
            tenant_id: TenantId::new("t"),
            account_id: AccountId("acct".into()),
            template: Template::Offboarding,
            params: WorkflowParams {
                user: "ann@contoso.com".into(),
                groups: vec![],
                apps: vec![],
                at: None,
            },
            requested_by: "hr@host".into(),
            origin: WorkflowOrigin::Cli,
            created_at: at,
            steps: vec![],
            status: WorkflowStatus::Running,
            finished_at: None,
            rev: 0,
        };
        let created = workflow_event(None, &wf).unwrap();
        assert_eq!(created.event_type(), "workflow.updated");
        assert_eq!(created.sequence, 0);
        let mut moved = wf.clone();
        moved.rev = 1;
        assert_eq!(workflow_event(Some(&wf), &moved), None, "same status");
        let mut done = moved.clone();
        done.rev = 2;
        done.status = WorkflowStatus::Completed;
        done.finished_at = Some(at);
        let e = workflow_event(Some(&moved), &done).unwrap();
        assert!(
            matches!(&e.kind, ChangeKind::WorkflowUpdated { status, template, .. }
            if status == "completed" && template == "offboarding")
        );
        assert_eq!(e.sequence, 2);
        // Derived the same through the committed write a store reports.
        let change = CommittedChange::Workflow {
            before: Some(Box::new(moved)),
            after: Box::new(done),
        };
        assert_eq!(
            change.events(None, at).first().map(|e| e.id()),
            Some(e.id())
        );
    }
}
