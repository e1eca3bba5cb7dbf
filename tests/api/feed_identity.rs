//! Our own feed's identity: a feed that starts over behind the same URL is noticed, and a feed
//! (and a consumer) from before identities were stored keep working.

use crate::consumer_helpers::{spawn_consumer, Kind};
use crate::helpers::{spawn_order, spawn_order_on, OrderOptions};

/// The case: 30 orders read by invoicing; the order database is lost and a fresh
/// order service comes up at the same URL and takes 10 new orders. Invoicing stops with the
/// reason and keeps the old copies untouched (it does not mix order 5 of the new feed into the
/// invoice of the old order 5); a rebuild then follows the new feed.
#[tokio::test]
async fn a_fresh_order_service_behind_the_same_url_stops_the_consumer() {
    let old = spawn_order(OrderOptions::default()).await;
    for i in 0..30 {
        old.place(1 + i % 3).await;
    }
    let feed_url = old.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed_url).await;
    invoicing.poll_ok().await;
    let before = invoicing.copies().await;
    let addr = old.addr;
    old.stop().await;
    let fresh = spawn_order(OrderOptions {
        addr: Some(addr),
        ..OrderOptions::default()
    })
    .await;
    for _ in 0..10 {
        fresh.place(4).await;
    }

    let report = invoicing.poll().await;

    assert_eq!(report["status"], "stopped", "{report}");
    assert!(
        report["detail"]
            .as_str()
            .unwrap()
            .contains("is another feed"),
        "{report}"
    );
    assert_eq!(invoicing.copies().await, before);
    let invoice = invoicing.get("/invoicing/invoices/5").await.json();
    let order = fresh.get("/order/orders/5").await.json();
    assert_ne!(
        invoice["customer"]["customerId"], order["customer"]["customerId"],
        "the copy still shows the old order 5, and says so by being stopped"
    );

    let rebuilt = invoicing.rebuild().await;

    assert_eq!(rebuilt["status"], "ok", "{rebuilt}");
    assert_eq!(invoicing.copies().await.len(), 10);
    let invoice = invoicing.get("/invoicing/invoices/5").await.json();
    assert_eq!(invoice["customer"]["customerId"], 4);
}

/// A feed created before identities were stored (entries, but no `feed_id` in `feed_meta`)
/// keeps the id it was published under, so its readers go on; a consumer from before (a
/// checkpoint without a feed id) adopts the feed it finds its checkpoint in.
#[tokio::test]
async fn feeds_and_consumers_from_before_stored_identities_keep_working() {
    let order = spawn_order(OrderOptions::default()).await;
    for i in 0..7 {
        order.place(1 + i % 3).await;
    }
    let invoicing = spawn_consumer(Kind::Invoicing, &order.url("/order/feed")).await;
    invoicing.poll_ok().await;
    let pool = order.service.state.db.pool().clone();
    sqlx::query("DELETE FROM feed_meta WHERE name IN ('feed_id', 'created_us')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE consumer_checkpoint SET feed_id = NULL")
        .execute(invoicing.db_pool())
        .await
        .unwrap();
    let addr = order.addr;
    let db = order.stop().await;
    let order = spawn_order_on(
        db,
        OrderOptions {
            addr: Some(addr),
            ..OrderOptions::default()
        },
    )
    .await;
    order.place(2).await;

    let report = invoicing.poll().await;

    let head = order.get("/order/feed").await.feed();
    assert_eq!(head.id(), "urn:feedline:order:feed");
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(invoicing.copies().await.len(), 8);
    let (adopted,): (Option<String>,) =
        sqlx::query_as("SELECT feed_id FROM consumer_checkpoint WHERE id = 1")
            .fetch_one(invoicing.db_pool())
            .await
            .unwrap();
    assert_eq!(adopted.as_deref(), Some("urn:feedline:order:feed"));
}

/// A new feed gets a `urn:uuid:` id of its own, kept across restarts.
#[tokio::test]
async fn a_new_feed_has_a_universally_unique_id_for_life() {
    let order = spawn_order(OrderOptions::default()).await;
    let first = order.get("/order/feed").await.feed().id().to_owned();
    let other = spawn_order(OrderOptions::default()).await;
    let db = order.stop().await;
    let order = spawn_order_on(db, OrderOptions::default()).await;

    let again = order.get("/order/feed").await.feed().id().to_owned();

    assert!(first.starts_with("urn:uuid:"), "{first}");
    assert_eq!(again, first);
    assert_ne!(other.get("/order/feed").await.feed().id(), first);
}
