//! HTTP routes of the order service; each module owns its paths.

mod catalog;
mod feed;
mod health;
mod orders;

use axum::Router;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(orders::router())
        .merge(catalog::router())
        .merge(feed::router())
        .merge(health::router())
        .with_state(state)
}
