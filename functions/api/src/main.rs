//! API Lambda: API Gateway HTTP API → the metrics router → DynamoDB.

use std::sync::Arc;

use lambda_http::{run, tracing, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = tally::runtime::aws::ApiEnv::from_env()?;
    let store = Arc::new(env.store(&tally::runtime::aws::sdk_config().await));
    run(tally_api_fn::app(store, env.storage()?, env.query, env.api)).await
}
