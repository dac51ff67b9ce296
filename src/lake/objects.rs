//! The lake's object store and the I/O on it: event files by hour, quarantine, touched-hour
//! markers, raw bytes for the period states. The same code runs on a local directory and on S3
//! through `object_store`; object names are in [`super::paths`].

use std::path::Path as FsPath;
use std::sync::Arc;

use arrow::array::{ArrayData, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::filter_record_batch;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::parquet::{dedupe, write_parquet, Written};
use super::paths::{EventFile, HourPartition, QuarantineFile, TouchedMarkerPath, EVENTS, TOUCHED};
use crate::model::event::{Event, Rejected};
use crate::model::event_table;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    /// An object where the lake's layout has none: left by another tool, or by hand.
    #[error("{path} is not a {expected} of the lake's layout")]
    Unexpected {
        path: String,
        expected: &'static str,
    },
    /// A saved period state that cannot be read; a full rollup writes it again.
    #[error("{path}: corrupt period state ({reason}); a full rollup rewrites it")]
    CorruptState { path: String, reason: String },
}

/// The event lake and its side areas on one object store.
#[derive(Clone)]
pub struct Storage {
    pub(super) store: Arc<dyn ObjectStore>,
}

/// A pending "hour touched" marker left by ingest for the rollup.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchedMarker {
    pub hour: DateTime<Utc>,
    pub path: Path,
}

/// One event file of an hour as listed: its path and size in bytes (what the rollup plans by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedFile {
    pub(crate) path: Path,
    pub(crate) size: u64,
}

/// Which of an hour's events a read keeps: those whose `event_id` hashes to `index` of `count`.
/// Every copy of an event hashes alike, so each shard drops duplicates on its own and the shards
/// of an hour add up to the whole hour, each event once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl Shard {
    pub(crate) const WHOLE: Shard = Shard { index: 0, count: 1 };

    fn holds(self, event_id: &str) -> bool {
        id_hash(event_id.as_bytes()) % u64::from(self.count) == u64::from(self.index)
    }
}

/// A hash of an event id that stays the same across processes, builds and Rust versions (XXH64 is
/// specified to the bit), so every worker of a fan-out agrees on an event's shard. It replaced
/// FNV-1a, which reads a byte at a time and was 5% of ingest's time.
pub(crate) fn id_hash(bytes: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, bytes)
}

/// An ingest file's name: a hash of its columns, every one but the time its events were
/// received. The same batch delivered again names the same file (and finds it written); copies of
/// an event that differ name different files, and the one received first is the one that counts.
///
/// The column buffers are hashed as they are built (values, offsets and validity, each framed by
/// its length): framing every field of every event again was a tenth of ingest's time.
fn event_file_name(batch: &RecordBatch) -> String {
    let columns: Vec<ArrayData> = batch
        .schema_ref()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, _)| field.name() != event_table::RECEIVED_AT)
        .map(|(_, column)| column.to_data())
        .collect();
    // A column without nulls has no validity bitmap and frames an empty one: a written file has
    // rows, so a bitmap that is there is never empty.
    content_hash(columns.iter().flat_map(|data| {
        let validity = data.nulls().map_or(&[][..], |n| n.validity());
        std::iter::once(validity).chain(data.buffers().iter().map(|b| b.as_slice()))
    }))
}

/// Rows per batch read back from Parquet: large enough that per-batch costs vanish, small enough
/// that a shard's filter never holds much it drops.
const BATCH_ROWS: usize = 8192;

/// Short content hash used in object names.
pub(crate) fn content_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().to_hex()[..32].to_string()
}

impl Storage {
    pub fn new(store: Arc<dyn ObjectStore>) -> Storage {
        Storage { store }
    }

