//! Conditional GET on the feed head (RFC 9110 §13): ETag, Last-Modified, their precedence,
//! and the one-second resolution of dates.

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::Clock;

use crate::helpers::{spawn_order, OrderApp, OrderOptions};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + Duration::milliseconds(100)
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// An order service whose clock stands at t0 until the test moves it.
async fn app_on_a_manual_clock() -> (OrderApp, Clock) {
    let clock = Clock::manual(t0());
    let app = spawn_order(OrderOptions {
        clock: clock.clone(),
        ..OrderOptions::default()
    })
    .await;
    (app, clock)
}

/// One order placed at t0 + 100 ms; the server's clock then moves to t0 + 60 s.
async fn app_with_one_order() -> (OrderApp, String) {
    let (app, clock) = app_on_a_manual_clock().await;
    app.place(1).await;
    clock.set(t0() + Duration::seconds(60));
    let head = app.get("/order/feed").await;
    assert_eq!(head.header("last-modified"), Some(http_date(t0()).as_str()));
    let etag = head.header("etag").expect("etag").to_owned();
    (app, etag)
}

#[tokio::test]
async fn a_matching_etag_answers_304_even_with_an_old_if_modified_since() {
    let (app, etag) = app_with_one_order().await;
    let old = http_date(t0() - Duration::seconds(100));

    let reply = app
        .get_with(
            "/order/feed",
            &[("if-none-match", &etag), ("if-modified-since", &old)],
        )
        .await;

    assert_eq!(reply.status, 304);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
}

#[tokio::test]
async fn a_stale_etag_answers_200_even_with_a_recent_if_modified_since() {
    let (app, _) = app_with_one_order().await;
    let recent = http_date(t0() + Duration::seconds(30));

    let reply = app
        .get_with(
            "/order/feed",
            &[
                ("if-none-match", "\"h5-0\""),
                ("if-modified-since", &recent),
            ],
        )
        .await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.feed().entries().len(), 1);
}

#[tokio::test]
async fn if_modified_since_alone_compares_with_the_newest_entry() {
    let (app, _) = app_with_one_order().await;
    let at = |offset: i64| http_date(t0() + Duration::seconds(offset));

    let before = app
        .get_with("/order/feed", &[("if-modified-since", &at(-1))])
        .await;
    let same = app
        .get_with("/order/feed", &[("if-modified-since", &at(0))])
        .await;
    let after = app
        .get_with("/order/feed", &[("if-modified-since", &at(1))])
        .await;
    let future = app
        .get_with("/order/feed", &[("if-modified-since", &at(3600))])
        .await;

    assert_eq!(before.status, 200);
    assert_eq!(same.status, 304);
    assert_eq!(after.status, 304);
    assert_eq!(
        future.status, 200,
        "a date after the server's clock is ignored"
    );
}

/// A client polled at t0 + 300 ms and got `Last-Modified: T`; an entry then committed at
/// t0 + 700 ms, within the same second T. Its `If-Modified-Since: T` must not hide that entry.
#[tokio::test]
async fn an_entry_committed_in_the_same_second_as_a_poll_is_not_hidden_by_304() {
    let (app, clock) = app_on_a_manual_clock().await;
    app.place(1).await;
    clock.set(t0() + Duration::milliseconds(200));
    let first_poll = app.get("/order/feed").await;
    let date = first_poll.header("last-modified").expect("date").to_owned();
    clock.set(t0() + Duration::milliseconds(600));
    app.place(2).await;
    clock.set(t0() + Duration::milliseconds(800));

    let second_poll = app
        .get_with("/order/feed", &[("if-modified-since", &date)])
        .await;

    assert_eq!(second_poll.status, 200);
    assert_eq!(second_poll.header("last-modified"), Some(date.as_str()));
    assert_eq!(second_poll.feed().entries().len(), 2);

    // Once an entry lands in a later second, that date is a safe validator again.
    clock.set(t0() + Duration::seconds(5));
    app.place(3).await;
    clock.set(t0() + Duration::seconds(9));
    let later = app.get("/order/feed").await;
    let later_date = later.header("last-modified").expect("date").to_owned();
    let third_poll = app
        .get_with("/order/feed", &[("if-modified-since", &later_date)])
        .await;
    assert_eq!(third_poll.status, 304);
}

