//! What a consumer reports to Prometheus.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Default)]
pub struct ConsumerMetrics {
    /// Entries handled, by outcome (applied, stale, parked).
    pub(super) entries: Family<Kind, Counter>,
    /// Retries, by what was retried (details, apply).
    pub(super) retries: Family<Kind, Counter>,
    /// Polls, by result (ok, not-modified, error, standby, stopped).
    pub(super) polls: Family<Kind, Counter>,
    /// Failed polls, by cause (transient, permanent, feed, database, other-feed, checkpoint-lost).
    pub(super) poll_errors: Family<Kind, Counter>,
    pub(super) lag_entries: Gauge,
    pub(super) lag_seconds: Gauge<f64, AtomicU64>,
    pub(super) parked: Gauge,
    /// 1 while the consumer is stopped (another feed, a lost checkpoint), else 0.
    pub(super) stopped: Gauge,
}

impl ConsumerMetrics {
    pub fn register(registry: &mut Registry) -> ConsumerMetrics {
        let m = ConsumerMetrics::default();
        registry.register(
            "consumer_entries",
            "Feed entries handled, by outcome",
            m.entries.clone(),
        );
        registry.register(
            "consumer_retries",
            "Retried requests and transactions",
            m.retries.clone(),
        );
        registry.register(
            "consumer_polls",
            "Polls of the feed head, by result",
            m.polls.clone(),
        );
        registry.register(
            "consumer_poll_errors",
            "Failed polls, by cause",
            m.poll_errors.clone(),
        );
        registry.register(
            "consumer_lag_entries",
            "Entries seen but not handled yet",
            m.lag_entries.clone(),
        );
        registry.register(
            "consumer_lag_seconds",
            "Age of the newest entry in the head minus age of the checkpoint",
            m.lag_seconds.clone(),
        );
        registry.register(
            "consumer_parked_entries",
            "Entries parked now",
            m.parked.clone(),
        );
        registry.register(
            "consumer_stopped",
            "1 while the consumer applies nothing because the feed is another or lost its checkpoint",
            m.stopped.clone(),
        );
        m
    }

    pub(super) fn inc(family: &Family<Kind, Counter>, kind: &'static str) {
        Self::inc_by(family, kind, 1);
    }

    pub(super) fn inc_by(family: &Family<Kind, Counter>, kind: &'static str, n: u64) {
        family.get_or_create(&Kind { kind }).inc_by(n);
    }
}
