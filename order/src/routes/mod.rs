//! HTTP routes of the order service; each module owns its paths.

pub(crate) mod catalog;
pub(crate) mod feed;
pub(crate) mod health;
pub(crate) mod orders;

use axum::Router;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(orders::router())
        .merge(catalog::router())
        .merge(feed::router())
        .merge(health::router())
        .merge(crate::ui::router())
        .route(
            "/order/openapi.json",
            axum::routing::get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .with_state(state)
}
