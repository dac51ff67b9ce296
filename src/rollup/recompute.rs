//! The rollup: recomputes the hours ingest touched, then rebuilds their days and months.
//!
//! Hour rows come from the events (each `event_id` once) through the metric SQL. Day rows merge
//! hour states and month rows merge day states (see [`crate::lake::period_state`]): sums add; distinct
//! counts union exact sets, so every stored period is exact, and a distinct row carries a sketch
//! for ranges that span several periods. One all-time row per group ([`Grain::All`]) makes the
//! dashboard's total a single read.
//!
//! Consistency: the rollup never reads period rows back from the [`PeriodStore`] to build coarser
//! ones. On DynamoDB such a read (an index query) may not see this run's writes, or a recent run's,
//! and a row summed from it would stay wrong. Every coarser row comes from the period states in
//! object storage, which every read sees as last written. The store is read only for its meta
//! values, with strongly consistent reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::lake::period_state::{self, GroupSets, GroupSums, PeriodState};
use crate::lake::{Storage, StorageError, TouchedMarker};
use crate::model::dims::{dim_set_key, dims_key, parse_dims_key, subsets};
use crate::model::measure::Measure;
use crate::model::period::{self, Grain};
use crate::rollup::catalog::{Catalog, MetricDef};
use crate::rollup::engine::{self, Computed, Engine, EngineError, MeasureKind};
use crate::store::{
    PeriodRow, PeriodStore, StoreError, META_AS_OF, META_PERIOD_STATE, META_REPORTING_TZ,
};

/// The [`META_PERIOD_STATE`] value of a store whose rows derive from sum and distinct states.
/// Stores rolled up before sums were kept as state need one full rollup.
const PERIOD_STATE_FORMAT: &str = "sums+distinct/1";

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("days and months were built in {stored} but the reporting zone is now {configured}; run a full rollup to rebuild them")]
    ReportingZoneChanged { stored: String, configured: String },
    #[error("the period store was rolled up by an earlier version that kept no sum states (period state {found}); run a full rollup once (`tally rollup --full`, or the rollup function's {{\"job\":\"rollup\",\"full\":true}}) to rebuild them")]
    PeriodStateOutdated { found: String },
    #[error("unknown metric `{0}`")]
    UnknownMetric(String),
    #[error("backfill `{field}` must be a date or an RFC 3339 time, got {text:?}")]
    BadBackfillBound { field: &'static str, text: String },
    #[error("backfill `from` must be before `to`")]
    EmptyBackfill,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RollupReport {
    /// UTC hours whose rows were recomputed from events, ascending.
    pub hours_recomputed: Vec<DateTime<Utc>>,
    pub days_rebuilt: usize,
    pub months_rebuilt: usize,
    pub rows_written: usize,
    /// Touched hours left for the next run because the deadline came first.
    pub hours_remaining: usize,
    pub as_of: Option<DateTime<Utc>>,
}

/// Which hours a run recomputes, which decides how its coarser distinct sets may be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The hours ingest touched since the last run. Late events only add values, so a month's and
    /// all time's distinct sets grow by the periods just rebuilt.
    Touched,
    /// The hours of a range (a backfill): a metric may have changed, so a month's sets are unioned
    /// again from all its days; all time grows by the months rebuilt.
    Range,
    /// Every hour with events: all time is built again from every month.
    Everything,
}

pub struct Rollup {
    pub storage: Storage,
    pub store: Arc<dyn PeriodStore>,
    pub catalog: Catalog,
    pub reporting_tz: Tz,
}

impl Rollup {
    /// Recomputes every hour touched since the last run. With a deadline, stops between days of
    /// work once it has passed and leaves the rest marked for the next run.
    pub async fn run_touched(
        &self,
        deadline: Option<Instant>,
    ) -> Result<RollupReport, RollupError> {
        self.check_reporting_tz(Scope::Touched).await?;
        self.check_period_state(Scope::Touched, None).await?;
        let listed_at = Utc::now();
        let markers = self.storage.touched_markers().await?;
        let hours: BTreeSet<DateTime<Utc>> = markers.iter().map(|m| m.hour).collect();
        let mut report = self
            .recompute(&hours, None, deadline, Scope::Touched)
            .await?;
        let done: BTreeSet<_> = report.hours_recomputed.iter().copied().collect();
        let cleared: Vec<TouchedMarker> = markers
            .into_iter()
            .filter(|m| done.contains(&m.hour))
            .collect();
        self.storage.clear_markers(&cleared).await?;
        if report.hours_remaining == 0 {
            // Everything ingested before the listing is rolled up, up to the hour it was taken in.
            let as_of = period::floor_hour(listed_at);
            self.store.put_meta(META_AS_OF, &as_of.to_rfc3339()).await?;
            report.as_of = Some(as_of);
        }
        Ok(report)
    }

