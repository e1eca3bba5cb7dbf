//! The order API: placement, validation, idempotency, reading, listing and cancelling.

use serde_json::json;
use std::sync::Arc;

use crate::helpers::{fresh_db, spawn_order, spawn_order_on, OrderOptions};

fn valid_order() -> serde_json::Value {
    json!({"customerId": 2, "lines": [{"itemId": 1, "count": 3}, {"itemId": 4, "count": 1}]})
}

/// A placed order comes back with its id, version 1, the customer's data, default addresses
/// and a total, and `Location` points at it.
#[tokio::test]
async fn placing_an_order_returns_it_with_location() {
    let app = spawn_order(OrderOptions::default()).await;

    let reply = app.post_json("/order/orders", &valid_order()).await;

    assert_eq!(reply.status, 201, "{}", reply.text());
    let order = reply.json();
    let id = order["id"].as_i64().unwrap();
    assert_eq!(
        reply.header("location"),
        Some(format!("/order/orders/{id}").as_str())
    );
    assert_eq!(order["version"], 1);
    assert_eq!(order["status"], "placed");
    assert_eq!(order["customer"]["customerId"], 2);
    assert_eq!(order["customer"]["name"], "Lovelace");
    assert_eq!(order["customer"]["email"], "ada@example.com");
    assert_eq!(order["shippingAddress"], order["billingAddress"]);
    assert_eq!(order["shippingAddress"]["city"], "London");
    assert_eq!(order["lines"][0]["item"]["priceCents"], 9900);
    assert_eq!(order["lines"][1]["item"]["name"], "Headphones");
    assert_eq!(order["totalCents"], 3 * 9900 + 2900);
    assert_eq!(app.get(&format!("/order/orders/{id}")).await.json(), order);
}

/// Explicit addresses replace the customer's defaults.
#[tokio::test]
async fn explicit_addresses_are_kept() {
    let app = spawn_order(OrderOptions::default()).await;
    let mut body = valid_order();
    body["shippingAddress"] = json!({"street": "Dock 7", "zip": "20457", "city": "Hamburg"});
    body["billingAddress"] = json!({"street": "Main St 1", "zip": "8001", "city": "Zürich"});

    let order = app.post_json("/order/orders", &body).await.json();

    assert_eq!(order["shippingAddress"]["city"], "Hamburg");
    assert_eq!(order["billingAddress"]["city"], "Zürich");
}

