//! Commit order: once a reader has seen an entry, no entry can later appear before it, however
//! many writers race (on Postgres, sequence order and commit order differ without care).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atom_syndication::Feed;

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::helpers::{on_postgres, spawn_order, spawn_order_on, OrderApp, OrderOptions};

const PAGE: usize = 10;

/// A reader that remembers every entry id in the order the feed showed them, and checks each
/// page it reads against that memory.
struct Reader {
    known: Vec<String>,
    pages_read: usize,
}

fn prev_archive(feed: &Feed) -> Option<String> {
    feed.links()
        .iter()
        .find(|l| l.rel() == "prev-archive")
        .map(|l| l.href().to_owned())
}

impl Reader {
    /// Reads the head and walks back until a page overlaps what is known, then checks that
    /// every page agrees with the known order and appends the new entries.
    async fn poll(&mut self, app: &OrderApp) {
        let mut pages = Vec::new();
        let mut href = "/order/feed".to_owned();
        loop {
            let reply = app.get(&href).await;
            assert_eq!(reply.status, 200, "{href}: {}", reply.text());
            let feed = reply.feed();
            self.pages_read += 1;
            let page_no = href
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<usize>().ok());
            let prev = prev_archive(&feed);
            // Oldest first.
            let ids: Vec<String> = feed
                .entries()
                .iter()
                .rev()
                // Each placement's title is unique, and reads better than its uuid.
                .map(|e| e.title().to_string())
                .collect();
            // The first position on this page: archives are numbered, the head follows the
            // newest archive.
            let start = match page_no {
                Some(n) => (n - 1) * PAGE,
                None => prev
                    .as_deref()
                    .and_then(|p| p.rsplit('/').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .map_or(0, |n| n * PAGE),
            };
            let reaches_known = start <= self.known.len();
            pages.push((start, ids));
            match prev {
                Some(p) if !reaches_known => href = p,
                _ => break,
            }
        }
        for (start, ids) in pages.into_iter().rev() {
            for (i, id) in ids.into_iter().enumerate() {
                let position = start + i;
                if position < self.known.len() {
                    assert_eq!(
                        self.known[position], id,
                        "position {position} changed after it was seen"
                    );
                } else {
                    assert_eq!(
                        position,
                        self.known.len(),
                        "entry {id} appeared at {position}, leaving a gap below it"
                    );
                    self.known.push(id);
                }
            }
        }
    }
}

/// 16 writers place thousands of orders while a reader polls the head and archives in a tight
/// loop: the reader never sees an entry appear below one it has seen, and ends with every
/// order exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_reorder_what_a_reader_has_seen() {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 125;
    let app = Arc::new(
        spawn_order(OrderOptions {
            page_size: PAGE as i64,
            ..OrderOptions::default()
        })
        .await,
    );
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut reader = Reader {
                known: Vec::new(),
                pages_read: 0,
            };
            while !done.load(Ordering::Acquire) {
                reader.poll(&app).await;
            }
            reader.poll(&app).await;
            reader
        })
    };
    let placed = place_concurrently(std::slice::from_ref(&app), WRITERS, PER_WRITER).await;
    done.store(true, Ordering::Release);
    let reader = reader.await.expect("reader finished");

    let total = WRITERS * PER_WRITER;
    assert_eq!(reader.known.len(), total);
    let unique: HashSet<&String> = reader.known.iter().collect();
    assert_eq!(unique.len(), total, "every order exactly once");
    let expected: HashSet<String> = placed
        .iter()
        .map(|id| format!("Order {id} placed"))
        .collect();
    assert_eq!(unique, expected.iter().collect());
    assert!(
        reader.pages_read > total / PAGE,
        "the reader polled while writers ran"
    );
}

/// `writers` tasks, each placing `per_writer` orders one after another, spread over `apps`;
/// the ids placed. (Ids need not run from 1 without gaps: on Postgres ids drawn ahead and left
/// unused are dropped.)
async fn place_concurrently(
    apps: &[Arc<OrderApp>],
    writers: usize,
    per_writer: usize,
) -> HashSet<i64> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let app = apps[w % apps.len()].clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    ids.push(app.place(1 + ((w + i) % 5) as i64).await);
                }
                ids
            })
        })
        .collect();
    let mut placed = HashSet::new();
    for task in tasks {
        for id in task.await.expect("writer finished") {
            assert!(placed.insert(id), "order {id} placed twice");
        }
    }
    placed
}

