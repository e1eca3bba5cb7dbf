//! The consumer's own tables: checkpoint, handled entries, parked entries.

use serde::Serialize;
use sqlx::AnyConnection;

use super::page::FeedEntry;
use crate::clock::{from_micros, rfc3339};
use std::collections::HashMap;

use crate::db::{keep_prepared, list_placeholders, values_placeholders, Backend, Db};
use crate::Error;

/// The last entry revision handled, in feed order, and the feed it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub entry_id: Option<String>,
    pub entry_updated_us: i64,
    pub handled: i64,
    /// The feed-level `atom:id` of the feed read so far.
    pub feed_id: Option<String>,
    /// Revisions at or before this time without a row were handled and pruned.
    pub pruned_through_us: i64,
}

pub async fn checkpoint(db: &Db) -> Result<Checkpoint, Error> {
    type Row = (Option<String>, i64, i64, Option<String>, i64);
    let (entry_id, entry_updated_us, handled, feed_id, pruned_through_us): Row = sqlx::query_as(
        "SELECT entry_id, entry_updated_us, handled, feed_id, pruned_through_us \
         FROM consumer_checkpoint WHERE id = 1",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(Checkpoint {
        entry_id,
        entry_updated_us,
        handled,
        feed_id,
        pruned_through_us,
    })
}

/// Forgets everything the consumer did (for a rebuild).
pub async fn reset(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM consumer_handled",
        "DELETE FROM consumer_parked",
        "UPDATE consumer_checkpoint SET entry_id = NULL, entry_updated_us = 0, handled = 0, \
         feed_id = NULL, pruned_through_us = 0, handled_through_us = 0 WHERE id = 1",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Where the handling stands, as a batch starts.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    /// How many entries were handled so far (the last `seq` given out).
    pub seq: i64,
    /// The pruning watermark (see [`prune`]).
    pub pruned_through_us: i64,
    /// The newest `atom:updated` of any revision handled (see [`may_be_handled`]).
    pub handled_through_us: i64,
}

pub async fn marks(conn: &mut AnyConnection) -> Result<Marks, sqlx::Error> {
    let (seq, pruned_through_us, handled_through_us) = sqlx::query_as(
        "SELECT handled, pruned_through_us, handled_through_us FROM consumer_checkpoint \
         WHERE id = 1",
    )
    .fetch_one(conn)
    .await?;
    Ok(Marks {
        seq,
        pruned_through_us,
        handled_through_us,
    })
}

/// Whether revision `updated_us` of an entry counts as handled, given the newest revision
/// handled of it (`known`, if its row is kept) and the pruning watermark.
pub fn is_handled(known: Option<i64>, updated_us: i64, pruned_through_us: i64) -> bool {
    match known {
        Some(u) => u >= updated_us,
        None => updated_us <= pruned_through_us,
    }
}

/// Whether a revision can have been handled at all: one newer than every revision handled
/// (and so than the pruning watermark, which is one of them) cannot, so a catch-up through
/// a feed in `updated` order looks none of its entries up.
pub fn may_be_handled(updated_us: i64, marks: &Marks) -> bool {
    updated_us <= marks.handled_through_us
}

/// Whether any entry is parked.
pub async fn any_parked(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    // A count of at most one row, not `EXISTS`: a boolean both backends decode alike.
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM (SELECT 1 FROM consumer_parked LIMIT 1) AS p")
            .fetch_one(conn)
            .await?;
    Ok(n > 0)
}

/// Keeps only the rows of the last `keep` handlings: older rows are deleted and the
/// watermark moves to the newest `updated` among them, so a page delivered again still finds
/// its entries handled. Cheap when there is nothing to prune (an index probe on `seq`).
pub async fn prune(
    conn: &mut AnyConnection,
    handled: i64,
    keep: i64,
    pruned_through_us: i64,
) -> Result<(), sqlx::Error> {
    let below = handled - keep;
    if below <= 0 {
        return Ok(());
    }
    let (newest,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(entry_updated_us) FROM consumer_handled WHERE seq <= $1")
            .bind(below)
            .fetch_one(&mut *conn)
            .await?;
    let Some(newest) = newest else {
        return Ok(());
    };
    sqlx::query("DELETE FROM consumer_handled WHERE seq <= $1")
        .bind(below)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE consumer_checkpoint SET pruned_through_us = $1 WHERE id = 1")
        .bind(newest.max(pruned_through_us))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The newest revision (`updated`, µs) handled of each of `ids` handled before.
pub async fn handled_revisions(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let backend = Backend::of(conn);
    let mut seen = HashMap::new();
    for chunk in ids.chunks(crate::db::rows_per_statement(1)) {
        let sql = format!(
            "SELECT entry_id, entry_updated_us FROM consumer_handled WHERE entry_id IN ({})",
            list_placeholders(backend, chunk.len())
        );
        let mut q =
            sqlx::query_as::<_, (String, i64)>(&sql).persistent(keep_prepared(chunk.len(), 1));
        for id in chunk {
            q = q.bind(*id);
        }
        seen.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(seen)
}

/// What became of a handled entry: recorded in `consumer_handled.outcome`, counted in
/// `consumer_entries_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The local copy was created or updated.
    Applied,
    /// The copy already held this or a newer version.
    Stale,
    /// A permanent failure: kept in `consumer_parked` with the reason.
    Parked,
    /// Parked first, applied when retried.
    AppliedOnRetry,
}

impl Disposition {
    /// Every disposition, in declaration order (`d as usize` indexes it).
    pub const ALL: [Disposition; 4] = [
        Disposition::Applied,
        Disposition::Stale,
        Disposition::Parked,
        Disposition::AppliedOnRetry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Applied => "applied",
            Disposition::Stale => "stale",
            Disposition::Parked => "parked",
            Disposition::AppliedOnRetry => "applied-on-retry",
        }
    }
}

impl From<super::Outcome> for Disposition {
    fn from(o: super::Outcome) -> Disposition {
        match o {
            super::Outcome::Applied => Disposition::Applied,
            super::Outcome::Stale => Disposition::Stale,
        }
    }
}

/// One revision handled: entry id, its `updated` (µs), and what happened.
pub struct HandledRecord<'a> {
    pub entry_id: &'a str,
    pub updated_us: i64,
    pub outcome: Disposition,
}

/// Records revisions as handled, with consecutive sequence numbers after `after`; a newer
/// revision of an entry handled before replaces its row. `records` hold each id once.
pub async fn record_handled(
    conn: &mut AnyConnection,
    records: &[HandledRecord<'_>],
    after: i64,
    now_us: i64,
) -> Result<(), sqlx::Error> {
    let backend = Backend::of(conn);
    let mut seq = after;
    for chunk in records.chunks(crate::db::rows_per_statement(5)) {
        let sql = format!(
            "INSERT INTO consumer_handled (entry_id, seq, outcome, handled_us, entry_updated_us) \
             VALUES {} ON CONFLICT (entry_id) DO UPDATE SET seq = excluded.seq, \
             outcome = excluded.outcome, handled_us = excluded.handled_us, \
             entry_updated_us = excluded.entry_updated_us",
            values_placeholders(backend, chunk.len(), 5)
        );
        let mut q = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), 5));
        for r in chunk {
            seq += 1;
            q = q
                .bind(r.entry_id)
                .bind(seq)
                .bind(r.outcome.as_str())
                .bind(now_us)
                .bind(r.updated_us);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Drops parked revisions that a newer revision of the same entry has replaced.
pub async fn unpark_superseded(conn: &mut AnyConnection, ids: &[&str]) -> Result<(), sqlx::Error> {
    let backend = Backend::of(conn);
    for chunk in ids.chunks(crate::db::rows_per_statement(1)) {
        let sql = format!(
            "DELETE FROM consumer_parked WHERE entry_id IN ({})",
            list_placeholders(backend, chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), 1));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves the checkpoint to `entry` of the feed `feed_id`, with the handling's new [`Marks`]
/// (`seq`: entries handled in all).
pub async fn advance_to(
    conn: &mut AnyConnection,
    entry: &FeedEntry,
    feed_id: &str,
    marks: &Marks,
    now_us: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoint SET entry_id = $1, entry_updated_us = $2, handled = $3, \
         updated_us = $4, feed_id = $5, handled_through_us = $6 WHERE id = 1",
    )
    .bind(&entry.id)
    .bind(entry.updated_us)
    .bind(marks.seq)
    .bind(now_us)
    .bind(feed_id)
    .bind(marks.handled_through_us)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the handling's new [`Marks`] without moving the checkpoint (a replay).
pub async fn set_handled_count(conn: &mut AnyConnection, marks: &Marks) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoint SET handled = $1, handled_through_us = $2 WHERE id = 1",
    )
    .bind(marks.seq)
    .bind(marks.handled_through_us)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn park(
    conn: &mut AnyConnection,
    entry: &FeedEntry,
    reason: &str,
    now_us: i64,
) -> Result<(), sqlx::Error> {
    let link = entry
        .link
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_default();
    // A newer revision of a parked entry that fails again replaces the parked one.
    sqlx::query(
        "INSERT INTO consumer_parked (entry_id, link, reason, attempts, entry_updated_us, parked_us) \
         VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (entry_id) DO UPDATE SET link = excluded.link, \
         reason = excluded.reason, attempts = 1, entry_updated_us = excluded.entry_updated_us, \
         parked_us = excluded.parked_us",
    )
    .bind(&entry.id)
    .bind(link)
    .bind(truncate(reason))
    .bind(entry.updated_us)
    .bind(now_us)
    .execute(conn)
    .await?;
    Ok(())
}

/// A parked entry as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ParkedRow {
    pub id: i64,
    pub entry_id: String,
    pub link: String,
    pub reason: String,
    pub attempts: i64,
    #[serde(skip)]
    pub entry_updated_us: i64,
    #[serde(skip)]
    pub parked_us: i64,
}

/// [`ParkedRow`] with readable times.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Parked {
    #[serde(flatten)]
    pub row: ParkedRow,
    pub entry_updated: String,
    pub parked_at: String,
}