/// Every kind of invalid input gets a 4xx problem+json naming the problem, and writes nothing:
/// no order, no feed entry.
#[tokio::test]
async fn invalid_orders_are_refused_with_a_problem_and_write_nothing() {
    let app = spawn_order(OrderOptions::default()).await;
    let huge = format!(
        r#"{{"customerId":1,"lines":[],"pad":"{}"}}"#,
        "x".repeat(100_000)
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", "application/json", b"{\"customerId\": ".to_vec(), 400, "malformed JSON"),
        ("not JSON at all", "text/plain", b"hello".to_vec(), 415, "application/json"),
        ("unknown customer", "application/json", br#"{"customerId":99,"lines":[{"itemId":1,"count":1}]}"#.to_vec(), 422, "unknown customer 99"),
        ("unknown item", "application/json", br#"{"customerId":1,"lines":[{"itemId":77,"count":1}]}"#.to_vec(), 422, "unknown item 77"),
        ("no lines", "application/json", br#"{"customerId":1,"lines":[]}"#.to_vec(), 422, "lines must not be empty"),
        ("zero count", "application/json", br#"{"customerId":1,"lines":[{"itemId":1,"count":0}]}"#.to_vec(), 422, "count must be between 1"),
        ("negative count", "application/json", br#"{"customerId":1,"lines":[{"itemId":1,"count":-2}]}"#.to_vec(), 422, "count must be between 1"),
        ("wrong type", "application/json", br#"{"customerId":"one","lines":[{"itemId":1,"count":1}]}"#.to_vec(), 422, "invalid type"),
        ("unknown field", "application/json", br#"{"customerId":1,"lines":[{"itemId":1,"count":1}],"x":1}"#.to_vec(), 422, "unknown field"),
        ("blank address", "application/json", br#"{"customerId":1,"lines":[{"itemId":1,"count":1}],"shippingAddress":{"street":"","zip":"1","city":"A"}}"#.to_vec(), 422, "shippingAddress.street"),
        ("oversized body", "application/json", huge.into_bytes(), 413, ""),
    ];

    for (case, content_type, body, status, needle) in cases {
        let reply = app.post_raw("/order/orders", content_type, body, &[]).await;
        let detail = reply.assert_problem(status);
        assert!(
            detail.contains(needle),
            "{case}: {detail:?} should mention {needle:?}"
        );
    }

    assert_eq!(app.counts().await, (0, 0));
    assert_eq!(app.get("/order/feed").await.feed().entries().len(), 0);
}

/// The same Idempotency-Key and body returns the first order without writing again; another
/// body under that key is a 422; a malformed key is a 400.
#[tokio::test]
async fn an_idempotency_key_makes_retries_safe() {
    let app = spawn_order(OrderOptions::default()).await;
    let body = valid_order().to_string().into_bytes();
    let key = [("idempotency-key", "retry-me-1")];

    let first = app
        .post_raw("/order/orders", "application/json", body.clone(), &key)
        .await;
    let retry = app
        .post_raw("/order/orders", "application/json", body, &key)
        .await;
    let other = app
        .post_raw(
            "/order/orders",
            "application/json",
            br#"{"customerId":1,"lines":[{"itemId":1,"count":1}]}"#.to_vec(),
            &key,
        )
        .await;
    let bad_key = app
        .post_raw(
            "/order/orders",
            "application/json",
            valid_order().to_string().into_bytes(),
            &[("idempotency-key", "")],
        )
        .await;

    assert_eq!(first.status, 201);
    assert_eq!(retry.status, 201);
    assert_eq!(retry.json()["id"], first.json()["id"]);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert!(other.assert_problem(422).contains("already used"));
    bad_key.assert_problem(400);
    assert_eq!(app.counts().await, (1, 1));
}

/// Concurrent retries with one key create one order (on Postgres they race on the key).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_create_one_order() {
    let app = spawn_order(OrderOptions::default()).await;
    let body = valid_order().to_string().into_bytes();

    let replies = futures::future::join_all((0..8).map(|_| {
        app.post_raw(
            "/order/orders",
            "application/json",
            body.clone(),
            &[("idempotency-key", "same")],
        )
    }))
    .await;

    for r in &replies {
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["id"], replies[0].json()["id"]);
    }
    assert_eq!(app.counts().await, (1, 1));
}

/// Placements written together (the group commit) still get their own answers: among 60
/// concurrent requests, unknown customers are refused, a key reused with another body is
/// refused, retries under one key get one order, and every created order has its own entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_placements_written_together_each_get_their_own_answer() {
    let app = spawn_order(OrderOptions::default()).await;
    let requests: Vec<(serde_json::Value, Option<&str>)> = (0..60)
        .map(|i| match i % 4 {
            0 => (
                json!({"customerId": 999, "lines": [{"itemId": 1, "count": 1}]}),
                None,
            ),
            1 => (valid_order(), Some("shared")),
            2 if i % 8 == 2 => (
                json!({"customerId": 1, "lines": [{"itemId": 2, "count": 9}]}),
                Some("shared"),
            ),
            _ => (
                json!({"customerId": 1 + i % 5, "lines": [{"itemId": 3, "count": 1 + i}]}),
                None,
            ),
        })
        .collect();

    let app = &app;
    let replies = futures::future::join_all(requests.iter().map(|(body, key)| {
        let headers: Vec<(&str, &str)> = key.iter().map(|k| ("idempotency-key", *k)).collect();
        let body = body.to_string().into_bytes();
        async move {
            app.post_raw("/order/orders", "application/json", body, &headers)
                .await
        }
    }))
    .await;

    let mut created = std::collections::BTreeSet::new();
    let mut shared = std::collections::BTreeSet::new();
    let mut refused_bodies = 0;
    for (((body, key), reply), i) in requests.iter().zip(&replies).zip(0..) {
        match (i % 4, reply.status.as_u16()) {
            (0, status) => assert_eq!(status, 422, "{}", reply.text()),
            // Whichever body took the shared key first wins it; the other body is refused.
            (_, 201) if key.is_some() => {
                shared.insert(reply.json()["id"].as_i64().unwrap());
            }
            (_, 422) if key.is_some() => refused_bodies += 1,
            (_, 201) => {
                let order = reply.json();
                assert_eq!(order["lines"][0]["count"], body["lines"][0]["count"]);
                assert!(created.insert(order["id"].as_i64().unwrap()));
            }
            (_, status) => panic!("request {i}: {status} {}", reply.text()),
        }
    }
    assert_eq!(
        shared.len(),
        1,
        "one order under the shared key: {shared:?}"
    );
    let shared_bodies = requests.iter().filter(|(_, k)| k.is_some()).count();
    assert!(
        refused_bodies == 8 || refused_bodies == shared_bodies - 8,
        "{refused_bodies}"
    );
    let orders = created.len() as i64 + 1;
    assert_eq!(app.counts().await, (orders, orders));
}

/// Placements still queued for the writer when the service stops (their requests gone, as when
/// clients hang up during a shutdown) are written before the database closes, more than one
/// batch of them: none fails on a closed pool, each has its feed entry.
#[tokio::test]
async fn placements_queued_when_the_service_stops_are_written_before_it_closes() {
    use futures::FutureExt;
    use order::model::{LineRequest, NewOrder};
    use order::placer::Placement;

    let db = fresh_db("drain").await;
    let settings = order::Settings {
        database_url: db.url.clone(),
        feed_page_size: None,
        feed_store_archives: true,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = order::OrderService::build(&settings, common::Clock::System, shutdown.clone())
        .await
        .unwrap();
    let queued = 600; // more than two of the writer's batches
    for count in 1..=queued {
        let placement = Placement {
            new: NewOrder {
                customer_id: 1,
                lines: vec![LineRequest { item_id: 1, count }],
                shipping_address: None,
                billing_address: None,
            },
            key: None,
            hash: format!("request {count}"),
        };
        // Handed to the writer, then given up before its answer (unconstrained: else tokio's
        // budget makes every send after the 128th in one poll wait).
        let place = service.state.placer.place(placement);
        let answer = tokio::task::unconstrained(place).now_or_never();
        assert!(answer.is_none(), "answered at once: {answer:?}");
    }
    shutdown.cancel();
    service.close().await;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    for table in ["orders", "feed_entries"] {
        let (rows,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, queued, "{table}");
    }
    pool.close().await;
}

/// Placements written in many batches take ascending ids in commit (feed) order, each id once;
/// on Postgres, batches that follow each other draw the next batch's ids in their own statement
/// (the sequence is then ahead of the last id used).
#[tokio::test]
async fn batches_take_ascending_ids_in_commit_order_and_draw_the_next_ones_ahead() {
    let app = spawn_order(OrderOptions::default()).await;
    let app = &app;
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let ids = futures::future::join_all((0..200).map(|_| {
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await.unwrap();
            app.place(1).await
        }
    }))
    .await;
    let pool = app.service.state.db.pool();
    let links: Vec<(String,)> = sqlx::query_as(
        "SELECT link FROM feed_entries WHERE category = 'order-placed' ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let in_feed: Vec<i64> = links
        .iter()
        .map(|(link,)| link.rsplit('/').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(in_feed.len(), 200);
    assert!(
        in_feed.windows(2).all(|w| w[0] < w[1]),
        "ids in feed order: {in_feed:?}"
    );
    let mut placed = ids.clone();
    placed.sort_unstable();
    let mut seen = in_feed.clone();
    seen.sort_unstable();
    assert_eq!(placed, seen);
    if crate::helpers::on_postgres() {
        let (drawn,): (i64,) = sqlx::query_as("SELECT last_value FROM orders_id_seq")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(
            drawn > *placed.last().unwrap(),
            "the last batch drew ids ahead: sequence at {drawn}, last id {}",
            placed.last().unwrap()
        );
    }
}

/// Cancelling bumps the version and publishes an event; cancelling again changes nothing.
#[tokio::test]
async fn cancelling_is_an_event_and_idempotent() {
    let app = spawn_order(OrderOptions::default()).await;
    let id = app.place(1).await;

    let cancelled = app.cancel(id).await;
    let again = app.cancel(id).await;

    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(cancelled.json()["version"], 2);
    assert_eq!(again.json()["version"], 2);
    assert_eq!(app.counts().await, (1, 2));
    let feed = app.get("/order/feed").await.feed();
    assert_eq!(
        feed.entries()[0].title().as_str(),
        format!("Order {id} cancelled")
    );
    assert_eq!(feed.entries()[0].id(), app.entry_id(id, 2).await);
    app.cancel(999).await.assert_problem(404);
}

/// Eight concurrent cancels of each of 20 orders, all at once: every request gets the same
/// `200` with version 2, and the feed holds exactly one cancellation per order (the change
/// path locks the order, so no two cancels both read version 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_of_one_order_all_answer_alike_and_publish_once() {
    let app = Arc::new(spawn_order(OrderOptions::default()).await);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(app.place(1 + i % 3).await);
    }

    let mut requests = Vec::new();
    for &id in &ids {
        for _ in 0..8 {
            let app = app.clone();
            requests.push(tokio::spawn(async move {
                let r = app.cancel(id).await;
                (id, r.status, r.text())
            }));
        }
    }
    let mut answers = Vec::new();
    for r in requests {
        answers.push(r.await.unwrap());
    }

    for (id, status, body) in &answers {
        assert_eq!(*status, 200, "order {id}: {body}");
        let order: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(order["status"], "cancelled", "{body}");
        assert_eq!(order["version"], 2, "{body}");
    }
    let (_, entries) = app.counts().await;
    assert_eq!(entries, 40, "20 placements and 20 cancellations");
    let pool = app.service.state.db.pool();
    let per_order: Vec<(String, i64)> = sqlx::query_as(
        "SELECT link, COUNT(*) FROM feed_entries WHERE category = 'order-cancelled' GROUP BY link",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(per_order.len(), 20);
    assert!(per_order.iter().all(|(_, n)| *n == 1), "{per_order:?}");
}

/// Unknown or malformed ids get a 404 or 400 problem.
#[tokio::test]
async fn unknown_orders_are_a_404_problem() {
    let app = spawn_order(OrderOptions::default()).await;

    assert!(app
        .get("/order/orders/12345")
        .await
        .assert_problem(404)
        .contains("12345"));
    app.get("/order/orders/abc").await.assert_problem(400);
    app.get("/order/nothing-here").await.assert_problem(404);
}

/// Lists are newest first and paged with `limit` and `before`; a bad limit is a 400.
#[tokio::test]
async fn orders_are_listed_newest_first_in_pages() {
    let app = spawn_order(OrderOptions::default()).await;
    for c in 1..=5 {
        app.place(c).await;
    }

    let first = app.get("/order/orders?limit=2").await.json();
    let next = app.get("/order/orders?limit=2&before=4").await.json();

    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&first), [5, 4]);
    assert_eq!(ids(&next), [3, 2]);
    assert_eq!(next[0]["lines"].as_array().unwrap().len(), 1);
    assert_eq!(ids(&app.get("/order/orders").await.json()).len(), 5);
    app.get("/order/orders?limit=0").await.assert_problem(400);
    app.get("/order/orders?limit=501").await.assert_problem(400);
}

/// The catalog is seeded once: a restart on the same database neither duplicates nor fails.
#[tokio::test]
async fn the_catalog_is_seeded_idempotently_across_restarts() {
    let app = spawn_order(OrderOptions::default()).await;
    let customers = app.get("/order/customers").await.json();
    let items = app.get("/order/items").await.json();
    let id = app.place(1).await;
    let db = app.stop().await;

    let restarted = spawn_order_on(db, OrderOptions::default()).await;

    assert_eq!(restarted.get("/order/customers").await.json(), customers);
    assert_eq!(restarted.get("/order/items").await.json(), items);
    assert_eq!(customers.as_array().unwrap().len(), 5);
    assert_eq!(customers[0]["address"]["city"], "Houston");
    let feed = restarted.get("/order/feed").await.feed();
    assert_eq!(
        feed.entries().len(),
        1,
        "the feed head is reloaded from the database"
    );
    assert_eq!(restarted.place(2).await, id + 1);
}

/// Health and readiness answer under the service's prefix.
#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_order(OrderOptions::default()).await;

    assert_eq!(app.get("/order/health").await.status, 200);
    assert_eq!(app.get("/order/ready").await.json()["status"], "ready");
}

/// The bulk seeder appends orders and gap-free feed entries that read like placed orders,
/// through the publisher, so a running service's head sees them at once.
#[tokio::test]
async fn bulk_seeding_appends_orders_and_their_feed_entries() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(2).await;
    let seeded = order::seed::seed(&app.service.state, 1233).await.unwrap();
    // Seeding goes through the publisher: the running service's head moved with it.
    let live = app.get("/order/feed").await.feed();
    assert_eq!(live.entries()[0].title().as_str(), "Order 1234 placed");
    let db = app.stop().await;

    let app = spawn_order_on(db, OrderOptions::default()).await;

    assert_eq!(seeded, 1233);
    assert_eq!(app.counts().await, (1234, 1234));
    let head = app.get("/order/feed").await.feed();
    assert_eq!(head.entries().len(), 4);
    assert_eq!(head.entries()[0].title().as_str(), "Order 1234 placed");
    assert_eq!(head.entries()[3].title().as_str(), "Order 1231 placed");
    assert_eq!(head.entries()[0].id(), app.entry_id(1234, 1).await);
    let archive = app.get("/order/feed/archive/246").await.feed();
    assert_eq!(archive.entries()[0].title().as_str(), "Order 1230 placed");
    let order = app.get("/order/orders/700").await.json();
    assert_eq!(order["totalCents"], 9900);
    assert_eq!(order["lines"][0]["item"]["name"], "iPod");
    assert_eq!(
        app.place(1).await,
        1235,
        "placements continue after the seeded ids"
    );
}
