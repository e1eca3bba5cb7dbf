//! The feed is valid Atom 1.0 (RFC 4287) with RFC 5005 paging, cacheable archive pages and
//! stable links.

use atom_syndication::Feed;
use std::collections::HashSet;

use crate::helpers::{spawn_order, OrderApp, OrderOptions, Reply};

const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";

fn link<'a>(feed: &'a Feed, rel: &str) -> Option<&'a str> {
    feed.links()
        .iter()
        .find(|l| l.rel() == rel)
        .map(|l| l.href())
}

/// Checks every element RFC 4287 requires of a feed and its entries, and newest-first order.
fn assert_valid_atom(reply: &Reply, self_href: &str) -> Feed {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/atom+xml"));
    assert!(reply.header("etag").is_some(), "every page has an ETag");
    let text = reply.text();
    assert!(
        text.contains("xmlns=\"http://www.w3.org/2005/Atom\""),
        "{text}"
    );
    for element in ["<id>", "<title>", "<updated>", "<author><name>"] {
        assert!(text.contains(element), "missing {element} in {text}");
    }
    let feed = reply.feed();
    assert!(!feed.id().is_empty());
    assert!(!feed.title().as_str().is_empty());
    assert_eq!(link(&feed, "self"), Some(self_href));
    let mut previous = None;
    for entry in feed.entries() {
        // RFC 4287 §4.2.6: universally unique, so minted per entry rather than from a row.
        assert!(
            entry.id().starts_with("urn:uuid:") && entry.id().len() == "urn:uuid:".len() + 36,
            "{}",
            entry.id()
        );
        assert!(!entry.title().as_str().is_empty());
        assert!(entry.updated().timestamp() > 0, "updated present");
        assert_eq!(entry.categories().len(), 1);
        let category = entry.categories()[0].term();
        assert!(
            category == "order-placed" || category == "order-cancelled",
            "{category}"
        );
        let details = &entry.links()[0];
        assert_eq!(details.rel(), "alternate");
        assert_eq!(details.mime_type(), Some("application/json"));
        assert!(details.href().starts_with("/order/orders/"));
        assert!(entry.summary().is_some_and(|s| !s.as_str().is_empty()));
        if let Some(newer) = previous {
            assert!(*entry.updated() <= newer, "entries are newest first");
        }
        previous = Some(*entry.updated());
    }
    feed
}

fn is_archive(reply: &Reply) -> bool {
    let text = reply.text();
    text.contains(&format!("xmlns:fh=\"{HISTORY_NS}\"")) && text.contains("<fh:archive")
}

/// Places `n` orders one after another; their ids, in order (not always 1..=n: on Postgres
/// ids drawn ahead and left unused for a second are dropped).
async fn place_many(app: &OrderApp, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(app.place(1 + (i as i64 % 5)).await);
    }
    ids
}

/// An empty feed is valid, has no entries, no archive links and no date validator.
#[tokio::test]
async fn an_empty_feed_is_valid_atom() {
    let app = spawn_order(OrderOptions::default()).await;

    let reply = app.get("/order/feed").await;

    let feed = assert_valid_atom(&reply, "/order/feed");
    assert!(feed.entries().is_empty());
    assert_eq!(link(&feed, "prev-archive"), None);
    assert_eq!(link(&feed, "first"), None, "no archive to start from");
    assert!(!is_archive(&reply));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    assert_eq!(reply.header("last-modified"), None);
}

/// With fewer orders than a page, the head holds them all, newest first, with no archives.
#[tokio::test]
async fn a_one_page_feed_lists_every_event_newest_first() {
    let app = spawn_order(OrderOptions::default()).await;
    let first = app.place(1).await;
    let second = app.place(2).await;
    app.cancel(first).await;

    let reply = app.get("/order/feed").await;

    let feed = assert_valid_atom(&reply, "/order/feed");
    let titles: Vec<&str> = feed.entries().iter().map(|e| e.title().as_str()).collect();
    assert_eq!(
        titles,
        [
            format!("Order {first} cancelled"),
            format!("Order {second} placed"),
            format!("Order {first} placed"),
        ]
    );
    let ids: HashSet<&str> = feed.entries().iter().map(|e| e.id()).collect();
    assert_eq!(ids.len(), 3, "every event has an id of its own");
    assert_eq!(feed.entries()[0].categories()[0].term(), "order-cancelled");
    assert_eq!(
        feed.entries()[1].links()[0].href(),
        format!("/order/orders/{second}")
    );
    assert_eq!(link(&feed, "prev-archive"), None);
    assert!(reply.header("last-modified").is_some());
}

