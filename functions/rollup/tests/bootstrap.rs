//! The real rollup binary under a local Lambda Runtime API, driven by tests/fixtures/rollup-schedule.json.

use tally::testkit::{moto, runtime_api};

#[tokio::test]
async fn bootstrap_rolls_up_touched_hours() {
    let bucket = moto::unique("fn-rollup");
    let storage = moto::s3_storage(&bucket);
    let line = br#"{"event_id":"a","event_type":"sign-in","occurred_at":"2026-08-25T03:00:00Z","user_id":"u","country":"KR","browser":"Chrome"}"#;
    tally::ingest::ingest_ndjson(&storage, &line[..], chrono::Utc::now())
        .await
        .unwrap();
    let table = moto::unique("fn-periods");
    let store = moto::dynamo_store(&table).await;
    let mut env = runtime_api::aws_env(&moto::endpoint());
    env.push(("TALLY_BUCKET", bucket));
    env.push(("TALLY_TABLE", table));
    let out = runtime_api::invoke(
        env!("CARGO_BIN_EXE_tally-rollup"),
        &env,
        &runtime_api::fixture("rollup-schedule.json"),
    )
    .await;
    assert_eq!(out.kind, "response", "{:?}", out.body);
    assert_eq!(
        out.body["hours_recomputed"],
        serde_json::json!(["2026-08-25T03:00:00Z"])
    );
    use tally::store::PeriodStore;
    let day = chrono::DateTime::parse_from_rfc3339("2026-08-25T00:00:00Z")
        .unwrap()
        .to_utc();
    let rows = store
        .series(
            &tally::rollup::version_key(
                "sign_ins",
                &tally::rollup::Catalog::builtin()
                    .get("sign_ins")
                    .unwrap()
                    .version(chrono_tz::Tz::UTC),
            ),
            tally::model::Grain::Day,
            &Default::default(),
            day,
            day + chrono::Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    eprintln!(
        "cold start (process start to first response): {:?}",
        out.cold_start
    );
}

#[tokio::test]
async fn bootstrap_refuses_an_unknown_job() {
    let mut env = runtime_api::aws_env(&moto::endpoint());
    env.push(("TALLY_BUCKET", moto::unique("fn-rollup-bad")));
    env.push(("TALLY_TABLE", "unused".into()));
    let out = runtime_api::invoke(
        env!("CARGO_BIN_EXE_tally-rollup"),
        &env,
        r#"{"job":"explode"}"#,
    )
    .await;
    assert_eq!(out.kind, "error");
    assert!(out.body.to_string().contains("bad payload"), "{}", out.body);
}
