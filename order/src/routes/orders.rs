//! `/order/orders`: place, read, list and cancel orders.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::http::PageQuery;

use crate::model::{IdempotencyKey, PlaceOrderRequest};
use crate::service::{self, Placed};
use crate::{store, AppState, Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/orders", post(place).get(list))
        .route("/order/orders/{id}", get(show))
        .route("/order/orders/{id}/cancel", post(cancel))
}

async fn place(
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

async fn show(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, Error> {
    let order = store::get(&state.db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("order {id} not found")))?;
    Ok(Json(order).into_response())
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let orders = store::list(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(orders).into_response())
}

async fn cancel(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, Error> {
    let order = service::cancel(&state, id).await?;
    Ok(Json(order).into_response())
}
