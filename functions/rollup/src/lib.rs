//! The rollup function's handler: a schedule payload in, a job report out.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tally::jobs::{self, Job};
use tally::rollup::Rollup;

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

/// Runs the job named by the payload, stopping early at `deadline` and leaving unfinished hours
/// marked for the next run.
pub async fn handle(
    rollup: &Rollup,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, String> {
    let job: Job = serde_json::from_value(payload).map_err(|e| {
        format!("bad payload: {e}; expected {{\"job\":\"rollup\"|\"compact\"|\"backfill\",...}}")
    })?;
    let report = jobs::run(rollup, &job, Some(deadline))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(?job, %report, "job done");
    Ok(report)
}
