//! Consuming an Atom feed (RFC 4287) paged with RFC 5005 archives, exactly once in effect.
//!
//! A [`Consumer`] polls the subscription document with the validators it last received. On a
//! change it walks `prev-archive` links back to the page holding its checkpoint, then handles
//! the new entries oldest first. For each entry it fetches the details document by the entry's
//! link (only on the feed's origin), and in one transaction lets the [`Projection`] update the
//! local copy, records the entry as handled and advances the checkpoint. Transient failures are
//! retried with backoff and never skip an entry; permanent ones park the entry.
//!
//! A service reuses this by supplying a [`Projection`]: its details type, a check, and its SQL.

mod backoff;
pub mod client;
pub mod copies;
pub mod details;
mod forward;
mod lease;
mod metrics;
pub mod page;
mod pipeline;
mod report;
mod routes;
pub mod store;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::AnyConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use futures::StreamExt;
use pipeline::Direction;

pub use backoff::Backoff;
pub use client::{ClientLimits, FeedClient, FetchError};
pub use lease::LeaseReport;
pub use metrics::ConsumerMetrics;
pub use page::{FeedEntry, FeedPage};
pub use report::{CheckpointReport, ConsumerReport, Lag, ParkedReport, RetryResult};
pub use routes::router;

use crate::clock::rfc3339;
use crate::db::Db;
use crate::Error;

/// What a projection did with a details document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The local copy was created or updated.
    Applied,
    /// The local copy already holds this or a newer version.
    Stale,
}

/// A consumer's view of the details documents and how it keeps its local copy.
pub trait Projection: Send + Sync + 'static {
    /// The details document as this consumer reads it.
    type Details: DeserializeOwned + Send + Sync + 'static;

    /// Refuses documents that parse but make no sense; the entry is parked with the reason.
    fn check(&self, details: &Self::Details) -> Result<(), String>;

    /// Writes the local copies of a batch of documents (in feed order) inside the consumer's
    /// transaction, and says what happened to each. Must let no older version overwrite a
    /// newer one, also within the batch (the same order may appear twice).
    fn apply(
        &self,
        conn: &mut AnyConnection,
        batch: &[&Self::Details],
    ) -> impl Future<Output = Result<Vec<Outcome>, sqlx::Error>> + Send;

    /// Deletes every local copy, for a rebuild from the whole feed.
    fn reset(
        &self,
        conn: &mut AnyConnection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// A few words for log lines, e.g. `order 42 version 2`.
    fn describe(details: &Self::Details) -> String;
}

/// Where a consumer takes each entry's details from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetailsMode {
    /// From the entry when it carries them inline (and from the feed's inline-details
    /// representation when its head advertises one), else by the entry's link.
    Inline,
    /// Always by the entry's link, one request per entry.
    Link,
}

impl DetailsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DetailsMode::Inline => "inline",
            DetailsMode::Link => "link",
        }
    }
}

/// How a consumer polls.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Names this consumer in log lines (`invoicing`, `shipping`).
    pub name: String,
    /// The feed as configured; see [`Consumer::polled_url`] for the representation polled.
    pub feed_url: Url,
    pub details: DetailsMode,
    pub poll_interval: Duration,
    /// Long-poll the head for up to this long between polls (`None`: plain polling).
    pub long_poll: Option<Duration>,
    pub limits: ClientLimits,
    /// Backoff of retried requests and of polls after failures.
    pub backoff: Backoff,
    /// Details documents fetched at once during catch-up (applied in feed order regardless).
    pub concurrency: usize,
    /// How long a lease lasts without renewal (Postgres, several instances): another instance
    /// takes over within about this long after the active one dies.
    pub lease_ttl: Duration,
    /// Rows of `consumer_handled` kept (the newest handlings); older ones are pruned below a
    /// watermark, so the table stays bounded however long the feed grows.
    pub keep_handled: usize,
}

/// What a poll came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollStatus {
    /// The feed had changed and every new entry was handled.
    Ok,
    /// The head was unchanged (`304`).
    NotModified,
    /// The poll failed; it is retried with backoff.
    Error,
    /// Another instance holds the lease.
    Standby,
    /// The consumer cannot be sure its copies would stay right and applies nothing until an
    /// operator decides (see [`Stop`]).
    Stopped,
}

