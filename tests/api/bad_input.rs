//! Property-based tests of the order API with arbitrary input: never a 5xx, a problem+json
//! body on every 4xx, and never a partial write.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::helpers::{spawn_order, OrderApp, OrderOptions, Reply};

fn check_reply(r: &Reply) -> Result<(), TestCaseError> {
    prop_assert!(r.status.as_u16() < 500, "5xx: {} {}", r.status, r.text());
    if r.status.is_client_error() {
        prop_assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let problem: Value =
            serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(problem["status"].as_u64(), Some(r.status.as_u16() as u64));
        prop_assert!(problem["title"].is_string());
    }
    Ok(())
}

/// Orders, lines and feed entries stay consistent: one entry per order plus one per
/// cancellation, and no order without lines.
async fn check_consistent(app: &OrderApp) -> Result<(), TestCaseError> {
    let pool = app.service.state.db.pool();
    let (orders, entries) = app.counts().await;
    let (cancelled,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'")
            .fetch_one(pool)
            .await
            .unwrap();
    let (lineless,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    prop_assert_eq!(entries, orders + cancelled, "one feed entry per change");
    prop_assert_eq!(lineless, 0, "no order without its lines");
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 äöü<>&\"']{1,20}",
        Just("<script>alert(1)</script>".to_owned()),
        "\\PC{0,300}",
    ]
}

fn address() -> impl Strategy<Value = Value> {
    prop_oneof![
        (text(), text(), text())
            .prop_map(|(street, zip, city)| json!({"street": street, "zip": zip, "city": city})),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(null)),
        Just(json!({"street": "x"})),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i64..10).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!("1")),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
    ]
}

/// Bodies near the valid shape: the interesting mistakes are in the details.
fn order_body() -> impl Strategy<Value = Value> {
    let line =
        (number(), number()).prop_map(|(item, count)| json!({"itemId": item, "count": count}));
    (
        number(),
        prop::collection::vec(line, 0..4),
        prop::option::of(address()),
        prop::option::of(address()),
        prop::option::of(text()),
    )
        .prop_map(|(customer, lines, ship, bill, extra)| {
            let mut body = json!({"customerId": customer, "lines": lines});
            if let Some(a) = ship {
                body["shippingAddress"] = a;
            }
            if let Some(a) = bill {
                body["billingAddress"] = a;
            }
            if let Some(field) = extra {
                body[field] = json!(1);
            }
            body
        })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Arbitrary JSON-shaped orders, raw bytes and idempotency keys against `POST /order/orders`.
#[test]
fn placing_orders_with_arbitrary_input_never_fails_badly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_order(OrderOptions::default()));
    let key = prop::option::of("[ -~]{0,40}");

    runner(300)
        .run(&(order_body(), key), |(body, key)| {
            rt.block_on(async {
                let headers: Vec<(&str, &str)> = key
                    .iter()
                    .map(|k| ("idempotency-key", k.as_str()))
                    .collect();
                let r = app
                    .post_raw(
                        "/order/orders",
                        "application/json",
                        body.to_string().into_bytes(),
                        &headers,
                    )
                    .await;
                check_reply(&r)?;
                if r.status == 201 {
                    prop_assert!(r.header("location").is_some());
                }
                check_consistent(&app).await
            })
        })
        .unwrap();
    runner(200)
        .run(&prop::collection::vec(any::<u8>(), 0..600), |bytes| {
            rt.block_on(async {
                let r = app
                    .post_raw("/order/orders", "application/json", bytes, &[])
                    .await;
                check_reply(&r)?;
                check_consistent(&app).await
            })
        })
        .unwrap();
}

/// Arbitrary path segments and query strings on every other endpoint.
#[test]
fn other_endpoints_with_arbitrary_input_never_fail_badly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_order(OrderOptions::default()));
    rt.block_on(async {
        for c in 1..=3 {
            app.place(c).await;
        }
    });
    let segment = prop_oneof!["[a-z0-9%-]{0,12}", any::<i64>().prop_map(|n| n.to_string())];
    let query = "[a-z=&0-9%-]{0,30}";

    runner(300)
        .run(&(0..7usize, segment, query), |(endpoint, seg, q)| {
            rt.block_on(async {
                let r = match endpoint {
                    0 => app.get(&format!("/order/orders/{seg}")).await,
                    1 => app.get(&format!("/order/orders?{q}")).await,
                    2 => app.get(&format!("/order/feed/archive/{seg}")).await,
                    3 => {
                        app.post_raw(
                            &format!("/order/orders/{seg}/cancel"),
                            "application/json",
                            vec![],
                            &[],
                        )
                        .await
                    }
                    4 => app.get(&format!("/order/customers?{q}")).await,
                    5 => app.get(&format!("/order/items?{q}")).await,
                    _ => app.get(&format!("/order/feed?{q}")).await,
                };
                check_reply(&r)?;
                check_consistent(&app).await
            })
        })
        .unwrap();
}
