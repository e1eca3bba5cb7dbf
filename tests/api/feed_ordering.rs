//! Commit order: once a reader has seen an entry, no entry can later appear before it, however
//! many writers race (on Postgres, sequence order and commit order differ without care).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atom_syndication::Feed;

use crate::helpers::{spawn_order, OrderApp, OrderOptions};

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
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    app.place(1 + ((w + i) % 5) as i64).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer finished");
    }
    done.store(true, Ordering::Release);
    let reader = reader.await.expect("reader finished");

    let total = WRITERS * PER_WRITER;
    assert_eq!(reader.known.len(), total);
    let unique: HashSet<&String> = reader.known.iter().collect();
    assert_eq!(unique.len(), total, "every order exactly once");
    let expected: HashSet<String> = (1..=total).map(|id| format!("Order {id} placed")).collect();
    assert_eq!(unique, expected.iter().collect());
    assert!(
        reader.pages_read > total / PAGE,
        "the reader polled while writers ran"
    );
}
