//! One poll's work: walking back through archive pages, fetching details concurrently, and
//! applying them in feed order, a batch per transaction.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, BoxStream, StreamExt};
use url::Url;

use super::{
    client, lock, page, store, Consumer, ConsumerMetrics, FeedEntry, FeedPage, FetchError,
    PollError, Projection, Stop,
};
use crate::Error;
use store::Disposition;

/// A poll's worth of pages, newest first; middle pages may be dropped from memory and fetched
/// again (archives are immutable) to bound memory during a long catch-up.
pub(super) enum Slot {
    Parsed(Box<FeedPage>),
    Dropped(Url, usize),
}

/// Pages to handle, oldest first, each as it is fetched.
pub(super) type Pages = BoxStream<'static, Result<FeedPage, PollError>>;

/// Whether entries are handled as new (after the checkpoint) or replayed (older pages again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Direction {
    /// Moves the checkpoint, recording the feed (its `atom:id`) it belongs to.
    Forward(String),
    /// Never moves the checkpoint backwards.
    Replay,
}

/// The pages a walk back collected, newest first.
pub(super) struct Walk {
    pub slots: Vec<Slot>,
    /// Whether a page holds the checkpoint revision.
    pub found: bool,
    /// Whether a page holds a newer revision of the checkpoint entry.
    pub superseded: bool,
}

/// Attempts at one older page within a poll before the poll gives up (and the next starts).
const MAX_PAGE_ATTEMPTS: u32 = 20;

/// Pages kept parsed during a walk back; beyond this, archive pages are fetched again.
const MAX_PARSED_PAGES: usize = 256;

/// Archive pages fetched again at once during a catch-up.
const PAGE_CONCURRENCY: usize = 4;

/// Most entries applied in one transaction (whatever is fetched and ready, up to this).
const MAX_BATCH: usize = 4096;

impl<P: Projection> Consumer<P> {
    /// Returns whether the feed had changed.
    pub(super) async fn poll_once(
        &self,
        validators: &mut client::Validators,
        handled: &mut u64,
        head: Option<client::Fetched>,
    ) -> Result<bool, PollError> {
        let feed_url = &self.polled_url();
        let head = match head {
            Some(head) => head,
            None => match self.head_or_fall_back(feed_url, validators).await? {
                client::Conditional::NotModified => {
                    // Still the head it stopped at: still stopped.
                    if let Some(stop) = lock(&self.inner.status).stopped.clone() {
                        return Err(PollError::Stopped(stop));
                    }
                    return Ok(false);
                }
                client::Conditional::Modified(f) => f,
            },
        };
        let head_page = page::parse(&head.url, &head.body).map_err(PollError::Refused)?;
        let (head, head_page) = self.follow_inline(head, head_page).await?;
        match self.poll_page(head_page, handled, true).await {
            Err(PollError::Stopped(stop)) => {
                // Re-examined only when the head changes, so a stopped consumer polls cheaply.
                lock(&self.inner.status).stopped = Some(stop.clone());
                *validators = head.validators;
                Err(PollError::Stopped(stop))
            }
            other => {
                other?;
                lock(&self.inner.status).stopped = None;
                *validators = head.validators;
                Ok(true)
            }
        }
    }

    /// A conditional GET of the head polled. When that is an inline-details representation
    /// followed earlier and it now fails for good (gone, refused), the next poll goes back to
    /// the feed as configured.
    async fn head_or_fall_back(
        &self,
        url: &Url,
        validators: &mut client::Validators,
    ) -> Result<client::Conditional, PollError> {
        let fetched = self.inner.client.page(url, validators).await;
        if let Err(FetchError::Permanent(reason)) = &fetched {
            let configured = &self.inner.settings.feed_url;
            if url != configured {
                tracing::warn!(polled = %url, %reason, "the inline-details representation failed; polling the feed as configured");
                *lock(&self.inner.polled_url) = configured.clone();
                *validators = client::Validators::default();
            }
        }
        Ok(fetched?)
    }

