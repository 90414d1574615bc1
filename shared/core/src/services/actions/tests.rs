//! Service tests of the write half over the in-memory adapters and the in-memory directory
//! writer (which counts calls and effects per kind, so "exactly one effect" is checked).

use chrono::Duration;

use super::*;
use crate::actions::kind::{ActionKind, ActionSpec};
use crate::actions::record::ActionStatus;
use crate::actions::testing::*;
use crate::actions::workflow::{Template, WorkflowOrigin, WorkflowParams, WorkflowStatus};
use crate::directory_write::{GrantedPermissions, WriteError, WriteKind};
use crate::model::{MemberRef, MemberType, StoredMembership, Version};
use crate::ports::{MirrorStore, SettingsStore};

#[tokio::test]
async fn the_same_key_gives_one_directory_write_and_the_same_answer() {
    let w = world(&[ActionKind::AddGroupMember]).await;
    let first = submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap();
    assert_eq!(first.status, ActionStatus::Queued);
    let again = submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    drain(&w, 3).await;
    let t = tenant();
    assert_eq!(w.writer.calls(&t, WriteKind::AddGroupMember), 1);
    let done = get_action(&w.deps, &account(), &t, &first.id)
        .await
        .unwrap();
    assert_eq!(
        done.status,
        ActionStatus::Succeeded {
            already_in_effect: false
        }
    );
    // After it ran, the same key still answers with the same action and no new write.
    let later = submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap();
    assert_eq!(later.id, first.id);
    assert_eq!(later.status, done.status);
    drain(&w, 1).await;
    assert_eq!(w.writer.calls(&t, WriteKind::AddGroupMember), 1);
    assert_eq!(w.writer.members(&t, SALES), Some(vec![ANN.to_string()]));
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let w = world(&[ActionKind::AddGroupMember, ActionKind::RevokeSessions]).await;
    submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap();
    let e = submit_action(
        &w.deps,
        req(
            "k1",
            ActionSpec::RevokeSessions {
                user: "ann@contoso.com".into(),
            },
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ActionError::KeyReused { .. }), "{e}");
}

#[tokio::test]
async fn a_write_lands_in_the_mirror_at_once() {
    let w = world(&[ActionKind::AddGroupMember]).await;
    let a = submit_action(&w.deps, req("k1", add_ann_to(SALES)))
        .await
        .unwrap();
    drain(&w, 1).await;
    let edges = w
        .store
        .get_memberships(&tenant(), &[(SALES.to_string(), ANN.to_string())])
        .await
        .unwrap();
    assert!(edges.first().is_some_and(|e| e.present), "{edges:?}");
    // Its events are the stores' (derived from the committed writes), not the service's.
    let stored = w.deps.actions.get_action(&tenant(), &a.id).await.unwrap();
    let event = crate::committed::action_event(Some(&a), stored.as_ref().unwrap()).unwrap();
    assert!(matches!(
        &event.kind,
        crate::events::ChangeKind::ActionUpdated { action_id, status, .. } if *action_id == a.id && status == "succeeded"
    ));
}

