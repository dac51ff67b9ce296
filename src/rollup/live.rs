//! Which version of each metric the API answers from, and which versions the rollup is building:
//! `_catalog/live.json`, written by the rollup only.
//!
//! A metric's version is a hash of what its numbers depend on ([`MetricDef::version`]); its rows
//! and period states are stored under the version's key (`revenue.v1a2b3c4d5e6f`), so a changed
//! definition is built beside the old one. The API answers from the `ready` version until the
//! `building` one has covered every hour of history, then the rollup moves it to `ready` in one
//! write. Replaced and removed versions are `retired`: their rows and states are deleted once no
//! API instance can still be answering from them (after [`super::Rollup::retire_after`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::lake::paths::CATALOG_LIVE;
use crate::lake::{Storage, StorageError};
use crate::rollup::catalog::{Catalog, CatalogError, MetricDef};

/// The store and state key of one metric version.
pub fn version_key(name: &str, version: &str) -> String {
    format!("{name}.v{version}")
}

/// A version the rollup has built over all history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Built {
    pub version: String,
    pub reporting_tz: String,
    /// The definition file the version was built from.
    pub text: String,
    pub ready_at: DateTime<Utc>,
}

/// A version being built, oldest hour first, a day at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    pub reporting_tz: String,
    pub text: String,
    pub started_at: DateTime<Utc>,
    /// Hours of history the build covers, and how many of them are done.
    pub hours_total: usize,
    pub hours_done: usize,
    /// The first hour still to build (`None`: none left).
    pub next: Option<DateTime<Utc>>,
    /// The newest hour with events when the build began; later hours reach it as touched hours.
    pub through: Option<DateTime<Utc>>,
}

/// A replaced or removed version whose rows and states are to be deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    pub key: String,
    pub dimensions: Vec<String>,
    pub retired_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Live {
    #[serde(default)]
    pub ready: BTreeMap<String, Built>,
    #[serde(default)]
    pub building: BTreeMap<String, Build>,
    #[serde(default)]
    pub retired: Vec<Retired>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{CATALOG_LIVE}: {0}")]
    Corrupt(String),
    #[error("{CATALOG_LIVE}: metric `{metric}`: {source}")]
    Definition {
        metric: String,
        source: CatalogError,
    },
}

/// A metric version with what is needed to store or read its rows.
#[derive(Debug, Clone)]
pub struct Version {
    pub def: Arc<MetricDef>,
    pub version: String,
    pub key: String,
    pub reporting_tz: Tz,
}

impl Version {
    pub(crate) fn of(
        name: &str,
        version: &str,
        zone: &str,
        text: &str,
    ) -> Result<Version, LiveError> {
        let definition = |source| LiveError::Definition {
            metric: name.to_string(),
            source,
        };
        let def = MetricDef::parse_recorded(&format!("{name}.sql"), text).map_err(definition)?;
        let reporting_tz = zone
            .parse()
            .map_err(|_| LiveError::Corrupt(format!("{zone:?} is not a time zone")))?;
        Ok(Version {
            def: Arc::new(def),
            version: version.to_string(),
            key: version_key(name, version),
            reporting_tz,
        })
    }

    /// Every metric of `catalog` as if built in `reporting_tz`.
    pub fn all(catalog: &Catalog, reporting_tz: Tz) -> Vec<Version> {
        catalog
            .metrics()
            .iter()
            .filter_map(|def| Version::all_of(def, reporting_tz))
            .collect()
    }

    fn all_of(def: &Arc<MetricDef>, reporting_tz: Tz) -> Option<Version> {
        let version = def.version(reporting_tz);
        Some(Version {
            key: version_key(&def.name, &version),
            def: def.clone(),
            version,
            reporting_tz,
        })
    }
}

impl Built {
    pub fn version_of(&self, name: &str) -> Result<Version, LiveError> {
        Version::of(name, &self.version, &self.reporting_tz, &self.text)
    }
}

impl Build {
    pub fn version_of(&self, name: &str) -> Result<Version, LiveError> {
        Version::of(name, &self.version, &self.reporting_tz, &self.text)
    }
}

impl Live {
    /// The record, or an empty one on a lake the rollup has not built anything in yet.
    pub async fn load(storage: &Storage) -> Result<Option<Live>, LiveError> {
        match storage.get_bytes(&CATALOG_LIVE.into()).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LiveError::Corrupt(e.to_string())),
        }
    }

    pub async fn save(&self, storage: &Storage) -> Result<(), LiveError> {
        let bytes = serde_json::to_vec_pretty(self).expect("the record serialises");
        storage.put_bytes(&CATALOG_LIVE.into(), bytes).await?;
        Ok(())
    }

    /// Retires a replaced or removed version: its rows and states go after the grace period.
    pub(crate) fn retire_version(&mut self, version: Version, now: DateTime<Utc>) {
        self.retire(version.key, version.def.dimensions.clone(), now);
    }

    pub(crate) fn retire(&mut self, key: String, dimensions: Vec<String>, now: DateTime<Utc>) {
        if !self.retired.iter().any(|r| r.key == key) {
            self.retired.push(Retired {
                key,
                dimensions,
                retired_at: now,
            });
        }
    }
}

/// What the API answers from: each deployed metric with the version built for it, if any.
#[derive(Debug, Clone)]
pub struct Served {
    pub metrics: Vec<ServedMetric>,
}

#[derive(Debug, Clone)]
pub struct ServedMetric {
    /// The deployed definition (what the next build makes, or has made).
    pub deployed: Arc<MetricDef>,
    /// The version answers come from; `None` until the first build of the metric completes.
    pub ready: Option<Version>,
    /// A newer version under construction: its version and progress in hours.
    pub building: Option<(String, usize, usize)>,
}

impl Served {
    /// Every metric of `catalog` ready, as a rollup of that catalog in `reporting_tz` leaves them.
    pub fn all_ready(catalog: &Catalog, reporting_tz: Tz) -> Served {
        Served {
            metrics: Version::all(catalog, reporting_tz)
                .into_iter()
                .map(|v| ServedMetric {
                    deployed: v.def.clone(),
                    ready: Some(v),
                    building: None,
                })
                .collect(),
        }
    }

    /// The deployed metrics, each with its ready version from `live` (a metric not deployed is
    /// not served, whatever `live` still holds).
    pub fn of(deployed: &Catalog, live: &Live) -> Result<Served, LiveError> {
        let mut metrics = Vec::new();
        for def in deployed.metrics() {
            let ready = match live.ready.get(&def.name) {
                Some(built) => Some(built.version_of(&def.name)?),
                // A ratio is computed when asked, from its two metrics: nothing to build.
                None if def.formula.is_some() => Version::all_of(def, Tz::UTC),
                None => None,
            };
            let building = live
                .building
                .get(&def.name)
                .map(|b| (b.version.clone(), b.hours_done, b.hours_total));
            metrics.push(ServedMetric {
                deployed: def.clone(),
                ready,
                building,
            });
        }
        Ok(Served { metrics })
    }

    pub fn get(&self, name: &str) -> Option<&ServedMetric> {
        self.metrics.iter().find(|m| m.deployed.name == name)
    }
}
