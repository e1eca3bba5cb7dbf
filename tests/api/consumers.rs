//! invoicing and shipping consume the order feed: nothing lost, doubled or reordered, through
//! redelivery, restarts, catch-up across archives and failures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::Value;

use crate::consumer_helpers::{spawn_consumer, spawn_consumer_on, test_args, Kind};
use crate::helpers::{fresh_db, spawn_order, OrderApp, OrderOptions};

async fn order_app(page_size: i64) -> OrderApp {
    spawn_order(OrderOptions {
        page_size,
        ..OrderOptions::default()
    })
    .await
}

/// Places `n` orders from 4 concurrent clients, with varied customers, items and addresses.
async fn place_orders(app: &Arc<OrderApp>, n: usize) {
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in (t..n).step_by(4) {
                    let mut body = serde_json::json!({
                        "customerId": 1 + (i % 5),
                        "lines": [{"itemId": 1 + (i % 6), "count": 1 + (i % 3)},
                                  {"itemId": 1 + ((i + 2) % 6), "count": 2}]
                    });
                    if i % 4 == 0 {
                        body["shippingAddress"] =
                            serde_json::json!({"street": format!("Dock {i}"), "zip": "20457", "city": "Hamburg"});
                    }
                    let r = app.post_json("/order/orders", &body).await;
                    assert_eq!(r.status, 201, "{}", r.text());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("placing orders");
    }
}

async fn all_orders(app: &OrderApp) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page = app
            .get(&format!("/order/orders?limit=500&before={before}"))
            .await
            .json();
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        before = last["id"].as_i64().unwrap();
        orders.extend(page);
    }
    orders
}

pub fn assert_invoice_matches(invoice: &Value, order: &Value) {
    let id = &order["id"];
    assert_eq!(invoice["orderId"], *id);
    assert_eq!(invoice["version"], order["version"], "order {id}");
    assert_eq!(invoice["status"], order["status"], "order {id}");
    assert_eq!(invoice["customer"], order["customer"], "order {id}");
    assert_eq!(
        invoice["billingAddress"], order["billingAddress"],
        "order {id}"
    );
    assert_eq!(invoice["totalCents"], order["totalCents"], "order {id}");
    assert_eq!(invoice["orderedAt"], order["created"], "order {id}");
    let lines = order["lines"].as_array().unwrap();
    let invoice_lines = invoice["lines"].as_array().unwrap();
    assert_eq!(invoice_lines.len(), lines.len());
    for (il, ol) in invoice_lines.iter().zip(lines) {
        assert_eq!(il["itemId"], ol["item"]["itemId"]);
        assert_eq!(il["name"], ol["item"]["name"]);
        assert_eq!(il["priceCents"], ol["item"]["priceCents"]);
        assert_eq!(il["count"], ol["count"]);
        let total = ol["count"].as_i64().unwrap() * ol["item"]["priceCents"].as_i64().unwrap();
        assert_eq!(il["lineTotalCents"], total);
    }
}

pub fn assert_shipment_matches(shipment: &Value, order: &Value) {
    let id = &order["id"];
    assert_eq!(shipment["orderId"], *id);
    assert_eq!(shipment["version"], order["version"], "order {id}");
    assert_eq!(shipment["status"], order["status"], "order {id}");
    assert_eq!(
        shipment["customer"]["customerId"],
        order["customer"]["customerId"]
    );
    assert_eq!(shipment["customer"]["name"], order["customer"]["name"]);
    assert_eq!(
        shipment["customer"]["firstname"],
        order["customer"]["firstname"]
    );
    assert!(
        shipment["customer"].get("email").is_none(),
        "shipping keeps no email"
    );
    assert_eq!(
        shipment["shippingAddress"], order["shippingAddress"],
        "order {id}"
    );
    assert_eq!(shipment["orderedAt"], order["created"], "order {id}");
    assert!(
        !shipment.to_string().contains("priceCents"),
        "shipping keeps no prices"
    );
    let lines = order["lines"].as_array().unwrap();
    let shipment_lines = shipment["lines"].as_array().unwrap();
    assert_eq!(shipment_lines.len(), lines.len());
    for (sl, ol) in shipment_lines.iter().zip(lines) {
        assert_eq!(sl["itemId"], ol["item"]["itemId"]);
        assert_eq!(sl["name"], ol["item"]["name"]);
        assert_eq!(sl["count"], ol["count"]);
    }
}

