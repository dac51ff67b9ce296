//! The rollup: the data team's metric SQL ([`catalog`]), run with DataFusion over each touched hour
//! ([`engine`]), into hour, day, month and all-time rows ([`Rollup`]), as scheduled jobs ([`Job`]).

pub(crate) mod catalog;
pub(crate) mod engine;
mod jobs;
mod recompute;

pub use catalog::{Catalog, CatalogError, MetricDef};
pub use engine::{check as check_metric, EngineError, MeasureKind};
pub use jobs::{run as run_job, Job, JobError, JobReport};
pub use recompute::{dimension_sets, Rollup, RollupError, RollupReport};
