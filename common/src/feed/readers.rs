//! Who reads this feed, and how far behind they are, without server-side cursors.
//!
//! Readers name themselves and their checkpoint in request headers
//! ([`READER_HEADER`](crate::consumer::client::READER_HEADER),
//! [`CHECKPOINT_HEADER`](crate::consumer::client::CHECKPOINT_HEADER)). A request only touches
//! memory: a map under a lock, bounded in names. Every [`FLUSH_EVERY`] a background task
//! resolves new checkpoints to positions (one query), writes the rows that changed (one
//! transaction), drops readers silent for longer than the expiry, and samples each reader's
//! lag for the charts. A restart reloads the rows.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use serde::Serialize;

use crate::consumer::client::{CHECKPOINT_HEADER, READER_HEADER};
use crate::db::{list_placeholders, Db};
use crate::{Clock, Error};

/// Names remembered at most; a new name beyond this is ignored until one expires.
pub const MAX_READERS: usize = 64;
/// Between two flushes (and two lag samples).
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// A reader unseen for this long is shown as silent. Longer than the longest long poll, which
/// is one request however long it waits.
pub const SILENT_AFTER: Duration = Duration::from_secs(120);
/// A reader's row is written again after this long even if only its last-seen time moved.
const REFRESH_SEEN: Duration = Duration::from_secs(60);
/// Lag samples kept per reader: ten minutes at one per flush.
const HISTORY: usize = 120;
const MAX_NAME: usize = 64;
const MAX_CHECKPOINT: usize = 512;

#[derive(Debug, Clone)]
struct Reader {
    checkpoint: Option<String>,
    /// The checkpoint's position; `None` until resolved, or when no entry has that id.
    position: Option<i64>,
    /// Whether `position` belongs to `checkpoint`.
    resolved: bool,
    last_seen_us: i64,
    /// `X-Forwarded-For`'s first address, else the peer's.
    origin: String,
    /// Last-seen time as last written.
    written_seen_us: i64,
    dirty: bool,
    /// (time µs, entries behind) per flush, oldest first.
    lag: VecDeque<(i64, i64)>,
}

/// One reader, as `GET {feed}/readers` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaderReport {
    pub name: String,
    /// The `atom:id` of the newest entry it reported handled.
    pub checkpoint: Option<String>,
    /// The checkpoint's position in the feed as of the last flush (`None`: not an entry of
    /// this feed, or a first checkpoint not looked up yet).
    pub position: Option<i64>,
    /// The checkpoint is new and its position not looked up yet (at the next flush).
    pub resolving: bool,
    /// Entries between its checkpoint and the head.
    pub behind: Option<i64>,
    pub last_seen: String,
    pub seconds_since_seen: i64,
    /// Not seen for [`SILENT_AFTER`].
    pub silent: bool,
    pub from: String,
    /// Entries behind over the last minutes, oldest first.
    pub lag: Vec<LagSample>,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LagSample {
    /// Microseconds since the epoch.
    pub at_us: i64,
    pub behind: i64,
}

/// A `feed_readers` row: name, checkpoint, position, last seen (µs), origin.
type ReaderRow = (String, Option<String>, Option<i64>, i64, String);

