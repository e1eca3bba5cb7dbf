//! Several instances of one consumer: on Postgres exactly one applies entries at a time and
//! another takes over when it dies; on SQLite a second instance refuses to start.

use std::time::{Duration, Instant};

use crate::consumer_helpers::{spawn_consumer_on, test_args, ConsumerApp, Kind};
use crate::helpers::{fresh_db, on_postgres, spawn_order, OrderApp, OrderOptions};

async fn wait_for_invoices(app: &ConsumerApp, n: usize, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if app.copies().await.len() == n {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{n} invoices not there within {within:?}: {}",
        app.report().await
    );
}

async fn two_instances(order: &OrderApp, ttl: Duration) -> (ConsumerApp, ConsumerApp) {
    let db = fresh_db("invoicing").await;
    let shared = db.shared();
    let mut args = test_args(&order.url("/order/feed"));
    args.lease_ttl = ttl;
    args.long_poll = Duration::ZERO;
    let a = spawn_consumer_on(Kind::Invoicing, db, args.clone()).await;
    let b = spawn_consumer_on(Kind::Invoicing, shared, args).await;
    (a, b)
}

/// Two instances poll one Postgres database: one is active, the other stands by. When the
/// active one dies without a word, the other takes over within the lease time, and every
/// order is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_active_instance_dies_another_takes_over() {
    if !on_postgres() {
        eprintln!("skipped: several instances need TEST_DATABASE_URL=postgres://…");
        return;
    }
    let order = spawn_order(OrderOptions::default()).await;
    let (a, b) = two_instances(&order, Duration::from_secs(1)).await;
    let poller_a = a.start_polling();
    let poller_b = b.start_polling();
    for i in 0..10 {
        order.place(1 + i % 5).await;
    }
    wait_for_invoices(&a, 10, Duration::from_secs(10)).await;
    let (ra, rb) = (a.report().await, b.report().await);
    assert_ne!(
        ra["lease"]["active"], rb["lease"]["active"],
        "exactly one is active"
    );
    let a_active = ra["lease"]["active"] == true;
    let (dead, survivor, old_fence) = if a_active {
        poller_a.abort();
        (&a, &b, ra["lease"]["fence"].as_i64().unwrap())
    } else {
        poller_b.abort();
        (&b, &a, rb["lease"]["fence"].as_i64().unwrap())
    };

    for i in 0..10 {
        order.place(1 + i % 5).await;
    }
    let took = wait_for_invoices(survivor, 20, Duration::from_secs(10)).await;

    assert!(
        took < Duration::from_secs(5),
        "took over after {took:?} with a 1 s lease"
    );
    let report = survivor.report().await;
    assert_eq!(report["lease"]["active"], true);
    assert!(report["lease"]["fence"].as_i64().unwrap() > old_fence);
    let handled = survivor.handled().await;
    assert_eq!(handled.len(), 20, "nothing lost, nothing doubled");
    assert_eq!(dead.handled().await, handled, "one database, one history");
}

/// An instance whose lease was taken over, but which has not noticed yet, cannot write: the
/// fence in its transaction is stale, so the poll fails and nothing is applied.
#[tokio::test]
async fn a_stale_instance_is_fenced_off() {
    if !on_postgres() {
        eprintln!("skipped: leases need TEST_DATABASE_URL=postgres://…");
        return;
    }
    let order = spawn_order(OrderOptions::default()).await;
    let (a, _standby) = two_instances(&order, Duration::from_secs(60)).await;
    order.place(1).await;
    assert_eq!(a.poll().await["status"], "ok");
    sqlx::query(
        "UPDATE consumer_lease SET holder = 'intruder', fence = fence + 1, \
         expires_us = 9000000000000000 WHERE id = 1",
    )
    .execute(a.db_pool())
    .await
    .unwrap();
    order.place(2).await;

    let report = a.poll().await;

    assert_eq!(report["status"], "error");
    assert!(
        report["detail"]
            .as_str()
            .unwrap()
            .contains("another instance took over"),
        "{report}"
    );
    assert_eq!(
        a.copies().await.len(),
        1,
        "the stale instance wrote nothing"
    );
    assert_eq!(a.poll().await["status"], "standby", "and it now knows");
}

/// On SQLite a second instance of a consumer on the same database file refuses to start and
/// says why.
#[tokio::test]
async fn a_second_instance_on_one_sqlite_file_refuses_to_start() {
    if on_postgres() {
        eprintln!("skipped: this is about SQLite");
        return;
    }
    let order = spawn_order(OrderOptions::default()).await;
    let db = fresh_db("invoicing").await;
    let url = db.url.clone();
    let first = spawn_consumer_on(Kind::Invoicing, db, test_args(&order.url("/order/feed"))).await;

    let second = invoicing::InvoicingService::build(
        &invoicing::Settings {
            database_url: Some(url.clone()),
            consumer: test_args(&order.url("/order/feed")),
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await;

    let message = second.err().expect("refused").to_string();
    assert!(
        message.contains("another invoicing instance is running"),
        "{message}"
    );
    assert!(message.contains("use Postgres"), "{message}");
    first.stop().await;
    let after_stop = invoicing::InvoicingService::build(
        &invoicing::Settings {
            database_url: Some(url),
            consumer: test_args(&order.url("/order/feed")),
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert!(after_stop.is_ok(), "the lock goes with the instance");
}
