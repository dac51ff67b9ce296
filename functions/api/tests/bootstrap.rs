//! The real api binary under a local Lambda Runtime API, driven by tests/fixtures/api-gateway-v2-request.json.

use tally::testkit::{moto, runtime_api};

/// An empty bucket: no catalog deployed (the built-in one is served), nothing rolled up.
fn bucket() -> String {
    let bucket = moto::unique("fn-api-lake");
    moto::s3_storage(&bucket);
    bucket
}

#[tokio::test]
async fn bootstrap_answers_an_api_gateway_request() {
    let table = moto::unique("fn-api");
    moto::dynamo_store(&table).await;
    let mut env = runtime_api::aws_env(&moto::endpoint());
    env.push(("TALLY_TABLE", table));
    env.push(("TALLY_BUCKET", bucket()));
    let out = runtime_api::invoke(
        env!("CARGO_BIN_EXE_tally-api"),
        &env,
        &runtime_api::fixture("api-gateway-v2-request.json"),
    )
    .await;
    assert_eq!(out.kind, "response", "{:?}", out.body);
    assert_eq!(out.body["statusCode"], 200, "{}", out.body);
    let body: serde_json::Value = serde_json::from_str(out.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["metric"], "revenue");
    assert_eq!(body["filters"], serde_json::json!({"country": "KR"}));
    assert_eq!(
        body["current_total"], 0,
        "an empty table answers zeros, not an error"
    );
    eprintln!(
        "cold start (process start to first response): {:?}",
        out.cold_start
    );
}

#[tokio::test]
async fn bootstrap_answers_a_bad_parameter_with_400() {
    let table = moto::unique("fn-api-bad");
    moto::dynamo_store(&table).await;
    let mut env = runtime_api::aws_env(&moto::endpoint());
    env.push(("TALLY_TABLE", table));
    env.push(("TALLY_BUCKET", bucket()));
    let event =
        runtime_api::fixture("api-gateway-v2-request.json").replace("2026-08-24", "2026-08-30");
    let out = runtime_api::invoke(env!("CARGO_BIN_EXE_tally-api"), &env, &event).await;
    assert_eq!(out.body["statusCode"], 400, "{}", out.body);
}

#[tokio::test]
async fn bootstrap_serves_the_console_and_its_script() {
    let table = moto::unique("fn-api-console");
    moto::dynamo_store(&table).await;
    let mut env = runtime_api::aws_env(&moto::endpoint());
    env.push(("TALLY_TABLE", table));
    env.push(("TALLY_BUCKET", bucket()));
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<title>tally"),
        (
            "/console/uPlot.min.js",
            "text/javascript; charset=utf-8",
            "uPlot",
        ),
    ] {
        let event = runtime_api::fixture("api-gateway-v2-request.json")
            .replace("/v1/metrics/revenue", path)
            .replace("from=2026-08-24&to=2026-08-27&country=KR", "");
        let out = runtime_api::invoke(env!("CARGO_BIN_EXE_tally-api"), &env, &event).await;
        assert_eq!(out.body["statusCode"], 200, "{path}: {}", out.body);
        assert_eq!(out.body["headers"]["content-type"], content_type, "{path}");
        assert!(
            out.body["body"].as_str().unwrap().contains(needle),
            "{path} lacks {needle:?}"
        );
    }
}
