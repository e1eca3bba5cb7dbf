//! Publishing an event feed: Atom 1.0 (RFC 4287) paged with RFC 5005 archives.
//!
//! A publisher appends entries as the last writes of the caller's transaction (so a state
//! change and its event commit together); the [`FeedTx`] it returns is the only way to commit
//! that transaction, and its commit always advances the head. It serves the subscription
//! document and the archive pages. The head's validators live in memory and advance after
//! each commit, so a poll of an unchanged feed is answered with `304` without touching the
//! database.

mod archives;
mod compress;
mod conditional;
mod head_values;
mod negotiate;
mod paging;
mod readers;
mod render;
mod store;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use conditional::{not_modified, requested_wait, Validators, MAX_WAIT_SECS};
use head_values::HeadValues;
pub use negotiate::{Encoding, NotAcceptable, Representation};
pub use paging::{PageSize, Position};
use readers::Readers;
pub use readers::{LagSample, ReaderReport, FLUSH_EVERY, SILENT_AFTER};
pub use render::{render, render_as, FeedIdentity, Page, PageLinks, HISTORY_NS};
pub use store::{AppendQuery, Appended, NewEntry, StoredEntry, Writes, NOTIFY_CHANNEL};

use crate::db::{Db, WriteTx};
use crate::{Clock, Error};

/// `Content-Type` of every feed page.
pub const ATOM_CONTENT_TYPE: &str = "application/atom+xml";
/// RFC 5005 §4: archive pages never change once full.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Bytes of archive page bodies kept in memory, each in the coding it was asked for; the least
/// recently used are dropped beyond this and rendered again on demand (identical bytes:
/// rendering is deterministic). 32 MiB keeps a 100 000-entry backlog whole: an inline
/// archive page of 20 entries is about 2 KB in zstd or gzip.
const ARCHIVE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// How one feed is published.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub title: String,
    pub author: String,
    /// The `atom:id` a feed created before ids were stored with it was published under; such
    /// a feed keeps it. A new feed gets a `urn:uuid:` id of its own.
    pub legacy_id: Option<String>,
    /// Absolute path of the subscription document, e.g. `/order/feed`. Archive page `n` is at
    /// `{path}/archive/{n}`.
    pub path: String,
    /// Entries per archive page: `None` keeps the size the feed was created with
    /// ([`PageSize::DEFAULT`] for a new feed); a different size than recorded is refused.
    pub page_size: Option<PageSize>,
    /// A reader silent for this long is forgotten.
    pub reader_expiry: Duration,
    /// Render each full archive page once, shortly after it fills, and keep it in the
    /// database ([`Publisher::keep_archives`]); otherwise pages are rendered from their
    /// entries when first asked for after a start. Stored pages are served either way.
    pub store_archives: bool,
}

/// [`FeedSettings::reader_expiry`] unless configured: a day.
pub const READER_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// A transaction whose last writes are feed entries: committed only by [`FeedTx::commit`].
#[must_use = "dropping a FeedTx rolls the transaction back"]
pub struct FeedTx {
    tx: WriteTx,
    appended: Option<Appended>,
    publisher: Publisher,
}

impl FeedTx {
    /// Commits, then makes the new entries visible to head validators and long polls.
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await?;
        if let Some(appended) = self.appended {
            self.publisher.advance(appended);
        }
        Ok(())
    }
}

/// A rendered page with its validators, and its codings, each made once on first request.
struct Rendered {
    representation: Representation,
    body: Bytes,
    /// The identity body's entity tag without quotes; each coding appends its suffix.
    etag: String,
    last_modified: Option<HeaderValue>,
    last_modified_secs: Option<i64>,
    /// `Link` (RFC 8288), for representations whose body has no links.
    link_header: Option<HeaderValue>,
    /// gzip, zstd. `None` inside: coding failed, the identity body is served instead.
    coded: [OnceLock<Option<Bytes>>; 2],
}

