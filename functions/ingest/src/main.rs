//! Ingest Lambda: SQS event source mapping (ReportBatchItemFailures) → Parquet on S3.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let env = tally::runtime::aws::IngestEnv::from_env()?;
    let (storage, max_age_days) = (&env.storage()?, env.max_event_age_days);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        let receipt = tally::model::Receipt::new(chrono::Utc::now(), max_age_days);
        Ok::<_, Error>(tally_ingest_fn::handle(storage, receipt, event.payload).await)
    }))
    .await
}