    /// With details `inline`, a head that advertises the same feed with details inline (on
    /// the feed's origin) is followed from then on: one request per page instead of one per
    /// entry. Returns the head to work with.
    async fn follow_inline(
        &self,
        head: client::Fetched,
        page: FeedPage,
    ) -> Result<(client::Fetched, FeedPage), PollError> {
        let inline = match &page.inline_alternate {
            Some(url)
                if self.inner.settings.details == super::DetailsMode::Inline
                    && *url != page.url
                    && self.inner.client.allowed(url) =>
            {
                url.clone()
            }
            _ => return Ok((head, page)),
        };
        let fetched = match self
            .inner
            .client
            .page(&inline, &client::Validators::default())
            .await
        {
            Ok(client::Conditional::Modified(f)) => f,
            Ok(client::Conditional::NotModified) => {
                return Err(PollError::UnaskedNotModified(inline))
            }
            Err(FetchError::Permanent(reason)) => {
                // An alternate that does not work is no reason to stop reading the feed.
                tracing::warn!(alternate = %inline, %reason, "the inline-details alternate cannot be read; reading the feed as configured");
                return Ok((head, page));
            }
            Err(transient) => return Err(transient.into()),
        };
        let inline_page = page::parse(&fetched.url, &fetched.body).map_err(PollError::Refused)?;
        if inline_page.feed_id != page.feed_id {
            // Not the same feed after all: keep reading the one configured.
            tracing::warn!(alternate = %inline, "the inline-details alternate is another feed; ignored");
            return Ok((head, page));
        }
        tracing::info!(feed = %page.url, inline = %inline, "following the feed's inline-details representation");
        *lock(&self.inner.polled_url) = inline;
        Ok((fetched, inline_page))
    }

