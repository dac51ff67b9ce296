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
    std::env::var("TALLY_TEST_AWS_ENDPOINT").expect(
        "TALLY_TEST_AWS_ENDPOINT is not set: these tests need the S3/SQS/DynamoDB emulator; run them with `make test`, which starts moto_server",
    )
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
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// The DynamoDB endpoint whose eventually consistent and index reads see the table only as it stood
/// at the last [`lagging_sync`] (`tests/support/lagging_dynamodb.py`, started by `make test`).
pub fn lagging_endpoint() -> String {
    std::env::var("TALLY_TEST_LAGGING_DYNAMODB").expect(
        "TALLY_TEST_LAGGING_DYNAMODB is not set: run these tests with `make test`, which starts the lagging DynamoDB endpoint",
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
    let host = ep.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r
}

pub fn s3_object_store(bucket: &str) -> Arc<dyn ObjectStore> {
    let status = http("PUT", &format!("/{bucket}"));
    assert!(status.contains("200"), "creating bucket {bucket}: {status}");
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint())
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