impl From<ParkedRow> for Parked {
    fn from(row: ParkedRow) -> Parked {
        Parked {
            entry_updated: rfc3339(from_micros(row.entry_updated_us)),
            parked_at: rfc3339(from_micros(row.parked_us)),
            row,
        }
    }
}

const PARKED_COLUMNS: &str = "id, entry_id, link, reason, attempts, entry_updated_us, parked_us";

pub async fn parked(db: &Db, before: i64, limit: i64) -> Result<Vec<Parked>, Error> {
    let sql = format!(
        "SELECT {PARKED_COLUMNS} FROM consumer_parked WHERE id < $1 ORDER BY id DESC LIMIT $2"
    );
    let rows: Vec<ParkedRow> = sqlx::query_as(&sql)
        .bind(before)
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(Parked::from).collect())
}

pub async fn parked_count(db: &Db) -> Result<i64, Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM consumer_parked")
        .fetch_one(db.pool())
        .await?;
    Ok(n)
}

pub async fn parked_by_id(db: &Db, id: i64) -> Result<Option<ParkedRow>, Error> {
    let sql = format!("SELECT {PARKED_COLUMNS} FROM consumer_parked WHERE id = $1");
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(db.pool())
        .await?)
}

/// Removes a parked entry once it has been applied, and notes that in its handled record.
pub async fn unpark(conn: &mut AnyConnection, row: &ParkedRow) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM consumer_parked WHERE id = $1")
        .bind(row.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE consumer_handled SET outcome = $1 WHERE entry_id = $2")
        .bind(Disposition::AppliedOnRetry.as_str())
        .bind(&row.entry_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn park_again(db: &Db, id: i64, reason: &str) -> Result<(), Error> {
    sqlx::query("UPDATE consumer_parked SET reason = $1, attempts = attempts + 1 WHERE id = $2")
        .bind(truncate(reason))
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Reasons quote what a remote server sent; keep them to a readable size.
fn truncate(reason: &str) -> String {
    const MAX: usize = 1000;
    if reason.len() <= MAX {
        return reason.to_owned();
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}