/// Hundreds of orders, every seventh cancelled: each invoice and shipment matches its order
/// field by field, cancellations included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_reaches_invoicing_and_shipping_field_by_field() {
    let order = Arc::new(order_app(20).await);
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    let shipping = spawn_consumer(Kind::Shipping, &feed).await;
    place_orders(&order, 300).await;
    for id in (7..=300).step_by(7) {
        assert_eq!(order.cancel(id).await.status, 200);
    }

    assert_eq!(invoicing.poll_ok().await["status"], "ok");
    assert_eq!(shipping.poll_ok().await["status"], "ok");

    let orders = all_orders(&order).await;
    assert_eq!(orders.len(), 300);
    let invoices: HashMap<i64, Value> = invoicing
        .copies()
        .await
        .into_iter()
        .map(|i| (i["orderId"].as_i64().unwrap(), i))
        .collect();
    let shipments: HashMap<i64, Value> = shipping
        .copies()
        .await
        .into_iter()
        .map(|s| (s["orderId"].as_i64().unwrap(), s))
        .collect();
    assert_eq!(invoices.len(), 300);
    assert_eq!(shipments.len(), 300);
    for o in &orders {
        let id = o["id"].as_i64().unwrap();
        assert_invoice_matches(&invoices[&id], o);
        assert_shipment_matches(&shipments[&id], o);
        let cancelled = id % 7 == 0;
        assert_eq!(o["status"], if cancelled { "cancelled" } else { "placed" });
    }
    let report = invoicing.report().await;
    assert_eq!(report["checkpoint"]["handledEntries"], 300 + 42);
    assert_eq!(report["lag"]["entries"], 0);
    assert_eq!(report["parked"]["count"], 0);
    assert_eq!(
        invoicing
            .get("/invoicing/invoices/9999")
            .await
            .assert_problem(404),
        "no invoice for order 9999"
    );
}

/// Handling the same entries again, from a consumer with fresh in-memory state, changes
/// nothing: not the copies, not the checkpoint, not the handled count.
#[tokio::test]
async fn redelivered_entries_change_nothing() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    place_orders(&order, 12).await;
    order.cancel(3).await;
    invoicing.poll_ok().await;
    let copies = invoicing.copies().await;
    let report = invoicing.report().await;
    let requests = order.detail_requests();
    let db = invoicing.stop().await;

    let fresh = spawn_consumer_on(Kind::Invoicing, db, test_args(&feed)).await;
    let replayed = fresh.replay(&order.url("/order/feed/archive/1")).await
        + fresh.replay(&order.url("/order/feed/archive/2")).await
        + fresh.replay(&feed).await;
    fresh.poll_ok().await;

    assert_eq!(replayed, 13, "every entry was seen again");
    assert_eq!(order.detail_requests(), requests + 13, "and fetched again");
    assert_eq!(fresh.copies().await, copies);
    let after = fresh.report().await;
    assert_eq!(after["checkpoint"], report["checkpoint"]);
    assert_eq!(fresh.handled().await.len(), 13);
}

/// A consumer restarted after catching up resumes from its stored checkpoint: it fetches the
/// details of new entries only.
#[tokio::test]
async fn a_restarted_consumer_resumes_from_its_checkpoint() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let shipping = spawn_consumer(Kind::Shipping, &feed).await;
    place_orders(&order, 11).await;
    shipping.poll_ok().await;
    assert_eq!(order.detail_requests(), 11);
    let db = shipping.stop().await;
    place_orders(&order, 3).await;

    let restarted = spawn_consumer_on(Kind::Shipping, db, test_args(&feed)).await;
    let report = restarted.poll_ok().await;

    assert_eq!(report["handled"], 3);
    assert_eq!(order.detail_requests(), 14, "no history fetched again");
    assert_eq!(restarted.copies().await.len(), 14);
}

