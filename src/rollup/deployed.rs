//! The deployed catalog: the data team's SQL files published into the lake, so that the rollup and
//! the API read metric definitions at run time and a change needs no Rust build.
//!
//! A deploy writes one immutable object holding every file (`_catalog/versions/<hash>.json`,
//! `{"files": {"revenue.sql": "<text>", ...}}`), then points `_catalog/current.json`
//! (`{"version": "<hash>"}`) at it. Each is one object write, so a reader sees the old catalog or
//! the new one, never half of one. Terraform publishes the same two objects (`infra/catalog.tf`).
//! A lake without a pointer is seeded with the definitions built into the binary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lake::paths::{CatalogVersionFile, CATALOG_CURRENT};
use crate::lake::{Storage, StorageError};
use crate::rollup::catalog::{Catalog, CatalogError};
use crate::rollup::engine::{self, EngineError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Check(#[from] EngineError),
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
}

/// One catalog version as it is stored.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    files: BTreeMap<String, String>,
}

/// The catalog a lake has deployed, and the id of its version.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub id: String,
    pub catalog: Catalog,
}

fn corrupt(path: &str, reason: impl ToString) -> DeployError {
    DeployError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// The catalog `_catalog/current.json` points at, or `None` when nothing was deployed.
pub async fn current(storage: &Storage) -> Result<Option<Deployed>, DeployError> {
    let Some(bytes) = storage.get_bytes(&CATALOG_CURRENT.into()).await? else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Pointer {
        version: String,
    }
    let pointer: Pointer =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(CATALOG_CURRENT, e))?;
    let file = CatalogVersionFile {
        id: pointer.version,
    };
    let path = file.path();
    if CatalogVersionFile::parse(&path).as_ref() != Some(&file) {
        return Err(corrupt(CATALOG_CURRENT, "the version is not a catalog id"));
    }
    let bytes = storage
        .get_bytes(&path)
        .await?
        .ok_or_else(|| corrupt(path.as_ref(), "the current catalog version is missing"))?;
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| corrupt(path.as_ref(), e))?;
    let catalog = Catalog::from_sources(
        stored
            .files
            .iter()
            .map(|(name, text)| (name.clone(), text.as_str())),
    )?;
    Ok(Some(Deployed {
        id: file.id,
        catalog,
    }))
}

/// Checks every definition (the `tally sql check` rules) and publishes the catalog as the current
/// version. A catalog that fails a check is refused before anything is written.
pub async fn deploy(storage: &Storage, catalog: &Catalog) -> Result<Deployed, DeployError> {
    for m in catalog.computed() {
        engine::check(m).await?;
    }
    publish(storage, catalog).await
}

async fn publish(storage: &Storage, catalog: &Catalog) -> Result<Deployed, DeployError> {
    let stored = Stored {
        files: catalog
            .listed()
            .map(|m| (file_name(&m.source, &m.name), m.text.clone()))
            .collect(),
    };
    let bytes = serde_json::to_vec(&stored).expect("a catalog serialises");
    let id = blake3::hash(&bytes).to_hex()[..32].to_string();
    let file = CatalogVersionFile { id };
    storage.put_bytes(&file.path(), bytes).await?;
    let pointer = serde_json::json!({ "version": file.id }).to_string();
    storage
        .put_bytes(&CATALOG_CURRENT.into(), pointer.into_bytes())
        .await?;
    Ok(Deployed {
        id: file.id,
        catalog: catalog.clone(),
    })
}

/// The deployed catalog, or `seed` (the built-in definitions) published first on a lake that has
/// none. The seed is not checked again: it is the binary's own, checked by its tests.
pub(crate) async fn current_or_seed(
    storage: &Storage,
    seed: &Catalog,
) -> Result<Deployed, DeployError> {
    match current(storage).await? {
        Some(deployed) => Ok(deployed),
        None => publish(storage, seed).await,
    }
}

/// The file name a definition is published under: its own (`revenue.sql`), else its metric's.
fn file_name(source: &str, name: &str) -> String {
    let base = source.rsplit(['/', '\\']).next().unwrap_or(source);
    if base.ends_with(".sql") && !base.is_empty() {
        base.to_string()
    } else {
        format!("{name}.sql")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn a_deploy_is_read_back_and_a_refused_one_changes_nothing() {
        let storage = Storage::new(Arc::new(InMemory::new()));
        assert!(current(&storage).await.unwrap().is_none());
        let seeded = current_or_seed(&storage, &Catalog::builtin())
            .await
            .unwrap();
        let read = current(&storage).await.unwrap().unwrap();
        assert_eq!(read.id, seeded.id);
        assert_eq!(
            read.catalog.metrics().len(),
            Catalog::builtin().metrics().len()
        );
        assert_eq!(
            read.catalog.get("revenue").unwrap().sql,
            Catalog::builtin().get("revenue").unwrap().sql
        );

        let bad = Catalog::from_sources([(
            "sql/bad.sql".to_string(),
            "-- name: bad\nSELECT COUNT(*) AS value FROM nowhere",
        )])
        .unwrap();
        let e = deploy(&storage, &bad).await.unwrap_err().to_string();
        assert!(e.starts_with("sql/bad.sql: "), "{e}");
        let after = current(&storage).await.unwrap().unwrap();
        assert_eq!(after.id, seeded.id, "a refused deploy leaves the pointer");
        assert_eq!(storage.list("_catalog/versions").await.unwrap().len(), 1);

        // The same files deploy to the same version.
        let again = deploy(&storage, &Catalog::builtin()).await.unwrap();
        assert_eq!(again.id, seeded.id);
    }
}
