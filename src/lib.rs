//! tally: product events in, admin-dashboard numbers out.
//!
//! The pipeline, in the order data flows:
//! - [`contract`]: the event format, validation and reasons for rejection;
//! - [`ingest`] and [`storage`]: partitioned Parquet on an object store, quarantine, touched hours;
//! - [`catalog`] and [`sql_engine`]: the data team's metric SQL, checked and run with DataFusion;
//! - [`rollup`]: hour, day and month rows, written to a [`store::PeriodStore`];
//! - [`query`] and [`http`]: the semantics and the API the admin dashboard calls.
//!
//! Nothing here knows about Lambda; the CLI and the functions call the same code.

pub mod aws;
pub mod catalog;
pub mod config;
pub mod contract;
pub mod demo;
pub mod dims;
pub mod event_table;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod local;
pub mod measure;
pub mod period;
pub mod period_state;
pub mod query;
pub mod rollup;
mod sdk_error;
pub mod send;
pub mod sql_engine;
pub mod storage;
pub mod store;
