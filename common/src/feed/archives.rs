//! Full archive pages kept in the database as rendered (`feed_archive_pages`), coded in zstd.
//!
//! A full page never changes, so rendering it from its entries more than once is waste: the
//! first reader of a backlog had the order service spend most of its CPU reading entries,
//! rendering, hashing and coding pages. The publisher's archiver renders each page shortly
//! after it fills and stores it here; a request then reads one row and, for zstd (what our
//! consumer asks for), sends its body as it is.

use sha2::{Digest, Sha256};

use super::label;
use super::negotiate::Representation;
use super::paging::PageSize;
use super::render::FeedIdentity;
use crate::db::Db;
use crate::Error;

/// The version of what rendering produces. Bump it when a page's bytes change for the same
/// entries (a new element, another attribute order): pages stored by the old version are then
/// of another layout, never served, and replaced. `tests::the_rendering_of_a_page_is_unchanged`
/// fails when the bytes change and this was not bumped.
pub(super) const FORMAT: u32 = 1;

/// Pages rendered from one read of their entries and stored in one transaction.
pub(super) const BATCH: i64 = 32;

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
