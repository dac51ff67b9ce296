//! Ingest Lambda: SQS event source mapping (ReportBatchItemFailures) → Parquet on S3.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let storage = tally::runtime::aws::IngestEnv::from_env()?.storage()?;
    let storage = &storage;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, Error>(tally_ingest_fn::handle(storage, event.payload).await)
    }))
    .await
}
