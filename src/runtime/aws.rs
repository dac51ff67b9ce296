//! AWS wiring: each function's environment, read and checked in one place at start (a missing or
//! invalid variable stops the function with an error naming it), and the clients built from it.
//!
//! | variable | used by | meaning |
//! | --- | --- | --- |
//! | `TALLY_BUCKET` | all | S3 bucket of events, quarantine, rollup state and the deployed catalog |
//! | `TALLY_TABLE` | rollup, api | DynamoDB period table |
//! | `TALLY_REPORTING_TZ` | rollup, api | zone of stored days and months (default UTC) |
//! | `TALLY_SHARD_MB` | rollup | MiB of event files one piece of rollup work reads (default 32) |
//! | `TALLY_SHARD_QUEUE_URL` | rollup | SQS queue an hour's shards are sent to; unset, the run computes them |
//! | `TALLY_API_TOKEN`, `TALLY_CORS_ORIGIN`, `TALLY_MAX_RANGE_DAYS` | api | as for `tally serve` |
//! | `AWS_REGION`, `AWS_ENDPOINT_URL` | all | set by Lambda; an endpoint points every client at an emulator |

use std::sync::Arc;

use chrono_tz::Tz;
use object_store::aws::AmazonS3Builder;

use crate::lake::Storage;
use crate::model::DEFAULT_MAX_EVENT_AGE_DAYS;
use crate::rollup::catalog::Catalog;
use crate::rollup::{
    Rollup, ShardJob, ShardOptions, ShardQueue, ShardQueueError, DEFAULT_RETIRE_AFTER,
};
use crate::runtime::config::{
    optional_env, parse_reporting_tz, positive_days, required_env, shard_bytes, ConfigError,
};
use crate::serve::query::{QueryOptions, DEFAULT_MAX_RANGE_DAYS};
use crate::serve::{ApiOptions, SignIn};
use crate::store::DynamoStore;