/// While the newest entry's second is still the current one, the head's date is the second
/// before: a cache that compares `If-Modified-Since` itself (nginx answers 304 when it equals
/// its copy's date) cannot then hide an entry committed later within that second.
#[tokio::test]
async fn the_heads_date_is_never_the_current_second() {
    let (app, clock) = app_on_a_manual_clock().await;
    app.place(1).await;
    clock.set(t0() + Duration::milliseconds(500));

    let within = app.get("/order/feed").await;
    let etag = within.header("etag").expect("etag").to_owned();
    let not_modified = app
        .get_with("/order/feed", &[("if-none-match", &etag)])
        .await;
    clock.set(t0() + Duration::seconds(1));
    let after = app.get("/order/feed").await;

    let before = http_date(t0() - Duration::seconds(1));
    assert_eq!(within.header("last-modified"), Some(before.as_str()));
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("last-modified"), Some(before.as_str()));
    assert_eq!(
        after.header("last-modified"),
        Some(http_date(t0()).as_str())
    );
}

/// The head's validators live in memory: with the database closed, a conditional poll is
/// still answered 304 (any query would fail with a 500).
#[tokio::test]
async fn a_304_reads_nothing_from_the_database() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    app.place(2).await;
    let etag = app
        .get("/order/feed")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    app.place(3).await;
    let new_etag = app
        .get_with("/order/feed", &[("if-none-match", &etag)])
        .await;
    assert_eq!(new_etag.status, 200, "a new entry changes the ETag");
    let etag = new_etag.header("etag").unwrap().to_owned();

    app.service.state.db.close().await;

    let conditional = app
        .get_with("/order/feed", &[("if-none-match", &etag)])
        .await;
    assert_eq!(conditional.status, 304);
}

/// The head answered from memory, without the router (`common::http::Hold::answer`), is the
/// router's answer: the same status, body and headers (but its own request id), for a `200`
/// and a `304`, in each representation, negotiated or by its own URL, with and without a
/// coding. A query sends the same request through the router instead.
#[tokio::test]
async fn the_head_answered_from_memory_is_the_routers_answer() {
    // Frozen at t0: the answers compared fall in one second (`X-Accel-Expires`).
    let (app, _clock) = app_on_a_manual_clock().await;
    app.place(1).await;
    app.place(2).await;
    let feed = &app.service.state.feed;
    let peer: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let none = axum::http::HeaderMap::new();
    assert!(
        feed.answer_head("/order/feed", &none, peer).is_none(),
        "a head not rendered yet is the router's to render"
    );
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("/order/feed", &[]),
        ("/order/feed", &[("accept-encoding", "zstd")]),
        (
            "/order/feed",
            &[("accept", "application/cloudevents-batch+json")],
        ),
        ("/order/feed/inline", &[("accept-encoding", "gzip")]),
        ("/order/feed/events", &[]),
    ];
    for (path, headers) in cases {
        let routed_path = format!("{path}?via=router");
        let first = app.get_with(&routed_path, headers).await;
        assert_eq!(first.status, 200, "{path} {headers:?}");
        let answered = app.get_with(path, headers).await;
        let routed = app.get_with(&routed_path, headers).await;
        assert_same(&answered, &routed, path, headers);

        let etag = answered.header("etag").expect("an ETag").to_owned();
        let conditional: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .chain([("if-none-match", etag.as_str())])
            .collect();
        let answered = app.get_with(path, &conditional).await;
        let routed = app.get_with(&routed_path, &conditional).await;
        assert_eq!(answered.status, 304, "{path} {headers:?}");
        assert_same(&answered, &routed, path, headers);
    }
    assert!(feed.answer_head("/order/feed", &none, peer).is_some());
    let mut long_poll = none.clone();
    long_poll.insert("prefer", "wait=5".parse().unwrap());
    assert!(
        feed.answer_head("/order/feed", &long_poll, peer).is_none(),
        "a long poll is the handler's"
    );
    let mut unacceptable = none.clone();
    unacceptable.insert("accept", "text/csv".parse().unwrap());
    assert!(feed
        .answer_head("/order/feed", &unacceptable, peer)
        .is_none());
    assert!(feed
        .answer_head("/order/feed/archive/1", &none, peer)
        .is_none());
    assert_eq!(
        app.get_with("/order/feed", &[("accept", "text/csv")])
            .await
            .status,
        406
    );
}

/// Same status, body and headers, but for the request id (each its own) and `Date`.
fn assert_same(
    answered: &crate::helpers::Reply,
    routed: &crate::helpers::Reply,
    path: &str,
    headers: &[(&str, &str)],
) {
    let what = format!("{path} {headers:?}");
    assert_eq!(answered.status, routed.status, "{what}");
    assert_eq!(answered.body, routed.body, "{what}");
    let own = |r: &crate::helpers::Reply| {
        let mut all: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        all.sort();
        all
    };
    assert_eq!(own(answered), own(routed), "{what}");
    let id = |r: &crate::helpers::Reply| r.header("x-request-id").map(str::to_owned);
    assert!(
        id(answered).is_some() && id(answered) != id(routed),
        "{what}"
    );
}
