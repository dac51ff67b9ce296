//! Work bounded by a budget, so that the rollup's memory follows the number of groups and not the
//! traffic.
//!
//! The hours a run recomputes are cut into pieces of at most [`ShardOptions::max_bytes`] of event
//! files: consecutive small hours go together (one query plan for many hours), and an hour larger
//! than the budget goes alone, split into shards by a hash of `event_id`. Each shard reads the
//! hour's files a row group at a time and keeps only its own events, so every copy of an event
//! meets in one shard and is counted once there. The shards' rows merge into the hour's exactly as
//! hours merge into a day: sums add, distinct sets union.
//!
//! Without a queue the run computes an hour's shards itself, one after another. With a
//! [`ShardQueue`] (on AWS an SQS queue whose worker is the rollup function) they run in parallel
//! elsewhere: the run writes the hour's plan to the lake, sends one job per shard, and leaves the
//! hour touched; each worker writes its shard's partial state of every metric version
//! ([`run_shard`]); a later run that finds every part of the plan merges them and stores the hour
//! like any other. New files in the hour make a new plan (the plan is named by its content), and
//! parts of an old plan are never merged into a new one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lake::content_hash;
use crate::lake::paths::ShardPlanFiles;
use crate::lake::period_state::{GroupSets, GroupSums, PeriodState};
use crate::lake::{ListedFile, Shard, Storage, StorageError};
use crate::model::dims::{dims_key, parse_dims_key};
use crate::rollup::engine::{self, Computed, ComputedRow, MeasureKind};
use crate::rollup::live::Version;
use crate::rollup::RollupError;

/// Bytes of event files one piece of work reads by default: about 1.3 million events of compacted
/// files (zstd, ~25 bytes an event), 350,000 of files as ingest writes them (uncompressed, ~95);
/// `make bench` measured ~10 MiB of memory per MiB of compacted files, so ~470 MiB peak at most,
/// well inside the rollup function's 2 GB.
pub const DEFAULT_SHARD_BYTES: u64 = 32 * 1024 * 1024;

/// At most this many shards per hour, whatever the budget (each shard reads every file of the hour).
pub(crate) const MAX_SHARDS: u32 = 256;

/// How long a run waits for an hour's shard jobs before sending the missing ones again: past the
/// worker's timeout, a job that has not written its part was lost or failed.
pub(crate) const DEFAULT_RESEND_AFTER: Duration = Duration::from_secs(15 * 60);

/// How the rollup cuts its work.
#[derive(Clone)]
pub struct ShardOptions {
    /// Bytes of event files per piece of work.
    pub max_bytes: u64,
    /// Where an hour's shard jobs go; `None` computes them in the run.
    pub queue: Option<Arc<dyn ShardQueue>>,
    pub resend_after: Duration,
}

impl Default for ShardOptions {
    fn default() -> ShardOptions {
        ShardOptions {
            max_bytes: DEFAULT_SHARD_BYTES,
            queue: None,
            resend_after: DEFAULT_RESEND_AFTER,
        }
    }
}

/// One shard of one planned hour: the message a worker receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardJob {
    pub hour: DateTime<Utc>,
    /// The set of metric versions planned (a hash).
    pub metrics: String,
    pub plan: String,
    pub shard: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("sending shard jobs: {0}")]
pub struct ShardQueueError(pub String);

/// Where shard jobs are sent (an SQS queue on AWS).
#[async_trait::async_trait]
pub trait ShardQueue: Send + Sync {
    async fn send(&self, jobs: &[ShardJob]) -> Result<(), ShardQueueError>;
}

/// One piece of a run's work.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece {
    /// Whole hours, each with its files, computed together.
    Hours(Vec<(DateTime<Utc>, Vec<ListedFile>)>),
    /// One hour larger than the budget, in `count` shards.
    Split {
        hour: DateTime<Utc>,
        files: Vec<ListedFile>,
        count: u32,
    },
}

