//! The period store port: hourly, daily and monthly rows per metric and dimension group.
//!
//! Adapters: [`memory::MemoryStore`] (tests), [`sqlite::SqliteStore`] (one machine), DynamoDB (on
//! AWS). Every adapter passes [`contract::run`]. Writes are idempotent overwrites keyed by
//! (metric, grain, dimension values, period start).

pub mod contract;
pub mod dynamodb;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::dims::Dims;
use crate::measure::Measure;
use crate::period::Grain;

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

    /// Rows of every group grouped by exactly the dimensions `dim_set` (a [`crate::dims::dim_set_key`])
    /// with `from <= start < to`.
    async fn groups(
        &self,
        metric: &str,
        grain: Grain,
        dim_set: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError>;

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// Meta key: end of the newest hour fully rolled up (RFC 3339).
pub const META_AS_OF: &str = "as_of";
/// Meta key: the reporting time zone the day and month rows were built in.
pub const META_REPORTING_TZ: &str = "reporting_tz";
