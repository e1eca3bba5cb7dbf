use clap::Parser;
use tokio_util::sync::CancellationToken;

common::allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _logs = common::telemetry::init();
    let config = order::Config::parse();
    if let Some(order::Command::Seed { orders }) = config.command {
        return order::seed(config.settings, orders).await;
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    let shutdown = CancellationToken::new();
    common::http::cancel_on_signal(shutdown.clone());
    order::run(listener, config.settings, shutdown).await
}
