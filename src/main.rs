use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::telemetry::init();
    let config = feedline::Config::parse();
    if let Some(feedline::Command::Rebuild) = config.command {
        return feedline::rebuild(config).await;
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    let shutdown = CancellationToken::new();
    common::http::cancel_on_signal(shutdown.clone());
    feedline::run(listener, config, shutdown).await
}
