use std::collections::HashMap;

use async_trait::async_trait;
use entra_sync_core::committed::CommittedChange;
use entra_sync_core::error::StoreError;
use entra_sync_core::model::TenantId;
use entra_sync_core::ports::{Listing, RunStore};
use entra_sync_core::run::{RunUpdate, SyncRun};

use super::*;

fn run_sk(run_id: &str) -> String {
    format!("RUN#{run_id}")
}

/// The write a stream record of a run item describes, or `None` for any other item (or a
/// deleted one).
pub(crate) fn run_from_image(
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Option<CommittedChange>, StoreError> {
    let Some(new) = new else { return Ok(None) };
    if !get_s(new, "sk")?.starts_with("RUN#") {
        return Ok(None);
    }
    Ok(Some(CommittedChange::Run {
        before: old.map(body).transpose()?,
        after: body(new)?,
    }))
}

impl DynamoStore {
    fn run_item(&self, run: &SyncRun, rev: u64) -> Result<Item, StoreError> {
        let t = &run.tenant_id;
        let started = u64::try_from(run.started_at.timestamp_millis()).unwrap_or(0);
        Ok(HashMap::from([
            ("pk".to_owned(), s(tenant_pk(t))),
            ("sk".to_owned(), s(run_sk(&run.run_id))),
            ("tenant".to_owned(), s(t.as_str())),
            ("rev".to_owned(), n(rev)),
            ("body".to_owned(), s(to_json(run)?)),
            ("gsi1pk".to_owned(), s(format!("T#{t}#RUNS"))),
            (
                "gsi1sk".to_owned(),
                s(format!("{started:020}#{}", run.run_id)),
            ),
        ]))
    }
}

#[async_trait]
impl RunStore for DynamoStore {
    async fn create_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        // Creating an existing run leaves it as it is.
        self.put_if(self.run_item(run, 1)?, "attribute_not_exists(pk)", vec![])
            .await?;
        Ok(())
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
        update: &RunUpdate,
    ) -> Result<SyncRun, StoreError> {
        // Optimistic read-modify-write: concurrent reconcilers add their counts one after the
        // other; a lost race re-reads and applies again.
        for attempt in 0..MAX_ATTEMPTS * 4 {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt.min(4))).await;
            }
            let Some(item) = self.get_item(tenant_pk(tenant), run_sk(run_id)).await? else {
                return Err(StoreError::Corrupt(format!("run {run_id} not found")));
            };
            let rev = get_n(&item, "rev")?;
            let mut run: SyncRun = body(&item)?;
            update.apply(&mut run);
            if self
                .put_if(
                    self.run_item(&run, rev + 1)?,
                    "rev = :r",
                    vec![(":r", n(rev))],
                )
                .await?
            {
                return Ok(run);
            }
        }
        Err(StoreError::Conflict(format!("run {run_id}")))
    }

    async fn get_run(
        &self,
        tenant: &TenantId,
        run_id: &str,
    ) -> Result<Option<SyncRun>, StoreError> {
        self.get_item(tenant_pk(tenant), run_sk(run_id))
            .await?
            .map(|i| body(&i))
            .transpose()
    }

    async fn list_runs_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<SyncRun>, StoreError> {
        // The index key of the named run: the page continues below it.
        let below = match after {
            None => None,
            Some(a) => match self.get_run(tenant, a).await? {
                Some(run) => {
                    let started = u64::try_from(run.started_at.timestamp_millis()).unwrap_or(0);
                    Some(format!("{started:020}#{}", run.run_id))
                }
                None => {
                    return Ok(Listing {
                        items: Vec::new(),
                        next: None,
                    });
                }
            },
        };
        let (rows, _) = self
            .query_index(
                format!("T#{tenant}#RUNS"),
                below.as_deref(),
                limit.saturating_add(1),
                false,
            )
            .await?;
        let mut items: Vec<SyncRun> = self
            .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await?;
        let next = match items.len() > limit {
            true => {
                items.truncate(limit);
                items.last().map(|r| r.run_id.clone())
            }
            false => None,
        };
        Ok(Listing { items, next })
    }

    async fn list_runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let (rows, _) = self
            .query_index(format!("T#{tenant}#RUNS"), None, limit.max(1), false)
            .await?;
        let mut runs: Vec<SyncRun> = self
            .read_in_order(rows.into_iter().map(|(_, pk, sk)| (pk, sk)).collect())
            .await?;
        runs.truncate(limit);
        Ok(runs)
    }
}
