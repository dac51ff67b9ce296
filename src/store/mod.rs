//! The period store port: hourly, daily and monthly rows per metric and dimension group.
//!
//! Adapters: an in-memory one (unit tests), [`SqliteStore`] (one machine), [`DynamoStore`] (on
//! AWS). Every adapter passes [`contract::run`]. Writes are idempotent overwrites keyed by
//! (metric, grain, dimension values, period start).

/// The contract suite every adapter passes (tests, and the `testkit` feature for other crates' tests).
#[cfg(any(test, feature = "testkit"))]
pub mod contract;
mod dynamodb;
#[cfg(test)]
pub(crate) mod memory;
mod sqlite;

pub use dynamodb::DynamoStore;
pub use sqlite::SqliteStore;

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::dims::Dims;
use crate::model::measure::Measure;
use crate::model::period::{self, Grain, Period};

#[derive(Debug, Clone, PartialEq)]
pub struct PeriodRow {
    pub metric: String,
    pub grain: Grain,
    pub start: DateTime<Utc>,
    pub dims: Dims,
    pub measure: Measure,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("period store: {0}")]
    Backend(String),
    #[error("period store: corrupt row: {0}")]
    Corrupt(String),
}

/// What [`PeriodStore::fetch`] read for one answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fetched {
    /// The stored rows among the periods asked for (a period without events has none).
    pub rows: HashMap<Period, Measure>,
    /// The meta values asked for that are set.
    pub meta: HashMap<String, String>,
}

#[async_trait]
pub trait PeriodStore: Send + Sync {
    /// Writes rows, replacing any row with the same key.
    async fn put(&self, rows: Vec<PeriodRow>) -> Result<(), StoreError>;

    /// Rows of one group (exactly these dimension values) with `from <= start < to`, by start.
    async fn series(
        &self,
        metric: &str,
        grain: Grain,
        dims: &Dims,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError>;

    /// Rows of every group grouped by exactly the dimensions `dim_set` (a [`crate::model::dims::dim_set_key`])
    /// with `from <= start < to`.
    async fn groups(
        &self,
        metric: &str,
        grain: Grain,
        dim_set: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError>;

    /// One answer's reads together: the rows of one group at exactly `periods`, and the `meta`
    /// values. This default reads each grain's span with `series`; DynamoDB overrides it with
    /// concurrent BatchGetItem requests, so that an answer costs one wave of requests.
    async fn fetch(
        &self,
        metric: &str,
        dims: &Dims,
        periods: &[Period],
        meta: &[&str],
    ) -> Result<Fetched, StoreError> {
        let wanted: BTreeSet<Period> = periods.iter().copied().collect();
        let mut fetched = Fetched::default();
        for (grain, (from, to)) in period::spans(periods) {
            for r in self.series(metric, grain, dims, from, to).await? {
                let period = Period {
                    grain: r.grain,
                    start: r.start,
                };
                if wanted.contains(&period) {
                    fetched.rows.insert(period, r.measure);
                }
            }
        }
        for key in meta {
            if let Some(v) = self.get_meta(key).await? {
                fetched.meta.insert(key.to_string(), v);
            }
        }
        Ok(fetched)
    }

    /// Deletes every row of `metric` (a retired metric version), whose groups are grouped by the
    /// dimension sets `dim_sets` (every subset of its dimensions, as [`crate::model::dims::dim_set_key`]s).
    async fn delete_metric(&self, metric: &str, dim_sets: &[String]) -> Result<(), StoreError>;

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Takes the lease `name` for `holder` until `until`, when it is free, expired at `now`, or
    /// already `holder`'s (a renewal): one atomic step, safe between processes and machines.
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Frees the lease `name` if `holder` holds it; anyone else's lease stays.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

/// A time-limited claim on work that must not run twice at once (the rollup's jobs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub holder: String,
    pub until: DateTime<Utc>,
}

impl Lease {
    /// Whether this lease stops `claimant` from taking it at `now`: it is someone else's and has
    /// not expired. The rule every adapter applies (DynamoDB in its condition expression).
    pub(crate) fn blocks(&self, claimant: &str, now: DateTime<Utc>) -> bool {
        self.holder != claimant && self.until > now
    }
}

/// The outcome of [`PeriodStore::claim_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease is the caller's until the time it asked for.
    Granted,
    /// Someone else holds it and it has not expired.
    HeldBy(Lease),
}

/// Meta key: end of the newest hour fully rolled up (RFC 3339).
pub const META_AS_OF: &str = "as_of";
/// Meta key: the reporting time zone the day and month rows were built in.
pub const META_REPORTING_TZ: &str = "reporting_tz";
/// Meta key: the format of the period states in object storage the store's rows were built from.
pub const META_PERIOD_STATE: &str = "period_state";
