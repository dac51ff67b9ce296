//! Ingest: parsed events to partitioned Parquet, rejects to quarantine, touched hours marked.
//!
//! Order matters for durability: event files first, then the quarantine file, then the "touched"
//! markers. A failure anywhere returns an error before anything is acknowledged, and a retry
//! rewrites the same object names, so nothing is lost and nothing is counted twice.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contract::{parse_ndjson, Event, Parsed};
use crate::period::floor_hour;
use crate::storage::{content_hash, Storage, StorageError};

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct IngestSummary {
    pub accepted: usize,
    pub rejected: usize,
    pub files_written: usize,
    /// UTC hours that received events, ascending.
    pub hours_touched: Vec<DateTime<Utc>>,
    /// Quarantine objects written.
    pub quarantined_to: Vec<String>,
}

impl IngestSummary {
    pub fn add(&mut self, other: IngestSummary) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.files_written += other.files_written;
        self.hours_touched.extend(other.hours_touched);
        self.hours_touched.sort();
        self.hours_touched.dedup();
        self.quarantined_to.extend(other.quarantined_to);
    }
}

/// Writes one parsed batch durably. Returns only after every object is written.
pub async fn write_parsed(
    storage: &Storage,
    parsed: &Parsed,
) -> Result<IngestSummary, StorageError> {
    let mut by_hour: BTreeMap<DateTime<Utc>, Vec<&Event>> = BTreeMap::new();
    for e in &parsed.events {
        by_hour
            .entry(floor_hour(e.occurred_at))
            .or_default()
            .push(e);
    }
    let mut written = Vec::with_capacity(by_hour.len());
    for (hour, mut events) in by_hour {
        let path = storage.write_hour(hour, &mut events).await?;
        written.push((hour, path));
    }
    let quarantine = storage.write_quarantine(&parsed.rejected).await?;
    for (hour, path) in &written {
        storage
            .mark_touched(*hour, &content_hash([path.as_ref().as_bytes()]))
            .await?;
    }
    Ok(IngestSummary {
        accepted: parsed.events.len(),
        rejected: parsed.rejected.len(),
        files_written: written.len(),
        hours_touched: written.iter().map(|(h, _)| *h).collect(),
        quarantined_to: quarantine.map(|p| p.to_string()).into_iter().collect(),
    })
}

/// Bytes of NDJSON parsed and written at a time, to bound memory on large inputs.
pub const CHUNK_BYTES: usize = 32 * 1024 * 1024;

/// Reads NDJSON from `reader` in chunks cut at line ends, writing each chunk as it goes.
pub async fn ingest_ndjson(
    storage: &Storage,
    mut reader: impl Read,
    received_at: DateTime<Utc>,
) -> Result<IngestSummary, StorageError> {
    let mut summary = IngestSummary::default();
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| StorageError::Other(format!("reading input: {e}")))?;
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        if carry.len() < CHUNK_BYTES {
            continue;
        }
        let Some(cut) = carry.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let rest = carry.split_off(cut + 1);
        summary.add(write_parsed(storage, &parse_ndjson(&carry, received_at)).await?);
        carry = rest;
    }
    if !carry.is_empty() {
        summary.add(write_parsed(storage, &parse_ndjson(&carry, received_at)).await?);
    }
    Ok(summary)
}
