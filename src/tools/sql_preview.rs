//! `tally sql preview`: one working-copy definition over the real lake, answered as the API will
//! answer it once deployed and built, with nothing stored there. The rollup reads the lake's
//! events and keeps its states, catalog and rows in a temporary directory.

use chrono::Utc;
use chrono_tz::Tz;

use crate::lake::Storage;
use crate::rollup::{Catalog, MetricDef, Rollup, RollupError, DEFAULT_RETIRE_AFTER};
use crate::serve::{MetricResponse, QueryError, QueryOptions, QueryParams, QueryService};
use crate::store::{SqliteStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot make a temporary directory: {0}")]
    Temp(std::io::Error),
    #[error(transparent)]
    Storage(#[from] crate::lake::StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rollup(#[from] RollupError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Catalog(#[from] crate::rollup::CatalogError),
}

/// Builds `def` over every hour of `lake` in a temporary place and answers `params` from it.
pub async fn preview(
    lake: &Storage,
    def: MetricDef,
    reporting_tz: Tz,
    params: &QueryParams,
) -> Result<MetricResponse, PreviewError> {
    let temp = tempfile::tempdir().map_err(PreviewError::Temp)?;
    let state = Storage::local(&temp.path().join("lake"))?;
    let store = std::sync::Arc::new(SqliteStore::open(&temp.path().join("periods.sqlite"))?);
    let catalog = Catalog::from_sources([(def.source.clone(), def.text.as_str())])?;
    let rollup = Rollup {
        storage: state.clone(),
        events: Some(lake.clone()),
        store: store.clone(),
        catalog: catalog.clone(),
        reporting_tz,
        retire_after: DEFAULT_RETIRE_AFTER,
    };
    rollup.run_builds(None).await?;
    let options = QueryOptions {
        reporting_tz,
        catalog_ttl: std::time::Duration::ZERO,
        ..QueryOptions::default()
    };
    let service = QueryService::from_lake(store, state, catalog, options);
    Ok(service.query(params, Utc::now()).await?)
}
