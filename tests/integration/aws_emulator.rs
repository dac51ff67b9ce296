//! The AWS path over real wire protocols: `tally send` to SQS, the ingest handler fed from received
//! messages, the rollup handler writing DynamoDB, the api handler answering an API Gateway v2
//! request; with failing S3 writes and duplicate deliveries. Needs the emulator `make test` starts.

use crate::flaky_store;
use crate::moto;
use crate::oracle;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tally::lake::Storage;
use tally::model::Grain;
use tally::rollup::Catalog;
use tally::rollup::Rollup;
use tally::rollup::{JobReport, LEASE_NAME};
use tally::runtime::Local;
use tally::serve::{QueryOptions, QueryParams, QueryService};
use tally::store::DynamoStore;
use tally::store::{Claim, PeriodStore, META_AS_OF};
use tally::tools::demo::{self, DemoSpec};
use tower::ServiceExt;

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 27, 0, 0, 0).unwrap()
}

pub(crate) fn traffic() -> Vec<u8> {
    let spec = DemoSpec {
        events_per_day: 1200,
        users: 300,
        seed: 11,
        duplicate_rate: 0.02,
        late_rate: 0.02,
        malformed_rate: 0.01,
        ..DemoSpec::new(3, end())
    };
    let mut all = Vec::new();
    demo::generate(&spec, |_, b| all.extend(b));
    all
}

/// The same events through the one-machine pipeline, as the reference.
pub(crate) async fn local_reference(ndjson: &[u8]) -> (tempfile::TempDir, Local) {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    tally::ingest::ingest_ndjson(&local.storage, ndjson, Utc::now())
        .await
        .unwrap();
    local.rollup().run_touched(None).await.unwrap();
    (dir, local)
}

fn queries() -> Vec<QueryParams> {
    let mut out = Vec::new();
    for metric in [
        "visitors",
        "sign_ins",
        "content_views",
        "purchases",
        "revenue",
    ] {
        for (tz, filters) in [
            (None, vec![]),
            (Some("Asia/Seoul"), vec![]),
            (None, vec![("country".to_string(), "KR".to_string())]),
        ] {
            if metric == "content_views" && !filters.is_empty() {
                continue;
            }
            out.push(QueryParams {
                metric: metric.into(),
                from: Some("2026-08-24".into()),
                to: Some("2026-08-27".into()),
                tz: tz.map(Into::into),
                interval: Some("day".into()),
                filters,
                ..Default::default()
            });
        }
    }
    out
}

pub(crate) async fn assert_same_numbers(store: Arc<dyn PeriodStore>, reference: &Local) {
    let aws = QueryService::new(store, Catalog::builtin(), QueryOptions::default());
    let local = reference.query_service(QueryOptions::default());
    let now = end() + chrono::Duration::days(1);
    for q in queries() {
        let mut a = aws.query(&q, now).await.unwrap();
        let mut b = local.query(&q, now).await.unwrap();
        a.as_of = None;
        b.as_of = None;
        assert!(!b.current_total.is_zero(), "{q:?}: the reference has data");
        assert_eq!(a, b, "{} {:?} {:?}", q.metric, q.tz, q.filters);
    }
}

/// Rolls the lake up into a new DynamoDB table and checks its numbers against local mode's on the
/// same lines.
async fn assert_rollup_equals_local(storage: Storage, ndjson: &[u8]) {
    let store: Arc<dyn PeriodStore> = Arc::new(moto::dynamo_store(&moto::unique("periods")).await);
    rollup_for(storage, store.clone())
        .run_touched(None)
        .await
        .unwrap();
    let (_dir, reference) = local_reference(ndjson).await;
    assert_same_numbers(store, &reference).await;
}

/// Receives everything on the queue, as the event source mapping would, in batches of up to 10.
pub(crate) async fn receive_all(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<SqsEvent> {
    let mut batches = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        let messages = out.messages();
        if messages.is_empty() {
            break;
        }
        let mut event = SqsEvent::default();
        for m in messages {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_string);
            record.receipt_handle = m.receipt_handle().map(str::to_string);
            record.body = m.body().map(str::to_string);
            record.event_source = Some("aws:sqs".into());
            event.records.push(record);
        }
        batches.push(event);
    }
    batches
}

struct Queued {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    ndjson: Vec<u8>,
    sent: tally::tools::send::SendSummary,
    batches: Vec<SqsEvent>,
}