impl PollStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PollStatus::Ok => "ok",
            PollStatus::NotModified => "not-modified",
            PollStatus::Error => "error",
            PollStatus::Standby => "standby",
            PollStatus::Stopped => "stopped",
        }
    }

    /// Whether the next poll waits with backoff.
    fn failed(self) -> bool {
        matches!(self, PollStatus::Error | PollStatus::Stopped)
    }
}

impl std::fmt::Display for PollStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a consumer stopped applying entries. Each is the feed telling it something that no
/// retry can fix and no guess can make safe; `rebuild` (or restoring the old feed) resolves it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// The feed at the URL is not the one the checkpoint belongs to.
    #[error(
        "the feed at {url} is another feed (atom:id {found:?}, the checkpoint belongs to \
         {expected:?}); its entries would be mixed into copies of the old feed, so nothing is \
         applied: rebuild to start over from the new feed"
    )]
    OtherFeed {
        url: String,
        expected: String,
        found: String,
    },
    /// The feed no longer holds the revision the checkpoint names.
    #[error(
        "the checkpoint, entry {entry_id:?} updated {updated}, is no longer in the feed at \
         {url} (reset, or restored from an older state?); nothing is applied: rebuild to start \
         over from the feed as it is"
    )]
    CheckpointLost {
        url: String,
        entry_id: String,
        updated: String,
    },
}

impl Stop {
    /// The `kind` label of `consumer_poll_errors`.
    fn kind(&self) -> &'static str {
        match self {
            Stop::OtherFeed { .. } => "other-feed",
            Stop::CheckpointLost { .. } => "checkpoint-lost",
        }
    }
}

/// How the last poll went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollReport {
    pub at: String,
    pub status: PollStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Entries handled by this poll (parked ones included).
    pub handled: u64,
}

#[derive(Debug, Default)]
struct Status {
    last: Option<PollReport>,
    consecutive_failures: u32,
    /// `updated` of the newest entry seen in the head.
    head_updated_us: i64,
    /// Entries seen but not handled yet.
    pending: u64,
    /// Entries in pages not read yet, estimated while reading forward (pages counted by
    /// their numbered URLs, times the entries of the page before).
    unread: u64,
    /// Why the consumer stopped, while the head stays as it was when it did.
    stopped: Option<Stop>,
    /// (time µs, entries pending), at most one per second, the last [`LAG_HISTORY`].
    lag_history: std::collections::VecDeque<(i64, u64)>,
}

/// Lag samples kept: ten minutes at one per second at most.
const LAG_HISTORY: usize = 600;

impl Status {
    /// Entries behind: seen and not handled, and estimated in pages not read yet.
    fn behind(&self) -> u64 {
        self.pending + self.unread
    }

    /// Records the lag now, unless a sample was taken within the last second.
    fn sample_lag(&mut self) {
        let now = chrono::Utc::now().timestamp_micros();
        if self
            .lag_history
            .back()
            .is_some_and(|(at, _)| now - at < 1_000_000)
        {
            let behind = self.behind();
            if let Some(last) = self.lag_history.back_mut() {
                last.1 = last.1.max(behind);
            }
            return;
        }
        self.lag_history.push_back((now, self.behind()));
        if self.lag_history.len() > LAG_HISTORY {
            self.lag_history.pop_front();
        }
    }
}

/// Why a poll stopped early.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    /// A page is not a feed document the consumer can accept (the parser's reason).
    #[error("{0}")]
    Refused(String),
    /// Following archive links came back to a page already read.
    #[error("archive links loop at {0}")]
    ArchiveLoop(Url),
    /// Reading forward from the oldest archive met a page that does not continue the chain
    /// (the walk back is used instead).
    #[error("{0}")]
    ForwardBroken(String),
    /// A server answered `304` to a request that had no validators.
    #[error("{0}: 304 to an unconditional request")]
    UnaskedNotModified(Url),
    #[error(transparent)]
    Db(#[from] Error),
    #[error("{0}")]
    Fenced(String),
    #[error("stopped: {0}")]
    Stopped(Stop),
    #[error("shutting down")]
    Cancelled,
}

