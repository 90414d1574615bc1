//! The permission check of an action, on the connection's record of what was granted.
//!
//! Reading the grant from a fresh token costs a login request, so the check reads the record
//! on the connection ([`Connection::granted_permissions`]) and takes a fresh token only when
//! the record lacks the permission (the admin may have granted it since) or Graph refused a
//! write for a missing permission (it may have been revoked since). Whenever a fresh token
//! shows other roles than the record, the record is updated.

use super::{ActionDeps, ActionError};
use crate::actions::kind::ActionKind;
use crate::actions::policy::{ActionSettings, Refusal, check_allowed};
use crate::directory_write::GrantedPermissions;
use crate::error::StoreError;
use crate::model::{Connection, TenantId};

/// Whether `kind` may run on `connection` with policy `settings`. A kind the policy does not
/// enable is refused without any directory call; a permission the record lacks is read again
/// from a fresh token (and recorded) before it is refused.
pub(crate) async fn check_permission(
    deps: &ActionDeps,
    connection: &Connection,
    settings: &ActionSettings,
    kind: ActionKind,
) -> Result<Result<(), Refusal>, ActionError> {
    match check_allowed(kind, settings, &connection.granted_permissions) {
        Ok(()) => return Ok(Ok(())),
        Err(e @ Refusal::NotEnabled { .. }) => return Ok(Err(e)),
        Err(Refusal::MissingPermission { .. }) => {}
    }
    let granted = refresh_permissions(deps, &connection.tenant_id).await?;
    Ok(check_allowed(kind, settings, &granted))
}

/// Read the grant from a fresh token and record it on the connection when it differs.
pub(crate) async fn refresh_permissions(
    deps: &ActionDeps,
    tenant: &TenantId,
) -> Result<GrantedPermissions, ActionError> {
    let granted = deps.writer.granted_permissions(tenant).await?;
    record_permissions(deps, tenant, &granted).await?;
    Ok(granted)
}

/// How often a conditional write of the record is tried again after a concurrent change.
const ATTEMPTS: usize = 3;

/// Store `granted` on the tenant's connection if it holds something else. Conditional on the
/// connection as read, so a concurrent status change (a disconnect, a reauthorization) is
/// never overwritten; after three lost races the record is left for the next refresh.
pub(crate) async fn record_permissions(
    deps: &ActionDeps,
    tenant: &TenantId,
    granted: &GrantedPermissions,
) -> Result<(), ActionError> {
    record_on(deps.connections.as_ref(), tenant, granted)
        .await
        .map_err(ActionError::from)
}

