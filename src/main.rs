use clap::Parser;
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
        Some(Command::Invoicing(c)) => match c.command {
            Some(invoicing::Command::Rebuild) => invoicing::rebuild(c.settings).await,
            None => invoicing::run(bind(c.bind).await?, c.settings, shutdown).await,
        },
        Some(Command::Shipping(c)) => match c.command {
            Some(shipping::Command::Rebuild) => shipping::rebuild(c.settings).await,
            None => shipping::run(bind(c.bind).await?, c.settings, shutdown).await,
        },
        None => feedline::run(bind(config.bind).await?, config, shutdown).await,
    }
}

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
