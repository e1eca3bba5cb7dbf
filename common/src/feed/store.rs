//! The `feed_entries` table: appending under a lock that makes commit order equal position
//! order, and reading ranges of positions.

use sqlx::AnyConnection;

use super::paging::{PageSize, Position};
use crate::db::{Backend, Db, WriteTx};
use crate::{Clock, Error};

/// Postgres channel that announces appended positions to every publisher on the database.
pub const NOTIFY_CHANNEL: &str = "feedline_feed";

/// Key of the Postgres advisory lock that serializes appends to the feed.
const APPEND_LOCK: i64 = 0x4645_4544_4c49_4e45; // "FEEDLINE"

/// What a publisher supplies for one event. Its `atom:id` is minted when it is appended.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub title: String,
    pub summary: String,
    /// The event type, published as `atom:category/@term`.
    pub category: String,
    /// Where the details live: an absolute path (resolved against the feed's URL, so it stays
    /// right behind a path-preserving proxy) or an absolute URL.
    pub link: String,
    /// The details document as it is at this event (JSON), published inline by the
    /// representations that carry details; `None` publishes the link alone.
    pub details: Option<String>,
}

/// An entry as stored and published.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEntry {
    pub position: i64,
    pub entry_id: String,
    pub title: String,
    pub summary: String,
    pub category: String,
    pub link: String,
    pub updated_us: i64,
    pub details: Option<String>,
}

/// The result of an append, to hand to the publisher once the transaction has committed.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub position: Position,
    pub updated_us: i64,
    /// Time of the entry before it (0 when this is the first).
    pub prev_updated_us: i64,
}

/// Rows per multi-row insert when appending.
const APPEND_CHUNK: usize = crate::db::rows_per_statement(8);

