//! Exact distinct sets per metric and period, kept in object storage beside the events.
//!
//! A distinct count is exact for its own period only if the period's set of values is known. Hour
//! sets come from the events; day sets are unions of hour sets and month sets unions of day sets,
//! so a late event recomputes one hour and merges small sets instead of rereading a month.
//! Values are kept as 64-bit hashes: exact up to hash collisions (about 3 in a million at ten
//! million distinct values in one period).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use object_store::path::Path;

use crate::period::Grain;
use crate::storage::{Storage, StorageError};

const MAGIC: &[u8; 4] = b"TDS1";

/// Dimension-values key (see [`crate::dims::dims_key`]) to sorted hashes.
pub type GroupSets = BTreeMap<String, Vec<u64>>;

fn path(metric: &str, grain: Grain, start: DateTime<Utc>) -> Path {
    Path::from(format!(
        "_state/distinct/{metric}/{grain}/{}.bin",
        start.timestamp()
    ))
}

pub fn encode(sets: &GroupSets) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + sets.values().map(|v| v.len() * 8 + 64).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sets.len() as u32).to_le_bytes());
    for (key, hashes) in sets {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
        for h in hashes {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<GroupSets, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != MAGIC {
        return Err("not a distinct-set file".into());
    }
    let groups = r.u32()?;
    let mut out = GroupSets::new();
    for _ in 0..groups {
        let len = r.u32()? as usize;
        let key = String::from_utf8(r.take(len)?.to_vec()).map_err(|e| e.to_string())?;
        let n = r.u32()? as usize;
        let raw = r.take(n * 8)?;
        let hashes = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        out.insert(key, hashes);
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated distinct-set file")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

pub async fn save(
    storage: &Storage,
    metric: &str,
    grain: Grain,
    start: DateTime<Utc>,
    sets: &GroupSets,
) -> Result<(), StorageError> {
    storage
        .put_bytes(&path(metric, grain, start), encode(sets))
        .await
}

/// The sets of a period; empty when the period had no events.
pub async fn load(
    storage: &Storage,
    metric: &str,
    grain: Grain,
    start: DateTime<Utc>,
) -> Result<GroupSets, StorageError> {
    Ok(load_saved(storage, metric, grain, start)
        .await?
        .unwrap_or_default())
}

/// The sets of a period, or `None` when none were ever saved for it.
pub async fn load_saved(
    storage: &Storage,
    metric: &str,
    grain: Grain,
    start: DateTime<Utc>,
) -> Result<Option<GroupSets>, StorageError> {
    match storage.get_bytes(&path(metric, grain, start)).await? {
        None => Ok(None),
        Some(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|e| StorageError::Other(format!("{}: {e}", path(metric, grain, start)))),
    }
}

/// The union of the sets of the `finer` periods starting at `starts`.
pub async fn union_of(
    storage: &Storage,
    metric: &str,
    finer: Grain,
    starts: &[DateTime<Utc>],
) -> Result<GroupSets, StorageError> {
    let mut sets = GroupSets::new();
    for t in starts {
        union_into(&mut sets, load(storage, metric, finer, *t).await?);
    }
    Ok(sets)
}

/// The saved sets of `grain` at `start` grown by the `finer` periods `grown_by` (values only ever
/// arrive, so the periods not rebuilt add nothing new); `None` when `grown_by` is `None` or nothing
/// was saved, and the caller unions every finer period instead.
pub async fn load_grown(
    storage: &Storage,
    metric: &str,
    (grain, start): (Grain, DateTime<Utc>),
    finer: Grain,
    grown_by: Option<&[DateTime<Utc>]>,
) -> Result<Option<GroupSets>, StorageError> {
    let Some(grown_by) = grown_by else {
        return Ok(None);
    };
    let Some(mut sets) = load_saved(storage, metric, grain, start).await? else {
        return Ok(None);
    };
    union_into(&mut sets, union_of(storage, metric, finer, grown_by).await?);
    Ok(Some(sets))
}

/// The starts of every period of `grain` with saved sets, ascending.
pub async fn starts(
    storage: &Storage,
    metric: &str,
    grain: Grain,
) -> Result<Vec<DateTime<Utc>>, StorageError> {
    let mut out = Vec::new();
    for p in storage
        .list(&format!("_state/distinct/{metric}/{grain}"))
        .await?
    {
        let stem = p.filename().and_then(|f| f.strip_suffix(".bin"));
        match stem
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|t| DateTime::from_timestamp(t, 0))
        {
            Some(t) => out.push(t),
            None => tracing::warn!(path = %p, "not a distinct-state file; skipped"),
        }
    }
    out.sort();
    Ok(out)
}

/// Adds `other` into `into`, keeping each group's hashes sorted and unique.
pub fn union_into(into: &mut GroupSets, other: GroupSets) {
    for (key, hashes) in other {
        let slot = into.entry(key).or_default();
        if slot.is_empty() {
            *slot = hashes;
        } else {
            *slot = merge_sorted(slot, &hashes);
        }
    }
}

/// The sorted, unique union of two sorted, unique lists, in one linear pass (a month unions about
/// thirty day sets: sorting the growing set again each time made that quadratic in practice).
fn merge_sorted(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out.push(x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let mut sets = GroupSets::new();
        sets.insert("{}".into(), vec![1, 5, u64::MAX]);
        sets.insert(r#"{"country":"KR"}"#.into(), vec![]);
        let bytes = encode(&sets);
        assert_eq!(decode(&bytes).unwrap(), sets);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn union_dedupes() {
        let mut a = GroupSets::from([("k".to_string(), vec![1, 3])]);
        union_into(
            &mut a,
            GroupSets::from([("k".to_string(), vec![2, 3]), ("j".to_string(), vec![9])]),
        );
        assert_eq!(a["k"], vec![1, 2, 3]);
        assert_eq!(a["j"], vec![9]);
    }

    #[test]
    fn merge_equals_sort_and_dedup() {
        use proptest::prelude::*;
        proptest!(|(a in proptest::collection::btree_set(0u64..64, 0..40),
                    b in proptest::collection::btree_set(0u64..64, 0..40))| {
            let (a, b): (Vec<u64>, Vec<u64>) = (a.into_iter().collect(), b.into_iter().collect());
            let mut want = [a.clone(), b.clone()].concat();
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(merge_sorted(&a, &b), want);
        });
    }
}