    /// A local directory, created if missing.
    pub fn local(dir: &FsPath) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(Storage::new(Arc::new(LocalFileSystem::new_with_prefix(
            dir,
        )?)))
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes the events of one UTC hour as one Parquet object, unless that object exists already,
    /// named by its content; its rows are `events[rows[0]]`, `events[rows[1]]`... (ingest groups
    /// them by type: see `PRUNED_COLUMNS`). Returns its path.
    pub async fn write_hour(
        &self,
        hour: DateTime<Utc>,
        events: &[&Event<'_>],
        rows: Vec<u32>,
    ) -> Result<Path, StorageError> {
        // Built in the order the events arrived, which reads them as they lie in the input, then
        // put in the file's order column by column: appended in the file's order, the events were
        // read all over the input, a sixth of ingest's time waiting on memory.
        let arrived = event_table::to_record_batch(events);
        let batch = arrow::compute::take_record_batch(&arrived, &UInt32Array::from(rows))?;
        let name = event_file_name(&batch);
        let path = EventFile { hour, name }.path();
        let payload = PutPayload::from(write_parquet(&[batch], Written::Ingested)?);
        // A redelivered batch finds its file there and keeps it: the copies keep the time they
        // were first received, so the first received stays the copy that counts.
        match self
            .store
            .put_opts(&path, payload, PutMode::Create.into())
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(path),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes rejected input with reasons as NDJSON. Returns the path, or None when nothing was rejected.
    pub async fn write_quarantine(
        &self,
        rejected: &[Rejected],
    ) -> Result<Option<Path>, StorageError> {
        let Some(first) = rejected.first() else {
            return Ok(None);
        };
        // Named by the rejected lines and reasons only, so a redelivered batch (new `received_at`)
        // overwrites its quarantine file instead of adding a second one.
        let name = content_hash(
            rejected
                .iter()
                .flat_map(|r| [r.raw.as_slice(), r.reason.as_bytes()]),
        );
        let mut body = Vec::new();
        for r in rejected {
            let record = match std::str::from_utf8(&r.raw) {
                Ok(text) => {
                    serde_json::json!({"received_at": r.received_at.to_rfc3339(), "reason": r.reason, "raw": text})
                }
                Err(_) => {
                    serde_json::json!({"received_at": r.received_at.to_rfc3339(), "reason": r.reason, "raw_hex": hex(&r.raw)})
                }
            };
            serde_json::to_writer(&mut body, &record).expect("JSON values write to memory");
            body.push(b'\n');
        }
        let path = QuarantineFile {
            received: first.received_at.date_naive(),
            name,
        }
        .path();
        self.store.put(&path, PutPayload::from(body)).await?;
        Ok(Some(path))
    }

    /// Records that `hour` received data in batch `batch_id`. Written after the data itself.
    pub async fn mark_touched(
        &self,
        hour: DateTime<Utc>,
        batch_id: &str,
    ) -> Result<(), StorageError> {
        let path = TouchedMarkerPath {
            hour,
            batch: batch_id.to_string(),
        }
        .path();
        self.store.put(&path, PutPayload::default()).await?;
        Ok(())
    }

    pub async fn touched_markers(&self) -> Result<Vec<TouchedMarker>, StorageError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(TOUCHED)))
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for m in metas {
            let marker =
                TouchedMarkerPath::parse(&m.location).ok_or_else(|| StorageError::Unexpected {
                    path: m.location.to_string(),
                    expected: "touched-hour marker",
                })?;
            out.push(TouchedMarker {
                hour: marker.hour,
                path: m.location,
            });
        }
        out.sort_by(|a, b| (a.hour, a.path.as_ref()).cmp(&(b.hour, b.path.as_ref())));
        Ok(out)
    }

    pub async fn clear_markers(&self, markers: &[TouchedMarker]) -> Result<(), StorageError> {
        for m in markers {
            match self.store.delete(&m.path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Every hour that has event files, ascending.
    pub async fn hours_with_data(&self) -> Result<Vec<DateTime<Utc>>, StorageError> {
        let mut hours = Vec::new();
        let dates = self
            .store
            .list_with_delimiter(Some(&Path::from(EVENTS)))
            .await?;
        for date in dates.common_prefixes {
            for hour in self
                .store
                .list_with_delimiter(Some(&date))
                .await?
                .common_prefixes
            {
                match HourPartition::parse(&hour) {
                    Some(p) => hours.push(p.hour),
                    None => {
                        return Err(StorageError::Unexpected {
                            path: hour.to_string(),
                            expected: "partition of events by hour",
                        })
                    }
                }
            }
        }
        hours.sort();
        Ok(hours)
    }

    pub(super) async fn hour_files(&self, hour: DateTime<Utc>) -> Result<Vec<Path>, StorageError> {
        Ok(self
            .listed_hour_files(hour)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    /// The event files of one hour with their sizes, in name order (the order they are read in).
    pub(crate) async fn listed_hour_files(
        &self,
        hour: DateTime<Utc>,
    ) -> Result<Vec<ListedFile>, StorageError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&HourPartition { hour }.path()))
            .try_collect()
            .await?;
        let mut files: Vec<ListedFile> = metas
            .into_iter()
            .filter(|m| EventFile::parse(&m.location).is_some())
            .map(|m| ListedFile {
                path: m.location,
                size: m.size,
            })
            .collect();
        files.sort_by(|a, b| a.path.as_ref().cmp(b.path.as_ref()));
        Ok(files)
    }

    /// The events of `shard` in `files` (one hour's), each `event_id` once. Files are read one at
    /// a time and decoded a batch at a time, keeping only the shard's rows: memory holds the
    /// shard's events and one compressed file (about a twentieth of its events in Arrow).
    pub(crate) async fn read_events(
        &self,
        files: &[ListedFile],
        shard: Shard,
    ) -> Result<Vec<RecordBatch>, StorageError> {
        let mut batches = Vec::new();
        for f in files {
            let bytes = self.store.get(&f.path).await?.bytes().await?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
                .with_batch_size(BATCH_ROWS)
                .build()?;
            for b in reader {
                let b = b?;
                if shard == Shard::WHOLE {
                    batches.push(b);
                    continue;
                }
                let ids = event_table::event_ids(&b)?;
                let mask: BooleanArray = ids
                    .iter()
                    .map(|id| Some(id.is_some_and(|id| shard.holds(id))))
                    .collect();
                let kept = filter_record_batch(&b, &mask)?;
                if kept.num_rows() > 0 {
                    batches.push(kept);
                }
            }
        }
        dedupe(batches)
    }

    pub(super) async fn read_files(
        &self,
        paths: &[Path],
    ) -> Result<Vec<RecordBatch>, StorageError> {
        let mut batches = Vec::new();
        for p in paths {
            let bytes = self.store.get(p).await?.bytes().await?;
            for b in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
                batches.push(b?);
            }
        }
        Ok(batches)
    }

    /// The events of one UTC hour, each `event_id` once.
    pub async fn read_hour(&self, hour: DateTime<Utc>) -> Result<Vec<RecordBatch>, StorageError> {
        let files = self.listed_hour_files(hour).await?;
        self.read_events(&files, Shard::WHOLE).await
    }

    pub async fn put_bytes(&self, path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store.put(path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    pub async fn get_bytes(&self, path: &Path) -> Result<Option<Bytes>, StorageError> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object under a prefix; returns how many there were.
    pub(crate) async fn delete_under(&self, prefix: &str) -> Result<usize, StorageError> {
        let paths = self.list(prefix).await?;
        for p in &paths {
            match self.store.delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(paths.len())
    }

    /// Lists object paths under a prefix (for tests and tools).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Path>, StorageError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await?;
        let mut paths: Vec<Path> = metas.into_iter().map(|m| m.location).collect();
        paths.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        Ok(paths)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use object_store::memory::InMemory;

    use super::*;

    fn rejected(at: DateTime<Utc>) -> Vec<Rejected> {
        vec![Rejected {
            raw: b"{not json".to_vec(),
            reason: "not valid JSON".into(),
            received_at: at,
        }]
    }

    #[tokio::test]
    async fn a_redelivered_batch_overwrites_its_quarantine_file() {
        let storage = Storage::new(Arc::new(InMemory::new()));
        let first = Utc.with_ymd_and_hms(2026, 8, 3, 10, 0, 0).unwrap();
        let a = storage.write_quarantine(&rejected(first)).await.unwrap();
        let b = storage
            .write_quarantine(&rejected(first + chrono::Duration::minutes(5)))
            .await
            .unwrap();
        assert_eq!(a, b);
        let mut other = rejected(first);
        other[0].reason = "another reason".into();
        assert_ne!(storage.write_quarantine(&other).await.unwrap(), a);
        assert_eq!(storage.write_quarantine(&[]).await.unwrap(), None);
    }
}
