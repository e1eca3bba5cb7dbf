//! Spawning services in-process on port 0, each with a fresh database.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use atom_syndication::Feed;
use common::Clock;
use order::OrderService;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A database URL for a brand-new database: a Postgres database on the server named by
/// `TEST_DATABASE_URL` when it is set, else an SQLite file in a fresh temporary folder.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Another handle on the same database (the original keeps any temporary folder alive).
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            _dir: None,
        }
    }
}

pub fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub async fn fresh_db(label: &str) -> TestDb {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let name = format!("t_{label}_{}_{n}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&base)
                .await
                .expect("TEST_DATABASE_URL reachable");
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
                .expect("create test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            TestDb {
                url: url.to_string(),
                _dir: None,
            }
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/{label}.db", dir.path().display());
            TestDb {
                url,
                _dir: Some(dir),
            }
        }
    }
}

/// An order service running on its own port and database.
pub struct OrderApp {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    pub client: reqwest::Client,
    pub service: OrderService,
    pub db: TestDb,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

pub struct OrderOptions {
    pub page_size: i64,
    pub clock: Clock,
    /// Serve on this address (to stand in for another service at the same URL); port 0 when
    /// unset.
    pub addr: Option<SocketAddr>,
    /// `FEED_STORE_ARCHIVES` (true, as in production, unless set).
    pub store_archives: bool,
}

impl Default for OrderOptions {
    fn default() -> Self {
        OrderOptions {
            page_size: 5,
            clock: Clock::System,
            addr: None,
            store_archives: true,
        }
    }
}

pub async fn spawn_order(options: OrderOptions) -> OrderApp {
    let db = fresh_db("order").await;
    spawn_order_on(db, options).await
}

pub async fn spawn_order_on(db: TestDb, options: OrderOptions) -> OrderApp {
    let settings = order::Settings {
        database_url: db.url.clone(),
        feed_page_size: Some(options.page_size),
        feed_store_archives: options.store_archives,
    };
    let shutdown = CancellationToken::new();
    let service = OrderService::build(&settings, options.clock.clone(), shutdown.clone())
        .await
        .expect("order service builds");
    let bind = options
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let faults = Arc::new(Faults::default());
    let router = service.router().layer(axum::middleware::from_fn_with_state(
        faults.clone(),
        inject_faults,
    ));
    let router = service.app(router);
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        common::http::serve(listener, router, token)
            .await
            .expect("server runs");
    });
    OrderApp {
        addr,
        faults,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        service,
        db,
        shutdown,
        server,
    }
}

/// Faults the order service injects into its details responses (`GET /order/orders/{id}`),
/// and a count of those requests.
#[derive(Default)]
pub struct Faults {
    pub detail_requests: AtomicUsize,
    /// The next this many detail requests answer 500.
    pub fail_next: AtomicUsize,
    /// The next this many detail requests stall for two seconds before answering.
    pub stall_next: AtomicUsize,
    /// Orders whose details answer 404.
    pub not_found: Mutex<HashSet<i64>>,
    /// Paths that answer 404.
    pub not_found_paths: Mutex<HashSet<String>>,
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn inject_faults(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    if faults
        .not_found_paths
        .lock()
        .unwrap()
        .contains(req.uri().path())
    {
        return (axum::http::StatusCode::NOT_FOUND, "injected").into_response();
    }
    let id = req
        .uri()
        .path()
        .strip_prefix("/order/orders/")
        .and_then(|rest| rest.parse::<i64>().ok());
    let Some(id) = id.filter(|_| req.method() == axum::http::Method::GET) else {
        return next.run(req).await;
    };
    faults.detail_requests.fetch_add(1, Ordering::SeqCst);
    if take_one(&faults.fail_next) {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "injected").into_response();
    }
    if take_one(&faults.stall_next) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if faults.not_found.lock().unwrap().contains(&id) {
        return (axum::http::StatusCode::NOT_FOUND, "injected").into_response();
    }
    next.run(req).await
}

/// A response reduced to what the tests look at.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn feed(&self) -> Feed {
        Feed::read_from(&self.body[..]).expect("valid Atom")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts this is a problem+json error with `status`, and returns its detail.
    pub fn assert_problem(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text()
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        p["detail"].as_str().unwrap_or_default().to_owned()
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

impl OrderApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[]).await
    }

    /// The `ETag` of `GET path`.
    pub async fn etag(&self, path: &str) -> String {
        self.get(path)
            .await
            .header("etag")
            .expect("an ETag")
            .to_owned()
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send().await.expect("request")).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.post_raw(path, "application/json", body.to_string().into_bytes(), &[])
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send().await.expect("request")).await
    }

    pub fn detail_requests(&self) -> usize {
        self.faults.detail_requests.load(Ordering::SeqCst)
    }

    /// Places a valid order for `customer` and returns its id.
    pub async fn place(&self, customer: i64) -> i64 {
        let r = self
            .post_json(
                "/order/orders",
                &serde_json::json!({"customerId": customer, "lines": [{"itemId": 1 + customer % 6, "count": 2}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["id"].as_i64().expect("id")
    }

    pub async fn cancel(&self, id: i64) -> Reply {
        self.post_raw(
            &format!("/order/orders/{id}/cancel"),
            "application/json",
            vec![],
            &[],
        )
        .await
    }

    /// The `atom:id` of the event that made order `order_id` version `version`.
    pub async fn entry_id(&self, order_id: i64, version: i64) -> String {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT entry_id FROM feed_entries WHERE link = $1 ORDER BY position")
                .bind(format!("/order/orders/{order_id}"))
                .fetch_all(self.service.state.db.pool())
                .await
                .expect("entry ids");
        rows.get(version as usize - 1)
            .unwrap_or_else(|| panic!("no entry for order {order_id} version {version}"))
            .0
            .clone()
    }

    /// Counts of orders and feed entries, straight from the database.
    pub async fn counts(&self) -> (i64, i64) {
        let pool = self.service.state.db.pool();
        let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders")
            .fetch_one(pool)
            .await
            .expect("count orders");
        let (entries,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM feed_entries")
            .fetch_one(pool)
            .await
            .expect("count entries");
        (orders, entries)
    }

    pub async fn stop(self) -> TestDb {
        self.shutdown.cancel();
        self.server.await.expect("server stops");
        self.service.close().await;
        self.db
    }
}
