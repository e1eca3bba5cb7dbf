//! `/order/orders`: place, read, list and cancel orders.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::http::PageQuery;

use crate::model::{IdempotencyKey, Order, PlaceOrderRequest};
use crate::openapi::Problem;
use crate::service::{self, Placed};
use crate::{store, AppState, Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/orders", post(place).get(list))
        .route("/order/orders/{id}", get(show))
        .route("/order/orders/{id}/cancel", post(cancel))
}

/// Places an order.
#[utoipa::path(
    post, path = "/order/orders", tag = "orders",
    request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header,
            description = "Makes retries safe: the same key and body return the first result")),
    responses(
        (status = 201, description = "Created (or replayed, with Idempotent-Replayed: true)",
         body = Order, headers(("Location" = String, description = "The order's URL"))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown customer or item, no lines, bad count or address, key reused with another body",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn place(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json");
    if !is_json {
        return Err(Error::UnsupportedMediaType(
            "send the order as Content-Type: application/json".into(),
        ));
    }
    let request: PlaceOrderRequest = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            Error::invalid(format!("invalid order: {e}"))
        } else {
            Error::BadRequest(format!("malformed JSON: {e}"))
        }
    })?;
    let key = headers
        .get("idempotency-key")
        .map(|v| IdempotencyKey::parse(v.as_bytes()))
        .transpose()?;
    let (order, replayed) = match service::place(&state, request, key).await? {
        Placed::Created(o) => (o, false),
        Placed::Replayed(o) => (o, true),
    };
    let location = format!("/order/orders/{}", order.id);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    )
        .into_response();
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// One order.
#[utoipa::path(
    get, path = "/order/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 400, description = "Id is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    let order = store::get(&state.db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("order {id} not found")))?;
    Ok(Json(order).into_response())
}

/// Orders, newest first.
#[utoipa::path(
    get, path = "/order/orders", tag = "orders",
    params(PageQuery),
    responses(
        (status = 200, body = Vec<Order>),
        (status = 400, description = "limit outside 1..=500", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let orders = store::list(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(orders).into_response())
}

/// Cancels an order: a new version and a feed entry. Cancelling twice changes nothing.
#[utoipa::path(
    post, path = "/order/orders/{id}/cancel", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    let order = service::cancel(&state, id).await?;
    Ok(Json(order).into_response())
}
