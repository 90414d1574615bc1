//! An action's and a workflow's history written through the store ports, the same on every
//! store: the change-event tests compare what each store derives from it.

use entra_sync_core::actions::ports::{ActionStore, WorkflowStore};

/// An action's life and a workflow's, written through the store ports the action services use
/// (the records made by the services on the in-memory ports): the action is created queued,
/// started, noted (an attempt, a request id: no new status) and finished; the workflow is
/// created (scheduled, at the revision the services left it) and cancelled. Returns the
/// action's id, the workflow's id and its revision when created here.
pub async fn act_and_run_a_workflow<S>(store: &S) -> (String, String, u64)
where
    S: ActionStore + WorkflowStore + ?Sized,
{
    use entra_sync_core::actions::ActionKind;
    use entra_sync_core::actions::testing::{SALES, add_ann_to, req, world};
    use entra_sync_core::actions::{Template, WorkflowParams, WorkflowStatus};
    use entra_sync_core::services::actions::{StartWorkflow, start_workflow, submit_action};

    let w = world(&[ActionKind::AddGroupMember, ActionKind::BlockSignIn]).await;
    let queued = submit_action(&w.deps, req("k1", add_ann_to(SALES)))
        .await
        .unwrap();
    assert!(store.create_action(&queued).await.unwrap().is_none());
    // A create that finds the action there is no change: nothing recorded.
    assert!(store.create_action(&queued).await.unwrap().is_some());
    let mut running = queued.clone();
    running.start(None, chrono::Utc::now()).unwrap();
    running.rev += 1;
    store.update_action(&running, queued.rev).await.unwrap();
    let mut noted = running.clone();
    noted.graph_request_id = Some("req-1".into());
    noted.rev += 1;
    store.update_action(&noted, running.rev).await.unwrap();
    // A refused update (stale revision) writes nothing and records nothing.
    assert!(store.update_action(&noted, running.rev).await.is_err());
    let mut done = noted.clone();
    done.finish(chrono::Utc::now(), Ok(false), None);
    done.rev += 1;
    store.update_action(&done, noted.rev).await.unwrap();

    let wf = start_workflow(
        &w.deps,
        StartWorkflow {
            account: entra_sync_core::actions::testing::account(),
            tenant: entra_sync_core::actions::testing::tenant(),
            template: Template::Offboarding,
            params: WorkflowParams {
                user: "ann@contoso.com".into(),
                groups: vec![],
                apps: vec![],
                at: Some(chrono::Utc::now() + chrono::Duration::days(3)),
            },
            requested_by: "hr@host".into(),
            origin: entra_sync_core::actions::workflow::WorkflowOrigin::Cli,
            key: Some("offboard-ann".into()),
        },
    )
    .await
    .unwrap();
    assert!(store.create_workflow(&wf).await.unwrap().is_none());
    let mut finished = wf.clone();
    finished.status = WorkflowStatus::Cancelled;
    finished.finished_at = Some(chrono::Utc::now());
    finished.rev += 1;
    store.update_workflow(&finished, wf.rev).await.unwrap();
    (queued.id, wf.id, wf.rev)
}
