//! Compaction: the files of each closed hour merged into one, duplicate events dropped, and written
//! with zstd (ingest writes uncompressed, for speed). No number changes: the rollup counts each
//! `event_id` once either way.

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use serde::Serialize;

use super::objects::{content_hash, Storage, StorageError};
use super::parquet::{dedupe, write_parquet, Written};
use super::paths::EventFile;
use crate::model::event_table;

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct CompactReport {
    pub partitions_compacted: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub duplicates_dropped: usize,
}

impl Storage {
    /// Merges the files of each hour that ended before `closed_before` into one, dropping duplicates;
    /// an hour of one file is rewritten once, compressed.
    /// Numbers do not change: the rollup counts each `event_id` once either way.
    pub async fn compact(
        &self,
        closed_before: DateTime<Utc>,
    ) -> Result<CompactReport, StorageError> {
        let mut report = CompactReport::default();
        for hour in self.hours_with_data().await? {
            if hour + chrono::Duration::hours(1) > closed_before {
                continue;
            }
            let files = self.hour_files(hour).await?;
            // Ingest writes its files uncompressed, for speed: an hour is rewritten while it holds
            // more than one file or a file as ingest wrote it.
            let done = |f: &object_store::path::Path| {
                EventFile::parse(f).is_some_and(|f| f.is_compacted())
            };
            if files.len() < 2 && files.iter().all(done) {
                continue;
            }
            let batches = self.read_files(&files).await?;
            let rows_before: usize = batches.iter().map(|b| b.num_rows()).sum();
            let merged = dedupe(batches)?;
            let merged = arrow::compute::concat_batches(&event_table::schema(), &merged)?;
            let ids = event_table::event_ids(&merged)?;
            let mut sorted_ids: Vec<&str> = ids.iter().flatten().collect();
            sorted_ids.sort_unstable();
            // Named apart from any file ingest writes: an ingest file named by the same ids would
            // otherwise be this file, and a redelivered batch rewriting it would replace the
            // merged copies (the first received of each event) with its own.
            let name = content_hash(
                std::iter::once(&b"compacted"[..]).chain(sorted_ids.iter().map(|s| s.as_bytes())),
            );
            let target = EventFile::compacted(hour, &name).path();
            self.store
                .put(
                    &target,
                    PutPayload::from(write_parquet(
                        std::slice::from_ref(&merged),
                        Written::Compacted,
                    )?),
                )
                .await?;
            // Only after the merged file is durable do the parts go; a crash in between leaves
            // duplicates, which the rollup drops.
            for f in files.iter().filter(|f| **f != target) {
                self.store.delete(f).await?;
            }
            report.partitions_compacted += 1;
            report.files_before += files.len();
            report.files_after += 1;
            report.duplicates_dropped += rows_before - merged.num_rows();
        }
        Ok(report)
    }
}
