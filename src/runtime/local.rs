//! One-machine wiring: a local directory for the event lake and SQLite beside it for period rows.
//!
//! ```text
//! <data>/events/...        partitioned Parquet (see crate::lake)
//! <data>/quarantine/...    rejected input with reasons
//! <data>/_state/...        touched hours, distinct sets
//! <data>/periods.sqlite    the period store
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::lake::{Storage, StorageError};
use crate::rollup::catalog::Catalog;
use crate::rollup::Rollup;
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
    pub catalog: Catalog,
    pub reporting_tz: Tz,
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
        })
    }

    pub fn rollup(&self) -> Rollup {
        Rollup {
            storage: self.storage.clone(),
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            reporting_tz: self.reporting_tz,
        }
    }

    pub fn query_service(&self, mut options: QueryOptions) -> QueryService {
        options.reporting_tz = self.reporting_tz;
        QueryService::new(self.store.clone(), self.catalog.clone(), options)
    }
}
