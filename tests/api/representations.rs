//! Feed representations (Atom with links, Atom with details inline, CloudEvents JSON), how
//! requests choose them and their codings, and consumers that use inline details.

use std::io::Read as _;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde_json::Value;

use crate::consumer_helpers::{spawn_consumer, spawn_consumer_on, test_args, ConsumerApp, Kind};
use crate::foreign_feed::{self, Dialect, Publisher};
use crate::helpers::{fresh_db, reply, spawn_order, spawn_order_on, OrderApp, OrderOptions, Reply};

/// A client that neither asks for nor decodes codings by itself, to see the bytes on the wire.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_zstd()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn raw_get(app: &OrderApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = raw_client().get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.send().await.unwrap()).await
}

/// An order service (page size 5) with `n` placements and the cancellation of order 2.
async fn order_with(n: usize) -> Arc<OrderApp> {
    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    for i in 0..n {
        app.place(1 + (i as i64) % 4).await;
    }
    assert_eq!(app.cancel(2).await.status, StatusCode::OK);
    app
}

fn inline_args(feed: &str) -> common::config::ConsumerArgs {
    common::config::ConsumerArgs {
        details: common::consumer::DetailsMode::Inline,
        ..test_args(feed)
    }
}

async fn inline_consumer(kind: Kind, feed: &str) -> ConsumerApp {
    let db = fresh_db(&format!("{kind:?}-inline").to_lowercase()).await;
    spawn_consumer_on(kind, db, inline_args(feed)).await
}

/// The decoded inline documents of an Atom page, by entry, in document order.
fn inline_documents(page: &Reply) -> Vec<Value> {
    page.feed()
        .entries()
        .iter()
        .map(|e| {
            let content = e.content().expect("inline content");
            assert_eq!(content.content_type(), Some("application/json"));
            let text = content.value().expect("content text");
            let json = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .expect("Base64, as RFC 4287 §4.1.3.3 requires");
            serde_json::from_slice(&json).expect("JSON")
        })
        .collect()
}

fn ids(page: &Reply) -> Vec<String> {
    page.feed()
        .entries()
        .iter()
        .map(|e| e.id().to_owned())
        .collect()
}

