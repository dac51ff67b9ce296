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
//!
//! Versions: each run first brings [`Live`] in line with the deployed catalog (a new or changed
//! metric gets a build of its new version, a removed one is retired), rolls up the touched hours
//! for every version in use (the ready ones the API answers from and the ones being built), then
//! spends what is left of its deadline building, a day at a time, recording progress after each
//! step, and switches a metric to its new version once every hour of history is built.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::lake::period_state::{self, GroupSets, GroupSums, PeriodState};
use crate::lake::{ListedFile, Shard, Storage, StorageError, TouchedMarker};
use crate::model::dims::{dim_set_key, dims_key, parse_dims_key, subsets};
use crate::model::measure::Measure;
use crate::model::period::{self, Grain};
use crate::rollup::cardinality::KeptValues;
use crate::rollup::catalog::{Catalog, MetricDef};
use crate::rollup::deployed::{self, DeployError};
use crate::rollup::engine::{self, Computed, ComputedRow, EngineError, MeasureKind, MergedRows};
use crate::rollup::lease::LeaseLost;
use crate::rollup::live::{Build, Built, Live, LiveError, Version};
use crate::rollup::shards::{self, Piece, ShardOptions, ShardPlan};
use crate::store::{PeriodRow, PeriodStore, StoreError, META_AS_OF};

