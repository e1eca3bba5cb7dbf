//! The consumer's own tables: checkpoint, handled entries, parked entries.

use serde::Serialize;
use sqlx::AnyConnection;

use super::page::FeedEntry;
use crate::clock::{from_micros, rfc3339};
use std::collections::HashSet;

use crate::db::{list_placeholders, values_placeholders, Db};
use crate::Error;

/// The last entry handled, in feed order.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub entry_id: Option<String>,
    pub entry_updated_us: i64,
    pub handled: i64,
}

pub async fn checkpoint(db: &Db) -> Result<Checkpoint, Error> {
    let (entry_id, entry_updated_us, handled): (Option<String>, i64, i64) = sqlx::query_as(
        "SELECT entry_id, entry_updated_us, handled FROM consumer_checkpoint WHERE id = 1",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(Checkpoint {
        entry_id,
        entry_updated_us,
        handled,
    })
}

/// Forgets everything the consumer did (for a rebuild).
pub async fn reset(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM consumer_handled",
        "DELETE FROM consumer_parked",
        "UPDATE consumer_checkpoint SET entry_id = NULL, entry_updated_us = 0, handled = 0 \
         WHERE id = 1",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// How many entries were handled so far (the last `seq` given out).
pub async fn handled_count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT handled FROM consumer_checkpoint WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// Which of `ids` were handled before.
pub async fn already_handled(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut seen = HashSet::new();
    for chunk in ids.chunks(crate::db::rows_per_statement(1)) {
        let sql = format!(
            "SELECT entry_id FROM consumer_handled WHERE entry_id IN ({})",
            list_placeholders(chunk.len())
        );
        let mut q = sqlx::query_as::<_, (String,)>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        seen.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|(id,)| id));
    }
    Ok(seen)
}

/// Records entries as handled, with consecutive sequence numbers after `after`.
pub async fn record_handled(
    conn: &mut AnyConnection,
    entries: &[(&str, &str)],
    after: i64,
    now_us: i64,
) -> Result<(), sqlx::Error> {
    let mut seq = after;
    for chunk in entries.chunks(crate::db::rows_per_statement(4)) {
        let sql = format!(
            "INSERT INTO consumer_handled (entry_id, seq, outcome, handled_us) VALUES {}",
            values_placeholders(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (id, outcome) in chunk {
            seq += 1;
            q = q.bind(*id).bind(seq).bind(*outcome).bind(now_us);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves the checkpoint to `entry`, with `handled` entries handled in all.
pub async fn advance_to(
    conn: &mut AnyConnection,
    entry: &FeedEntry,
    handled: i64,
    now_us: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoint SET entry_id = $1, entry_updated_us = $2, handled = $3, \
         updated_us = $4 WHERE id = 1",
    )
    .bind(&entry.id)
    .bind(entry.updated_us)
    .bind(handled)
    .bind(now_us)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_handled_count(conn: &mut AnyConnection, handled: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE consumer_checkpoint SET handled = $1 WHERE id = 1")
        .bind(handled)
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
    sqlx::query(
        "INSERT INTO consumer_parked (entry_id, link, reason, attempts, entry_updated_us, parked_us) \
         VALUES ($1, $2, $3, 1, $4, $5)",
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
    sqlx::query("UPDATE consumer_handled SET outcome = 'applied-on-retry' WHERE entry_id = $1")
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
