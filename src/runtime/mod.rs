//! Where the pipeline runs: one machine ([`Local`]: a directory and SQLite) or AWS ([`aws`]: each
//! function's environment, read and checked at start, and its clients).

pub mod aws;
pub(crate) mod config;
mod local;

pub use config::{parse_mib, parse_reporting_tz, ConfigError};
pub use local::{Local, LocalError};
