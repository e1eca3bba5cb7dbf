//! All-in-one Feedline: the order, invoicing and shipping services in one process, on one port.
//!
//! Each service keeps its own SQLite file under the data folder. The consumers still read the
//! feed over real HTTP from this same process, exactly as they would across machines.

mod landing;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use common::config::ConsumerArgs;
use common::Clock;
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
    /// Entries per feed archive page. Fixed for the life of a feed.
    #[arg(long, env = "FEED_PAGE_SIZE", default_value_t = 20)]
    pub feed_page_size: i64,
}

/// `http://127.0.0.1:PORT/order/feed` for a listener on any address (0.0.0.0 is not
/// connectable).
fn local_feed_url(addr: SocketAddr) -> anyhow::Result<url::Url> {
    let host = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => "127.0.0.1".to_owned(),
            SocketAddr::V6(_) => "[::1]".to_owned(),
        }
    } else {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    Ok(url::Url::parse(&format!(
        "http://{host}:{}/order/feed",
        addr.port()
    ))?)
}

fn sqlite_url(dir: &std::path::Path, service: &str) -> String {
    format!("sqlite://{}/{service}.db", dir.display())
}

/// Runs all three services on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create data folder {}: {e}",
            config.data_dir.display()
        )
    })?;
    let order = order::OrderService::build(
        &order::Settings {
            database_url: sqlite_url(&config.data_dir, "order"),
            feed_page_size: config.feed_page_size,
        },
        Clock::System,
        shutdown.clone(),
    )
    .await?;
    // The consumers read the feed over real HTTP from this very process.
    let consumer = ConsumerArgs::for_feed(local_feed_url(listener.local_addr()?)?);
    let invoicing = invoicing::InvoicingService::build(
        &invoicing::Settings {
            database_url: sqlite_url(&config.data_dir, "invoicing"),
            consumer: consumer.clone(),
        },
        shutdown.clone(),
    )
    .await?;
    let shipping = shipping::ShippingService::build(
        &shipping::Settings {
            database_url: sqlite_url(&config.data_dir, "shipping"),
            consumer,
        },
        shutdown.clone(),
    )
    .await?;
    let router = Router::new()
        .merge(landing::router())
        .merge(order.router())
        .merge(invoicing.router())
        .merge(shipping.router());
    let router = common::http::with_middleware(router);
    tracing::info!(addr = %listener.local_addr()?, data = %config.data_dir.display(), "feedline listening");
    let pollers = [invoicing.start(), shipping.start()];
    common::http::serve(listener, router, shutdown).await?;
    for poller in pollers {
        poller.await?;
    }
    for db in [&order.state.db, &invoicing.state.db, &shipping.state.db] {
        db.close().await;
    }
    Ok(())
}