impl Rendered {
    fn new(
        representation: Representation,
        page: Page,
        etag: String,
        last_modified_us: Option<i64>,
    ) -> Rendered {
        let secs = last_modified_us.map(|us| us.div_euclid(1_000_000));
        Rendered {
            representation,
            body: Bytes::from(page.body),
            etag,
            last_modified: secs.map(http_date),
            last_modified_secs: secs,
            link_header: page.link_header.as_deref().map(header_value),
            coded: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The validators and headers alone, for a page whose body is kept elsewhere.
    fn without_bodies(self) -> Rendered {
        Rendered {
            body: Bytes::new(),
            coded: [OnceLock::new(), OnceLock::new()],
            ..self
        }
    }

    /// The body in `encoding` (coded now if this is the first request for it) and the
    /// encoding it really is in.
    fn body(&self, encoding: Encoding, metrics: &FeedMetrics) -> (Bytes, Encoding) {
        let slot = match encoding {
            Encoding::Identity => return (self.body.clone(), Encoding::Identity),
            Encoding::Gzip => &self.coded[0],
            Encoding::Zstd => &self.coded[1],
        };
        let coded = slot.get_or_init(|| {
            metrics
                .compressions
                .get_or_create(&CodingLabels {
                    encoding: encoding.token(),
                })
                .inc();
            compress::encode(encoding, &self.body)
                .inspect_err(|e| tracing::warn!(error = %e, "serving a feed page uncoded"))
                .ok()
                .map(Bytes::from)
        });
        match coded {
            Some(b) => (b.clone(), encoding),
            None => (self.body.clone(), Encoding::Identity),
        }
    }
}

/// The validators and headers of an archive page ([`Rendered`] without its bodies), with its
/// body in one coding.
struct Archived {
    page: Rendered,
    body: Bytes,
    /// The coding `body` is in (identity when coding failed).
    encoding: Encoding,
}

/// Archive pages by representation, number and coding, the least recently used dropped
/// beyond a budget of body bytes.
struct ArchiveCache {
    pages: lru::LruCache<(Representation, i64, Encoding), Arc<Archived>>,
    bytes: usize,
    budget: usize,
}

impl ArchiveCache {
    fn new(budget: usize) -> ArchiveCache {
        ArchiveCache {
            pages: lru::LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, key: &(Representation, i64, Encoding)) -> Option<Arc<Archived>> {
        self.pages.get(key).cloned()
    }

    /// What a kept page costs: its body, and about this much besides (its entity tag, date
    /// and `Link` header, the key, the list's node), so that the budget bounds memory.
    const OVERHEAD: usize = 256;

    fn cost(page: &Archived) -> usize {
        page.body.len() + Self::OVERHEAD
    }

    fn put(&mut self, key: (Representation, i64, Encoding), page: Arc<Archived>) {
        self.bytes += Self::cost(&page);
        if let Some(old) = self.pages.put(key, page) {
            self.bytes -= Self::cost(&old);
        }
        while self.bytes > self.budget {
            match self.pages.pop_lru() {
                Some((_, dropped)) => self.bytes -= Self::cost(&dropped),
                None => break,
            }
        }
    }
}

/// Feed responses by page kind and status (the 304 ratio is what a cache-friendly feed is about).
#[derive(Clone, Default)]
pub struct FeedMetrics {
    responses: Family<FeedLabels, Counter>,
    compressions: Family<CodingLabels, Counter>,
    head_renders: Family<RepresentationLabels, Counter>,
    archive_renders: Counter,
    archive_pages_stored: Counter,
    reader_behind: Family<ReaderLabels, Gauge>,
    reader_silence: Family<ReaderLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedLabels {
    page: &'static str,
    representation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReaderLabels {
    reader: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepresentationLabels {
    representation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodingLabels {
    encoding: &'static str,
}

impl FeedMetrics {
    pub fn register(registry: &mut Registry) -> FeedMetrics {
        let m = FeedMetrics::default();
        registry.register(
            "feed_responses",
            "Feed pages served, by page kind (head, archive), representation (atom, inline, \
             events) and status (200, 304, 307, 406)",
            m.responses.clone(),
        );
        registry.register(
            "feed_reader_entries_behind",
            "Per reader naming itself (Feed-Reader): entries between its reported checkpoint \
             and the head, as of the last flush (every 5 s)",
            m.reader_behind.clone(),
        );
        registry.register(
            "feed_reader_seconds_since_seen",
            "Per reader naming itself (Feed-Reader): seconds since its last request, as of \
             the last flush (every 5 s)",
            m.reader_silence.clone(),
        );
        registry.register(
            "feed_compressions",
            "Feed pages coded, by coding: once per page and coding, not per request",
            m.compressions.clone(),
        );
        registry.register(
            "feed_head_renders",
            "Head pages read from the database and rendered, by representation: once per \
             position, however many requests (long polls woken by one commit) ask for it",
            m.head_renders.clone(),
        );
        registry.register(
            "feed_archive_renders",
            "Archive pages read from their entries and rendered to answer a request (in any \
             representation): pages not yet stored, or every page when archives are not stored",
            m.archive_renders.clone(),
        );
        registry.register(
            "feed_archive_pages_stored",
            "Archive pages rendered and kept in the database by the archiver, once per page \
             and representation (only representations requested since the start are stored)",
            m.archive_pages_stored.clone(),
        );
        m
    }

    fn count(&self, page: &'static str, representation: &'static str, status: StatusCode) {
        self.responses
            .get_or_create(&FeedLabels {
                page,
                representation,
                status: status.as_u16(),
            })
            .inc();
    }
}

struct Inner {
    settings: FeedSettings,
    identity: FeedIdentity,
    page_size: PageSize,
    metrics: FeedMetrics,
    db: Db,
    clock: Clock,
    /// The newest committed entry. Only ever moves forward.
    head: watch::Sender<Appended>,
    /// The subscription document for the position it was rendered at, per representation.
    /// One commit wakes every long poll at once: one of them renders the new page while the
    /// others wait for it (rather than each reading the database and rendering the same page).
    head_pages: [Mutex<Option<HeadPage>>; 3],
    archives: Mutex<ArchiveCache>,
    /// Who reads the feed, from the headers they send.
    readers: Readers,
    /// Readers with metric series, to remove the series of those that expire.
    reader_series: Mutex<std::collections::HashSet<String>>,
    /// The task writing the readers, awaited before the database closes so that its last
    /// flush (on shutdown) is not cut off.
    reader_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tells this publisher's values from others' in [`head_values`], kept per thread.
    id: u64,
    /// Each representation's own head URL (`Content-Location` of a negotiated head).
    locations: [HeaderValue; 3],
    /// What stored archive pages must have been rendered with to be served ([`archives::layout`]).
    layout: String,
    /// Per representation: every archive page up to this one is stored.
    archived_through: [AtomicI64; 3],
    /// Per representation: requested since the service started, or with pages stored
    /// before (the archiver stores only the pages of representations someone reads).
    in_use: [std::sync::atomic::AtomicBool; 3],
    /// Told when a representation is first requested.
    in_use_changed: tokio::sync::Notify,
    /// Held while pages are stored, so that two callers do not render the same pages.
    archiving: tokio::sync::Mutex<()>,
    /// The archiver ([`Publisher::keep_archives`]), awaited before the database closes.
    archiver_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The next [`Inner::id`].
static NEXT_PUBLISHER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The subscription document at one position: rendered once, by whichever request comes first.
type HeadCell = tokio::sync::OnceCell<Arc<Rendered>>;
/// The position the newest head cell is for, and the cell.
type HeadPage = (Position, Arc<HeadCell>);

/// The publishing side of a feed. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl Publisher {
    /// Loads the head from the database. The feed tables come from [`crate::migrations`].
    pub async fn open(
        db: Db,
        settings: FeedSettings,
        clock: Clock,
        metrics: FeedMetrics,
    ) -> Result<Publisher, Error> {
        let page_size = store::page_size(&db, settings.page_size).await?;
        let (id, created_us) = store::identity(&db, settings.legacy_id.as_deref()).await?;
        let identity = FeedIdentity {
            id,
            title: settings.title.clone(),
            author: settings.author.clone(),
            created_us,
        };
        let newest = store::newest(&db).await?;
        let layout = archives::layout(&identity, &settings.path, page_size);
        if settings.store_archives {
            let forgotten = archives::forget_other_layouts(&db, &layout).await?;
            if forgotten > 0 {
                tracing::info!(
                    pages = forgotten,
                    "stored archive pages of another layout (title, path, page size or \
                     rendering changed) deleted; they are rendered again"
                );
            }
        }
        let archived_through = archives::stored_through(&db, &layout).await?;
        let clock_for_readers = clock.clone();
        let reader_expiry = settings.reader_expiry;
        let locations =
            Representation::ALL.map(|r| header_value(&format!("{}{}", settings.path, r.segment())));
        Ok(Publisher {
            inner: Arc::new(Inner {
                settings,
                identity,
                page_size,
                metrics,
                db,
                clock,
                head: watch::Sender::new(newest),
                head_pages: Default::default(),
                archives: Mutex::new(ArchiveCache::new(ARCHIVE_CACHE_BYTES)),
                readers: Readers::new(clock_for_readers, reader_expiry),
                reader_series: Mutex::default(),
                reader_task: Mutex::default(),
                id: NEXT_PUBLISHER.fetch_add(1, Ordering::Relaxed),
                locations,
                layout,
                archived_through: archived_through.map(AtomicI64::new),
                // A representation with stored pages was read before this start: its pages go
                // on being stored before anyone asks again.
                in_use: archived_through.map(|t| std::sync::atomic::AtomicBool::new(t > 0)),
                in_use_changed: tokio::sync::Notify::new(),
                archiving: tokio::sync::Mutex::new(()),
                archiver_task: Mutex::default(),
            }),
        })
    }

    /// Appends `entries` (in order, with multi-row statements) as the last writes of `tx`,
    /// which it takes: nothing more can be written in it, which keeps the append lock's window
    /// short, and the only way to commit it is [`FeedTx::commit`], which advances the head.
    /// Dropping the [`FeedTx`] rolls everything back.
    pub async fn append(&self, mut tx: WriteTx, entries: &[NewEntry]) -> Result<FeedTx, Error> {
        let appended =
            store::append(&mut tx, self.inner.db.backend(), &self.inner.clock, entries).await?;
        Ok(FeedTx {
            tx,
            appended,
            publisher: self.clone(),
        })
    }

    /// Postgres: the SQL of a statement that does `writes` and appends `entries` entries, for
    /// [`Publisher::append_alone`]; `None` when it would take more parameters than Postgres
    /// allows (write those in a transaction with [`Publisher::append`]).
    pub fn append_alone_sql(writes: &Writes, entries: usize) -> Option<String> {
        (writes.params + store::append_params(entries) <= crate::db::POSTGRES_MAX_PARAMS)
            .then(|| store::append_statement(writes, entries))
    }

    /// Postgres: runs `query` (from [`Publisher::append_alone_sql`], its writes' parameters
    /// bound) on `conn` outside any transaction, so that it commits on its own (one statement is atomic):
    /// one round trip for the writes, the append and the commit. Then advances the head, and
    /// returns what the writes' [`Writes::returning`] gave.
    pub async fn append_alone<'q>(
        &self,
        conn: &mut sqlx::AnyConnection,
        query: AppendQuery<'q>,
        entries: &'q [NewEntry],
    ) -> Result<Option<String>, Error> {
        if entries.is_empty() {
            return Err(Error::Invariant("append_alone is given entries to append"));
        }
        let now_us = self.inner.clock.now().timestamp_micros();
        let query = store::bind_append(query, now_us, entries.len(), entries);
        let (row, returned) = store::head_row(query.fetch_optional(conn).await?)?;
        self.advance(store::appended(row, entries.len()));
        Ok(returned)
    }

    fn advance(&self, appended: Appended) {
        self.inner.head.send_if_modified(|head| {
            // Concurrent committers may report out of order; keep the newest.
            if appended.position > head.position {
                *head = appended;
                true
            } else {
                false
            }
        });
    }

    /// On Postgres, follows appends made by other processes on the same database (LISTEN),
    /// until `shutdown`. Does nothing on SQLite, where one process owns the file.
    pub async fn follow_other_writers(&self, shutdown: CancellationToken) -> Result<(), Error> {
        let Some(mut listener) = self.inner.db.listen(store::NOTIFY_CHANNEL).await? else {
            return Ok(());
        };
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    // A periodic refresh also covers notifications lost while reconnecting.
                    _ = tokio::time::sleep(Duration::from_secs(5)) => Ok(None),
                    n = listener.recv() => n.map(|n| n.payload().parse::<i64>().ok()),
                };
                // The position appended: ours, as a rule, already advanced to.
                if let Ok(Some(position)) = event {
                    if position <= this.head_position() {
                        continue;
                    }
                }
                if let Err(e) = event {
                    tracing::warn!(error = %e, "feed LISTEN connection failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                if this.inner.db.pool().is_closed() {
                    break;
                }
                match store::newest(&this.inner.db).await {
                    Ok(newest) => this.advance(newest),
                    Err(e) => tracing::warn!(error = %e, "cannot refresh the feed head"),
                }
            }
        });
        Ok(())
    }

    /// Notes the reader a request names (`Feed-Reader`, `Feed-Reader-Checkpoint`); memory
    /// only, so a `304` still touches no database. `peer` is the connection's address.
    pub fn observe_reader(&self, request: &HeaderMap, peer: Option<std::net::IpAddr>) {
        self.inner.readers.observe(request, peer);
    }

    /// The readers known, by name.
    pub fn readers(&self) -> Vec<ReaderReport> {
        self.inner.readers.report(self.head_position())
    }

    /// Loads the readers remembered, then every [`FLUSH_EVERY`] until `shutdown` (and once
    /// more then) writes what changed and updates the reader metrics.
    pub async fn track_readers(&self, shutdown: CancellationToken) -> Result<(), Error> {
        self.inner.readers.load(&self.inner.db).await?;
        let this = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let stop = tokio::select! {
                    _ = shutdown.cancelled() => true,
                    _ = tokio::time::sleep(FLUSH_EVERY) => false,
                };
                if this.inner.db.pool().is_closed() {
                    break;
                }
                if let Err(e) = this.flush_readers().await {
                    tracing::warn!(error = %e, "cannot write the feed's readers");
                }
                if stop {
                    break;
                }
            }
        });
        *lock(&self.inner.reader_task) = Some(task);
        Ok(())
    }