fn paged() -> OrderOptions {
    OrderOptions {
        page_size: PAGE as i64,
        ..OrderOptions::default()
    }
}

/// Two order services on one Postgres database place orders at once, each appending with its
/// own group commits: a reader of one of them never sees an entry appear below one it has
/// seen, and ends with every order of both exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_never_reorder_what_a_reader_has_seen() {
    if !on_postgres() {
        eprintln!("skipped: two instances on one database need TEST_DATABASE_URL=postgres://…");
        return;
    }
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 60;
    let a = Arc::new(spawn_order(paged()).await);
    let b = Arc::new(spawn_order_on(a.db.shared(), paged()).await);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (a, done) = (a.clone(), done.clone());
        tokio::spawn(async move {
            let mut reader = Reader {
                known: Vec::new(),
                pages_read: 0,
            };
            while !done.load(Ordering::Acquire) {
                reader.poll(&a).await;
            }
            reader
        })
    };
    let placed = place_concurrently(&[a.clone(), b.clone()], WRITERS, PER_WRITER).await;
    done.store(true, Ordering::Release);
    let mut reader = reader.await.expect("reader finished");
    // `a` learns of `b`'s last appends by notification.
    let total = WRITERS * PER_WRITER;
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.known.len() < total && Instant::now() < deadline {
        reader.poll(&a).await;
    }

    assert_eq!(reader.known.len(), total);
    let unique: HashSet<&String> = reader.known.iter().collect();
    let expected: HashSet<String> = placed
        .iter()
        .map(|id| format!("Order {id} placed"))
        .collect();
    assert_eq!(
        unique,
        expected.iter().collect(),
        "every order exactly once"
    );
    assert!(
        reader.pages_read > 10,
        "the reader polled while writers ran"
    );
}

/// Key of the advisory lock with which versions before the `feed_head` table serialized their
/// appends (`common::feed::store`).
const EARLIER_APPEND_LOCK: i64 = 0x4645_4544_4c49_4e45;

/// During a rolling upgrade an instance of an earlier version appends as it did: under the
/// advisory lock, after the last entry it reads, without touching `feed_head`. An append of
/// this version waits for it and lands after its entry, gap-free, and the placement succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_by_an_earlier_version_is_serialized_with_this_ones() {
    if !on_postgres() {
        eprintln!("skipped: the advisory lock is Postgres's; needs TEST_DATABASE_URL=postgres://…");
        return;
    }
    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    app.place(1).await;
    let mut earlier = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut earlier).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EARLIER_APPEND_LOCK)
        .execute(&mut earlier)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO feed_entries (position, entry_id, title, summary, category, link, \
         updated_us) SELECT MAX(position) + 1, 'urn:uuid:7c9d5a4e-2f0b-4d55-9a43-3f3e8a1c0b11', \
         'Appended by an earlier version', 'earlier', 'order-created', '/order/orders/1', \
         MAX(updated_us) FROM feed_entries",
    )
    .execute(&mut earlier)
    .await
    .unwrap();

    let placing = {
        let app = app.clone();
        tokio::spawn(async move { app.place(2).await })
    };
    // The placement's append waits for the earlier version's lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no append waited for the advisory lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !placing.is_finished(),
        "placed while the earlier append held its lock"
    );
    sqlx::query("COMMIT").execute(&mut earlier).await.unwrap();
    let id = placing.await.unwrap();

    let head = app.get("/order/feed").await.feed();
    let titles: Vec<&str> = head.entries().iter().map(|e| e.title().as_str()).collect();
    let placed = format!("Order {id} placed");
    assert_eq!(
        titles,
        [
            placed.as_str(),
            "Appended by an earlier version",
            "Order 1 placed"
        ]
    );
    let positions: Vec<(i64,)> =
        sqlx::query_as("SELECT position FROM feed_entries ORDER BY position")
            .fetch_all(&mut watcher)
            .await
            .unwrap();
    assert_eq!(positions, [(1,), (2,), (3,)], "gap-free");
}
