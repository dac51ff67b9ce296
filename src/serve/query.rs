//! Query semantics shared by the HTTP API and the CLI: ranges, previous ranges, clipping, series,
//! filters and groups, all answered from stored period rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Months, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::lake::Storage;
use crate::model::dims::{dim_set_key, Dims};
use crate::model::measure::{Measure, Merger, RangeValue};
use crate::model::period::{self, DateOrTime, Grain, Period};
use crate::rollup::catalog::{Catalog, MetricDef, API_PARAMS};
use crate::rollup::deployed;
use crate::rollup::live::{Live, Served, Version};
use crate::store::{PeriodStore, StoreError, META_AS_OF};

/// A half-open UTC time range `[from, to)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Limits and defaults of the query service.
/// The longest range a query may ask for, in days, unless `TALLY_MAX_RANGE_DAYS` says otherwise.
pub const DEFAULT_MAX_RANGE_DAYS: i64 = 1100;

#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The zone of a service with a fixed catalog ([`QueryService::new`]); a lake's metrics each
    /// carry the zone their version was built in.
    pub reporting_tz: Tz,
    /// How long the deployed catalog and the ready versions are cached before they are read again.
    pub catalog_ttl: std::time::Duration,
    pub max_range_days: i64,
    pub max_points: usize,
    pub default_group_limit: usize,
    pub max_group_limit: usize,
}

/// How soon an API instance sees a new deploy or a finished build.
pub const DEFAULT_CATALOG_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            reporting_tz: Tz::UTC,
            catalog_ttl: DEFAULT_CATALOG_TTL,
            max_range_days: DEFAULT_MAX_RANGE_DAYS,
            max_points: 2000,
            default_group_limit: 10,
            max_group_limit: 1000,
        }
    }
}

impl QueryParams {
    /// The slot of a named parameter ([`API_PARAMS`]), `None` for a dimension filter.
    pub(crate) fn named_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        let i = API_PARAMS.iter().position(|p| *p == name)?;
        // In the order of API_PARAMS (a test holds them together).
        let slots = [
            &mut self.from,
            &mut self.to,
            &mut self.tz,
            &mut self.interval,
            &mut self.group_by,
            &mut self.limit,
            &mut self.compare,
        ];
        slots.into_iter().nth(i)
    }
}

/// Raw parameters as a client sent them (query string or CLI flags).
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pub metric: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub tz: Option<String>,
    pub interval: Option<String>,
    pub group_by: Option<String>,
    pub limit: Option<String>,
    /// `previous_period` (the default) or `previous_year`.
    pub compare: Option<String>,
    /// `dimension=value` filters, in the order given.
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("unknown metric `{0}`")]
    UnknownMetric(String),
    #[error("`{dimension}` is not a dimension of metric `{metric}` (dimensions: {dimensions})")]
    UnknownDimension {
        metric: String,
        dimension: String,
        dimensions: String,
    },
    #[error("{message}")]
    BadParameter { param: String, message: String },
    #[error("metric `{metric}` is being built for the first time ({done} of {total} hours of history); try again later")]
    Building {
        metric: String,
        done: usize,
        total: usize,
    },
    #[error("the metric catalog cannot be read: {0}")]
    CatalogUnavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

