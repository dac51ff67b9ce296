//! In-memory period store for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Claim, Lease, PeriodRow, PeriodStore, StoreError};
use crate::model::dims::{dim_set_key, dims_key, Dims};
use crate::model::period::Grain;

type Key = (String, Grain, String, DateTime<Utc>);

#[derive(Default)]
pub(crate) struct MemoryStore {
    rows: Mutex<BTreeMap<Key, PeriodRow>>,
    meta: Mutex<BTreeMap<String, String>>,
    leases: Mutex<BTreeMap<String, Lease>>,
}

impl MemoryStore {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl PeriodStore for MemoryStore {
    async fn put(&self, rows: Vec<PeriodRow>) -> Result<(), StoreError> {
        let mut map = self.rows.lock().expect("store lock");
        for row in rows {
            map.insert(
                (
                    row.metric.clone(),
                    row.grain,
                    dims_key(&row.dims),
                    row.start,
                ),
                row,
            );
        }
        Ok(())
    }

    async fn series(
        &self,
        metric: &str,
        grain: Grain,
        dims: &Dims,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        if from >= to {
            return Ok(vec![]);
        }
        let key = dims_key(dims);
        let map = self.rows.lock().expect("store lock");
        let lo = (metric.to_string(), grain, key.clone(), from);
        let hi = (metric.to_string(), grain, key, to);
        Ok(map.range(lo..hi).map(|(_, r)| r.clone()).collect())
    }

    async fn groups(
        &self,
        metric: &str,
        grain: Grain,
        dim_set: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        let map = self.rows.lock().expect("store lock");
        Ok(map
            .values()
            .filter(|r| {
                r.metric == metric
                    && r.grain == grain
                    && r.start >= from
                    && r.start < to
                    && dim_set_key(r.dims.keys()) == dim_set
            })
            .cloned()
            .collect())
    }

    async fn delete_metric(&self, metric: &str, _dim_sets: &[String]) -> Result<(), StoreError> {
        self.rows
            .lock()
            .expect("store lock")
            .retain(|k, _| k.0 != metric);
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.meta.lock().expect("meta lock").get(key).cloned())
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.meta
            .lock()
            .expect("meta lock")
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut leases = self.leases.lock().expect("lease lock");
        match leases.get(name) {
            Some(l) if l.blocks(holder, now) => Ok(Claim::HeldBy(l.clone())),
            _ => {
                let lease = Lease {
                    holder: holder.to_string(),
                    until,
                };
                leases.insert(name.to_string(), lease);
                Ok(Claim::Granted)
            }
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut leases = self.leases.lock().expect("lease lock");
        if leases.get(name).is_some_and(|l| l.holder == holder) {
            leases.remove(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_contract_suite() {
        super::super::contract::run(&super::MemoryStore::new()).await;
    }
}