fn event_ids(page: &Reply) -> Vec<String> {
    page.json()
        .as_array()
        .expect("a CloudEvents batch is an array")
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A consumer pointed at the usual feed URL finds the inline representation from the head,
/// catches up through archives with no details request at all, and ends with exactly the
/// copies a consumer fetching every link makes.
#[tokio::test]
async fn inline_consumers_catch_up_without_a_single_details_request() {
    let order = order_with(17).await;
    let feed = order.url("/order/feed");

    let inline = inline_consumer(Kind::Invoicing, &feed).await;
    let report = inline.poll_ok().await;
    assert_eq!(report["handled"], 18);
    assert_eq!(order.detail_requests(), 0, "details came inline");
    let state = inline.report().await;
    assert_eq!(state["details"], "inline");
    assert_eq!(state["polledUrl"], order.url("/order/feed/inline"));
    assert_eq!(state["parked"]["count"], 0);
    assert_eq!(state["lag"]["entries"], 0);

    let by_link = spawn_consumer(Kind::Invoicing, &feed).await;
    by_link.poll_ok().await;
    assert_eq!(
        order.detail_requests(),
        18,
        "DETAILS=link fetches every entry"
    );
    assert_eq!(by_link.report().await["polledUrl"], feed);
    assert_eq!(inline.copies().await, by_link.copies().await);

    // New entries, then an unchanged head: the inline head is polled conditionally.
    order.place(3).await;
    assert_eq!(inline.poll_ok().await["handled"], 1);
    assert_eq!(inline.poll().await["status"], "not-modified");
    assert_eq!(order.detail_requests(), 18);
    let invoice = inline.get("/invoicing/invoices/2").await.json();
    assert_eq!(invoice["status"], "cancelled");
}

/// A consumer that is told to read links reads links, even from the inline representation.
#[tokio::test]
async fn details_link_mode_ignores_inline_content() {
    let order = order_with(3).await;
    let shipping = spawn_consumer(Kind::Shipping, &order.url("/order/feed/inline")).await;
    shipping.poll_ok().await;
    assert_eq!(order.detail_requests(), 4);
    assert_eq!(shipping.copies().await.len(), 3);
}

/// Each inline document is the order as it was at that event: the placement shows version 1
/// placed even after the cancellation, whose entry shows version 2; a full archive page stays
/// byte for byte the same while later versions of its orders are published.
#[tokio::test]
async fn inline_details_are_the_snapshot_of_their_event_and_archives_never_change() {
    let order = Arc::new(spawn_order(OrderOptions::default()).await);
    for _ in 0..5 {
        order.place(1).await;
    }
    let archive = order.get("/order/feed/inline/archive/1").await;
    assert_eq!(archive.status, 200);
    order.cancel(1).await;
    order.cancel(3).await;

    let again = order.get("/order/feed/inline/archive/1").await;
    assert_eq!(again.body, archive.body, "archive pages are immutable");
    assert_eq!(again.header("etag"), archive.header("etag"));
    let docs = inline_documents(&archive);
    let first = docs.iter().find(|d| d["id"] == 1).unwrap();
    assert_eq!(
        (first["version"].as_i64(), first["status"].as_str()),
        (Some(1), Some("placed"))
    );

    let head = order.get("/order/feed/inline").await;
    let docs = inline_documents(&head);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["id"], 3, "newest first");
    assert_eq!(docs[0]["version"], 2);
    assert_eq!(docs[0]["status"], "cancelled");
    // The snapshot is exactly what the details link answered at that version.
    let now = order.get("/order/orders/3").await.json();
    assert_eq!(docs[0], now);
}

