//! Stored measures and how they merge across periods.
//!
//! Counts and sums add exactly. A distinct count stores the exact value of its own period beside a
//! HyperLogLog sketch (lg_k = 14: about 0.8% standard error, so the 2% bound holds at 2.5 sigma), which merges across periods.

use datasketches::hll::{HllSketch, HllType, HllUnion};
use rust_decimal::Decimal;

/// HLL precision: 2^14 registers, relative standard error 1.04 / 128 ≈ 0.8%; at most 8 KiB serialized.
pub(crate) const SKETCH_LG_K: u8 = 14;

#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// A count or a sum: exact, adds across periods and groups.
    Additive(Decimal),
    /// A distinct count: exact for its own period, and a serialized HLL sketch for merging.
    Distinct { exact: u64, sketch: Vec<u8> },
}

impl Measure {
    /// Builds a distinct measure from the 64-bit hashes of the distinct values of one period.
    pub fn distinct_from_hashes(hashes: &[u64]) -> Measure {
        let mut sketch = HllSketch::new(SKETCH_LG_K, HllType::Hll4).expect("valid lg_k");
        for h in hashes {
            sketch.update(h);
        }
        Measure::Distinct {
            exact: hashes.len() as u64,
            sketch: sketch.serialize(),
        }
    }
}

/// A value read for a range: exact unless it came from merging sketches of several periods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RangeValue {
    pub value: Decimal,
    pub approximate: bool,
}

/// Merges the measures of the periods that make up a range.
#[derive(Default)]
pub(crate) struct Merger {
    sum: Decimal,
    union: Option<HllUnion>,
    distinct_parts: usize,
    single_exact: u64,
    error: Option<String>,
}

impl Merger {
    pub(crate) fn add(&mut self, m: &Measure) {
        match m {
            Measure::Additive(v) => self.sum += *v,
            Measure::Distinct { exact, sketch } => {
                if *exact == 0 {
                    return;
                }
                self.distinct_parts += 1;
                self.single_exact = *exact;
                match HllSketch::deserialize(sketch) {
                    Ok(s) => self
                        .union
                        .get_or_insert_with(|| HllUnion::new(SKETCH_LG_K).expect("valid lg_k"))
                        .update(&s),
                    Err(e) => self.error = Some(format!("corrupt sketch: {e}")),
                }
            }
        }
    }

    pub(crate) fn finish(&self) -> Result<RangeValue, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        Ok(match (&self.union, self.distinct_parts) {
            (None, _) => RangeValue {
                value: self.sum,
                approximate: false,
            },
            // One non-empty period: its own exact value holds for the whole range.
            (Some(_), 1) => RangeValue {
                value: Decimal::from(self.single_exact),
                approximate: false,
            },
            (Some(u), _) => RangeValue {
                value: Decimal::from(u.estimate().round() as u64),
                approximate: true,
            },
        })
    }
}

/// Stable 64-bit hash of a distinct value (stable across builds: it is persisted).
pub(crate) fn hash_value(v: &str) -> u64 {
    let h = blake3::hash(v.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct(range: std::ops::Range<u64>) -> Measure {
        let mut hashes: Vec<u64> = range.map(|i| hash_value(&format!("user-{i}"))).collect();
        hashes.sort_unstable();
        Measure::distinct_from_hashes(&hashes)
    }

    #[test]
    fn additive_measures_add_exactly() {
        let mut m = Merger::default();
        m.add(&Measure::Additive("0.1".parse().unwrap()));
        m.add(&Measure::Additive("0.2".parse().unwrap()));
        let v = m.finish().unwrap();
        assert_eq!(v.value, "0.3".parse::<Decimal>().unwrap());
        assert!(!v.approximate);
    }

    #[test]
    fn one_period_is_exact_and_a_merge_is_within_the_bound() {
        let mut m = Merger::default();
        m.add(&distinct(0..5000));
        m.add(&Measure::distinct_from_hashes(&[]));
        assert_eq!(
            m.finish().unwrap(),
            RangeValue {
                value: 5000.into(),
                approximate: false
            }
        );

        let mut m = Merger::default();
        m.add(&distinct(0..30_000));
        m.add(&distinct(20_000..50_000));
        let v = m.finish().unwrap();
        assert!(v.approximate);
        let err = (v.value - Decimal::from(50_000)).abs() / Decimal::from(50_000);
        assert!(err < Decimal::new(2, 2), "relative error {err}");
    }
}
