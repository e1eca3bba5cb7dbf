//! HTTP routes under `/invoicing/`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::http::PageQuery;

use crate::{store, AppState, Error};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/invoicing/invoices", get(list))
        .route("/invoicing/invoices/{order_id}", get(show))
        .route("/invoicing/health", get(health))
        .route("/invoicing/ready", get(ready))
        .with_state(state)
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let invoices = store::list(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(invoices).into_response())
}

async fn show(State(state): State<AppState>, Path(order_id): Path<i64>) -> Result<Response, Error> {
    let invoice = store::get(&state.db, order_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no invoice for order {order_id}")))?;
    Ok(Json(invoice).into_response())
}

async fn health() -> Response {
    common::http::alive()
}

async fn ready(State(state): State<AppState>) -> Response {
    let sets = [crate::migrations(), common::consumer_migrations()];
    common::http::readiness(&state.db, &sets).await
}
