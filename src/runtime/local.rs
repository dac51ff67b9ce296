//! One-machine wiring: a local directory for the event lake and SQLite beside it for period rows.
//!
//! ```text
//! <data>/events/...        partitioned Parquet (see crate::lake)
//! <data>/quarantine/...    rejected input with reasons
//! <data>/_state/...        touched hours, period states
//! <data>/_catalog/...      the deployed metric SQL, the versions built
//! <data>/periods.sqlite    the period store
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::lake::{Storage, StorageError};
use crate::rollup::catalog::Catalog;
use crate::rollup::{Rollup, ShardOptions, DEFAULT_RETIRE_AFTER, DEFAULT_SHARD_BYTES};
use crate::serve::query::{QueryOptions, QueryService};
use crate::store::SqliteStore;
use crate::store::{PeriodStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Local {
    pub data_dir: PathBuf,
    pub storage: Storage,
    pub store: Arc<dyn PeriodStore>,
    /// The definitions a lake with no deployed catalog starts from.
    pub catalog: Catalog,
    pub reporting_tz: Tz,
    /// Bytes of event files per piece of rollup work.
    pub shard_bytes: u64,
}

impl Local {
    pub fn open(data_dir: &Path, catalog: Catalog, reporting_tz: Tz) -> Result<Local, LocalError> {
        let storage = Storage::local(data_dir)?;
        let store = SqliteStore::open(&data_dir.join("periods.sqlite"))?;
        Ok(Local {
            data_dir: data_dir.to_path_buf(),
            storage,
            store: Arc::new(store),
            catalog,
            reporting_tz,
            shard_bytes: DEFAULT_SHARD_BYTES,
        })
    }

    pub fn rollup(&self) -> Rollup {
        Rollup {
            storage: self.storage.clone(),
            events: None,
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            reporting_tz: self.reporting_tz,
            retire_after: DEFAULT_RETIRE_AFTER,
            shards: ShardOptions {
                max_bytes: self.shard_bytes,
                ..ShardOptions::default()
            },
        }
    }

    pub fn query_service(&self, mut options: QueryOptions) -> QueryService {
        options.reporting_tz = self.reporting_tz;
        QueryService::from_lake(
            self.store.clone(),
            self.storage.clone(),
            self.catalog.clone(),
            options,
        )
    }
}