/// Sends the generated traffic to a new queue with `tally send`'s code and receives it back in
/// event source mapping batches.
async fn queued_traffic() -> Queued {
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk().await);
    let queue_url = create_queue(&sqs).await;
    let ndjson = traffic();
    let sent = tally::tools::send::send_ndjson(&sqs, &queue_url, &ndjson)
        .await
        .unwrap();
    let batches = receive_all(&sqs, &queue_url).await;
    Queued {
        sqs,
        queue_url,
        ndjson,
        sent,
        batches,
    }
}

pub(crate) async fn create_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(moto::unique("events"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string()
}

pub(crate) fn rollup_for(storage: Storage, store: Arc<dyn PeriodStore>) -> Rollup {
    Rollup {
        storage,
        events: None,
        store,
        catalog: Catalog::builtin(),
        reporting_tz: Tz::UTC,
        retire_after: tally::rollup::DEFAULT_RETIRE_AFTER,
        shards: Default::default(),
    }
}

/// Delivers batches to the ingest handler until none fails, deleting acknowledged messages, and
/// returns how many records were reported failed along the way.
async fn deliver(
    storage: &Storage,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    mut batches: Vec<SqsEvent>,
) -> usize {
    let mut failed_total = 0;
    for _round in 0..20 {
        let mut again = Vec::new();
        for batch in batches {
            let response = tally_ingest_fn::handle(storage, Utc::now().into(), batch.clone()).await;
            let failed: Vec<String> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            failed_total += failed.len();
            let mut retry = SqsEvent::default();
            for r in batch.records {
                if failed.contains(r.message_id.as_ref().unwrap()) {
                    retry.records.push(r);
                } else {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(r.receipt_handle.unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
            if !retry.records.is_empty() {
                again.push(retry);
            }
        }
        if again.is_empty() {
            return failed_total;
        }
        batches = again;
    }
    panic!("records still failing after 20 redeliveries");
}

#[tokio::test]
async fn send_ingest_rollup_api_over_the_emulator_equal_local_mode() {
    let Queued {
        sqs,
        queue_url,
        ndjson,
        sent,
        batches,
    } = queued_traffic().await;
    assert!(
        sent.messages < sent.events / 20,
        "events are packed several to a message: {sent:?}"
    );
    // SendMessageBatch carries at most 10 messages and 256 KiB: full messages go one or two a request.
    assert!(
        sent.requests >= sent.messages.div_ceil(10) && sent.requests <= sent.messages,
        "{sent:?}"
    );

    let records: usize = batches.iter().map(|b| b.records.len()).sum();
    assert_eq!(records, sent.messages, "every message sent was received");

    let storage = moto::s3_storage(&moto::unique("lake"));
    assert_eq!(
        deliver(&storage, &sqs, &queue_url, batches).await,
        0,
        "no failures without faults"
    );
    assert!(
        !storage.list("quarantine").await.unwrap().is_empty(),
        "malformed lines were quarantined in S3"
    );

    let table = moto::unique("periods");
    let store: Arc<dyn PeriodStore> = Arc::new(moto::dynamo_store(&table).await);
    let rollup = rollup_for(storage.clone(), store.clone());
    // A manual backfill holds the job lease in DynamoDB: the scheduled run does nothing and says
    // who holds it.
    let (now, backfill) = (Utc::now(), "a backfill on a laptop");
    let lease = |holder, until| store.claim_lease(LEASE_NAME, holder, now, until);
    let claim = lease(backfill, now + chrono::Duration::minutes(2)).await;
    assert_eq!(claim.unwrap(), Claim::Granted);
    let markers = storage.touched_markers().await.unwrap().len();
    let skipped = tally_rollup_fn::handle_job(
        &rollup,
        json!({"job": "rollup"}),
        Instant::now() + Duration::from_secs(600),
    )
    .await
    .unwrap();
    let JobReport::Skipped(skipped) = skipped else {
        panic!("the lease is held: {skipped:?}")
    };
    assert_eq!(skipped.held_by, backfill);
    assert_eq!(storage.touched_markers().await.unwrap().len(), markers);
    store.release_lease(LEASE_NAME, backfill).await.unwrap();

    let report = tally_rollup_fn::handle_job(
        &rollup,
        json!({"job": "rollup"}),
        Instant::now() + Duration::from_secs(600),
    )
    .await
    .unwrap();
    let JobReport::Rollup(report) = report else {
        panic!("a rollup job reports a rollup: {report:?}")
    };
    assert_eq!(report.hours_recomputed.len(), 72);
    let next = lease("the next run", now + chrono::Duration::minutes(2)).await;
    assert_eq!(next.unwrap(), Claim::Granted, "the run released its lease");
    store
        .release_lease(LEASE_NAME, "the next run")
        .await
        .unwrap();
    assert!(
        storage.touched_markers().await.unwrap().is_empty(),
        "markers cleared after the rollup"
    );

    let (_dir, reference) = local_reference(&ndjson).await;
    assert_same_numbers(store.clone(), &reference).await;

    // The api function answers an API Gateway HTTP API (payload 2.0) request from DynamoDB.
    let app = tally_api_fn::app(
        store.clone(),
        storage.clone(),
        QueryOptions::default(),
        Default::default(),
    );
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/api-gateway-v2-request.json"
    ))
    .unwrap();
    let request = lambda_http::request::from_str(&fixture).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let q = QueryParams {
        metric: "revenue".into(),
        from: Some("2026-08-24".into()),
        to: Some("2026-08-27".into()),
        filters: vec![("country".into(), "KR".into())],
        ..Default::default()
    };
    let want = reference
        .query_service(QueryOptions::default())
        .query(&q, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        body["current_total"].to_string(),
        want.current_total.normalize().to_string()
    );
    assert_eq!(
        body["previous_total"].to_string(),
        want.previous_total.normalize().to_string()
    );
}

#[tokio::test]
async fn failed_s3_writes_are_redelivered_and_nothing_is_lost_or_counted_twice() {
    let Queued {
        sqs,
        queue_url,
        ndjson,
        batches,
        ..
    } = queued_traffic().await;

    let flaky = Arc::new(flaky_store::FlakyStore::new(
        moto::s3_object_store(&moto::unique("flaky")),
        "events/",
        3,
        6,
    ));
    let storage = Storage::new(flaky.clone());
    let failed = deliver(&storage, &sqs, &queue_url, batches).await;
    assert!(
        failed > 0 && flaky.failures.load(Ordering::SeqCst) > 0,
        "faults were injected and reported as batch item failures"
    );

    flaky.enabled.store(false, Ordering::SeqCst);
    assert_rollup_equals_local(storage, &ndjson).await;
}

#[tokio::test]
async fn the_same_batch_delivered_twice_changes_nothing() {
    let Queued {
        ndjson, batches, ..
    } = queued_traffic().await;
    let storage = moto::s3_storage(&moto::unique("twice"));
    for batch in &batches {
        assert!(
            tally_ingest_fn::handle(&storage, Utc::now().into(), batch.clone())
                .await
                .batch_item_failures
                .is_empty()
        );
        assert!(
            tally_ingest_fn::handle(&storage, Utc::now().into(), batch.clone())
                .await
                .batch_item_failures
                .is_empty()
        );
    }
    assert_rollup_equals_local(storage, &ndjson).await;
}

#[tokio::test]
async fn sns_wrapped_messages_are_unwrapped() {
    let storage = moto::s3_storage(&moto::unique("sns"));
    let inner = r#"[{"event_id":"sns-1","event_type":"sign-in","occurred_at":"2026-08-25T01:00:00Z","user_id":"u"}]"#;
    let envelope = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:000000000000:events", "Message": inner});
    let mut event = SqsEvent::default();
    let mut record = SqsMessage::default();
    record.message_id = Some("r1".into());
    record.body = Some(envelope.to_string());
    event.records.push(record);
    let mut poison = SqsMessage::default();
    poison.message_id = Some("r2".into());
    poison.body = Some("{{{ not json".into());
    event.records.push(poison);
    let response = tally_ingest_fn::handle(&storage, Utc::now().into(), event).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a poison message is quarantined and acknowledged, not retried"
    );
    let hours = storage.touched_markers().await.unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(
        hours[0].hour,
        Utc.with_ymd_and_hms(2026, 8, 25, 1, 0, 0).unwrap()
    );
    assert_eq!(storage.list("quarantine").await.unwrap().len(), 1);
}

#[tokio::test]
async fn dynamodb_store_passes_the_contract_suite() {
    let store = moto::dynamo_store(&moto::unique("contract")).await;
    tally::store::contract::run(&store).await;
}

/// Records the DynamoDB operation of every HTTP request the client sends.
#[derive(Debug, Default, Clone)]
struct RecordRequests(Arc<std::sync::Mutex<Vec<String>>>);

impl RecordRequests {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl aws_sdk_dynamodb::config::Intercept for RecordRequests {
    fn name(&self) -> &'static str {
        "RecordRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target");
        self.0
            .lock()
            .unwrap()
            .push(target.unwrap_or("?").to_string());
        Ok(())
    }
}

