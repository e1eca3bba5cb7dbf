//! Real processes stopping: SIGTERM during a catch-up, and the order service going away.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crash::{consumer_env, converged, list_all, newest_entry, place_orders};
use crate::helpers::fresh_db;
use crate::process::Service;

async fn metric(client: &reqwest::Client, url: &str, name: &str, kind: &str) -> f64 {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    let prefix = format!("{name}{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn handled(client: &reqwest::Client, consumer: &Service) -> i64 {
    let report: Value = client
        .get(consumer.url(&format!("/{}/consumer", consumer.kind)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    report["checkpoint"]["handledEntries"].as_i64().unwrap()
}

/// SIGTERM in the middle of a catch-up: the process finishes (or rolls back) the transaction
/// in flight and exits 0; the checkpoint and the handled entries agree; a restart completes
/// the catch-up with everything exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_catch_up_exits_cleanly_with_nothing_half_applied() {
    let client = reqwest::Client::new();
    let order_db = fresh_db("order").await;
    let order = Service::start("order", &[("DATABASE_URL", &order_db.url)]);
    order.ready().await;
    let entries = place_orders(&client, &order.url(""), 1000).await as i64;
    let feed = order.url("/order/feed");
    let db = fresh_db("invoicing").await;
    let mut invoicing = Service::start("invoicing", &consumer_env(&db, &feed));
    invoicing.ready().await;
    let started = Instant::now();
    while handled(&client, &invoicing).await < 20 {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let status = invoicing.terminate(Duration::from_secs(10));

    assert!(status.success(), "exit status {status:?}");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let (rows, max_seq): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM consumer_handled")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (checkpoint,): (i64,) = sqlx::query_as("SELECT handled FROM consumer_checkpoint")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (invoices,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM invoices")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    println!("stopped after {rows} of {entries} entries");
    assert!(rows < entries, "stopped mid catch-up");
    assert_eq!(
        (rows, max_seq),
        (checkpoint, checkpoint),
        "checkpoint and records agree"
    );
    assert!(invoices <= rows && invoices > 0);

    let restarted = Service::start("invoicing", &consumer_env(&db, &feed));
    converged(
        &client,
        &restarted,
        &newest_entry(&client, &feed).await,
        Duration::from_secs(60),
    )
    .await;
    let all = list_all(&client, &restarted.url("/invoicing/invoices"), "orderId").await;
    assert_eq!(all.len(), 1000);
    assert_eq!(handled(&client, &restarted).await, entries);
}

/// The order service goes away for a while: invoicing keeps serving its copies and stays
/// ready, reports the failing polls, backs off instead of hammering, and converges once order
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_service_outage_is_survived_and_reported() {
    let client = reqwest::Client::new();
    let order_db = fresh_db("order").await;
    let mut order = Service::start("order", &[("DATABASE_URL", &order_db.url)]);
    order.ready().await;
    place_orders(&client, &order.url(""), 20).await;
    let feed = order.url("/order/feed");
    let db = fresh_db("invoicing").await;
    let mut env = consumer_env(&db, &feed);
    env.push(("RETRY_MAX", "2s"));
    let invoicing = Service::start("invoicing", &env);
    converged(
        &client,
        &invoicing,
        &newest_entry(&client, &feed).await,
        Duration::from_secs(30),
    )
    .await;
    let metrics = invoicing.url("/invoicing/metrics");

    order.kill();
    let polls_before = metric(&client, &metrics, "consumer_polls_total", "error").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let polls_during =
        metric(&client, &metrics, "consumer_polls_total", "error").await - polls_before;
    let report: Value = client
        .get(invoicing.url("/invoicing/consumer"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ready = client
        .get(invoicing.url("/invoicing/ready"))
        .send()
        .await
        .unwrap()
        .status();
    let copies = list_all(&client, &invoicing.url("/invoicing/invoices"), "orderId").await;

    assert!(
        (1.0..=12.0).contains(&polls_during),
        "{polls_during} failed polls in 6 s: backoff, not a hot loop"
    );
    assert_eq!(report["lastPoll"]["status"], "error", "{report}");
    assert!(report["consecutiveFailures"].as_u64().unwrap() >= 1);
    assert_eq!(ready, 200, "invoicing stays ready without its upstream");
    assert_eq!(copies.len(), 20, "and keeps serving its copies");

    order.restart();
    order.ready().await;
    place_orders(&client, &order.url(""), 30).await;
    converged(
        &client,
        &invoicing,
        &newest_entry(&client, &feed).await,
        Duration::from_secs(30),
    )
    .await;
    let report: Value = client
        .get(invoicing.url("/invoicing/consumer"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["consecutiveFailures"], 0);
    assert_eq!(
        list_all(&client, &invoicing.url("/invoicing/invoices"), "orderId")
            .await
            .len(),
        50
    );
}
