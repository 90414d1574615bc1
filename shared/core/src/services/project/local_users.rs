use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::model::{AccountId, StoredUser};
use crate::ports::{Clock, LocalUserStore, MirrorStore};
use crate::provision::{LocalStatus, LocalUser};

/// What the host product needs at sign-in: the user's status and roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInLookup {
    pub local_id: String,
    pub status: LocalStatus,
    pub roles: Vec<String>,
    /// May this user sign in: active, and (for a user linked to the directory) its mirrored
    /// account present and enabled, whatever the filters say.
    pub may_sign_in: bool,
    /// Why not, in plain words (absent when the user may sign in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why the mirrored directory account of `user` takes its access away, if it does: the
/// directory reported it disabled (`accountEnabled: false`) or deleted. A linked user's access
/// never outlives such an account, even before a run deactivates it (nightly deprovisioning, a
/// held run). A loss only inferred from a read (absent from a full read, no account state) is
/// left to the local status: that is what the circuit breaker may be holding.
async fn directory_refusal(
    mirror: &dyn MirrorStore,
    user: &LocalUser,
) -> Result<Option<String>, StoreError> {
    use crate::model::{Presence, RemovalReason};
    let Some(link) = &user.link else {
        return Ok(None);
    };
    let found = mirror
        .get_users(&link.tenant_id, std::slice::from_ref(&link.object_id))
        .await?;
    Ok(match found.first() {
        Some(StoredUser {
            presence:
                Presence::Removed {
                    reason: RemovalReason::SoftDeleted | RemovalReason::HardDeleted,
                },
            ..
        }) => Some("its directory account is deleted".to_owned()),
        Some(s) if s.presence.is_present() && s.user.account_enabled == Some(false) => {
            Some("its directory account is disabled".to_owned())
        }
        _ => None,
    })
}

/// The sign-in lookup by email within one account (case-insensitive).
pub async fn sign_in_lookup(
    local_users: &dyn LocalUserStore,
    mirror: &dyn MirrorStore,
    account: &AccountId,
    email: &str,
) -> Result<Option<SignInLookup>, StoreError> {
    let email = email.trim().to_lowercase();
    let found = local_users.find_by_emails(account, &[email]).await?;
    let best = found
        .into_iter()
        .filter(|u| u.status != LocalStatus::DeletedLocally)
        .min_by_key(|u| match u.status {
            LocalStatus::Active => 0,
            LocalStatus::Pending => 1,
            _ => 2,
        });
    let Some(u) = best else {
        return Ok(None);
    };
    let reason = match u.status {
        LocalStatus::Active => directory_refusal(mirror, &u).await?,
        s => Some(format!("the user is {s}")),
    };
    Ok(Some(SignInLookup {
        may_sign_in: reason.is_none(),
        reason,
        local_id: u.local_id,
        status: u.status,
        roles: u.roles,
    }))
}