/// Several full pages become archives linked both ways, marked `fh:archive`, immutable, and
/// pointing at the subscription document; the head links to the newest archive.
#[tokio::test]
async fn a_feed_with_several_archives_is_linked_per_rfc_5005() {
    let app = spawn_order(OrderOptions::default()).await; // page size 5
    let ids = place_many(&app, 13).await;

    let head = app.get("/order/feed").await;
    let head_feed = assert_valid_atom(&head, "/order/feed");
    assert_eq!(head_feed.entries().len(), 3);
    assert!(!is_archive(&head));
    assert_eq!(
        link(&head_feed, "prev-archive"),
        Some("/order/feed/archive/2")
    );
    assert_eq!(
        link(&head_feed, "first"),
        Some("/order/feed/archive/1"),
        "the head names the oldest archive, for a reader walking forward"
    );

    let mut seen = Vec::new();
    for page in 1..=2 {
        let href = format!("/order/feed/archive/{page}");
        let reply = app.get(&href).await;
        let feed = assert_valid_atom(&reply, &href);
        assert!(is_archive(&reply), "archive {page} carries fh:archive");
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(feed.entries().len(), 5);
        assert_eq!(feed.id(), head_feed.id(), "pages of one feed share its id");
        assert_eq!(link(&feed, "current"), Some("/order/feed"));
        assert_eq!(link(&feed, "first"), None, "archives stay as they were");
        let prev = (page > 1).then(|| format!("/order/feed/archive/{}", page - 1));
        assert_eq!(link(&feed, "prev-archive"), prev.as_deref());
        let next = format!("/order/feed/archive/{}", page + 1);
        assert_eq!(link(&feed, "next-archive"), Some(next.as_str()));
        seen.extend(feed.entries().iter().rev().map(|e| e.title().to_string()));
    }
    seen.extend(
        head_feed
            .entries()
            .iter()
            .rev()
            .map(|e| e.title().to_string()),
    );
    let expected: Vec<String> = ids.iter().map(|i| format!("Order {i} placed")).collect();
    assert_eq!(
        seen, expected,
        "pages hold consecutive positions, oldest page first"
    );

    // The page being filled is reached through the head; pages beyond it do not exist.
    let open = app.get("/order/feed/archive/3").await;
    assert_eq!(open.status, 307);
    assert_eq!(open.header("location"), Some("/order/feed"));
    app.get("/order/feed/archive/4").await.assert_problem(404);
    app.get("/order/feed/archive/0").await.assert_problem(404);
}

/// A full archive page keeps its bytes and ETag while the feed grows past it.
#[tokio::test]
async fn a_full_archive_page_never_changes() {
    let app = spawn_order(OrderOptions::default()).await;
    place_many(&app, 5).await;
    let before = app.get("/order/feed/archive/1").await;
    assert_eq!(before.status, 200);

    place_many(&app, 12).await;
    app.cancel(1).await;
    let after = app.get("/order/feed/archive/1").await;

    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), before.header("etag"));
    let etag = before.header("etag").unwrap_or_default().to_owned();
    let revalidated = app
        .get_with("/order/feed/archive/1", &[("if-none-match", &etag)])
        .await;
    assert_eq!(revalidated.status, 304);
}

/// Entry links are absolute paths, so they resolve against whatever host and scheme a
/// path-preserving reverse proxy exposes.
#[tokio::test]
async fn entry_links_resolve_behind_a_path_preserving_proxy() {
    let app = spawn_order(OrderOptions::default()).await;
    let id = app.place(3).await;

    let feed = app.get("/order/feed").await.feed();

    let href = feed.entries()[0].links()[0].href();
    let proxied = url::Url::parse("https://shop.example/order/feed")
        .unwrap()
        .join(href)
        .unwrap();
    assert_eq!(
        proxied.as_str(),
        format!("https://shop.example/order/orders/{id}")
    );
    let direct = app.get(href).await;
    assert_eq!(direct.status, 200);
    assert_eq!(direct.json()["id"], id);
}

/// A feed keeps the page size it was created with: restarting without a size keeps it, and
/// asking for another size is refused with a message saying why.
#[tokio::test]
async fn the_page_size_of_an_existing_feed_cannot_change() {
    let app = spawn_order(OrderOptions::default()).await; // page size 5
    place_many(&app, 6).await;
    let db = app.stop().await;

    let settings = |size: Option<i64>| order::Settings {
        database_url: db.url.clone(),
        feed_page_size: size,
        feed_store_archives: true,
    };
    let other = order::OrderService::build(
        &settings(Some(7)),
        common::Clock::System,
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let unset = order::OrderService::build(
        &settings(None),
        common::Clock::System,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("an unset size keeps the recorded one");

    let message = other
        .err()
        .expect("a different size is refused")
        .to_string();
    assert!(message.contains("page size 7 differs from 5"), "{message}");
    assert_eq!(unset.state.feed.page_size().get(), 5);
}