/// Stopped while the feed grows by several archive pages, a consumer then gets everything, in
/// feed order, exactly once.
#[tokio::test]
async fn catch_up_across_archives_applies_everything_in_order_once() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    place_orders(&order, 2).await;
    invoicing.poll_ok().await;
    place_orders(&order, 31).await;
    for id in [2, 9, 30] {
        order.cancel(id).await;
    }

    invoicing.poll_ok().await;

    // The feed's own order, oldest first: archives 1..=7, then the head.
    let mut feed_order = Vec::new();
    for page in 1..=7 {
        let f = order
            .get(&format!("/order/feed/archive/{page}"))
            .await
            .feed();
        feed_order.extend(f.entries().iter().rev().map(|e| e.id().to_owned()));
    }
    let head = order.get("/order/feed").await.feed();
    feed_order.extend(head.entries().iter().rev().map(|e| e.id().to_owned()));
    assert_eq!(feed_order.len(), 36);
    assert_eq!(invoicing.handled().await, feed_order);
    assert_eq!(order.detail_requests(), 36, "each entry fetched once");
    let invoices = invoicing.copies().await;
    assert_eq!(invoices.len(), 33);
    let cancelled: Vec<i64> = invoices
        .iter()
        .filter(|i| i["status"] == "cancelled")
        .map(|i| i["orderId"].as_i64().unwrap())
        .collect();
    assert_eq!(cancelled, [30, 9, 2]);
}

/// Details answering 500, or stalling past the client timeout, are retried until they succeed;
/// no entry is skipped or parked.
#[tokio::test]
async fn transient_failures_are_retried_and_skip_nothing() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    place_orders(&order, 10).await;
    order.faults.fail_next.store(6, Ordering::SeqCst);
    order.faults.stall_next.store(2, Ordering::SeqCst);

    let report = invoicing.poll_ok().await;

    assert_eq!(report["handled"], 10);
    assert_eq!(invoicing.copies().await.len(), 10);
    assert!(
        order.detail_requests() >= 18,
        "failed requests were retried"
    );
    assert_eq!(invoicing.report().await["parked"]["count"], 0);
    let handled = invoicing.handled().await;
    let mut expected = Vec::new();
    for i in 1..=10 {
        expected.push(order.entry_id(i, 1).await);
    }
    assert_eq!(handled, expected, "every entry once, in feed order");
}

/// A 404 for one entry's details parks that entry and later entries proceed; once the cause
/// is fixed, retrying the parked entry applies it.
#[tokio::test]
async fn a_permanent_failure_parks_the_entry_and_retry_applies_it() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    order.faults.not_found.lock().unwrap().insert(2);
    place_orders(&order, 3).await;

    invoicing.poll_ok().await;

    assert_eq!(invoicing.get("/invoicing/invoices/1").await.status, 200);
    assert_eq!(invoicing.get("/invoicing/invoices/3").await.status, 200);
    invoicing
        .get("/invoicing/invoices/2")
        .await
        .assert_problem(404);
    let report = invoicing.report().await;
    assert_eq!(report["parked"]["count"], 1);
    let parked = &report["parked"]["entries"][0];
    let entry_2 = order.entry_id(2, 1).await;
    assert_eq!(parked["entryId"], entry_2.as_str());
    assert!(
        parked["reason"].as_str().unwrap().contains("404"),
        "{parked}"
    );
    let listed = invoicing.get("/invoicing/parked").await.json();
    assert_eq!(listed[0]["entryId"], entry_2.as_str());
    let parked_id = parked["id"].as_i64().unwrap();

    let still_broken = invoicing
        .post(&format!("/invoicing/parked/{parked_id}/retry"))
        .await
        .json();
    assert_eq!(still_broken["applied"], false);
    order.faults.not_found.lock().unwrap().clear();
    let fixed = invoicing
        .post(&format!("/invoicing/parked/{parked_id}/retry"))
        .await
        .json();

    assert_eq!(fixed["applied"], true, "{fixed}");
    assert_eq!(
        invoicing.get("/invoicing/invoices/2").await.json()["orderId"],
        2
    );
    assert_eq!(invoicing.report().await["parked"]["count"], 0);
    invoicing
        .post("/invoicing/parked/999/retry")
        .await
        .assert_problem(404);
}

