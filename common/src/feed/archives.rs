//! Full archive pages kept in the database as rendered (`feed_archive_pages`), coded in zstd,
//! and the archiver that stores them.
//!
//! A full page never changes, so rendering it from its entries more than once is waste: the
//! first reader of a backlog had the order service spend most of its CPU reading entries,
//! rendering, hashing and coding pages. The archiver renders each page of the representations
//! in use shortly after it fills and stores it here; a request then reads one row and, for
//! zstd (what our consumer asks for), sends its body as it is.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::negotiate::{Encoding, Representation};
use super::paging::PageSize;
use super::render::{FeedIdentity, Page};
use super::store::{self, StoredEntry};
use super::{compress, label, lock, Archived, Publisher, Rendered};
use crate::db::Db;
use crate::Error;

/// The version of what rendering produces. Bump it when a page's bytes change for the same
/// entries (a new element, another attribute order): pages stored by the old version are then
/// of another layout, never served, and replaced. `tests::the_rendering_of_a_page_is_unchanged`
/// fails when the bytes change and this was not bumped.
pub(super) const FORMAT: u32 = 1;

/// Pages rendered from one read of their entries and stored in one transaction.
pub(super) const BATCH: i64 = 32;
/// How often the archiver stores the pages that filled: under a steady stream of placements,
/// a few hundred pages in a few transactions per second rather than one per page.
const EVERY: Duration = Duration::from_secs(1);
/// The most of a core the archiver takes while entries are being appended (it pauses after
/// each batch): rendering all three representations of every page as it fills cost 22 % of
/// SQLite's placements at 64 clients, which is what a placement pays for nothing until a
/// reader of cold archives comes.
const SHARE: f64 = 0.1;

/// One representation of one stored page.
pub(super) struct StoredPage {
    pub representation: Representation,
    pub number: i64,
    /// The identity body's entity tag, without quotes.
    pub etag: String,
    pub last_modified_us: Option<i64>,
    pub link_header: Option<String>,
    /// Length of the identity body.
    pub size: usize,
    /// The body in zstd.
    pub body: Vec<u8>,
}

/// What a page's bytes depend on besides its entries: the rendering's version, the feed's
/// identity, where it is served and its page size.
pub(super) fn layout(identity: &FeedIdentity, path: &str, page_size: PageSize) -> String {
    let described = format!(
        "{FORMAT}\n{}\n{}\n{}\n{path}\n{}",
        identity.id,
        identity.title,
        identity.author,
        page_size.get()
    );
    let digest = Sha256::digest(described.as_bytes());
    format!("{FORMAT}-{:x}", digest)[..18].to_owned()
}

/// Deletes pages stored under another layout (after the feed's title or path changed, or a
/// new version renders differently); returns how many.
pub(super) async fn forget_other_layouts(db: &Db, layout: &str) -> Result<u64, Error> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("DELETE FROM feed_archive_pages WHERE layout <> $1")
        .bind(layout)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Per representation (in [`Representation::index`] order), the newest page stored: pages
/// of a representation are stored in order, so every page up to it is stored.
pub(super) async fn stored_through(db: &Db, layout: &str) -> Result<[i64; 3], Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT representation, MAX(number) FROM feed_archive_pages WHERE layout = $1 \
         GROUP BY representation",
    )
    .bind(layout)
    .fetch_all(db.pool())
    .await?;
    Ok(Representation::ALL.map(|r| {
        rows.iter()
            .find(|(name, _)| name == label(r))
            .map_or(0, |(_, n)| *n)
    }))
}

/// Page `number` in `representation`, if stored under `layout`.
pub(super) async fn stored(
    db: &Db,
    representation: Representation,
    number: i64,
    layout: &str,
) -> Result<Option<StoredPage>, Error> {
    type Row = (String, Option<i64>, Option<String>, i64, Vec<u8>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT etag, last_modified_us, link_header, size, body FROM feed_archive_pages \
         WHERE representation = $1 AND number = $2 AND layout = $3",
    )
    .bind(label(representation))
    .bind(number)
    .bind(layout)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(
        |(etag, last_modified_us, link_header, size, body)| StoredPage {
            representation,
            number,
            etag,
            last_modified_us,
            link_header,
            size: usize::try_from(size).unwrap_or(0),
            body,
        },
    ))
}

