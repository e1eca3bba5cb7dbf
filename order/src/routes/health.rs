//! `/order/health` (alive) and `/order/ready` (database reachable, migrations applied).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::http::Problem;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/health", get(health))
        .route("/order/ready", get(ready))
}

/// Alive.
#[utoipa::path(get, path = "/order/health", tag = "operations", responses((status = 200)))]
pub(crate) async fn health() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Database reachable and migrations applied.
#[utoipa::path(get, path = "/order/ready", tag = "operations",
    responses((status = 200), (status = 503, body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if state.db.ready(&crate::migrations()).await
        && state.db.ready(&common::publisher_migrations()).await
    {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not Ready")
            .detail("database unreachable or migrations not applied")
            .into_response()
    }
}
