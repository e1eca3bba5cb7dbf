//! Rebuild: throwing away the local copies and the checkpoint and re-reading the whole feed
//! gives back exactly the same copies.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::process::Command;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::consumer_helpers::{spawn_consumer, Kind};
use crate::helpers::{reply, spawn_order, OrderOptions};

fn hash_of(copies: &[serde_json::Value]) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(copies).unwrap().hash(&mut h);
    h.finish()
}

/// Both consumers, rebuilt from a feed of several archive pages with cancellations, end with
/// the same copies (same hash), the same checkpoint and the same number of handled entries.
#[tokio::test]
async fn rebuilding_reproduces_every_copy() {
    let order = spawn_order(OrderOptions::default()).await;
    let feed = order.url("/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    let shipping = spawn_consumer(Kind::Shipping, &feed).await;
    for i in 0..23 {
        order.place(1 + i % 5).await;
    }
    for id in [4, 11, 19] {
        order.cancel(id).await;
    }
    for consumer in [&invoicing, &shipping] {
        consumer.poll_ok().await;
        let copies = consumer.copies().await;
        let before = consumer.report().await["checkpoint"].clone();
        assert_eq!(copies.len(), 23);

        let report = consumer.rebuild().await;

        assert_eq!(report["handled"], 26, "the whole feed was read again");
        assert_eq!(hash_of(&consumer.copies().await), hash_of(&copies));
        assert_eq!(consumer.report().await["checkpoint"], before);
    }
}

/// `feedline rebuild` on a stopped all-in-one data folder rebuilds invoicing and shipping
/// from the order feed and exits 0; the copies are the same afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_command_reproduces_the_all_in_one_copies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (base, shutdown, server) = start_all_in_one(&data).await;
    let client = reqwest::Client::new();
    for customer in 1..=12 {
        let placed = client
            .post(format!("{base}/order/orders"))
            .json(&serde_json::json!({"customerId": 1 + customer % 5, "lines": [{"itemId": 2, "count": customer}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(placed.status(), 201);
    }
    client
        .post(format!("{base}/order/orders/5/cancel"))
        .send()
        .await
        .unwrap();
    let before = copies(&client, &base).await;
    shutdown.cancel();
    server.await.unwrap().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_feedline"))
        .arg("--data-dir")
        .arg(&data)
        .arg("rebuild")
        .output()
        .expect("run feedline rebuild");

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (base, shutdown, server) = start_all_in_one(&data).await;
    let after = copies(&client, &base).await;
    assert_eq!(before.0.len(), 12);
    assert_eq!(hash_of(&after.0), hash_of(&before.0));
    assert_eq!(hash_of(&after.1), hash_of(&before.1));
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

async fn start_all_in_one(
    data: &std::path::Path,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = feedline::Config {
        bind: listener.local_addr().unwrap(),
        data_dir: data.to_owned(),
        feed_page_size: Some(5),
        feed_store_archives: true,
        command: None,
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(feedline::run(listener, config, shutdown.clone()));
    (base, shutdown, server)
}

/// Polls both consumers, then returns all invoices and all shipments.
async fn copies(
    client: &reqwest::Client,
    base: &str,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    for svc in ["invoicing", "shipping"] {
        let poll = reply(
            client
                .post(format!("{base}/{svc}/poll"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_ne!(poll.json()["status"], "error", "{}", poll.text());
    }
    let invoices = reply(
        client
            .get(format!("{base}/invoicing/invoices?limit=500"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let shipments = reply(
        client
            .get(format!("{base}/shipping/shipments?limit=500"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    (
        invoices.json().as_array().unwrap().clone(),
        shipments.json().as_array().unwrap().clone(),
    )
}
