//! tally: product events in, admin-dashboard numbers out.
//!
//! # One event, from a producer to the dashboard
//!
//! A service sends `{"event_id":"e1","event_type":"purchase","occurred_at":"2026-08-23T20:30:00+09:00",
//! "price":"19.99",...}`: a line of NDJSON to `tally ingest`, or a message on SQS (sent with
//! [`tools::send`] or any SDK) that the ingest function receives.
//!
//! 1. **Contract** ([`model`]): the line is parsed into an event (the required fields, typed
//!    optional ones, the rest kept as attributes; `occurred_at` turned to UTC), or rejected with a
//!    reason. The [`ingest`] write protocol stores the batch's events as Parquet under their UTC
//!    hour, then the rejects in quarantine, then a marker for each hour touched: in that order, so
//!    that a marker never names data that is not there and a retry rewrites the same object names.
//! 2. **Lake** ([`lake`]): `events/date=2026-08-23/hour=11/part-<hash>.parquet` on a directory or
//!    S3; compaction later merges an hour's files into one.
//! 3. **Rollup** ([`rollup`]): a run lists the touched-hour markers, reads each hour's events once
//!    (deduplicated by `event_id`), runs every metric's SQL from the data team's catalog (deployed
//!    into the lake with `tally sql deploy`) with DataFusion for every subset of its dimensions,
//!    and stores hour rows under the metric's version. Day, month and all-time rows of the
//!    reporting zone are merged from per-period states kept in the lake (exact sums, exact
//!    distinct sets), never read back from the store. Then the markers go, and the run spends its
//!    remaining time building new or changed metric versions beside the old ones.
//! 4. **Period store** ([`store`]): rows keyed by metric, grain, dimension values and period
//!    start, behind the [`store::PeriodStore`] port: SQLite on one machine, DynamoDB on AWS; every
//!    adapter passes one contract suite.
//! 5. **Serving** ([`serve`]): the dashboard asks `GET /v1/metrics/revenue?from=2026-08-20&to=2026-08-27`;
//!    the query plan picks the fewest stored periods that cover the range and the previous one,
//!    reads them in one wave, and answers the all-time total, both range totals, the change rate
//!    and the series, from the version the rollup has finished building; a ratio metric (an
//!    average, a formula) divides the answers of its two metrics.
//!
//! [`runtime`] wires these on one machine ([`runtime::Local`]) or on AWS ([`runtime::aws`]: each
//! function's environment in one typed place); the CLI (`src/main.rs`) and the three functions
//! (`functions/`) are thin layers over the same code.

#![deny(unreachable_pub)]

pub mod ingest;
pub mod lake;
pub mod model;
pub mod rollup;
pub mod runtime;
mod sdk_error;
pub mod serve;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tools;