#[tokio::test]
async fn a_provisional_write_is_replaced_by_the_next_round() {
    let w = world(&[ActionKind::AddGroupMember]).await;
    submit_action(&w.deps, req("k1", add_ann_to(SALES)))
        .await
        .unwrap();
    drain(&w, 1).await;
    // The next delta round (cycle 1 + 1) reports the edge gone: it wins over the provisional.
    let later = StoredMembership {
        group_id: SALES.into(),
        member: MemberRef {
            id: ANN.into(),
            member_type: MemberType::User,
        },
        present: false,
        version: Version::new(1, 0),
    };
    // Cycle 0 is what the provisional write was versioned after (no cursor yet).
    assert_eq!(
        w.store.put_memberships(&tenant(), &[later]).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn a_second_action_on_the_same_object_in_one_round_shows_in_the_mirror_too() {
    // Add, then remove, before the next sync: the mirror must show the member gone (the second
    // provisional write goes above the first, in the same cycle).
    let w = world(&[ActionKind::AddGroupMember, ActionKind::RemoveGroupMember]).await;
    submit_action(&w.deps, req("k1", add_ann_to(SALES)))
        .await
        .unwrap();
    drain(&w, 1).await;
    let edge = || async {
        w.store
            .get_memberships(&tenant(), &[(SALES.into(), ANN.into())])
            .await
            .unwrap()
            .pop()
            .expect("the provisional edge")
    };
    assert!(edge().await.present);
    submit_action(
        &w.deps,
        req(
            "k2",
            ActionSpec::RemoveGroupMember {
                user: "ann@contoso.com".into(),
                group: SALES.into(),
            },
        ),
    )
    .await
    .unwrap();
    drain(&w, 1).await;
    let removed = edge().await;
    assert!(
        !removed.present,
        "the mirror still shows the removed member"
    );
    // Still below the sweep of its cycle and below the next round.
    assert!(removed.version < Version::sweep(removed.version.cycle));
    assert!(removed.version < Version::new(removed.version.cycle + 1, 0));
}

#[tokio::test]
async fn actions_fail_before_the_directory_when_not_enabled_or_not_granted() {
    let w = world(&[]).await;
    let e = submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not enabled"), "{e}");
    let w = world(&[ActionKind::AddGroupMember]).await;
    w.writer.grant(
        &tenant(),
        GrantedPermissions::new(["User.Read.All", "GroupMember.Read.All"]),
    );
    let e = submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("GroupMember.ReadWrite.All"), "{text}");
    assert_eq!(w.writer.total_calls(), 0);
}

#[tokio::test]
async fn unknown_ambiguous_and_non_target_names_are_refused_with_nothing_done() {
    let w = world(&[ActionKind::AddGroupMember]).await;
    let cases = [
        (add_ann_to("Nope"), "no group Nope"),
        (add_ann_to("All staff"), "distribution list"),
        (
            ActionSpec::AddGroupMember {
                user: "carl@contoso.com".into(),
                group: "Sales".into(),
            },
            "no user carl@contoso.com",
        ),
    ];
    for (i, (spec, words)) in cases.into_iter().enumerate() {
        let e = submit_action(&w.deps, req(&format!("k{i}"), spec))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(words), "{e}");
    }
    w.store
        .put_groups(
            &tenant(),
            &[group(
                "5a1e5000-0000-4000-8000-0000000000ff",
                "sales",
                false,
            )],
        )
        .await
        .unwrap();
    let e = submit_action(&w.deps, req("amb", add_ann_to("SALES")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ActionError::Target(crate::actions::resolve::TargetError::AmbiguousGroup { .. })
        ),
        "{e}"
    );
    assert!(w.queue.is_empty());
    assert_eq!(w.writer.total_calls(), 0);
    // A failed submit leaves its key free: the fixed request with the same key runs.
    let ok = submit_action(&w.deps, req("k0", add_ann_to(SALES)))
        .await
        .unwrap();
    assert_eq!(ok.status, ActionStatus::Queued);
}

#[tokio::test]
async fn another_account_cannot_act_on_the_tenant() {
    let w = world(&[ActionKind::AddGroupMember]).await;
    let mut r = req("k1", add_ann_to("Sales"));
    r.account = AccountId("acct-b".into());
    let e = submit_action(&w.deps, r).await.unwrap_err();
    assert!(matches!(e, ActionError::UnknownConnection { .. }), "{e}");
    let a = submit_action(&w.deps, req("k1", add_ann_to("Sales")))
        .await
        .unwrap();
    let e = get_action(&w.deps, &AccountId("acct-b".into()), &tenant(), &a.id)
        .await
        .unwrap_err();
    assert!(matches!(e, ActionError::UnknownConnection { .. }), "{e}");
}

