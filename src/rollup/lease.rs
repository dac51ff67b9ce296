//! One rollup job at a time: a lease in the period store, renewed while the job works.
//!
//! Two jobs at once (an overlapping cron, a manual backfill beside the scheduled run) would both
//! read an hour's files and write its rows, and the slower could overwrite a newer row with an
//! older one, or lose the other's build progress. So every job first claims the lease
//! [`LEASE_NAME`] for [`LEASE_TTL`] (a conditional write in DynamoDB, a locked SQLite transaction
//! locally), renews it every third of that while it works, and releases it when done. A second job
//! finds the lease held and does nothing, reporting who holds it and until when. A holder that
//! crashed blocks others until its lease expires. A job that cannot renew before its lease
//! expires stops where it is, as a crash would (every write is an idempotent overwrite and the
//! touched-hour markers go last), so two jobs never work past one expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::store::{Claim, Lease, PeriodStore, StoreError};

/// The lease every rollup job (rollup, backfill, compaction) claims.
pub const LEASE_NAME: &str = "rollup";
/// How long a claim lasts without renewal: how long a crashed job blocks the next one.
pub const LEASE_TTL: Duration = Duration::from_secs(120);

/// The lease a running job holds.
pub(crate) struct JobLease {
    store: Arc<dyn PeriodStore>,
    holder: String,
    ttl: Duration,
}

/// Why a job stopped while it held the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseLost {
    #[error(
        "the rollup lease was taken by {0} while this job held it; stopped (the next run resumes)"
    )]
    Taken(String),
    #[error("the rollup lease could not be renewed within {ttl:?} ({last}); stopped (the next run resumes)")]
    NotRenewed { ttl: Duration, last: StoreError },
}

impl JobLease {
    /// Claims the lease for a new holder: the lease, or who holds it.
    pub(crate) async fn claim(
        store: Arc<dyn PeriodStore>,
        ttl: Duration,
    ) -> Result<Result<JobLease, Lease>, StoreError> {
        let lease = JobLease {
            store,
            holder: holder_id(),
            ttl,
        };
        Ok(match lease.renew().await? {
            Claim::Granted => Ok(lease),
            Claim::HeldBy(other) => Err(other),
        })
    }

    async fn renew(&self) -> Result<Claim, StoreError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.ttl).expect("lease ttl fits");
        self.store
            .claim_lease(LEASE_NAME, &self.holder, now, until)
            .await
    }

    /// Renews the lease every third of its time to live; returns only when it is lost (taken by
    /// another job, or not renewed before it would expire).
    pub(crate) async fn keep(&self) -> LeaseLost {
        let period = self.ttl / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period).await;
            match self.renew().await {
                Ok(Claim::Granted) => renewed = tokio::time::Instant::now(),
                Ok(Claim::HeldBy(other)) => return LeaseLost::Taken(other.holder),
                // Stop a renewal period before the lease would lapse, not after.
                Err(last) if renewed.elapsed() + period >= self.ttl => {
                    return LeaseLost::NotRenewed {
                        ttl: self.ttl,
                        last,
                    }
                }
                Err(e) => tracing::warn!(error = %e, "renewing the rollup lease failed; retrying"),
            }
        }
    }

    /// Frees the lease for the next job. A failure only delays that job until the lease expires.
    pub(crate) async fn release(self) {
        if let Err(e) = self.store.release_lease(LEASE_NAME, &self.holder).await {
            tracing::warn!(error = %e, holder = %self.holder, "releasing the rollup lease failed; it expires by itself");
        }
    }

    #[cfg(test)]
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }
}

/// Names this job for whoever finds the lease held: the Lambda log stream on AWS (where to look
/// for its logs), else the process and host.
fn holder_id() -> String {
    let place = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
        .ok()
        .map(|stream| format!("log stream {stream}"))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| format!("host {}", h.trim()))
        })
        .unwrap_or_else(|| "this host".into());
    format!(
        "pid {} on {place} (job {:08x})",
        std::process::id(),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn one_holder_at_a_time_and_free_again_after_release() {
        let store: Arc<dyn PeriodStore> = Arc::new(MemoryStore::new());
        let first = JobLease::claim(store.clone(), LEASE_TTL)
            .await
            .unwrap()
            .expect("a free lease is granted");
        let held = JobLease::claim(store.clone(), LEASE_TTL)
            .await
            .unwrap()
            .err()
            .expect("a held lease is refused");
        assert_eq!(held.holder, first.holder());
        first.release().await;
        assert!(JobLease::claim(store, LEASE_TTL).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_job_whose_lease_is_taken_stops() {
        let store: Arc<dyn PeriodStore> = Arc::new(MemoryStore::new());
        let ttl = Duration::from_millis(300);
        let lease = JobLease::claim(store.clone(), ttl).await.unwrap().unwrap();
        // Another job that believes the lease expired (a clock far ahead) takes it.
        let later = Utc::now() + chrono::Duration::days(1);
        let taken = store
            .claim_lease(
                LEASE_NAME,
                "thief",
                later,
                later + chrono::Duration::hours(1),
            )
            .await
            .unwrap();
        assert_eq!(taken, Claim::Granted);
        let lost = tokio::time::timeout(Duration::from_secs(30), lease.keep())
            .await
            .expect("keep returns once the lease is gone");
        assert!(
            matches!(&lost, LeaseLost::Taken(h) if h == "thief"),
            "{lost}"
        );
    }
}