    /// Recomputes every hour that has events (or those in `[from, to)`), for all or some metrics.
    pub async fn run_full(
        &self,
        range: Option<(DateTime<Utc>, DateTime<Utc>)>,
        metrics: Option<&[String]>,
        deadline: Option<Instant>,
    ) -> Result<RollupReport, RollupError> {
        let scope = match range {
            None => Scope::Everything,
            Some(_) => Scope::Range,
        };
        self.check_reporting_tz(scope).await?;
        self.check_period_state(scope, metrics).await?;
        let hours: BTreeSet<_> = self
            .storage
            .hours_with_data()
            .await?
            .into_iter()
            .filter(|h| range.is_none_or(|(from, to)| *h >= from && *h < to))
            .collect();
        let report = self.recompute(&hours, metrics, deadline, scope).await?;
        if scope == Scope::Everything && metrics.is_none() && report.hours_remaining == 0 {
            self.store
                .put_meta(META_PERIOD_STATE, PERIOD_STATE_FORMAT)
                .await?;
        }
        Ok(report)
    }

    /// Refuses to build on rows rolled up before the period states this rollup merges existed
    /// (their days would be merged from missing hour states); a full rollup rebuilds them.
    async fn check_period_state(
        &self,
        scope: Scope,
        only: Option<&[String]>,
    ) -> Result<(), RollupError> {
        let format = self.store.get_meta(META_PERIOD_STATE).await?;
        let rebuilding_all = scope == Scope::Everything && only.is_none();
        if format.as_deref() == Some(PERIOD_STATE_FORMAT) || rebuilding_all {
            return Ok(());
        }
        if format.is_none() && self.store.get_meta(META_AS_OF).await?.is_none() {
            // Nothing rolled up yet: every state this store will use is written from now on.
            self.store
                .put_meta(META_PERIOD_STATE, PERIOD_STATE_FORMAT)
                .await?;
            return Ok(());
        }
        Err(RollupError::PeriodStateOutdated {
            found: format.unwrap_or_else(|| "none".into()),
        })
    }

    /// Days and months are built in one zone: a run in another is refused unless it rebuilds
    /// every hour (a backfill of a range would leave the other days in the old zone).
    async fn check_reporting_tz(&self, scope: Scope) -> Result<(), RollupError> {
        let configured = self.reporting_tz.name();
        let rebuilding = scope == Scope::Everything;
        match self.store.get_meta(META_REPORTING_TZ).await? {
            Some(stored) if stored != configured && !rebuilding => {
                Err(RollupError::ReportingZoneChanged {
                    stored,
                    configured: configured.to_string(),
                })
            }
            Some(stored) if stored == configured => Ok(()),
            _ => Ok(self.store.put_meta(META_REPORTING_TZ, configured).await?),
        }
    }