    /// Waits for the readers' last write after shutdown was signalled; call it before the
    /// database closes.
    pub async fn readers_written(&self) {
        let task = lock(&self.inner.reader_task).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "the readers' writer failed");
            }
        }
    }

    /// Resolves checkpoints, writes changed readers, forgets the long silent, samples lag,
    /// and updates the metrics; [`Publisher::track_readers`] calls it every few seconds.
    pub async fn flush_readers(&self) -> Result<(), Error> {
        let head = self.head_position();
        self.inner.readers.flush(&self.inner.db, head).await?;
        let metrics = &self.inner.metrics;
        let readers = self.inner.readers.report(head);
        // Forget the series of readers that expired.
        let known: std::collections::HashSet<&str> =
            readers.iter().map(|r| r.name.as_str()).collect();
        for family in [&metrics.reader_behind, &metrics.reader_silence] {
            let gone: Vec<ReaderLabels> = self
                .inner
                .reader_series
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|n| !known.contains(n.as_str()))
                .map(|n| ReaderLabels { reader: n.clone() })
                .collect();
            for labels in gone {
                family.remove(&labels);
            }
        }
        let mut series = self
            .inner
            .reader_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series.clear();
        for r in &readers {
            let labels = ReaderLabels {
                reader: r.name.clone(),
            };
            if let Some(behind) = r.behind {
                metrics.reader_behind.get_or_create(&labels).set(behind);
            }
            metrics
                .reader_silence
                .get_or_create(&labels)
                .set(r.seconds_since_seen);
            series.insert(r.name.clone());
        }
        Ok(())
    }

    /// The newest position after `after` of an entry linking to `link` (`None`: no such
    /// entry after it). Reads only the entries after `after`.
    pub async fn newest_with_link(
        &self,
        link: &str,
        after: Position,
    ) -> Result<Option<Position>, Error> {
        store::newest_with_link(&self.inner.db, link, after).await
    }

    /// The newest committed position.
    pub fn head_position(&self) -> Position {
        self.inner.head.borrow().position
    }

    /// Changes of the head, for waiting on new entries.
    pub fn subscribe(&self) -> watch::Receiver<Appended> {
        self.inner.head.subscribe()
    }

    pub fn page_size(&self) -> PageSize {
        self.inner.page_size
    }

    pub fn settings(&self) -> &FeedSettings {
        &self.inner.settings
    }

    /// The feed's `atom:id`, title and creation time.
    pub fn identity(&self) -> &FeedIdentity {
        &self.inner.identity
    }

    /// `GET {path}` (any representation, by `Accept`) or `GET {path}{segment}` (`only` that
    /// one): the subscription document. With `wait`, a request that would get a `304` is held
    /// until an entry commits, the wait ends, or `shutdown`, holding no database connection
    /// meanwhile (long polling).
    ///
    /// `waited` is how long the request was held before it was read ([`Publisher::hold`]):
    /// it waits only for the rest of `wait`.
    pub async fn head(
        &self,
        request: &HeaderMap,
        only: Option<Representation>,
        wait: Option<Duration>,
        waited: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Response, Error> {
        let chosen = negotiated(request, only);
        let (representation, encoding) = match chosen {
            Ok(c) => c,
            Err(e) => {
                self.inner
                    .metrics
                    .count("head", "none", StatusCode::NOT_ACCEPTABLE);
                return Err(e);
            }
        };
        // Subscribe before looking at the head, so a commit in between is not missed.
        let mut waiting = wait.map(|w| {
            let left = w.saturating_sub(waited);
            (
                self.inner.head.subscribe(),
                tokio::time::Instant::now() + left,
            )
        });
        let mut response = loop {
            let response = self
                .head_response(request, representation, encoding)
                .await?;
            let Some((changes, deadline)) = &mut waiting else {
                break response;
            };
            let deadline = *deadline;
            if response.status() != StatusCode::NOT_MODIFIED {
                break response;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break response },
                _ = tokio::time::sleep_until(deadline) => break response,
                _ = shutdown.cancelled() => break response,
            }
        };
        self.finish_head(&mut response, None, wait, only, representation);
        Ok(response)
    }

    /// The head's response from memory, without waiting: a `304`, or a `200` of the page
    /// already rendered for the current head; `None` when it would have to wait or render.
    /// See [`crate::http::Hold::answer`].
    pub fn answer_head(
        &self,
        path: &str,
        request: &HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Option<Response> {
        let only = self.head_path(path)?;
        // A long poll, or a `Prefer` the handler refuses, is the handler's.
        if !matches!(requested_wait(request, None), Ok(None)) {
            return None;
        }
        let (representation, encoding) = negotiated(request, only).ok()?;
        let HeadCheck { values, unchanged } = self.head_check(request, representation, encoding);
        let mut response = if unchanged {
            not_modified_response(values.quoted_value.clone(), values.sent.clone(), "no-cache")
        } else {
            let rendered = match &*lock(&self.inner.head_pages[representation.index()]) {
                Some((at, cell)) if *at == values.position => cell.get()?.clone(),
                _ => return None,
            };
            self.head_page_response(&rendered, encoding, values.sent.clone())
        };
        self.observe_reader(request, Some(peer.ip()));
        let expires = Some(values.expires.clone());
        self.finish_head(&mut response, expires, None, only, representation);
        Some(response)
    }

    /// Which of the head's paths `path` is: `Some(None)` the negotiated one, `Some(Some(r))`
    /// the one of representation `r`, `None` none of them.
    fn head_path(&self, path: &str) -> Option<Option<Representation>> {
        let rest = path.strip_prefix(self.inner.settings.path.as_str())?;
        if rest.is_empty() {
            return Some(None);
        }
        Representation::ALL
            .into_iter()
            .find(|r| r.segment() == rest)
            .map(Some)
    }

    /// What every answer of the head carries, and its count in the feed's metrics.
    /// `expires` is the current second's `X-Accel-Expires` if the caller has it at hand.
    fn finish_head(
        &self,
        response: &mut Response,
        expires: Option<HeaderValue>,
        wait: Option<Duration>,
        only: Option<Representation>,
        representation: Representation,
    ) {
        self.mark_in_use(representation);
        let h = response.headers_mut();
        if wait.is_none() {
            // For an nginx cache in front: keep this head until the end of the current second
            // at most (its own validity is whole seconds; `proxy_cache_valid 1s` would keep a
            // page one to two seconds). Clients see `Cache-Control: no-cache` and revalidate.
            let expires = expires.unwrap_or_else(|| expires_at(self.inner.clock.now().timestamp()));
            h.insert("x-accel-expires", expires);
        }
        if let Some(w) = wait {
            // RFC 7240 §3: tell the client its preference was honoured.
            let applied = format!("wait={}", w.as_secs());
            h.insert("preference-applied", header_value(&applied));
        }
        if only.is_none() && representation != Representation::Atom {
            h.insert(
                header::CONTENT_LOCATION,
                self.inner.locations[representation.index()].clone(),
            );
        }
        self.inner
            .metrics
            .count("head", label(representation), response.status());
    }

    async fn head_response(
        &self,
        request: &HeaderMap,
        representation: Representation,
        encoding: Encoding,
    ) -> Result<Response, Error> {
        let HeadCheck { values, unchanged } = self.head_check(request, representation, encoding);
        if unchanged {
            return Ok(not_modified_response(
                values.quoted_value.clone(),
                values.sent.clone(),
                "no-cache",
            ));
        }
        let (position, etag, sent) = (values.position, values.etag.clone(), values.sent.clone());
        drop(values);
        let rendered = self.head_page(representation, position, etag).await?;
        Ok(self.head_page_response(&rendered, encoding, sent))
    }

    /// A `200` of the head page `rendered`, in `encoding` if it asked for one.
    fn head_page_response(
        &self,
        rendered: &Rendered,
        encoding: Encoding,
        last_modified: Option<HeaderValue>,
    ) -> Response {
        let (body, encoding) = rendered.body(encoding, &self.inner.metrics);
        let mut response = self.page_response(rendered, body, encoding, "no-cache");
        if let Some(lm) = last_modified {
            response.headers_mut().insert(header::LAST_MODIFIED, lm);
        }
        response
    }

    /// The head's validators for one representation and encoding, and whether `request`
    /// already has them (a `304`).
    fn head_check(
        &self,
        request: &HeaderMap,
        representation: Representation,
        encoding: Encoding,
    ) -> HeadCheck {
        let head = *self.inner.head.borrow();
        let now = self.inner.clock.now().timestamp();
        let key =
            self.inner.id << 8 | (representation.index() as u64) << 2 | encoding.index() as u64;
        let values = head_values::kept(key, head.position, now, || {
            let etag = format!(
                "h{}{}-{}",
                representation.tag(),
                self.inner.page_size.get(),
                head.position
            );
            let quoted = quoted_etag(&etag, encoding);
            let last_modified = (head.position > 0).then(|| head.updated_us.div_euclid(1_000_000));
            HeadValues {
                position: head.position,
                second: now,
                quoted_value: header_value(&quoted),
                etag,
                quoted,
                last_modified,
                second_is_ambiguous: head.position > 1
                    && Some(head.prev_updated_us.div_euclid(1_000_000)) == last_modified,
                sent: last_modified.map(|secs| http_date(settled_second(secs, now))),
                expires: expires_at(now),
            }
        });
        let validators = Validators {
            etag: &values.quoted,
            last_modified: values.last_modified,
            second_is_ambiguous: values.second_is_ambiguous,
            now,
        };
        HeadCheck {
            unchanged: not_modified(request, validators),
            values,
        }
    }

    /// For a request read before it reaches the router (see [`crate::http::Hold`]): a long
    /// poll of the head (`Prefer: wait`) that would be answered `304` now waits until an entry
    /// commits or its wait ends, before anything else is spent on it. The request is then
    /// served as usual, told how long it waited. The reader it names is noted now, as the
    /// handler would (its checkpoint must not wait for the end of the wait).
    pub fn hold(
        &self,
        target: &str,
        request: &HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Option<BoxFuture<'static, ()>> {
        // A query (`?wait=`) is left to the handler: only the header form is held.
        let only = self.head_path(target)?;
        let wait = requested_wait(request, None).ok()??;
        let (representation, encoding) = negotiated(request, only).ok()?;
        // Subscribe before looking at the head, so a commit in between is not missed.
        let mut changes = self.inner.head.subscribe();
        if !self.head_check(request, representation, encoding).unchanged {
            return None;
        }
        self.observe_reader(request, Some(peer.ip()));
        Some(Box::pin(async move {
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }))
    }

    async fn head_page(
        &self,
        representation: Representation,
        position: Position,
        etag: String,
    ) -> Result<Arc<Rendered>, Error> {
        let cell = {
            let mut slot = lock(&self.inner.head_pages[representation.index()]);
            match &*slot {
                Some((at, cell)) if *at == position => cell.clone(),
                // A request that saw an older head than the one cached renders its own page.
                Some((at, _)) if *at > position => Arc::default(),
                _ => {
                    let cell: Arc<HeadCell> = Arc::default();
                    *slot = Some((position, cell.clone()));
                    cell
                }
            }
        };
        // The first request renders; the others wait on the cell and are all woken together
        // once it is set (a failed render leaves it empty, for the next request to try).
        let page = cell
            .get_or_try_init(|| self.render_head(representation, position, etag))
            .await?;
        Ok(page.clone())
    }

    async fn render_head(
        &self,
        representation: Representation,
        position: Position,
        etag: String,
    ) -> Result<Arc<Rendered>, Error> {
        let size = self.inner.page_size;
        // Only up to `position`: the body must match the ETag even if more has committed since.
        let entries = store::range(
            &self.inner.db,
            size.head_start(position),
            position,
            representation.has_details(),
        )
        .await?;
        let full = size.full_pages(position);
        let links = PageLinks {
            self_href: self.href(representation, None),
            // A reader with nothing yet reads the archives oldest first from here, each once,
            // instead of walking back through all of them before it can start.
            first: (full > 0).then(|| self.href(representation, Some(1))),
            prev_archive: (full > 0).then(|| self.href(representation, Some(full))),
            alternates: self.alternates(representation, None),
            ..PageLinks::default()
        };
        let page = render_as(representation, &self.inner.identity, &links, &entries)?;
        self.inner
            .metrics
            .head_renders
            .get_or_create(&RepresentationLabels {
                representation: label(representation),
            })
            .inc();
        let page = Arc::new(Rendered::new(
            representation,
            page,
            etag,
            entries.first().map(|e| e.updated_us),
        ));
        Ok(page)
    }

    /// `GET {path}/archive/{page}` (any representation, by `Accept`) or
    /// `GET {path}{segment}/archive/{page}` (`only` that one): an immutable archive page.
    pub async fn archive(
        &self,
        page: i64,
        request: &HeaderMap,
        only: Option<Representation>,
    ) -> Result<Response, Error> {
        let (representation, encoding) = match negotiated(request, only) {
            Ok(c) => c,
            Err(e) => {
                self.inner
                    .metrics
                    .count("archive", "none", StatusCode::NOT_ACCEPTABLE);
                return Err(e);
            }
        };
        self.mark_in_use(representation);
        let mut response = self
            .archive_response(page, request, representation, encoding)
            .await?;
        if only.is_none() && representation != Representation::Atom {
            let own = self.href(representation, Some(page));
            response
                .headers_mut()
                .insert(header::CONTENT_LOCATION, header_value(&own));
        }
        self.inner
            .metrics
            .count("archive", label(representation), response.status());
        Ok(response)
    }

    async fn archive_response(
        &self,
        page: i64,
        request: &HeaderMap,
        representation: Representation,
        encoding: Encoding,
    ) -> Result<Response, Error> {
        let size = self.inner.page_size;
        let full = size.full_pages(self.head_position());
        if page == full + 1 {
            // The page being filled is the subscription document; archive links point here
            // before it fills, and must keep pointing here after, so the link never changes.
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            let h = response.headers_mut();
            h.insert(
                header::LOCATION,
                header_value(&self.href(representation, None)),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(header::VARY, HeaderValue::from_static(VARY));
            return Ok(response);
        }
        if page < 1 || page > full {
            return Err(Error::NotFound(format!(
                "archive page {page} does not exist; pages 1 to {full} are full"
            )));
        }
        let archived = self.archive_page(representation, page, encoding).await?;
        let rendered = &archived.page;
        let quoted = quoted_etag(&rendered.etag, archived.encoding);
        let validators = Validators {
            etag: &quoted,
            last_modified: rendered.last_modified_secs,
            second_is_ambiguous: false,
            now: self.inner.clock.now().timestamp(),
        };
        if not_modified(request, validators) {
            return Ok(not_modified_response(
                header_value(&quoted),
                rendered.last_modified.clone(),
                IMMUTABLE,
            ));
        }
        Ok(self.page_response(
            rendered,
            archived.body.clone(),
            archived.encoding,
            IMMUTABLE,
        ))
    }

    /// An archive page in `encoding`, from the cache, else as stored, else rendered (and
    /// coded) now.
    async fn archive_page(
        &self,
        representation: Representation,
        page: i64,
        encoding: Encoding,
    ) -> Result<Arc<Archived>, Error> {
        let key = (representation, page, encoding);
        if let Some(hit) = lock(&self.inner.archives).get(&key) {
            return Ok(hit);
        }
        let archived = match self.stored_page(representation, page, encoding).await? {
            Some(stored) => stored,
            None => self.rendered_page(representation, page, encoding).await?,
        };
        let archived = Arc::new(archived);
        lock(&self.inner.archives).put(key, archived.clone());
        Ok(archived)
    }

    /// An archive page in `encoding`, read from its entries and rendered now.
    async fn rendered_page(
        &self,
        representation: Representation,
        page: i64,
        encoding: Encoding,
    ) -> Result<Archived, Error> {
        let (from, to) = self.inner.page_size.range(page);
        let entries = store::range(&self.inner.db, from, to, representation.has_details()).await?;
        self.inner.metrics.archive_renders.inc();
        let rendered = self.render_archive(representation, page, &entries)?;
        let (body, encoding) = rendered.body(encoding, &self.inner.metrics);
        // Only the body in the coding asked for is kept: a client keeps asking for the same
        // coding, and an inline page is ten times smaller coded than not.
        Ok(Archived {
            page: rendered.without_bodies(),
            body,
            encoding,
        })
    }

    /// Archive page `page` in `representation` from its `entries` (newest first), with its
    /// validators: the same bytes whenever and wherever it is rendered.
    fn render_archive(
        &self,
        representation: Representation,
        page: i64,
        entries: &[StoredEntry],
    ) -> Result<Rendered, Error> {
        let size = self.inner.page_size.get();
        if entries.len() as i64 != size {
            return Err(Error::ArchiveIncomplete {
                page,
                found: entries.len(),
                expected: size,
            });
        }
        let links = PageLinks {
            self_href: self.href(representation, Some(page)),
            first: None,
            prev_archive: (page > 1).then(|| self.href(representation, Some(page - 1))),
            // Always present, so the page is complete the moment it fills.
            next_archive: Some(self.href(representation, Some(page + 1))),
            current: Some(self.href(representation, None)),
            archive: true,
            alternates: self.alternates(representation, Some(page)),
        };
        let rendered = render_as(representation, &self.inner.identity, &links, entries)?;
        let digest = Sha256::digest(&rendered.body);
        let etag = format!("a{}{page}-{:x}", representation.tag(), digest);
        Ok(Rendered::new(
            representation,
            rendered,
            etag,
            entries.first().map(|e| e.updated_us),
        ))
    }

    /// The URL path of a page (`None`: the subscription document) in `representation`.
    fn href(&self, representation: Representation, page: Option<i64>) -> String {
        let base = &self.inner.settings.path;
        let segment = representation.segment();
        match page {
            None => format!("{base}{segment}"),
            Some(n) => format!("{base}{segment}/archive/{n}"),
        }
    }

    /// The same page in every other representation.
    fn alternates(
        &self,
        representation: Representation,
        page: Option<i64>,
    ) -> Vec<(Representation, String)> {
        Representation::ALL
            .into_iter()
            .filter(|r| *r != representation)
            .map(|r| (r, self.href(r, page)))
            .collect()
    }

    /// A page's response with `body`, in `encoding`.
    fn page_response(
        &self,
        page: &Rendered,
        body: Bytes,
        encoding: Encoding,
        cache_control: &'static str,
    ) -> Response {
        let mut response = body.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(page.representation.content_type()),
        );
        if encoding != Encoding::Identity {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.token()),
            );
        }
        h.insert(
            header::ETAG,
            header_value(&quoted_etag(&page.etag, encoding)),
        );
        if let Some(lm) = &page.last_modified {
            h.insert(header::LAST_MODIFIED, lm.clone());
        }
        if let Some(links) = &page.link_header {
            h.insert(header::LINK, links.clone());
        }
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        h.insert(header::VARY, HeaderValue::from_static(VARY));
        response
    }
}

