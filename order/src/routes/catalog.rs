//! `/order/customers` and `/order/items`: the seeded catalog.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::http::PageQuery;

use crate::{catalog, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/customers", get(customers))
        .route("/order/items", get(items))
}

async fn customers(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let list = catalog::customers(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(list).into_response())
}

async fn items(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let list = catalog::items(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(list).into_response())
}
