//! The rollup function's handler. One binary, two roles: a schedule payload runs a job and returns
//! its report; an SQS batch of shard jobs (from the shard queue) runs each and returns the
//! records that failed, so SQS delivers only those again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tally::lake::Storage;
use tally::rollup::{run_job, run_shard, Job, JobError, JobReport, Rollup, ShardJob};

/// Time kept back from the invocation deadline for writing what is done and returning.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(30);

/// Turns Lambda's deadline (epoch milliseconds) into an `Instant` with the safety margin taken off.
pub fn work_deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left =
        Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(SAFETY_MARGIN);
    Instant::now() + left
}

/// Runs what the payload holds: shard jobs from the shard queue, or the scheduled job it names,
/// stopping early at `deadline` and leaving unfinished hours marked for the next run.
pub async fn handle(
    rollup: &Rollup,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, JobError> {
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload).map_err(JobError::BadPayload)?;
        let response = handle_shards(&rollup.storage, event).await;
        return Ok(serde_json::to_value(response).expect("responses serialise"));
    }
    let report = handle_job(rollup, payload, deadline).await?;
    Ok(serde_json::to_value(report).expect("reports serialise"))
}

/// Runs each shard job of the batch; a record whose body is not a shard job, or whose job failed,
/// is reported failed (delivered again, and after the queue's receive count kept in its DLQ).
pub async fn handle_shards(storage: &Storage, event: SqsEvent) -> SqsBatchResponse {
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        let job: ShardJob = match serde_json::from_str(record.body.as_deref().unwrap_or_default()) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(message = %id, error = %e, "not a shard job");
                failed.push(id);
                continue;
            }
        };
        match run_shard(storage, &job).await {
            Ok(outcome) => tracing::info!(?job, ?outcome, "shard done"),
            Err(e) => {
                tracing::error!(?job, error = %e, "shard failed");
                failed.push(id);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

/// Runs the scheduled job named by the payload.
pub async fn handle_job(
    rollup: &Rollup,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<JobReport, JobError> {
    let job = Job::from_payload(payload)?;
    let report = run_job(rollup, &job, Some(deadline)).await?;
    tracing::info!(?job, ?report, "job done");
    if let Some(line) = touched_hours_waiting_metric(&report, SystemTime::now()) {
        // Stdout, not tracing: CloudWatch reads an embedded-metric line only when it is the whole
        // log line, and the `rollup-falling-behind` alarm watches this metric.
        println!("{line}");
    }
    Ok(report)
}

/// The CloudWatch embedded-metric-format line `tally/TouchedHoursWaiting` (dimension
/// `Function=rollup`) for a rollup job's report: how many touched hours this run left for the
/// next. `None` for the other jobs.
pub fn touched_hours_waiting_metric(report: &JobReport, at: SystemTime) -> Option<String> {
    let waiting = report.touched_hours_waiting()?;
    let timestamp_ms = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "tally",
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": "TouchedHoursWaiting", "Unit": "Count"}],
            }],
        },
        "Function": "rollup",
        "TouchedHoursWaiting": waiting,
    });
    Some(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally::lake::CompactReport;
    use tally::rollup::RollupReport;

    #[test]
    fn rollup_reports_become_one_emf_line() {
        let at = UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
        let report = JobReport::Rollup(RollupReport {
            hours_remaining: 7,
            ..RollupReport::default()
        });
        let line = touched_hours_waiting_metric(&report, at).expect("a rollup report has a metric");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'), "EMF must be one log line");
        assert_eq!(parsed["TouchedHoursWaiting"], 7);
        assert_eq!(parsed["Function"], "rollup");
        let directive = &parsed["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "tally");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "TouchedHoursWaiting");
        assert_eq!(parsed["_aws"]["Timestamp"], 1_790_000_000_123u64);
    }

    #[test]
    fn compaction_and_backfill_reports_publish_nothing() {
        let now = SystemTime::now();
        let compact = JobReport::Compact(CompactReport::default());
        assert_eq!(touched_hours_waiting_metric(&compact, now), None);
        let backfill = JobReport::Backfill {
            backfill: RollupReport {
                hours_remaining: 2,
                ..RollupReport::default()
            },
        };
        assert_eq!(touched_hours_waiting_metric(&backfill, now), None);
    }
}