#[tokio::test]
async fn a_dashboard_answer_costs_at_most_two_dynamodb_requests() {
    // 200 days of light traffic: a 90-day range and the 90 days before it have data.
    let spec = DemoSpec {
        events_per_day: 40,
        users: 10,
        seed: 3,
        late_rate: 0.0,
        ..DemoSpec::new(200, end())
    };
    let mut ndjson = Vec::new();
    demo::generate(&spec, |_, b| ndjson.extend(b));
    let (_dir, reference) = local_reference(&ndjson).await;

    // The reference's day, month and all-time rows (what whole-day answers read), copied to DynamoDB.
    let table = moto::unique("trips");
    let writer = moto::dynamo_store(&table).await;
    let metrics = ["revenue", "visitors"];
    for name in metrics {
        let def = Catalog::builtin().get(name).unwrap().clone();
        for grain in [Grain::Day, Grain::Month, Grain::All] {
            for set in tally::rollup::dimension_sets(&def) {
                let rows = reference
                    .store
                    .groups(
                        &tally::rollup::version_key(name, &def.version(Tz::UTC)),
                        grain,
                        &set,
                        DateTime::UNIX_EPOCH,
                        DateTime::<Utc>::MAX_UTC,
                    )
                    .await
                    .unwrap();
                writer.put(rows).await.unwrap();
            }
        }
    }
    let as_of = reference.store.get_meta(META_AS_OF).await.unwrap().unwrap();
    writer.put_meta(META_AS_OF, &as_of).await.unwrap();

    let requests = RecordRequests::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&moto::sdk().await)
        .interceptor(requests.clone())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), &table);
    let aws = QueryService::new(Arc::new(store), Catalog::builtin(), QueryOptions::default());
    let local = reference.query_service(QueryOptions::default());
    let now = end() + chrono::Duration::days(1);
    for days in [7, 30, 90] {
        for metric in metrics {
            for filters in [vec![], vec![("country".to_string(), "KR".to_string())]] {
                let q = QueryParams {
                    metric: metric.into(),
                    from: Some(
                        (end() - chrono::Duration::days(days))
                            .format("%Y-%m-%d")
                            .to_string(),
                    ),
                    to: Some(end().format("%Y-%m-%d").to_string()),
                    interval: Some("day".into()),
                    filters,
                    ..Default::default()
                };
                requests.take();
                let answer = aws.query(&q, now).await.unwrap();
                let sent = requests.take();
                assert!(
                    !sent.is_empty() && sent.len() <= 2,
                    "{days}-day {metric} {:?}: {sent:?}",
                    q.filters
                );
                assert!(
                    sent.iter().all(|op| op.ends_with(".BatchGetItem")),
                    "{sent:?}"
                );
                let expected = local.query(&q, now).await.unwrap();
                assert!(
                    !expected.previous_total.is_zero(),
                    "{days}-day {metric}: the previous range has data"
                );
                assert_eq!(answer, expected, "{days}-day {metric} {:?}", q.filters);
                assert_eq!(answer.series.len() as i64, days);
            }
        }
    }
}

