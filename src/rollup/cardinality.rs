//! The bound on a metric's groups: each dimension keeps at most `max_values` values with a group
//! of their own (the metric's `-- max_values:` header, [`DEFAULT_MAX_VALUES`] unless it says
//! otherwise); every other value is counted in one group whose value is [`OTHER`].
//!
//! A producer sending a million distinct values of one dimension would otherwise make a million
//! groups in every dimension set that holds it, each a stored row and a DynamoDB write, in every
//! hour, day and month.
//!
//! Which values keep a group is decided once per metric version, first come first kept: the rollup
//! records the kept values of each dimension (`_state/values/<metric>.json`), adds the new values
//! of each hour it computes (in time order, and in value order within an hour) while there is
//! room, and never removes one. So a kept value was kept in every hour it appears in, and its
//! numbers are exact in every period; the `(other)` group is exact too (sums add, distinct sets
//! union), and so is every total.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::lake::paths::KeptValuesFile;
use crate::lake::{Storage, StorageError};
use crate::rollup::engine::{ComputedRow, MergedRows};

/// The value of the group that holds every value past a dimension's bound. A value spelt so by a
/// producer is counted in it too.
pub const OTHER: &str = "(other)";

/// Values per dimension with a group of their own, unless a metric's header says otherwise.
pub const DEFAULT_MAX_VALUES: usize = 10_000;

/// The values of each dimension that have a group of their own.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeptValues {
    dimensions: BTreeMap<String, BTreeSet<String>>,
}