    /// Everything after the head was fetched: the feed's identity, the walk back to the
    /// checkpoint (or, with nothing handled yet and `forward`, reading forward), and handling
    /// what is new.
    async fn poll_page(
        &self,
        head_page: FeedPage,
        handled: &mut u64,
        forward: bool,
    ) -> Result<(), PollError> {
        if let Some(newest) = head_page.entries.last() {
            lock(&self.inner.status).head_updated_us = newest.updated_us;
        }
        let checkpoint = store::checkpoint(&self.inner.db).await?;
        if let Some(id) = &checkpoint.entry_id {
            self.inner.client.set_checkpoint(id);
        }
        // RFC 4287 §4.2.6: an atom:id is permanent and universally unique, so another id is
        // another feed, whatever URL it is served at.
        if let Some(expected) = &checkpoint.feed_id {
            if *expected != head_page.feed_id {
                return Err(PollError::Stopped(Stop::OtherFeed {
                    url: head_page.url.to_string(),
                    expected: expected.clone(),
                    found: head_page.feed_id.clone(),
                }));
            }
        }
        let feed_id = head_page.feed_id.clone();
        let anchor = checkpoint
            .entry_id
            .as_deref()
            .map(|id| (id, checkpoint.entry_updated_us));
        let head_page = match anchor {
            // Nothing handled yet: read forward from the oldest archive when the head names
            // one that checks out, each page once.
            None if forward => match self.first_archive(&head_page).await? {
                Some(first) => {
                    tracing::info!(first = %first.url, "reading the feed forward from its oldest archive");
                    lock(&self.inner.status).pending = 0;
                    let pages = self.walk_forward(first, head_page.clone());
                    let direction = Direction::Forward(feed_id.clone());
                    let result = self.handle(pages, direction, handled).await;
                    lock(&self.inner.status).unread = 0;
                    match result {
                        Ok(()) => return Ok(()),
                        Err(PollError::ForwardBroken(reason)) => {
                            // What was handled is consistent; the walk back finds the rest
                            // (once: even if nothing was handled, it does not read forward).
                            tracing::warn!(%reason, "the archives do not read forward; walking back instead");
                            return Box::pin(self.poll_page(head_page, handled, false)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => head_page,
            },
            _ => head_page,
        };
        let walk = self.walk_back(head_page, anchor).await?;
        if let (Some((id, updated_us)), false) = (anchor, walk.found) {
            if !walk.superseded {
                return Err(PollError::Stopped(Stop::CheckpointLost {
                    url: self.polled_url().to_string(),
                    entry_id: id.to_owned(),
                    updated: crate::clock::rfc3339(crate::clock::from_micros(updated_us)),
                }));
            }
            // The feed holds a newer revision of the checkpoint instead (an entry revised in
            // place), and every page was read: handling every revision not handled yet is
            // exact.
            tracing::info!(
                checkpoint = id,
                "the checkpoint entry was revised; re-reading the whole feed"
            );
        }
        // Oldest first. Within a page, order says nothing: what is new is what has not been
        // handled, so drop the revisions already handled from every page held.
        let mut slots: Vec<Slot> = walk.slots.into_iter().rev().collect();
        if anchor.is_some() {
            for slot in &mut slots {
                if let Slot::Parsed(page) = slot {
                    let mut conn = self.inner.db.pool().acquire().await.map_err(Error::from)?;
                    let ids: Vec<&str> = page.entries.iter().map(|e| e.id.as_str()).collect();
                    let known = store::handled_revisions(&mut conn, &ids)
                        .await
                        .map_err(Error::from)?;
                    let watermark = checkpoint.pruned_through_us;
                    page.entries.retain(|e| {
                        !store::is_handled(known.get(&e.id).copied(), e.updated_us, watermark)
                    });
                }
            }
        }
        let pending: usize = slots
            .iter()
            .map(|s| match s {
                Slot::Parsed(p) => p.entries.len(),
                Slot::Dropped(_, n) => *n,
            })
            .sum();
        {
            let mut status = lock(&self.inner.status);
            status.pending = pending as u64;
            status.sample_lag();
        }
        self.handle(self.slot_pages(slots), Direction::Forward(feed_id), handled)
            .await
    }

    /// Walks `prev-archive` links from the head until a page holds the `checkpoint` revision
    /// or there is no older page. Returns the pages newest first.
    pub(super) async fn walk_back(
        &self,
        head: FeedPage,
        checkpoint: Option<(&str, i64)>,
    ) -> Result<Walk, PollError> {
        let mut visited = HashSet::from([head.url.clone()]);
        let mut superseded = false;
        let mut slots = vec![Slot::Parsed(Box::new(head))];
        let mut parsed = 1;
        loop {
            let Some(Slot::Parsed(top)) = slots.last() else {
                return Err(Error::Invariant("the walk back holds its newest page parsed").into());
            };
            if let Some((id, updated_us)) = checkpoint {
                if top.position_of(id, updated_us).is_some() {
                    return Ok(Walk {
                        slots,
                        found: true,
                        superseded,
                    });
                }
                superseded |= top.supersedes(id, updated_us);
            }
            let Some(prev) = top.prev_archive.clone() else {
                return Ok(Walk {
                    slots,
                    found: false,
                    superseded,
                });
            };
            if !visited.insert(prev.clone()) {
                return Err(PollError::ArchiveLoop(prev));
            }
            let page = self.fetch_page(&prev).await?;
            if self.inner.shutdown.is_cancelled() {
                return Err(PollError::Cancelled);
            }
            slots.push(Slot::Parsed(Box::new(page)));
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
    pub(super) async fn fetch_page(&self, url: &Url) -> Result<FeedPage, PollError> {
        let mut attempt = 0;
        loop {
            match self.fetch_page_once(url).await {
                Err(PollError::Fetch(FetchError::Transient(reason)))
                    if attempt < MAX_PAGE_ATTEMPTS =>
                {
                    attempt += 1;
                    ConsumerMetrics::inc(&self.inner.metrics.retries, "page");
                    let delay = self.inner.settings.backoff.delay(attempt);
                    tracing::warn!(%url, attempt, error = %reason, ?delay, "page fetch failed; retrying");
                    self.sleep(delay).await?;
                }
                other => return other,
            }
        }
    }

    /// The pages of a walk back, oldest first: pages dropped during the walk are fetched
    /// again a few at a time (they are archives: immutable), in order.
    pub(super) fn slot_pages(&self, slots: Vec<Slot>) -> Pages {
        let this = self.clone();
        stream::iter(slots)
            .map(move |slot| {
                let this = this.clone();
                async move {
                    match slot {
                        Slot::Parsed(page) => Ok(*page),
                        Slot::Dropped(url, _) => this.fetch_page(&url).await,
                    }
                }
            })
            .buffered(PAGE_CONCURRENCY)
            .boxed()
    }

    /// Fetches and parses a page once, without retrying (pages fetched on a guess, and each
    /// attempt of [`Self::fetch_page`]).
    pub(super) async fn fetch_page_once(&self, url: &Url) -> Result<FeedPage, PollError> {
        let fetched = match self
            .inner
            .client
            .page(url, &client::Validators::default())
            .await?
        {
            client::Conditional::Modified(f) => f,
            client::Conditional::NotModified => {
                return Err(PollError::UnaskedNotModified(url.clone()))
            }
        };
        page::parse(&fetched.url, &fetched.body).map_err(PollError::Refused)
    }

    /// Handles the entries of `pages` (oldest first) as one pipeline: a separate task reads
    /// the pages and fetches details a few at a time, so fetching goes on while a batch is
    /// being written; batches of whatever is ready are applied strictly in feed order, one
    /// transaction per batch. An error ends the handling once the entries before it are.
    /// Adds the entries handled to `handled` as they are.
    pub(super) async fn handle(
        &self,
        pages: Pages,
        direction: Direction,
        handled: &mut u64,
    ) -> Result<(), PollError> {
        let concurrency = self.inner.settings.concurrency.max(1);
        let (ready, mut fetched) = tokio::sync::mpsc::channel(MAX_BATCH);
        let this = self.clone();
        let _fetcher = AbortOnDrop(tokio::spawn(async move {
            let entries = pages.flat_map(|page| match page {
                Ok(page) => stream::iter(page.entries.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => stream::iter(vec![Err(e)]),
            });
            let fetches = entries
                .map(|entry| {
                    let this = this.clone();
                    async move {
                        let mut entry = entry?;
                        let details = this.details(&entry).await?;
                        // Decoded: the Base64 text (twice the document's size) need not
                        // wait for the batch.
                        entry.inline = None;
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
        let mut failed = None;
        while let Some(first) = fetched.recv().await {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut next = Some(first);
            while let Some(item) = next {
                match item {
                    Ok(item) => batch.push(item),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                next = if batch.len() < MAX_BATCH {
                    fetched.try_recv().ok()
                } else {
                    None
                };
            }
            if self.inner.shutdown.is_cancelled() {
                return Err(PollError::Cancelled);
            }
            if batch.is_empty() {
                break;
            }
            let started = std::time::Instant::now();
            self.apply_with_retry(&batch, &direction).await?;
            if let (Direction::Forward(_), Some((entry, _))) = (&direction, batch.last()) {
                // The publisher learns how far this reader got with its next request.
                self.inner.client.set_checkpoint(&entry.id);
            }
            tracing::debug!(entries = batch.len(), took = ?started.elapsed(), "batch applied");
            *handled += batch.len() as u64;
            self.subtract_pending(batch.len() as u64);
            if failed.is_some() {
                break;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Fetches and checks the details of `entry`, retrying transient failures until they pass
    /// or shutdown. The inner `Err` is a permanent failure: the reason to park the entry.
    pub(super) async fn details(
        &self,
        entry: &FeedEntry,
    ) -> Result<Result<P::Details, String>, PollError> {
        if let (super::DetailsMode::Inline, Some(inline)) =
            (self.inner.settings.details, &entry.inline)
        {
            return Ok(self.inline_details(entry, inline));
        }
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
                    let parsed =
                        super::details::parse::<P::Details>(url, &fetched.body).and_then(|d| {
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

    /// Decodes and checks details an entry carries inline, exactly as fetched ones are: the
    /// same size limit (on the decoded bytes), the same parser and bounds, the same check.
    fn inline_details(&self, entry: &FeedEntry, text: &str) -> Result<P::Details, String> {
        let max = self.inner.settings.limits.max_details_bytes;
        let what = format!("entry {} inline details", entry.id);
        // Base64 is 4 bytes per 3: refuse before decoding what cannot fit.
        if text.len() / 4 * 3 > max + 3 {
            return Err(format!("{what}: over the limit of {max} bytes"));
        }
        let bytes = super::details::inline_bytes(text).map_err(|e| format!("{what}: {e}"))?;
        if bytes.len() > max {
            return Err(format!(
                "{what}: {} bytes exceed the limit of {max}",
                bytes.len()
            ));
        }
        let url = match &entry.link {
            Ok(url) => url.clone(),
            Err(_) => self.polled_url(),
        };
        super::details::parse::<P::Details>(&url, &bytes)
            .and_then(|d| self.inner.projection.check(&d).map(|()| d))
            .map_err(|r| format!("{what}: {r}"))
    }

    /// Applies a batch; a database failure is retried (the transaction rolled back whole).
    pub(super) async fn apply_with_retry(
        &self,
        batch: &[(FeedEntry, Result<P::Details, String>)],
        direction: &Direction,
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
    pub(super) async fn apply(
        &self,
        batch: &[(FeedEntry, Result<P::Details, String>)],
        direction: &Direction,
    ) -> Result<(), Error> {
        let mut tx = self.inner.db.begin_write().await?;
        self.inner.lease.check(tx.conn()).await?;
        let marks = store::marks(tx.conn()).await?;
        let (seq, pruned_through_us) = (marks.seq, marks.pruned_through_us);
        // Only revisions that may have been handled are looked up: none, reading a feed whose
        // entries come in `updated` order.
        let ids: Vec<&str> = batch
            .iter()
            .filter(|(e, _)| store::may_be_handled(e.updated_us, &marks))
            .map(|(e, _)| e.id.as_str())
            .collect();
        let mut known = if ids.is_empty() {
            HashMap::new()
        } else {
            store::handled_revisions(tx.conn(), &ids).await?
        };
        // A revision is new unless this or a newer revision of the entry was handled, before
        // or earlier in this batch; redelivered entries and older revisions are no-ops.
        let fresh: Vec<&(FeedEntry, Result<P::Details, String>)> = batch
            .iter()
            .filter(|(e, _)| {
                let previous = known.get(&e.id).copied();
                if store::is_handled(previous, e.updated_us, pruned_through_us) {
                    return false;
                }
                known.insert(e.id.clone(), e.updated_us);
                true
            })
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
            let outcome = match details {
                Ok(_) => Disposition::from(outcomes.next().ok_or(Error::Invariant(
                    "the projection returned fewer outcomes than documents",
                ))?),
                Err(reason) => {
                    store::park(tx.conn(), entry, reason, now_us).await?;
                    Disposition::Parked
                }
            };
            records.push((entry, outcome, details));
        }
        if store::any_parked(tx.conn()).await? {
            // A parked revision that a newer one replaced is no longer the entry's state: the
            // newer one was applied, or parked in its place (every revision here is newer
            // than any handled of its entry, so newer than a parked one).
            let applied: Vec<&str> = records
                .iter()
                .filter(|(_, o, _)| *o != Disposition::Parked)
                .map(|(e, _, _)| e.id.as_str())
                .collect();
            store::unpark_superseded(tx.conn(), &applied).await?;
        }
        // One row per entry: its newest revision in this batch (found by a map: a linear
        // search per record is quadratic in the batch).
        let mut rows: Vec<store::HandledRecord> = Vec::with_capacity(records.len());
        let mut row_of: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for (e, o, _) in &records {
            match row_of.get(e.id.as_str()) {
                Some(&i) => {
                    rows[i].updated_us = e.updated_us;
                    rows[i].outcome = *o;
                }
                None => {
                    row_of.insert(&e.id, rows.len());
                    rows.push(store::HandledRecord {
                        entry_id: &e.id,
                        updated_us: e.updated_us,
                        outcome: *o,
                    });
                }
            }
        }
        store::record_handled(tx.conn(), &rows, seq, now_us).await?;
        let seq = seq + records.len() as i64;
        let after = store::Marks {
            seq,
            handled_through_us: records
                .iter()
                .map(|(e, _, _)| e.updated_us)
                .fold(marks.handled_through_us, i64::max),
            ..marks
        };
        match (direction, batch.last()) {
            // Past the whole batch, repeated ids included.
            (Direction::Forward(feed_id), Some((last, _))) => {
                store::advance_to(tx.conn(), last, feed_id, &after, now_us).await?
            }
            // Never backwards: only the count of handled entries changes.
            _ => store::set_handled_count(tx.conn(), &after).await?,
        }
        // Pruning costs three statements, so it runs each time the count crosses a step of a
        // tenth of what is kept: the table holds at most `keep` plus one step.
        let keep = self.inner.settings.keep_handled as i64;
        let step = (keep / 10).max(1);
        if (seq - records.len() as i64) / step != seq / step {
            store::prune(tx.conn(), seq, keep, pruned_through_us).await?;
        }
        tx.commit().await?;
        let mut counts = [0u64; Disposition::ALL.len()];
        for (entry, outcome, details) in records {
            counts[outcome as usize] += 1;
            match details {
                Err(reason) => tracing::warn!(entry_id = %entry.id, %reason, "entry parked"),
                // Described only when the line is written: a catch-up logging at `warn` need
                // not format a million descriptions.
                Ok(d) => {
                    tracing::info!(entry_id = %entry.id, what = %P::describe(d), outcome = outcome.as_str(), "entry handled")
                }
            }
        }
        for (kind, n) in Disposition::ALL.iter().zip(counts) {
            if n > 0 {
                ConsumerMetrics::inc_by(&self.inner.metrics.entries, kind.as_str(), n);
            }
        }
        Ok(())
    }
}

/// Stops a background task (fetching pages or details) when a poll ends early.
pub(super) struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