pub(crate) fn bad(param: &str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter {
        param: param.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hour,
    Day,
    Week,
    Month,
}

impl Interval {
    fn parse(s: &str) -> Result<Interval, QueryError> {
        match s {
            "hour" => Ok(Interval::Hour),
            "day" => Ok(Interval::Day),
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            _ => Err(bad(
                "interval",
                format!("interval must be hour, day, week or month, got {s:?}"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// Chosen from the range's length when the client names none.
    fn for_length(len: Duration) -> Interval {
        if len <= Duration::days(2) {
            Interval::Hour
        } else if len <= Duration::days(92) {
            Interval::Day
        } else if len <= Duration::days(732) {
            Interval::Week
        } else {
            Interval::Month
        }
    }

    fn approx_len(self) -> Duration {
        match self {
            Interval::Hour => Duration::hours(1),
            Interval::Day => Duration::hours(23),
            Interval::Week => Duration::days(7) - Duration::hours(1),
            Interval::Month => Duration::days(28),
        }
    }

    /// The range cut at this interval's boundaries in `tz` (the last piece may be shorter).
    fn buckets(self, tz: Tz, (from, to): Span) -> Result<Vec<Span>, QueryError> {
        let mut buckets = Vec::new();
        let mut t = from;
        while t < to {
            let end = self.next_boundary(tz, t).min(to);
            if !period::whole_hour_offset(tz, end) {
                return Err(bad(
                    "tz",
                    format!(
                        "{} is not a whole number of hours from UTC within the range",
                        tz.name()
                    ),
                ));
            }
            buckets.push((t, end));
            t = end;
        }
        Ok(buckets)
    }

    fn next_boundary(self, tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Interval::Hour => period::floor_hour(t) + Duration::hours(1),
            Interval::Day => period::next_day(tz, period::day_start(tz, t)),
            Interval::Week => period::next_week(tz, period::week_start(tz, t)),
            Interval::Month => period::next_month(tz, period::month_start(tz, t)),
        }
    }
}

/// What the range is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The equal-length range ending where the range starts.
    #[default]
    PreviousPeriod,
    /// The same calendar range a year earlier (29 February maps to 28 February).
    PreviousYear,
}

impl Compare {
    fn parse(s: &str) -> Result<Compare, QueryError> {
        match s {
            "previous_period" => Ok(Compare::PreviousPeriod),
            "previous_year" => Ok(Compare::PreviousYear),
            _ => Err(bad(
                "compare",
                format!("compare must be previous_period or previous_year, got {s:?}"),
            )),
        }
    }
}

/// Decimal numbers are written as JSON numbers with their exact decimal text.
pub(crate) mod exact_number {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub(crate) fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let raw =
            RawValue::from_string(v.normalize().to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        raw.get()
            .parse::<Decimal>()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeRange {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub start: String,
    #[serde(with = "exact_number")]
    pub value: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The dimension value of this group (null where events had none).
    pub group: Option<String>,
    #[serde(with = "exact_number")]
    pub current_total: Decimal,
    #[serde(with = "exact_number")]
    pub previous_total: Decimal,
    pub change_rate: Option<f64>,
    pub approximate: bool,
}

/// The answer for one metric and range; field names are part of the API contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResponse {
    pub metric: String,
    /// The version of the metric's definition the numbers come from.
    pub version: String,
    pub unit: String,
    pub tz: String,
    pub range: TimeRange,
    /// What `previous_range` is: the period before, or the same range a year earlier.
    pub compare: Compare,
    pub previous_range: TimeRange,
    /// True when the range reached past the last complete hour and both ranges were cut to the elapsed length.
    pub clipped: bool,
    #[serde(with = "exact_number")]
    pub total: Decimal,
    #[serde(with = "exact_number")]
    pub current_total: Decimal,
    #[serde(with = "exact_number")]
    pub previous_total: Decimal,
    pub change_rate: Option<f64>,
    pub interval: Interval,
    pub series: Vec<Point>,
    /// The previous range at the same interval, for drawing beside `series` point by point.
    pub previous_series: Vec<Point>,
    pub approximate: bool,
    pub as_of: Option<String>,
    pub filters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub groups: Option<Vec<Group>>,
}

/// The values of one dimension in a range, largest first (`GET /v1/metrics/{name}/dimensions/{dimension}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionValues {
    pub metric: String,
    pub dimension: String,
    pub tz: String,
    pub range: TimeRange,
    pub filters: BTreeMap<String, String>,
    pub values: Vec<DimensionValue>,
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionValue {
    /// The dimension's value (null where events had none).
    pub value: Option<String>,
    /// The metric over the range for this value.
    #[serde(with = "exact_number")]
    pub total: Decimal,
    pub approximate: bool,
}

/// `(current - previous) / previous × 100`, null when previous is 0.
pub(crate) fn change_rate(current: Decimal, previous: Decimal) -> Option<f64> {
    if previous.is_zero() {
        return None;
    }
    let rate = (current - previous) / previous * Decimal::ONE_HUNDRED;
    rate.round_dp(4).to_f64()
}

/// A validated query.
#[derive(Debug, Clone)]
struct Plan {
    def: Arc<MetricDef>,
    /// The store key of the version answers come from, its version and its reporting zone.
    key: String,
    version: String,
    rtz: Tz,
    tz: Tz,
    current: Span,
    previous: Span,
    clipped: bool,
    compare: Compare,
    interval: Interval,
    buckets: Vec<Span>,
    previous_buckets: Vec<Span>,
    filters: BTreeMap<String, String>,
    group_by: Option<String>,
    limit: usize,
}

fn parse_time(param: &str, text: &str, tz: Tz) -> Result<DateTime<Utc>, QueryError> {
    let t = match DateOrTime::parse(text) {
        Some(DateOrTime::Date(date)) => return Ok(period::local_midnight(tz, date)),
        Some(DateOrTime::Time(t)) => t,
        None => return Err(bad(param, format!("{param} must be a date (2026-08-23) or an RFC 3339 time (2026-08-23T09:00:00+09:00), got {text:?}"))),
    };
    if !period::is_hour_aligned(t) {
        return Err(bad(
            param,
            format!("{param} must fall on a whole hour, got {text:?}"),
        ));
    }
    Ok(t)
}

fn is_local_midnight(tz: Tz, t: DateTime<Utc>) -> bool {
    period::day_start(tz, t) == t
}

/// The same wall-clock time in `tz` a year earlier (29 February becomes 28 February; a time that
/// did not exist that day, inside a daylight-saving gap, moves to the hour after the gap).
fn year_before(tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&tz).naive_local();
    let target = local
        .checked_sub_months(Months::new(12))
        .expect("a year before a supported time exists");
    let mut probe = target;
    loop {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::hours(1);
    }
}

fn fmt_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339()
}

pub struct QueryService {
    store: Arc<dyn PeriodStore>,
    metrics: MetricSource,
    options: QueryOptions,
}

/// Where the metrics answered come from.
enum MetricSource {
    /// A catalog whose every metric a rollup of it has built (tests, tools).
    Fixed(Arc<Served>),
    /// The lake's deployed catalog and the versions the rollup has built, read again after
    /// [`QueryOptions::catalog_ttl`].
    Lake {
        storage: Storage,
        /// What a lake with nothing deployed yet serves (the rollup's seed too).
        seed: Catalog,
        cached: Mutex<Option<(Instant, Arc<Served>)>>,
    },
}

impl QueryService {
    /// Answers from `catalog` as a rollup of it in `options.reporting_tz` stores it.
    pub fn new(
        store: Arc<dyn PeriodStore>,
        catalog: Catalog,
        options: QueryOptions,
    ) -> QueryService {
        let served = Served::all_ready(&catalog, options.reporting_tz);
        QueryService {
            store,
            metrics: MetricSource::Fixed(Arc::new(served)),
            options,
        }
    }

    /// Answers from the catalog deployed in `storage` (`seed` when none is), each metric from the
    /// version the rollup has finished building.
    pub fn from_lake(
        store: Arc<dyn PeriodStore>,
        storage: Storage,
        seed: Catalog,
        options: QueryOptions,
    ) -> QueryService {
        QueryService {
            store,
            metrics: MetricSource::Lake {
                storage,
                seed,
                cached: Mutex::new(None),
            },
            options,
        }
    }

    /// The metrics served now: each deployed one with the version answers come from.
    pub async fn served(&self) -> Result<Arc<Served>, QueryError> {
        let (storage, seed, cached) = match &self.metrics {
            MetricSource::Fixed(served) => return Ok(served.clone()),
            MetricSource::Lake {
                storage,
                seed,
                cached,
            } => (storage, seed, cached),
        };
        if let Some((at, served)) = &*cached.lock().expect("catalog cache") {
            if at.elapsed() < self.options.catalog_ttl {
                return Ok(served.clone());
            }
        }
        let unavailable = |e: &dyn std::fmt::Display| QueryError::CatalogUnavailable(e.to_string());
        let deployed = match deployed::current(storage)
            .await
            .map_err(|e| unavailable(&e))?
        {
            Some(d) => d.catalog,
            None => seed.clone(),
        };
        // Before the first rollup there is no record of built versions, and nothing stored:
        // every metric answers (zeros, with no `as_of`) as that rollup will store it.
        let served = match Live::load(storage).await.map_err(|e| unavailable(&e))? {
            None => Served::all_ready(&deployed, self.options.reporting_tz),
            Some(live) => Served::of(&deployed, &live).map_err(|e| unavailable(&e))?,
        };
        let served = Arc::new(served);
        *cached.lock().expect("catalog cache") = Some((Instant::now(), served.clone()));
        Ok(served)
    }

    /// The configured reporting zone (a metric's own version may still be in an earlier one).
    pub fn reporting_tz(&self) -> Tz {
        self.options.reporting_tz
    }

    /// How many groups `group_by` answers.
    pub(crate) fn group_limit(&self, p: &QueryParams) -> Result<usize, QueryError> {
        match p.limit.as_deref() {
            None | Some("") => Ok(self.options.default_group_limit),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=self.options.max_group_limit).contains(&n) => Ok(n),
                _ => Err(bad(
                    "limit",
                    format!(
                        "limit must be an integer from 1 to {}, got {s:?}",
                        self.options.max_group_limit
                    ),
                )),
            },
        }
    }

    pub(crate) fn max_group_limit(&self) -> usize {
        self.options.max_group_limit
    }

    /// The version `name` is answered from.
    async fn ready(&self, name: &str) -> Result<Version, QueryError> {
        let served = self.served().await?;
        let metric = served
            .get(name)
            .ok_or_else(|| QueryError::UnknownMetric(name.to_string()))?;
        match (&metric.ready, &metric.building) {
            (Some(v), _) => Ok(v.clone()),
            (None, building) => {
                let (done, total) = building.as_ref().map_or((0, 0), |b| (b.1, b.2));
                Err(QueryError::Building {
                    metric: name.to_string(),
                    done,
                    total,
                })
            }
        }
    }

    fn plan(
        &self,
        p: &QueryParams,
        ready: &Version,
        now: DateTime<Utc>,
    ) -> Result<Plan, QueryError> {
        let def = ready.def.clone();
        let tz: Tz = match p.tz.as_deref() {
            None | Some("") => ready.reporting_tz,
            Some(name) => name.parse().map_err(|_| {
                bad(
                    "tz",
                    format!("tz must be an IANA time zone name such as Asia/Seoul, got {name:?}"),
                )
            })?,
        };
        let from_text = p
            .from
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("from", "from is required"))?;
        let to_text =
            p.to.as_deref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("to", "to is required"))?;
        let from = parse_time("from", from_text, tz)?;
        let to = parse_time("to", to_text, tz)?;
        if from >= to {
            return Err(bad(
                "from",
                format!("from ({from_text}) must be before to ({to_text})"),
            ));
        }
        if to - from > Duration::days(self.options.max_range_days) {
            return Err(bad(
                "to",
                format!(
                    "the range may span at most {} days",
                    self.options.max_range_days
                ),
            ));
        }
        for (param, t) in [("from", from), ("to", to)] {
            if !period::whole_hour_offset(tz, t) {
                return Err(bad("tz", format!("{} is not a whole number of hours from UTC at {param}; only such zones are supported", tz.name())));
            }
        }

        let compare = match p.compare.as_deref() {
            None | Some("") => Compare::default(),
            Some(c) => Compare::parse(c)?,
        };
        let whole_days = is_local_midnight(tz, from) && is_local_midnight(tz, to);
        let (prev_from, prev_to) = match compare {
            // Same number of calendar days when the range is whole days, else the same length.
            Compare::PreviousPeriod if whole_days => {
                let days = (period::local_date(tz, to) - period::local_date(tz, from)).num_days();
                let start = period::local_date(tz, from) - Duration::days(days);
                (period::local_midnight(tz, start), from)
            }
            Compare::PreviousPeriod => (from - (to - from), from),
            Compare::PreviousYear => (year_before(tz, from), year_before(tz, to)),
        };
        // Clip both ranges to the elapsed length when the range reaches past the last complete hour.
        let last_complete = period::floor_hour(now);
        let (current, previous, clipped) = if to > last_complete {
            let elapsed = (last_complete - from).max(Duration::zero());
            (
                (from, from + elapsed),
                (prev_from, prev_from + elapsed),
                true,
            )
        } else {
            ((from, to), (prev_from, prev_to), false)
        };

        let interval = match p.interval.as_deref() {
            None | Some("") => Interval::for_length(to - from),
            Some(s) => Interval::parse(s)?,
        };
        let approx_points =
            ((current.1 - current.0).num_seconds() / interval.approx_len().num_seconds()) as usize;
        if approx_points > self.options.max_points {
            return Err(bad("interval", format!("interval={} over this range gives more than {} points; choose a longer interval", interval.as_str(), self.options.max_points)));
        }
        let buckets = interval.buckets(tz, current)?;
        let previous_buckets = interval.buckets(tz, previous)?;

        let mut filters = BTreeMap::new();
        for (k, v) in &p.filters {
            if !def.dimensions.contains(k) {
                return Err(bad(
                    k,
                    format!(
                        "unknown parameter or dimension `{k}` for metric `{}` (dimensions: {})",
                        def.name,
                        def.dimensions.join(", ")
                    ),
                ));
            }
            if filters.insert(k.clone(), v.clone()).is_some() {
                return Err(bad(
                    k,
                    format!("dimension `{k}` is filtered more than once"),
                ));
            }
        }
        let group_by = match p.group_by.as_deref() {
            None | Some("") => None,
            Some(g) if def.dimensions.iter().any(|d| d == g) => Some(g.to_string()),
            Some(g) => {
                return Err(bad(
                    "group_by",
                    format!(
                        "group_by `{g}` is not a dimension of metric `{}` (dimensions: {})",
                        def.name,
                        def.dimensions.join(", ")
                    ),
                ))
            }
        };
        let limit = self.group_limit(p)?;
        Ok(Plan {
            def,
            key: ready.key.clone(),
            version: ready.version.clone(),
            rtz: ready.reporting_tz,
            tz,
            current,
            previous,
            clipped,
            compare,
            interval,
            buckets,
            previous_buckets,
            filters,
            group_by,
            limit,
        })
    }

    /// Answers one query for a stored metric (for any metric, [`QueryService::answer`]). `now`
    /// decides clipping (passed in so answers are reproducible).
    pub async fn query(
        &self,
        p: &QueryParams,
        now: DateTime<Utc>,
    ) -> Result<MetricResponse, QueryError> {
        let ready = self.ready(&p.metric).await?;
        if ready.def.formula.is_some() {
            return Err(bad(
                "metric",
                format!(
                    "`{}` is a ratio of two metrics, answered by `answer`",
                    p.metric
                ),
            ));
        }
        let plan = self.plan(p, &ready, now)?;
        let rtz = plan.rtz;
        let filter_dims: Dims = plan
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();

        let ranges: Vec<Span> = [plan.current, plan.previous]
            .into_iter()
            .chain(plan.buckets.iter().copied())
            .chain(plan.previous_buckets.iter().copied())
            .collect();
        let parts: Vec<Vec<Period>> = ranges
            .iter()
            .map(|(a, b)| period::decompose(*a, *b, rtz))
            .collect();
        // Every read of the answer at once (one wave of requests on DynamoDB); group_by adds its own.
        let all_time = Period {
            grain: Grain::All,
            start: period::ALL_TIME_START,
        };
        let mut keys: Vec<Period> = parts.iter().flatten().copied().collect();
        keys.push(all_time);
        let fetched = self
            .store
            .fetch(&plan.key, &filter_dims, &keys, &[META_AS_OF])
            .await?;
        let rows = fetched.rows;
        let current = merge_periods(&parts[0], &rows)?;
        let previous = merge_periods(&parts[1], &rows)?;
        let mut approximate = current.approximate || previous.approximate;
        let (bucket_parts, previous_bucket_parts) = parts[2..].split_at(plan.buckets.len());
        let mut series_of = |buckets: &[Span], parts: &[Vec<Period>]| {
            let mut series = Vec::with_capacity(buckets.len());
            for (bucket, periods) in buckets.iter().zip(parts) {
                let v = merge_periods(periods, &rows)?;
                approximate |= v.approximate;
                series.push(Point {
                    start: fmt_time(bucket.0, plan.tz),
                    value: v.value,
                });
            }
            Ok::<_, QueryError>(series)
        };
        let series = series_of(&plan.buckets, bucket_parts)?;
        let previous_series = series_of(&plan.previous_buckets, previous_bucket_parts)?;

        let total = merge_periods(&[all_time], &rows)?;
        approximate |= total.approximate;

        let groups = match &plan.group_by {
            None => None,
            Some(g) => Some(self.groups(&plan, g, &parts[..2]).await?),
        };
        if let Some(gs) = &groups {
            approximate |= gs.iter().any(|g| g.approximate);
        }

        Ok(MetricResponse {
            metric: plan.def.name.clone(),
            version: plan.version.clone(),
            unit: plan.def.unit.clone(),
            tz: plan.tz.name().to_string(),
            range: TimeRange {
                from: fmt_time(plan.current.0, plan.tz),
                to: fmt_time(plan.current.1, plan.tz),
            },
            compare: plan.compare,
            previous_range: TimeRange {
                from: fmt_time(plan.previous.0, plan.tz),
                to: fmt_time(plan.previous.1, plan.tz),
            },
            clipped: plan.clipped,
            total: total.value,
            current_total: current.value,
            previous_total: previous.value,
            change_rate: change_rate(current.value, previous.value),
            interval: plan.interval,
            series,
            previous_series,
            approximate,
            as_of: fetched.meta.get(META_AS_OF).cloned(),
            filters: plan.filters.clone(),
            group_by: plan.group_by.clone(),
            groups,
        })
    }

    /// The values of one dimension seen in the range (a non-zero value there), largest first, at
    /// most `limit`: what a filter on that dimension can pick. Other filters apply; `group_by` and
    /// `compare` do not.
    pub async fn dimension_values(
        &self,
        p: &QueryParams,
        dimension: &str,
        now: DateTime<Utc>,
    ) -> Result<DimensionValues, QueryError> {
        for (param, given) in [("group_by", &p.group_by), ("compare", &p.compare)] {
            if given.is_some() {
                return Err(bad(
                    param,
                    format!("{param} is not a parameter of a dimension's values"),
                ));
            }
        }
        let mut ready = self.ready(&p.metric).await?;
        let def = ready.def.clone();
        if !def.dimensions.iter().any(|d| d == dimension) {
            return Err(QueryError::UnknownDimension {
                metric: def.name.clone(),
                dimension: dimension.to_string(),
                dimensions: def.dimensions.join(", "),
            });
        }
        // A ratio's values are those of its numerator (a value is seen where it has events).
        while let Some(f) = &ready.def.formula {
            ready = self.ready(&f.numerator).await?;
        }
        let mut p = p.clone();
        p.group_by = Some(dimension.to_string());
        let plan = self.plan(&p, &ready, now)?;
        let parts = [period::decompose(plan.current.0, plan.current.1, plan.rtz)];
        let mut values: Vec<DimensionValue> = self
            .group_values(&plan, dimension, &parts)
            .await?
            .into_iter()
            .map(|(value, v)| DimensionValue {
                value,
                total: v[0].value,
                approximate: v[0].approximate,
            })
            .filter(|v| !v.total.is_zero())
            .collect();
        values.sort_by(|a, b| b.total.cmp(&a.total).then(a.value.cmp(&b.value)));
        values.truncate(plan.limit);
        Ok(DimensionValues {
            metric: def.name.clone(),
            dimension: dimension.to_string(),
            tz: plan.tz.name().to_string(),
            range: TimeRange {
                from: fmt_time(plan.current.0, plan.tz),
                to: fmt_time(plan.current.1, plan.tz),
            },
            filters: plan.filters.clone(),
            approximate: values.iter().any(|v| v.approximate),
            values,
        })
    }

    async fn groups(
        &self,
        plan: &Plan,
        by: &str,
        parts: &[Vec<Period>],
    ) -> Result<Vec<Group>, QueryError> {
        let mut out: Vec<Group> = self
            .group_values(plan, by, parts)
            .await?
            .into_iter()
            .map(|(group, v)| Group {
                group,
                current_total: v[0].value,
                previous_total: v[1].value,
                change_rate: change_rate(v[0].value, v[1].value),
                approximate: v[0].approximate || v[1].approximate,
            })
            .collect();
        out.retain(|g| !(g.current_total.is_zero() && g.previous_total.is_zero()));
        out.sort_by(|a, b| {
            b.current_total
                .cmp(&a.current_total)
                .then(b.previous_total.cmp(&a.previous_total))
                .then(a.group.cmp(&b.group))
        });
        out.truncate(plan.limit);
        Ok(out)
    }

    /// Each value of dimension `by` (under the plan's filters) with its value over each of `parts`
    /// (the periods of one range each), read from the dimension-set index.
    async fn group_values(
        &self,
        plan: &Plan,
        by: &str,
        parts: &[Vec<Period>],
    ) -> Result<Vec<(Option<String>, Vec<RangeValue>)>, QueryError> {
        let set = dim_set_key(
            plan.filters
                .keys()
                .chain(std::iter::once(&by.to_string()))
                .collect::<BTreeSet<_>>(),
        );
        let mut by_group: BTreeMap<Option<String>, HashMap<Period, Measure>> = BTreeMap::new();
        // One Query per grain on the dimension-set index, over the span the ranges need.
        let periods: Vec<Period> = parts.iter().flatten().copied().collect();
        for (grain, (from, to)) in period::spans(&periods) {
            for r in self.store.groups(&plan.key, grain, &set, from, to).await? {
                let matches = plan.filters.iter().all(|(k, v)| {
                    r.dims
                        .get(k)
                        .is_some_and(|x| x.as_deref() == Some(v.as_str()))
                });
                if matches {
                    let key = r.dims.get(by).cloned().flatten();
                    by_group.entry(key).or_default().insert(
                        Period {
                            grain: r.grain,
                            start: r.start,
                        },
                        r.measure,
                    );
                }
            }
        }
        by_group
            .into_iter()
            .map(|(key, rows)| {
                let values = parts
                    .iter()
                    .map(|periods| merge_periods(periods, &rows))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((key, values))
            })
            .collect()
    }
}

