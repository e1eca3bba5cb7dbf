//! `/order/feed`: the order events as Atom, with RFC 5005 archive pages and long polling.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::feed::requested_wait;
use serde::Deserialize;

use crate::openapi::Problem;
use crate::{AppState, Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/feed", get(head))
        .route("/order/feed/archive/{page}", get(archive))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct HeadQuery {
    /// Long poll: wait up to this many seconds (capped at 30) for a change.
    pub(crate) wait: Option<String>,
}

/// The subscription document (RFC 4287 Atom, RFC 5005 paging), with conditional GET and long
/// polling.
#[utoipa::path(get, path = "/order/feed", tag = "feed", params(HeadQuery,
        ("If-None-Match" = Option<String>, Header), ("If-Modified-Since" = Option<String>, Header),
        ("Prefer" = Option<String>, Header, description = "wait=N: long poll")),
    responses(
        (status = 200, description = "The newest entries", content_type = "application/atom+xml", body = String,
         headers(("ETag" = String), ("Last-Modified" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged"),
        (status = 400, description = "Malformed wait", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn head(
    State(state): State<AppState>,
    Query(query): Query<HeadQuery>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let wait = requested_wait(&headers, query.wait.as_deref()).map_err(Error::BadRequest)?;
    Ok(state.feed.head(&headers, wait, &state.shutdown).await?)
}

/// An immutable archive page.
#[utoipa::path(get, path = "/order/feed/archive/{page}", tag = "feed",
    params(("page" = i64, Path, description = "Archive page number, from 1")),
    responses(
        (status = 200, description = "A full page, cached for a year", content_type = "application/atom+xml", body = String),
        (status = 304, description = "Unchanged"),
        (status = 307, description = "The page being filled: see the subscription document"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn archive(
    State(state): State<AppState>,
    Path(page): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    Ok(state.feed.archive(page, &headers).await?)
}
