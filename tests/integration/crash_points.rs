//! A crash at every durable step, on one machine and on AWS over moto.
//!
//! The pipeline (ingest, rollup, a second ingest with late events and duplicates, a catalog deploy
//! that changes a metric, compaction, two rollups that build and switch the changed metric; over
//! moto the queue path's ingest and the rollups) is run once cleanly, counting every write it makes to object storage and the period store. Then, for
//! every k below that count, it runs again on a fresh lake where the k-th write and every one after
//! it fail, as when a process stops there: a Parquet object written and its marker not, one
//! DynamoDB batch of several, a month's state without its rows, a merged file without the deletes,
//! a catalog version without its pointer. Recovery is what happens in production: the failed step
//! runs again (a redelivered SQS batch carries only the messages reported failed; the next scheduled
//! rollup waits out the crashed job's lease). Every number stored, and every event in the lake,
//! must then equal the clean run's exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tally::ingest::{self, Message};
use tally::lake::Storage;
use tally::model::{Dims, Grain, Measure, Period};
use tally::rollup::{deploy, dimension_sets, run_job, Catalog, Job, JobReport, Live, Rollup};
use tally::store::{Claim, Fetched, PeriodRow, PeriodStore, SqliteStore, StoreError};

use crate::moto;
use crate::oracle::Oracle;

/// Writes allowed before the crash; every later one fails.
struct Budget {
    left: AtomicI64,
    /// Writes that went through, in order, with the index of the step that made each.
    writes: Mutex<Vec<(usize, String)>>,
    /// The step running.
    step: std::sync::atomic::AtomicUsize,
    /// Writes refused.
    refused: AtomicI64,
}

impl Budget {
    fn new(writes: i64) -> Arc<Budget> {
        Arc::new(Budget {
            left: AtomicI64::new(writes),
            writes: Mutex::new(Vec::new()),
            step: Default::default(),
            refused: AtomicI64::new(0),
        })
    }

    fn unlimited() -> Arc<Budget> {
        Budget::new(i64::MAX / 2)
    }

    fn take(&self, what: impl FnOnce() -> String) -> Result<(), String> {
        if self.left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(format!("crashed before: {}", what()));
        }
        let step = self.step.load(Ordering::SeqCst);
        self.writes.lock().unwrap().push((step, what()));
        Ok(())
    }

    fn crashed(&self) -> bool {
        self.refused.load(Ordering::SeqCst) > 0
    }

    /// The process is back: writes go through again.
    fn restart(&self) {
        self.left.store(i64::MAX / 2, Ordering::SeqCst);
    }
}

fn crash(e: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "crashing",
        source: e.into(),
    }
}

/// Object storage that stops writing when the budget runs out.
struct CrashingObjects {
    inner: Arc<dyn ObjectStore>,
    budget: Arc<Budget>,
}

impl fmt::Display for CrashingObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crashing({})", self.inner)
    }
}

