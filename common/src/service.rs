//! A whole consumer service from its [`Domain`]: configuration, build, run, rebuild, health
//! and readiness, metrics, the consumer's report, panel and buttons, all under `/{name}/`.
//! A service says *what* it keeps (its projection, tables and pages); how consuming works
//! lives here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use clap::{CommandFactory, FromArgMatches};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerArgs;
use crate::consumer::copies::Copies;
use crate::consumer::{Consumer, ConsumerMetrics, Projection};
use crate::db::{Db, Migrations};
use crate::metrics::HttpMetrics;
use crate::ui::copies::Pages;
use crate::Error;

/// What makes a consumer service this service.
pub trait Domain: Send + Sync + 'static {
    /// How it keeps its local copies.
    type Projection: Projection + Default;
    /// Names it: its URL prefix `/{NAME}`, its log lines, its default database file.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Where it listens when `BIND` is not set.
    const DEFAULT_BIND: &'static str;
    /// The feed it reads when `FEED_URL` is not set.
    const DEFAULT_FEED: &'static str;

    /// Its own tables.
    fn migrations() -> Migrations;
    /// Its own routes (its copies as JSON, its pages), relative to `/{NAME}`.
    fn routes() -> Router<ServiceState<Self::Projection>>;
}

/// Who a service is: what [`Domain`]'s constants say, as one value.
#[derive(Debug, Clone, Copy)]
pub struct About {
    pub name: &'static str,
    pub about: &'static str,
    pub bind: &'static str,
    pub feed: &'static str,
}

/// The common case: a service that keeps versioned copies ([`crate::consumer::copies::Versioned`]) and shows them
/// ([`Pages`]). Its [`Domain`] is [`Copying<Self>`]: the copies as JSON at `/{name}/{copies}`,
/// their pages at `/{name}/ui/`.
pub trait CopyService: Pages {
    const ABOUT: About;
    /// Its tables (usually `common::migrations!()`).
    fn migrations() -> Migrations;
}

/// The [`Domain`] of a [`CopyService`].
pub struct Copying<V>(std::marker::PhantomData<fn() -> V>);

impl<V: CopyService> Domain for Copying<V> {
    type Projection = Copies<V>;
    const NAME: &'static str = V::ABOUT.name;
    const ABOUT: &'static str = V::ABOUT.about;
    const DEFAULT_BIND: &'static str = V::ABOUT.bind;
    const DEFAULT_FEED: &'static str = V::ABOUT.feed;

    fn migrations() -> Migrations {
        V::migrations()
    }

    fn routes() -> Router<ServiceState<Copies<V>>> {
        let pages = crate::ui::copies::routes::<V>(&format!("/{}", V::ABOUT.name));
        crate::consumer::copies::routes::<V>().merge(pages)
    }
}

/// The one state every route of a consumer service gets.
pub struct ServiceState<P: Projection> {
    pub db: Db,
    pub consumer: Consumer<P>,
}

impl<P: Projection> Clone for ServiceState<P> {
    fn clone(&self) -> Self {
        ServiceState {
            db: self.db.clone(),
            consumer: self.consumer.clone(),
        }
    }
}

impl<P: Projection> FromRef<ServiceState<P>> for Consumer<P> {
    fn from_ref(state: &ServiceState<P>) -> Consumer<P> {
        state.consumer.clone()
    }
}

/// What a consumer service needs, however it is started.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Database: `sqlite://path/file.db` or `postgres://user@host/db` (default: a file named
    /// after the service under `data/`).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub consumer: ConsumerArgs,
}

/// Command line and environment of a standalone consumer binary.
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// Address to listen on (each service has its own default port).
    #[arg(long, env = "BIND")]
    pub bind: Option<SocketAddr>,
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

/// A ready-to-serve consumer service; polling starts with [`Service::start`].
pub struct Service<D: Domain> {
    pub state: ServiceState<D::Projection>,
    http_metrics: HttpMetrics,
    registry: Arc<Registry>,
}

