common::allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main::<shipping::Shipping>().await
}
