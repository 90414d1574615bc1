//! The Graph client as the connect flow's [`TenantDirectory`]: the directory's id, name and
//! verified domains, read with an app token of that tenant.

use async_trait::async_trait;
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::{TenantDetails, TenantDirectory};
use entra_sync_core::services::connect::parse_tenant_id;

use crate::GraphClient;

/// Gets an app token for the tenant and reads `/organization` with it.
#[derive(Clone, Debug)]
pub struct GraphTenantDirectory(pub GraphClient);

#[async_trait]
impl TenantDirectory for GraphTenantDirectory {
    async fn tenant_details(&self, tenant: &TenantId) -> Result<TenantDetails, DirectoryError> {
        let org = self.0.organization(tenant).await?;
        Ok(TenantDetails {
            tenant_id: parse_tenant_id(&org.id).unwrap_or_else(|| TenantId::new(org.id)),
            name: org.display_name,
            verified_domains: org.verified_domains,
        })
    }

    async fn forget_tenant(&self, tenant: &TenantId) {
        self.0.forget_token(tenant).await;
    }
}