#[tokio::test]
async fn sensitive_actions_wait_for_another_person_and_expire() {
    let w = world(&[ActionKind::BlockSignIn]).await;
    let block = ActionSpec::BlockSignIn {
        user: "bob@contoso.com".into(),
    };
    let a = submit_action(&w.deps, req("k1", block.clone()))
        .await
        .unwrap();
    assert!(matches!(a.status, ActionStatus::PendingApproval { .. }));
    assert!(w.queue.is_empty(), "nothing runs before the approval");
    let decide = |by: &str, id: &str| DecideRequest {
        account: account(),
        tenant: tenant(),
        action_id: id.to_string(),
        decision: Decision::Approve,
        by: by.into(),
        comment: None,
    };
    let e = decide_action(&w.deps, decide("ALICE@host", &a.id))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot approve"), "{e}");
    let ok = decide_action(&w.deps, decide("carol@host", &a.id))
        .await
        .unwrap();
    assert_eq!(ok.status, ActionStatus::Queued);
    drain(&w, 2).await;
    assert_eq!(w.writer.user_enabled(&tenant(), BOB), Some(false));
    assert_eq!(w.writer.calls(&tenant(), WriteKind::BlockSignIn), 1);

    // A second request expires after 72 hours without a decision.
    let b = submit_action(
        &w.deps,
        req(
            "k2",
            ActionSpec::BlockSignIn {
                user: "ann@contoso.com".into(),
            },
        ),
    )
    .await
    .unwrap();
    w.clock.advance(Duration::hours(72));
    assert_eq!(expire_overdue(&w.deps, &tenant()).await.unwrap(), 1);
    let gone = get_action(&w.deps, &account(), &tenant(), &b.id)
        .await
        .unwrap();
    assert_eq!(gone.status, ActionStatus::Expired);
    let e = decide_action(&w.deps, decide("carol@host", &b.id))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("expired") || e.to_string().contains("not waiting"),
        "{e}"
    );
    assert_eq!(w.writer.calls(&tenant(), WriteKind::BlockSignIn), 1);
}

