//! The all-in-one mode: three services on one port, consumers reading the feed over HTTP.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::helpers::reply;

/// One order placed on the all-in-one server shows up in invoicing and shipping on the same
/// port, the landing page links the three services, and shutdown ends the process cleanly.
#[tokio::test]
async fn all_in_one_serves_the_whole_flow_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = feedline::Config {
        bind: listener.local_addr().unwrap(),
        data_dir: dir.path().join("data"),
        feed_page_size: Some(20),
        feed_store_archives: true,
        command: None,
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(feedline::run(listener, config, shutdown.clone()));
    let client = reqwest::Client::new();

    let landing = reply(client.get(format!("{base}/")).send().await.unwrap()).await;
    let placed = client
        .post(format!("{base}/order/orders"))
        .json(&serde_json::json!({"customerId": 3, "lines": [{"itemId": 3, "count": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    for svc in ["invoicing", "shipping"] {
        let poll = reply(
            client
                .post(format!("{base}/{svc}/poll"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(poll.status, 200, "{}", poll.text());
    }
    let invoice = reply(
        client
            .get(format!("{base}/invoicing/invoices/1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let shipment = reply(
        client
            .get(format!("{base}/shipping/shipments/1"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert!(landing.text().contains("href=\"/order/feed\""));
    assert_eq!(invoice.json()["customer"]["name"], "Hopper");
    assert_eq!(shipment.json()["shippingAddress"]["city"], "Arlington");
    for file in ["order.db", "invoicing.db", "shipping.db"] {
        assert!(dir.path().join("data").join(file).exists(), "{file}");
    }
    shutdown.cancel();
    server.await.unwrap().expect("clean exit");
}
