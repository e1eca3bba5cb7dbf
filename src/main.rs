use clap::Parser;
use common::service::run_config;
use feedline::Command;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init();
    let config = feedline::Config::parse();
    let shutdown = CancellationToken::new();
    common::http::cancel_on_signal(shutdown.clone());
    match config.command.clone() {
        Some(Command::Rebuild) => feedline::rebuild(config).await,
        Some(Command::Order(c)) => match c.command {
            Some(order::Command::Seed { orders }) => order::seed(c.settings, orders).await,
            None => order::run(bind(c.bind).await?, c.settings, shutdown).await,
        },
        Some(Command::Invoicing(c)) => run_config::<invoicing::Invoicing>(c).await,
        Some(Command::Shipping(c)) => run_config::<shipping::Shipping>(c).await,
        None => feedline::run(bind(config.bind).await?, config, shutdown).await,
    }
}

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
