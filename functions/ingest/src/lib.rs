//! The ingest function's handler: an SQS batch in, partial batch failures out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tally::ingest::{ingest_messages, Message};
use tally::lake::Storage;
use tally::model::Receipt;

/// Writes the batch's events and quarantines what is malformed; returns in `batchItemFailures`
/// exactly the records whose data could not be written, so SQS redelivers only those.
pub async fn handle(storage: &Storage, receipt: Receipt, event: SqsEvent) -> SqsBatchResponse {
    let messages: Vec<Message> = event
        .records
        .into_iter()
        .map(|r| Message {
            id: r.message_id.unwrap_or_default(),
            body: r.body.unwrap_or_default().into_bytes(),
        })
        .collect();
    let outcome = ingest_messages(storage, &messages, receipt).await;
    tracing::info!(
        records = messages.len(),
        accepted = outcome.summary.accepted,
        rejected = outcome.summary.rejected,
        files = outcome.summary.files_written,
        failed = outcome.failed.len(),
        "ingested batch"
    );
    let mut response = SqsBatchResponse::default();
    response.set_failures(outcome.failed);
    response
}
