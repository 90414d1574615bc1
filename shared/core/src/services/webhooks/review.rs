//! The review list: people held because they matched no directory user, or several. Someone
//! picks the user by hand; that starts what the held event asked for, as if it had matched.

use super::process::{EventOutcome, ProcessDeps, apply};
use super::{MAX_PAGE, WebhookError};
use crate::model::{AccountId, TenantId};
use crate::ports::Listing;
use crate::services::actions::owned_connection;
use crate::services::load_settings;
use crate::webhooks::review::{ReviewItem, ReviewStatus};

async fn owned_item(
    deps: &ProcessDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
) -> Result<ReviewItem, WebhookError> {
    owned_connection(&deps.actions, account, tenant).await?;
    match deps.reviews.get_review(tenant, id).await? {
        Some(r) if &r.endpoint.account_id == account => Ok(r),
        _ => Err(WebhookError::UnknownReview {
            tenant: tenant.clone(),
            id: id.to_string(),
        }),
    }
}

fn status_word(s: &ReviewStatus) -> &'static str {
    match s {
        ReviewStatus::Open => "open",
        ReviewStatus::Resolved { .. } => "resolved",
        ReviewStatus::Dismissed { .. } => "dismissed",
    }
}

/// The review list of one connection, newest first (open items only when `open_only`).
pub async fn list_reviews(
    deps: &ProcessDeps,
    account: &AccountId,
    tenant: &TenantId,
    open_only: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Listing<ReviewItem>, WebhookError> {
    owned_connection(&deps.actions, account, tenant).await?;
    Ok(deps
        .reviews
        .list_reviews(tenant, open_only, after, limit.clamp(1, MAX_PAGE))
        .await?)
}

/// Resolve a held person by picking their directory user (object id): the held event is
/// applied for that user (its workflows keyed by the delivery, like a matched event's).
pub async fn resolve_review(
    deps: &ProcessDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
    user_id: &str,
    by: &str,
) -> Result<ReviewItem, WebhookError> {
    let mut item = owned_item(deps, account, tenant, id).await?;
    if item.status != ReviewStatus::Open {
        return Err(WebhookError::ReviewClosed {
            id: id.to_string(),
            status: status_word(&item.status),
        });
    }
    if by.trim().is_empty() {
        return Err(WebhookError::Invalid(vec![
            "by: must name who resolves".into(),
        ]));
    }
    let users = deps
        .actions
        .mirror
        .get_users(tenant, &[user_id.trim().to_ascii_lowercase()])
        .await?;
    let Some(user) = users.into_iter().find(|u| u.presence.is_present()) else {
        return Err(WebhookError::Invalid(vec![format!(
            "user_id: no user {} in this directory (as of the last sync)",
            user_id.trim()
        )]));
    };
    let Some(endpoint) = deps.endpoints.get_endpoint(&item.endpoint).await? else {
        return Err(WebhookError::UnknownEndpoint {
            system: item.endpoint.source.to_string(),
        });
    };
    let Some(delivery) = deps
        .deliveries
        .get_delivery(&item.endpoint, &item.delivery_id)
        .await?
    else {
        return Err(WebhookError::UnknownDelivery {
            id: item.delivery_id.clone(),
        });
    };
    let settings = load_settings(deps.actions.settings.as_ref(), tenant).await?;
    let person = deps
        .people
        .get_person(tenant, endpoint.key.source, &item.event.provider_id)
        .await?;
    let mut out = EventOutcome::default();
    apply(
        deps,
        &endpoint,
        &settings.hr,
        &delivery,
        item.event_index as usize,
        &item.event,
        person,
        &user,
        &mut out,
    )
    .await?;
    item.status = ReviewStatus::Resolved {
        user_id: user.user.id.clone(),
        by: by.trim().to_string(),
        at: deps.actions.clock.now(),
        workflow_ids: out.workflow_ids,
    };
    let expected = item.rev;
    item.rev += 1;
    deps.reviews.update_review(&item, expected).await?;
    tracing::info!(review = %item.id, "hr review item resolved");
    Ok(item)
}

/// Dismiss a held person: nothing is started.
pub async fn dismiss_review(
    deps: &ProcessDeps,
    account: &AccountId,
    tenant: &TenantId,
    id: &str,
    by: &str,
) -> Result<ReviewItem, WebhookError> {
    let mut item = owned_item(deps, account, tenant, id).await?;
    if item.status != ReviewStatus::Open {
        return Err(WebhookError::ReviewClosed {
            id: id.to_string(),
            status: status_word(&item.status),
        });
    }
    item.status = ReviewStatus::Dismissed {
        by: by.trim().to_string(),
        at: deps.actions.clock.now(),
    };
    let expected = item.rev;
    item.rev += 1;
    deps.reviews.update_review(&item, expected).await?;
    Ok(item)
}
