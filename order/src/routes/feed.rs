//! `/order/feed`: the order events as Atom, with RFC 5005 archive pages and long polling, in
//! every representation: by `Accept` at the generic URLs, or at each representation's own.

use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use common::feed::{requested_wait, Representation};
use common::http::HeldFor;
use serde::Deserialize;

use crate::openapi::Problem;
use crate::{AppState, Error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/feed", get(head))
        .route("/order/feed/archive/{page}", get(archive))
        .route("/order/feed/inline", get(inline_head))
        .route("/order/feed/inline/archive/{page}", get(inline_archive))
        .route("/order/feed/events", get(events_head))
        .route("/order/feed/events/archive/{page}", get(events_archive))
        .route("/order/feed/readers", get(readers))
}

/// The headers of a feed page request, taken from it (not copied: nothing after the
/// handler's extractors reads them). Every page request may name its reader; it is noted here,
/// before the page is served.
pub(crate) struct FeedRequest(HeaderMap);

impl FromRequestParts<AppState> for FeedRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<FeedRequest, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        state.feed.observe_reader(&parts.headers, peer);
        Ok(FeedRequest(std::mem::take(&mut parts.headers)))
    }
}

/// Who reads the feed.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Readers {
    /// The newest position in the feed.
    head: i64,
    /// Readers that named themselves (`Feed-Reader`), by name.
    #[schema(value_type = Vec<Object>)]
    readers: Vec<common::feed::ReaderReport>,
}

#[utoipa::path(get, path = "/order/feed/readers", tag = "feed",
    responses((status = 200, description = "Readers that name themselves, with their checkpoint, lag and last request", body = Readers)))]
pub(crate) async fn readers(State(state): State<AppState>) -> axum::Json<Readers> {
    axum::Json(Readers {
        head: state.feed.head_position(),
        readers: state.feed.readers(),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct HeadQuery {
    /// Long poll: wait up to this many seconds (capped at 30) for a change.
    pub(crate) wait: Option<String>,
}

/// The subscription document (RFC 4287 Atom, RFC 5005 paging), with conditional GET and long
/// polling; `Accept` picks the representation (Atom with links by default).
#[utoipa::path(get, path = "/order/feed", tag = "feed", params(HeadQuery,
        ("If-None-Match" = Option<String>, Header), ("If-Modified-Since" = Option<String>, Header),
        ("Prefer" = Option<String>, Header, description = "wait=N: long poll")),
    responses(
        (status = 200, description = "The newest entries", content_type = "application/atom+xml", body = String,
         headers(("ETag" = String), ("Last-Modified" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged"),
        (status = 400, description = "Malformed wait", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "No representation matches Accept", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn head(
    State(state): State<AppState>,
    Query(query): Query<HeadQuery>,
    held: Option<Extension<HeldFor>>,
    FeedRequest(headers): FeedRequest,
) -> Result<Response, Error> {
    serve_head(&state, &headers, &query, held, None).await
}

/// The subscription document with each entry's details inline (`<content type="application/json">`).
#[utoipa::path(get, path = "/order/feed/inline", tag = "feed", params(HeadQuery),
    responses((status = 200, content_type = "application/atom+xml;details=inline", body = String),
        (status = 304, description = "Unchanged"),
        (status = 406, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn inline_head(
    State(state): State<AppState>,
    Query(query): Query<HeadQuery>,
    held: Option<Extension<HeldFor>>,
    FeedRequest(headers): FeedRequest,
) -> Result<Response, Error> {
    serve_head(
        &state,
        &headers,
        &query,
        held,
        Some(Representation::AtomInline),
    )
    .await
}

/// The subscription document as a CloudEvents JSON batch; paging links in `Link`.
#[utoipa::path(get, path = "/order/feed/events", tag = "feed", params(HeadQuery),
    responses((status = 200, content_type = "application/cloudevents-batch+json", body = String),
        (status = 304, description = "Unchanged"),
        (status = 406, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn events_head(
    State(state): State<AppState>,
    Query(query): Query<HeadQuery>,
    held: Option<Extension<HeldFor>>,
    FeedRequest(headers): FeedRequest,
) -> Result<Response, Error> {
    serve_head(&state, &headers, &query, held, Some(Representation::Events)).await
}

async fn serve_head(
    state: &AppState,
    headers: &HeaderMap,
    query: &HeadQuery,
    held: Option<Extension<HeldFor>>,
    only: Option<Representation>,
) -> Result<Response, Error> {
    let wait = requested_wait(headers, query.wait.as_deref()).map_err(Error::BadRequest)?;
    let waited = held.map_or(Duration::ZERO, |Extension(HeldFor(d))| d);
    Ok(state
        .feed
        .head(headers, only, wait, waited, &state.shutdown)
        .await?)
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
    FeedRequest(headers): FeedRequest,
) -> Result<Response, Error> {
    Ok(state.feed.archive(page, &headers, None).await?)
}

/// An immutable archive page with details inline.
#[utoipa::path(get, path = "/order/feed/inline/archive/{page}", tag = "feed",
    params(("page" = i64, Path, description = "Archive page number, from 1")),
    responses((status = 200, content_type = "application/atom+xml;details=inline", body = String),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn inline_archive(
    State(state): State<AppState>,
    Path(page): Path<i64>,
    FeedRequest(headers): FeedRequest,
) -> Result<Response, Error> {
    Ok(state
        .feed
        .archive(page, &headers, Some(Representation::AtomInline))
        .await?)
}

/// An immutable archive page as a CloudEvents JSON batch.
#[utoipa::path(get, path = "/order/feed/events/archive/{page}", tag = "feed",
    params(("page" = i64, Path, description = "Archive page number, from 1")),
    responses((status = 200, content_type = "application/cloudevents-batch+json", body = String),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn events_archive(
    State(state): State<AppState>,
    Path(page): Path<i64>,
    FeedRequest(headers): FeedRequest,
) -> Result<Response, Error> {
    Ok(state
        .feed
        .archive(page, &headers, Some(Representation::Events))
        .await?)
}