/// The period store as the lagging endpoint serves it: a strongly consistent base-table read sees a
/// write at once, an index read not before the replica catches up. Proves the harness below lags.
#[tokio::test]
async fn the_lagging_endpoint_serves_index_reads_from_before_the_latest_writes() {
    let store = moto::lagging_dynamo_store(&moto::unique("lagging-self")).await;
    moto::lagging_sync();
    let start = Utc.with_ymd_and_hms(2026, 8, 24, 0, 0, 0).unwrap();
    let row = tally::store::PeriodRow {
        metric: "sign_ins".into(),
        grain: Grain::Day,
        start,
        dims: Default::default(),
        measure: tally::model::Measure::Additive(7.into()),
    };
    store.put(vec![row.clone()]).await.unwrap();
    let (from, to) = (start, start + chrono::Duration::days(1));
    let dims = tally::model::Dims::default();
    assert_eq!(
        store
            .series("sign_ins", Grain::Day, &dims, from, to)
            .await
            .unwrap(),
        vec![row.clone()],
        "series reads the base table with ConsistentRead"
    );
    assert!(
        store
            .groups("sign_ins", Grain::Day, "", from, to)
            .await
            .unwrap()
            .is_empty(),
        "an index read does not see the write yet"
    );
    moto::lagging_sync();
    assert_eq!(
        store
            .groups("sign_ins", Grain::Day, "", from, to)
            .await
            .unwrap(),
        vec![row]
    );
}