/// Why a change to a local user was refused.
#[derive(Debug, thiserror::Error)]
pub enum LocalUserError {
    #[error("no local user {0}")]
    NotFound(String),
    #[error("a local user with the email {0} already exists in this account")]
    DuplicateEmail(String),
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    /// Only a pending user is activated. `force_allowed`: the user was deactivated in the host
    /// product (its directory account is enabled), so an explicit override may activate it.
    #[error("local user {local_id} is {status}, not pending, so it is not activated: {why}")]
    NotActivatable {
        local_id: String,
        status: LocalStatus,
        why: String,
        force_allowed: bool,
    },
    /// A status only the sync sets (active goes through an activation, disabled in directory
    /// follows the directory).
    #[error("the host product cannot set a user to {0}: {hint}", hint = match .0 {
        LocalStatus::Active => "activate a pending user instead",
        _ => "only the directory decides it",
    })]
    NotHostStatus(LocalStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Add a user that exists in the host product before any sync (matching links it later).
pub async fn add_local_user(
    local_users: &dyn LocalUserStore,
    clock: &dyn Clock,
    account: &AccountId,
    email: &str,
    status: LocalStatus,
) -> Result<LocalUser, LocalUserError> {
    let email = email.trim().to_lowercase();
    if crate::filters::email_domain(&email).is_none() || email.starts_with('@') {
        return Err(LocalUserError::BadEmail(email));
    }
    let taken = local_users
        .find_by_emails(account, std::slice::from_ref(&email))
        .await?;
    if taken
        .iter()
        .any(|u| u.status != LocalStatus::DeletedLocally)
    {
        return Err(LocalUserError::DuplicateEmail(email));
    }
    let mut user = LocalUser::pre_existing(
        account.clone(),
        uuid::Uuid::new_v4().to_string(),
        &email,
        status,
        clock.now(),
    );
    local_users
        .put_local_users(std::slice::from_ref(&user))
        .await?;
    // The store keeps it at the revision after the one it read.
    user.revision += 1;
    Ok(user)
}

/// Activate a local user, as the host product does. Only a pending user is activated; any
/// other status is refused with the reason. With `force`, a user deactivated in the host
/// product (its directory account enabled) is activated too; never a user whose directory
/// account is disabled or deleted: that access returns only when the directory restores it.
pub async fn activate_local_user(
    local_users: &dyn LocalUserStore,
    mirror: &dyn MirrorStore,
    clock: &dyn Clock,
    account: &AccountId,
    local_id: &str,
    force: bool,
) -> Result<LocalUser, LocalUserError> {
    let mut user = local_users
        .get_local_user(account, local_id)
        .await?
        .ok_or_else(|| LocalUserError::NotFound(local_id.to_owned()))?;
    let refuse = |why: &str, force_allowed: bool| LocalUserError::NotActivatable {
        local_id: local_id.to_owned(),
        status: user.status,
        why: why.to_owned(),
        force_allowed,
    };
    let directory = directory_refusal(mirror, &user).await?;
    match (user.status, directory) {
        (LocalStatus::Active, _) => return Err(refuse("it is already active", false)),
        (LocalStatus::DeletedLocally, _) => {
            return Err(refuse(
                "it was deleted in the host product; the next sync creates it again if it still matches",
                false,
            ));
        }
        (LocalStatus::DisabledInDirectory, _) => {
            return Err(refuse(
                "its directory account is deleted; it returns when the account is restored in the directory",
                false,
            ));
        }
        (_, Some(why)) => {
            return Err(refuse(
                &format!("{why}; it is activated again when the directory enables the account"),
                false,
            ));
        }
        (LocalStatus::Deactivated, None) if !force => {
            return Err(refuse(
                "it was deactivated in the host product (its directory account is enabled); an explicit override activates it",
                true,
            ));
        }
        (LocalStatus::Pending | LocalStatus::Deactivated, None) => {}
    }
    user.status = LocalStatus::Active;
    user.activated = true;
    user.updated_at = clock.now();
    local_users
        .put_local_users(std::slice::from_ref(&user))
        .await?;
    // The store keeps it at the revision after the one it read.
    user.revision += 1;
    Ok(user)
}

/// Change a local user's status as the host product does: `Deactivated` deactivates it in the
/// host product, `DeletedLocally` deletes it (the next sync recreates it if it still matches and
/// recreating is on), `Pending` puts it back to waiting for an activation. Activation goes
/// through [`activate_local_user`]; "disabled in directory" is the directory's to decide.
pub async fn set_local_status(
    local_users: &dyn LocalUserStore,
    clock: &dyn Clock,
    account: &AccountId,
    local_id: &str,
    status: LocalStatus,
) -> Result<LocalUser, LocalUserError> {
    if matches!(
        status,
        LocalStatus::Active | LocalStatus::DisabledInDirectory
    ) {
        return Err(LocalUserError::NotHostStatus(status));
    }
    let mut user = local_users
        .get_local_user(account, local_id)
        .await?
        .ok_or_else(|| LocalUserError::NotFound(local_id.to_owned()))?;
    user.status = status;
    user.updated_at = clock.now();
    local_users
        .put_local_users(std::slice::from_ref(&user))
        .await?;
    // The store keeps it at the revision after the one it read.
    user.revision += 1;
    Ok(user)
}
