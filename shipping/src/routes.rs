//! HTTP routes under `/shipping/`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::http::PageQuery;

use crate::{store, AppState, Error};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/shipping/shipments", get(list))
        .route("/shipping/shipments/{order_id}", get(show))
        .route("/shipping/health", get(health))
        .route("/shipping/ready", get(ready))
        .with_state(state)
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let shipments = store::list(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(shipments).into_response())
}

async fn show(State(state): State<AppState>, Path(order_id): Path<i64>) -> Result<Response, Error> {
    let shipment = store::get(&state.db, order_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no shipment for order {order_id}")))?;
    Ok(Json(shipment).into_response())
}

async fn health() -> Response {
    common::http::alive()
}

async fn ready(State(state): State<AppState>) -> Response {
    let sets = [crate::migrations(), common::consumer_migrations()];
    common::http::readiness(&state.db, &sets).await
}
