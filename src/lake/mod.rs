//! The event lake on an object store (a local directory or S3): event files partitioned by UTC hour,
//! quarantined input, touched-hour markers for the rollup, compaction, and the period states the
//! rollup merges. Object names are typed in [`paths`].

mod compaction;
pub(crate) mod objects;
pub(crate) mod parquet;
pub(crate) mod paths;
pub(crate) mod period_state;

pub use compaction::CompactReport;
pub(crate) use objects::{content_hash, id_hash};
pub(crate) use objects::{ListedFile, Shard};
pub use objects::{Storage, StorageError, TouchedMarker};
