//! The consumer's HTTP surface under a service's prefix: poll now, status, parked entries.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{store, Consumer, Projection};
use crate::http::PageQuery;
use crate::service::ServiceState;
use crate::Error;

/// `POST /poll`, `GET /consumer`, `GET /parked`, `POST /parked/{id}/retry`, relative to the
/// service's prefix.
pub fn router<P: Projection>() -> Router<ServiceState<P>> {
    Router::new()
        .route("/poll", post(poll::<P>))
        .route("/consumer", get(report::<P>))
        .route("/parked", get(parked::<P>))
        .route("/parked/{id}/retry", post(retry::<P>))
}

async fn poll<P: Projection>(State(consumer): State<Consumer<P>>) -> Response {
    Json(consumer.poll().await).into_response()
}

async fn report<P: Projection>(State(consumer): State<Consumer<P>>) -> Result<Response, Error> {
    Ok(Json(consumer.report().await?).into_response())
}

async fn parked<P: Projection>(
    State(consumer): State<Consumer<P>>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let rows = store::parked(consumer.db(), page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(rows).into_response())
}

async fn retry<P: Projection>(
    State(consumer): State<Consumer<P>>,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    Ok(Json(consumer.retry_parked(id).await?).into_response())
}