/// The head's `Last-Modified` for a newest entry at `secs`, answered at `now` (whole seconds).
///
/// Dates have one-second resolution, and while the newest entry's second is still the current
/// one, more entries can commit within it. A client holding that date could then be told "not
/// modified" by whoever compares it: we do not (see `second_is_ambiguous`), but a cache does
/// (nginx answers `304` to an `If-Modified-Since` equal to its copy's date). So the date sent
/// is never the current second: until that second is over, the one before it, which makes the
/// next conditional poll a `200` rather than a `304` that hides an entry.
fn settled_second(secs: i64, now: i64) -> i64 {
    if secs >= now {
        secs - 1
    } else {
        secs
    }
}

/// Every feed response depends on both: the representation (generic URLs choose by `Accept`,
/// specific ones answer `406` to an `Accept` they cannot satisfy) and the coding.
const VARY: &str = "Accept, Accept-Encoding";

/// What [`Publisher::head_check`] found.
struct HeadCheck {
    values: Arc<HeadValues>,
    unchanged: bool,
}

/// `X-Accel-Expires` for the end of second `now`.
fn expires_at(now: i64) -> HeaderValue {
    header_value(&format!("@{now}"))
}

impl crate::http::Hold for Publisher {
    fn hold(
        &self,
        method: &axum::http::Method,
        target: &str,
        headers: &HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Option<BoxFuture<'static, ()>> {
        if method != axum::http::Method::GET {
            return None;
        }
        Publisher::hold(self, target, headers, peer)
    }