/// Stores `pages` in one transaction; a page already stored (by another process of the same
/// feed on Postgres) is left as it is: it holds the same bytes.
pub(super) async fn keep(db: &Db, layout: &str, pages: &[StoredPage]) -> Result<(), Error> {
    let mut tx = db.begin_write().await?;
    for page in pages {
        sqlx::query(
            "INSERT INTO feed_archive_pages \
             (representation, number, layout, etag, last_modified_us, link_header, size, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (representation, number) DO NOTHING",
        )
        .bind(label(page.representation))
        .bind(page.number)
        .bind(layout)
        .bind(&page.etag)
        .bind(page.last_modified_us)
        .bind(page.link_header.as_deref())
        .bind(page.size as i64)
        .bind(&page.body)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Publisher {
    /// An archive page in `encoding` from its stored rendering; `None` when it is not stored
    /// (yet), or its row cannot be decoded (then it is rendered again, and said).
    pub(super) async fn stored_page(
        &self,
        representation: Representation,
        page: i64,
        encoding: Encoding,
    ) -> Result<Option<Archived>, Error> {
        let through = &self.inner.archived_through[representation.index()];
        if page > through.load(Ordering::Acquire) {
            return Ok(None);
        }
        let found = stored(&self.inner.db, representation, page, &self.inner.layout);
        let Some(stored) = found.await? else {
            return Ok(None);
        };
        let rendered = |body: Vec<u8>| {
            Rendered::new(
                representation,
                Page {
                    body,
                    link_header: stored.link_header.clone(),
                },
                stored.etag.clone(),
                stored.last_modified_us,
            )
        };
        if encoding == Encoding::Zstd {
            return Ok(Some(Archived {
                page: rendered(Vec::new()),
                body: Bytes::from(stored.body),
                encoding,
            }));
        }
        match compress::decode_zstd(&stored.body, stored.size) {
            Ok(identity) => {
                let page = rendered(identity);
                let (body, encoding) = page.body(encoding, &self.inner.metrics);
                Ok(Some(Archived {
                    page: page.without_bodies(),
                    body,
                    encoding,
                }))
            }
            Err(e) => {
                tracing::warn!(
                    page, representation = label(representation), error = %e,
                    "a stored archive page does not decode; rendering it from its entries"
                );
                Ok(None)
            }
        }
    }

    /// Renders every full archive page not stored yet in each of `representations` and
    /// stores it, [`BATCH`] pages per read and transaction; returns how many pages
    /// (one per representation). While entries are being appended meanwhile, it pauses after
    /// each batch so as to take at most [`SHARE`] of a core from them. The archiver
    /// calls it after pages fill; `order seed` once it has appended.
    pub async fn store_archives(&self, representations: &[Representation]) -> Result<i64, Error> {
        let _alone = self.inner.archiving.lock().await;
        let size = self.inner.page_size;
        let mut stored = 0;
        for &representation in representations {
            let slot = &self.inner.archived_through[representation.index()];
            loop {
                let through = slot.load(Ordering::Acquire);
                let head = self.head_position();
                let full = size.full_pages(head);
                if through >= full {
                    break;
                }
                let started = std::time::Instant::now();
                let last = full.min(through + BATCH);
                let (from, to) = (size.range(through + 1).0, size.range(last).1);
                let details = representation.has_details();
                let entries = store::range(&self.inner.db, from, to, details).await?;
                let this = self.clone();
                // Rendering and coding a batch takes milliseconds of CPU: off the async workers.
                let pages = tokio::task::spawn_blocking(move || {
                    this.render_stored(representation, through, last, &entries)
                })
                .await
                .map_err(|_| Error::Invariant("rendering archive pages does not panic"))??;
                keep(&self.inner.db, &self.inner.layout, &pages).await?;
                slot.fetch_max(last, Ordering::AcqRel);
                let count = last - through;
                self.inner.metrics.archive_pages_stored.inc_by(count as u64);
                stored += count;
                if self.head_position() != head {
                    // Entries are being appended: leave them most of the machine.
                    let busy = started.elapsed().as_secs_f64();
                    let pause = busy * (1.0 - SHARE) / SHARE;
                    tokio::time::sleep(Duration::from_secs_f64(pause.min(1.0))).await;
                }
            }
        }
        Ok(stored)
    }

    /// Pages `through + 1 ..= last` in `representation` from their `entries` (newest
    /// first), as stored.
    fn render_stored(
        &self,
        representation: Representation,
        through: i64,
        last: i64,
        entries: &[StoredEntry],
    ) -> Result<Vec<StoredPage>, Error> {
        let size = self.inner.page_size.get() as usize;
        let newest = through + (entries.len() / size) as i64;
        if newest != last || !entries.len().is_multiple_of(size) {
            return Err(Error::ArchiveIncomplete {
                page: last,
                found: entries.len(),
                expected: (last - through) * size as i64,
            });
        }
        let mut pages = Vec::with_capacity(entries.len() / size);
        for (i, chunk) in entries.chunks(size).enumerate() {
            let number = newest - i as i64;
            let rendered = self.render_archive(representation, number, chunk)?;
            let (body, encoding) = rendered.body(Encoding::Zstd, &self.inner.metrics);
            if encoding != Encoding::Zstd {
                return Err(Error::Invariant("an archive page codes in zstd"));
            }
            pages.push(StoredPage {
                representation,
                number,
                etag: rendered.etag.clone(),
                last_modified_us: chunk.first().map(|e| e.updated_us),
                link_header: rendered
                    .link_header
                    .as_ref()
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned),
                size: rendered.body.len(),
                body: body.to_vec(),
            });
        }
        Ok(pages)
    }

    /// Notes that `representation` is read, so that the archiver stores its pages.
    pub(super) fn mark_in_use(&self, representation: Representation) {
        let flag = &self.inner.in_use[representation.index()];
        // A load first: this runs on every head request, and a store would bounce the line.
        if !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::AcqRel) {
            self.inner.in_use_changed.notify_one();
        }
    }

    /// The representations requested since the service started, or stored before it.
    pub fn representations_in_use(&self) -> Vec<Representation> {
        Representation::ALL
            .into_iter()
            .filter(|r| self.inner.in_use[r.index()].load(Ordering::Acquire))
            .collect()
    }

    /// Until `shutdown`: stores the pages of the representations in use as they fill
    /// ([`Publisher::store_archives`]), at most once per [`EVERY`] so that pages
    /// filled meanwhile are stored in one transaction, and all the pages of a representation
    /// when it is first requested. A representation nobody reads costs nothing. Does nothing
    /// unless [`FeedSettings::store_archives`].
    pub fn keep_archives(&self, shutdown: CancellationToken) {
        if !self.inner.settings.store_archives {
            return;
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let mut head = this.inner.head.subscribe();
            loop {
                let using = this.representations_in_use();
                match this.store_archives(&using).await {
                    Ok(_) => {}
                    Err(_) if this.inner.db.pool().is_closed() => break,
                    Err(e) => tracing::warn!(error = %e, "cannot store archive pages; retrying"),
                }
                let through = using
                    .iter()
                    .map(|r| this.inner.archived_through[r.index()].load(Ordering::Acquire))
                    .min();
                let size = this.inner.page_size;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = this.inner.in_use_changed.notified() => {}
                    changed = head.wait_for(|h| through.is_some_and(|t| size.full_pages(h.position) > t)) => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(EVERY) => {}
                }
            }
        });
        *lock(&self.inner.archiver_task) = Some(task);
    }

    /// Waits for the archiver to stop after shutdown was signalled; call it before the
    /// database closes.
    pub async fn archives_written(&self) {
        let task = lock(&self.inner.archiver_task).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "the archiver failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> FeedIdentity {
        FeedIdentity {
            id: "urn:uuid:0f3c".to_owned(),
            title: "t".to_owned(),
            author: "a".to_owned(),
            created_us: 0,
        }
    }

    /// Pages rendered by an older version are served from the database as they were stored,
    /// so a change to what rendering produces must come with a new [`FORMAT`]. If this fails
    /// because rendering changed on purpose, bump `FORMAT` and update the digests here.
    #[test]
    fn the_rendering_of_a_page_is_unchanged() {
        use super::super::render::{render_as, PageLinks};
        use super::super::store::StoredEntry;
        let entries: Vec<StoredEntry> = (1..=2)
            .rev()
            .map(|n| StoredEntry {
                position: n,
                entry_id: format!("urn:uuid:00000000-0000-4000-8000-00000000000{n}"),
                title: format!("Order {n} placed"),
                summary: format!("Order {n} by customer 1: 1 line, 12.50 EUR"),
                category: "order.placed".to_owned(),
                link: format!("/order/orders/{n}?version=1"),
                updated_us: 1_780_000_000_000_000 + n,
                details: Some(format!(r#"{{"id":{n},"status":"placed","total":"12.50"}}"#)),
            })
            .collect();
        let mut digests = Vec::new();
        for representation in Representation::ALL {
            let links = PageLinks {
                self_href: "/feed/archive/1".to_owned(),
                first: None,
                prev_archive: None,
                next_archive: Some("/feed/archive/2".to_owned()),
                current: Some("/feed".to_owned()),
                archive: true,
                alternates: vec![(Representation::Events, "/feed/events/archive/1".to_owned())],
            };
            let page = render_as(representation, &identity(), &links, &entries).unwrap();
            let mut hash = Sha256::new();
            hash.update(&page.body);
            hash.update(page.link_header.unwrap_or_default());
            digests.push(format!("{:x}", hash.finalize())[..16].to_owned());
        }
        assert_eq!(
            digests,
            ["dd2fc16efafb973a", "9c2bb1f40c6f76df", "06b46c3955abb9d7"],
            "rendering changed: bump archives::FORMAT (stored pages hold the old bytes)"
        );
    }

    #[test]
    fn the_layout_changes_with_what_a_page_depends_on() {
        let size = PageSize::DEFAULT;
        let base = layout(&identity(), "/feed", size);
        assert_eq!(base, layout(&identity(), "/feed", size), "stable");
        assert!(base.starts_with(&format!("{FORMAT}-")));
        let other_title = FeedIdentity {
            title: "u".to_owned(),
            ..identity()
        };
        assert_ne!(base, layout(&other_title, "/feed", size));
        assert_ne!(base, layout(&identity(), "/other", size));
        assert_ne!(
            base,
            layout(&identity(), "/feed", PageSize::parse(5).unwrap())
        );
    }
}
