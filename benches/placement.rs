//! Order placement without HTTP: `order::service::place` called directly from 16 tasks for a
//! few seconds, on the database named by `BENCH_DATABASE_URL` (default: a temporary SQLite
//! file). `bench/orders` runs it beside the HTTP rate measured with wrk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Clock;
use order::model::{LineRequest, PlaceOrderRequest};
use tokio_util::sync::CancellationToken;

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/order.db", dir.path().display()));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let settings = order::Settings {
            database_url: url.clone(),
            feed_page_size: None,
            feed_store_archives: true,
        };
        let service =
            order::OrderService::build(&settings, Clock::System, CancellationToken::new())
                .await
                .expect("order service");
        let placed = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (state, placed) = (service.state.clone(), placed.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let request = PlaceOrderRequest {
                            customer_id: 1,
                            lines: vec![
                                LineRequest {
                                    item_id: 2,
                                    count: 3,
                                },
                                LineRequest {
                                    item_id: 4,
                                    count: 1,
                                },
                            ],
                            shipping_address: None,
                            billing_address: None,
                        };
                        order::service::place(&state, request, None)
                            .await
                            .expect("placed");
                        placed.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let n = placed.load(Ordering::Relaxed);
        let backend = if url.starts_with("postgres") {
            "Postgres"
        } else {
            "SQLite"
        };
        println!(
            "direct placement ({backend}, 16 tasks, {seconds} s): {:.0} orders/s",
            n as f64 / seconds as f64
        );
    });
}
