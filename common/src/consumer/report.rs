//! What `GET /{svc}/consumer` and the parked-entry endpoints report.

use serde::Serialize;

use super::{lock, store, Consumer, LeaseReport, PollReport, Projection};
use crate::clock::{from_micros, rfc3339};
use crate::Error;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryResult {
    pub entry_id: String,
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerReport {
    pub feed_url: String,
    /// The representation of the feed polled: `feedUrl`, or its inline-details alternate.
    pub polled_url: String,
    /// Where details come from: `inline` or `link` (`DETAILS`).
    pub details: &'static str,
    pub checkpoint: CheckpointReport,
    pub last_poll: Option<PollReport>,
    pub consecutive_failures: u32,
    pub lease: LeaseReport,
    pub lag: Lag,
    pub parked: ParkedReport,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointReport {
    pub entry_id: Option<String>,
    pub entry_updated: Option<String>,
    pub handled_entries: i64,
}

#[derive(Debug, Serialize)]
pub struct Lag {
    /// Entries seen in the feed and not handled yet.
    pub entries: u64,
    /// Age difference between the newest entry in the head and the checkpoint; `null` before
    /// the first entry is handled.
    pub seconds: Option<f64>,
    /// Entries pending over the last minutes, oldest first (at most one sample a second).
    pub history: Vec<crate::feed::LagSample>,
}

#[derive(Debug, Serialize)]
pub struct ParkedReport {
    pub count: i64,
    /// The 50 most recently parked.
    pub entries: Vec<store::Parked>,
}

impl<P: Projection> Consumer<P> {
    /// The state for `GET /{svc}/consumer`.
    pub async fn report(&self) -> Result<ConsumerReport, Error> {
        let checkpoint = store::checkpoint(&self.inner.db).await?;
        let parked_count = store::parked_count(&self.inner.db).await?;
        let parked = store::parked(&self.inner.db, i64::MAX, 50).await?;
        let status = lock(&self.inner.status);
        // Unknown until something was handled: there is nothing to compare the head with.
        let lag_seconds = (checkpoint.entry_updated_us > 0)
            .then_some((status.head_updated_us - checkpoint.entry_updated_us).max(0) as f64 / 1e6);
        Ok(ConsumerReport {
            feed_url: self.inner.settings.feed_url.to_string(),
            polled_url: self.polled_url().to_string(),
            details: self.inner.settings.details.as_str(),
            checkpoint: CheckpointReport {
                entry_id: checkpoint.entry_id,
                entry_updated: (checkpoint.entry_updated_us > 0)
                    .then(|| rfc3339(from_micros(checkpoint.entry_updated_us))),
                handled_entries: checkpoint.handled,
            },
            last_poll: status.last.clone(),
            consecutive_failures: status.consecutive_failures,
            lease: self.inner.lease.report(),
            lag: Lag {
                entries: status.behind(),
                seconds: lag_seconds,
                history: status
                    .lag_history
                    .iter()
                    .map(|&(at_us, pending)| crate::feed::LagSample {
                        at_us,
                        behind: pending as i64,
                    })
                    .collect(),
            },
            parked: ParkedReport {
                count: parked_count,
                entries: parked,
            },
        })
    }
}
