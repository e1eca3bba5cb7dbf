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

async fn health() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
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