/// The readers of one feed.
pub struct Readers {
    map: Mutex<HashMap<String, Reader>>,
    clock: Clock,
    /// A reader silent for this long is forgotten (its row deleted).
    expiry: Duration,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// A reader name: 1–64 of `A-Z a-z 0-9 . _ -`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A checkpoint: an IRI in visible ASCII, at most 512 bytes.
fn valid_checkpoint(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CHECKPOINT && id.bytes().all(|b| b.is_ascii_graphic())
}

impl Readers {
    pub fn new(clock: Clock, expiry: Duration) -> Readers {
        Readers {
            map: Mutex::new(HashMap::new()),
            clock,
            expiry,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reader>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes the reader a request names, if it names one validly. Memory only.
    pub fn observe(&self, headers: &HeaderMap, peer: Option<std::net::IpAddr>) {
        let Some(name) = header(headers, READER_HEADER).map(str::trim) else {
            return;
        };
        if !valid_name(name) {
            tracing::debug!(reader = %name.escape_debug(), "ignoring a malformed Feed-Reader header");
            return;
        }
        let checkpoint = match header(headers, CHECKPOINT_HEADER).map(str::trim) {
            Some(id) if valid_checkpoint(id) => Some(id),
            Some(id) => {
                tracing::debug!(reader = name, checkpoint = %id.escape_debug(), "ignoring a malformed Feed-Reader-Checkpoint header");
                None
            }
            None => None,
        };
        let forwarded = header(headers, "x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
        let now = self.clock.now().timestamp_micros();
        let mut map = self.lock();
        // A known reader (the common case) costs no allocation.
        if !map.contains_key(name) {
            if map.len() >= MAX_READERS {
                tracing::debug!(
                    reader = name,
                    "too many readers known; not remembering another"
                );
                return;
            }
            map.insert(
                name.to_owned(),
                Reader {
                    checkpoint: None,
                    position: None,
                    resolved: true,
                    last_seen_us: now,
                    origin: String::new(),
                    written_seen_us: 0,
                    dirty: true,
                    lag: VecDeque::new(),
                },
            );
        }
        let Some(reader) = map.get_mut(name) else {
            return;
        };
        reader.last_seen_us = reader.last_seen_us.max(now);
        let same_origin = match (forwarded, peer) {
            (Some(f), _) => reader.origin == f,
            (None, Some(p)) => reader.origin.parse::<std::net::IpAddr>() == Ok(p),
            (None, None) => reader.origin == "unknown",
        };
        if !same_origin {
            reader.origin = match (forwarded, peer) {
                (Some(f), _) => f.to_owned(),
                (None, Some(p)) => p.to_string(),
                (None, None) => "unknown".to_owned(),
            };
            reader.dirty = true;
        }
        if let Some(id) = checkpoint {
            if reader.checkpoint.as_deref() != Some(id) {
                reader.checkpoint = Some(id.to_owned());
                reader.resolved = false;
                reader.dirty = true;
            }
        }
        if now - reader.written_seen_us >= REFRESH_SEEN.as_micros() as i64 {
            reader.dirty = true;
        }
    }

    /// Loads the readers remembered before a restart.
    pub async fn load(&self, db: &Db) -> Result<(), Error> {
        let rows: Vec<ReaderRow> = sqlx::query_as(
            "SELECT name, checkpoint, position, last_seen_us, origin FROM feed_readers",
        )
        .fetch_all(db.pool())
        .await?;
        let mut map = self.lock();
        for (name, checkpoint, position, last_seen_us, origin) in rows.into_iter().take(MAX_READERS)
        {
            map.insert(
                name,
                Reader {
                    checkpoint,
                    position,
                    resolved: true,
                    last_seen_us,
                    origin,
                    written_seen_us: last_seen_us,
                    dirty: false,
                    lag: VecDeque::new(),
                },
            );
        }
        Ok(())
    }

    /// Resolves new checkpoints, writes what changed, forgets the long silent, and samples
    /// lag against `head` (the newest position).
    pub async fn flush(&self, db: &Db, head: i64) -> Result<(), Error> {
        let unresolved: Vec<String> = self
            .lock()
            .values()
            .filter(|r| !r.resolved)
            .filter_map(|r| r.checkpoint.clone())
            .collect();
        let positions = positions(db, &unresolved).await?;
        let now = self.clock.now().timestamp_micros();
        let expired_before = now - self.expiry.as_micros() as i64;
        let (writes, expired) = {
            let mut map = self.lock();
            let expired: Vec<String> = map
                .iter()
                .filter(|(_, r)| r.last_seen_us < expired_before)
                .map(|(n, _)| n.clone())
                .collect();
            for name in &expired {
                map.remove(name);
            }
            let mut writes = Vec::new();
            for (name, r) in map.iter_mut() {
                if !r.resolved {
                    if let Some(id) = &r.checkpoint {
                        if let Some(found) = positions.get(id) {
                            r.position = Some(*found);
                            r.resolved = true;
                        } else if unresolved.contains(id) {
                            // Asked, and no entry has that id.
                            r.position = None;
                            r.resolved = true;
                        }
                    }
                }
                if let Some(p) = r.position {
                    r.lag.push_back((now, (head - p).max(0)));
                    if r.lag.len() > HISTORY {
                        r.lag.pop_front();
                    }
                }
                if r.dirty {
                    writes.push((name.clone(), r.clone()));
                    r.dirty = false;
                    r.written_seen_us = r.last_seen_us;
                }
            }
            (writes, expired)
        };
        if writes.is_empty() && expired.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin_write().await?;
        for name in &expired {
            sqlx::query("DELETE FROM feed_readers WHERE name = $1")
                .bind(name)
                .execute(tx.conn())
                .await?;
        }
        for (name, r) in &writes {
            sqlx::query(
                "INSERT INTO feed_readers (name, checkpoint, position, last_seen_us, origin) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
                 checkpoint = excluded.checkpoint, position = excluded.position, \
                 last_seen_us = excluded.last_seen_us, origin = excluded.origin",
            )
            .bind(name)
            .bind(&r.checkpoint)
            .bind(r.position)
            .bind(r.last_seen_us)
            .bind(&r.origin)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every reader known, by name, against `head` (the newest position).
    pub fn report(&self, head: i64) -> Vec<ReaderReport> {
        let now = self.clock.now().timestamp_micros();
        let mut readers: Vec<ReaderReport> = self
            .lock()
            .iter()
            .map(|(name, r)| {
                let since = (now - r.last_seen_us).max(0) / 1_000_000;
                ReaderReport {
                    name: name.clone(),
                    checkpoint: r.checkpoint.clone(),
                    // While a new checkpoint waits for the next flush, the last position
                    // known stands (a few seconds old), so steady readers never flicker.
                    position: r.position,
                    resolving: !r.resolved,
                    behind: r.position.map(|p| (head - p).max(0)),
                    last_seen: crate::clock::rfc3339(crate::clock::from_micros(r.last_seen_us)),
                    seconds_since_seen: since,
                    silent: since >= SILENT_AFTER.as_secs() as i64,
                    from: r.origin.clone(),
                    lag: r
                        .lag
                        .iter()
                        .map(|&(at_us, behind)| LagSample { at_us, behind })
                        .collect(),
                }
            })
            .collect();
        readers.sort_by(|a, b| a.name.cmp(&b.name));
        readers
    }
}

/// Positions of the entries with these ids (those that exist).
async fn positions(db: &Db, ids: &[String]) -> Result<HashMap<String, i64>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT entry_id, position FROM feed_entries WHERE entry_id IN ({})",
        list_placeholders(db.backend(), ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.fetch_all(db.pool()).await?.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn request(name: &str, checkpoint: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(READER_HEADER, HeaderValue::from_str(name).unwrap());
        if let Some(c) = checkpoint {
            h.insert(CHECKPOINT_HEADER, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn malformed_names_are_ignored_and_the_cap_holds() {
        let readers = Readers::new(Clock::System, Duration::from_secs(60));
        for bad in ["", "has space", "sl/ash", &"x".repeat(65)] {
            readers.observe(&request(bad, Some("urn:x")), None);
        }
        assert!(readers.report(0).is_empty());
        for n in 0..MAX_READERS + 10 {
            readers.observe(&request(&format!("r{n}"), None), None);
        }
        assert_eq!(readers.report(0).len(), MAX_READERS);
    }

    #[test]
    fn a_malformed_checkpoint_keeps_the_last_good_one() {
        let readers = Readers::new(Clock::System, Duration::from_secs(60));
        readers.observe(&request("invoicing", Some("urn:a")), None);
        readers.observe(&request("invoicing", Some(&"y".repeat(600))), None);
        assert_eq!(readers.report(0)[0].checkpoint.as_deref(), Some("urn:a"));
    }
}
