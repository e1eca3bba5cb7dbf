//! `/order/feed`: the order events as Atom, with RFC 5005 archive pages.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::{AppState, Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/feed", get(head))
        .route("/order/feed/archive/{page}", get(archive))
}

async fn head(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    Ok(state.feed.head(&headers).await?)
}

async fn archive(
    State(state): State<AppState>,
    Path(page): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    Ok(state.feed.archive(page, &headers).await?)
}