/// Appends `entries`, in order, inside `tx`; `None` when there are none.
///
/// Commit order must equal position order, or a reader that saw position N could later find a
/// new entry below N. SQLite serializes writers already. On Postgres, concurrent transactions
/// would take positions in one order and commit in another, so the append holds a
/// transaction-scoped advisory lock: the next writer reads the maximum only after the previous
/// one has committed (locks are released after the commit becomes visible). Callers append as
/// the last statement before commit to keep that window short.
pub async fn append(
    tx: &mut WriteTx,
    backend: Backend,
    clock: &Clock,
    entries: &[NewEntry],
) -> Result<Option<Appended>, Error> {
    if entries.is_empty() {
        return Ok(None);
    }
    let conn: &mut AnyConnection = tx.conn();
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let last: Option<(i64, i64)> = sqlx::query_as(
        "SELECT position, updated_us FROM feed_entries ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (last_position, last_updated) = last.unwrap_or((0, 0));
    // Entry times never go backwards, even if the wall clock does, so `updated` agrees with
    // position order and with Last-Modified. Entries appended together share one time.
    let updated_us = clock.now().timestamp_micros().max(last_updated);
    let mut position = last_position;
    for chunk in entries.chunks(APPEND_CHUNK) {
        let sql = format!(
            "INSERT INTO feed_entries (position, entry_id, title, summary, category, link, \
             updated_us, details) VALUES {}",
            crate::db::values_placeholders(backend, chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for entry in chunk {
            position += 1;
            query = query
                .bind(position)
                .bind(mint_entry_id())
                .bind(&entry.title)
                .bind(&entry.summary)
                .bind(&entry.category)
                .bind(&entry.link)
                .bind(updated_us)
                .bind(entry.details.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    if backend == Backend::Postgres {
        // Delivered at commit, to every listener: other instances serving this feed wake
        // their long polls and refresh their in-memory head.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(position.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some(Appended {
        position,
        updated_us,
        prev_updated_us: if entries.len() > 1 {
            updated_us
        } else {
            last_updated
        },
    }))
}

/// RFC 4287 §4.2.6: an id is universally unique and never reused. A random UUID per entry
/// holds that even where positions repeat: a feed restored from an older backup, or another
/// deployment, mints different ids for its new entries, so no reader can take them for ones
/// it has handled.
fn mint_entry_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// The stored identity of the feed: its `atom:id` and when it was created, recorded on first
/// use. A feed created before identities were stored keeps the id it was published under,
/// `legacy_id`, so that its readers go on following it.
pub async fn identity(db: &Db, legacy_id: Option<&str>) -> Result<(String, i64), Error> {
    let (entries, oldest_us): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(updated_us) FROM feed_entries")
            .fetch_one(db.pool())
            .await?;
    let id = match legacy_id {
        Some(legacy) if entries > 0 => legacy.to_owned(),
        _ => format!("urn:uuid:{}", uuid::Uuid::new_v4()),
    };
    let created_us = oldest_us.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    // Several instances may open the feed at once: the first insert wins, all read it back.
    for (name, value) in [("feed_id", id), ("created_us", created_us.to_string())] {
        sqlx::query(
            "INSERT INTO feed_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(db.pool())
        .await?;
    }
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, value FROM feed_meta WHERE name IN ('feed_id', 'created_us')")
            .fetch_all(db.pool())
            .await?;
    let value = |name: &str| {
        rows.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::Config(format!("feed_meta has no {name}")))
    };
    let created_us = value("created_us")?
        .parse::<i64>()
        .map_err(|_| Error::Config("feed_meta holds an invalid created_us".into()))?;
    Ok((value("feed_id")?, created_us))
}

/// Entries with positions in `from..=to`, newest first; their details snapshots only when
/// `with_details` (the representations that publish them), not read at all otherwise.
pub async fn range(
    db: &Db,
    from: Position,
    to: Position,
    with_details: bool,
) -> Result<Vec<StoredEntry>, Error> {
    let details = if with_details {
        "details"
    } else {
        "CAST(NULL AS TEXT) AS details"
    };
    let sql = format!(
        "SELECT position, entry_id, title, summary, category, link, updated_us, {details} \
         FROM feed_entries WHERE position >= $1 AND position <= $2 ORDER BY position DESC"
    );
    let rows = sqlx::query_as(&sql)
        .bind(from)
        .bind(to)
        .fetch_all(db.pool())
        .await?;
    Ok(rows)
}

/// The newest entry's position and time, and the time of the one before it.
pub async fn newest(db: &Db) -> Result<Appended, Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT position, updated_us FROM feed_entries ORDER BY position DESC LIMIT 2",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(Appended {
        position: rows.first().map_or(0, |r| r.0),
        updated_us: rows.first().map_or(0, |r| r.1),
        prev_updated_us: rows.get(1).map_or(0, |r| r.1),
    })
}

/// The feed's page size: recorded on first use (the requested size, or the default), and
/// afterwards the recorded one. A request for a different size is refused: full pages were
/// promised to caches as immutable.
pub async fn page_size(db: &Db, requested: Option<PageSize>) -> Result<PageSize, Error> {
    let initial = requested.unwrap_or(PageSize::DEFAULT).get();
    sqlx::query(
        "INSERT INTO feed_meta (name, value) VALUES ('page_size', $1) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(initial.to_string())
    .execute(db.pool())
    .await?;
    let (stored,): (String,) =
        sqlx::query_as("SELECT value FROM feed_meta WHERE name = 'page_size'")
            .fetch_one(db.pool())
            .await?;
    let stored = stored
        .parse::<i64>()
        .map_err(|_| Error::Config(format!("feed_meta holds an invalid page size {stored:?}")))
        .and_then(|n| PageSize::parse(n).map_err(Error::Config))?;
    match requested {
        Some(size) if size != stored => Err(Error::Config(format!(
            "feed page size {} differs from {}, the size this feed was created with; \
             archive pages are immutable, so the size cannot change",
            size.get(),
            stored.get()
        ))),
        _ => Ok(stored),
    }
}

/// The newest position after `after` whose entry links to `link`: a range scan of the primary
/// key from `after`, so its cost is the entries after it, not the feed's length.
pub async fn newest_with_link(
    db: &Db,
    link: &str,
    after: Position,
) -> Result<Option<Position>, Error> {
    let row: (Option<i64>,) =
        sqlx::query_as("SELECT MAX(position) FROM feed_entries WHERE position > $1 AND link = $2")
            .bind(after)
            .bind(link)
            .fetch_one(db.pool())
            .await?;
    Ok(row.0)
}
