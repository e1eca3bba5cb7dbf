//! `/order/openapi.json` is generated from the code and matches the real API.

use serde_json::Value;

use crate::helpers::{spawn_order, OrderOptions};

/// Every documented operation, called for real, answers with a documented status; the
/// documented schemas have exactly the fields the API sends and accepts; every endpoint of the
/// contract is documented.
#[tokio::test]
async fn the_openapi_document_matches_the_real_api() {
    let app = spawn_order(OrderOptions::default()).await;
    let id = app.place(1).await;
    for _ in 0..5 {
        app.place(2).await;
    }
    let doc = app.get("/order/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let paths = doc["paths"].as_object().unwrap();
    for endpoint in [
        "/order/orders",
        "/order/orders/{id}",
        "/order/orders/{id}/cancel",
        "/order/customers",
        "/order/items",
        "/order/feed",
        "/order/feed/archive/{page}",
        "/order/health",
        "/order/ready",
    ] {
        assert!(paths.contains_key(endpoint), "{endpoint} is documented");
    }
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let concrete = path.replace("{id}", &id.to_string()).replace("{page}", "1");
            let reply = match method.as_str() {
                "get" => app.get(&concrete).await,
                "post" if path == "/order/orders" => {
                    app.post_json(
                        &concrete,
                        &serde_json::json!({"customerId": 3, "lines": [{"itemId": 1, "count": 1}]}),
                    )
                    .await
                }
                "post" => {
                    app.post_raw(&concrete, "application/json", vec![], &[])
                        .await
                }
                other => panic!("undocumented method {other}"),
            };
            let documented = operation["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(reply.status.as_str()),
                "{method} {path} answered {} which is not documented",
                reply.status
            );
        }
    }

    let schemas = &doc["components"]["schemas"];
    let order = app.get(&format!("/order/orders/{id}")).await.json();
    let mut real: Vec<&String> = order.as_object().unwrap().keys().collect();
    let mut documented: Vec<&String> = schemas["Order"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    real.sort();
    documented.sort();
    assert_eq!(documented, real, "Order schema = real order JSON");
    let required: Vec<&Value> = schemas["Order"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        required.len(),
        real.len(),
        "every order field is always present"
    );
    let mut request: Vec<&String> = schemas["PlaceOrderRequest"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    request.sort();
    assert_eq!(
        request,
        ["billingAddress", "customerId", "lines", "shippingAddress"]
    );
}
