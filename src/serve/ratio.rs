//! Ratio metrics: a formula (`-- formula: revenue / purchases`) or an average (`AVG(x)`, stored as
//! a sum and a count) is answered by asking both of its metrics the same question and dividing,
//! point by point and group by group. A zero denominator gives no value (`null`), never zero;
//! `approximate` carries through from either side.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::rollup::catalog::Formula;
use crate::serve::query::{
    bad, change_rate, Compare, Interval, MetricResponse, QueryError, QueryParams, QueryService,
    TimeRange,
};

/// Decimal places a ratio is rounded to.
const RATIO_PLACES: u32 = 6;

/// What `GET /v1/metrics/{name}` answers: a stored metric's numbers, or a ratio's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Ratio(RatioResponse),
    Metric(MetricResponse),
}

/// A ratio metric's answer: the fields of [`MetricResponse`], each number `null` where the
/// denominator is zero, and the `formula` it divides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioResponse {
    pub metric: String,
    pub version: String,
    /// `numerator / denominator`.
    pub formula: String,
    pub unit: String,
    pub tz: String,
    pub range: TimeRange,
    pub compare: Compare,
    pub previous_range: TimeRange,
    pub clipped: bool,
    #[serde(with = "exact_or_null")]
    pub total: Option<Decimal>,
    #[serde(with = "exact_or_null")]
    pub current_total: Option<Decimal>,
    #[serde(with = "exact_or_null")]
    pub previous_total: Option<Decimal>,
    pub change_rate: Option<f64>,
    pub interval: Interval,
    pub series: Vec<RatioPoint>,
    pub previous_series: Vec<RatioPoint>,
    pub approximate: bool,
    pub as_of: Option<String>,
    pub filters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub groups: Option<Vec<RatioGroup>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioPoint {
    pub start: String,
    #[serde(with = "exact_or_null")]
    pub value: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioGroup {
    pub group: Option<String>,
    #[serde(with = "exact_or_null")]
    pub current_total: Option<Decimal>,
    #[serde(with = "exact_or_null")]
    pub previous_total: Option<Decimal>,
    pub change_rate: Option<f64>,
    pub approximate: bool,
}

/// An exact decimal as a JSON number, or `null`.
mod exact_or_null {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub(super) fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(v) => RawValue::from_string(v.normalize().to_string())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        let raw = Option::<Box<RawValue>>::deserialize(d)?;
        raw.map(|r| r.get().parse::<Decimal>().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A group's value over the range and over the comparison range.
type RangePair = (Option<Decimal>, Option<Decimal>);

/// One side's numbers, whichever kind of metric it is.
struct Numbers {
    total: Option<Decimal>,
    current: Option<Decimal>,
    previous: Option<Decimal>,
    series: Vec<(String, Option<Decimal>)>,
    previous_series: Vec<(String, Option<Decimal>)>,
    /// Per group: this range's and the comparison range's value.
    groups: Option<BTreeMap<Option<String>, RangePair>>,
    approximate: bool,
}

impl Answer {
    fn numbers(&self) -> Numbers {
        match self {
            Answer::Metric(m) => Numbers {
                total: Some(m.total),
                current: Some(m.current_total),
                previous: Some(m.previous_total),
                series: m
                    .series
                    .iter()
                    .map(|p| (p.start.clone(), Some(p.value)))
                    .collect(),
                previous_series: m
                    .previous_series
                    .iter()
                    .map(|p| (p.start.clone(), Some(p.value)))
                    .collect(),
                groups: m.groups.as_ref().map(|gs| {
                    gs.iter()
                        .map(|g| {
                            (
                                g.group.clone(),
                                (Some(g.current_total), Some(g.previous_total)),
                            )
                        })
                        .collect()
                }),
                approximate: m.approximate,
            },
            Answer::Ratio(r) => Numbers {
                total: r.total,
                current: r.current_total,
                previous: r.previous_total,
                series: r
                    .series
                    .iter()
                    .map(|p| (p.start.clone(), p.value))
                    .collect(),
                previous_series: r
                    .previous_series
                    .iter()
                    .map(|p| (p.start.clone(), p.value))
                    .collect(),
                groups: r.groups.as_ref().map(|gs| {
                    gs.iter()
                        .map(|g| (g.group.clone(), (g.current_total, g.previous_total)))
                        .collect()
                }),
                approximate: r.approximate,
            },
        }
    }

    /// The fields both kinds share, for building a ratio from its numerator's answer.
    fn frame(
        &self,
    ) -> (
        &str,
        &TimeRange,
        Compare,
        &TimeRange,
        bool,
        Interval,
        &Option<String>,
    ) {
        match self {
            Answer::Metric(m) => (
                &m.tz,
                &m.range,
                m.compare,
                &m.previous_range,
                m.clipped,
                m.interval,
                &m.as_of,
            ),
            Answer::Ratio(r) => (
                &r.tz,
                &r.range,
                r.compare,
                &r.previous_range,
                r.clipped,
                r.interval,
                &r.as_of,
            ),
        }
    }

    /// The range's value (`None`: a ratio over zero).
    pub fn current_total(&self) -> Option<Decimal> {
        self.numbers().current
    }

    pub fn previous_total(&self) -> Option<Decimal> {
        self.numbers().previous
    }

    pub fn total(&self) -> Option<Decimal> {
        self.numbers().total
    }

    /// `(start, value)` of each interval of the range.
    pub fn series(&self) -> Vec<(String, Option<Decimal>)> {
        self.numbers().series
    }

    /// This range's value per group, with `group_by`.
    pub fn groups(&self) -> Option<BTreeMap<Option<String>, Option<Decimal>>> {
        self.numbers().groups.map(|gs| {
            gs.into_iter()
                .map(|(k, (current, _))| (k, current))
                .collect()
        })
    }
}

fn ratio(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => {
            Some(a.checked_div(b)?.round_dp(RATIO_PLACES).normalize())
        }
        _ => None,
    }
}

fn rate(current: Option<Decimal>, previous: Option<Decimal>) -> Option<f64> {
    change_rate(current?, previous?)
}

fn points(a: &[(String, Option<Decimal>)], b: &[(String, Option<Decimal>)]) -> Vec<RatioPoint> {
    a.iter()
        .zip(b)
        .map(|((start, x), (_, y))| RatioPoint {
            start: start.clone(),
            value: ratio(*x, *y),
        })
        .collect()
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Result<Answer, QueryError>> + Send + 'a>>;

impl QueryService {
    /// Answers one query for any metric: a stored one, or a ratio of two (formulas nest).
    pub async fn answer(&self, p: &QueryParams, now: DateTime<Utc>) -> Result<Answer, QueryError> {
        self.answer_boxed(p, now).await
    }

    fn answer_boxed<'a>(&'a self, p: &'a QueryParams, now: DateTime<Utc>) -> Boxed<'a> {
        Box::pin(async move {
            let served = self.served().await?;
            let metric = served
                .get(&p.metric)
                .filter(|m| !m.deployed.hidden)
                .ok_or_else(|| QueryError::UnknownMetric(p.metric.clone()))?;
            let def = metric.deployed.clone();
            let Some(formula) = &def.formula else {
                return Ok(Answer::Metric(self.query(p, now).await?));
            };
            self.check_ratio_parameters(&def.name, &def.dimensions, p)?;
            let Formula {
                numerator,
                denominator,
            } = formula;
            let side = |name: &str| {
                let mut q = p.clone();
                q.metric = name.to_string();
                // Every group of both sides, so that each group's ratio is of the same group.
                if q.group_by.is_some() {
                    q.limit = Some(self.max_group_limit().to_string());
                }
                q
            };
            let (pa, pb) = (side(numerator), side(denominator));
            // Both sides' reads at once: a ratio costs one side's latency, not two.
            let (a, b) =
                futures::try_join!(self.answer_side(&pa, now), self.answer_side(&pb, now))?;
            let (x, y) = (a.numbers(), b.numbers());
            let (tz, range, compare, previous_range, clipped, interval, as_of_a) = a.frame();
            let as_of_b = b.frame().6;
            // The older of the two: both sides are rolled up to at least there.
            let as_of = match (as_of_a, as_of_b) {
                (Some(s), Some(t)) => Some(s.min(t).clone()),
                _ => None,
            };
            let groups = match (&x.groups, &y.groups) {
                (Some(ga), Some(gb)) => {
                    let keys: BTreeSet<&Option<String>> = ga.keys().chain(gb.keys()).collect();
                    let zero = (Some(Decimal::ZERO), Some(Decimal::ZERO));
                    let mut out: Vec<RatioGroup> = keys
                        .into_iter()
                        .map(|k| {
                            let (ac, ap) = ga.get(k).copied().unwrap_or(zero);
                            let (bc, bp) = gb.get(k).copied().unwrap_or(zero);
                            let (current, previous) = (ratio(ac, bc), ratio(ap, bp));
                            RatioGroup {
                                group: k.clone(),
                                current_total: current,
                                previous_total: previous,
                                change_rate: rate(current, previous),
                                approximate: x.approximate || y.approximate,
                            }
                        })
                        .filter(|g| g.current_total.is_some() || g.previous_total.is_some())
                        .collect();
                    // Largest first, groups without a value last.
                    out.sort_by(|g, h| {
                        h.current_total
                            .cmp(&g.current_total)
                            .then(h.previous_total.cmp(&g.previous_total))
                            .then(g.group.cmp(&h.group))
                    });
                    out.truncate(self.group_limit(p)?);
                    Some(out)
                }
                _ => None,
            };
            let (current, previous) = (ratio(x.current, y.current), ratio(x.previous, y.previous));
            Ok(Answer::Ratio(RatioResponse {
                metric: def.name.clone(),
                version: def.version(chrono_tz::Tz::UTC),
                formula: format!("{numerator} / {denominator}"),
                unit: def.unit.clone(),
                tz: tz.to_string(),
                range: range.clone(),
                compare,
                previous_range: previous_range.clone(),
                clipped,
                total: ratio(x.total, y.total),
                current_total: current,
                previous_total: previous,
                change_rate: rate(current, previous),
                interval,
                series: points(&x.series, &y.series),
                previous_series: points(&x.previous_series, &y.previous_series),
                approximate: x.approximate || y.approximate,
                as_of,
                filters: p.filters.iter().cloned().collect(),
                group_by: p.group_by.clone().filter(|g| !g.is_empty()),
                groups,
            }))
        })
    }

    /// A side of a formula: hidden parts of averages answer here, and only here.
    async fn answer_side(&self, p: &QueryParams, now: DateTime<Utc>) -> Result<Answer, QueryError> {
        let served = self.served().await?;
        match served.get(&p.metric) {
            Some(m) if m.deployed.hidden => Ok(Answer::Metric(self.query(p, now).await?)),
            _ => self.answer_boxed(p, now).await,
        }
    }

    /// A ratio's filters and `group_by` must be dimensions both of its metrics have.
    fn check_ratio_parameters(
        &self,
        name: &str,
        dimensions: &[String],
        p: &QueryParams,
    ) -> Result<(), QueryError> {
        let known = |d: &str| dimensions.iter().any(|x| x == d);
        for (k, _) in &p.filters {
            if !known(k) {
                return Err(bad(
                    k,
                    format!(
                        "unknown parameter or dimension `{k}` for metric `{name}` (dimensions: {})",
                        dimensions.join(", ")
                    ),
                ));
            }
        }
        if let Some(g) = p.group_by.as_deref().filter(|g| !g.is_empty()) {
            if !known(g) {
                return Err(bad(
                    "group_by",
                    format!(
                        "group_by `{g}` is not a dimension of metric `{name}` (dimensions: {})",
                        dimensions.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
