//! Hours larger than one piece of rollup work: split into shards by event id and merged, in the
//! run on one machine and through an SQS queue to the worker over moto. Every number equals an
//! unsplit run's and the oracle's, duplicates across files included.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use chrono_tz::Tz;
use futures::TryStreamExt;
use serde_json::json;
use tally::ingest;
use tally::lake::Storage;
use tally::rollup::{Catalog, JobReport, Rollup, RollupReport, ShardOptions};
use tally::runtime::aws::SqsShardQueue;
use tally::runtime::Local;
use tally::serve::{Answer, QueryOptions, QueryParams, QueryService};
use tally::store::PeriodStore;

use crate::aws_emulator::{
    assert_same_numbers, create_queue, local_reference, receive_all, rollup_for, traffic,
};
use crate::end_to_end::{check, deliveries, hours, params, received, utc, METRICS};
use crate::moto;
use crate::oracle::Oracle;

/// Half the median hour's bytes of event files (most hours split into two to a few shards), and
/// how many hours have files.
async fn budget_splitting_hours(storage: &Storage) -> (u64, usize) {
    let mut per_hour: BTreeMap<String, u64> = BTreeMap::new();
    let files: Vec<_> = storage
        .object_store()
        .list(Some(&"events".into()))
        .try_collect()
        .await
        .unwrap();
    for f in files {
        let hour: Vec<_> = f
            .location
            .parts()
            .take(3)
            .map(|p| p.as_ref().to_string())
            .collect();
        *per_hour.entry(hour.join("/")).or_default() += f.size;
    }
    let mut sizes: Vec<u64> = per_hour.into_values().collect();
    sizes.sort_unstable();
    (sizes[sizes.len() / 2] / 2, sizes.len())
}

async fn ingested(dir: &std::path::Path, deliveries: &[Vec<u8>]) -> Local {
    ingested_in(dir, deliveries, Tz::UTC).await
}

async fn ingested_in(dir: &std::path::Path, deliveries: &[Vec<u8>], zone: Tz) -> Local {
    let local = Local::open(dir, Catalog::builtin(), zone).unwrap();
    for d in deliveries {
        ingest::ingest_ndjson(&local.storage, &d[..], received())
            .await
            .unwrap();
    }
    local
}

/// Every metric's answers for a grid of ranges, zones, filters and groups.
fn grid() -> Vec<QueryParams> {
    let mut out = Vec::new();
    for m in METRICS {
        for (from, to, tz, interval) in [
            ("2026-08-25", "2026-08-27", None, None),
            ("2026-08-24", "2026-08-28", Some("Asia/Seoul"), Some("day")),
            ("2026-08-23", "2026-08-28", None, Some("day")),
        ] {
            out.push(params(m, from, to, tz, interval, &[]));
            if m != "content_views" {
                out.push(params(m, from, to, tz, interval, &[("country", "KR")]));
                let mut grouped = params(m, from, to, tz, interval, &[]);
                grouped.group_by = Some("country".into());
                out.push(grouped);
            }
        }
    }
    out
}

async fn assert_same_answers(
    a: &QueryService,
    b: &QueryService,
    grid: &[QueryParams],
    now: chrono::DateTime<Utc>,
    when: &str,
) {
    for q in grid {
        let (x, y) = (
            a.answer(q, now).await.unwrap(),
            b.answer(q, now).await.unwrap(),
        );
        assert_eq!(
            serde_json::to_value(&x).unwrap(),
            serde_json::to_value(&y).unwrap(),
            "{when}{q:?}"
        );
    }
}

