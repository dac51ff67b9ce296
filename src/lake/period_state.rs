//! Each period's partial values per group, kept in object storage beside the events: the source
//! of every day, month and all-time row.
//!
//! Hour states come from the events; a day's state merges its hours' states, a month's its days',
//! all time its months'. Sums add ([`GroupSums`], exact decimals); distinct counts union exact
//! sets of values ([`GroupSets`]), so every stored period is exact and a late event recomputes one
//! hour and merges small states instead of rereading a month.
//!
//! Coarser rows are built from these objects and never from the period store: S3 reads see every
//! completed write (strong read-after-write consistency), while DynamoDB's index reads may not see
//! the rollup's own recent writes (see `docs/consistency.md`).
//!
//! Distinct values are kept as 64-bit hashes: exact up to hash collisions (about 3 in a million
//! at ten million distinct values in one period).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use rust_decimal::Decimal;

use super::objects::{Storage, StorageError};
use super::paths::StateFile;
use crate::model::{Grain, Measure};

/// Dimension-values key (see [`crate::model::dims::dims_key`]) to sorted, unique hashes of the values.
pub(crate) type GroupSets = BTreeMap<String, Vec<u64>>;
/// Dimension-values key to the exact sum (or count) of the period.
pub(crate) type GroupSums = BTreeMap<String, Decimal>;

/// Object reads in flight at once when merging the states of many periods.
const CONCURRENT_LOADS: usize = 16;

/// A period's per-group partial values, mergeable into a coarser period's.
pub(crate) trait PeriodState: Default + Send + Sized + 'static {
    /// Folder under `_state/`.
    const KIND: &'static str;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self, String>;
    /// Adds `other`'s values into `self`.
    fn merge_in(&mut self, other: Self);
    /// The stored measure of each group.
    fn measures(&self) -> Vec<(&str, Measure)>;
}

const SETS_MAGIC: &[u8; 4] = b"TDS1";
const SUMS_MAGIC: &[u8; 4] = b"TSU1";

impl PeriodState for GroupSets {
    const KIND: &'static str = "distinct";

    fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(8 + self.values().map(|v| v.len() * 8 + 64).sum::<usize>());
        out.extend_from_slice(SETS_MAGIC);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for (key, hashes) in self {
            put_key(&mut out, key);
            out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
            for h in hashes {
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader::open(bytes, SETS_MAGIC)?;
        let mut out = GroupSets::new();
        for _ in 0..r.u32()? {
            let key = r.key()?;
            let n = r.u32()? as usize;
            let raw = r.take(n.checked_mul(8).ok_or("corrupt length")?)?;
            let hashes = raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            out.insert(key, hashes);
        }
        Ok(out)
    }

    fn merge_in(&mut self, other: Self) {
        for (key, hashes) in other {
            let slot = self.entry(key).or_default();
            if slot.is_empty() {
                *slot = hashes;
            } else {
                *slot = merge_sorted(slot, &hashes);
            }
        }
    }

    fn measures(&self) -> Vec<(&str, Measure)> {
        self.iter()
            .map(|(k, hashes)| (k.as_str(), Measure::distinct_from_hashes(hashes)))
            .collect()
    }
}

impl PeriodState for GroupSums {
    const KIND: &'static str = "sums";

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.keys().map(|k| k.len() + 20).sum::<usize>());
        out.extend_from_slice(SUMS_MAGIC);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for (key, value) in self {
            put_key(&mut out, key);
            out.extend_from_slice(&value.serialize());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader::open(bytes, SUMS_MAGIC)?;
        let mut out = GroupSums::new();
        for _ in 0..r.u32()? {
            let key = r.key()?;
            let raw: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
            out.insert(key, Decimal::deserialize(raw));
        }
        Ok(out)
    }

    fn merge_in(&mut self, other: Self) {
        for (key, value) in other {
            *self.entry(key).or_default() += value;
        }
    }

    fn measures(&self) -> Vec<(&str, Measure)> {
        self.iter()
            .map(|(k, v)| (k.as_str(), Measure::Additive(*v)))
            .collect()
    }
}

fn put_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn open(bytes: &'a [u8], magic: &[u8; 4]) -> Result<Reader<'a>, String> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != magic {
            return Err("not a period-state file of this kind".into());
        }
        Ok(r)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated period-state file")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn key(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|e| e.to_string())
    }
}

fn path<S: PeriodState>(metric: &str, grain: Grain, start: DateTime<Utc>) -> Path {
    StateFile {
        kind: S::KIND.to_string(),
        metric: metric.to_string(),
        grain,
        start,
    }
    .path()
}

pub(crate) async fn save<S: PeriodState>(
    storage: &Storage,
    metric: &str,
    grain: Grain,
    start: DateTime<Utc>,
    state: &S,
) -> Result<(), StorageError> {
    storage
        .put_bytes(&path::<S>(metric, grain, start), state.encode())
        .await
}

/// The state of a period, or `None` when none was ever saved for it.
pub(crate) async fn load_saved<S: PeriodState>(
    storage: &Storage,
    metric: &str,
    grain: Grain,
    start: DateTime<Utc>,
) -> Result<Option<S>, StorageError> {
    let path = path::<S>(metric, grain, start);
    match storage.get_bytes(&path).await? {
        None => Ok(None),
        Some(bytes) => S::decode(&bytes)
            .map(Some)
            .map_err(|reason| StorageError::CorruptState {
                path: path.to_string(),
                reason,
            }),
    }
}