impl PollError {
    /// The `kind` label of `consumer_poll_errors`.
    fn kind(&self) -> &'static str {
        match self {
            PollError::Fetch(FetchError::Transient(_)) => "transient",
            PollError::Fetch(FetchError::Permanent(_)) => "permanent",
            PollError::Refused(_)
            | PollError::ArchiveLoop(_)
            | PollError::ForwardBroken(_)
            | PollError::UnaskedNotModified(_) => "feed",
            PollError::Db(_) => "database",
            PollError::Fenced(_) => "fenced",
            PollError::Stopped(stop) => stop.kind(),
            PollError::Cancelled => "cancelled",
        }
    }
}

struct Inner<P: Projection> {
    db: Db,
    lease: lease::Lease,
    metrics: ConsumerMetrics,
    projection: P,
    client: FeedClient,
    settings: ConsumerSettings,
    /// Held for a whole poll: one poll at a time. Holds the validators of the last complete
    /// poll, which are only replaced once every entry it found was handled.
    polling: tokio::sync::Mutex<client::Validators>,
    /// The subscription document polled: the configured one, or its inline-details
    /// alternate once the head advertised it (details `inline`).
    polled_url: Mutex<Url>,
    status: Mutex<Status>,
    wake: Notify,
    shutdown: CancellationToken,
}

/// A feed consumer. Cheap to clone.
pub struct Consumer<P: Projection> {
    inner: Arc<Inner<P>>,
}