impl fmt::Debug for CrashingObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crashing({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CrashingObjects {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.budget
            .take(|| format!("put {location}"))
            .map_err(crash)?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.budget
            .take(|| format!("multipart put {location}"))
            .map_err(crash)?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let (inner, budget) = (self.inner.clone(), self.budget.clone());
        locations
            .then(move |location| {
                let (inner, budget) = (inner.clone(), budget.clone());
                async move {
                    let location = location?;
                    budget
                        .take(|| format!("delete {location}"))
                        .map_err(crash)?;
                    let one = futures::stream::once(async move { Ok(location) }).boxed();
                    inner.delete_stream(one).next().await.expect("one result")
                }
            })
            .boxed()
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.budget
            .take(|| format!("copy {from} to {to}"))
            .map_err(crash)?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// A period store that stops writing when the budget runs out.
struct CrashingPeriods {
    inner: Arc<dyn PeriodStore>,
    budget: Arc<Budget>,
}

impl CrashingPeriods {
    fn take(&self, what: impl FnOnce() -> String) -> Result<(), StoreError> {
        self.budget.take(what).map_err(StoreError::Backend)
    }
}

#[async_trait]
impl PeriodStore for CrashingPeriods {
    async fn put(&self, rows: Vec<PeriodRow>) -> Result<(), StoreError> {
        let metric = rows.first().map_or("none", |r| r.metric.as_str());
        self.take(|| format!("{} rows of {metric}", rows.len()))?;
        self.inner.put(rows).await
    }
    async fn series(
        &self,
        metric: &str,
        grain: Grain,
        dims: &Dims,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        self.inner.series(metric, grain, dims, from, to).await
    }
    async fn groups(
        &self,
        metric: &str,
        grain: Grain,
        dim_set: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        self.inner.groups(metric, grain, dim_set, from, to).await
    }
    async fn fetch(
        &self,
        metric: &str,
        dims: &Dims,
        periods: &[Period],
        meta: &[&str],
    ) -> Result<Fetched, StoreError> {
        self.inner.fetch(metric, dims, periods, meta).await
    }
    async fn delete_metric(&self, metric: &str, dim_sets: &[String]) -> Result<(), StoreError> {
        self.take(|| format!("delete rows of {metric}"))?;
        self.inner.delete_metric(metric, dim_sets).await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_meta(key).await
    }
    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.take(|| format!("meta {key}"))?;
        self.inner.put_meta(key, value).await
    }
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.take(|| format!("claim lease {name}"))?;
        self.inner.claim_lease(name, holder, now, until).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.take(|| format!("release lease {name}"))?;
        self.inner.release_lease(name, holder).await
    }
}

fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, d, h, m, 0).unwrap()
}

pub(crate) fn received() -> DateTime<Utc> {
    utc(25, 0, 0)
}

pub(crate) const ZONE: Tz = chrono_tz::Asia::Seoul;

fn purchase(id: &str, user: &str, country: &str, at: DateTime<Utc>, price: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"purchase","occurred_at":"{}","user_id":"{user}","country":"{country}","item_id":"i1","price":"{price}","quantity":2}}"#,
        at.to_rfc3339()
    )
}

fn sign_in(id: &str, user: &str, country: &str, at: DateTime<Utc>) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"sign-in","occurred_at":"{}","user_id":"{user}","country":"{country}"}}"#,
        at.to_rfc3339()
    )
}

/// Two batches over three hours and two reporting days (Seoul), a message or line each: the
/// second brings a late event into the first hour (a second file there for compaction), a
/// duplicate, and a message holding an event beside a malformed one.
pub(crate) fn batches() -> [Vec<String>; 2] {
    let first = vec![
        purchase("e1", "u1", "KR", utc(23, 14, 10), "10.50"),
        purchase("e2", "u2", "US", utc(23, 15, 20), "3"),
        sign_in("e3", "u3", "KR", utc(23, 15, 40)),
        purchase("e1", "u1", "KR", utc(23, 14, 10), "10.50"),
        "not json".to_string(),
    ];
    let second = vec![
        format!(
            r#"[{}, {{"event_id":"e6","event_type":"sign-in"}}]"#,
            purchase("e4", "u1", "KR", utc(23, 14, 50), "1.25")
        ),
        purchase("e2", "u2", "US", utc(23, 15, 20), "3"),
        sign_in("e5", "u4", "JP", utc(24, 16, 5)),
    ];
    [first, second]
}

/// The metrics rolled up: a sum and a distinct count, from the shipped files.
pub(crate) fn catalog() -> Catalog {
    let builtin = Catalog::builtin();
    let files: Vec<(String, String)> = ["revenue", "visitors"]
        .iter()
        .map(|m| (format!("{m}.sql"), builtin.get(m).unwrap().text.clone()))
        .collect();
    Catalog::from_sources(files.iter().map(|(n, t)| (n.clone(), t.as_str()))).unwrap()
}

