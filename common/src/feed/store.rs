//! The `feed_entries` table: appending under a lock that makes commit order equal position
//! order, and reading ranges of positions.

use sqlx::AnyConnection;

use super::paging::{PageSize, Position};
use crate::db::{Backend, Binds, Db, WriteTx};
use crate::{Clock, Error};

/// Postgres channel that announces appended positions to every publisher on the database.
pub const NOTIFY_CHANNEL: &str = "feedline_feed";

/// Key of the Postgres advisory lock with which earlier versions serialized appends; still taken
/// so that they are serialized with this one during a rolling upgrade.
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
/// Rows in the Postgres statement that draws the positions (see [`append_params`]).
const APPEND_HEAD_ROWS: usize = crate::db::rows_per_statement(7) - 1;

/// Appends `entries`, in order, inside `tx`; `None` when there are none.
///
/// Commit order must equal position order, or a reader that saw position N could later find a
/// new entry below N. SQLite serializes writers already. On Postgres, concurrent transactions
/// would take positions in one order and commit in another, so an append draws its positions
/// from the `feed_head` row and holds that row's lock until it commits: the next appender's
/// update waits, then sees the row as committed (locks are released after the commit becomes
/// visible). Callers append as the last statement before commit to keep that window short.
pub async fn append(
    tx: &mut WriteTx,
    backend: Backend,
    clock: &Clock,
    entries: &[NewEntry],
) -> Result<Option<Appended>, Error> {
    if entries.is_empty() {
        return Ok(None);
    }
    let now_us = clock.now().timestamp_micros();
    let conn: &mut AnyConnection = tx.conn();
    let row = match backend {
        Backend::Postgres => append_postgres(conn, now_us, entries).await?,
        Backend::Sqlite => append_sqlite(conn, now_us, entries).await?,
    };
    Ok(Some(appended(row, entries.len())))
}

/// What appending `count` entries came to, from the statement's [`HeadRow`].
pub fn appended((position, updated_us, prev_updated_us): HeadRow, count: usize) -> Appended {
    Appended {
        position,
        updated_us,
        // Entries appended together share one time.
        prev_updated_us: if count > 1 {
            updated_us
        } else {
            prev_updated_us
        },
    }
}

/// Parameters of an [`append_statement`] besides its writes', for `rows` entries.
pub const fn append_params(rows: usize) -> usize {
    4 + 7 * rows
}

/// Under SQLite's write lock: reads the last entry, inserts after it. Returns the last
/// position, the entries' time and the time of the entry before them.
async fn append_sqlite(
    conn: &mut AnyConnection,
    now_us: i64,
    entries: &[NewEntry],
) -> Result<HeadRow, Error> {
    let last: Option<(i64, i64)> = sqlx::query_as(
        "SELECT position, updated_us FROM feed_entries ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (last_position, last_updated) = last.unwrap_or((0, 0));
    // Entry times never go backwards, even if the wall clock does, so `updated` agrees with
    // position order and with Last-Modified.
    let updated_us = now_us.max(last_updated);
    insert_entries(conn, Backend::Sqlite, last_position, updated_us, entries).await?;
    Ok((
        last_position + entries.len() as i64,
        updated_us,
        last_updated,
    ))
}

/// One statement draws the positions from `feed_head` (taking its row lock until commit),
/// inserts the first rows and notifies the other publishers on the database; a long append
/// inserts the rest with plain multi-row inserts.
async fn append_postgres(
    conn: &mut AnyConnection,
    now_us: i64,
    entries: &[NewEntry],
) -> Result<HeadRow, Error> {
    let first = &entries[..entries.len().min(APPEND_HEAD_ROWS)];
    let sql = append_statement(&Writes::default(), first.len());
    let query = bind_append(sqlx::query_as(&sql), now_us, entries.len(), first);
    let row = query.fetch_optional(&mut *conn).await?;
    let ((last_position, updated_us, prev_updated_us), _) = head_row(row)?;
    let rest = &entries[first.len()..];
    let before_rest = last_position - rest.len() as i64;
    insert_entries(conn, Backend::Postgres, before_rest, updated_us, rest).await?;
    Ok((last_position, updated_us, prev_updated_us))
}

/// What an append made of the head: last position, the entries' time, the time before.
pub type HeadRow = (i64, i64, i64);

/// The row an append statement returns: its [`HeadRow`], then what [`Writes::returning`] gave.
pub type AppendRow = (i64, i64, i64, Option<String>);

/// A Postgres statement that appends (see [`append_statement`]).
pub type AppendQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Any, AppendRow, sqlx::any::AnyArguments<'q>>;

/// What a statement of [`append_statement`] writes besides the feed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Writes<'a> {
    /// Data-modifying common table expressions, `a AS (INSERT …), b AS (…), `.
    pub ctes: &'a str,
    /// How many parameters they take, `$1` to `$params`; the append's own follow.
    pub params: usize,
    /// The expressions (each with a `RETURNING` clause) written before the append takes its
    /// lock, so that concurrent statements overlap there; the others run after it.
    pub first: &'a [&'a str],
    /// A text expression the statement also returns (`NULL` without one).
    pub returning: Option<&'a str>,
}

