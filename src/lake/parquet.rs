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
/// The columns with statistics: rows are grouped by type and every file holds one hour, so the
/// type and the times are what a reader can skip pages by. Every other column holds nearly every
/// value in every page (ids, users, countries...): its min/max would cost a comparison per value
/// and skip nothing.
const PRUNED_COLUMNS: [&str; 3] = ["event_type", "occurred_at", "received_at"];

/// Who writes a Parquet file, which sets how it is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// By ingest, on the hot path: not compressed. zstd (level 1) was 14% of ingest's instructions
    /// on the bench data, LZ4 still 7%; dictionary and plain encodings alone leave a file about a
    /// third the size of its NDJSON, and compaction re-encodes every closed hour (bench/RESULTS.md).
    Ingested,
    /// By compaction, once per hour, for files that live long: zstd level 3.
    Compacted,
}

fn writer_properties(written: Written) -> Result<WriterProperties, StorageError> {
    let compression = match written {
        Written::Ingested => Compression::UNCOMPRESSED,
        Written::Compacted => Compression::ZSTD(ZstdLevel::try_new(3)?),
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::None);
    for c in UNIQUE_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for c in PRUNED_COLUMNS {
        props = props.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::Page);
    }
    Ok(props.build())
}

pub(crate) fn write_parquet(
    batches: &[RecordBatch],
    written: Written,
) -> Result<Vec<u8>, StorageError> {
    let props = writer_properties(written)?;
    // An uncompressed file is about the size of its columns: sized up front, the buffer is not
    // copied as it grows.
    let mut buf = match written {
        Written::Ingested => {
            Vec::with_capacity(batches.iter().map(RecordBatch::get_array_memory_size).sum())
        }
        Written::Compacted => Vec::new(),
    };
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