#[tokio::test]
async fn hours_split_into_shards_in_the_run_give_the_unsplit_numbers_and_the_oracles() {
    let deliveries = deliveries();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = ingested(a.path(), &deliveries).await;
    let mut split = ingested(b.path(), &deliveries).await;
    split.shard_bytes = budget_splitting_hours(&split.storage).await.0;
    let whole_report = whole.rollup().run_touched(None).await.unwrap();
    let split_report = split.rollup().run_touched(None).await.unwrap();
    assert_eq!(
        whole_report.hours_split, 0,
        "the default budget holds a whole day here"
    );
    assert!(
        split_report.hours_split * 2 >= split_report.hours_recomputed.len(),
        "most hours are larger than the budget: {} of {}",
        split_report.hours_split,
        split_report.hours_recomputed.len()
    );
    assert_eq!(split_report.hours_recomputed, whole_report.hours_recomputed);
    assert_eq!(split_report.hours_remaining, 0);

    let mut oracle = Oracle::default();
    for d in &deliveries {
        oracle.add_lines(d, received());
    }
    assert!(
        oracle.duplicates > 0,
        "copies of events sit in different files"
    );
    let now = utc(2026, 9, 1, 0);
    let (w, s) = (
        whole.query_service(QueryOptions::default()),
        split.query_service(QueryOptions::default()),
    );
    let grid = grid();
    assert_same_answers(&w, &s, &grid, now, "").await;
    // And against the oracle on its own, hour by hour.
    for m in METRICS {
        let Answer::Metric(r) = s
            .answer(&params(m, "2026-08-25", "2026-08-27", None, None, &[]), now)
            .await
            .unwrap()
        else {
            panic!("{m} is a metric")
        };
        check(
            &oracle,
            &r,
            (utc(2026, 8, 25, 0), utc(2026, 8, 27, 0)),
            (utc(2026, 8, 23, 0), utc(2026, 8, 25, 0)),
            &hours(utc(2026, 8, 25, 0), utc(2026, 8, 27, 0)),
            &[],
        );
    }

    // A late delivery into split hours: both recompute them and still agree.
    let late = crate::end_to_end::deliveries_ending(utc(2026, 8, 26, 12), 99);
    for local in [&whole, &split] {
        for d in &late {
            ingest::ingest_ndjson(&local.storage, &d[..], received())
                .await
                .unwrap();
        }
        local.rollup().run_touched(None).await.unwrap();
    }
    assert_same_answers(&w, &s, &grid, now, "after late events: ").await;
    assert!(
        split
            .storage
            .list("_state/shards")
            .await
            .unwrap()
            .is_empty(),
        "shards computed in the run leave nothing behind"
    );
}

/// The same with days and months in a reporting zone other than UTC (Seoul's days end at 15:00
/// UTC): split hours feed the zone's days, and answers in the zone and in UTC are the unsplit run's.
#[tokio::test]
async fn split_hours_in_another_reporting_zone_give_the_unsplit_numbers() {
    let seoul: Tz = "Asia/Seoul".parse().unwrap();
    let deliveries = deliveries();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = ingested_in(a.path(), &deliveries, seoul).await;
    let mut split = ingested_in(b.path(), &deliveries, seoul).await;
    split.shard_bytes = budget_splitting_hours(&split.storage).await.0;
    let whole_report = whole.rollup().run_touched(None).await.unwrap();
    let split_report = split.rollup().run_touched(None).await.unwrap();
    assert_eq!(whole_report.hours_split, 0);
    assert!(split_report.hours_split > 0, "hours are split");
    assert_eq!(split_report.hours_recomputed, whole_report.hours_recomputed);
    let mut grid = grid();
    for m in METRICS {
        let (from, to, tz) = ("2026-08-01", "2026-09-01", Some("Asia/Seoul"));
        grid.push(params(m, from, to, tz, Some("day"), &[]));
        let mut grouped = params(m, from, to, tz, Some("month"), &[]);
        grouped.group_by = Some(
            if m == "content_views" {
                "content_id"
            } else {
                "country"
            }
            .into(),
        );
        grid.push(grouped);
    }
    let (w, s) = (
        whole.query_service(QueryOptions::default()),
        split.query_service(QueryOptions::default()),
    );
    assert_same_answers(&w, &s, &grid, utc(2026, 9, 1, 0), "Asia/Seoul: ").await;
}

async fn fanned_out_rollup(
    storage: Storage,
    store: Arc<dyn PeriodStore>,
    queue: SqsShardQueue,
) -> Rollup {
    let (max_bytes, _) = budget_splitting_hours(&storage).await;
    let mut rollup = rollup_for(storage, store);
    rollup.shards = ShardOptions {
        max_bytes,
        queue: Some(Arc::new(queue)),
        ..ShardOptions::default()
    };
    rollup
}

async fn scheduled_run(rollup: &Rollup) -> RollupReport {
    let report = tally_rollup_fn::handle_job(
        rollup,
        json!({"job": "rollup"}),
        Instant::now() + Duration::from_secs(600),
    )
    .await
    .unwrap();
    let JobReport::Rollup(report) = report else {
        panic!("a rollup job reports a rollup: {report:?}")
    };
    report
}

