//! Spawning invoicing and shipping in-process against a feed, on port 0 with fresh databases.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::ConsumerArgs;
use invoicing::InvoicingService;
use shipping::ShippingService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::helpers::{fresh_db, reply, Reply, TestDb};

/// Which consumer service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invoicing,
    Shipping,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Invoicing => "/invoicing",
            Kind::Shipping => "/shipping",
        }
    }

    /// The path of the local copy of `order_id`.
    pub fn copy_path(self, order_id: i64) -> String {
        match self {
            Kind::Invoicing => format!("/invoicing/invoices/{order_id}"),
            Kind::Shipping => format!("/shipping/shipments/{order_id}"),
        }
    }

    pub fn list_path(self) -> &'static str {
        match self {
            Kind::Invoicing => "/invoicing/invoices?limit=500",
            Kind::Shipping => "/shipping/shipments?limit=500",
        }
    }
}

pub enum Service {
    Invoicing(InvoicingService),
    Shipping(ShippingService),
}

/// A consumer service serving HTTP. It polls only when a test asks (`poll`), unless started
/// with `start_polling`.
pub struct ConsumerApp {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub service: Service,
    pub db: TestDb,
    client: reqwest::Client,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

/// Fast timeouts and retries, so fault tests finish quickly.
/// Fast test settings, details by link: most tests count and fault details requests. Inline
/// details (the default outside tests) have tests of their own (`representations`).
pub fn test_args(feed_url: &str) -> ConsumerArgs {
    ConsumerArgs {
        details: common::consumer::DetailsMode::Link,
        poll_interval: Duration::from_millis(100),
        http_timeout: Duration::from_millis(500),
        http_connect_timeout: Duration::from_millis(500),
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(200),
        ..ConsumerArgs::for_feed(url::Url::parse(feed_url).expect("feed URL"))
    }
}

pub async fn spawn_consumer(kind: Kind, feed_url: &str) -> ConsumerApp {
    let db = fresh_db(&format!("{kind:?}").to_lowercase()).await;
    spawn_consumer_on(kind, db, test_args(feed_url)).await
}

pub async fn spawn_consumer_on(kind: Kind, db: TestDb, args: ConsumerArgs) -> ConsumerApp {
    let shutdown = CancellationToken::new();
    let (service, router) = match kind {
        Kind::Invoicing => {
            let settings = invoicing::Settings {
                database_url: Some(db.url.clone()),
                consumer: args,
            };
            let s = InvoicingService::build(&settings, shutdown.clone())
                .await
                .expect("invoicing builds");
            let r = s.router();
            (Service::Invoicing(s), r)
        }
        Kind::Shipping => {
            let settings = shipping::Settings {
                database_url: Some(db.url.clone()),
                consumer: args,
            };
            let s = ShippingService::build(&settings, shutdown.clone())
                .await
                .expect("shipping builds");
            let r = s.router();
            (Service::Shipping(s), r)
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = common::http::with_middleware(router);
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        common::http::serve(listener, router, token)
            .await
            .expect("server runs");
    });
    ConsumerApp {
        kind,
        addr,
        service,
        db,
        client: reqwest::Client::new(),
        shutdown,
        server,
    }
}

impl ConsumerApp {
    pub async fn get(&self, path: &str) -> Reply {
        let response = self
            .client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .expect("request");
        reply(response).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        let response = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .send()
            .await
            .expect("request");
        reply(response).await
    }

    /// `POST /{svc}/poll`: one complete poll; returns its report.
    pub async fn poll(&self) -> serde_json::Value {
        let r = self.post(&format!("{}/poll", self.kind.prefix())).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Polls until a poll succeeds (at most 50 tries).
    pub async fn poll_ok(&self) -> serde_json::Value {
        for _ in 0..50 {
            let report = self.poll().await;
            if report["status"] != "error" {
                return report;
            }
        }
        panic!("no successful poll in 50 tries: {}", self.report().await);
    }

    pub async fn report(&self) -> serde_json::Value {
        self.get(&format!("{}/consumer", self.kind.prefix()))
            .await
            .json()
    }

    /// Every local copy, newest first.
    pub async fn copies(&self) -> Vec<serde_json::Value> {
        let r = self.get(self.kind.list_path()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().as_array().expect("array").clone()
    }

    pub fn db_pool(&self) -> &sqlx::AnyPool {
        match &self.service {
            Service::Invoicing(s) => s.state.db.pool(),
            Service::Shipping(s) => s.state.db.pool(),
        }
    }

    /// Entry ids in the order they were handled.
    pub async fn handled(&self) -> Vec<String> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT entry_id FROM consumer_handled ORDER BY seq")
                .fetch_all(self.db_pool())
                .await
                .expect("handled entries");
        rows.into_iter().map(|r| r.0).collect()
    }

    /// Handles the page at `url` again, ignoring the checkpoint.
    pub async fn replay(&self, url: &str) -> u64 {
        let url = url::Url::parse(url).expect("url");
        match &self.service {
            Service::Invoicing(s) => s.consumer().replay(&url).await,
            Service::Shipping(s) => s.consumer().replay(&url).await,
        }
        .expect("replay")
    }

    /// Drops every copy and the checkpoint and re-reads the whole feed.
    pub async fn rebuild(&self) -> serde_json::Value {
        let report = match &self.service {
            Service::Invoicing(s) => s.consumer().rebuild().await,
            Service::Shipping(s) => s.consumer().rebuild().await,
        }
        .expect("rebuild");
        serde_json::to_value(report).expect("report as JSON")
    }

    pub fn start_polling(&self) -> tokio::task::JoinHandle<()> {
        match &self.service {
            Service::Invoicing(s) => s.start(),
            Service::Shipping(s) => s.start(),
        }
    }

    pub async fn stop(self) -> TestDb {
        self.shutdown.cancel();
        self.server.await.expect("server stops");
        match &self.service {
            Service::Invoicing(s) => {
                s.consumer().release().await;
                s.state.db.close().await
            }
            Service::Shipping(s) => {
                s.consumer().release().await;
                s.state.db.close().await
            }
        }
        self.db
    }
}
