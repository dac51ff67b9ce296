//! API Lambda: API Gateway HTTP API → the metrics router → DynamoDB.

use std::sync::Arc;

use lambda_http::{run, tracing, Error};
use tally::config::optional_env;
use tally::http::ApiOptions;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let sdk = tally::aws::sdk_config().await;
    let store = Arc::new(tally::aws::dynamo_store(&sdk).await?);
    let max_range_days = match optional_env("TALLY_MAX_RANGE_DAYS") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("TALLY_MAX_RANGE_DAYS: {v:?} is not a whole number of days"))?,
        None => 1100,
    };
    let options = ApiOptions {
        token: optional_env("TALLY_API_TOKEN"),
        cors_origin: optional_env("TALLY_CORS_ORIGIN"),
    };
    run(tally_api_fn::app(
        store,
        tally::aws::reporting_tz()?,
        options,
        max_range_days,
    ))
    .await
}
