//! The real ingest binary under a local Lambda Runtime API, driven by tests/fixtures/sqs-event.json.

use tally::testkit::{moto, runtime_api};

#[tokio::test]
async fn bootstrap_ingests_the_fixture_batch() {
    let bucket = moto::unique("fn-ingest");
    let storage = moto::s3_storage(&bucket);
    let mut env = runtime_api::aws_env(&moto::endpoint());
    env.push(("TALLY_BUCKET", bucket));
    let out = runtime_api::invoke(
        env!("CARGO_BIN_EXE_tally-ingest"),
        &env,
        &runtime_api::fixture("sqs-event.json"),
    )
    .await;
    assert_eq!(out.kind, "response", "{:?}", out.body);
    assert_eq!(
        out.body,
        serde_json::json!({"batchItemFailures": []}),
        "the poison record is quarantined, not failed"
    );
    assert_eq!(
        storage.touched_markers().await.unwrap().len(),
        2,
        "two hours received events"
    );
    assert_eq!(storage.list("quarantine").await.unwrap().len(), 1);
    eprintln!(
        "cold start (process start to first response): {:?}",
        out.cold_start
    );
}

#[tokio::test]
async fn bootstrap_names_a_missing_variable() {
    let env = runtime_api::aws_env("http://127.0.0.1:9");
    let out = runtime_api::invoke(env!("CARGO_BIN_EXE_tally-ingest"), &env, "{}").await;
    assert!(out.kind == "init-error" || out.kind == "exit", "{out:?}");
    assert!(
        out.body.to_string().contains("TALLY_BUCKET"),
        "{}",
        out.body
    );
}