/// Every page exists in the three representations with the same entries in the same order,
/// links to its other representations, and keeps its paging within its own.
#[tokio::test]
async fn every_page_has_three_representations_with_the_same_entries() {
    let order = order_with(12).await;
    for (atom, inline, events) in [
        ("/order/feed", "/order/feed/inline", "/order/feed/events"),
        (
            "/order/feed/archive/2",
            "/order/feed/inline/archive/2",
            "/order/feed/events/archive/2",
        ),
    ] {
        let a = order.get(atom).await;
        let i = order.get(inline).await;
        let e = order.get(events).await;
        assert_eq!(a.header("content-type"), Some("application/atom+xml"));
        assert_eq!(
            i.header("content-type"),
            Some("application/atom+xml;details=inline")
        );
        assert_eq!(
            e.header("content-type"),
            Some("application/cloudevents-batch+json; charset=utf-8")
        );
        assert!(!ids(&a).is_empty());
        assert_eq!(ids(&a), ids(&i), "{atom}");
        assert_eq!(ids(&a), event_ids(&e), "{atom}");
        // Links in every representation keep to it, and name the others.
        let links = |r: &Reply| -> Vec<(String, String, Option<String>)> {
            r.feed()
                .links()
                .iter()
                .map(|l| {
                    (
                        l.rel().to_owned(),
                        l.href().to_owned(),
                        l.mime_type().map(str::to_owned),
                    )
                })
                .collect()
        };
        let a_links = links(&a);
        assert!(a_links.contains(&(
            "alternate".into(),
            inline.into(),
            Some("application/atom+xml;details=inline".into())
        )));
        assert!(a_links.contains(&(
            "alternate".into(),
            events.into(),
            Some("application/cloudevents-batch+json".into())
        )));
        let i_links = links(&i);
        assert!(i_links.contains(&(
            "self".into(),
            inline.into(),
            Some("application/atom+xml;details=inline".into())
        )));
        assert!(i_links.contains(&(
            "alternate".into(),
            atom.into(),
            Some("application/atom+xml".into())
        )));
        let prev = i_links.iter().find(|l| l.0 == "prev-archive").unwrap();
        assert!(
            prev.1.starts_with("/order/feed/inline/archive/"),
            "{prev:?}"
        );
        // Only the head names the oldest archive (for a reader starting from nothing).
        let is_head = atom == "/order/feed";
        let first = i_links
            .iter()
            .find(|l| l.0 == "first")
            .map(|l| l.1.as_str());
        let expected = is_head.then_some("/order/feed/inline/archive/1");
        assert_eq!(first, expected, "{inline}");
        // The JSON batch: the same links in `Link` (RFC 8288), its own validators.
        let link = e.header("link").unwrap();
        assert!(
            link.contains(&format!("<{events}>; rel=\"self\"")),
            "{link}"
        );
        assert!(
            link.contains("</order/feed/events/archive/") && link.contains("rel=\"prev-archive\""),
            "{link}"
        );
        assert_eq!(
            link.contains("</order/feed/events/archive/1>; rel=\"first\""),
            is_head,
            "{link}"
        );
        assert!(
            link.contains(&format!("<{atom}>; rel=\"alternate\"")),
            "{link}"
        );
        let etags = [a.header("etag"), i.header("etag"), e.header("etag")];
        assert!(etags[0] != etags[1] && etags[1] != etags[2] && etags[0] != etags[2]);
    }
    let batch = order.get("/order/feed/events").await.json();
    let newest = &batch[0];
    assert_eq!(newest["specversion"], "1.0");
    assert_eq!(newest["type"], "order-cancelled");
    assert_eq!(newest["dataref"], "/order/orders/2");
    assert_eq!(newest["datacontenttype"], "application/json");
    assert_eq!(newest["data"]["status"], "cancelled");
    let head = order.get("/order/feed").await.feed();
    assert_eq!(newest["source"], head.id());
    // The JSON head is conditional like the Atom one.
    let etag = order.get("/order/feed/events").await;
    let etag = etag.header("etag").unwrap();
    let again = order
        .get_with("/order/feed/events", &[("if-none-match", etag)])
        .await;
    assert_eq!(again.status, 304);
}