/// [`record_permissions`] on any connection store (the consent callback records with it too).
pub async fn record_on(
    connections: &dyn crate::ports::ConnectionStore,
    tenant: &TenantId,
    granted: &GrantedPermissions,
) -> Result<(), StoreError> {
    for _ in 0..ATTEMPTS {
        let Some(current) = connections.get_connection(tenant).await? else {
            return Ok(());
        };
        if &current.granted_permissions == granted {
            return Ok(());
        }
        let updated = Connection {
            granted_permissions: granted.clone(),
            ..current.clone()
        };
        match connections
            .replace_connection(&updated, Some(&current))
            .await
        {
            Ok(()) => {
                tracing::info!(tenant = %tenant, "granted permissions recorded");
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    tracing::warn!(tenant = %tenant, "granted permissions not recorded: the connection kept changing");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;

    use crate::actions::kind::{ActionKind, ActionSpec};
    use crate::actions::record::ActionStatus;
    use crate::actions::testing::{self, ANN, T, World};
    use crate::directory_write::{
        AppRoleAssignment, AppRoleRef, DirectoryWriter, GrantedPermissions, MemoryDirectoryWriter,
        WriteError, WriteOutcome,
    };
    use crate::model::TenantId;
    use crate::ports::{ConnectionStore, Secret};
    use crate::services::actions::submit_action;

    /// The in-memory directory, counting the fresh tokens read for their grant.
    struct CountingWriter {
        inner: Arc<MemoryDirectoryWriter>,
        fresh_tokens: AtomicU64,
    }

    #[async_trait]
    impl DirectoryWriter for CountingWriter {
        async fn add_group_member(
            &self,
            t: &TenantId,
            g: &str,
            m: &str,
        ) -> Result<WriteOutcome, WriteError> {
            self.inner.add_group_member(t, g, m).await
        }
        async fn remove_group_member(
            &self,
            t: &TenantId,
            g: &str,
            m: &str,
        ) -> Result<WriteOutcome, WriteError> {
            self.inner.remove_group_member(t, g, m).await
        }
        async fn assign_app_role(
            &self,
            t: &TenantId,
            u: &str,
            r: &AppRoleRef,
        ) -> Result<WriteOutcome, WriteError> {
            self.inner.assign_app_role(t, u, r).await
        }
        async fn app_role_assignments(
            &self,
            t: &TenantId,
            u: &str,
        ) -> Result<Vec<AppRoleAssignment>, WriteError> {
            self.inner.app_role_assignments(t, u).await
        }
        async fn remove_app_role_assignment(
            &self,
            t: &TenantId,
            u: &str,
            a: &str,
        ) -> Result<WriteOutcome, WriteError> {
            self.inner.remove_app_role_assignment(t, u, a).await
        }
        async fn revoke_sign_in_sessions(
            &self,
            t: &TenantId,
            u: &str,
        ) -> Result<WriteOutcome, WriteError> {
            self.inner.revoke_sign_in_sessions(t, u).await
        }
        async fn block_sign_in(&self, t: &TenantId, u: &str) -> Result<WriteOutcome, WriteError> {
            self.inner.block_sign_in(t, u).await
        }
        async fn unblock_sign_in(&self, t: &TenantId, u: &str) -> Result<WriteOutcome, WriteError> {
            self.inner.unblock_sign_in(t, u).await
        }
        async fn reset_password(
            &self,
            t: &TenantId,
            u: &str,
            p: &Secret,
        ) -> Result<WriteOutcome, WriteError> {
            self.inner.reset_password(t, u, p).await
        }
        async fn delete_user(&self, t: &TenantId, u: &str) -> Result<WriteOutcome, WriteError> {
            self.inner.delete_user(t, u).await
        }
        async fn restore_user(&self, t: &TenantId, u: &str) -> Result<WriteOutcome, WriteError> {
            self.inner.restore_user(t, u).await
        }
        async fn granted_permissions(
            &self,
            t: &TenantId,
        ) -> Result<GrantedPermissions, WriteError> {
            self.fresh_tokens.fetch_add(1, Ordering::Relaxed);
            self.inner.granted_permissions(t).await
        }
    }

    async fn counted(kinds: &[ActionKind]) -> (World, Arc<CountingWriter>) {
        let mut w = testing::world(kinds).await;
        let counting = Arc::new(CountingWriter {
            inner: w.writer.clone(),
            fresh_tokens: AtomicU64::new(0),
        });
        w.deps.writer = counting.clone();
        (w, counting)
    }

    fn revoke(n: usize) -> crate::services::actions::SubmitRequest {
        testing::req(
            &format!("revoke-{n}"),
            ActionSpec::RevokeSessions { user: ANN.into() },
        )
    }

    #[tokio::test]
    async fn actions_read_the_recorded_grant_not_a_fresh_token_each() {
        let (w, counting) = counted(&[ActionKind::RevokeSessions]).await;
        for n in 0..10 {
            submit_action(&w.deps, revoke(n)).await.unwrap();
        }
        testing::drain(&w, 1).await;
        assert_eq!(
            w.writer
                .calls(&testing::tenant(), ActionKind::RevokeSessions),
            10
        );
        // The record was empty: one fresh token filled it, and every later check read it.
        assert_eq!(counting.fresh_tokens.load(Ordering::Relaxed), 1);
        let c = w
            .store
            .get_connection(&TenantId::new(T))
            .await
            .unwrap()
            .unwrap();
        assert!(c.granted_permissions.contains("User.RevokeSessions.All"));
    }

    #[tokio::test]
    async fn a_permission_granted_later_is_picked_up_and_recorded() {
        let (w, counting) = counted(&[ActionKind::RevokeSessions]).await;
        let t = testing::tenant();
        w.writer
            .grant(&t, GrantedPermissions::new(["User.Read.All"]));
        let e = submit_action(&w.deps, revoke(1)).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("User.RevokeSessions.All"), "{text}");
        assert!(text.contains("admin consent"), "{text}");
        assert_eq!(w.writer.calls(&t, ActionKind::RevokeSessions), 0);
        // The admin grants it: the record lacks it, so a fresh token is read and recorded.
        w.writer
            .grant(&t, GrantedPermissions::new(["User.RevokeSessions.All"]));
        let r = submit_action(&w.deps, revoke(2)).await.unwrap();
        assert_eq!(r.status, ActionStatus::Queued);
        let recorded = w.store.get_connection(&t).await.unwrap().unwrap();
        assert!(
            recorded
                .granted_permissions
                .contains("User.RevokeSessions.All")
        );
        let before = counting.fresh_tokens.load(Ordering::Relaxed);
        testing::drain(&w, 1).await;
        assert_eq!(w.writer.calls(&t, ActionKind::RevokeSessions), 1);
        assert_eq!(
            counting.fresh_tokens.load(Ordering::Relaxed),
            before,
            "the executor's check read the record"
        );
    }

    #[tokio::test]
    async fn a_refusal_by_graph_reads_the_grant_again() {
        let (w, counting) = counted(&[ActionKind::RevokeSessions]).await;
        let t = testing::tenant();
        submit_action(&w.deps, revoke(1)).await.unwrap();
        testing::drain(&w, 1).await;
        let recorded = counting.fresh_tokens.load(Ordering::Relaxed);
        // Revoked since: the record still says granted, Graph refuses.
        w.writer
            .grant(&t, GrantedPermissions::new(["User.Read.All"]));
        submit_action(&w.deps, revoke(2)).await.unwrap();
        testing::drain(&w, 1).await;
        assert_eq!(counting.fresh_tokens.load(Ordering::Relaxed), recorded + 1);
        let c = w.store.get_connection(&t).await.unwrap().unwrap();
        assert!(!c.granted_permissions.contains("User.RevokeSessions.All"));
        // The next request is refused before any Graph call.
        let calls = w.writer.calls(&t, ActionKind::RevokeSessions);
        assert!(submit_action(&w.deps, revoke(3)).await.is_err());
        assert_eq!(w.writer.calls(&t, ActionKind::RevokeSessions), calls);
    }
}