    fn answer(
        &self,
        path: &str,
        headers: &HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Option<Response> {
        self.answer_head(path, headers, peer)
    }

    /// A held long poll of the head, once woken: what the head's handler answers it, with the
    /// reader it names noted as the handler's extractor notes it.
    fn answer_held(
        &self,
        method: &axum::http::Method,
        target: &str,
        headers: HeaderMap,
        request: crate::http::HeldRequest,
    ) -> Option<BoxFuture<'static, Option<Response>>> {
        if method != axum::http::Method::GET {
            return None;
        }
        // Only the header form is held ([`Publisher::hold`]); a query is the handler's.
        let only = self.head_path(target)?;
        let wait = requested_wait(&headers, None).ok()??;
        let publisher = self.clone();
        Some(Box::pin(async move {
            publisher.observe_reader(&headers, Some(request.peer.ip()));
            publisher
                .head(&headers, only, Some(wait), request.held, &request.shutdown)
                .await
                .ok()
        }))
    }
}

/// The representation and coding a request gets, or why it gets none.
fn negotiated(
    request: &HeaderMap,
    only: Option<Representation>,
) -> Result<(Representation, Encoding), Error> {
    let text = |name| {
        request
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let offered = match &only {
        Some(r) => std::slice::from_ref(r),
        None => &Representation::ALL[..],
    };
    let representation = negotiate::representation(text(header::ACCEPT), offered)
        .map_err(|e| Error::NotAcceptable(e.0))?;
    let encoding = negotiate::encoding(text(header::ACCEPT_ENCODING))
        .map_err(|e| Error::NotAcceptable(e.0))?;
    Ok((representation, encoding))
}

fn label(representation: Representation) -> &'static str {
    match representation {
        Representation::Atom => "atom",
        Representation::AtomInline => "inline",
        Representation::Events => "events",
    }
}

