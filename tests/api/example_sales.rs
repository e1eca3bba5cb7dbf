//! The example consumer (`cargo run --example sales`), its own code compiled in here, against
//! a real order service: sales per item match the orders, cancellations are taken back out,
//! and redelivery or a rebuild changes nothing.

#[path = "../../examples/sales/sales.rs"]
mod sales;

use std::collections::BTreeMap;

use common::service::{Service, Settings};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::consumer_helpers::test_args;
use crate::helpers::{fresh_db, reply, spawn_order, OrderOptions};

/// Pieces and revenue per item id, from the order service's own JSON.
async fn expected(order: &crate::helpers::OrderApp) -> BTreeMap<i64, (i64, i64)> {
    let mut sums = BTreeMap::new();
    for o in order
        .get("/order/orders?limit=500")
        .await
        .json()
        .as_array()
        .unwrap()
    {
        if o["status"] != "placed" {
            continue;
        }
        for l in o["lines"].as_array().unwrap() {
            let (count, price) = (
                l["count"].as_i64().unwrap(),
                l["item"]["priceCents"].as_i64().unwrap(),
            );
            let e = sums
                .entry(l["item"]["itemId"].as_i64().unwrap())
                .or_insert((0, 0));
            e.0 += count;
            e.1 += count * price;
        }
    }
    sums
}

fn actual(items: &Value) -> BTreeMap<i64, (i64, i64)> {
    items
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["pieces"].as_i64() != Some(0))
        .map(|i| {
            let id = i["itemId"].as_i64().unwrap();
            (
                id,
                (
                    i["pieces"].as_i64().unwrap(),
                    i["revenueCents"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Twelve orders over five items, three cancelled (one before the consumer first reads, two
/// after): `GET /sales/items` sums exactly the orders still placed, after every poll, a
/// repeated poll and a rebuild.
#[tokio::test]
async fn the_sales_example_counts_placed_orders_per_item() {
    let order = spawn_order(OrderOptions::default()).await;
    for i in 0..12 {
        order.place(1 + i % 5).await;
    }
    order.cancel(2).await;
    let db = fresh_db("sales").await;
    let settings = Settings {
        database_url: Some(db.url.clone()),
        consumer: test_args(&order.url("/order/feed")),
    };
    let service = Service::<sales::Sales>::build(&settings, CancellationToken::new())
        .await
        .expect("the example builds");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = common::http::with_middleware(service.router());
    tokio::spawn(common::http::serve(
        listener,
        router,
        CancellationToken::new(),
    ));
    let client = reqwest::Client::new();
    let poll = || async {
        let r = reply(
            client
                .post(format!("{base}/sales/poll"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.json()["status"], "ok", "{}", r.text());
    };
    let items = || async {
        reply(
            client
                .get(format!("{base}/sales/items"))
                .send()
                .await
                .unwrap(),
        )
        .await
        .json()
    };

    poll().await;
    let first = actual(&items().await);
    order.cancel(5).await;
    order.cancel(9).await;
    poll().await;
    let after_cancels = actual(&items().await);
    service
        .consumer()
        .replay(&url::Url::parse(&order.url("/order/feed")).unwrap())
        .await
        .unwrap();
    let replayed = actual(&items().await);
    service.consumer().rebuild().await.unwrap();
    let rebuilt = actual(&items().await);

    assert_eq!(first.len(), 5, "five items sold: {first:?}");
    assert_eq!(after_cancels, expected(&order).await);
    assert_ne!(after_cancels, first, "the cancellations were taken out");
    assert_eq!(replayed, after_cancels, "redelivery changes nothing");
    assert_eq!(rebuilt, after_cancels, "a rebuild gives the same sums");
    let report = reply(
        client
            .get(format!("{base}/sales/consumer"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(report["parked"]["count"], 0, "{report}");
}