/// The merged states of the `finer` periods starting at `starts` (a period without a saved state,
/// one without events, adds nothing).
pub(crate) async fn merged<S: PeriodState>(
    storage: &Storage,
    metric: &str,
    finer: Grain,
    starts: &[DateTime<Utc>],
) -> Result<S, StorageError> {
    futures::stream::iter(starts)
        .map(|t| load_saved::<S>(storage, metric, finer, *t))
        .buffered(CONCURRENT_LOADS)
        .try_fold(S::default(), |mut acc, state| async move {
            acc.merge_in(state.unwrap_or_default());
            Ok(acc)
        })
        .await
}

/// The saved state of `grain` at `start` grown by the `finer` periods `grown_by`; `None` when
/// `grown_by` is `None` or nothing was saved, and the caller merges every finer period instead.
/// Only for states whose values only ever arrive (distinct sets): the periods not rebuilt then add
/// nothing new. A sum changes by replacement and is always merged again.
pub(crate) async fn load_grown<S: PeriodState>(
    storage: &Storage,
    metric: &str,
    (grain, start): (Grain, DateTime<Utc>),
    finer: Grain,
    grown_by: Option<&[DateTime<Utc>]>,
) -> Result<Option<S>, StorageError> {
    let Some(grown_by) = grown_by else {
        return Ok(None);
    };
    let Some(mut state) = load_saved::<S>(storage, metric, grain, start).await? else {
        return Ok(None);
    };
    state.merge_in(merged(storage, metric, finer, grown_by).await?);
    Ok(Some(state))
}

/// The starts of every period of `grain` with a saved state, ascending.
pub(crate) async fn starts<S: PeriodState>(
    storage: &Storage,
    metric: &str,
    grain: Grain,
) -> Result<Vec<DateTime<Utc>>, StorageError> {
    let mut out = Vec::new();
    let folder = StateFile::folder(S::KIND, metric, grain);
    for p in storage.list(folder.as_ref()).await? {
        match StateFile::parse(&p) {
            Some(state) => out.push(state.start),
            None => tracing::warn!(path = %p, "not a period-state file; skipped"),
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes every state of one metric version, of every kind and grain.
pub(crate) async fn delete_all(storage: &Storage, metric: &str) -> Result<usize, StorageError> {
    let mut deleted = 0;
    for kind in [GroupSums::KIND, GroupSets::KIND] {
        deleted += storage
            .delete_under(&format!("_state/{kind}/{metric}"))
            .await?;
    }
    Ok(deleted)
}

/// The sorted, unique union of two sorted, unique lists, in one linear pass (a month unions about
/// thirty day sets: sorting the growing set again each time made that quadratic in practice).
pub(crate) fn merge_sorted(a: &[u64], b: &[u64]) -> Vec<u64> {
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
    fn sets_round_trip_and_reject_truncation() {
        let mut sets = GroupSets::new();
        sets.insert("{}".into(), vec![1, 5, u64::MAX]);
        sets.insert(r#"{"country":"KR"}"#.into(), vec![]);
        let bytes = sets.encode();
        assert_eq!(GroupSets::decode(&bytes).unwrap(), sets);
        assert!(GroupSets::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(GroupSums::decode(&bytes).is_err(), "kinds are told apart");
    }

    #[test]
    fn sums_round_trip_exactly_and_reject_truncation() {
        let mut sums = GroupSums::new();
        sums.insert("{}".into(), "12345678901234.567891".parse().unwrap());
        sums.insert(r#"{"country":"KR"}"#.into(), Decimal::new(-5, 3));
        sums.insert(r#"{"country":null}"#.into(), Decimal::ZERO);
        let bytes = sums.encode();
        assert_eq!(GroupSums::decode(&bytes).unwrap(), sums);
        assert!(GroupSums::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(GroupSets::decode(&bytes).is_err(), "kinds are told apart");
    }

    #[test]
    fn sets_union_and_sums_add() {
        let mut a = GroupSets::from([("k".to_string(), vec![1, 3])]);
        a.merge_in(GroupSets::from([
            ("k".to_string(), vec![2, 3]),
            ("j".to_string(), vec![9]),
        ]));
        assert_eq!(a["k"], vec![1, 2, 3]);
        assert_eq!(a["j"], vec![9]);
        let mut s = GroupSums::from([("k".to_string(), Decimal::new(150, 2))]);
        s.merge_in(GroupSums::from([
            ("k".to_string(), Decimal::new(25, 1)),
            ("j".to_string(), Decimal::ONE),
        ]));
        assert_eq!(s["k"], Decimal::new(4, 0));
        assert_eq!(s["j"], Decimal::ONE);
    }

    #[tokio::test]
    async fn merged_adds_every_saved_period_and_skips_missing_ones() {
        let storage = Storage::new(std::sync::Arc::new(object_store::memory::InMemory::new()));
        let hour = |h: i64| DateTime::from_timestamp(h * 3600, 0).unwrap();
        for h in [0, 2] {
            let sums = GroupSums::from([("{}".to_string(), Decimal::from(h + 1))]);
            save(&storage, "m", Grain::Hour, hour(h), &sums)
                .await
                .unwrap();
        }
        let all: GroupSums = merged(&storage, "m", Grain::Hour, &[hour(0), hour(1), hour(2)])
            .await
            .unwrap();
        assert_eq!(all["{}"], Decimal::from(4));
        assert_eq!(
            starts::<GroupSums>(&storage, "m", Grain::Hour)
                .await
                .unwrap(),
            vec![hour(0), hour(2)]
        );
        assert!(starts::<GroupSets>(&storage, "m", Grain::Hour)
            .await
            .unwrap()
            .is_empty());
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
