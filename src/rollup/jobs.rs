//! Scheduled jobs of the rollup function, as payloads:
//! `{"job":"rollup"}` (`"full":true` recomputes every hour), `{"job":"compact"}`,
//! `{"job":"backfill","from":..,"to":..,"metrics":[..]}`. Each runs under the rollup lease
//! ([`super::lease`]): a job that finds another one running does nothing and says so.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::lake::CompactReport;
use crate::model::DateOrTime;
use crate::rollup::lease::{JobLease, LEASE_TTL};
use crate::rollup::{Rollup, RollupError, RollupReport};
use crate::store::Lease;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Every hour touched since the last run, then the builds of new metric versions; with
    /// `full`, every hour that has events, in place, as `tally rollup --full`.
    Rollup {
        #[serde(default)]
        full: bool,
    },
    /// Merge the files of closed hours.
    Compact {
        #[serde(default = "default_grace")]
        grace_hours: i64,
    },
    /// Recompute `[from, to)` (dates or RFC 3339, UTC) for all or the named metrics.
    Backfill {
        from: String,
        to: String,
        #[serde(default)]
        metrics: Option<Vec<String>>,
    },
}

fn default_grace() -> i64 {
    2
}

impl Job {
    /// The job a schedule's payload names.
    pub fn from_payload(payload: serde_json::Value) -> Result<Job, JobError> {
        serde_json::from_value(payload).map_err(JobError::BadPayload)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("bad payload: {0}; expected {{\"job\":\"rollup\"|\"compact\"|\"backfill\",...}}")]
    BadPayload(serde_json::Error),
    #[error(transparent)]
    Rollup(#[from] RollupError),
}

/// What a job did, as the function returns it (JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum JobReport {
    Rollup(RollupReport),
    Compact(CompactReport),
    Backfill {
        backfill: RollupReport,
    },
    /// Another job held the rollup lease: this one did nothing.
    Skipped(Skipped),
}

/// A job that found another one running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub skipped: &'static str,
    /// Who holds the lease (on AWS, the log stream of the function instance running it).
    pub held_by: String,
    /// When the lease expires if its holder stops renewing it.
    pub until: DateTime<Utc>,
}

impl From<Lease> for Skipped {
    fn from(lease: Lease) -> Skipped {
        Skipped {
            skipped: "another rollup job is running; this one did nothing",
            held_by: lease.holder,
            until: lease.until,
        }
    }
}

impl JobReport {
    /// Touched hours a rollup run left for the next one (the `rollup-falling-behind` alarm
    /// watches this); `None` for the other jobs.
    pub fn touched_hours_waiting(&self) -> Option<usize> {
        match self {
            JobReport::Rollup(r) => Some(r.hours_remaining),
            JobReport::Compact(_) | JobReport::Backfill { .. } | JobReport::Skipped(_) => None,
        }
    }
}

/// A backfill bound: a date is midnight UTC.
fn parse_utc(field: &'static str, s: &str) -> Result<DateTime<Utc>, RollupError> {
    DateOrTime::parse(s)
        .map(|t| t.in_zone(chrono_tz::UTC))
        .ok_or_else(|| RollupError::BadBackfillBound {
            field,
            text: s.to_string(),
        })
}

/// Runs one job under the rollup lease, or skips it while another job holds the lease; stops
/// between days of work at `deadline`, leaving the rest for the next run.
pub async fn run(
    rollup: &Rollup,
    job: &Job,
    deadline: Option<Instant>,
) -> Result<JobReport, RollupError> {
    let lease = match JobLease::claim(rollup.store.clone(), LEASE_TTL).await? {
        Ok(lease) => lease,
        Err(held) => {
            tracing::warn!(?job, holder = %held.holder, until = %held.until, "another rollup job holds the lease; skipped");
            return Ok(JobReport::Skipped(held.into()));
        }
    };
    // Losing the lease drops the job where it is, as a crash would.
    let outcome = tokio::select! {
        outcome = run_unleased(rollup, job, deadline) => outcome,
        lost = lease.keep() => Err(lost.into()),
    };
    lease.release().await;
    outcome
}

async fn run_unleased(
    rollup: &Rollup,
    job: &Job,
    deadline: Option<Instant>,
) -> Result<JobReport, RollupError> {
    Ok(match job {
        Job::Rollup { full: false } => JobReport::Rollup(rollup.run_touched(deadline).await?),
        Job::Rollup { full: true } => {
            JobReport::Rollup(rollup.run_full(None, None, deadline).await?)
        }
        Job::Compact { grace_hours } => {
            let closed_before = Utc::now() - Duration::hours(*grace_hours);
            JobReport::Compact(rollup.storage.compact(closed_before).await?)
        }
        Job::Backfill { from, to, metrics } => {
            let (from, to) = (parse_utc("from", from)?, parse_utc("to", to)?);
            if from >= to {
                return Err(RollupError::EmptyBackfill);
            }
            let report = rollup
                .run_full(Some((from, to)), metrics.as_deref(), deadline)
                .await?;
            JobReport::Backfill { backfill: report }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            serde_json::from_str::<Job>(r#"{"job":"rollup"}"#).unwrap(),
            Job::Rollup { full: false }
        );
        assert_eq!(
            serde_json::from_str::<Job>(r#"{"job":"rollup","full":true}"#).unwrap(),
            Job::Rollup { full: true }
        );
        assert_eq!(
            serde_json::from_str::<Job>(r#"{"job":"compact"}"#).unwrap(),
            Job::Compact { grace_hours: 2 }
        );
        let b: Job = serde_json::from_str(
            r#"{"job":"backfill","from":"2026-08-01","to":"2026-08-02","metrics":["visitors"]}"#,
        )
        .unwrap();
        assert_eq!(
            b,
            Job::Backfill {
                from: "2026-08-01".into(),
                to: "2026-08-02".into(),
                metrics: Some(vec!["visitors".into()])
            }
        );
        assert!(serde_json::from_str::<Job>(r#"{"job":"explode"}"#).is_err());
        assert!(
            serde_json::from_str::<Job>(r#"{"job":"backfill","from":"2026-08-01"}"#).is_err(),
            "to is required"
        );
    }
}