/// How long a replaced version's rows outlive the switch by default: an API instance caches the
/// catalog for up to a minute (`QueryOptions::catalog_ttl`) and may still answer from them.
pub const DEFAULT_RETIRE_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Catalog(#[from] DeployError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("unknown metric `{0}`")]
    UnknownMetric(String),
    #[error("backfill `{field}` must be a date or an RFC 3339 time, got {text:?}")]
    BadBackfillBound { field: &'static str, text: String },
    #[error("backfill `from` must be before `to`")]
    EmptyBackfill,
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    #[error("{0}")]
    ShardQueue(String),
    #[error("bad shard job: {0}")]
    BadShardJob(String),
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RollupReport {
    /// UTC hours whose rows were recomputed from events, ascending.
    pub hours_recomputed: Vec<DateTime<Utc>>,
    pub days_rebuilt: usize,
    pub months_rebuilt: usize,
    pub rows_written: usize,
    /// Touched hours left for the next run: the deadline came first, or their shards are still
    /// being computed by workers.
    pub hours_remaining: usize,
    /// Hours larger than one piece of work, computed in shards (here or by workers) this run.
    pub hours_split: usize,
    /// Hours whose shards were sent to workers and are not all written yet, ascending.
    pub hours_waiting_for_shards: Vec<DateTime<Utc>>,
    pub as_of: Option<DateTime<Utc>>,
    /// Metric versions being built after this run, with hours done and hours in all.
    pub building: Vec<BuildProgress>,
    /// Metrics whose new version became the one answers come from in this run.
    pub switched: Vec<String>,
    /// Replaced or removed versions whose rows and states this run deleted.
    pub deleted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildProgress {
    pub metric: String,
    pub version: String,
    pub hours_done: usize,
    pub hours_total: usize,
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
    /// The lake: events, touched-hour markers, period states, the deployed catalog.
    pub storage: Storage,
    /// Where events and markers are read instead, when not `storage` (a preview reads the real
    /// lake and keeps everything it writes apart).
    pub events: Option<Storage>,
    pub store: Arc<dyn PeriodStore>,
    /// The definitions a lake with no deployed catalog is seeded with (the built-in `sql/`).
    pub catalog: Catalog,
    pub reporting_tz: Tz,
    /// How long a replaced or removed version's rows are kept after the switch.
    pub retire_after: Duration,
    /// How much event data one piece of work holds, and where an hour's shards run.
    pub shards: ShardOptions,
}

/// What [`Rollup::recompute_hours`] did.
#[derive(Default)]
struct HoursDone {
    rows_written: usize,
    /// Hours computed in shards.
    split: usize,
    /// Hours whose workers' shards are not all written yet: left as they were.
    waiting: BTreeSet<DateTime<Utc>>,
}

/// Period starts of one grain: which finer periods a merge reads, or grows a saved state by.
type Starts<'a> = Option<&'a [DateTime<Utc>]>;

/// One metric version as the rollup computes it.
#[derive(Clone)]
struct Target {
    version: Version,
    kind: MeasureKind,
}

impl Target {
    fn key(&self) -> &str {
        &self.version.key
    }
}

impl Rollup {
    /// Recomputes every hour touched since the last run, for every version in use, then builds
    /// new versions with the time left. With a deadline, stops between days of work once it has
    /// passed and leaves the rest (touched hours, build progress) for the next run.
    pub async fn run_touched(
        &self,
        deadline: Option<Instant>,
    ) -> Result<RollupReport, RollupError> {
        let mut live = self.versions().await?;
        let deleted = self.delete_retired(&mut live).await?;
        let listed_at = Utc::now();
        let markers = self.events().touched_markers().await?;
        let hours: BTreeSet<DateTime<Utc>> = markers.iter().map(|m| m.hour).collect();
        let in_use: Vec<Version> = live_versions(&live)?;
        let mut report = self
            .recompute_versions(&hours, &in_use, deadline, Scope::Touched)
            .await?;
        let done: BTreeSet<_> = report.hours_recomputed.iter().copied().collect();
        let cleared: Vec<TouchedMarker> = markers
            .into_iter()
            .filter(|m| done.contains(&m.hour))
            .collect();
        self.events().clear_markers(&cleared).await?;
        if report.hours_remaining == 0 {
            // Everything ingested before the listing is rolled up, up to the hour it was taken in.
            let as_of = period::floor_hour(listed_at);
            self.store.put_meta(META_AS_OF, &as_of.to_rfc3339()).await?;
            report.as_of = Some(as_of);
        }
        // Hours waiting for their shards are neither built again by the builds (each would plan
        // them anew) nor counted as built: they are recomputed for every version once merged.
        let waiting: BTreeSet<_> = report.hours_waiting_for_shards.iter().copied().collect();
        report.switched = self.build(&mut live, &done, &waiting, deadline).await?;
        report.deleted = deleted;
        report.building = progress(&live);
        Ok(report)
    }

    /// Recomputes, in place, every hour that has events (or those in `[from, to)`) for the ready
    /// version of all or some metrics: after events reached the lake without touched-hour
    /// markers, say. A changed definition needs none of this: it builds itself.
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
        let live = self.versions().await?;
        let mut ready = Vec::new();
        for (name, built) in &live.ready {
            if metrics.is_none_or(|only| only.contains(name)) {
                ready.push(built.version_of(name)?);
            }
        }
        for name in metrics.unwrap_or_default() {
            if !live.ready.contains_key(name) {
                return Err(RollupError::UnknownMetric(name.clone()));
            }
        }
        let hours: BTreeSet<_> = self
            .events()
            .hours_with_data()
            .await?
            .into_iter()
            .filter(|h| range.is_none_or(|(from, to)| *h >= from && *h < to))
            .collect();
        let mut report = self
            .recompute_versions(&hours, &ready, deadline, scope)
            .await?;
        report.building = progress(&live);
        Ok(report)
    }

    /// The versions in use after bringing [`Live`] in line with the deployed catalog: a metric
    /// whose deployed version is neither ready nor building gets a build over every hour with
    /// events; a build or a ready version no longer deployed is retired.
    pub async fn versions(&self) -> Result<Live, RollupError> {
        let now = Utc::now();
        let deployed = deployed::current_or_seed(&self.storage, &self.catalog)
            .await?
            .catalog;
        let (mut live, before) = match Live::load(&self.storage).await? {
            Some(live) => (live.clone(), Some(live)),
            None => {
                let mut live = Live::default();
                if self.store.get_meta(META_AS_OF).await?.is_some() {
                    // Rolled up by a release that kept rows under the bare metric name.
                    for def in deployed.computed() {
                        live.retire(def.name.clone(), def.dimensions.clone(), now);
                    }
                }
                (live, None)
            }
        };
        let names: BTreeSet<&String> = deployed.metrics().iter().map(|m| &m.name).collect();
        for (name, built) in std::mem::take(&mut live.ready) {
            if names.contains(&name) {
                live.ready.insert(name, built);
            } else {
                live.retire_version(built.version_of(&name)?, now);
            }
        }
        let mut new_builds = Vec::new();
        for def in deployed.computed() {
            let version = def.version(self.reporting_tz);
            let is_ready = live
                .ready
                .get(&def.name)
                .is_some_and(|b| b.version == version);
            let building = live.building.get(&def.name);
            if building.is_some_and(|b| b.version == version) && !is_ready {
                continue;
            }
            if let Some(old) = live.building.remove(&def.name) {
                live.retire_version(old.version_of(&def.name)?, now);
            }
            if !is_ready {
                new_builds.push(def.clone());
            }
        }
        for (name, build) in std::mem::take(&mut live.building) {
            if names.contains(&name) {
                live.building.insert(name, build);
            } else {
                live.retire_version(build.version_of(&name)?, now);
            }
        }
        if !new_builds.is_empty() {
            let hours = self.events().hours_with_data().await?;
            for def in new_builds {
                engine::check(&def).await?;
                tracing::info!(metric = %def.name, hours = hours.len(), "building a new version");
                live.building.insert(
                    def.name.clone(),
                    Build {
                        version: def.version(self.reporting_tz),
                        reporting_tz: self.reporting_tz.name().to_string(),
                        text: def.text.clone(),
                        started_at: now,
                        hours_total: hours.len(),
                        hours_done: 0,
                        next: hours.first().copied(),
                        through: hours.last().copied(),
                    },
                );
            }
        }
        if before.as_ref() != Some(&live) {
            live.save(&self.storage).await?;
        }
        Ok(live)
    }

    /// Builds each metric version under construction from where it stopped, a day at a time
    /// until the deadline, saving progress after each metric's step; a build that has covered
    /// every hour becomes the ready version. `fresh` are the hours this run already recomputed
    /// for every version in use (its touched hours): a build does not compute them again.
    /// Returns the metrics switched.
    async fn build(
        &self,
        live: &mut Live,
        fresh: &BTreeSet<DateTime<Utc>>,
        waiting: &BTreeSet<DateTime<Utc>>,
        deadline: Option<Instant>,
    ) -> Result<Vec<String>, RollupError> {
        let mut switched = Vec::new();
        if live.building.is_empty() {
            return Ok(switched);
        }
        let hours = self.events().hours_with_data().await?;
        let names: Vec<String> = live.building.keys().cloned().collect();
        for (i, name) in names.into_iter().enumerate() {
            // The first build of a run always makes a day of progress (see `recompute`).
            if i > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let mut build = live.building[&name].clone();
            let version = build.version_of(&name)?;
            let left: BTreeSet<DateTime<Utc>> = match (build.next, build.through) {
                (Some(next), Some(through)) => hours
                    .iter()
                    .copied()
                    .filter(|h| *h >= next && *h <= through)
                    .collect(),
                _ => BTreeSet::new(),
            };
            let todo: BTreeSet<DateTime<Utc>> = left
                .difference(fresh)
                .filter(|h| !waiting.contains(h))
                .copied()
                .collect();
            let report = self
                .recompute_versions(
                    &todo,
                    std::slice::from_ref(&version),
                    deadline,
                    Scope::Range,
                )
                .await?;
            let mut done: BTreeSet<_> = report.hours_recomputed.into_iter().collect();
            done.extend(left.intersection(fresh));
            build.hours_done += done.len();
            let todo = left;
            build.next = todo.difference(&done).next().copied();
            if build.next.is_none() {
                live.building.remove(&name);
                let replaced = live.ready.insert(
                    name.clone(),
                    Built {
                        version: build.version,
                        reporting_tz: build.reporting_tz,
                        text: build.text,
                        ready_at: Utc::now(),
                    },
                );
                if let Some(old) = replaced {
                    live.retire_version(old.version_of(&name)?, Utc::now());
                }
                tracing::info!(metric = %name, version = %version.version, "new version ready");
                switched.push(name.clone());
            } else {
                live.building.insert(name.clone(), build);
            }
            live.save(&self.storage).await?;
        }
        Ok(switched)
    }

    /// Deletes the rows and states of versions retired at least [`Rollup::retire_after`] ago.
    async fn delete_retired(&self, live: &mut Live) -> Result<Vec<String>, RollupError> {
        let now = Utc::now();
        let keep = chrono::Duration::from_std(self.retire_after).unwrap_or(chrono::Duration::MAX);
        let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut live.retired)
            .into_iter()
            .partition(|r| r.retired_at + keep <= now);
        live.retired = kept;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut deleted = Vec::new();
        for r in due {
            let sets: Vec<String> = subsets(&r.dimensions).map(dim_set_key).collect();
            self.store.delete_metric(&r.key, &sets).await?;
            period_state::delete_all(&self.storage, &r.key).await?;
            KeptValues::delete(&self.storage, &r.key).await?;
            tracing::info!(key = %r.key, "retired version deleted");
            deleted.push(r.key);
        }
        live.save(&self.storage).await?;
        Ok(deleted)
    }

    fn events(&self) -> &Storage {
        self.events.as_ref().unwrap_or(&self.storage)
    }

    /// Brings the versions in line with the deployed catalog and builds what is new, leaving
    /// touched hours alone (a preview; the scheduled run does this after the touched hours).
    pub async fn run_builds(&self, deadline: Option<Instant>) -> Result<RollupReport, RollupError> {
        let mut live = self.versions().await?;
        let switched = self
            .build(&mut live, &BTreeSet::new(), &BTreeSet::new(), deadline)
            .await?;
        Ok(RollupReport {
            switched,
            building: progress(&live),
            ..RollupReport::default()
        })
    }

    /// Recomputes `hours` for `versions`, grouped by the zone their days are stored in.
    async fn recompute_versions(
        &self,
        hours: &BTreeSet<DateTime<Utc>>,
        versions: &[Version],
        deadline: Option<Instant>,
        scope: Scope,
    ) -> Result<RollupReport, RollupError> {
        let mut by_zone: BTreeMap<&str, Vec<Target>> = BTreeMap::new();
        for v in versions {
            let kind = engine::check(&v.def).await?;
            by_zone
                .entry(v.reporting_tz.name())
                .or_default()
                .push(Target {
                    version: v.clone(),
                    kind,
                });
        }
        let mut total: Option<RollupReport> = None;
        for targets in by_zone.values() {
            let tz = targets[0].version.reporting_tz;
            let r = self.recompute(hours, targets, deadline, scope, tz).await?;
            total = Some(match total {
                None => r,
                Some(mut t) => {
                    // An hour is done when every zone's versions have it.
                    let done: BTreeSet<_> = r.hours_recomputed.iter().collect();
                    t.hours_recomputed.retain(|h| done.contains(h));
                    t.days_rebuilt += r.days_rebuilt;
                    t.months_rebuilt += r.months_rebuilt;
                    t.rows_written += r.rows_written;
                    t.hours_remaining = t.hours_remaining.max(r.hours_remaining);
                    t.hours_split += r.hours_split;
                    t.hours_waiting_for_shards
                        .extend(r.hours_waiting_for_shards);
                    t.hours_waiting_for_shards.sort();
                    t.hours_waiting_for_shards.dedup();
                    t
                }
            });
        }
        Ok(total.unwrap_or_else(|| RollupReport {
            hours_recomputed: hours.iter().copied().collect(),
            ..RollupReport::default()
        }))
    }

    /// Recomputes `hours` for `targets`, whose days and months are in `tz`. Stops between days
    /// once `deadline` has passed, but always does the first day, so that every run makes
    /// progress (the function's safety margin leaves room for one).
    async fn recompute(
        &self,
        hours: &BTreeSet<DateTime<Utc>>,
        targets: &[Target],
        deadline: Option<Instant>,
        scope: Scope,
        tz: Tz,
    ) -> Result<RollupReport, RollupError> {
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
            if i > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                report.hours_remaining += by_day.values().skip(i).map(Vec::len).sum::<usize>();
                break;
            }
            tracing::debug!(day = %day, hours = day_hours.len(), "rollup day {}/{}", i + 1, total_days);
            let hours = self.recompute_hours(day_hours, targets).await?;
            report.rows_written += hours.rows_written;
            report.hours_split += hours.split;
            report
                .hours_waiting_for_shards
                .extend(hours.waiting.iter().copied());
            report.hours_remaining += hours.waiting.len();
            for t in targets {
                report.rows_written += self.rebuild(t, Grain::Day, *day, None, tz).await?;
            }
            report
                .hours_recomputed
                .extend(day_hours.iter().filter(|h| !hours.waiting.contains(h)));
            report.days_rebuilt += 1;
            months
                .entry(period::month_start(tz, *day))
                .or_default()
                .push(*day);
        }
        for (month, days) in &months {
            let grown_by = (scope == Scope::Touched).then_some(days.as_slice());
            for t in targets {
                report.rows_written += self.rebuild(t, Grain::Month, *month, grown_by, tz).await?;
            }
        }
        report.months_rebuilt = months.len();
        if !months.is_empty() {
            let months: BTreeSet<DateTime<Utc>> = months.into_keys().collect();
            for t in targets {
                report.rows_written += self
                    .rebuild_all_time(t, &months, scope == Scope::Everything, tz)
                    .await?;
            }
        }
        Ok(report)
    }

    /// Runs every metric over the events of `hours`, stores one row per hour and group, and saves
    /// each hour's state (empty for an hour without values, so no older state outlives it). The
    /// events are read a piece of work at a time ([`shards`]); an hour whose shards run elsewhere
    /// and are not all done yet is left as it was, and reported waiting.
    async fn recompute_hours(
        &self,
        hours: &[DateTime<Utc>],
        targets: &[Target],
    ) -> Result<HoursDone, RollupError> {
        let mut listed = Vec::with_capacity(hours.len());
        for h in hours {
            listed.push((*h, self.events().listed_hour_files(*h).await?));
        }
        let versions: Vec<Version> = targets.iter().map(|t| t.version.clone()).collect();
        let kinds: Vec<MeasureKind> = targets.iter().map(|t| t.kind).collect();
        let mut per_target: Vec<Vec<ComputedRow>> = vec![Vec::new(); targets.len()];
        let mut done = HoursDone::default();
        let mut split = Vec::new();
        for piece in shards::pieces(listed, self.shards.max_bytes) {
            let computed = match piece {
                Piece::Hours(hours) => {
                    let mut batches = Vec::new();
                    for (h, files) in &hours {
                        for b in self.events().read_events(files, Shard::WHOLE).await? {
                            batches.push(with_period(b, h.timestamp())?);
                        }
                    }
                    shards::compute_all(batches, &versions).await?
                }
                Piece::Split { hour, files, count } => {
                    let computed = match &self.shards.queue {
                        None => Some(self.split_here(hour, &files, count, &versions).await?),
                        Some(queue) => {
                            let refs: Vec<&Version> = versions.iter().collect();
                            let plan = ShardPlan::new(hour, &files, count, &refs);
                            shards::fanned_out(
                                &self.storage,
                                &self.shards,
                                queue.as_ref(),
                                plan,
                                &kinds,
                            )
                            .await?
                        }
                    };
                    let Some(computed) = computed else {
                        done.waiting.insert(hour);
                        continue;
                    };
                    split.push(hour);
                    computed
                }
            };
            for (into, rows) in per_target.iter_mut().zip(computed) {
                into.extend(rows);
            }
        }
        let stored: Vec<DateTime<Utc>> = hours
            .iter()
            .copied()
            .filter(|h| !done.waiting.contains(h))
            .collect();
        for (t, computed) in targets.iter().zip(per_target) {
            let def = &t.version.def;
            // Kept values are durable before any row or state counts on them: a run that stops
            // in between finds them kept and makes the same groups again.
            let mut kept = KeptValues::load(&self.storage, t.key()).await?;
            if kept.admit(&computed, &def.dimensions, def.max_values) {
                kept.save(&self.storage, t.key()).await?;
            }
            let computed = kept.fold(computed);
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
                    metric: t.key().to_string(),
                    grain: Grain::Hour,
                    start,
                    dims: c.dims,
                    measure,
                });
            }
            if t.kind == MeasureKind::DistinctCount {
                self.save_hour_states(t.key(), &stored, sets).await?;
            } else {
                self.save_hour_states(t.key(), &stored, sums).await?;
            }
            done.rows_written += rows.len();
            self.store.put(rows).await?;
        }
        // The hours' states are stored: their plans and parts are no longer needed.
        for hour in &split {
            shards::clear_hour(&self.storage, *hour, &versions).await?;
        }
        done.split = split.len();
        Ok(done)
    }

    /// The rows of one hour too large for one piece of work, computed here a shard at a time.
    async fn split_here(
        &self,
        hour: DateTime<Utc>,
        files: &[ListedFile],
        count: u32,
        versions: &[Version],
    ) -> Result<Vec<Vec<ComputedRow>>, RollupError> {
        let mut merged: Vec<MergedRows> = versions.iter().map(|_| MergedRows::default()).collect();
        for index in 0..count {
            let shard = Shard { index, count };
            let rows = shards::compute_shard(self.events(), hour, files, shard, versions).await?;
            for (into, rows) in merged.iter_mut().zip(rows) {
                into.extend(rows);
            }
        }
        Ok(merged.into_iter().map(MergedRows::into_rows).collect())
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
        target: &Target,
        grain: Grain,
        start: DateTime<Utc>,
        grown_by: Option<&[DateTime<Utc>]>,
        tz: Tz,
    ) -> Result<usize, RollupError> {
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
        self.rebuild_from_states(target, (grain, start), finer, Some(&starts), grown_by, tz)
            .await
    }

    /// The all-time rows, one per group, from every month's state: sums add every month; distinct
    /// counts keep the exact set of every value seen, grown by the months just rebuilt (values only
    /// ever arrive), or built again from every month's set when `from_scratch` (a full rollup, as
    /// after a metric changed).
    async fn rebuild_all_time(
        &self,
        target: &Target,
        months: &BTreeSet<DateTime<Utc>>,
        from_scratch: bool,
        tz: Tz,
    ) -> Result<usize, RollupError> {
        let months: Vec<DateTime<Utc>> = months.iter().copied().collect();
        let grown_by = (!from_scratch).then_some(months.as_slice());
        let all_time = (Grain::All, period::ALL_TIME_START);
        self.rebuild_from_states(target, all_time, Grain::Month, None, grown_by, tz)
            .await
    }

    /// Merges the `finer` states at `starts` (every saved one when `None`) into the state of
    /// `(grain, start)`, saves it and stores its rows. Distinct sets may grow from the saved state
    /// by `grown_by` alone; sums are always merged again.
    async fn rebuild_from_states(
        &self,
        target: &Target,
        period: (Grain, DateTime<Utc>),
        finer: Grain,
        starts: Option<&[DateTime<Utc>]>,
        grown_by: Option<&[DateTime<Utc>]>,
        tz: Tz,
    ) -> Result<usize, RollupError> {
        let key = target.key();
        let rows = if target.kind == MeasureKind::DistinctCount {
            let sets: GroupSets = self
                .merged_state(key, period, finer, (starts, grown_by), tz)
                .await?;
            rows_of(key, period, &sets)?
        } else {
            let sums: GroupSums = self
                .merged_state(key, period, finer, (starts, None), tz)
                .await?;
            rows_of(key, period, &sums)?
        };
        let n = rows.len();
        self.store.put(rows).await?;
        Ok(n)
    }

    async fn merged_state<S: PeriodState>(
        &self,
        name: &str,
        (grain, start): (Grain, DateTime<Utc>),
        finer: Grain,
        (starts, grown_by): (Starts<'_>, Starts<'_>),
        tz: Tz,
    ) -> Result<S, RollupError> {
        let storage = &self.storage;
        let grown =
            period_state::load_grown(storage, name, (grain, start), finer, grown_by).await?;
        let state = match (grown, starts) {
            (Some(state), _) => state,
            (None, Some(starts)) => period_state::merged(storage, name, finer, starts).await?,
            (None, None) => {
                // Only periods of this version's zone (a guard: a version's states are all in
                // one zone, the zone being part of the version).
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
    key: &str,
    (grain, start): (Grain, DateTime<Utc>),
    state: &S,
) -> Result<Vec<PeriodRow>, RollupError> {
    state
        .measures()
        .into_iter()
        .map(|(group, measure)| {
            let dims = parse_dims_key(group).map_err(|e| StorageError::CorruptState {
                path: format!("{key} {grain} {start}"),
                reason: format!("bad group key {group}: {e}"),
            })?;
            Ok(PeriodRow {
                metric: key.to_string(),
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

pub(crate) fn with_period(batch: RecordBatch, start: i64) -> Result<RecordBatch, RollupError> {
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(vec![start; batch.num_rows()])));
    RecordBatch::try_new(engine::table_schema(), columns).map_err(|e| RollupError::Engine(e.into()))
}

/// Every version in use: the ready ones and the ones being built.
fn live_versions(live: &Live) -> Result<Vec<Version>, RollupError> {
    let mut out = Vec::new();
    for (name, built) in &live.ready {
        out.push(built.version_of(name)?);
    }
    for (name, build) in &live.building {
        out.push(build.version_of(name)?);
    }
    Ok(out)
}

fn progress(live: &Live) -> Vec<BuildProgress> {
    live.building
        .iter()
        .map(|(name, b)| BuildProgress {
            metric: name.clone(),
            version: b.version.clone(),
            hours_done: b.hours_done,
            hours_total: b.hours_total,
        })
        .collect()
}
