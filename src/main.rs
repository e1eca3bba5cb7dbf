use std::process::ExitCode;

use clap::Parser;
use common::service::run_config;
use feedline::Command;
use tokio_util::sync::CancellationToken;

common::allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config = feedline::Config::parse();
    let shutdown = CancellationToken::new();
    match config.command.clone() {
        // Tools whose standard output is their result: logs go to stderr, warnings only.
        Some(Command::Check(args)) => {
            common::telemetry::init_cli();
            return Ok(feedline::check_command(args).await);
        }
        Some(Command::Tail(args)) => {
            common::telemetry::init_cli();
            common::http::cancel_on_signal(shutdown.clone());
            return Ok(feedline::tail_command(args, shutdown).await);
        }
        _ => {}
    }
    let _logs = common::telemetry::init();
    common::http::cancel_on_signal(shutdown.clone());
    match config.command.clone() {
        Some(Command::Rebuild) => feedline::rebuild(config).await?,
        Some(Command::Order(c)) => match c.command {
            Some(order::Command::Seed { orders }) => order::seed(c.settings, orders).await?,
            None => order::run(bind(c.bind).await?, c.settings, shutdown).await?,
        },
        Some(Command::Invoicing(c)) => run_config::<invoicing::Invoicing>(c).await?,
        Some(Command::Shipping(c)) => run_config::<shipping::Shipping>(c).await?,
        Some(Command::Check(_) | Command::Tail(_)) | None => {
            feedline::run(bind(config.bind).await?, config, shutdown).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