    fn metrics<'a>(
        &'a self,
        only: Option<&[String]>,
    ) -> Result<Vec<&'a Arc<MetricDef>>, RollupError> {
        match only {
            None => Ok(self.catalog.metrics().iter().collect()),
            Some(names) => names
                .iter()
                .map(|n| {
                    self.catalog
                        .get(n)
                        .ok_or_else(|| RollupError::UnknownMetric(n.clone()))
                })
                .collect(),
        }
    }

    async fn recompute(
        &self,
        hours: &BTreeSet<DateTime<Utc>>,
        only: Option<&[String]>,
        deadline: Option<Instant>,
        scope: Scope,
    ) -> Result<RollupReport, RollupError> {
        let metrics = self.metrics(only)?;
        let mut kinds = Vec::with_capacity(metrics.len());
        for m in &metrics {
            kinds.push(engine::check(m).await?);
        }
        let tz = self.reporting_tz;
        let mut by_day: BTreeMap<DateTime<Utc>, Vec<DateTime<Utc>>> = BTreeMap::new();
        for h in hours {
            by_day
                .entry(period::day_start(tz, *h))
                .or_default()
                .push(*h);
        }
        let mut report = RollupReport::default();
        let mut months: BTreeMap<DateTime<Utc>, Vec<DateTime<Utc>>> = BTreeMap::new();
        let total_days = by_day.len();
        for (i, (day, day_hours)) in by_day.iter().enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                report.hours_remaining = by_day.values().skip(i).map(Vec::len).sum();
                break;
            }
            tracing::debug!(day = %day, hours = day_hours.len(), "rollup day {}/{}", i + 1, total_days);
            report.rows_written += self.recompute_hours(day_hours, &metrics, &kinds).await?;
            for (m, kind) in metrics.iter().zip(&kinds) {
                report.rows_written += self.rebuild(m, *kind, Grain::Day, *day, None).await?;
            }
            report.hours_recomputed.extend(day_hours);
            report.days_rebuilt += 1;
            months
                .entry(period::month_start(tz, *day))
                .or_default()
                .push(*day);
        }
        for (month, days) in &months {
            let grown_by = (scope == Scope::Touched).then_some(days.as_slice());
            for (m, kind) in metrics.iter().zip(&kinds) {
                report.rows_written += self
                    .rebuild(m, *kind, Grain::Month, *month, grown_by)
                    .await?;
            }
        }
        report.months_rebuilt = months.len();
        if !months.is_empty() {
            let months: BTreeSet<DateTime<Utc>> = months.into_keys().collect();
            for (m, kind) in metrics.iter().zip(&kinds) {
                report.rows_written += self
                    .rebuild_all_time(m, *kind, &months, scope == Scope::Everything)
                    .await?;
            }
        }
        Ok(report)
    }

    /// Runs every metric over the events of `hours`, stores one row per hour and group, and saves
    /// each hour's state (empty for an hour without values, so no older state outlives it).
    async fn recompute_hours(
        &self,
        hours: &[DateTime<Utc>],
        metrics: &[&Arc<MetricDef>],
        kinds: &[MeasureKind],
    ) -> Result<usize, RollupError> {
        let mut batches = Vec::new();
        for h in hours {
            for b in self.storage.read_hour(*h).await? {
                batches.push(with_period(b, h.timestamp())?);
            }
        }
        let engine = Engine::new(batches)?;
        let mut written = 0;
        for (m, kind) in metrics.iter().zip(kinds) {
            let computed = engine.compute(m).await?;
            let mut rows = Vec::with_capacity(computed.len());
            let mut sets: BTreeMap<i64, GroupSets> = BTreeMap::new();
            let mut sums: BTreeMap<i64, GroupSums> = BTreeMap::new();
            for c in computed {
                let start =
                    DateTime::from_timestamp(c.period_start, 0).expect("period is a valid time");
                let key = dims_key(&c.dims);
                let measure = match c.value {
                    Computed::Additive(v) => {
                        sums.entry(c.period_start).or_default().insert(key, v);
                        Measure::Additive(v)
                    }
                    Computed::Distinct(hashes) => {
                        let m = Measure::distinct_from_hashes(&hashes);
                        sets.entry(c.period_start).or_default().insert(key, hashes);
                        m
                    }
                };
                rows.push(PeriodRow {
                    metric: m.name.clone(),
                    grain: Grain::Hour,
                    start,
                    dims: c.dims,
                    measure,
                });
            }
            if *kind == MeasureKind::DistinctCount {
                self.save_hour_states(&m.name, hours, sets).await?;
            } else {
                self.save_hour_states(&m.name, hours, sums).await?;
            }
            written += rows.len();
            self.store.put(rows).await?;
        }
        Ok(written)
    }

    async fn save_hour_states<S: PeriodState>(
        &self,
        metric: &str,
        hours: &[DateTime<Utc>],
        mut states: BTreeMap<i64, S>,
    ) -> Result<(), RollupError> {
        for h in hours {
            let state = states.remove(&h.timestamp()).unwrap_or_default();
            period_state::save(&self.storage, metric, Grain::Hour, *h, &state).await?;
        }
        Ok(())
    }

    /// Rebuilds the `grain` (day or month) rows of one period from the states one grain finer.
    ///
    /// `grown_by` names the finer periods just rebuilt when the others are unchanged: a distinct
    /// count's saved set then only grows by theirs (values only ever arrive, as for all time),
    /// instead of unioning every day of the month again, which was most of a late hour's cost.
    async fn rebuild(
        &self,
        def: &MetricDef,
        kind: MeasureKind,
        grain: Grain,
        start: DateTime<Utc>,
        grown_by: Option<&[DateTime<Utc>]>,
    ) -> Result<usize, RollupError> {
        let tz = self.reporting_tz;
        let end = period::period_end(grain, tz, start);
        let finer = if grain == Grain::Month {
            Grain::Day
        } else {
            Grain::Hour
        };
        let mut starts = Vec::new();
        let mut t = start;
        while t < end {
            starts.push(t);
            t = period::period_end(finer, tz, t);
        }
        self.rebuild_from_states(def, kind, (grain, start), finer, Some(&starts), grown_by)
            .await
    }

    /// The all-time rows, one per group, from every month's state: sums add every month; distinct
    /// counts keep the exact set of every value seen, grown by the months just rebuilt (values only
    /// ever arrive), or built again from every month's set when `from_scratch` (a full rollup, as
    /// after a metric changed).
    async fn rebuild_all_time(
        &self,
        def: &MetricDef,
        kind: MeasureKind,
        months: &BTreeSet<DateTime<Utc>>,
        from_scratch: bool,
    ) -> Result<usize, RollupError> {
        let months: Vec<DateTime<Utc>> = months.iter().copied().collect();
        let grown_by = (!from_scratch).then_some(months.as_slice());
        let all_time = (Grain::All, period::ALL_TIME_START);
        self.rebuild_from_states(def, kind, all_time, Grain::Month, None, grown_by)
            .await
    }

    /// Merges the `finer` states at `starts` (every saved one when `None`) into the state of
    /// `(grain, start)`, saves it and stores its rows. Distinct sets may grow from the saved state
    /// by `grown_by` alone; sums are always merged again.
    async fn rebuild_from_states(
        &self,
        def: &MetricDef,
        kind: MeasureKind,
        period: (Grain, DateTime<Utc>),
        finer: Grain,
        starts: Option<&[DateTime<Utc>]>,
        grown_by: Option<&[DateTime<Utc>]>,
    ) -> Result<usize, RollupError> {
        let rows = if kind == MeasureKind::DistinctCount {
            let sets: GroupSets = self
                .merged_state(def, period, finer, starts, grown_by)
                .await?;
            rows_of(def, period, &sets)?
        } else {
            let sums: GroupSums = self.merged_state(def, period, finer, starts, None).await?;
            rows_of(def, period, &sums)?
        };
        let n = rows.len();
        self.store.put(rows).await?;
        Ok(n)
    }

    async fn merged_state<S: PeriodState>(
        &self,
        def: &MetricDef,
        (grain, start): (Grain, DateTime<Utc>),
        finer: Grain,
        starts: Option<&[DateTime<Utc>]>,
        grown_by: Option<&[DateTime<Utc>]>,
    ) -> Result<S, RollupError> {
        let (storage, name) = (&self.storage, &def.name);
        let grown =
            period_state::load_grown(storage, name, (grain, start), finer, grown_by).await?;
        let state = match (grown, starts) {
            (Some(state), _) => state,
            (None, Some(starts)) => period_state::merged(storage, name, finer, starts).await?,
            (None, None) => {
                // Only periods of the current reporting zone: states built before a change of
                // zone keep their old starts and would be counted twice.
                let tz = self.reporting_tz;
                let mut every = period_state::starts::<S>(storage, name, finer).await?;
                every.retain(|t| period::period_floor(finer, tz, *t) == *t);
                period_state::merged(storage, name, finer, &every).await?
            }
        };
        period_state::save(storage, name, grain, start, &state).await?;
        Ok(state)
    }
}

/// The rows of one period from its state, one per group.
fn rows_of<S: PeriodState>(
    def: &MetricDef,
    (grain, start): (Grain, DateTime<Utc>),
    state: &S,
) -> Result<Vec<PeriodRow>, RollupError> {
    state
        .measures()
        .into_iter()
        .map(|(key, measure)| {
            let dims = parse_dims_key(key).map_err(|e| StorageError::CorruptState {
                path: format!("{} {grain} {start}", def.name),
                reason: format!("bad group key {key}: {e}"),
            })?;
            Ok(PeriodRow {
                metric: def.name.clone(),
                grain,
                start,
                dims,
                measure,
            })
        })
        .collect()
}

/// Every subset of the metric's dimensions, as [`dim_set_key`]s.
pub fn dimension_sets(def: &MetricDef) -> Vec<String> {
    subsets(&def.dimensions).map(dim_set_key).collect()
}

fn with_period(batch: RecordBatch, start: i64) -> Result<RecordBatch, RollupError> {
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(vec![start; batch.num_rows()])));
    RecordBatch::try_new(engine::table_schema(), columns).map_err(|e| RollupError::Engine(e.into()))
}