/// The value of a range from the stored rows of the periods it decomposes into (absent = empty).
fn merge_periods(
    periods: &[Period],
    rows: &HashMap<Period, Measure>,
) -> Result<RangeValue, QueryError> {
    let mut m = Merger::default();
    for measure in periods.iter().filter_map(|p| rows.get(p)) {
        m.add(measure);
    }
    m.finish().map_err(QueryError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_parameter_fills_its_own_field() {
        let mut p = QueryParams::default();
        for name in API_PARAMS {
            *p.named_mut(name).expect("a named parameter") = Some(name.to_string());
        }
        let got = [
            p.from, p.to, p.tz, p.interval, p.group_by, p.limit, p.compare,
        ];
        assert_eq!(got.map(Option::unwrap), API_PARAMS.map(String::from));
        assert!(QueryParams::default().named_mut("country").is_none());
    }

    #[test]
    fn a_year_before_keeps_the_wall_clock_and_clamps_leap_days() {
        let utc = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            year_before(Tz::UTC, utc("2028-02-29T00:00:00Z")),
            utc("2027-02-28T00:00:00Z")
        );
        let seoul: Tz = "Asia/Seoul".parse().unwrap();
        // Midnight in Seoul stays midnight in Seoul.
        assert_eq!(
            year_before(seoul, utc("2026-08-23T15:00:00Z")),
            utc("2025-08-23T15:00:00Z")
        );
        // 02:00 on 30 March 2025 did not exist in Berlin (clocks went 02:00 -> 03:00 that night).
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            year_before(berlin, utc("2026-03-30T00:00:00Z")),
            utc("2025-03-30T01:00:00Z")
        );
    }

    #[test]
    fn change_rate_matches_the_contract() {
        assert_eq!(change_rate(1400.into(), 800.into()), Some(75.0));
        assert_eq!(change_rate(5.into(), 0.into()), None);
        assert_eq!(change_rate(0.into(), 10.into()), Some(-100.0));
    }

    #[test]
    fn exact_numbers_round_trip_through_json() {
        let p = Point {
            start: "x".into(),
            value: "12345678901234567.891".parse().unwrap(),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"start":"x","value":12345678901234567.891}"#);
        assert_eq!(serde_json::from_str::<Point>(&text).unwrap(), p);
    }
}