/// On AWS an eventually consistent read, and every read of a global secondary index, may miss
/// recent writes; moto's reads never do. Here every such read sees the table as it stood before two
/// rollup runs (the second over late events) wrote anything, and the stored day, month and all-time
/// numbers must still equal a plain recomputation from the raw lines.
#[tokio::test]
async fn rollups_store_right_numbers_when_dynamodb_reads_lag_behind_writes() {
    let ndjson = traffic();
    let lines: Vec<&[u8]> = ndjson.split_inclusive(|b| *b == b'\n').collect();
    let (early, late) = lines.split_at(lines.len() * 2 / 3);
    let storage = moto::s3_storage(&moto::unique("lagging"));
    let store: Arc<dyn PeriodStore> =
        Arc::new(moto::lagging_dynamo_store(&moto::unique("periods")).await);
    moto::lagging_sync();
    let rollup = rollup_for(storage.clone(), store.clone());
    let received = Utc::now();
    for part in [early, late] {
        tally::ingest::ingest_ndjson(&storage, &part.concat()[..], received)
            .await
            .unwrap();
        tally_rollup_fn::handle_job(
            &rollup,
            json!({"job": "rollup"}),
            Instant::now() + Duration::from_secs(600),
        )
        .await
        .unwrap();
    }
    // Only now may the reads catch up: what the rollups stored is final, and it is what is checked.
    moto::lagging_sync();

    let mut oracle = oracle::Oracle::default();
    oracle.add_lines(&ndjson, received);
    let service = QueryService::new(store, Catalog::builtin(), QueryOptions::default());
    let now = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let day = |d: u32| Utc.with_ymd_and_hms(2026, 8, d, 0, 0, 0).unwrap();
    let all_time = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let mut checked = 0;
    // The stored metrics; ratios are held against the oracle in end_to_end.
    for def in Catalog::builtin().computed().filter(|d| !d.hidden) {
        let m = def.name.as_str();
        let mut filter_sets = vec![vec![]];
        if def.dimensions.iter().any(|d| d == "country") {
            filter_sets.push(vec![("country", "KR")]);
        }
        for filters in filter_sets {
            let q = |from: &str, to: &str, interval: &str| QueryParams {
                metric: m.into(),
                from: Some(from.into()),
                to: Some(to.into()),
                interval: Some(interval.into()),
                filters: filters
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            };
            let days = service
                .query(&q("2026-08-24", "2026-08-27", "day"), now)
                .await
                .unwrap();
            assert_eq!(
                days.total,
                oracle.value(m, all_time, &filters),
                "{m} {filters:?}: all-time total"
            );
            assert_eq!(days.series.len(), 3);
            for (i, point) in days.series.iter().enumerate() {
                let d = 24 + i as u32;
                let want = oracle.value(m, (day(d), day(d + 1)), &filters);
                assert!(!want.is_zero(), "{m} {filters:?}: 2026-08-{d} has data");
                assert_eq!(point.value, want, "{m} {filters:?}: day 2026-08-{d}");
            }
            let month = service
                .query(&q("2026-08-01", "2026-09-01", "month"), now)
                .await
                .unwrap();
            let august = (day(1), Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap());
            assert_eq!(
                month.series[0].value,
                oracle.value(m, august, &filters),
                "{m} {filters:?}: August"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 9,
        "every shipped metric, with and without a filter"
    );
}

#[tokio::test]
async fn an_event_sent_twice_in_one_batch_is_written_once_from_the_queue_too() {
    let storage = moto::s3_storage(&moto::unique("twice-in-batch"));
    let e = r#"{"event_id":"dup-1","event_type":"sign-in","occurred_at":"2026-08-25T01:00:00Z","user_id":"u"}"#;
    let mut event = SqsEvent::default();
    for (id, body) in [("r1", format!("[{e},{e}]")), ("r2", e.to_string())] {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        record.body = Some(body);
        event.records.push(record);
    }
    let response = tally_ingest_fn::handle(&storage, Utc::now().into(), event).await;
    assert!(response.batch_item_failures.is_empty());
    let files = storage.list("events").await.unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = storage.get_bytes(&files[0]).await.unwrap().unwrap();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 1, "three copies of one event in a batch are one row");
}
