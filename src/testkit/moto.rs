//! Connects tests to the S3/SQS/DynamoDB emulator (`moto_server`) that `make test` starts and names
//! in `TALLY_TEST_AWS_ENDPOINT`. Every test makes its own bucket, queue and table.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::lake::Storage;
use crate::store::DynamoStore;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

pub fn endpoint() -> String {
    set_by_make_test(
        "TALLY_TEST_AWS_ENDPOINT",
        "moto_server, the S3/SQS/DynamoDB emulator these tests need",
    )
}

/// A variable `make test` sets (tests/support/with-moto.sh) when it starts `what`.
fn set_by_make_test(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests with `make test`, which starts {what}")
    })
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::runtime::aws::sdk_http_client())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .timeout_config(crate::runtime::aws::sdk_timeouts())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// The DynamoDB endpoint whose eventually consistent and index reads see the table only as it stood
/// at the last [`lagging_sync`] (`tests/support/lagging_dynamodb.py`, started by `make test`).
pub fn lagging_endpoint() -> String {
    set_by_make_test(
        "TALLY_TEST_LAGGING_DYNAMODB",
        "the lagging DynamoDB endpoint",
    )
}

/// A new table behind the lagging endpoint.
pub async fn lagging_dynamo_store(table: &str) -> DynamoStore {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk().await)
        .endpoint_url(lagging_endpoint())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table);
    store.create_table().await.unwrap();
    store
}

/// Lets the lagging endpoint's stale reads catch up with every write made so far.
pub fn lagging_sync() {
    let response = http_to(&lagging_endpoint(), "POST", "/_lagging/sync");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Sends one plain HTTP request to the emulator; returns the status line.
fn http(method: &str, path: &str) -> String {
    http_to(&endpoint(), method, path)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sends one plain HTTP request without a body; returns the whole response.
fn http_to(ep: &str, method: &str, path: &str) -> String {
    http_with_body(ep, method, path, "")
}

fn http_with_body(ep: &str, method: &str, path: &str, body: &str) -> String {
    let host = ep.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r
}

/// The S3 and DynamoDB endpoint that fails requests as a test asks (`tests/support/faulty_aws.py`,
/// started by `make test`).
pub fn faulty_endpoint() -> String {
    set_by_make_test("TALLY_TEST_FAULTY_AWS", "the faulty endpoint")
}

/// The HTTPS endpoint to the emulator (`tests/support/tls_aws.py`, started by `make test`), and the
/// root certificates that trust it: the system's and the throwaway authority that signed it.
pub fn tls_endpoint() -> (String, String) {
    let var = |name| set_by_make_test(name, "the HTTPS endpoint");
    (var("TALLY_TEST_TLS_AWS"), var("TALLY_TEST_TLS_ROOTS"))
}

/// Fails requests of `op` (`PutObject`, `BatchWriteItem`, `*`, ...) whose path or body contains
/// `matching` with `fault` (`slowdown`, `s3-500`, `throttle`, `dynamo-500`, `stall`): every
/// `every`-th one, `times` times in all (a stall waits `seconds`).
pub fn inject_fault(op: &str, matching: &str, fault: &str, every: u32, times: u32, seconds: f64) {
    let rule = serde_json::json!({
        "op": op, "match": matching, "fault": fault, "every": every, "times": times, "seconds": seconds,
    });
    let response = http_with_body(&faulty_endpoint(), "POST", "/_faults", &rule.to_string());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Removes every fault on `matching`.
pub fn clear_faults(matching: &str) {
    let response = http_to(
        &faulty_endpoint(),
        "DELETE",
        &format!("/_faults?match={matching}"),
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// How many failures the faults on `matching` injected.
pub fn faults_injected(matching: &str) -> u64 {
    let response = http_to(
        &faulty_endpoint(),
        "GET",
        &format!("/_faults?match={matching}"),
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
    parsed["injected"].as_u64().unwrap()
}

/// A new bucket reached through the faulty endpoint.
pub fn faulty_s3_storage(bucket: &str) -> Storage {
    Storage::new(s3_object_store_at(&faulty_endpoint(), bucket))
}

/// A new table (created directly on the emulator) reached through the faulty endpoint.
pub async fn faulty_dynamo_store(table: &str) -> DynamoStore {
    dynamo_store(table).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk().await)
        .endpoint_url(faulty_endpoint())
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table)
}

pub fn s3_object_store(bucket: &str) -> Arc<dyn ObjectStore> {
    s3_object_store_at(&endpoint(), bucket)
}

/// A new bucket, reached through `ep`.
fn s3_object_store_at(ep: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    let status = http("PUT", &format!("/{bucket}"));
    assert!(status.contains("200"), "creating bucket {bucket}: {status}");
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(ep)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap(),
    )
}

pub fn s3_storage(bucket: &str) -> Storage {
    Storage::new(s3_object_store(bucket))
}

pub async fn dynamo_store(table: &str) -> DynamoStore {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk().await), table);
    store.create_table().await.unwrap();
    store
}
