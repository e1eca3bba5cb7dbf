//! All-in-one Feedline: the order, invoicing and shipping services in one process, on one port.
//!
//! Each service keeps its own SQLite file under the data folder. The consumers still read the
//! feed over real HTTP from this same process, exactly as they would across machines.

mod landing;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
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
    )
    .await?;
    let router = Router::new().merge(landing::router()).merge(order.router());
    let router = common::http::with_middleware(router);
    tracing::info!(addr = %listener.local_addr()?, "feedline listening");
    common::http::serve(listener, router, shutdown).await?;
    order.state.db.close().await;
    Ok(())
}
