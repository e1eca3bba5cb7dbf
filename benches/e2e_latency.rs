//! End-to-end latency: from `POST /order/orders` answering 201 to the invoice being visible at
//! `GET /invoicing/invoices/{id}`, with long polling (the default) and with plain 1 s polling,
//! measured side by side in one run. Real services on loopback, SQLite files in a temporary
//! folder.
//!
//! Run: `cargo bench --bench e2e_latency` (or `bench/run e2e`). `BENCH_ORDERS` sets the sample
//! count (default 300).

use std::time::{Duration, Instant};

use common::config::ConsumerArgs;
use common::Clock;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `app` (a router behind the edge) on a loopback port; its base URL.
async fn serve(app: common::http::App) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(common::http::serve(listener, app, CancellationToken::new()));
    base
}

fn database_url(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}/{name}.db", dir.display())
}

async fn measure(label: &str, long_poll: Duration, samples: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("temp dir");
    let shutdown = CancellationToken::new();
    let order = order::OrderService::build(
        &order::Settings {
            database_url: database_url(dir.path(), &format!("order_{label}")),
            feed_page_size: None,
            feed_store_archives: true,
        },
        Clock::System,
        shutdown.clone(),
    )
    .await
    .expect("order");
    // Served as the order service is: long polls of its feed held outside hyper.
    let order_base = serve(order.app(order.router())).await;
    let mut args =
        ConsumerArgs::for_feed(url::Url::parse(&format!("{order_base}/order/feed")).expect("url"));
    args.long_poll = long_poll;
    let invoicing = invoicing::InvoicingService::build(
        &invoicing::Settings {
            database_url: Some(database_url(dir.path(), &format!("invoicing_{label}"))),
            consumer: args,
        },
        shutdown.clone(),
    )
    .await
    .expect("invoicing");
    let invoicing_base = serve(common::http::with_middleware(invoicing.router())).await;
    let _poller = invoicing.start();
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let placed = client
            .post(format!("{order_base}/order/orders"))
            .json(
                &serde_json::json!({"customerId": 1 + i % 5, "lines": [{"itemId": 1, "count": 1}]}),
            )
            .send()
            .await
            .expect("place");
        let started = Instant::now();
        let id = placed.json::<serde_json::Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id");
        let url = format!("{invoicing_base}/invoicing/invoices/{id}");
        loop {
            let r = client.get(&url).send().await.expect("get invoice");
            if r.status() == 200 {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                panic!("invoice {id} not visible after 10 s");
            }
        }
        latencies.push(started.elapsed());
    }
    shutdown.cancel();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(label: &str, mut l: Vec<Duration>) -> Duration {
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<22} n={:<4} p50={:>8.2} ms  p90={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        l.len(),
        ms(percentile(&l, 0.5)),
        ms(percentile(&l, 0.9)),
        ms(percentile(&l, 0.99)),
        ms(*l.last().expect("samples")),
    );
    percentile(&l, 0.5)
}

fn main() {
    let samples: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let long = measure("long", Duration::from_secs(20), samples).await;
        let plain = measure("plain", Duration::ZERO, samples.min(30)).await;
        println!("order placed -> invoice visible (loopback)");
        let a = report("long polling (20 s)", long);
        let b = report("plain polling (1 s)", plain);
        println!(
            "median ratio plain/long: {:.0}x",
            b.as_secs_f64() / a.as_secs_f64()
        );
    });
}
