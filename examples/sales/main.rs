//! A third consumer of the order feed, in one file: sales per item.
//!
//! `cargo run --example sales` (with the order service on 127.0.0.1:8081, or `FEED_URL=…`),
//! then `GET http://127.0.0.1:8084/sales/items`. The README's "Write your own consumer" walks
//! through it.

mod sales;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main::<sales::Sales>().await
}