#[tokio::test]
async fn a_password_reset_returns_its_password_once_to_its_requester() {
    let w = world(&[ActionKind::ResetPassword]).await;
    let a = submit_action(
        &w.deps,
        req(
            "k1",
            ActionSpec::ResetPassword {
                user: "bob@contoso.com".into(),
            },
        ),
    )
    .await
    .unwrap();
    decide_action(
        &w.deps,
        DecideRequest {
            account: account(),
            tenant: tenant(),
            action_id: a.id.clone(),
            decision: Decision::Approve,
            by: "carol@host".into(),
            comment: None,
        },
    )
    .await
    .unwrap();
    // The executor never runs it (it would have nobody to show the password to).
    assert!(w.queue.is_empty());
    let not_yet = execute_action(&w.deps, &tenant(), &a.id, None)
        .await
        .unwrap();
    assert!(matches!(not_yet, ExecuteOutcome::NotReady(_)));
    let e = execute_action(&w.deps, &tenant(), &a.id, Some("carol@host"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("alice@host"), "{e}");
    let ExecuteOutcome::Done(done) = execute_action(&w.deps, &tenant(), &a.id, Some("alice@host"))
        .await
        .unwrap()
    else {
        panic!("not run")
    };
    let password = done.temporary_password.expect("password shown once");
    assert_eq!(password.expose().len(), crate::actions::password::LENGTH);
    let stored = serde_json::to_string(&done.record).unwrap();
    assert!(
        !stored.contains(password.expose()),
        "the record never holds the password"
    );
    let event = crate::committed::action_event(None, &done.record).unwrap();
    assert!(
        !serde_json::to_string(&event)
            .unwrap()
            .contains(password.expose())
    );
    let again = execute_action(&w.deps, &tenant(), &a.id, Some("alice@host"))
        .await
        .unwrap();
    assert!(matches!(again, ExecuteOutcome::AlreadyFinal(_)));
    assert_eq!(w.writer.password_resets(&tenant(), BOB), 1);
}

#[tokio::test]
async fn throttling_requeues_the_action_and_pauses_the_tenant() {
    let w = world(&[ActionKind::RevokeSessions]).await;
    w.writer.fail_next(
        WriteKind::RevokeSessions,
        WriteError::Throttled {
            retry_after: Some(std::time::Duration::from_millis(10)),
            request_id: Some("req-429".into()),
        },
    );
    let a = submit_action(
        &w.deps,
        req("k1", ActionSpec::RevokeSessions { user: ANN.into() }),
    )
    .await
    .unwrap();
    let first = execute_action(&w.deps, &tenant(), &a.id, None)
        .await
        .unwrap();
    let ExecuteOutcome::RetryLater { record, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(record.status, ActionStatus::Queued);
    let second = execute_action(&w.deps, &tenant(), &a.id, None)
        .await
        .unwrap();
    assert!(matches!(second, ExecuteOutcome::Done(_)), "{second:?}");
    let done = get_action(&w.deps, &account(), &tenant(), &a.id)
        .await
        .unwrap();
    assert_eq!(done.attempts, 2);
    assert_eq!(
        done.status,
        ActionStatus::Succeeded {
            already_in_effect: false
        }
    );
}

#[tokio::test]
async fn a_permanent_failure_is_plain_and_final_and_can_be_retried() {
    let w = world(&[ActionKind::ResetPassword]).await;
    w.writer.set_password_reset_role(&tenant(), false);
    let mut settings = w.store.get_settings(&tenant()).await.unwrap().unwrap();
    settings.actions.approval_required.clear();
    settings.version = 2;
    w.store.put_settings(&tenant(), &settings, 1).await.unwrap();
    let a = submit_action(
        &w.deps,
        req("k1", ActionSpec::ResetPassword { user: ANN.into() }),
    )
    .await
    .unwrap();
    let ExecuteOutcome::Done(done) = execute_action(&w.deps, &tenant(), &a.id, Some("alice@host"))
        .await
        .unwrap()
    else {
        panic!()
    };
    let ActionStatus::Failed { reason, retryable } = &done.record.status else {
        panic!("{:?}", done.record.status)
    };
    assert!(!retryable);
    assert!(reason.contains("User Administrator"), "{reason}");
    assert!(done.temporary_password.is_none());
    w.writer.set_password_reset_role(&tenant(), true);
    let r = retry_action(&w.deps, &account(), &tenant(), &a.id, "alice@host")
        .await
        .unwrap();
    assert_eq!(r.status, ActionStatus::Approved);
    let ExecuteOutcome::Done(done) = execute_action(&w.deps, &tenant(), &a.id, Some("alice@host"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(done.record.status, ActionStatus::Succeeded { .. }));
}

#[tokio::test]
async fn already_in_effect_counts_as_success() {
    let w = world(&[ActionKind::RemoveGroupMember]).await;
    let a = submit_action(
        &w.deps,
        req(
            "k1",
            ActionSpec::RemoveGroupMember {
                user: ANN.into(),
                group: SALES.into(),
            },
        ),
    )
    .await
    .unwrap();
    drain(&w, 1).await;
    let done = get_action(&w.deps, &account(), &tenant(), &a.id)
        .await
        .unwrap();
    assert_eq!(
        done.status,
        ActionStatus::Succeeded {
            already_in_effect: true
        }
    );
}

#[tokio::test]
async fn audit_trail_lists_per_connection_and_per_user_with_pages() {
    let w = world(&[ActionKind::RevokeSessions]).await;
    for i in 0..5 {
        let user = if i % 2 == 0 { ANN } else { BOB };
        submit_action(
            &w.deps,
            req(
                &format!("k{i}"),
                ActionSpec::RevokeSessions { user: user.into() },
            ),
        )
        .await
        .unwrap();
        w.clock.advance(Duration::seconds(1));
    }
    let all = ActionFilter::default();
    let p1 = list_actions(&w.deps, &account(), &tenant(), &all, None, 2)
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.items[0].key, "k4", "newest first");
    let p2 = list_actions(&w.deps, &account(), &tenant(), &all, p1.next.as_deref(), 2)
        .await
        .unwrap();
    let p3 = list_actions(&w.deps, &account(), &tenant(), &all, p2.next.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 1);
    assert!(p3.next.is_none());
    let ann = ActionFilter {
        user_id: Some(ANN.into()),
        status: None,
    };
    let only_ann = list_actions(&w.deps, &account(), &tenant(), &ann, None, 50)
        .await
        .unwrap();
    assert_eq!(only_ann.items.len(), 3);
    let r = &only_ann.items[0];
    assert_eq!(r.requested_by, "alice@host");
    assert!(!r.history.is_empty());
}

#[tokio::test]
async fn offboarding_at_the_end_date_runs_its_steps_in_order() {
    let mut w = world(&[
        ActionKind::RevokeSessions,
        ActionKind::RemoveAppRole,
        ActionKind::RemoveGroupMember,
        ActionKind::BlockSignIn,
        ActionKind::AddGroupMember,
        ActionKind::AssignAppRole,
    ])
    .await;
    workflows_shared(&mut w);
    // Ann is in Sales (mirror and directory) and assigned to the app.
    submit_action(&w.deps, req("pre1", add_ann_to(SALES)))
        .await
        .unwrap();
    submit_action(
        &w.deps,
        req(
            "pre2",
            ActionSpec::AssignAppRole {
                user: ANN.into(),
                service_principal_id: APP.into(),
                app_role_id: None,
            },
        ),
    )
    .await
    .unwrap();
    drain(&w, 1).await;
    let end = t0() + Duration::days(3);
    let wf = start_workflow(
        &w.deps,
        StartWorkflow {
            account: account(),
            tenant: tenant(),
            template: Template::Offboarding,
            params: WorkflowParams {
                user: "ann@contoso.com".into(),
                groups: vec![],
                apps: vec![],
                at: Some(end),
            },
            requested_by: "hr@host".into(),
            origin: WorkflowOrigin::Cli,
            key: Some("offboard-ann".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(wf.status, WorkflowStatus::Scheduled { at: end });
    assert_eq!(run_due_workflows(&w.deps, 10).await.unwrap(), 0);
    w.clock.advance(Duration::days(3));
    assert_eq!(run_due_workflows(&w.deps, 10).await.unwrap(), 1);
    drain(&w, 2).await;
    let wf = get_workflow(&w.deps, &account(), &tenant(), &wf.id)
        .await
        .unwrap();
    // Block sign-in waits for an approver by default.
    let WorkflowStatus::WaitingApproval { action_id } = &wf.status else {
        panic!("{:?}", wf.status)
    };
    decide_action(
        &w.deps,
        DecideRequest {
            account: account(),
            tenant: tenant(),
            action_id: action_id.clone(),
            decision: Decision::Approve,
            by: "it@host".into(),
            comment: None,
        },
    )
    .await
    .unwrap();
    drain(&w, 1).await;
    let wf = get_workflow(&w.deps, &account(), &tenant(), &wf.id)
        .await
        .unwrap();
    assert_eq!(wf.status, WorkflowStatus::Completed, "{wf:#?}");
    let t = tenant();
    assert_eq!(w.writer.user_enabled(&t, ANN), Some(false));
    assert_eq!(w.writer.members(&t, SALES), Some(vec![]));
    assert_eq!(w.writer.calls(&t, WriteKind::RevokeSessions), 1);
    assert_eq!(w.writer.applied(&t, WriteKind::RemoveAppRole), 1);
    assert_eq!(w.writer.applied(&t, WriteKind::RemoveGroupMember), 1);
    // Running the engine again changes nothing.
    advance_workflow(&w.deps, &t, &wf.id).await.unwrap();
    drain(&w, 1).await;
    assert_eq!(w.writer.calls(&t, WriteKind::BlockSignIn), 1);
}

#[tokio::test]
async fn a_failed_step_stops_the_workflow_and_retry_continues_it() {
    let mut w = world(&[ActionKind::AddGroupMember]).await;
    workflows_shared(&mut w);
    w.writer.fail_next(
        WriteKind::AddGroupMember,
        WriteError::Permanent {
            status: 400,
            code: "Request_BadRequest".into(),
            message: "nope".into(),
            request_id: None,
        },
    );
    let wf = start_workflow(
        &w.deps,
        StartWorkflow {
            account: account(),
            tenant: tenant(),
            template: Template::Onboarding,
            params: WorkflowParams {
                user: BOB.into(),
                groups: vec!["Sales".into()],
                apps: vec![],
                at: None,
            },
            requested_by: "hr@host".into(),
            origin: WorkflowOrigin::Cli,
            key: None,
        },
    )
    .await
    .unwrap();
    drain(&w, 1).await;
    let failed = get_workflow(&w.deps, &account(), &tenant(), &wf.id)
        .await
        .unwrap();
    let WorkflowStatus::Failed { reason, .. } = &failed.status else {
        panic!("{:?}", failed.status)
    };
    assert!(reason.contains("nope"), "{reason}");
    retry_workflow(&w.deps, &account(), &tenant(), &wf.id)
        .await
        .unwrap();
    drain(&w, 1).await;
    let done = get_workflow(&w.deps, &account(), &tenant(), &wf.id)
        .await
        .unwrap();
    assert_eq!(done.status, WorkflowStatus::Completed);
    assert_eq!(
        w.writer.members(&tenant(), SALES),
        Some(vec![BOB.to_string()])
    );
}

#[tokio::test]
async fn a_workflow_for_an_unknown_user_fails_at_once() {
    let mut w = world(&[ActionKind::RevokeSessions]).await;
    workflows_shared(&mut w);
    let e = start_workflow(
        &w.deps,
        StartWorkflow {
            account: account(),
            tenant: tenant(),
            template: Template::LostDevice,
            params: WorkflowParams {
                user: "nobody@contoso.com".into(),
                groups: vec![],
                apps: vec![],
                at: None,
            },
            requested_by: "hr@host".into(),
            origin: WorkflowOrigin::Cli,
            key: None,
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no user nobody@contoso.com"), "{e}");
}
