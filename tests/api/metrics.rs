//! `/{svc}/metrics`: Prometheus text format, read back with a real parser.

use std::sync::Arc;

use prometheus_parse::{Sample, Scrape, Value};

use crate::consumer_helpers::{spawn_consumer, Kind};
use crate::helpers::{spawn_order, OrderOptions};

pub(crate) fn scrape(text: &str) -> Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).expect("valid Prometheus text format")
}

pub(crate) fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one sample of {metric} {labels:?}: {:?}",
        scrape.samples
    );
    match &matching[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric}: unexpected {other:?}"),
    }
}

/// Requests by route and status with latency histograms, feed 200/304 counts, entries handled,
/// lag and parked entries all appear with the right values.
#[tokio::test]
async fn metrics_count_requests_feed_responses_and_consumer_progress() {
    let order = Arc::new(spawn_order(OrderOptions::default()).await);
    let invoicing = spawn_consumer(Kind::Invoicing, &order.url("/order/feed")).await;
    order.place(1).await;
    order.place(2).await;
    let etag = order
        .get("/order/feed")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    order
        .get_with("/order/feed", &[("if-none-match", &etag)])
        .await;
    order.get("/order/orders/12345").await;
    invoicing.poll_ok().await;
    invoicing.poll_ok().await;

    let order_metrics = order.get("/order/metrics").await;
    let invoicing_metrics = invoicing.get("/invoicing/metrics").await;

    assert_eq!(order_metrics.status, 200);
    let o = scrape(&order_metrics.text());
    let post = [
        ("route", "/order/orders"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(value(&o, "http_requests_total", &post), 2.0);
    let missing = [
        ("route", "/order/orders/:id"),
        ("method", "GET"),
        ("status", "404"),
    ];
    assert_eq!(value(&o, "http_requests_total", &missing), 1.0);
    let feed_304 = [("page", "head"), ("status", "304")];
    assert!(value(&o, "feed_responses_total", &feed_304) >= 1.0);
    let feed_200 = [("page", "head"), ("status", "200")];
    assert!(value(&o, "feed_responses_total", &feed_200) >= 2.0);
    assert!(
        o.samples
            .iter()
            .any(|s| s.metric == "http_request_duration_seconds"
                && matches!(s.value, Value::Histogram(_))),
        "latency histograms are exported"
    );

    let i = scrape(&invoicing_metrics.text());
    assert_eq!(
        value(&i, "consumer_entries_total", &[("kind", "applied")]),
        2.0
    );
    assert_eq!(
        value(&i, "consumer_polls_total", &[("kind", "not-modified")]),
        1.0
    );
    assert_eq!(value(&i, "consumer_lag_entries", &[]), 0.0);
    assert_eq!(value(&i, "consumer_lag_seconds", &[]), 0.0);
    assert_eq!(value(&i, "consumer_parked_entries", &[]), 0.0);
}

/// A connection that has gone a while without a request is parked outside the HTTP server,
/// shows as such in the gauges, and still serves its next request.
#[tokio::test]
async fn idle_connections_are_counted_open_and_parked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let order = spawn_order(OrderOptions::default()).await;
    let mut idle = tokio::net::TcpStream::connect(order.addr).await.unwrap();
    let request = b"GET /order/health HTTP/1.1\r\nhost: test\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    idle.write_all(request).await.unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = scrape(&order.get("/order/metrics").await.text());
        // The scrape's own connection is open and busy; the idle one is parked.
        if value(&o, "http_connections_parked", &[]) >= 1.0 {
            assert!(value(&o, "http_connections", &[]) >= 2.0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    idle.write_all(request).await.unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}