/// How long one DynamoDB or SQS request may take before it is retried, and how long all attempts
/// of one call may take. Without them a request to a stalled endpoint waits for the function's own
/// timeout; with them the SDK's standard retries (3 attempts, exponential backoff with jitter, also
/// on throttling) get their turn, and then the caller's error path (a 503 from the api, a failed
/// rollup run resumed by the next).
pub const SDK_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
pub const SDK_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Loads the shared AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`) with the
/// timeouts above.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(sdk_http_client())
        .timeout_config(sdk_timeouts())
        .load()
        .await
}

/// The SDK's HTTPS client (plain HTTP too, for an emulator): rustls over ring, the crypto library
/// `object_store`'s client is built on, so a binary links one crypto library where the SDK's default
/// client (over aws-lc) made it two.
pub fn sdk_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// [`SDK_ATTEMPT_TIMEOUT`] and [`SDK_OPERATION_TIMEOUT`] as the SDK takes them.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .build()
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

/// The ingest function's environment.
#[derive(Debug, Clone)]
pub struct IngestEnv {
    pub bucket: String,
    /// Events older than this when they arrive are quarantined (`TALLY_MAX_EVENT_AGE_DAYS`).
    pub max_event_age_days: i64,
}

impl IngestEnv {
    pub fn from_env() -> Result<IngestEnv, ConfigError> {
        Ok(IngestEnv {
            bucket: required_env("TALLY_BUCKET")?,
            max_event_age_days: positive_days(
                "TALLY_MAX_EVENT_AGE_DAYS",
                DEFAULT_MAX_EVENT_AGE_DAYS,
            )?,
        })
    }

    pub fn storage(&self) -> Result<Storage, ConfigError> {
        s3_storage(&self.bucket)
    }
}

/// The rollup function's environment (the scheduled run and the shard worker are one binary).
#[derive(Debug, Clone)]
pub struct RollupEnv {
    pub bucket: String,
    pub table: String,
    pub reporting_tz: Tz,
    /// Bytes of event files per piece of work (`TALLY_SHARD_MB`).
    pub shard_bytes: u64,
    /// Where an hour's shards are sent (`TALLY_SHARD_QUEUE_URL`); unset, the run computes them.
    pub shard_queue_url: Option<String>,
}

impl RollupEnv {
    pub fn from_env() -> Result<RollupEnv, ConfigError> {
        Ok(RollupEnv {
            bucket: required_env("TALLY_BUCKET")?,
            table: required_env("TALLY_TABLE")?,
            reporting_tz: reporting_tz()?,
            shard_bytes: shard_bytes("TALLY_SHARD_MB")?,
            shard_queue_url: optional_env("TALLY_SHARD_QUEUE_URL"),
        })
    }

    /// The rollup over S3 and DynamoDB, reading the deployed catalog (seeded with the built-in
    /// definitions on a bucket that has none).
    pub fn rollup(&self, sdk: &aws_config::SdkConfig) -> Result<Rollup, ConfigError> {
        Ok(Rollup {
            storage: s3_storage(&self.bucket)?,
            events: None,
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &self.table,
            )),
            catalog: Catalog::builtin(),
            reporting_tz: self.reporting_tz,
            retire_after: DEFAULT_RETIRE_AFTER,
            shards: ShardOptions {
                max_bytes: self.shard_bytes,
                queue: self.shard_queue_url.as_ref().map(|url| {
                    Arc::new(SqsShardQueue {
                        client: aws_sdk_sqs::Client::new(sdk),
                        queue_url: url.clone(),
                    }) as Arc<dyn ShardQueue>
                }),
                ..ShardOptions::default()
            },
        })
    }
}

/// Shard jobs as SQS messages, ten to a request; the SDK's standard retries, then an error.
pub struct SqsShardQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

#[async_trait::async_trait]
impl ShardQueue for SqsShardQueue {
    async fn send(&self, jobs: &[ShardJob]) -> Result<(), ShardQueueError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for chunk in jobs.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("s{i}"))
                        .message_body(serde_json::to_string(job).expect("jobs serialise"))
                        .build()
                        .map_err(|e| ShardQueueError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| ShardQueueError(crate::sdk_error::error_chain(&e)))?;
            if let Some(f) = out.failed().first() {
                return Err(ShardQueueError(format!(
                    "{} of {} messages refused, first: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

/// The api function's environment.
#[derive(Clone)]
pub struct ApiEnv {
    pub bucket: String,
    pub table: String,
    pub query: QueryOptions,
    pub api: ApiOptions,
}

impl ApiEnv {
    pub fn from_env() -> Result<ApiEnv, ConfigError> {
        let max_range_days = positive_days("TALLY_MAX_RANGE_DAYS", DEFAULT_MAX_RANGE_DAYS)?;
        let cors_origin = optional_env("TALLY_CORS_ORIGIN")
            .map(|v| {
                v.parse().map_err(|message| ConfigError {
                    name: "TALLY_CORS_ORIGIN".into(),
                    message,
                })
            })
            .transpose()?;
        Ok(ApiEnv {
            bucket: required_env("TALLY_BUCKET")?,
            table: required_env("TALLY_TABLE")?,
            query: QueryOptions {
                reporting_tz: reporting_tz()?,
                max_range_days,
                ..QueryOptions::default()
            },
            api: ApiOptions {
                token: optional_env("TALLY_API_TOKEN"),
                cors_origin,
                sign_in: console_sign_in()?,
            },
        })
    }

    pub fn store(&self, sdk: &aws_config::SdkConfig) -> DynamoStore {
        DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &self.table)
    }

    /// The bucket the deployed catalog is read from.
    pub fn storage(&self) -> Result<Storage, ConfigError> {
        s3_storage(&self.bucket)
    }
}

/// The console's sign-in: `TALLY_OIDC_AUTHORIZE_URL`, `TALLY_OIDC_TOKEN_URL`, `TALLY_OIDC_CLIENT_ID`
/// (all or none) and `TALLY_OIDC_SCOPE`.
pub fn console_sign_in() -> Result<Option<SignIn>, ConfigError> {
    SignIn::from_settings(
        optional_env(SIGN_IN_SETTINGS[0]),
        optional_env(SIGN_IN_SETTINGS[1]),
        optional_env(SIGN_IN_SETTINGS[2]),
        optional_env("TALLY_OIDC_SCOPE"),
        SIGN_IN_SETTINGS,
    )
    .map_err(|(name, message)| ConfigError { name, message })
}

const SIGN_IN_SETTINGS: [&str; 3] = [
    "TALLY_OIDC_AUTHORIZE_URL",
    "TALLY_OIDC_TOKEN_URL",
    "TALLY_OIDC_CLIENT_ID",
];

fn reporting_tz() -> Result<Tz, ConfigError> {
    match optional_env("TALLY_REPORTING_TZ") {
        Some(v) => parse_reporting_tz("TALLY_REPORTING_TZ", &v),
        None => Ok(Tz::UTC),
    }
}
