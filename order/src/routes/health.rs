//! `/order/health` (alive) and `/order/ready` (database reachable, migrations applied).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/health", get(health))
        .route("/order/ready", get(ready))
}

/// Alive.
#[utoipa::path(get, path = "/order/health", tag = "operations", responses((status = 200)))]
pub(crate) async fn health() -> Response {
    common::http::alive()
}

/// Database reachable and migrations applied.
#[utoipa::path(get, path = "/order/ready", tag = "operations",
    responses((status = 200), (status = 503, body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let sets = [crate::migrations(), common::publisher_migrations()];
    common::http::readiness(&state.db, &sets).await
}
