//! A fault-injecting proxy between the consumers and the order service: 5xx answers, answers
//! slower than the consumers' timeout, truncated bodies and reset connections. The consumers
//! converge with nothing lost and nothing parked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

use crate::consumer_helpers::{spawn_consumer, ConsumerApp, Kind};
use crate::helpers::{spawn_order, OrderOptions};

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    rng: Arc<Mutex<StdRng>>,
    faults: Arc<[AtomicUsize; 4]>,
}

const ERROR: usize = 0;
const SLOW: usize = 1;
const TRUNCATED: usize = 2;
const RESET: usize = 3;

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let roll: f64 = p.rng.lock().unwrap().gen();
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.to_string())
        .unwrap_or_default();
    if roll < 0.15 {
        p.faults[ERROR].fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "injected").into_response();
    }
    if (0.15..0.20).contains(&roll) {
        p.faults[SLOW].fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut upstream = p.client.get(format!("{}{path}", p.upstream));
    for (name, value) in req.headers() {
        if name != header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = if (0.20..0.25).contains(&roll) && body.len() > 1 {
        // Promise the whole body, send half, then break the connection.
        p.faults[TRUNCATED].fetch_add(1, Ordering::Relaxed);
        let half = body.slice(..body.len() / 2);
        let stream = futures::stream::iter([
            Ok::<Bytes, std::io::Error>(half),
            Err(std::io::Error::other("injected truncation")),
        ]);
        Body::from_stream(stream).into_response()
    } else if (0.25..0.30).contains(&roll) {
        p.faults[RESET].fetch_add(1, Ordering::Relaxed);
        let stream =
            futures::stream::iter([Err::<Bytes, _>(std::io::Error::other("injected reset"))]);
        Body::from_stream(stream).into_response()
    } else {
        body.clone().into_response()
    };
    *response.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap();
    for (name, value) in &headers {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            response
                .headers_mut()
                .insert(name.as_str().parse::<header::HeaderName>().unwrap(), v);
        }
    }
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response
}

async fn converged(consumer: &ConsumerApp, newest: &str) {
    let started = Instant::now();
    while consumer.report().await["checkpoint"]["entryId"] != newest {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{}",
            consumer.report().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_converge_through_a_faulty_network() {
    let seed: u64 = std::env::var("PROXY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("fault proxy seed {seed} (replay with PROXY_SEED={seed})");
    let order = Arc::new(spawn_order(OrderOptions::default()).await);
    let proxy = Proxy {
        upstream: order.url(""),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        faults: Arc::new(Default::default()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(forward).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let feed = format!("{proxy_url}/order/feed");
    let invoicing = spawn_consumer(Kind::Invoicing, &feed).await;
    let shipping = spawn_consumer(Kind::Shipping, &feed).await;
    let _pollers = [invoicing.start_polling(), shipping.start_polling()];

    for i in 0..120 {
        order.place(1 + i % 5).await;
        if i % 10 == 9 {
            order.cancel(i - 3).await;
        }
    }
    let newest = order.get("/order/feed").await.feed().entries()[0]
        .id()
        .to_owned();
    converged(&invoicing, &newest).await;
    converged(&shipping, &newest).await;

    let injected: Vec<usize> = proxy
        .faults
        .iter()
        .map(|f| f.load(Ordering::Relaxed))
        .collect();
    println!(
        "faults injected: {} errors, {} slow, {} truncated, {} reset",
        injected[0], injected[1], injected[2], injected[3]
    );
    assert!(
        injected.iter().all(|n| *n > 0),
        "every kind of fault happened: {injected:?}"
    );
    for consumer in [&invoicing, &shipping] {
        let report = consumer.report().await;
        assert_eq!(
            report["parked"]["count"], 0,
            "transient faults park nothing: {report}"
        );
        assert_eq!(report["checkpoint"]["handledEntries"], 132);
        let copies = consumer.copies().await;
        assert_eq!(copies.len(), 120);
        let cancelled = copies.iter().filter(|c| c["status"] == "cancelled").count();
        assert_eq!(cancelled, 12);
    }
}
