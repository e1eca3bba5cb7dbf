//! `/order/feed`: the order events as Atom, with RFC 5005 archive pages and long polling.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::feed::requested_wait;
use serde::Deserialize;

use crate::{AppState, Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/feed", get(head))
        .route("/order/feed/archive/{page}", get(archive))
}

#[derive(Deserialize)]
struct HeadQuery {
    wait: Option<String>,
}

async fn head(
    State(state): State<AppState>,
    Query(query): Query<HeadQuery>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let wait = requested_wait(&headers, query.wait.as_deref()).map_err(Error::BadRequest)?;
    Ok(state.feed.head(&headers, wait, &state.shutdown).await?)
}

async fn archive(
    State(state): State<AppState>,
    Path(page): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    Ok(state.feed.archive(page, &headers).await?)
}
