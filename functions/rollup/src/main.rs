//! Rollup Lambda: EventBridge Scheduler payloads → DataFusion over S3 → DynamoDB period rows.

use std::sync::Arc;

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use tally::rollup::Rollup;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let sdk = tally::aws::sdk_config().await;
    let rollup = Rollup {
        storage: tally::aws::s3_storage(&tally::aws::bucket()?)?,
        store: Arc::new(tally::aws::dynamo_store(&sdk).await?),
        catalog: tally::catalog::Catalog::builtin(),
        reporting_tz: tally::aws::reporting_tz()?,
    };
    let rollup = &rollup;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = tally_rollup_fn::work_deadline(event.context.deadline);
            tally_rollup_fn::handle(rollup, event.payload, deadline)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
