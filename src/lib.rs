//! All-in-one Feedline: the order, invoicing and shipping services in one process, on one port.
//!
//! Each service keeps its own SQLite file under the data folder. The consumers still read the
//! feed over real HTTP from this same process, exactly as they would across machines.

pub mod check;
mod cli;
mod error;
mod landing;
pub mod tail;

pub use cli::{check_command, tail_command};
pub use error::Error;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use common::config::ConsumerArgs;
use common::Clock;
use invoicing::InvoicingService;
use order::OrderService;
use shipping::ShippingService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Command line and environment of the all-in-one binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "feedline",
    about = "Feedline all-in-one: order, invoicing and shipping in one process"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "FEEDLINE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Folder for the services' SQLite files (created when missing).
    #[arg(long, env = "FEEDLINE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Entries per feed archive page, fixed for the life of a feed: 20 for a new feed when
    /// unset; an existing feed keeps its size and refuses a different one.
    #[arg(long, env = "FEED_PAGE_SIZE")]
    pub feed_page_size: Option<i64>,
    /// Keep each full archive page rendered in the database (default true; see `order`).
    #[arg(long, env = "FEED_STORE_ARCHIVES", default_value_t = true, action = clap::ArgAction::Set)]
    pub feed_store_archives: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving all three services.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Throw away invoicing's and shipping's copies and checkpoints, re-read the whole order
    /// feed, and exit. Stop the running server first.
    Rebuild,
    /// Run the order service alone, exactly as the `order` binary does.
    Order(order::Config),
    /// Run the invoicing service alone, exactly as the `invoicing` binary does.
    Invoicing(invoicing::Config),
    /// Run the shipping service alone, exactly as the `shipping` binary does.
    Shipping(shipping::Config),
    /// Check that a feed (any publisher's) is safe to poll: document, archives, conditional
    /// GET, caching, long polling, and with --writes what a poller sees as entries arrive.
    /// Exits 0 when no check fails, 1 when one does, 2 when the feed cannot be checked.
    Check(check::CheckArgs),
    /// Follow a feed (any publisher's) live: prints each new entry as it commits.
    Tail(tail::TailArgs),
}

/// The three services, built on the data folder, with consumers reading `feed_url`.
struct Services {
    order: OrderService,
    invoicing: InvoicingService,
    shipping: ShippingService,
}

impl Services {
    async fn build(
        config: &Config,
        feed_url: url::Url,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Services> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create data folder {}: {e}", dir.display()))?;
        let order_settings = order::Settings {
            database_url: sqlite_url(dir, "order"),
            feed_page_size: config.feed_page_size,
            feed_store_archives: config.feed_store_archives,
        };
        let order = OrderService::build(&order_settings, Clock::System, shutdown.clone()).await?;
        let consumer = ConsumerArgs::for_feed(feed_url);
        let invoicing = InvoicingService::build(
            &invoicing::Settings {
                database_url: Some(sqlite_url(dir, "invoicing")),
                consumer: consumer.clone(),
            },
            shutdown.clone(),
        )
        .await?;
        let shipping = ShippingService::build(
            &shipping::Settings {
                database_url: Some(sqlite_url(dir, "shipping")),
                consumer,
            },
            shutdown.clone(),
        )
        .await?;
        Ok(Services {
            order,
            invoicing,
            shipping,
        })
    }

    fn router(&self) -> common::http::App {
        let router = Router::new()
            .merge(landing::router())
            .merge(self.order.router())
            .merge(self.invoicing.router())
            .merge(self.shipping.router());
        // One listener for the three: its connections are counted in `/order/metrics`.
        self.order.app(router)
    }

    async fn close(&self) {
        self.order.close().await;
        for db in [&self.invoicing.state.db, &self.shipping.state.db] {
            db.close().await;
        }
    }
}

/// `http://127.0.0.1:PORT/order/feed` for a listener on any address (0.0.0.0 is not
/// connectable).
fn local_feed_url(addr: SocketAddr) -> anyhow::Result<url::Url> {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv4() => "127.0.0.1".parse()?,
        ip if ip.is_unspecified() => "::1".parse()?,
        ip => ip,
    };
    let addr = SocketAddr::new(ip, addr.port());
    Ok(url::Url::parse(&format!("http://{addr}/order/feed"))?)
}

fn sqlite_url(dir: &Path, service: &str) -> String {
    format!("sqlite://{}/{service}.db", dir.display())
}

/// Runs all three services on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The consumers read the feed over real HTTP from this very process.
    let feed_url = local_feed_url(listener.local_addr()?)?;
    let services = Services::build(&config, feed_url, &shutdown).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        data = %config.data_dir.display(),
        "feedline listening"
    );
    let pollers = [services.invoicing.start(), services.shipping.start()];
    common::http::serve(listener, services.router(), shutdown).await?;
    for poller in pollers {
        poller.await?;
    }
    services.close().await;
    Ok(())
}

/// The `rebuild` command: serves the order feed on a private loopback port for as long as it
/// takes invoicing and shipping to re-read it from the first page.
pub async fn rebuild(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let services =
        Services::build(&config, local_feed_url(listener.local_addr()?)?, &shutdown).await?;
    let server = tokio::spawn(common::http::serve(
        listener,
        common::http::with_middleware(services.order.router()),
        shutdown.clone(),
    ));
    let result = async {
        let invoices = services.invoicing.consumer().rebuild().await?;
        let shipments = services.shipping.consumer().rebuild().await?;
        tracing::info!(
            invoicing = invoices.handled,
            shipping = shipments.handled,
            "rebuilt from the whole feed"
        );
        anyhow::Ok(())
    }
    .await;
    shutdown.cancel();
    server.await??;
    services.invoicing.consumer().release().await;
    services.shipping.consumer().release().await;
    services.close().await;
    result
}
