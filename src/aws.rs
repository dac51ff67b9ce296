//! AWS wiring: clients and adapters built once from the environment.
//!
//! | variable | used by | meaning |
//! | --- | --- | --- |
//! | `TALLY_BUCKET` | ingest, rollup | S3 bucket of events, quarantine and rollup state |
//! | `TALLY_TABLE` | rollup, api | DynamoDB period table |
//! | `TALLY_REPORTING_TZ` | rollup, api | zone of stored days and months (default UTC) |
//! | `TALLY_API_TOKEN`, `TALLY_CORS_ORIGIN`, `TALLY_MAX_RANGE_DAYS` | api | as for `tally serve` |
//! | `AWS_REGION`, `AWS_ENDPOINT_URL` | all | set by Lambda; an endpoint points every client at an emulator |

use std::sync::Arc;

use chrono_tz::Tz;
use object_store::aws::AmazonS3Builder;

use crate::config::{optional_env, parse_reporting_tz, required_env, ConfigError};
use crate::storage::Storage;
use crate::store::dynamodb::DynamoStore;

/// Loads the shared AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// S3 through `object_store`: endpoint, region and credentials from the environment; path-style
/// requests and plain HTTP when an endpoint (an emulator) is given.
pub fn s3_storage(bucket: &str) -> Result<Storage, ConfigError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) =
        optional_env("AWS_ENDPOINT_URL_S3").or_else(|| optional_env("AWS_ENDPOINT_URL"))
    {
        builder = builder
            .with_endpoint(&endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    let store = builder.build().map_err(|e| ConfigError {
        name: "TALLY_BUCKET".into(),
        message: format!("cannot configure S3: {e}"),
    })?;
    Ok(Storage::new(Arc::new(store)))
}

pub fn reporting_tz() -> Result<Tz, ConfigError> {
    match optional_env("TALLY_REPORTING_TZ") {
        Some(v) => parse_reporting_tz("TALLY_REPORTING_TZ", &v),
        None => Ok(Tz::UTC),
    }
}

pub fn bucket() -> Result<String, ConfigError> {
    required_env("TALLY_BUCKET")
}

pub async fn dynamo_store(sdk: &aws_config::SdkConfig) -> Result<DynamoStore, ConfigError> {
    Ok(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        required_env("TALLY_TABLE")?,
    ))
}

/// The full text of an SDK error: its `Display` names only the outer layer ("service error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
