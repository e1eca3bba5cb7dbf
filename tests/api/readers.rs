//! Who reads the feed: readers name themselves and their checkpoint in request headers; the
//! order service remembers them (bounded, expiring, persisted in batches) and shows them at
//! `/order/feed/readers` and in its metrics.

use chrono::{Duration, Utc};
use common::Clock;
use serde_json::Value;

use crate::consumer_helpers::{spawn_consumer, Kind};
use crate::helpers::{spawn_order, spawn_order_on, OrderApp, OrderOptions};

async fn readers(app: &OrderApp) -> Value {
    app.service.state.feed.flush_readers().await.expect("flush");
    let r = app.get("/order/feed/readers").await;
    assert_eq!(r.status, 200);
    r.json()
}

/// A GET of the head naming reader `name` at `checkpoint`.
async fn poll_as(app: &OrderApp, name: &str, checkpoint: &str) {
    let r = app
        .get_with(
            "/order/feed",
            &[
                ("feed-reader", name),
                ("feed-reader-checkpoint", checkpoint),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
}

fn reader<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["readers"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
}

/// A consumer names itself on every feed request: once it has caught up, the order service
/// knows its checkpoint's position (the head), that it is 0 behind, and where it polls from.
#[tokio::test]
async fn a_consumer_appears_with_its_position_once_caught_up() {
    let app = spawn_order(OrderOptions::default()).await;
    for n in 0..7 {
        app.place(1 + n % 5).await;
    }
    let consumer = spawn_consumer(Kind::Invoicing, &app.url("/order/feed")).await;
    consumer.poll().await;
    // The next request carries the checkpoint the poll reached.
    consumer.poll().await;

    let report = readers(&app).await;

    assert_eq!(report["head"], 7);
    let invoicing = reader(&report, "invoicing").expect("invoicing is known");
    assert_eq!(invoicing["position"], 7, "{report:#}");
    assert_eq!(invoicing["behind"], 0);
    assert_eq!(invoicing["checkpoint"], app.entry_id(7, 1).await);
    assert_eq!(invoicing["from"], "127.0.0.1");
    assert_eq!(invoicing["silent"], false);
}

/// A reader that stops polling is shown as silent after two minutes, keeps its place (it
/// falls further behind as entries arrive), and is forgotten after a day, row included.
#[tokio::test]
async fn a_reader_that_stops_is_shown_silent_then_expires() {
    let clock = Clock::manual(Utc::now());
    let app = spawn_order(OrderOptions {
        clock: clock.clone(),
        ..OrderOptions::default()
    })
    .await;
    app.place(1).await;
    let checkpoint = app.entry_id(1, 1).await;
    poll_as(&app, "audit", &checkpoint).await;
    assert_eq!(reader(&readers(&app).await, "audit").unwrap()["behind"], 0);

    app.place(2).await;
    app.place(3).await;
    clock.set(clock.now() + Duration::minutes(3));
    let silent = readers(&app).await;
    let audit = reader(&silent, "audit").unwrap();
    assert_eq!(audit["silent"], true);
    assert_eq!(audit["behind"], 2);
    assert!(audit["secondsSinceSeen"].as_i64().unwrap() >= 180);

    clock.set(clock.now() + Duration::hours(25));
    let expired = readers(&app).await;
    assert!(reader(&expired, "audit").is_none(), "{expired:#}");
    let db = app.stop().await;
    let restarted = spawn_order_on(db, OrderOptions::default()).await;
    assert!(reader(&readers(&restarted).await, "audit").is_none());
}

/// Readers are persisted: a restarted order service still knows them.
#[tokio::test]
async fn readers_survive_a_restart_of_the_order_service() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    app.place(2).await;
    let checkpoint = app.entry_id(1, 1).await;
    poll_as(&app, "shipping", &checkpoint).await;
    readers(&app).await;

    let db = app.stop().await;
    let restarted = spawn_order_on(db, OrderOptions::default()).await;

    let report = readers(&restarted).await;
    let shipping = reader(&report, "shipping").expect("remembered");
    assert_eq!(shipping["position"], 1);
    assert_eq!(shipping["behind"], 1);
}

/// A reader seen since the last periodic write is written when the order service shuts down,
/// before its database closes: nothing it learned is lost to a restart.
#[tokio::test]
async fn readers_seen_since_the_last_write_are_written_on_shutdown() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    let checkpoint = app.entry_id(1, 1).await;
    poll_as(&app, "audit", &checkpoint).await;

    let db = app.stop().await;
    let restarted = spawn_order_on(db, OrderOptions::default()).await;

    let report = readers(&restarted).await;
    let audit = reader(&report, "audit").expect("written on shutdown");
    assert_eq!(audit["position"], 1);
}