/// What the data team deploys midway: revenue written another way (a new version to build, the
/// same numbers).
fn changed_catalog() -> Catalog {
    let files: Vec<(String, String)> = catalog()
        .listed()
        .map(|m| {
            let text = m.text.replace(
                "SUM(price * COALESCE(quantity, 1))",
                "SUM(COALESCE(quantity, 1) * price)",
            );
            (format!("{}.sql", m.name), text)
        })
        .collect();
    assert_ne!(files[0].1, catalog().get("revenue").unwrap().text);
    Catalog::from_sources(files.iter().map(|(n, t)| (n.clone(), t.as_str()))).unwrap()
}

enum Step {
    /// A file given to `tally ingest` (run again whole after a crash).
    File(Vec<String>),
    /// An SQS batch (after a crash, the messages it reported failed are delivered again).
    Messages(Vec<Message>),
    Deploy(Catalog),
    Job(Job),
}

fn steps(queue: bool) -> Vec<Step> {
    let [first, second] = batches();
    let ingest = |lines: Vec<String>| {
        if queue {
            let messages = lines.into_iter().enumerate();
            Step::Messages(
                messages
                    .map(|(i, body)| Message {
                        id: format!("m{i}"),
                        body: body.into_bytes(),
                    })
                    .collect(),
            )
        } else {
            Step::File(lines)
        }
    };
    let rollup = || Step::Job(Job::Rollup { full: false });
    if queue {
        // Over the emulator, the parts whose code differs from one machine's: the queue path
        // (partial batch failures) and DynamoDB. A deploy and compaction write objects through
        // the same code on either.
        return vec![ingest(first), rollup(), ingest(second), rollup()];
    }
    vec![
        ingest(first),
        rollup(),
        ingest(second),
        Step::Deploy(changed_catalog()),
        Step::Job(Job::Compact { grace_hours: 2 }),
        rollup(),
        rollup(),
    ]
}

struct Lake {
    storage: Storage,
    store: Arc<dyn PeriodStore>,
    budget: Arc<Budget>,
    _dir: Option<tempfile::TempDir>,
}

impl Lake {
    fn new(
        objects: Arc<dyn ObjectStore>,
        periods: Arc<dyn PeriodStore>,
        budget: Arc<Budget>,
    ) -> Lake {
        let storage = Storage::new(Arc::new(CrashingObjects {
            inner: objects,
            budget: budget.clone(),
        }));
        let store: Arc<dyn PeriodStore> = Arc::new(CrashingPeriods {
            inner: periods,
            budget: budget.clone(),
        });
        Lake {
            storage,
            store,
            budget,
            _dir: None,
        }
    }