impl<D: Domain> Service<D> {
    /// Connects and migrates. `shutdown` stops the consumer between transactions.
    pub async fn build(settings: &Settings, shutdown: CancellationToken) -> Result<Self, Error> {
        let default_db = format!("sqlite://data/{}.db", D::NAME);
        let db = Db::connect(settings.database_url.as_deref().unwrap_or(&default_db)).await?;
        db.migrate(crate::consumer_migrations()).await?;
        db.migrate(D::migrations()).await?;
        let mut registry = Registry::default();
        let http_metrics = HttpMetrics::register(&mut registry);
        let feed = match &settings.consumer.feed_url {
            Some(url) => url.clone(),
            None => url::Url::parse(D::DEFAULT_FEED)
                .map_err(|e| Error::Config(format!("default feed URL: {e}")))?,
        };
        let consumer = Consumer::new(
            db.clone(),
            D::Projection::default(),
            settings.consumer.settings(D::NAME, feed),
            ConsumerMetrics::register(&mut registry),
            shutdown,
        )?;
        Ok(Service {
            state: ServiceState { db, consumer },
            http_metrics,
            registry: Arc::new(registry),
        })
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub fn consumer(&self) -> &Consumer<D::Projection> {
        &self.state.consumer
    }

    /// Every route under `/{NAME}/`, without the shared middleware (the caller adds it once).
    pub fn router(&self) -> Router {
        let prefix = format!("/{}", D::NAME);
        let routes = Router::new()
            .route("/health", get(|| async { crate::http::alive() }))
            .route("/ready", get(ready::<D>))
            .merge(crate::consumer::router::<D::Projection>())
            .merge(crate::ui::consumer::router::<D::Projection>(&prefix))
            .merge(D::routes())
            .with_state(self.state.clone());
        crate::metrics::instrument(
            Router::new().nest(&prefix, routes),
            self.http_metrics.clone(),
            self.registry.clone(),
            &format!("{prefix}/metrics"),
        )
    }

    /// Starts polling in the background until shutdown.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.state.consumer.clone().run())
    }
}

async fn ready<D: Domain>(State(state): State<ServiceState<D::Projection>>) -> Response {
    let sets = [D::migrations(), crate::consumer_migrations()];
    crate::http::readiness(&state.db, &sets).await
}

/// Rebuilds the local copies from the whole feed (the `rebuild` command).
pub async fn rebuild<D: Domain>(settings: Settings) -> Result<(), anyhow::Error> {
    let service = Service::<D>::build(&settings, CancellationToken::new()).await?;
    let report = service.consumer().rebuild().await;
    service.consumer().release().await;
    let report = report?;
    tracing::info!(entries = report.handled, service = D::NAME, "rebuilt");
    service.db().close().await;
    Ok(())
}

/// Serves the service alone on `listener` and polls until `shutdown`.
pub async fn run<D: Domain>(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), anyhow::Error> {
    let service = Service::<D>::build(&settings, shutdown.clone()).await?;
    let poller = service.start();
    let router =
        crate::http::with_middleware(service.router()).metered(service.http_metrics.clone());
    tracing::info!(addr = %listener.local_addr()?, feed = %service.consumer().settings().feed_url,
        "{} listening", D::NAME);
    crate::http::serve(listener, router, shutdown).await?;
    poller.await?;
    service.db().close().await;
    Ok(())
}

/// The standalone binary: parses [`Config`] (named after the service), then serves, or runs
/// `rebuild`.
pub async fn main<D: Domain>() -> Result<(), anyhow::Error> {
    let _logs = crate::telemetry::init();
    // The service's own defaults, so that `--help` shows them.
    let matches = Config::command()
        .name(D::NAME)
        .about(D::ABOUT)
        .mut_arg("bind", |a| a.default_value(D::DEFAULT_BIND))
        .mut_arg("database_url", |a| {
            a.default_value(format!("sqlite://data/{}.db", D::NAME))
        })
        .mut_arg("feed_url", |a| a.default_value(D::DEFAULT_FEED))
        .get_matches();
    let config = Config::from_arg_matches(&matches)?;
    run_config::<D>(config).await
}

/// Runs what `config` says (the all-in-one binary's `invoicing …` subcommand comes here too).
pub async fn run_config<D: Domain>(config: Config) -> Result<(), anyhow::Error> {
    if let Some(Command::Rebuild) = config.command {
        return rebuild::<D>(config.settings).await;
    }
    let bind = match config.bind {
        Some(addr) => addr,
        None => D::DEFAULT_BIND.parse()?,
    };
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let shutdown = CancellationToken::new();
    crate::http::cancel_on_signal(shutdown.clone());
    run::<D>(listener, config.settings, shutdown).await
}
