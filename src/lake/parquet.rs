//! Parquet files of events: how they are written (encodings, statistics, compression by writer) and
//! how duplicate events are dropped when they are read.

use std::collections::HashMap;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use foldhash::fast::RandomState;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::objects::StorageError;
use crate::model::event_table;

/// Columns whose values are (nearly) unique per file: a dictionary only costs hashing before the
/// writer falls back to plain encoding, so they are written plain from the start.
const UNIQUE_COLUMNS: [&str; 6] = [
    "event_id",
    "user_id",
    "session_id",
    "correlation_id",
    "occurred_at",
    "attributes",
];
/// Identifier columns no query prunes on: min/max statistics on them cost a string comparison per
/// value and never skip a row group. `event_type` and the times keep theirs.
const UNPRUNED_COLUMNS: [&str; 5] = [
    "event_id",
    "session_id",
    "correlation_id",
    "user_id",
    "attributes",
];

/// Who writes a Parquet file, which sets how hard it is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// By ingest, on the hot path: zstd level 1 measured ~4% fewer instructions per event than
    /// level 3 on the bench data, with files no larger (pages of a few thousand rows).
    Ingested,
    /// By compaction, once per hour, for files that live long: level 3.
    Compacted,
}

fn writer_properties(written: Written) -> Result<WriterProperties, StorageError> {
    let level = match written {
        Written::Ingested => 1,
        Written::Compacted => 3,
    };
    let mut props =
        WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(level)?));
    for c in UNIQUE_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for c in UNPRUNED_COLUMNS {
        props = props.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    Ok(props.build())
}

pub(crate) fn write_parquet(
    batches: &[RecordBatch],
    written: Written,
) -> Result<Vec<u8>, StorageError> {
    let props = writer_properties(written)?;
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, event_table::schema(), Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(buf)
}

/// Keeps one row per `event_id`: the earliest received, ties going to the first read. Duplicates are
/// retries of the same event, so which copy is kept changes no number when they agree; when they
/// do not, the first one received wins, whatever the file layout (before or after compaction).
pub(crate) fn dedupe(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, StorageError> {
    // Seeded per process: ids come from producers, so collisions cannot be planned.
    let mut best: HashMap<&str, (i64, usize, usize), RandomState> = HashMap::default();
    let mut total = 0;
    for (bi, b) in batches.iter().enumerate() {
        let ids = event_table::event_ids(b)?;
        let received = event_table::received_at(b)?;
        total += b.num_rows();
        for row in 0..b.num_rows() {
            let candidate = (received.value(row), bi, row);
            best.entry(ids.value(row))
                .and_modify(|cur| {
                    if candidate < *cur {
                        *cur = candidate
                    }
                })
                .or_insert(candidate);
        }
    }
    if best.len() == total {
        return Ok(batches);
    }
    let mut keep: Vec<Vec<bool>> = batches.iter().map(|b| vec![false; b.num_rows()]).collect();
    for (_, bi, row) in best.values() {
        keep[*bi][*row] = true;
    }
    let mut out = Vec::with_capacity(batches.len());
    for (b, mask) in batches.iter().zip(keep) {
        out.push(filter_record_batch(b, &BooleanArray::from(mask))?);
    }
    Ok(out)
}
