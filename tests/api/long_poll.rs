//! Long polling: `Prefer: wait=N` / `?wait=N` holds a poll of an unchanged head until an entry
//! commits; consumers use it and fall back to plain polling when a server ignores it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::consumer_helpers::{spawn_consumer_on, test_args, Kind};
use crate::helpers::{fresh_db, on_postgres, spawn_order, spawn_order_on, OrderOptions};
use crate::metrics::{scrape, value};

/// A waiting poll is answered with the new entry as soon as it commits.
#[tokio::test]
async fn a_long_poll_is_answered_as_soon_as_an_entry_commits() {
    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    let etag = app.etag("/order/feed").await;
    let started = Instant::now();
    let waiting = {
        let (app, etag) = (app.clone(), etag.clone());
        tokio::spawn(async move {
            app.get_with(
                "/order/feed",
                &[("if-none-match", &etag), ("prefer", "wait=20")],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the poll waits while nothing changes"
    );

    let id = app.place(2).await;
    let reply = waiting.await.unwrap();

    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("preference-applied"), Some("wait=20"));
    assert_eq!(
        reply.feed().entries()[0].title().as_str(),
        format!("Order {id} placed")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// With no change, the wait ends with a 304 after the requested time; `?wait=` works too,
/// waits are capped at 30 s, and a malformed `?wait=` is a 400.
#[tokio::test]
async fn an_unchanged_long_poll_ends_with_304_after_the_wait() {
    let app = spawn_order(OrderOptions::default()).await;
    let etag = app.etag("/order/feed").await;

    let started = Instant::now();
    let reply = app
        .get_with("/order/feed?wait=1", &[("if-none-match", &etag)])
        .await;

    assert_eq!(reply.status, 304);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.header("preference-applied"), Some("wait=1"));
    let capped = app
        .get_with(
            "/order/feed",
            &[("if-none-match", "\"stale\""), ("prefer", "wait=600")],
        )
        .await;
    assert_eq!(capped.status, 200, "a changed feed is answered at once");
    assert_eq!(capped.header("preference-applied"), Some("wait=30"));
    app.get("/order/feed?wait=soon").await.assert_problem(400);
}

/// A consumer with a 30 s poll interval still sees a new order within a few seconds: it
/// long-polls between polls.
#[tokio::test]
async fn consumers_long_poll_by_default() {
    let order = spawn_order(OrderOptions::default()).await;
    let mut args = test_args(&order.url("/order/feed"));
    args.poll_interval = Duration::from_secs(30);
    args.long_poll = Duration::from_secs(20);
    let invoicing = spawn_consumer_on(Kind::Invoicing, fresh_db("invoicing").await, args).await;
    let _poller = invoicing.start_polling();
    for _ in 0..100 {
        if !invoicing.report().await["lastPoll"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();

    let id = order.place(1).await;
    let mut seen = false;
    while started.elapsed() < Duration::from_secs(5) {
        if invoicing.get(&Kind::Invoicing.copy_path(id)).await.status == 200 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert!(seen, "invoice visible well before the 30 s poll interval");
}

/// Against a server that ignores `Prefer: wait`, a consumer polls at its interval instead of
/// spinning.
#[tokio::test]
async fn consumers_fall_back_to_plain_polling() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let feed = r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:s</id><title>s</title><updated>2026-01-01T00:00:00Z</updated></feed>"#;
    let router = Router::new().route(
        "/feed",
        get(move |headers: axum::http::HeaderMap| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if headers
                    .get("if-none-match")
                    .is_some_and(|v| v == "\"static\"")
                {
                    return axum::http::StatusCode::NOT_MODIFIED.into_response();
                }
                ([(header::ETAG, "\"static\"")], feed).into_response()
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/feed", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let mut args = test_args(&url);
    args.poll_interval = Duration::from_millis(200);
    let invoicing = spawn_consumer_on(Kind::Invoicing, fresh_db("invoicing").await, args).await;

    let _poller = invoicing.start_polling();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let n = hits.load(Ordering::SeqCst);
    assert!(
        (3..=40).contains(&n),
        "{n} requests in 2 s at a 200 ms interval"
    );
    assert_eq!(
        invoicing.report().await["lastPoll"]["status"],
        "not-modified"
    );
}

/// On Postgres, a commit through one order instance wakes long polls held by another (LISTEN/
/// NOTIFY), well before the periodic refresh. On SQLite one process owns the file, so there is
/// no second instance to wake.
#[tokio::test]
async fn a_commit_on_one_instance_wakes_long_polls_on_another() {
    if !on_postgres() {
        eprintln!("skipped: needs TEST_DATABASE_URL=postgres://…");
        return;
    }
    let db = fresh_db("order").await;
    let shared = db.shared();
    let a = spawn_order_on(db, OrderOptions::default()).await;
    let b = Arc::new(spawn_order_on(shared, OrderOptions::default()).await);
    let etag = b
        .get("/order/feed")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = b
                .get_with(
                    "/order/feed",
                    &[("if-none-match", &etag), ("prefer", "wait=20")],
                )
                .await;
            (reply, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    a.place(1).await;
    let (reply, elapsed) = waiting.await.unwrap();

    assert_eq!(reply.status, 200);
    assert_eq!(reply.feed().entries().len(), 1);
    assert!(
        elapsed < Duration::from_secs(3),
        "woken by NOTIFY, not the 5 s refresh: {elapsed:?}"
    );
}

/// One commit wakes every waiting long poll at once: the new head page is read from the
/// database and rendered once, not once per waiting poll, and every poll gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_commit_wakes_every_long_poll_with_one_render() {
    const POLLS: usize = 40;
    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    app.place(1).await;
    let etag = app.etag("/order/feed").await;
    let renders = |text: String| {
        let prefix = "feed_head_renders_total{representation=\"atom\"} ";
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("feed_head_renders_total for atom")
    };
    let before = renders(app.get("/order/metrics").await.text());
    let waiting: Vec<_> = (0..POLLS)
        .map(|_| {
            let (app, etag) = (app.clone(), etag.clone());
            tokio::spawn(async move {
                app.get_with(
                    "/order/feed",
                    &[("if-none-match", &etag), ("prefer", "wait=20")],
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()), "the polls wait");

    let id = app.place(2).await;
    for w in waiting {
        let reply = w.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.feed().entries()[0].title().as_str(),
            format!("Order {id} placed")
        );
    }
    let after = renders(app.get("/order/metrics").await.text());
    assert_eq!(after - before, 1.0, "{POLLS} woken polls, one render");
}

/// Writes `request` on `stream` and reads until the answer contains `end`.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &str, end: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    while !String::from_utf8_lossy(&answer).contains(end) {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The identity-encoded head's `ETag`, read on a connection of its own.
async fn raw_etag(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /order/feed HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n";
    let answer = exchange(&mut stream, request, "</feed>").await;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .to_owned()
}

fn long_poll(etag: &str, wait: u64) -> String {
    format!(
        "GET /order/feed HTTP/1.1\r\nhost: test\r\nif-none-match: {etag}\r\nprefer: wait={wait}\r\n\r\n"
    )
}

/// Waits, up to ten seconds, until the order service holds one request, failing if `exchange`
/// (the poll) is answered first.
async fn until_held<T: std::fmt::Debug>(
    app: &crate::helpers::OrderApp,
    exchange: &mut std::pin::Pin<&mut impl std::future::Future<Output = T>>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            answer = exchange.as_mut() => panic!("answered before it was due: {answer:?}"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        let metrics = scrape(&app.get("/order/metrics").await.text());
        if value(&metrics, "http_requests_held", &[]) == 1.0 {
            return;
        }
        assert!(Instant::now() < deadline, "the poll was never held");
    }
}

/// A long poll of an unchanged head waits outside the HTTP server (`http_requests_held`),
/// keeping only its socket and its bytes, and is still answered as soon as an entry commits;
/// held for its whole wait, it is answered `304` after the wait, not after twice that.
#[tokio::test]
async fn a_waiting_long_poll_is_held_outside_the_http_server() {
    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    let etag = raw_etag(app.addr).await;
    let held = || async {
        let metrics = scrape(&app.get("/order/metrics").await.text());
        value(&metrics, "http_requests_held", &[])
    };
    assert_eq!(held().await, 0.0);
    let mut poll = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = long_poll(&etag, 20);
    let answer = {
        let exchange = exchange(&mut poll, &request, "</feed>");
        tokio::pin!(exchange);
        until_held(&app, &mut exchange).await;
        let id = app.place(2).await;
        let answer = exchange.await;
        assert!(answer.contains(&format!("Order {id} placed")), "{answer}");
        answer
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_lowercase()
            .contains("preference-applied: wait=20"),
        "{answer}"
    );
    assert_eq!(held().await, 0.0);

    // The handler waits only for what is left of the wait: a 3 s wait waited twice takes 6 s.
    let etag = raw_etag(app.addr).await;
    let mut poll = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let answer = exchange(&mut poll, &long_poll(&etag, 3), "\r\n\r\n").await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 304"), "{answer}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

/// A reader named on a held long poll is known at once with its checkpoint, not only when the
/// poll ends.
#[tokio::test]
async fn a_held_long_poll_names_its_reader_at_once() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    let checkpoint = app.entry_id(1, 1).await;
    let etag = raw_etag(app.addr).await;
    let mut poll = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /order/feed HTTP/1.1\r\nhost: test\r\nif-none-match: {etag}\r\nprefer: wait=30\r\n\
         feed-reader: invoicing\r\nfeed-reader-checkpoint: {checkpoint}\r\n\r\n"
    );
    let exchange = exchange(&mut poll, &request, "\r\n\r\n");
    tokio::pin!(exchange);
    until_held(&app, &mut exchange).await;
    app.service.state.feed.flush_readers().await.expect("flush");
    let report: serde_json::Value = app.get("/order/feed/readers").await.json();
    let invoicing = report["readers"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "invoicing"))
        .unwrap_or_else(|| panic!("invoicing is known while its poll waits: {report:#}"));
    assert_eq!(invoicing["position"], 1, "{report:#}");
}

/// Reads one whole response from `stream`: its head (status line and headers) and its body.
async fn read_whole(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;

    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(bytes[..end].to_vec()).expect("a UTF-8 head");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().expect("a length"));
            if bytes.len() >= end + 4 + length {
                return (head, bytes[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// A response's status line and headers, sorted, without those that differ between any two
/// answers (`date`, `x-request-id`).
fn comparable(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = head
        .lines()
        .filter(|l| !l.starts_with("date: ") && !l.starts_with("x-request-id: "))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// A long poll woken by a commit is answered outside the HTTP server (written straight to its
/// socket), and that answer is the router's: the same status, headers and body, in every
/// coding, as the same request sent after the commit; one that waited its whole wait gets the
/// router's `304`; the connection then serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_long_poll_is_answered_as_the_router_answers() {
    use tokio::io::AsyncWriteExt;

    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    app.place(1).await;
    for coding in ["", "accept-encoding: gzip\r\n", "accept-encoding: zstd\r\n"] {
        // Arrange: a poll held on the current head.
        let etag = {
            let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
            let request = format!("GET /order/feed HTTP/1.1\r\nhost: test\r\n{coding}\r\n");
            s.write_all(request.as_bytes()).await.unwrap();
            let (head, _) = read_whole(&mut s).await;
            head.lines()
                .find_map(|l| l.strip_prefix("etag: "))
                .expect("an ETag")
                .to_owned()
        };
        let request = format!(
            "GET /order/feed HTTP/1.1\r\nhost: test\r\nif-none-match: {etag}\r\nprefer: wait=20\r\n{coding}\r\n"
        );
        let mut poll = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        poll.write_all(request.as_bytes()).await.unwrap();
        let (woken_head, woken_body) = {
            let answer = read_whole(&mut poll);
            tokio::pin!(answer);
            until_held(&app, &mut answer).await;
            // Act: a commit wakes it.
            app.place(2).await;
            answer.await
        };
        // The same request after the commit is not held: the router answers it.
        let mut other = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        other.write_all(request.as_bytes()).await.unwrap();
        let (routed_head, routed_body) = read_whole(&mut other).await;

        // Assert
        assert!(woken_head.starts_with("HTTP/1.1 200 OK"), "{woken_head}");
        assert!(woken_head.contains("\r\ndate: "), "{woken_head}");
        assert!(woken_head.contains("\r\nx-request-id: "), "{woken_head}");
        assert_eq!(
            comparable(&woken_head),
            comparable(&routed_head),
            "{coding}"
        );
        assert_eq!(woken_body, routed_body, "{coding}");
        // The connection parked again, and serves the next request.
        poll.write_all(b"GET /order/health HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let (health, _) = read_whole(&mut poll).await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    }

    // A poll held for its whole wait: the router's 304 (the query form is never held).
    let etag = raw_etag(app.addr).await;
    let mut held = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    held.write_all(long_poll(&etag, 1).as_bytes())
        .await
        .unwrap();
    let mut routed = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let query =
        format!("GET /order/feed?wait=1 HTTP/1.1\r\nhost: test\r\nif-none-match: {etag}\r\n\r\n");
    routed.write_all(query.as_bytes()).await.unwrap();
    let ((held_head, held_body), (routed_head, _)) =
        tokio::join!(read_whole(&mut held), read_whole(&mut routed));
    assert!(held_head.starts_with("HTTP/1.1 304"), "{held_head}");
    assert!(held_body.is_empty());
    // Last-Modified of a head that changed within the last second follows the clock (so that
    // a poll in that second is never told it is current): both carry one, maybe a second apart.
    let without_time = |head: &str| -> Vec<String> {
        comparable(head)
            .into_iter()
            .filter(|l| !l.starts_with("last-modified: "))
            .collect()
    };
    assert!(held_head.contains("\r\nlast-modified: "), "{held_head}");
    assert_eq!(without_time(&held_head), without_time(&routed_head));
}