/// Cuts `hours` (ascending, with their files) into pieces of at most `max_bytes`.
pub(crate) fn pieces(hours: Vec<(DateTime<Utc>, Vec<ListedFile>)>, max_bytes: u64) -> Vec<Piece> {
    let max_bytes = max_bytes.max(1);
    let mut out = Vec::new();
    let mut group: Vec<(DateTime<Utc>, Vec<ListedFile>)> = Vec::new();
    let mut group_bytes = 0;
    for (hour, files) in hours {
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        if bytes > max_bytes {
            let count = bytes.div_ceil(max_bytes).min(u64::from(MAX_SHARDS)) as u32;
            if !group.is_empty() {
                out.push(Piece::Hours(std::mem::take(&mut group)));
                group_bytes = 0;
            }
            out.push(Piece::Split { hour, files, count });
            continue;
        }
        if group_bytes + bytes > max_bytes && !group.is_empty() {
            out.push(Piece::Hours(std::mem::take(&mut group)));
            group_bytes = 0;
        }
        group_bytes += bytes;
        group.push((hour, files));
    }
    if !group.is_empty() {
        out.push(Piece::Hours(group));
    }
    out
}

/// A split hour as written to the lake for its workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShardPlan {
    pub(crate) hour: DateTime<Utc>,
    pub(crate) count: u32,
    /// Paths and sizes, in read order.
    pub(crate) files: Vec<(String, u64)>,
    pub(crate) metrics: Vec<PlannedMetric>,
}

/// A metric version as a worker rebuilds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlannedMetric {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) zone: String,
    pub(crate) text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sent {
    at: DateTime<Utc>,
}

impl ShardPlan {
    pub(crate) fn new(
        hour: DateTime<Utc>,
        files: &[ListedFile],
        count: u32,
        versions: &[&Version],
    ) -> ShardPlan {
        ShardPlan {
            hour,
            count,
            files: files.iter().map(|f| (f.path.to_string(), f.size)).collect(),
            metrics: versions
                .iter()
                .map(|v| PlannedMetric {
                    // The name the version's key was made from, so that the worker's key is it.
                    name: v
                        .key
                        .strip_suffix(&format!(".v{}", v.version))
                        .unwrap_or(&v.def.name)
                        .to_string(),
                    version: v.version.clone(),
                    zone: v.reporting_tz.name().to_string(),
                    text: v.def.text.clone(),
                })
                .collect(),
        }
    }

    fn files_of(&self) -> ShardPlanFiles {
        let text = serde_json::to_vec(self).expect("plans serialise");
        let keys: Vec<String> = self
            .metrics
            .iter()
            .map(|m| crate::rollup::live::version_key(&m.name, &m.version) + "@" + &m.zone)
            .collect();
        ShardPlanFiles {
            hour: self.hour,
            metrics: metrics_hash(&keys),
            plan: content_hash([&text[..]]),
        }
    }

    fn listed(&self) -> Vec<ListedFile> {
        self.files
            .iter()
            .map(|(path, size)| ListedFile {
                path: path.as_str().into(),
                size: *size,
            })
            .collect()
    }

    fn versions(&self) -> Result<Vec<Version>, RollupError> {
        self.metrics
            .iter()
            .map(|m| Ok(Version::of(&m.name, &m.version, &m.zone, &m.text)?))
            .collect()
    }
}

/// What a worker did with one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardOutcome {
    /// Every metric's part of the shard is written.
    Written,
    /// The plan or one of its files is gone (the hour was merged, compacted or planned again):
    /// nothing to do, and nothing is lost, since a newer plan covers the hour.
    Superseded,
}

/// Runs one shard job: reads the shard's events of the planned files and writes each metric
/// version's partial state of the hour. Writing a part again writes the same bytes, so a job
/// delivered twice is harmless.
pub async fn run_shard(storage: &Storage, job: &ShardJob) -> Result<ShardOutcome, RollupError> {
    let files = ShardPlanFiles {
        hour: job.hour,
        metrics: job.metrics.clone(),
        plan: job.plan.clone(),
    };
    let Some(bytes) = storage.get_bytes(&files.plan()).await? else {
        return Ok(ShardOutcome::Superseded);
    };
    let plan: ShardPlan =
        serde_json::from_slice(&bytes).map_err(|e| StorageError::CorruptState {
            path: files.plan().to_string(),
            reason: e.to_string(),
        })?;
    if job.shard >= plan.count {
        return Err(RollupError::BadShardJob(format!(
            "shard {} of a plan with {} shards",
            job.shard, plan.count
        )));
    }
    let versions = plan.versions()?;
    let shard = Shard {
        index: job.shard,
        count: plan.count,
    };
    let rows = match compute_shard(storage, plan.hour, &plan.listed(), shard, &versions).await {
        Err(RollupError::Storage(StorageError::ObjectStore(object_store::Error::NotFound {
            ..
        }))) => return Ok(ShardOutcome::Superseded),
        other => other?,
    };
    for (v, rows) in versions.iter().zip(rows) {
        let kind = engine::check(&v.def).await?;
        let (path, bytes) = match kind {
            MeasureKind::DistinctCount => (
                files.part(job.shard, &v.key, GroupSets::KIND),
                sets_of(rows).encode(),
            ),
            _ => (
                files.part(job.shard, &v.key, GroupSums::KIND),
                sums_of(rows).encode(),
            ),
        };
        storage.put_bytes(&path, bytes).await?;
    }
    Ok(ShardOutcome::Written)
}