/// Postgres: `WITH {writes.ctes}…` a statement that appends `rows` entries after the writes,
/// whose parameters its own follow. Bind the writes' parameters, then [`bind_append`]'s. It
/// returns an [`AppendRow`].
///
/// The statement draws the positions from `feed_head` (taking its row lock until commit),
/// inserts the entries and notifies the other publishers on the database. It also takes the
/// advisory lock with which earlier versions serialized their appends (before the row lock:
/// it is the update's one-time filter, evaluated before the row is read), so an instance of an
/// earlier version appending to the same database during a rolling upgrade is serialized too;
/// the positions it took without updating `feed_head` are covered by also counting from the
/// last entry this statement sees. One it committed after this statement's snapshot collides on
/// the primary key and fails the append (loudly; a retry sees it).
pub fn append_statement(writes: &Writes, rows: usize) -> String {
    let p = |n: usize| format!("${}", writes.params + n);
    let first: String = writes
        .first
        .iter()
        .map(|cte| format!(" AND (SELECT COUNT(*) FROM {cte}) >= 0"))
        .collect();
    format!(
        "WITH {ctes}last AS ( \
             SELECT position, updated_us FROM feed_entries ORDER BY position DESC LIMIT 1 \
         ), head AS ( \
             UPDATE feed_head AS h SET \
                 position = GREATEST(h.position, COALESCE((SELECT position FROM last), 0)) + {n}, \
                 prev_updated_us = GREATEST(h.updated_us, \
                     COALESCE((SELECT updated_us FROM last), 0)), \
                 updated_us = GREATEST(h.updated_us, \
                     COALESCE((SELECT updated_us FROM last), 0), {now}) \
             WHERE (SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock({lock})) AS l) = 1{first} \
             RETURNING h.position, h.updated_us, h.prev_updated_us \
         ), inserted AS ( \
             INSERT INTO feed_entries (position, entry_id, title, summary, category, link, \
                 updated_us, details) \
             SELECT head.position - {n} + v.k, v.entry_id, v.title, v.summary, v.category, \
                 v.link, head.updated_us, v.details \
             FROM head, (VALUES {values}) AS v (k, entry_id, title, summary, category, link, details) \
         ) \
         SELECT head.position, head.updated_us, head.prev_updated_us, {returning} FROM head \
         CROSS JOIN LATERAL (SELECT pg_notify({channel}, head.position::text)) AS notified",
        ctes = writes.ctes,
        returning = writes.returning.unwrap_or("NULL::text"),
        lock = p(1),
        n = p(2),
        now = p(3),
        channel = p(4),
        values = crate::db::values_placeholders_from(Backend::Postgres, writes.params + 5, rows, 7)
    )
}

/// Binds an [`append_statement`]'s own parameters: `rows` of the `total` entries appended
/// (the rest inserted after it, see [`insert_entries`]).
pub fn bind_append<'q, Q: Binds<'q>>(
    query: Q,
    now_us: i64,
    total: usize,
    rows: &'q [NewEntry],
) -> Q {
    let mut query = query
        .push(APPEND_LOCK)
        .push(total as i64)
        .push(now_us)
        // Delivered at commit, to every listener: other instances serving this feed wake
        // their long polls and refresh their in-memory head.
        .push(NOTIFY_CHANNEL);
    for (k, entry) in (1i64..).zip(rows) {
        query = query
            .push(k)
            .push(mint_entry_id())
            .push(entry.title.as_str())
            .push(entry.summary.as_str())
            .push(entry.category.as_str())
            .push(entry.link.as_str())
            .push(entry.details.as_deref());
    }
    query
}

/// The row of an append statement, which it always returns (`feed_head` has its one row).
pub fn head_row(row: Option<AppendRow>) -> Result<(HeadRow, Option<String>), Error> {
    let (position, updated_us, prev_updated_us, returned) = row.ok_or(Error::Invariant(
        "feed_head has its one row (migration 103)",
    ))?;
    Ok(((position, updated_us, prev_updated_us), returned))
}

/// Inserts `entries` at the positions after `after`, all at time `updated_us`.
async fn insert_entries(
    conn: &mut AnyConnection,
    backend: Backend,
    after: i64,
    updated_us: i64,
    entries: &[NewEntry],
) -> Result<(), Error> {
    let mut position = after;
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_statement_numbers_its_parameters_after_the_writes() {
        let writes = Writes {
            ctes: "w AS (INSERT INTO t VALUES ($1, $2) RETURNING 1), ",
            params: 2,
            first: &["w"],
            returning: Some("(SELECT 'x')"),
        };
        let sql = append_statement(&writes, 2);
        assert!(sql.starts_with("WITH w AS (INSERT INTO t VALUES ($1, $2) RETURNING 1), last AS"));
        assert!(sql.contains("pg_advisory_xact_lock($3)"));
        assert!(
            sql.contains("= 1 AND (SELECT COUNT(*) FROM w) >= 0"),
            "{sql}"
        );
        assert!(sql.contains("pg_notify($6, "));
        assert!(
            sql.contains("head.prev_updated_us, (SELECT 'x') FROM head"),
            "{sql}"
        );
        assert!(
            append_statement(&Writes::default(), 1).contains("prev_updated_us, NULL::text FROM")
        );
        assert!(sql.contains("($7, $8, $9, $10, $11, $12, $13), ($14, "));
        assert!(sql.contains("$20)"));
        assert!(!sql.contains("$21"));
    }

    #[test]
    fn an_append_alone_fits_postgres_parameter_limit_or_is_refused() {
        let sql = super::super::Publisher::append_alone_sql;
        assert!(sql(&Writes::default(), 256).is_some());
        let params = crate::db::POSTGRES_MAX_PARAMS - append_params(2);
        let writes = |params| Writes {
            params,
            ..Writes::default()
        };
        assert!(sql(&writes(params), 2).is_some());
        assert!(sql(&writes(params + 1), 2).is_none());
    }
}
