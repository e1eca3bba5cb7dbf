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
mod lease;
mod metrics;
pub mod page;
mod routes;
pub mod store;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::AnyConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

pub use backoff::Backoff;
pub use client::{ClientLimits, FeedClient, FetchError};
pub use lease::LeaseReport;
pub use metrics::ConsumerMetrics;
pub use page::{FeedEntry, FeedPage};
pub use routes::router;

use crate::clock::{from_micros, rfc3339};
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

/// How a consumer polls.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Names this consumer in log lines (`invoicing`, `shipping`).
    pub name: String,
    pub feed_url: Url,
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
}

/// How the last poll went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollReport {
    pub at: String,
    /// `ok`, `not-modified`, `error`, or `standby` (another instance holds the lease).
    pub status: &'static str,
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
}

/// Why a poll stopped early.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Feed(String),
    #[error(transparent)]
    Db(#[from] Error),
    #[error("{0}")]
    Fenced(String),
    #[error("shutting down")]
    Cancelled,
}

impl PollError {
    /// The `kind` label of `consumer_poll_errors`.
    fn kind(&self) -> &'static str {
        match self {
            PollError::Fetch(FetchError::Transient(_)) => "transient",
            PollError::Fetch(FetchError::Permanent(_)) => "permanent",
            PollError::Feed(_) => "feed",
            PollError::Db(_) => "database",
            PollError::Fenced(_) => "fenced",
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

/// A poll's worth of pages, newest first; middle pages may be dropped from memory and fetched
/// again (archives are immutable) to bound memory during a long catch-up.
enum Slot {
    Parsed(FeedPage),
    Dropped(Url, usize),
}

/// Whether entries are handled as new (after the checkpoint) or replayed (older pages again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    /// Never moves the checkpoint backwards.
    Replay,
}

/// Attempts at one older page within a poll before the poll gives up (and the next starts).
const MAX_PAGE_ATTEMPTS: u32 = 20;

/// Pages kept parsed during a walk back; beyond this, archive pages are fetched again.
const MAX_PARSED_PAGES: usize = 256;

/// Most entries applied in one transaction (whatever is fetched and ready, up to this).
const MAX_BATCH: usize = 256;

impl<P: Projection> Consumer<P> {
    pub fn new(
        db: Db,
        projection: P,
        settings: ConsumerSettings,
        metrics: ConsumerMetrics,
        shutdown: CancellationToken,
    ) -> Result<Consumer<P>, Error> {
        let client = FeedClient::new(&settings.feed_url, settings.limits.clone())?;
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
                let waited = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.inner.wake.notified() => continue,
                    w = self.inner.client.wait_for_change(&settings.feed_url, &validators, wait) => w,
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
                status: "standby",
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
                status: "ok",
                detail: None,
                handled,
            },
            Ok(false) => PollReport {
                at,
                status: "not-modified",
                detail: None,
                handled,
            },
            Err(e) => {
                ConsumerMetrics::inc(&self.inner.metrics.poll_errors, e.kind());
                if !matches!(e, PollError::Cancelled) {
                    tracing::warn!(feed = %self.inner.settings.feed_url, error = %e, "poll failed");
                }
                PollReport {
                    at,
                    status: "error",
                    detail: Some(e.to_string()),
                    handled,
                }
            }
        };
        let m = &self.inner.metrics;
        ConsumerMetrics::inc(&m.polls, report.status);
        if handled > 0 || report.status == "error" {
            if let Ok(n) = store::parked_count(&self.inner.db).await {
                m.parked.set(n);
            }
        }
        if let Ok(checkpoint) = store::checkpoint(&self.inner.db).await {
            let status = lock(&self.inner.status);
            m.lag_entries.set(status.pending as i64);
            m.lag_seconds
                .set((status.head_updated_us - checkpoint.entry_updated_us).max(0) as f64 / 1e6);
        }
        let mut status = lock(&self.inner.status);
        if report.status == "error" {
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        } else {
            status.consecutive_failures = 0;
        }
        status.last = Some(report.clone());
        report
    }

    /// Returns whether the feed had changed.
    async fn poll_once(
        &self,
        validators: &mut client::Validators,
        handled: &mut u64,
        head: Option<client::Fetched>,
    ) -> Result<bool, PollError> {
        let feed_url = &self.inner.settings.feed_url;
        let head = match head {
            Some(head) => head,
            None => match self.inner.client.page(feed_url, validators).await? {
                client::Conditional::NotModified => return Ok(false),
                client::Conditional::Modified(f) => f,
            },
        };
        let head_page = page::parse(&head.url, &head.body).map_err(PollError::Feed)?;
        if let Some(newest) = head_page.entries.last() {
            lock(&self.inner.status).head_updated_us = newest.updated_us;
        }
        let checkpoint = store::checkpoint(&self.inner.db).await?;
        let (slots, found) = self
            .walk_back(head_page, checkpoint.entry_id.as_deref())
            .await?;
        if checkpoint.entry_id.is_some() && !found {
            tracing::warn!(
                checkpoint = checkpoint.entry_id.as_deref().unwrap_or_default(),
                "checkpoint not found in the feed; re-reading from the first page \
                 (entries already handled are skipped)"
            );
        }
        let pending: usize = slots
            .iter()
            .map(|s| match s {
                Slot::Parsed(p) => p.entries.len(),
                Slot::Dropped(_, n) => *n,
            })
            .sum();
        lock(&self.inner.status).pending = pending as u64;
        // Oldest first; only the oldest page holds the checkpoint, so start after it there.
        let mut slots: Vec<Slot> = slots.into_iter().rev().collect();
        let after = match (&checkpoint.entry_id, slots.first(), found) {
            (Some(id), Some(Slot::Parsed(oldest)), true) => oldest.position_of(id),
            _ => None,
        };
        if let (Some(index), Some(Slot::Parsed(oldest))) = (after, slots.first_mut()) {
            oldest.entries.drain(..=index);
            self.subtract_pending(index as u64 + 1);
        }
        *handled += self.handle(slots, Direction::Forward).await?;
        *validators = head.validators;
        Ok(true)
    }

    /// Walks `prev-archive` links from the head until a page holds `checkpoint` or there is no
    /// older page. Returns the pages newest first, and whether the checkpoint was found.
    async fn walk_back(
        &self,
        head: FeedPage,
        checkpoint: Option<&str>,
    ) -> Result<(Vec<Slot>, bool), PollError> {
        let mut visited = HashSet::from([head.url.clone()]);
        let mut slots = vec![Slot::Parsed(head)];
        let mut parsed = 1;
        loop {
            let Some(Slot::Parsed(top)) = slots.last() else {
                return Err(PollError::Feed("walk back lost its page".into()));
            };
            if checkpoint.is_some_and(|id| top.position_of(id).is_some()) {
                return Ok((slots, true));
            }
            let Some(prev) = top.prev_archive.clone() else {
                return Ok((slots, false));
            };
            if !visited.insert(prev.clone()) {
                return Err(PollError::Feed(format!(
                    "prev-archive links loop at {prev}"
                )));
            }
            let page = self.fetch_page(&prev).await?;
            if self.inner.shutdown.is_cancelled() {
                return Err(PollError::Cancelled);
            }
            slots.push(Slot::Parsed(page));
            parsed += 1;
            if parsed > MAX_PARSED_PAGES {
                // Drop the newest archive still held (never the head, never the top).
                if let Some(slot) = slots
                    .iter_mut()
                    .skip(1)
                    .find(|s| matches!(s, Slot::Parsed(_)))
                {
                    if let Slot::Parsed(p) = slot {
                        *slot = Slot::Dropped(p.url.clone(), p.entries.len());
                    }
                    parsed -= 1;
                }
            }
        }
    }

    /// Fetches an older page, retrying transient failures: a long walk through archives must
    /// not start over because one of many requests failed.
    async fn fetch_page(&self, url: &Url) -> Result<FeedPage, PollError> {
        let mut attempt = 0;
        let fetched = loop {
            match self
                .inner
                .client
                .page(url, &client::Validators::default())
                .await
            {
                Ok(client::Conditional::Modified(f)) => break f,
                Ok(client::Conditional::NotModified) => {
                    return Err(PollError::Feed(format!(
                        "{url}: 304 to an unconditional request"
                    )))
                }
                Err(FetchError::Transient(reason)) if attempt < MAX_PAGE_ATTEMPTS => {
                    attempt += 1;
                    ConsumerMetrics::inc(&self.inner.metrics.retries, "page");
                    let delay = self.inner.settings.backoff.delay(attempt);
                    tracing::warn!(%url, attempt, error = %reason, ?delay, "page fetch failed; retrying");
                    self.sleep(delay).await?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        page::parse(&fetched.url, &fetched.body).map_err(PollError::Feed)
    }

    /// Handles the entries of `pages` (oldest first) as one pipeline: a separate task fetches
    /// dropped pages again and details a few at a time, so fetching goes on while a batch is
    /// being written; batches of whatever is ready are applied strictly in feed order, one
    /// transaction per batch.
    async fn handle(&self, pages: Vec<Slot>, direction: Direction) -> Result<u64, PollError> {
        let concurrency = self.inner.settings.concurrency.max(1);
        let (ready, mut fetched) = tokio::sync::mpsc::channel(MAX_BATCH);
        let this = self.clone();
        let _fetcher = AbortOnDrop(tokio::spawn(async move {
            let entries = futures::stream::iter(pages)
                .then(|slot| {
                    let this = this.clone();
                    async move {
                        match slot {
                            Slot::Parsed(page) => Ok(page),
                            Slot::Dropped(url, _) => this.fetch_page(&url).await,
                        }
                    }
                })
                .flat_map(|page| match page {
                    Ok(page) => {
                        futures::stream::iter(page.entries.into_iter().map(Ok).collect::<Vec<_>>())
                    }
                    Err(e) => futures::stream::iter(vec![Err(e)]),
                });
            let fetches = entries
                .map(|entry| {
                    let this = this.clone();
                    async move {
                        let entry = entry?;
                        let details = this.details(&entry).await?;
                        Ok::<_, PollError>((entry, details))
                    }
                })
                .buffered(concurrency);
            let mut fetches = std::pin::pin!(fetches);
            while let Some(item) = fetches.next().await {
                let failed = item.is_err();
                if ready.send(item).await.is_err() || failed {
                    break;
                }
            }
        }));
        let mut handled = 0;
        while let Some(first) = fetched.recv().await {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut next = Some(first);
            while let Some(item) = next {
                batch.push(item?);
                next = if batch.len() < MAX_BATCH {
                    fetched.try_recv().ok()
                } else {
                    None
                };
            }
            if self.inner.shutdown.is_cancelled() {
                return Err(PollError::Cancelled);
            }
            let started = std::time::Instant::now();
            self.apply_with_retry(&batch, direction).await?;
            tracing::debug!(entries = batch.len(), took = ?started.elapsed(), "batch applied");
            handled += batch.len() as u64;
            self.subtract_pending(batch.len() as u64);
        }
        Ok(handled)
    }

    /// Fetches and checks the details of `entry`, retrying transient failures until they pass
    /// or shutdown. The inner `Err` is a permanent failure: the reason to park the entry.
    async fn details(&self, entry: &FeedEntry) -> Result<Result<P::Details, String>, PollError> {
        let url = match &entry.link {
            Ok(url) => url,
            Err(reason) => return Ok(Err(reason.clone())),
        };
        if !self.inner.client.allowed(url) {
            return Ok(Err(format!("link {url} is not on the feed's origin")));
        }
        let mut attempt = 0;
        loop {
            match self.inner.client.details(url).await {
                Ok(fetched) => {
                    let parsed = serde_json::from_slice::<P::Details>(&fetched.body)
                        .map_err(|e| format!("{url}: details do not parse: {e}"))
                        .and_then(|d| {
                            self.inner
                                .projection
                                .check(&d)
                                .map(|()| d)
                                .map_err(|r| format!("{url}: {r}"))
                        });
                    return Ok(parsed);
                }
                Err(FetchError::Permanent(reason)) => return Ok(Err(reason)),
                Err(FetchError::Transient(reason)) => {
                    attempt += 1;
                    ConsumerMetrics::inc(&self.inner.metrics.retries, "details");
                    let delay = self.inner.settings.backoff.delay(attempt);
                    tracing::warn!(entry_id = %entry.id, attempt, error = %reason, ?delay, "details fetch failed; retrying");
                    self.sleep(delay).await?;
                }
            }
        }
    }

    /// Applies a batch; a database failure is retried (the transaction rolled back whole).
    async fn apply_with_retry(
        &self,
        batch: &[(FeedEntry, Result<P::Details, String>)],
        direction: Direction,
    ) -> Result<(), PollError> {
        let mut attempt = 0;
        loop {
            match self.apply(batch, direction).await {
                Ok(()) => return Ok(()),
                Err(Error::Fenced(reason)) => return Err(PollError::Fenced(reason)),
                Err(e) => {
                    attempt += 1;
                    ConsumerMetrics::inc(&self.inner.metrics.retries, "apply");
                    let delay = self.inner.settings.backoff.delay(attempt);
                    let first = batch
                        .first()
                        .map(|(e, _)| e.id.as_str())
                        .unwrap_or_default();
                    tracing::warn!(entry_id = %first, entries = batch.len(), attempt, error = %e, "applying failed; retrying");
                    self.sleep(delay).await?;
                }
            }
        }
    }

    /// One transaction for a batch: the local copies (or parked entries) of the entries not
    /// handled before, their handled records, then the checkpoint. All or nothing. A few
    /// statements per batch rather than per entry: SQLite statements cost tens of µs each.
    async fn apply(
        &self,
        batch: &[(FeedEntry, Result<P::Details, String>)],
        direction: Direction,
    ) -> Result<(), Error> {
        let mut tx = self.inner.db.begin_write().await?;
        self.inner.lease.check(tx.conn()).await?;
        let seq = store::handled_count(tx.conn()).await?;
        let ids: Vec<&str> = batch.iter().map(|(e, _)| e.id.as_str()).collect();
        let mut seen = store::already_handled(tx.conn(), &ids).await?;
        // Redelivered entries and ids repeated within the batch are no-ops.
        let fresh: Vec<&(FeedEntry, Result<P::Details, String>)> = batch
            .iter()
            .filter(|(e, _)| seen.insert(e.id.clone()))
            .collect();
        let good: Vec<&P::Details> = fresh.iter().filter_map(|(_, d)| d.as_ref().ok()).collect();
        let mut outcomes = self
            .inner
            .projection
            .apply(tx.conn(), &good)
            .await?
            .into_iter();
        let now_us = chrono::Utc::now().timestamp_micros();
        let mut records = Vec::with_capacity(fresh.len());
        for (entry, details) in &fresh {
            let (outcome, what) = match details {
                Ok(d) => {
                    let outcome = match outcomes.next() {
                        Some(Outcome::Applied) => "applied",
                        Some(Outcome::Stale) => "stale",
                        None => {
                            return Err(Error::Feed("projection returned too few outcomes".into()))
                        }
                    };
                    (outcome, P::describe(d))
                }
                Err(reason) => {
                    store::park(tx.conn(), entry, reason, now_us).await?;
                    ("parked", reason.clone())
                }
            };
            records.push((entry, outcome, what));
        }
        let handled: Vec<(&str, &str)> = records
            .iter()
            .map(|(e, o, _)| (e.id.as_str(), *o))
            .collect();
        store::record_handled(tx.conn(), &handled, seq, now_us).await?;
        let seq = seq + handled.len() as i64;
        match (direction, batch.last()) {
            // Past the whole batch, repeated ids included.
            (Direction::Forward, Some((last, _))) => {
                store::advance_to(tx.conn(), last, seq, now_us).await?
            }
            // Never backwards: only the count of handled entries changes.
            _ => store::set_handled_count(tx.conn(), seq).await?,
        }
        tx.commit().await?;
        for (entry, outcome, what) in records {
            ConsumerMetrics::inc(&self.inner.metrics.entries, outcome);
            if outcome == "parked" {
                tracing::warn!(entry_id = %entry.id, reason = %what, "entry parked");
            } else {
                tracing::info!(entry_id = %entry.id, %what, outcome, "entry handled");
            }
        }
        Ok(())
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
    }

    /// Handles every entry of the page at `url` again, ignoring the checkpoint: entries already
    /// handled are skipped, so this changes nothing unless something was missed.
    pub async fn replay(&self, url: &Url) -> Result<u64, Error> {
        let _polling = self.inner.polling.lock().await;
        self.ensure_lease().await?;
        let page = self
            .fetch_page(url)
            .await
            .map_err(|e| Error::Feed(e.to_string()))?;
        self.handle(vec![Slot::Parsed(page)], Direction::Replay)
            .await
            .map_err(|e| Error::Feed(e.to_string()))
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
                    Ok(f) => serde_json::from_slice::<P::Details>(&f.body)
                        .map_err(|e| format!("{url}: details do not parse: {e}"))
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
        }
        tracing::info!(name = %self.inner.settings.name, "local copies dropped; re-reading the feed");
        let report = self.poll().await;
        if report.status == "error" {
            return Err(Error::Feed(format!(
                "rebuild could not read the feed: {}",
                report.detail.as_deref().unwrap_or("unknown error")
            )));
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
                entries: status.pending,
                seconds: lag_seconds,
            },
            parked: ParkedReport {
                count: parked_count,
                entries: parked,
            },
        })
    }
}

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
}

#[derive(Debug, Serialize)]
pub struct ParkedReport {
    pub count: i64,
    /// The 50 most recently parked.
    pub entries: Vec<store::Parked>,
}

/// Stops the background fetcher when a poll ends early.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The status is plain data; a panic elsewhere cannot leave it inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