/// The rows of one shard of `hour`, per version (unfolded: the bound on groups is applied when
/// the hour is stored).
pub(crate) async fn compute_shard(
    storage: &Storage,
    hour: DateTime<Utc>,
    files: &[ListedFile],
    shard: Shard,
    versions: &[Version],
) -> Result<Vec<Vec<ComputedRow>>, RollupError> {
    let batches = storage.read_events(files, shard).await?;
    let batches = batches
        .into_iter()
        .map(|b| super::recompute::with_period(b, hour.timestamp()))
        .collect::<Result<Vec<_>, _>>()?;
    compute_all(batches, versions).await
}

/// Runs every version's query over one set of event batches.
pub(crate) async fn compute_all(
    batches: Vec<arrow::array::RecordBatch>,
    versions: &[Version],
) -> Result<Vec<Vec<ComputedRow>>, RollupError> {
    let engine = engine::Engine::new(batches)?;
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        out.push(engine.compute(&v.def).await?);
    }
    Ok(out)
}

/// The workers' parts of a split hour when every one is written, per version; `None` while some
/// are missing, after sending (again, once `resend_after` has passed) the jobs of those shards.
pub(crate) async fn fanned_out(
    storage: &Storage,
    options: &ShardOptions,
    queue: &dyn ShardQueue,
    plan: ShardPlan,
    kinds: &[MeasureKind],
) -> Result<Option<Vec<Vec<ComputedRow>>>, RollupError> {
    let files = plan.files_of();
    let versions = plan.versions()?;
    let listed: std::collections::BTreeSet<String> = storage
        .list(files.folder().as_ref())
        .await?
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    let part = |k: u32, v: &Version, kind: MeasureKind| {
        let state_kind = match kind {
            MeasureKind::DistinctCount => GroupSets::KIND,
            _ => GroupSums::KIND,
        };
        files.part(k, &v.key, state_kind)
    };
    let missing: Vec<u32> = (0..plan.count)
        .filter(|k| {
            versions
                .iter()
                .zip(kinds)
                .any(|(v, kind)| !listed.contains(part(*k, v, *kind).as_ref()))
        })
        .collect();
    if missing.is_empty() {
        let mut out = Vec::with_capacity(versions.len());
        for (v, kind) in versions.iter().zip(kinds) {
            let mut merged = engine::MergedRows::default();
            for k in 0..plan.count {
                let path = part(k, v, *kind);
                let bytes =
                    storage
                        .get_bytes(&path)
                        .await?
                        .ok_or_else(|| StorageError::CorruptState {
                            path: path.to_string(),
                            reason: "listed, then gone".into(),
                        })?;
                let corrupt = |reason: String| StorageError::CorruptState {
                    path: path.to_string(),
                    reason,
                };
                let rows = match kind {
                    MeasureKind::DistinctCount => rows_of(
                        plan.hour,
                        GroupSets::decode(&bytes).map_err(corrupt)?,
                        Computed::Distinct,
                    ),
                    _ => rows_of(
                        plan.hour,
                        GroupSums::decode(&bytes).map_err(corrupt)?,
                        Computed::Additive,
                    ),
                }
                .map_err(|e| StorageError::CorruptState {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?;
                merged.extend(rows);
            }
            out.push(merged.into_rows());
        }
        return Ok(Some(out));
    }
    let now = Utc::now();
    let sent = match storage.get_bytes(&files.sent()).await? {
        Some(bytes) => serde_json::from_slice::<Sent>(&bytes).ok(),
        None => None,
    };
    let resend = chrono::Duration::from_std(options.resend_after).unwrap_or(chrono::Duration::MAX);
    if sent.is_some_and(|s| s.at + resend > now) {
        return Ok(None);
    }
    if !listed.contains(files.plan().as_ref()) {
        let text = serde_json::to_vec(&plan).expect("plans serialise");
        storage.put_bytes(&files.plan(), text).await?;
    }
    let jobs: Vec<ShardJob> = missing
        .into_iter()
        .map(|shard| ShardJob {
            hour: plan.hour,
            metrics: files.metrics.clone(),
            plan: files.plan.clone(),
            shard,
        })
        .collect();
    queue
        .send(&jobs)
        .await
        .map_err(|e| RollupError::ShardQueue(e.0))?;
    tracing::info!(hour = %plan.hour, plan = %files.plan, shards = jobs.len(), "shard jobs sent");
    let sent = serde_json::to_vec(&Sent { at: now }).expect("times serialise");
    storage.put_bytes(&files.sent(), sent).await?;
    Ok(None)
}

/// Deletes every plan and part of `hour` for `versions` (older plans of other file sets too), once
/// the hour's state is stored. Plans of other versions, another zone's, are theirs to delete.
pub(crate) async fn clear_hour(
    storage: &Storage,
    hour: DateTime<Utc>,
    versions: &[Version],
) -> Result<(), StorageError> {
    let keys: Vec<String> = versions
        .iter()
        .map(|v| v.key.clone() + "@" + v.reporting_tz.name())
        .collect();
    let folder = ShardPlanFiles::plans_folder(hour, &metrics_hash(&keys));
    storage.delete_under(folder.as_ref()).await.map(|_| ())
}

fn metrics_hash(keys: &[String]) -> String {
    content_hash(keys.iter().map(|k| k.as_bytes()))[..16].to_string()
}

fn sums_of(rows: Vec<ComputedRow>) -> GroupSums {
    state_of(rows, |v| match v {
        Computed::Additive(v) => v,
        Computed::Distinct(_) => unreachable!("a sum metric computes sums"),
    })
}

fn sets_of(rows: Vec<ComputedRow>) -> GroupSets {
    state_of(rows, |v| match v {
        Computed::Distinct(v) => v,
        Computed::Additive(_) => unreachable!("a distinct metric computes sets"),
    })
}

/// One hour's rows as a state: each group's value under its dimension key.
fn state_of<T>(
    rows: Vec<ComputedRow>,
    value: fn(Computed) -> T,
) -> std::collections::BTreeMap<String, T> {
    rows.into_iter()
        .map(|r| (dims_key(&r.dims), value(r.value)))
        .collect()
}

/// A state of `hour` as rows, each group's value made a [`Computed`] by `value`.
fn rows_of<T>(
    hour: DateTime<Utc>,
    state: std::collections::BTreeMap<String, T>,
    value: fn(T) -> Computed,
) -> Result<Vec<ComputedRow>, serde_json::Error> {
    state
        .into_iter()
        .map(|(key, v)| {
            Ok(ComputedRow {
                period_start: hour.timestamp(),
                dims: parse_dims_key(&key)?,
                value: value(v),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn hour(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 8, 23, h, 0, 0).unwrap()
    }

    fn files(sizes: &[u64]) -> Vec<ListedFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| ListedFile {
                path: format!("f{i}").into(),
                size: *s,
            })
            .collect()
    }

    #[test]
    fn small_hours_go_together_and_a_large_one_splits_alone() {
        let hours = vec![
            (hour(0), files(&[30, 30])),
            (hour(1), files(&[30])),
            (hour(2), files(&[50, 200, 100])),
            (hour(3), files(&[])),
            (hour(4), files(&[99])),
        ];
        let got = pieces(hours, 100);
        let shape: Vec<String> = got
            .iter()
            .map(|p| match p {
                Piece::Hours(hs) => format!(
                    "hours {:?}",
                    hs.iter()
                        .map(|(h, _)| h.format("%H").to_string())
                        .collect::<Vec<_>>()
                ),
                Piece::Split { hour, count, .. } => {
                    format!("split {} in {count}", hour.format("%H"))
                }
            })
            .collect();
        assert_eq!(
            shape,
            [
                "hours [\"00\", \"01\"]",
                "split 02 in 4",
                "hours [\"03\", \"04\"]",
            ]
        );
    }

    #[test]
    fn the_shard_count_is_capped() {
        let got = pieces(vec![(hour(0), files(&[u64::MAX / 2]))], 1);
        assert!(matches!(
            got[..],
            [Piece::Split {
                count: MAX_SHARDS,
                ..
            }]
        ));
    }
}
