//! Configuration values shared by every service.

use std::time::Duration;

/// Parses durations written like `250ms`, `1s`, `2m` (the contract's format).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_contract_format() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }
}

/// Configuration every feed-consuming service takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerArgs {
    /// The feed to consume (its subscription document; default: the service's own, e.g. the
    /// local order service's).
    #[arg(long, env = "FEED_URL")]
    pub feed_url: Option<url::Url>,
    /// Time between polls of the feed head.
    #[arg(long, env = "POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Long-poll the feed head for up to this long (`Prefer: wait`); `0s` polls plainly.
    /// Servers that ignore it are polled every POLL_INTERVAL.
    #[arg(long, env = "LONG_POLL", default_value = "20s", value_parser = parse_duration)]
    pub long_poll: Duration,
    /// Total time allowed for one outbound request, body included.
    #[arg(long, env = "HTTP_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub http_timeout: Duration,
    /// Time allowed to connect to the feed's server.
    #[arg(long, env = "HTTP_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub http_connect_timeout: Duration,
    /// First delay before retrying a failed request; doubles on each failure.
    #[arg(long, env = "RETRY_BASE", default_value = "100ms", value_parser = parse_duration)]
    pub retry_base: Duration,
    /// Longest delay between retries.
    #[arg(long, env = "RETRY_MAX", default_value = "30s", value_parser = parse_duration)]
    pub retry_max: Duration,
    /// Postgres, several instances: a lease not renewed for this long passes to another
    /// instance.
    #[arg(long, env = "LEASE_TTL", default_value = "5s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// Details documents fetched at once while catching up (applied in feed order anyway).
    /// 32: a 100 000-entry catch-up by link took 11.2–12.3 s at 32 against 13.7–14.2 s at 16
    /// side by side, at a peak of 35–36 MB (33 MB at 16, 39 MB at 64; the 64 MB target under
    /// load). What had looked like ~0.8 MB per fetch in flight was sqlx keeping a prepared
    /// statement per remainder size (BENCHMARKS.md, 2026-12-03 (later)).
    #[arg(long, env = "FETCH_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub fetch_concurrency: u16,
    /// Handled entries remembered one by one (the newest); older ones are remembered by a
    /// watermark on `atom:updated`. Keep it above the entries of the largest page.
    #[arg(long, env = "KEEP_HANDLED", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(100..))]
    pub keep_handled: u32,
    /// Where entry details come from: `inline` uses details the feed carries in its entries
    /// (following the head's inline-details representation when it has one) and fetches the
    /// link otherwise; `link` always fetches the link.
    #[arg(long, env = "DETAILS", default_value = "inline", value_enum)]
    pub details: crate::consumer::DetailsMode,
}

impl ConsumerArgs {
    /// The consumer settings for the service called `name`, reading `feed_url` unless
    /// another was configured.
    pub fn settings(&self, name: &str, feed_url: url::Url) -> crate::consumer::ConsumerSettings {
        crate::consumer::ConsumerSettings {
            name: name.to_owned(),
            feed_url: self.feed_url.clone().unwrap_or(feed_url),
            details: self.details,
            poll_interval: self.poll_interval,
            long_poll: (!self.long_poll.is_zero()).then_some(self.long_poll),
            limits: crate::consumer::ClientLimits {
                connect_timeout: self.http_connect_timeout,
                timeout: self.http_timeout,
                ..crate::consumer::ClientLimits::default()
            },
            backoff: crate::consumer::Backoff {
                base: self.retry_base,
                max: self.retry_max,
            },
            concurrency: usize::from(self.fetch_concurrency),
            lease_ttl: self.lease_ttl,
            keep_handled: self.keep_handled as usize,
        }
    }

    /// Defaults for consuming `feed_url` (as the all-in-one mode and tests do).
    pub fn for_feed(feed_url: url::Url) -> ConsumerArgs {
        ConsumerArgs {
            feed_url: Some(feed_url),
            poll_interval: Duration::from_secs(1),
            long_poll: Duration::from_secs(20),
            http_timeout: Duration::from_secs(5),
            http_connect_timeout: Duration::from_secs(1),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            fetch_concurrency: 32,
            lease_ttl: Duration::from_secs(5),
            keep_handled: 10_000,
            details: crate::consumer::DetailsMode::Inline,
        }
    }
}