/// With the poller running, an order reaches both services without anyone asking.
#[tokio::test]
async fn the_background_poller_picks_up_new_orders() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    let poller = invoicing.start_polling();
    let id = order.place(4).await;

    let mut found = false;
    for _ in 0..100 {
        if invoicing.get(&Kind::Invoicing.copy_path(id)).await.status == 200 {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    assert!(
        found,
        "invoice appeared within 5 s with a 100 ms poll interval"
    );
    let _ = invoicing.stop().await;
    poller.await.expect("the poller stops on shutdown");
}

/// `consumer_handled` stays bounded: with `KEEP_HANDLED` 20 and 120 entries it holds 20 rows
/// (plus at most one pruning step, a tenth of that),
/// older revisions being remembered by a watermark; archive pages delivered again change
/// nothing (not the copies, not the handled count), and new entries still apply.
#[tokio::test]
async fn the_handled_table_is_pruned_and_redelivery_stays_harmless() {
    let order = Arc::new(order_app(5).await);
    let feed = order.url("/order/feed");
    let args = common::config::ConsumerArgs {
        keep_handled: 20,
        ..test_args(&feed)
    };
    let invoicing = spawn_consumer_on(Kind::Invoicing, fresh_db("invoicing").await, args).await;
    place_orders(&order, 120).await;
    invoicing.poll_ok().await;
    let copies = invoicing.copies().await;
    let report = invoicing.report().await;

    let rows = invoicing.handled().await.len();
    let replayed = invoicing.replay(&order.url("/order/feed/archive/1")).await
        + invoicing.replay(&order.url("/order/feed/archive/12")).await;
    place_orders(&order, 3).await;
    invoicing.poll_ok().await;

    assert_eq!(copies.len(), 120);
    assert!(
        (20..=22).contains(&rows),
        "the table is bounded: {rows} rows"
    );
    assert_eq!(replayed, 10, "both pages were seen again");
    let after = invoicing.report().await;
    assert_eq!(
        after["checkpoint"]["handledEntries"],
        report["checkpoint"]["handledEntries"].as_i64().unwrap() + 3,
        "redelivered entries were not handled again"
    );
    let now = invoicing.copies().await;
    assert_eq!(now.len(), 123);
    assert_eq!(&now[3..], &copies[..], "no old copy changed");
    assert!(invoicing.handled().await.len() <= 22);
}

/// The step that re-keys `consumer_handled` by `seq` (SQLite) and records the newest
/// `atom:updated` handled keeps every handled revision as it was, entry ids still unique, and
/// takes that time from the rows, the checkpoint and the pruning watermark alike.
#[tokio::test]
async fn upgrading_the_handled_table_keeps_every_revision() {
    let test_db = fresh_db("upgrade").await;
    let db = common::db::Db::connect(&test_db.url).await.unwrap();
    let all = common::consumer_migrations();
    let full = match db.backend() {
        common::db::Backend::Sqlite => all.sqlite,
        common::db::Backend::Postgres => all.postgres,
    };
    // The migrations before this step (sqlx's migrator fields are public for `migrate!`).
    let before = sqlx::migrate::Migrator {
        migrations: full
            .iter()
            .filter(|m| m.version < 204)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ignore_missing: true,
        locking: true,
        no_tx: false,
    };
    before.run(db.pool()).await.unwrap();
    let rows = [
        ("urn:uuid:b", 1i64, "applied", 10i64, 300i64),
        ("urn:uuid:a", 2, "parked", 11, 200),
        ("urn:uuid:c", 3, "stale", 12, 250),
    ];
    for (id, seq, outcome, handled_us, updated_us) in rows {
        sqlx::query(
            "INSERT INTO consumer_handled (entry_id, seq, outcome, handled_us, entry_updated_us) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(seq)
        .bind(outcome)
        .bind(handled_us)
        .bind(updated_us)
        .execute(db.pool())
        .await
        .unwrap();
    }
    sqlx::query("UPDATE consumer_checkpoint SET entry_updated_us = 250, pruned_through_us = 100")
        .execute(db.pool())
        .await
        .unwrap();

    db.migrate(common::consumer_migrations()).await.unwrap();

    let kept: Vec<(String, i64, String, i64, i64)> = sqlx::query_as(
        "SELECT entry_id, seq, outcome, handled_us, entry_updated_us FROM consumer_handled \
         ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let expected: Vec<(String, i64, String, i64, i64)> = rows
        .iter()
        .map(|&(id, seq, o, h, u)| (id.to_owned(), seq, o.to_owned(), h, u))
        .collect();
    assert_eq!(kept, expected);
    let (through,): (i64,) =
        sqlx::query_as("SELECT handled_through_us FROM consumer_checkpoint WHERE id = 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(through, 300, "the newest revision handled");
    let twice = sqlx::query(
        "INSERT INTO consumer_handled (entry_id, seq, outcome, handled_us, entry_updated_us) \
         VALUES ('urn:uuid:a', 4, 'applied', 13, 400)",
    )
    .execute(db.pool())
    .await;
    assert!(twice.is_err(), "entry ids stay unique");
    db.pool().close().await;
}
