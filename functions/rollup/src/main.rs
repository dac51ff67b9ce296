//! Rollup Lambda: EventBridge Scheduler payloads → DataFusion over S3 → DynamoDB period rows; as
//! the shard queue's worker, shard jobs → partial states in S3.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let rollup = tally::runtime::aws::RollupEnv::from_env()?
        .rollup(&tally::runtime::aws::sdk_config().await)?;
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