/// Malformed names and checkpoints are ignored; a forged checkpoint changes only the row of
/// the name it was sent under; and a reader's headers never cost a `304` a database read.
#[tokio::test]
async fn forged_or_malformed_headers_change_nothing_but_that_readers_row() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    app.place(2).await;
    let first = app.entry_id(1, 1).await;
    poll_as(&app, "invoicing", &first).await;
    let long = "x".repeat(600);
    for headers in [
        vec![
            ("feed-reader", "bad name"),
            ("feed-reader-checkpoint", first.as_str()),
        ],
        vec![
            ("feed-reader", ""),
            ("feed-reader-checkpoint", first.as_str()),
        ],
        vec![
            ("feed-reader", "invoicing"),
            ("feed-reader-checkpoint", long.as_str()),
        ],
        vec![
            ("feed-reader", "intruder"),
            ("feed-reader-checkpoint", "urn:no:such:entry"),
        ],
        vec![("feed-reader-checkpoint", "urn:alone")],
        vec![
            ("feed-reader", "proxied"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
        ],
    ] {
        let r = app.get_with("/order/feed", &headers).await;
        assert_eq!(r.status, 200, "a reader's headers never make an error");
    }

    let report = readers(&app).await;

    let names: Vec<&str> = report["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["intruder", "invoicing", "proxied"]);
    let invoicing = reader(&report, "invoicing").unwrap();
    assert_eq!(invoicing["checkpoint"], first.as_str());
    assert_eq!(invoicing["position"], 1);
    let intruder = reader(&report, "intruder").unwrap();
    assert_eq!(intruder["position"], Value::Null);
    assert_eq!(intruder["behind"], Value::Null);
    assert_eq!(reader(&report, "proxied").unwrap()["from"], "203.0.113.9");

    // With the database closed, a conditional poll naming a reader is still a 304.
    let etag = app
        .get("/order/feed")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    app.service.state.db.close().await;
    let r = app
        .get_with(
            "/order/feed",
            &[
                ("if-none-match", &etag),
                ("feed-reader", "invoicing"),
                ("feed-reader-checkpoint", "urn:moved"),
            ],
        )
        .await;
    assert_eq!(r.status, 304);
}

/// Per reader, the metrics say how far behind it is and how long since it was seen.
#[tokio::test]
async fn reader_lag_and_silence_are_metrics() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    app.place(2).await;
    let checkpoint = app.entry_id(1, 1).await;
    poll_as(&app, "audit", &checkpoint).await;
    readers(&app).await;

    let text = app.get("/order/metrics").await.text();

    assert!(
        text.contains("feed_reader_entries_behind{reader=\"audit\"} 1"),
        "{text}"
    );
    assert!(text.contains("feed_reader_seconds_since_seen{reader=\"audit\"} 0"));
}

/// An order's page says, per reader, whether it has the order's newest entry or how many
/// entries it has to go: right while a consumer is stopped, and right again once it caught up.
#[tokio::test]
async fn the_order_page_shows_where_each_reader_stands() {
    let app = spawn_order(OrderOptions::default()).await;
    for customer in 1..=3 {
        app.place(customer).await;
    }
    let consumer = spawn_consumer(Kind::Invoicing, &app.url("/order/feed")).await;
    consumer.poll().await;
    consumer.poll().await;
    // The consumer stops polling; two more entries: order 4 placed, order 2 cancelled.
    app.place(4).await;
    assert_eq!(app.cancel(2).await.status, 200);
    readers(&app).await;

    let stopped = [
        order_page(&app, 1).await,
        order_page(&app, 2).await,
        order_page(&app, 4).await,
    ];
    consumer.poll().await;
    consumer.poll().await;
    readers(&app).await;
    let caught_up = order_page(&app, 2).await;

    assert_eq!(standing(&stopped[0], "invoicing"), "has it");
    assert_eq!(standing(&stopped[1], "invoicing"), "2 entries to go");
    assert_eq!(standing(&stopped[2], "invoicing"), "1 entry to go");
    assert_eq!(standing(&caught_up, "invoicing"), "has it");
}

async fn order_page(app: &OrderApp, id: i64) -> String {
    let page = app
        .get_with(
            &format!("/order/ui/orders/{id}"),
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(page.status, 200);
    page.text()
}

/// The text of the standing cell in `reader`'s row of the order page's readers table.
fn standing(page: &str, reader: &str) -> String {
    let html = scraper::Html::parse_document(page);
    let rows = scraper::Selector::parse("section[aria-labelledby=readers-title] tbody tr").unwrap();
    let cells = scraper::Selector::parse("td").unwrap();
    html.select(&rows)
        .map(|row| {
            row.select(&cells)
                .map(|c| c.text().collect::<String>())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells[0] == reader)
        .unwrap_or_else(|| panic!("no row for {reader} in {page}"))[1]
        .clone()
}
