//! The invoicing service: keeps an invoice for every order by consuming the order feed.
//!
//! # Layout
//! - [`model`]: invoicing's own reading of the order JSON, and the invoice it serves.
//! - [`projection`]: how an order event becomes an invoice (version-guarded SQL).
//! - [`store`]: reading invoices. `routes`: thin handlers under `/invoicing/…`;
//!   `ui`: the HTML pages under `/invoicing/ui/`.
//!
//! Polling, retries, checkpoints and parked entries come from [`common::consumer`].

mod error;
pub mod model;
pub mod projection;
mod routes;
pub mod store;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use common::config::ConsumerArgs;
use common::consumer::{Consumer, ConsumerMetrics};
use common::db::{Db, Migrations};
use common::metrics::HttpMetrics;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use projection::Invoices;

/// Command line and environment of the standalone `invoicing` binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "invoicing",
    about = "Feedline invoicing: invoices kept from the order feed"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8082")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Throw away every local copy and the checkpoint, re-read the whole feed from its first
    /// page, and exit. Stop the running service first.
    Rebuild,
}

/// What the service needs, however it is started.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Database: `sqlite://path/file.db` or `postgres://user@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/invoicing.db"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
}

/// A ready-to-serve invoicing service; polling starts with [`InvoicingService::start`].
pub struct InvoicingService {
    pub state: AppState,
    pub consumer: Consumer<Invoices>,
    http_metrics: HttpMetrics,
    registry: Arc<Registry>,
}

impl InvoicingService {
    /// Connects and migrates. `shutdown` stops the consumer between transactions.
    pub async fn build(
        settings: &Settings,
        shutdown: CancellationToken,
    ) -> Result<InvoicingService, Error> {
        let db = Db::connect(&settings.database_url).await?;
        db.migrate(common::consumer_migrations()).await?;
        db.migrate(migrations()).await?;
        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        let consumer = Consumer::new(
            db.clone(),
            Invoices,
            settings.consumer.settings("invoicing"),
            ConsumerMetrics::register(&mut registry),
            shutdown,
        )?;
        Ok(InvoicingService {
            state: AppState { db },
            consumer,
            http_metrics,
            registry: Arc::new(registry),
        })
    }

    pub fn router(&self) -> Router {
        let router = routes::router(self.state.clone())
            .merge(common::consumer::router(
                self.consumer.clone(),
                "/invoicing",
            ))
            .merge(ui::router(self.state.clone(), self.consumer.clone()));
        common::metrics::instrument(
            router,
            self.http_metrics.clone(),
            self.registry.clone(),
            "/invoicing/metrics",
        )
    }

    /// Starts polling in the background until shutdown.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.consumer.clone().run())
    }
}

/// Rebuilds the local copies from the whole feed (the `rebuild` command).
pub async fn rebuild(settings: Settings) -> Result<(), anyhow::Error> {
    let service = InvoicingService::build(&settings, CancellationToken::new()).await?;
    let report = service.consumer.rebuild().await;
    service.consumer.release().await;
    let report = report?;
    tracing::info!(entries = report.handled, "invoicing rebuilt");
    service.state.db.close().await;
    Ok(())
}

/// Serves invoicing alone on `listener` and polls until `shutdown`.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), anyhow::Error> {
    let service = InvoicingService::build(&settings, shutdown.clone()).await?;
    let poller = service.start();
    let router = common::http::with_middleware(service.router());
    tracing::info!(addr = %listener.local_addr()?, feed = %settings.consumer.feed_url, "invoicing listening");
    common::http::serve(listener, router, shutdown).await?;
    poller.await?;
    service.state.db.close().await;
    Ok(())
}