impl KeptValues {
    pub(crate) async fn load(storage: &Storage, metric: &str) -> Result<KeptValues, StorageError> {
        let path = file(metric).path();
        match storage.get_bytes(&path).await? {
            None => Ok(KeptValues::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::CorruptState {
                path: path.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    pub(crate) async fn save(&self, storage: &Storage, metric: &str) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(self).expect("string sets serialise");
        storage.put_bytes(&file(metric).path(), bytes).await
    }

    pub(crate) async fn delete(storage: &Storage, metric: &str) -> Result<usize, StorageError> {
        storage.delete_under(file(metric).path().as_ref()).await
    }

    /// Keeps the new values of `rows`' `dimensions`, hour by hour in time order, while a
    /// dimension has fewer than `max` (its single-dimension rows name every value it has).
    /// True when any value was added.
    pub(crate) fn admit(
        &mut self,
        rows: &[ComputedRow],
        dimensions: &[String],
        max: usize,
    ) -> bool {
        let mut seen: BTreeMap<i64, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.dims.len() == 1) {
            if let Some((dimension, Some(value))) = r.dims.iter().next() {
                if value != OTHER {
                    seen.entry(r.period_start)
                        .or_default()
                        .entry(dimension)
                        .or_default()
                        .insert(value);
                }
            }
        }
        let mut added = false;
        for hour in seen.values() {
            for d in dimensions {
                let Some(values) = hour.get(d.as_str()) else {
                    continue;
                };
                let kept = self.dimensions.entry(d.clone()).or_default();
                for v in values {
                    if kept.len() >= max {
                        break;
                    }
                    added |= kept.insert((*v).to_string());
                }
            }
        }
        added
    }

    /// The rows with every value not kept made [`OTHER`], the groups that then coincide merged.
    pub(crate) fn fold(&self, rows: Vec<ComputedRow>) -> Vec<ComputedRow> {
        let kept = |d: &str, v: &str| self.dimensions.get(d).is_some_and(|k| k.contains(v));
        let folds = |r: &ComputedRow| {
            r.dims
                .iter()
                .any(|(d, v)| v.as_deref().is_some_and(|v| !kept(d, v)))
        };
        if !rows.iter().any(folds) {
            return rows;
        }
        let mut merged = MergedRows::default();
        for mut r in rows {
            for (d, v) in r.dims.iter_mut() {
                if v.as_deref().is_some_and(|value| !kept(d, value)) {
                    *v = Some(OTHER.to_string());
                }
            }
            merged.add(r);
        }
        merged.into_rows()
    }
}

fn file(metric: &str) -> KeptValuesFile {
    KeptValuesFile {
        metric: metric.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::model::Dims;
    use crate::rollup::engine::Computed;

    fn row(hour: i64, dims: &[(&str, Option<&str>)], value: Computed) -> ComputedRow {
        let dims: Dims = dims
            .iter()
            .map(|(d, v)| (d.to_string(), v.map(str::to_string)))
            .collect();
        ComputedRow {
            period_start: hour * 3600,
            dims,
            value,
        }
    }

    fn sum(v: i64) -> Computed {
        Computed::Additive(Decimal::from(v))
    }

    #[test]
    fn values_past_the_bound_fold_into_other_exactly() {
        let dims = vec!["country".to_string()];
        let hour0 = vec![
            row(0, &[("country", Some("KR"))], sum(5)),
            row(0, &[("country", Some("US"))], sum(7)),
            row(0, &[("country", None)], sum(1)),
            row(0, &[], sum(13)),
        ];
        let mut kept = KeptValues::default();
        assert!(kept.admit(&hour0, &dims, 2));
        assert_eq!(
            kept.fold(hour0.clone()),
            hour0,
            "under the bound nothing folds"
        );
        // A later hour brings two new values: no room, both counted in `(other)`, the total kept.
        let hour1 = vec![
            row(1, &[("country", Some("DE"))], sum(2)),
            row(1, &[("country", Some("FR"))], sum(3)),
            row(1, &[("country", Some("KR"))], sum(4)),
            row(1, &[], sum(9)),
        ];
        assert!(!kept.admit(&hour1, &dims, 2));
        let folded = kept.fold(hour1);
        assert_eq!(
            folded,
            vec![
                row(1, &[("country", Some(OTHER))], sum(5)),
                row(1, &[("country", Some("KR"))], sum(4)),
                row(1, &[], sum(9)),
            ]
        );
    }

    #[test]
    fn the_first_hours_values_are_kept_in_value_order_when_room_runs_out() {
        let dims = vec!["item_id".to_string(), "country".to_string()];
        let rows = vec![
            row(
                3,
                &[("item_id", Some("b")), ("country", Some("KR"))],
                Computed::Distinct(vec![1, 2]),
            ),
            row(
                3,
                &[("item_id", Some("c")), ("country", Some("KR"))],
                Computed::Distinct(vec![2, 3]),
            ),
            row(3, &[("item_id", Some("c"))], Computed::Distinct(vec![2, 3])),
            row(3, &[("item_id", Some("b"))], Computed::Distinct(vec![1, 2])),
            row(
                3,
                &[("country", Some("KR"))],
                Computed::Distinct(vec![1, 2, 3]),
            ),
            row(2, &[("item_id", Some("z"))], Computed::Distinct(vec![9])),
        ];
        let mut kept = KeptValues::default();
        kept.admit(&rows, &dims, 2);
        // Hour 2 came first in time: `z`, then `b` of hour 3; `c` found no room.
        let folded = kept.fold(rows);
        assert!(folded.contains(&row(
            3,
            &[("item_id", Some(OTHER)), ("country", Some("KR"))],
            Computed::Distinct(vec![2, 3])
        )));
        assert!(folded.contains(&row(
            3,
            &[("item_id", Some(OTHER))],
            Computed::Distinct(vec![2, 3])
        )));
        assert!(folded.contains(&row(
            3,
            &[("item_id", Some("b"))],
            Computed::Distinct(vec![1, 2])
        )));
        assert_eq!(folded.len(), 6);
    }

    #[test]
    fn a_producers_value_spelt_other_is_counted_in_other() {
        let dims = vec!["country".to_string()];
        let rows = vec![
            row(0, &[("country", Some(OTHER))], sum(1)),
            row(0, &[("country", Some("KR"))], sum(2)),
        ];
        let mut kept = KeptValues::default();
        kept.admit(&rows, &dims, 10);
        assert_eq!(kept.fold(rows.clone()), rows);
        assert_eq!(kept.dimensions["country"].len(), 1);
    }
}