#[tokio::test]
async fn hours_fan_out_over_sqs_to_the_worker_and_merge_to_the_unsplit_numbers() {
    let bucket = moto::unique("shards");
    let storage = moto::s3_storage(&bucket);
    // Ten hours of the traffic (and every line that is not an event of another hour), in several
    // deliveries, so that every hour has several files and copies of events across them.
    let all = traffic();
    let lines: Vec<&[u8]> = all
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| {
            let text = String::from_utf8_lossy(l);
            !text.contains("\"occurred_at\":\"2026-08-2")
                || text.contains("\"occurred_at\":\"2026-08-25T0")
        })
        .collect();
    let ndjson = lines.concat();
    let received = Utc::now();
    for part in lines.chunks(lines.len() / 5 + 1) {
        ingest::ingest_ndjson(&storage, &part.concat()[..], received)
            .await
            .unwrap();
    }
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk().await);
    let queue_url = create_queue(&sqs).await;
    let store: Arc<dyn PeriodStore> = Arc::new(moto::dynamo_store(&moto::unique("periods")).await);
    let (_, hours) = budget_splitting_hours(&storage).await;
    let rollup = fanned_out_rollup(
        storage.clone(),
        store.clone(),
        SqsShardQueue {
            client: sqs.clone(),
            queue_url: queue_url.clone(),
        },
    )
    .await;

    // The first run plans every hour and sends its shards; it stores nothing of those hours.
    let first = scheduled_run(&rollup).await;
    assert!(
        first.hours_waiting_for_shards.len() * 2 >= hours,
        "{first:?}"
    );
    assert_eq!(
        first.hours_recomputed.len() + first.hours_waiting_for_shards.len(),
        hours,
        "hours within the budget are stored, the others wait for their shards"
    );
    assert_eq!(first.hours_remaining, first.hours_waiting_for_shards.len());
    assert_eq!(
        first.as_of, None,
        "not rolled up until the shards are merged"
    );
    assert!(!storage.touched_markers().await.unwrap().is_empty());
    // A run before the workers have answered sends nothing again.
    let again = scheduled_run(&rollup).await;
    assert_eq!(
        again.hours_waiting_for_shards.len(),
        first.hours_waiting_for_shards.len()
    );
    let batches = receive_all(&sqs, &queue_url).await;
    let jobs: usize = batches.iter().map(|b| b.records.len()).sum();
    assert!(
        jobs > first.hours_waiting_for_shards.len(),
        "hours split into several shards each: {jobs} jobs for {} hours",
        first.hours_waiting_for_shards.len()
    );

    // The worker: each batch through the function's handler, as the event source mapping would
    // deliver it; one batch delivered twice, and a record that is no shard job.
    let mut bad = batches[0].clone();
    bad.records.truncate(1);
    bad.records[0].message_id = Some("not-a-job".into());
    bad.records[0].body = Some("{\"plan\": 3}".into());
    let answer = tally_rollup_fn::handle(
        &rollup,
        serde_json::to_value(&bad).unwrap(),
        Instant::now() + Duration::from_secs(600),
    )
    .await
    .unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        json!([{"itemIdentifier": "not-a-job"}]),
        "a record that is no shard job is reported failed, for the DLQ"
    );
    for batch in batches.iter().chain(batches.first()) {
        let answer = tally_rollup_fn::handle(
            &rollup,
            serde_json::to_value(batch).unwrap(),
            Instant::now() + Duration::from_secs(600),
        )
        .await
        .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    }

    // The next run merges every hour's parts and stores it.
    let merged = scheduled_run(&rollup).await;
    assert!(merged.hours_waiting_for_shards.is_empty(), "{merged:?}");
    assert_eq!(merged.hours_remaining, 0);
    assert_eq!(merged.hours_split, first.hours_waiting_for_shards.len());
    assert_eq!(
        merged.hours_recomputed.len(),
        first.hours_waiting_for_shards.len()
    );
    assert!(merged.as_of.is_some());
    assert!(storage.touched_markers().await.unwrap().is_empty());
    assert!(
        storage.list("_state/shards").await.unwrap().is_empty(),
        "merged hours leave no plan or part behind: {:?}",
        storage.list("_state/shards").await.unwrap().first()
    );
    let (_dir, reference) = local_reference(&ndjson).await;
    assert_same_numbers(store, &reference).await;
}
