//! Faults from the services, injected through their protocol: S3 and DynamoDB requests answered
//! with AWS's own failures (503 SlowDown, 500s, throttling, a stalled request) by
//! `tests/support/faulty_aws.py` in front of moto. Ingest and the rollup retry where the fault
//! happens and the numbers equal the oracle's; a fault that persists fails the rollup run, and the
//! next run resumes; the API answers 503 with a JSON error and `Retry-After`, never a wrong number.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tally::ingest::{self, Message};
use tally::lake::Storage;
use tally::rollup::{run_job, Job, JobReport, Rollup, DEFAULT_RETIRE_AFTER};
use tally::serve::{router, ApiOptions, QueryOptions, QueryService};
use tally::store::PeriodStore;
use tower::ServiceExt;

use crate::crash_points::{assert_totals_match_oracle, batches, catalog, received, ZONE};
use crate::moto;

fn rollup(storage: &Storage, store: &Arc<dyn PeriodStore>) -> Rollup {
    Rollup {
        storage: storage.clone(),
        events: None,
        store: store.clone(),
        catalog: catalog(),
        reporting_tz: ZONE,
        retire_after: DEFAULT_RETIRE_AFTER,
        shards: Default::default(),
    }
}

/// Both batches through the queue path; returns the messages reported failed.
async fn ingest_all(storage: &Storage) -> Vec<String> {
    let mut failed = Vec::new();
    for (b, batch) in batches().into_iter().enumerate() {
        let messages: Vec<Message> = batch
            .into_iter()
            .enumerate()
            .map(|(i, body)| Message {
                id: format!("b{b}m{i}"),
                body: body.into_bytes(),
            })
            .collect();
        failed.extend(
            ingest::ingest_messages(storage, &messages, received())
                .await
                .failed,
        );
    }
    failed
}

async fn rollup_once(storage: &Storage, store: &Arc<dyn PeriodStore>) -> Result<(), String> {
    match run_job(&rollup(storage, store), &Job::Rollup { full: false }, None).await {
        Ok(JobReport::Rollup(_)) => Ok(()),
        Ok(other) => Err(format!("not a rollup: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn s3_slowdowns_and_errors_are_retried_where_they_happen() {
    let bucket = moto::unique("faults");
    let storage = moto::faulty_s3_storage(&bucket);
    let store: Arc<dyn PeriodStore> = Arc::new(moto::dynamo_store(&moto::unique("faults")).await);
    moto::inject_fault("PutObject", &bucket, "slowdown", 2, 10, 0.0);
    moto::inject_fault("GetObject", &bucket, "s3-500", 3, 6, 0.0);
    moto::inject_fault("ListObjectsV2", &bucket, "slowdown", 4, 4, 0.0);
    moto::inject_fault("DeleteObject", &bucket, "s3-500", 2, 3, 0.0);

    assert_eq!(
        ingest_all(&storage).await,
        Vec::<String>::new(),
        "retried, not redelivered"
    );
    rollup_once(&storage, &store).await.unwrap();
    let injected = moto::faults_injected(&bucket);
    moto::clear_faults(&bucket);
    assert!(injected >= 10, "faults were injected: {injected}");
    assert!(storage.touched_markers().await.unwrap().is_empty());
    assert_totals_match_oracle(&store, &storage).await;
}

#[tokio::test]
async fn dynamodb_throttling_and_errors_are_retried_with_backoff() {
    let table = moto::unique("faults");
    let storage = moto::s3_storage(&moto::unique("faults"));
    let store: Arc<dyn PeriodStore> = Arc::new(moto::faulty_dynamo_store(&table).await);
    moto::inject_fault("BatchWriteItem", &table, "throttle", 2, 8, 0.0);
    moto::inject_fault("PutItem", &table, "dynamo-500", 2, 3, 0.0);
    moto::inject_fault("GetItem", &table, "throttle", 3, 2, 0.0);

    assert!(ingest_all(&storage).await.is_empty());
    rollup_once(&storage, &store).await.unwrap();
    let injected = moto::faults_injected(&table);
    moto::clear_faults(&table);
    assert!(injected >= 5, "faults were injected: {injected}");
    assert_totals_match_oracle(&store, &storage).await;
}

#[tokio::test]
async fn a_persistent_fault_fails_the_run_the_next_resumes_and_the_api_answers_503() {
    let table = moto::unique("faults");
    let storage = moto::s3_storage(&moto::unique("faults"));
    let store: Arc<dyn PeriodStore> = Arc::new(moto::faulty_dynamo_store(&table).await);
    assert!(ingest_all(&storage).await.is_empty());

    // DynamoDB refuses every write for this run: it fails, naming the cause, and keeps its
    // touched-hour markers for the next run.
    moto::inject_fault("BatchWriteItem", &table, "throttle", 1, 1 << 20, 0.0);
    let e = rollup_once(&storage, &store).await.unwrap_err();
    assert!(e.contains("ProvisionedThroughputExceeded"), "{e}");
    assert!(!storage.touched_markers().await.unwrap().is_empty());
    moto::clear_faults(&table);
    rollup_once(&storage, &store).await.unwrap();
    assert_totals_match_oracle(&store, &storage).await;

    let service = QueryService::new(
        store.clone(),
        catalog(),
        QueryOptions {
            reporting_tz: ZONE,
            ..QueryOptions::default()
        },
    );
    let app = router(Arc::new(service), ApiOptions::default());
    let ask = || async {
        let req = Request::get("/v1/metrics/revenue?from=2026-08-23&to=2026-08-26&tz=UTC")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, headers, body)
    };
    let (status, _, body) = ask().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current_total"].to_string(), "29.5");

    // Every read fails: a 503 the client may retry, not a number.
    moto::inject_fault("BatchGetItem", &table, "dynamo-500", 1, 1 << 20, 0.0);
    let (status, headers, body) = ask().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(headers.contains_key("retry-after"));
    assert!(body.get("current_total").is_none());
    moto::clear_faults(&table);

    // One read stalls past the SDK's attempt timeout: the retry answers, rightly.
    let stall = tally::runtime::aws::SDK_ATTEMPT_TIMEOUT.as_secs_f64() + 1.0;
    moto::inject_fault("BatchGetItem", &table, "stall", 1, 1, stall);
    let (status, _, body) = ask().await;
    assert_eq!(moto::faults_injected(&table), 1, "the stall happened");
    moto::clear_faults(&table);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current_total"].to_string(), "29.5");
}
