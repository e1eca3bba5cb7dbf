//! `/order/customers` and `/order/items`: the seeded catalog.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::http::PageQuery;

use crate::model::{Customer, Item};
use crate::openapi::Problem;
use crate::{catalog, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/customers", get(customers))
        .route("/order/items", get(items))
}

/// The seeded customers, highest id first.
#[utoipa::path(get, path = "/order/customers", tag = "catalog", params(PageQuery),
    responses((status = 200, body = Vec<Customer>),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn customers(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let list = catalog::customers(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(list).into_response())
}

/// The seeded items, highest id first.
#[utoipa::path(get, path = "/order/items", tag = "catalog", params(PageQuery),
    responses((status = 200, body = Vec<Item>),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn items(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let list = catalog::items(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(list).into_response())
}