    fn local(budget: Arc<Budget>) -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let objects = Storage::local(dir.path()).unwrap().object_store();
        let periods = Arc::new(SqliteStore::open(&dir.path().join("periods.sqlite")).unwrap());
        Lake {
            _dir: Some(dir),
            ..Lake::new(objects, periods, budget)
        }
    }

    async fn aws(budget: Arc<Budget>) -> Lake {
        let objects = moto::s3_object_store(&moto::unique("crash"));
        let periods = Arc::new(moto::dynamo_store(&moto::unique("crash")).await);
        Lake::new(objects, periods, budget)
    }

    fn rollup(&self) -> Rollup {
        Rollup {
            storage: self.storage.clone(),
            events: None,
            store: self.store.clone(),
            catalog: catalog(),
            reporting_tz: ZONE,
            retire_after: std::time::Duration::ZERO,
            shards: Default::default(),
        }
    }

    /// Runs one step; `Err` when it did not finish (the crash, or a lease a crashed job left).
    async fn run(&self, step: &mut Step) -> Result<(), String> {
        match step {
            Step::File(lines) => {
                let input = lines.join("\n");
                ingest::ingest_ndjson(&self.storage, input.as_bytes(), received())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Step::Messages(messages) => {
                let outcome = ingest::ingest_messages(&self.storage, messages, received()).await;
                if outcome.failed.is_empty() {
                    return Ok(());
                }
                // Only the failed messages come back.
                messages.retain(|m| outcome.failed.contains(&m.id));
                Err(format!("{} messages to redeliver", outcome.failed.len()))
            }
            Step::Deploy(catalog) => deploy(&self.storage, catalog)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Step::Job(job) => match run_job(&self.rollup(), job, None).await {
                Ok(JobReport::Skipped(s)) => Err(format!("skipped: {s:?}")),
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Runs every step; after a failure the process restarts and the step runs again.
    async fn run_all(&self, mut steps: Vec<Step>) {
        for (i, step) in steps.iter_mut().enumerate() {
            self.budget.step.store(i, Ordering::SeqCst);
            if self.run(step).await.is_err() {
                self.budget.restart();
                self.expire_leases().await;
                if let Err(e) = self.run(step).await {
                    panic!("the step failed again after the restart: {e}");
                }
            }
        }
    }

    /// Time passes: a lease left by a crashed job expires.
    async fn expire_leases(&self) {
        let later = Utc::now() + Duration::days(1);
        let name = tally::rollup::LEASE_NAME;
        let claim = self.store.claim_lease(name, "expiry", later, later).await;
        assert_eq!(claim.unwrap(), Claim::Granted);
        self.store.release_lease(name, "expiry").await.unwrap();
    }

    /// Every stored row of every version answers come from, every event in the lake, and the
    /// metrics' versions.
    async fn contents(&self) -> Contents {
        let live = Live::load(&self.storage).await.unwrap().expect("rolled up");
        assert!(live.building.is_empty(), "builds finished: {live:?}");
        let defs = catalog();
        let mut rows = Vec::new();
        for (name, built) in &live.ready {
            let key = tally::rollup::version_key(name, &built.version);
            for set in dimension_sets(defs.get(name).unwrap()) {
                for grain in [Grain::Hour, Grain::Day, Grain::Month, Grain::All] {
                    let found = self
                        .store
                        .groups(&key, grain, &set, DateTime::UNIX_EPOCH, utc(31, 0, 0))
                        .await
                        .unwrap();
                    rows.extend(found.into_iter().map(|r| format!("{r:?}")));
                }
            }
        }
        rows.sort();
        let mut events = BTreeMap::new();
        for hour in self.storage.hours_with_data().await.unwrap() {
            let mut ids = Vec::new();
            for batch in self.storage.read_hour(hour).await.unwrap() {
                let column = batch.column_by_name("event_id").unwrap();
                let strings = arrow::array::as_string_array(column);
                ids.extend(strings.iter().map(|s| s.unwrap().to_string()));
            }
            ids.sort();
            events.insert(hour, ids);
        }
        let versions = live
            .ready
            .iter()
            .map(|(n, b)| (n.clone(), b.version.clone()))
            .collect();
        let mut quarantined = Vec::new();
        for path in self.storage.list("quarantine").await.unwrap() {
            let bytes = self.storage.get_bytes(&path).await.unwrap().unwrap();
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let record: serde_json::Value = serde_json::from_slice(line).unwrap();
                quarantined.push(format!("{} {}", record["reason"], record["raw"]));
            }
        }
        quarantined.sort();
        Contents {
            rows,
            events,
            versions,
            quarantined,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Contents {
    rows: Vec<String>,
    events: BTreeMap<DateTime<Utc>, Vec<String>>,
    versions: BTreeMap<String, String>,
    /// Every quarantined line with its reason, as often as it is stored.
    quarantined: Vec<String>,
}

/// The clean run: its contents, checked against the oracle, and the writes it made in order.
async fn clean_run(lake: Lake, queue: bool) -> (Contents, Vec<(usize, String)>) {
    lake.run_all(steps(queue)).await;
    assert!(!lake.budget.crashed());
    let contents = lake.contents().await;
    assert_totals_match_oracle(&lake.store, &lake.storage).await;
    assert_eq!(contents.events.values().map(Vec::len).sum::<usize>(), 5);
    assert_eq!(contents.quarantined.len(), 2, "{:?}", contents.quarantined);
    let writes = lake.budget.writes.lock().unwrap().clone();
    (contents, writes)
}

/// The all-time total of every metric the lake serves equals the oracle's over [`batches`].
pub(crate) async fn assert_totals_match_oracle(store: &Arc<dyn PeriodStore>, storage: &Storage) {
    let mut oracle = Oracle::default();
    for batch in batches() {
        oracle.add_lines(batch.join("\n").as_bytes(), received());
    }
    let all = (utc(1, 0, 0), utc(31, 0, 0));
    assert_eq!(
        oracle.value("revenue", all, &[]),
        "29.5".parse().unwrap(),
        "10.50 x 2 + 3 x 2 + 1.25 x 2"
    );
    assert_eq!(oracle.value("visitors", all, &[]), 4.into());
    let live = Live::load(storage).await.unwrap().expect("rolled up");
    assert_eq!(live.ready.len(), 2, "{live:?}");
    for (name, built) in &live.ready {
        let key = tally::rollup::version_key(name, &built.version);
        let total = store
            .groups(&key, Grain::All, "", DateTime::UNIX_EPOCH, utc(31, 0, 0))
            .await
            .unwrap();
        let value = match &total[..] {
            [PeriodRow {
                measure: Measure::Additive(v),
                ..
            }] => *v,
            [PeriodRow {
                measure: Measure::Distinct { exact, .. },
                ..
            }] => (*exact).into(),
            other => panic!("one all-time row of {name}: {other:?}"),
        };
        assert_eq!(value, oracle.value(name, all, &[]), "{name}");
    }
}

/// Scenarios run at once: the work is waiting on files, SQLite and the emulator as much as CPU.
const AT_ONCE: usize = 4;

/// Crashes before each chosen write of the clean run (`choose(k, made by an ingest step)`) and
/// checks each recovered lake; returns how many were tried and the writes of the clean run.
async fn crash_points<F, Fut>(
    queue: bool,
    choose: fn(usize, bool) -> bool,
    lake: F,
) -> (usize, usize)
where
    F: Fn(Arc<Budget>) -> Fut,
    Fut: std::future::Future<Output = Lake>,
{
    let (clean, writes) = clean_run(lake(Budget::unlimited()).await, queue).await;
    assert!(
        writes.len() > 30,
        "the scenario writes at every stage: {writes:?}"
    );
    let is_ingest: Vec<bool> = steps(queue)
        .iter()
        .map(|s| matches!(s, Step::File(_) | Step::Messages(_)))
        .collect();
    let (clean, lake) = (&clean, &lake);
    let scenarios = writes
        .iter()
        .enumerate()
        .filter(|(k, (step, _))| choose(*k, is_ingest[*step]))
        .map(|(k, (_, write))| async move {
            let crashed = lake(Budget::new(k as i64)).await;
            crashed.run_all(steps(queue)).await;
            assert!(crashed.budget.crashed());
            assert_eq!(
                crashed.contents().await,
                *clean,
                "after a crash before write {k} of the clean run ({write})"
            );
        });
    let tried = futures::stream::iter(scenarios)
        .buffer_unordered(AT_ONCE)
        .count()
        .await;
    let path = if queue { "aws" } else { "local" };
    eprintln!(
        "crash points ({path}): {tried} tried of {} writes",
        writes.len()
    );
    (tried, writes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_write_on_one_machine_loses_and_doubles_nothing() {
    let (tried, writes) = crash_points(false, |_, _| true, |b| async move { Lake::local(b) }).await;
    assert_eq!(tried, writes, "every write");
}

/// Over the emulator: every write of the queue path's ingest, and every `TALLY_TEST_CRASH_STRIDE`-th
/// write of the rollups (6 unless set; 1 tries them all, as docs/reliability.md reports). The
/// rollups' code is the one machine's, where every write is tried, and a run here costs seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_write_on_aws_loses_and_doubles_nothing() {
    let (tried, writes) = crash_points(true, choose_on_aws, Lake::aws).await;
    assert!(tried >= writes / aws_stride(), "{tried} of {writes}");
}

fn aws_stride() -> usize {
    std::env::var("TALLY_TEST_CRASH_STRIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(6)
}

fn choose_on_aws(k: usize, ingest: bool) -> bool {
    ingest || k.is_multiple_of(aws_stride())
}