/// `Accept` picks the representation at the generic URLs (and says where it lives); at a
/// representation's own URL, an `Accept` it cannot satisfy is a 406 problem.
#[tokio::test]
async fn accept_chooses_the_representation_and_406_refuses_the_impossible() {
    let order = order_with(6).await;
    let cases = [
        (None, "application/atom+xml", None),
        (Some("*/*"), "application/atom+xml", None),
        (
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            "application/atom+xml",
            None,
        ),
        (
            Some("application/atom+xml;details=inline"),
            "application/atom+xml;details=inline",
            Some("/order/feed/inline"),
        ),
        (
            Some("application/cloudevents-batch+json"),
            "application/cloudevents-batch+json; charset=utf-8",
            Some("/order/feed/events"),
        ),
        (
            Some("application/atom+xml;q=0.2, application/json"),
            "application/cloudevents-batch+json; charset=utf-8",
            Some("/order/feed/events"),
        ),
    ];
    for (accept, content_type, location) in cases {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        let r = order.get_with("/order/feed", &headers).await;
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.header("content-type"), Some(content_type), "{accept:?}");
        assert_eq!(r.header("content-location"), location, "{accept:?}");
        assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
        let a = order.get_with("/order/feed/archive/1", &headers).await;
        assert_eq!(a.header("content-type"), Some(content_type), "{accept:?}");
    }
    for (path, accept) in [
        ("/order/feed", "text/html"),
        ("/order/feed/archive/1", "application/pdf"),
        ("/order/feed/inline", "application/json"),
        ("/order/feed/events", "application/atom+xml"),
        ("/order/feed/events/archive/1", "application/atom+xml"),
        ("/order/feed", "application/atom+xml;details=everything"),
    ] {
        let r = order.get_with(path, &[("accept", accept)]).await;
        let detail = r.assert_problem(406);
        assert!(detail.contains(accept), "{path} {accept}: {detail}");
        assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
    }
    let refused = order
        .get_with("/order/feed", &[("accept-encoding", "br, identity;q=0")])
        .await;
    refused.assert_problem(406);
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The sum of a metric's samples (an unlabelled counter's value).
async fn counter(order: &OrderApp, metric: &str) -> f64 {
    let text = order.get("/order/metrics").await.text();
    let metrics = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    metrics
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn compressions(order: &OrderApp, encoding: &str) -> f64 {
    let text = order.get("/order/metrics").await.text();
    let metrics = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    metrics
        .samples
        .iter()
        .filter(|s| s.metric == "feed_compressions_total")
        .filter(|s| s.labels.get("encoding") == Some(encoding))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// gzip and zstd on request: the same bytes once decoded, a strong `ETag` per coding that
/// `If-None-Match` matches only for that coding, and each page coded once, not per request.
#[tokio::test]
async fn compressed_pages_have_their_own_validators_and_are_coded_once() {
    let order = order_with(12).await;
    for path in [
        "/order/feed/inline",
        "/order/feed/archive/2",
        "/order/feed/events/archive/1",
    ] {
        let plain = raw_get(&order, path, &[]).await;
        assert_eq!(plain.header("content-encoding"), None);
        let gz = raw_get(&order, path, &[("accept-encoding", "gzip")]).await;
        let zst = raw_get(&order, path, &[("accept-encoding", "gzip;q=0.5, zstd")]).await;
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(zst.header("content-encoding"), Some("zstd"), "{path}");
        assert_eq!(gunzip(&gz.body), plain.body, "{path}");
        let unzstd = zstd::stream::decode_all(&zst.body[..]).unwrap();
        assert_eq!(unzstd, plain.body, "{path}");
        assert!(gz.body.len() * 2 < plain.body.len(), "{path}: gzip saves");
        let tags = [plain.header("etag"), gz.header("etag"), zst.header("etag")];
        assert!(tags[0] != tags[1] && tags[1] != tags[2], "{path}: {tags:?}");
        let gz_tag = gz.header("etag").unwrap();
        assert!(!gz_tag.starts_with("W/"), "strong: {gz_tag}");

        let same = raw_get(
            &order,
            path,
            &[("accept-encoding", "gzip"), ("if-none-match", gz_tag)],
        )
        .await;
        assert_eq!(same.status, 304, "{path}");
        assert_eq!(same.header("etag"), Some(gz_tag));
        assert_eq!(same.header("vary"), Some("Accept, Accept-Encoding"));
        let other = raw_get(&order, path, &[("if-none-match", gz_tag)]).await;
        assert_eq!(
            other.status, 200,
            "{path}: another coding is another representation"
        );
        assert_eq!(other.body, plain.body);
    }

    let before = compressions(&order, "gzip").await;
    for _ in 0..5 {
        let r = raw_get(
            &order,
            "/order/feed/inline/archive/1",
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let after = compressions(&order, "gzip").await;
    assert_eq!(
        after - before,
        1.0,
        "an archive page is coded once, then kept"
    );
}

/// Archive pages stay coded for a whole backlog, not only for the last few hundred pages:
/// reading 600 archive pages twice codes each once (the cache is bounded by bytes, and a
/// page is kept in the coding asked for, about a tenth of its size).
#[tokio::test]
async fn a_backlog_of_archive_pages_is_coded_once_and_kept() {
    // Not stored by the archiver: every page is rendered and coded on its first request.
    let order = spawn_order(OrderOptions {
        page_size: 1,
        store_archives: false,
        ..OrderOptions::default()
    })
    .await;
    for i in 0..601 {
        order.place(1 + i % 4).await;
    }
    let before = compressions(&order, "zstd").await;
    let mut first = Vec::new();
    for pass in 0..2 {
        for n in 1..=600 {
            let path = format!("/order/feed/inline/archive/{n}");
            let r = raw_get(&order, &path, &[("accept-encoding", "zstd")]).await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("content-encoding"), Some("zstd"), "{path}");
            if pass == 0 {
                first.push(r.body);
            } else {
                assert_eq!(r.body, first[n - 1], "{path}: the same bytes");
            }
        }
        let coded = compressions(&order, "zstd").await - before;
        assert_eq!(coded, 600.0, "after pass {pass}: each page coded once");
    }
    assert_eq!(counter(&order, "feed_archive_renders_total").await, 600.0);
}

/// Stores every full archive page in all three representations, as `order seed` does.
async fn store_every_archive(order: &OrderApp) {
    let feed = &order.service.state.feed;
    feed.store_archives(&common::feed::Representation::ALL)
        .await
        .unwrap();
}

/// Every archive page in every representation and coding, with what a client sees of it.
async fn every_archive_page(order: &OrderApp, pages: i64) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for segment in ["", "/inline", "/events"] {
        for n in 1..=pages {
            for coding in ["identity", "gzip", "zstd"] {
                let path = format!("/order/feed{segment}/archive/{n}");
                let r = raw_get(order, &path, &[("accept-encoding", coding)]).await;
                assert_eq!(r.status, 200, "{path} {coding}");
                let headers: Vec<String> = [
                    "content-type",
                    "content-encoding",
                    "etag",
                    "last-modified",
                    "link",
                    "cache-control",
                    "vary",
                ]
                .iter()
                .map(|h| format!("{h}: {:?}", r.header(h)))
                .collect();
                seen.push((format!("{path} {coding}"), headers.join("\n")));
                seen.push((format!("{path} {coding} body"), format!("{:?}", r.body)));
            }
        }
    }
    seen
}

/// Archive pages stored by the archiver are served after a restart without reading or
/// rendering their entries again, byte for byte and header for header what rendering gives.
#[tokio::test]
async fn stored_archive_pages_are_served_as_rendered_without_rendering_again() {
    let options = || OrderOptions {
        page_size: 2,
        store_archives: false,
        ..OrderOptions::default()
    };
    let order = spawn_order(options()).await;
    for i in 0..13 {
        order.place(1 + i % 4).await;
    }
    assert_eq!(order.cancel(3).await.status, StatusCode::OK);
    // 14 entries: 7 full pages, rendered from their entries for each representation and
    // coding (the memory keeps each page in the coding asked for only).
    let rendered = every_archive_page(&order, 7).await;
    assert_eq!(counter(&order, "feed_archive_renders_total").await, 63.0);
    let db = order.stop().await;

    let order = spawn_order_on(
        db.shared(),
        OrderOptions {
            store_archives: true,
            ..options()
        },
    )
    .await;
    // Nothing was requested yet, so the archiver stores nothing on its own.
    store_every_archive(&order).await;
    assert_eq!(
        counter(&order, "feed_archive_pages_stored_total").await,
        21.0,
        "7 pages in 3 representations"
    );
    order.stop().await;

    let order = spawn_order_on(db.shared(), options()).await;
    let zstd_before = compressions(&order, "zstd").await;
    let served = every_archive_page(&order, 7).await;
    for ((what, a), (_, b)) in rendered.iter().zip(&served) {
        assert_eq!(a, b, "{what}: stored and served as rendered");
    }
    assert_eq!(rendered.len(), served.len());
    assert_eq!(
        counter(&order, "feed_archive_renders_total").await,
        0.0,
        "no page rendered from its entries"
    );
    assert_eq!(
        compressions(&order, "zstd").await - zstd_before,
        0.0,
        "zstd bodies sent as stored"
    );
    drop(db);
}

/// Rows of `feed_archive_pages` per representation.
async fn stored_rows(url: &str) -> Vec<(String, i64)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT representation, COUNT(*) FROM feed_archive_pages GROUP BY representation \
         ORDER BY representation",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Waits (up to 20 s) until the archiver has stored `n` pages in all.
async fn until_stored(order: &OrderApp, n: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stored = counter(order, "feed_archive_pages_stored_total").await;
        if stored == n {
            return;
        }
        assert!(stored < n, "stored {stored} pages, expected {n}");
        assert!(
            std::time::Instant::now() < deadline,
            "stored {stored} of {n} pages"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The archiver stores the pages of the representations that are read, all of a
/// representation's full pages once it is first requested, and then each page as it fills,
/// after a restart too.
#[tokio::test]
async fn the_archiver_stores_the_pages_of_the_representations_read() {
    let order = spawn_order(OrderOptions {
        page_size: 2,
        ..OrderOptions::default()
    })
    .await;
    for i in 0..6 {
        order.place(1 + i % 4).await;
    }
    assert_eq!(raw_get(&order, "/order/feed/inline", &[]).await.status, 200);
    until_stored(&order, 3.0).await;
    assert_eq!(stored_rows(&order.db.url).await, [("inline".to_owned(), 3)]);
    let head = raw_get(&order, "/order/feed", &[("accept", "application/atom+xml")]).await;
    assert_eq!(head.status, 200);
    until_stored(&order, 6.0).await;
    for i in 0..2 {
        order.place(1 + i % 4).await;
    }
    until_stored(&order, 8.0).await;
    assert_eq!(
        stored_rows(&order.db.url).await,
        [("atom".to_owned(), 4), ("inline".to_owned(), 4)],
        "the page that filled, in both; nothing of the JSON nobody read"
    );
    // After a restart, representations with stored pages go on being stored unasked.
    let db = order.stop().await;
    let order = spawn_order_on(
        db.shared(),
        OrderOptions {
            page_size: 2,
            ..OrderOptions::default()
        },
    )
    .await;
    for i in 0..2 {
        order.place(1 + i % 4).await;
    }
    until_stored(&order, 2.0).await;
    assert_eq!(
        stored_rows(&order.db.url).await,
        [("atom".to_owned(), 5), ("inline".to_owned(), 5)]
    );
    order.stop().await;
}

/// Runs `sql` on the database at `url`, returning the rows it changed.
async fn run_sql(url: &str, sql: &str) -> u64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let done = sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
    done.rows_affected()
}

/// A stored page is served only when it can be trusted: one whose body does not decode is
/// rendered from its entries instead, and pages stored under another layout (an older
/// rendering, another title or path) are never served and are deleted by the archiver.
#[tokio::test]
async fn stored_pages_that_cannot_be_trusted_are_rendered_from_their_entries() {
    let options = |store_archives| OrderOptions {
        page_size: 2,
        store_archives,
        ..OrderOptions::default()
    };
    let order = spawn_order(options(true)).await;
    for i in 0..4 {
        order.place(1 + i % 4).await;
    }
    store_every_archive(&order).await;
    let expected = raw_get(&order, "/order/feed/inline/archive/1", &[]).await;
    let db = order.stop().await;
    let broken = "UPDATE feed_archive_pages SET body = CAST('not zstd' AS BLOB) \
                  WHERE number = 1 AND representation = 'inline'";
    let broken = if crate::helpers::on_postgres() {
        broken.replace("BLOB", "BYTEA")
    } else {
        broken.to_owned()
    };
    assert_eq!(run_sql(&db.url, &broken).await, 1);

    let order = spawn_order_on(db.shared(), options(false)).await;
    let again = raw_get(&order, "/order/feed/inline/archive/1", &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, expected.body, "rendered again: the same bytes");
    assert_eq!(again.header("etag"), expected.header("etag"));
    assert_eq!(counter(&order, "feed_archive_renders_total").await, 1.0);
    order.stop().await;

    let old = "UPDATE feed_archive_pages SET layout = '0-old'";
    assert_eq!(run_sql(&db.url, old).await, 6, "2 pages, 3 representations");
    let order = spawn_order_on(db.shared(), options(false)).await;
    let page = raw_get(&order, "/order/feed/archive/2", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(counter(&order, "feed_archive_renders_total").await, 1.0);
    order.stop().await;
    let order = spawn_order_on(db.shared(), options(true)).await;
    let left = "DELETE FROM feed_archive_pages WHERE layout = '0-old'";
    assert_eq!(
        run_sql(&db.url, left).await,
        0,
        "deleted when the archiver started"
    );
    order.stop().await;
}

/// A page compressed to a few kilobytes that decodes to more than the consumer's page limit
/// is refused like any oversized page: the poll fails with the reason, nothing is applied,
/// and the consumer goes on serving.
#[tokio::test]
async fn a_compression_bomb_is_refused_by_its_decoded_size() {
    use axum::routing::get;
    // 64 MiB of spaces in a comment inside a valid feed: gzip makes it about 64 KB, zstd less.
    let mut page =
        br#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><!--"#.to_vec();
    page.extend(std::iter::repeat_n(b' ', 64 << 20));
    page.extend_from_slice(
        br#"--><id>urn:bomb</id><title>t</title><updated>2026-01-01T00:00:00Z</updated></feed>"#,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &page).unwrap();
    let zst = zstd::bulk::compress(&page, 19).unwrap();
    for (coding, bomb) in [("gzip", gz.finish().unwrap()), ("zstd", zst)] {
        assert!(
            bomb.len() < 1 << 20,
            "{coding}: {} bytes on the wire",
            bomb.len()
        );
        let asked = Arc::new(std::sync::Mutex::new(None::<String>));
        let seen = asked.clone();
        let router = axum::Router::new().route(
            "/feed",
            get(move |headers: axum::http::HeaderMap| {
                let bomb = bomb.clone();
                *seen.lock().unwrap() = headers
                    .get(header::ACCEPT_ENCODING)
                    .map(|v| v.to_str().unwrap().to_owned());
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/atom+xml"),
                            (header::CONTENT_ENCODING, coding),
                        ],
                        bomb,
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let invoicing = inline_consumer(Kind::Invoicing, &format!("http://{addr}/feed")).await;
        let report = invoicing.poll().await;

        assert_eq!(report["status"], "error", "{coding}: {report}");
        let error = report["detail"].as_str().unwrap_or_default();
        assert!(error.contains("exceeds the limit"), "{coding}: {report}");
        let asked = asked.lock().unwrap().clone().unwrap_or_default();
        assert!(
            asked.contains("gzip") && asked.contains("zstd"),
            "the consumer asks: {asked}"
        );
        assert_eq!(invoicing.copies().await.len(), 0);
        assert_eq!(invoicing.get("/invoicing/health").await.status, 200);
    }
}

/// Another publisher (pages of 5) with orders 1 to 8 placed, order 4's inline content written
/// broken, and an inline-details invoicing reading it.
async fn eight_orders_with_order_4_broken(dialect: Dialect) -> (foreign_feed::Shared, ConsumerApp) {
    let publisher = Publisher::new(dialect, 5);
    {
        let mut p = publisher.lock().unwrap();
        for order in 1..=8 {
            p.place(order);
        }
        p.broken_inline.push(4);
    }
    let url = foreign_feed::serve(publisher.clone()).await;
    let invoicing = inline_consumer(Kind::Invoicing, &url).await;
    (publisher, invoicing)
}

/// Another publisher's inline details, Base64 beside a link or JSON text with no link at
/// all, are applied with no details request; content that is neither parks that entry with
/// the reason, and the others go on.
#[tokio::test]
async fn inline_details_of_other_publishers_are_read_and_bad_ones_parked() {
    for dialect in [
        Dialect {
            inline_base64: true,
            ..Dialect::default()
        },
        Dialect {
            inline_json_only: true,
            prefixed: true,
            ..Dialect::default()
        },
    ] {
        let (publisher, invoicing) = eight_orders_with_order_4_broken(dialect).await;

        let report = invoicing.poll().await;

        assert_eq!(report["status"], "ok", "{dialect:?}: {report}");
        assert_eq!(publisher.lock().unwrap().detail_requests, 0, "{dialect:?}");
        assert_eq!(invoicing.copies().await.len(), 7, "{dialect:?}");
        let state = invoicing.report().await;
        assert_eq!(state["parked"]["count"], 1, "{dialect:?}: {state}");
        let reason = state["parked"]["entries"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("neither Base64 nor JSON"), "{reason}");
    }
}

/// A newer revision of a parked entry that can be read takes its place: applied, and the
/// parked revision is no longer listed (the revision is newer than any handled, so the
/// consumer never looked its entry up; it still finds the parked one).
#[tokio::test]
async fn a_good_revision_of_a_parked_entry_replaces_it() {
    let (publisher, invoicing) = eight_orders_with_order_4_broken(Dialect {
        inline_base64: true,
        ..Dialect::default()
    })
    .await;
    invoicing.poll_ok().await;
    assert_eq!(invoicing.report().await["parked"]["count"], 1);
    {
        let mut p = publisher.lock().unwrap();
        let original = p.events.iter().find(|e| e.order == 4).unwrap().clone();
        p.events.push(foreign_feed::Event {
            second: 500,
            version: 2,
            ..original
        });
        p.broken_inline.clear();
    }

    let report = invoicing.poll().await;

    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["handled"], 1, "{report}");
    let state = invoicing.report().await;
    assert_eq!(state["parked"]["count"], 0, "{state}");
    assert_eq!(invoicing.copies().await.len(), 8);
    let invoice = invoicing.get("/invoicing/invoices/4").await.json();
    assert_eq!(invoice["version"], 2, "{invoice}");
}

/// An inline-details alternate that does not answer is no reason to stop: the consumer reads
/// the feed as configured, by link.
#[tokio::test]
async fn an_inline_alternate_that_fails_falls_back_to_the_feed_as_configured() {
    let publisher = Publisher::new(
        Dialect {
            dead_inline_alternate: true,
            ..Dialect::default()
        },
        5,
    );
    for order in 1..=7 {
        publisher.lock().unwrap().place(order);
    }
    let url = foreign_feed::serve(publisher.clone()).await;
    let invoicing = inline_consumer(Kind::Invoicing, &url).await;

    let report = invoicing.poll().await;

    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(invoicing.copies().await.len(), 7);
    assert_eq!(publisher.lock().unwrap().detail_requests, 7);
    assert_eq!(invoicing.report().await["polledUrl"], url);
}

/// A consumer that followed the inline representation goes back to the feed as configured
/// when that representation later fails for good, and catches up by link.
#[tokio::test]
async fn a_followed_inline_representation_that_disappears_is_given_up() {
    let order = order_with(3).await;
    let feed = order.url("/order/feed");
    let invoicing = inline_consumer(Kind::Invoicing, &feed).await;
    invoicing.poll_ok().await;
    assert_eq!(
        invoicing.report().await["polledUrl"],
        order.url("/order/feed/inline")
    );
    order
        .faults
        .not_found_paths
        .lock()
        .unwrap()
        .insert("/order/feed/inline".into());
    order.place(1).await;

    let failed = invoicing.poll().await;
    assert_eq!(failed["status"], "error", "{failed}");
    let report = invoicing.poll_ok().await;

    assert_eq!(report["handled"], 1, "{report}");
    assert_eq!(invoicing.report().await["polledUrl"], feed);
    assert_eq!(order.detail_requests(), 1, "the new entry, by link");
}
