//! `tally sql preview`: one working-copy definition over the real lake, answered as the API will
//! answer it once deployed and built, with nothing stored there. The rollup reads the lake's
//! events and keeps its states, catalog and rows in a temporary directory.

use chrono::Utc;
use chrono_tz::Tz;

use crate::lake::Storage;
use crate::rollup::{Catalog, MetricDef, Rollup, RollupError, DEFAULT_RETIRE_AFTER};
use crate::serve::{Answer, QueryError, QueryOptions, QueryParams, QueryService};
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

/// Builds `def` (with the metrics of `working` a formula of it needs) over every hour of `lake` in
/// a temporary place and answers `params` for it from there.
pub async fn preview(
    lake: &Storage,
    working: &Catalog,
    def: MetricDef,
    reporting_tz: Tz,
    params: &QueryParams,
) -> Result<Answer, PreviewError> {
    let temp = tempfile::tempdir().map_err(PreviewError::Temp)?;
    let state = Storage::local(&temp.path().join("lake"))?;
    let store = std::sync::Arc::new(SqliteStore::open(&temp.path().join("periods.sqlite"))?);
    // The definition and, for a formula, what it divides, from the working copy.
    let mut files = vec![(def.source.clone(), def.text.clone())];
    let mut wanted: Vec<String> = def
        .formula
        .iter()
        .filter(|_| def.sql.is_empty())
        .flat_map(|f| [f.numerator.clone(), f.denominator.clone()])
        .collect();
    while let Some(name) = wanted.pop() {
        if files
            .iter()
            .any(|(_, t)| MetricDef::parse("", t).is_ok_and(|d| d.name == name))
        {
            continue;
        }
        let Some(side) = working.get(&name) else {
            continue; // the catalog below names what is missing
        };
        if let (Some(f), true) = (&side.formula, side.sql.is_empty()) {
            wanted.extend([f.numerator.clone(), f.denominator.clone()]);
        }
        files.push((side.source.clone(), side.text.clone()));
    }
    let catalog = Catalog::from_sources(files.iter().map(|(s, t)| (s.clone(), t.as_str())))?;
    let rollup = Rollup {
        storage: state.clone(),
        events: Some(lake.clone()),
        store: store.clone(),
        catalog: catalog.clone(),
        reporting_tz,
        retire_after: DEFAULT_RETIRE_AFTER,
        shards: Default::default(),
    };
    rollup.run_builds(None).await?;
    let options = QueryOptions {
        reporting_tz,
        catalog_ttl: std::time::Duration::ZERO,
        ..QueryOptions::default()
    };
    let service = QueryService::from_lake(store, state, catalog, options);
    Ok(service.answer(params, Utc::now()).await?)
}