fn quoted_etag(etag: &str, encoding: Encoding) -> String {
    format!("\"{etag}{}\"", encoding.etag_suffix())
}

fn not_modified_response(
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
    cache_control: &'static str,
) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    if let Some(lm) = last_modified {
        h.insert(header::LAST_MODIFIED, lm);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static(VARY));
    response
}

/// A poisoned cache lock only means a panic elsewhere; the cached data is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn http_date(secs: i64) -> HeaderValue {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    header_value(&httpdate::fmt_http_date(t))
}

/// Our header values are ASCII we built ourselves; an invalid one would be a bug, shown empty.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(bytes: usize) -> Arc<Archived> {
        let page = Page {
            body: Vec::new(),
            link_header: None,
        };
        Arc::new(Archived {
            page: Rendered::new(Representation::Atom, page, "a".into(), None),
            body: Bytes::from(vec![b'x'; bytes]),
            encoding: Encoding::Zstd,
        })
    }

    #[test]
    fn the_archive_cache_drops_the_least_recently_used_beyond_its_budget() {
        let o = ArchiveCache::OVERHEAD;
        let mut cache = ArchiveCache::new(100 + 2 * o);
        let key = |n| (Representation::Atom, n, Encoding::Zstd);
        cache.put(key(1), archived(40));
        cache.put(key(2), archived(40));
        assert!(
            cache.get(&key(1)).is_some(),
            "page 1 is now the most recent"
        );
        cache.put(key(3), archived(40));
        assert!(cache.get(&key(2)).is_none(), "page 2 was the least recent");
        assert!(cache.get(&key(1)).is_some() && cache.get(&key(3)).is_some());
        assert_eq!(cache.bytes, 80 + 2 * o);
        cache.put(key(3), archived(10));
        assert_eq!(
            cache.bytes,
            50 + 2 * o,
            "a page put again replaces its bytes"
        );
        cache.put(key(4), archived(500));
        assert_eq!(cache.bytes, 0, "a page larger than the budget is not kept");
        assert!(cache.get(&key(4)).is_none());
    }
}
