//! The order service: a catalog, orders, and the Atom feed of order events.
//!
//! # Layout
//! - [`model`]: validated input and the order as the API shows it.
//! - [`service`]: placing and cancelling, each change committed with its feed entry.
//! - [`placer`]: the group commit that writes concurrent placements in one transaction.
//! - [`store`], [`catalog`]: SQL.
//! - `routes`: thin HTTP handlers under `/order/…`; `ui`: the HTML pages under `/order/ui/`.

pub mod catalog;
mod error;
pub mod model;
mod openapi;
pub mod placer;
mod routes;
pub mod seed;
pub mod service;
pub mod store;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use common::db::{Db, Migrations};
use common::feed::{FeedMetrics, FeedSettings, PageSize, Publisher};
use common::metrics::HttpMetrics;
use common::Clock;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;

/// Command line and environment of the standalone `order` binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "order",
    about = "Feedline order service: orders and their Atom feed"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8081")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Append many orders and their feed entries straight to the database (for benchmarks),
    /// then exit. Stop the service first.
    Seed {
        /// How many orders.
        #[arg(long)]
        orders: u64,
    },
}

/// The `seed` command.
pub async fn seed(settings: Settings, orders: u64) -> Result<(), anyhow::Error> {
    let service = OrderService::build(&settings, Clock::System, CancellationToken::new()).await?;
    let started = std::time::Instant::now();
    let n = seed::seed(&service.state, orders).await?;
    tracing::info!(orders = n, elapsed = ?started.elapsed(), "seeded");
    service.state.db.close().await;
    Ok(())
}

/// What the service needs, however it is started (standalone or all-in-one).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Database: `sqlite://path/file.db` or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/order.db")]
    pub database_url: String,
    /// Entries per archive page, fixed for the life of a feed: 20 for a new feed when unset;
    /// an existing feed keeps its size and refuses a different one.
    #[arg(long, env = "FEED_PAGE_SIZE", value_parser = parse_page_size)]
    pub feed_page_size: Option<i64>,
    /// Render each full archive page once, shortly after it fills, and keep it in the
    /// database (`true`, the default: about 200 bytes per entry); `false` renders archive
    /// pages from their entries when first asked for after each start.
    #[arg(long, env = "FEED_STORE_ARCHIVES", default_value_t = true, action = clap::ArgAction::Set)]
    pub feed_store_archives: bool,
}

fn parse_page_size(s: &str) -> Result<i64, String> {
    let n: i64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    PageSize::parse(n).map(PageSize::get)
}

/// The order service's migrations.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Everything a request handler needs. Handlers receive a clone per request, so it is one
/// `Arc`: cloning the parts one by one (pool, publisher, token, channel) showed in profiles.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Parts {
    pub db: Db,
    pub feed: Publisher,
    /// The source of order and entry times; tests replace it.
    pub clock: Clock,
    /// Ends long polls when the service stops.
    pub shutdown: CancellationToken,
    /// Where placements go to be written in a group commit.
    pub placer: placer::Placer,
    /// The seeded catalog, loaded once: it never changes while the service runs.
    pub catalog: Arc<catalog::Catalog>,
}

/// A ready-to-serve order service.
pub struct OrderService {
    pub state: AppState,
    http_metrics: HttpMetrics,
    registry: Arc<Registry>,
}

impl OrderService {
    /// Connects, migrates, seeds the catalog and loads the feed head.
    pub async fn build(
        settings: &Settings,
        clock: Clock,
        shutdown: CancellationToken,
    ) -> Result<OrderService, Error> {
        let db = Db::connect(&settings.database_url).await?;
        db.migrate(common::publisher_migrations()).await?;
        db.migrate(migrations()).await?;
        catalog::seed(&db).await?;
        let page_size = settings
            .feed_page_size
            .map(PageSize::parse)
            .transpose()
            .map_err(common::Error::Config)?;
        let feed_settings = FeedSettings {
            title: "Feedline orders".to_owned(),
            author: "Feedline order service".to_owned(),
            // The id every feed had before ids were stored with it.
            legacy_id: Some("urn:feedline:order:feed".to_owned()),
            path: "/order/feed".to_owned(),
            page_size,
            reader_expiry: common::feed::READER_EXPIRY,
            store_archives: settings.feed_store_archives,
        };
        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        let feed_metrics = FeedMetrics::register(&mut registry);
        let feed = Publisher::open(db.clone(), feed_settings, clock.clone(), feed_metrics).await?;
        feed.follow_other_writers(shutdown.clone()).await?;
        feed.track_readers(shutdown.clone()).await?;
        feed.keep_archives(shutdown.clone());
        let catalog = Arc::new(catalog::Catalog::load(&db).await?);
        let placer = placer::Placer::start(placer::Writer {
            db: db.clone(),
            feed: feed.clone(),
            clock: clock.clone(),
            catalog: catalog.clone(),
        })?;
        Ok(OrderService {
            state: AppState(Arc::new(Parts {
                db,
                feed,
                clock,
                shutdown,
                placer,
                catalog,
            })),
            http_metrics,
            registry: Arc::new(registry),
        })
    }

    /// After shutdown was signalled and the requests ended: lets the placements still queued,
    /// the readers' last write and the archiver's batch finish, then closes the database.
    pub async fn close(&self) {
        self.state.placer.drained().await;
        self.state.feed.readers_written().await;
        self.state.feed.archives_written().await;
        self.state.db.close().await;
    }

    /// The gauges of the connections it is served on (`/order/metrics`).
    pub fn connections(&self) -> common::http::Connections {
        self.http_metrics.connections()
    }

    /// `router` behind the edge, served as the order service is: its connections counted and
    /// long polls of its feed held outside hyper while they wait.
    pub fn app(&self, router: Router) -> common::http::App {
        common::http::with_middleware(router)
            .metered(self.http_metrics.clone())
            .holding(Arc::new(self.state.feed.clone()))
    }

    /// The routes under `/order/`, without middleware (the caller adds it once).
    pub fn router(&self) -> Router {
        common::metrics::instrument(
            routes::router(self.state.clone()),
            self.http_metrics.clone(),
            self.registry.clone(),
            "/order/metrics",
        )
    }
}

/// Serves the order service alone on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), anyhow::Error> {
    let service = OrderService::build(&settings, Clock::System, shutdown.clone()).await?;
    let router = service.app(service.router());
    tracing::info!(addr = %listener.local_addr()?, "order service listening");
    common::http::serve(listener, router, shutdown).await?;
    service.close().await;
    Ok(())
}