impl<P: Projection> Clone for Consumer<P> {
    fn clone(&self) -> Self {
        Consumer {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Projection> Consumer<P> {
    pub fn new(
        db: Db,
        projection: P,
        settings: ConsumerSettings,
        metrics: ConsumerMetrics,
        shutdown: CancellationToken,
    ) -> Result<Consumer<P>, Error> {
        let client = FeedClient::new(&settings.feed_url, settings.limits.clone())?
            .with_reader(&settings.name);
        let polled_url = Mutex::new(settings.feed_url.clone());
        let lease = lease::Lease::new(db.clone(), &settings.name, settings.lease_ttl)?;
        Ok(Consumer {
            inner: Arc::new(Inner {
                db,
                lease,
                metrics,
                projection,
                client,
                settings,
                polling: tokio::sync::Mutex::new(client::Validators::default()),
                polled_url,
                status: Mutex::new(Status::default()),
                wake: Notify::new(),
                shutdown,
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn settings(&self) -> &ConsumerSettings {
        &self.inner.settings
    }

    /// The subscription document this consumer polls (see [`DetailsMode::Inline`]).
    pub fn polled_url(&self) -> Url {
        lock(&self.inner.polled_url).clone()
    }

    /// Keeps the lease and polls every interval (longer after failures, shorter with long
    /// polling) until shutdown; then gives the lease up.
    pub async fn run(self) {
        let span = tracing::info_span!("consumer", name = %self.inner.settings.name);
        let keeper = self.clone().keep_lease();
        let poller = self.run_loop();
        async move {
            tokio::join!(keeper, poller);
        }
        .instrument(span)
        .await
    }

    async fn keep_lease(self) {
        let shutdown = self.inner.shutdown.clone();
        let lease = &self.inner.lease;
        loop {
            if let Err(e) = lease.tick().await {
                tracing::warn!(error = %e, "cannot renew or take the lease");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(lease.ttl() / 3) => {},
            }
        }
        lease.release().await;
    }

    async fn run_loop(self) {
        let shutdown = self.inner.shutdown.clone();
        let settings = &self.inner.settings;
        let mut long_poll = settings.long_poll;
        let mut lease = self.inner.lease.changes();
        // A head a long poll brought back, fresher than what a cache in between may serve.
        let mut fresh_head = None;
        while !shutdown.is_cancelled() {
            if lease.borrow_and_update().is_none() {
                // Standby: another instance applies entries.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = lease.changed() => {},
                }
                continue;
            }
            self.poll_with(fresh_head.take()).await;
            let failures = lock(&self.inner.status).consecutive_failures;
            let mut pause = settings.poll_interval;
            if failures > 0 {
                pause = settings.backoff.delay(failures).max(settings.poll_interval);
            } else if let Some(wait) = long_poll {
                let validators = self.inner.polling.lock().await.clone();
                let polled = self.polled_url();
                let waited = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.inner.wake.notified() => continue,
                    w = self.inner.client.wait_for_change(&polled, &validators, wait) => w,
                };
                match waited {
                    Ok(client::Waited::Changed(head)) => {
                        fresh_head = Some(head);
                        continue;
                    }
                    Ok(client::Waited::Unchanged) => continue,
                    Ok(client::Waited::Unsupported) => {
                        tracing::info!(
                            "the feed server does not long-poll; polling every {:?}",
                            settings.poll_interval
                        );
                        long_poll = None;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "long poll failed");
                        pause = settings.backoff.delay(1).max(settings.poll_interval);
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {},
                _ = self.inner.wake.notified() => {},
            }
        }
        tracing::info!(feed = %self.inner.settings.feed_url, "consumer stopped");
    }

    /// Polls once now and reports how it went.
    pub async fn poll(&self) -> PollReport {
        self.poll_with(None).await
    }

    /// Polls, starting from `head` when a long poll already fetched it.
    async fn poll_with(&self, head: Option<client::Fetched>) -> PollReport {
        let span = tracing::info_span!("consumer", name = %self.inner.settings.name);
        self.poll_inner(head).instrument(span).await
    }

    async fn poll_inner(&self, head: Option<client::Fetched>) -> PollReport {
        // Without a running keeper (a manual poll, a one-off command), take a free lease now.
        if self.inner.lease.fence().is_none() && !self.inner.lease.tick().await.unwrap_or(false) {
            return PollReport {
                at: rfc3339(chrono::Utc::now()),
                status: PollStatus::Standby,
                detail: Some("another instance holds the lease".into()),
                handled: 0,
            };
        }
        let mut validators = self.inner.polling.lock().await;
        let mut handled = 0;
        let result = self.poll_once(&mut validators, &mut handled, head).await;
        let at = rfc3339(chrono::Utc::now());
        let report = match result {
            Ok(true) => PollReport {
                at,
                status: PollStatus::Ok,
                detail: None,
                handled,
            },
            Ok(false) => PollReport {
                at,
                status: PollStatus::NotModified,
                detail: None,
                handled,
            },
            Err(PollError::Stopped(stop)) => {
                ConsumerMetrics::inc(&self.inner.metrics.poll_errors, stop.kind());
                tracing::error!(feed = %self.inner.settings.feed_url, reason = %stop, "consumer stopped");
                PollReport {
                    at,
                    status: PollStatus::Stopped,
                    detail: Some(stop.to_string()),
                    handled,
                }
            }
            Err(e) => {
                ConsumerMetrics::inc(&self.inner.metrics.poll_errors, e.kind());
                if !matches!(e, PollError::Cancelled) {
                    tracing::warn!(feed = %self.inner.settings.feed_url, error = %e, "poll failed");
                }
                PollReport {
                    at,
                    status: PollStatus::Error,
                    detail: Some(e.to_string()),
                    handled,
                }
            }
        };
        let m = &self.inner.metrics;
        ConsumerMetrics::inc(&m.polls, report.status.as_str());
        m.stopped
            .set(i64::from(report.status == PollStatus::Stopped));
        if handled > 0 || report.status == PollStatus::Error {
            if let Ok(n) = store::parked_count(&self.inner.db).await {
                m.parked.set(n);
            }
        }
        if let Ok(checkpoint) = store::checkpoint(&self.inner.db).await {
            let status = lock(&self.inner.status);
            m.lag_entries.set(status.behind() as i64);
            m.lag_seconds
                .set((status.head_updated_us - checkpoint.entry_updated_us).max(0) as f64 / 1e6);
        }
        let mut status = lock(&self.inner.status);
        if report.status.failed() {
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        } else {
            status.consecutive_failures = 0;
        }
        status.last = Some(report.clone());
        status.sample_lag();
        report
    }

    async fn sleep(&self, delay: Duration) -> Result<(), PollError> {
        tokio::select! {
            _ = self.inner.shutdown.cancelled() => Err(PollError::Cancelled),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    fn subtract_pending(&self, n: u64) {
        let mut status = lock(&self.inner.status);
        status.pending = status.pending.saturating_sub(n);
        status.sample_lag();
        // Kept current during a long catch-up, not only when the poll ends.
        self.inner.metrics.lag_entries.set(status.behind() as i64);
    }

    /// Handles every entry of the page at `url` again, ignoring the checkpoint: entries already
    /// handled are skipped, so this changes nothing unless something was missed.
    pub async fn replay(&self, url: &Url) -> Result<u64, Error> {
        let _polling = self.inner.polling.lock().await;
        self.ensure_lease().await?;
        let failed = |e: PollError| Error::ReplayFailed {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let page = self.fetch_page(url).await.map_err(failed)?;
        let pages = futures::stream::iter([Ok(page)]).boxed();
        let mut handled = 0;
        self.handle(pages, Direction::Replay, &mut handled)
            .await
            .map_err(failed)?;
        Ok(handled)
    }

    /// Fetches a parked entry's details once more and applies them if they now pass.
    pub async fn retry_parked(&self, id: i64) -> Result<RetryResult, Error> {
        let _polling = self.inner.polling.lock().await;
        self.ensure_lease().await?;
        let row = store::parked_by_id(&self.inner.db, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no parked entry {id}")))?;
        let details = match Url::parse(&row.link) {
            Ok(url) if self.inner.client.allowed(&url) => {
                match self.inner.client.details(&url).await {
                    Ok(f) => details::parse::<P::Details>(&url, &f.body)
                        .and_then(|d| self.inner.projection.check(&d).map(|()| d)),
                    Err(e) => Err(e.to_string()),
                }
            }
            Ok(url) => Err(format!("link {url} is not on the feed's origin")),
            Err(e) => Err(format!("no usable link {:?}: {e}", row.link)),
        };
        match details {
            Ok(d) => {
                let mut tx = self.inner.db.begin_write().await?;
                self.inner.lease.check(tx.conn()).await?;
                let outcome = self.inner.projection.apply(tx.conn(), &[&d]).await?;
                store::unpark(tx.conn(), &row).await?;
                tx.commit().await?;
                tracing::info!(entry_id = %row.entry_id, what = %P::describe(&d), ?outcome, "parked entry applied");
                Ok(RetryResult {
                    entry_id: row.entry_id,
                    applied: true,
                    reason: None,
                })
            }
            Err(reason) => {
                store::park_again(&self.inner.db, id, &reason).await?;
                Ok(RetryResult {
                    entry_id: row.entry_id,
                    applied: false,
                    reason: Some(reason),
                })
            }
        }
    }

    /// Throws away the local copies, handled entries, parked entries and the checkpoint, then
    /// re-reads the whole feed from its first page. Returns the report of that reading.
    pub async fn rebuild(&self) -> Result<PollReport, Error> {
        self.ensure_lease().await?;
        {
            let mut validators = self.inner.polling.lock().await;
            let mut tx = self.inner.db.begin_write().await?;
            self.inner.projection.reset(tx.conn()).await?;
            store::reset(tx.conn()).await?;
            tx.commit().await?;
            *validators = client::Validators::default();
            lock(&self.inner.status).stopped = None;
        }
        tracing::info!(name = %self.inner.settings.name, "local copies dropped; re-reading the feed");
        let report = self.poll().await;
        if report.status.failed() {
            return Err(Error::RebuildFailed(
                report.detail.unwrap_or_else(|| report.status.to_string()),
            ));
        }
        Ok(report)
    }

    /// Takes the lease if this instance does not hold it and it is free.
    async fn ensure_lease(&self) -> Result<(), Error> {
        if self.inner.lease.fence().is_some() || self.inner.lease.tick().await? {
            Ok(())
        } else {
            Err(Error::Fenced(
                "another instance holds the lease; stop it or wait for it to expire".into(),
            ))
        }
    }

    /// Gives up the lease (graceful stop without the polling loop, which does this itself).
    pub async fn release(&self) {
        self.inner.lease.release().await;
    }

    /// Asks the polling loop to poll now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// The status is plain data; a panic elsewhere cannot leave it inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
