//! The rollup: the data team's metric SQL ([`catalog`]), deployed into the lake ([`deployed`]),
//! run with DataFusion over each touched hour ([`engine`]) into hour, day, month and all-time rows
//! of each metric version ([`Rollup`], [`live`]), as scheduled jobs ([`Job`]).

mod cardinality;
pub(crate) mod catalog;
pub(crate) mod deployed;
pub(crate) mod engine;
mod jobs;
mod lease;
pub(crate) mod live;
mod recompute;
mod shards;

pub use cardinality::{DEFAULT_MAX_VALUES, OTHER};
pub use catalog::{Catalog, CatalogError, MetricDef};
pub use deployed::{current as deployed_catalog, deploy, DeployError, Deployed};
pub use engine::{check as check_metric, EngineError, MeasureKind};
pub use jobs::{run as run_job, Job, JobError, JobReport, Skipped};
pub use lease::{LeaseLost, LEASE_NAME, LEASE_TTL};
pub use live::{version_key, Live, LiveError, Served, ServedMetric, Version};
pub use recompute::{
    dimension_sets, BuildProgress, Rollup, RollupError, RollupReport, DEFAULT_RETIRE_AFTER,
};
pub use shards::{
    run_shard, ShardJob, ShardOptions, ShardOutcome, ShardQueue, ShardQueueError,
    DEFAULT_SHARD_BYTES,
};
