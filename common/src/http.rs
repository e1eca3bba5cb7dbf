//! HTTP plumbing shared by every service: problem details, middleware, serving and shutdown.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;

use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

/// Request bodies larger than this are refused with 413 before any handler runs.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// An RFC 9457 problem details document, served as `application/problem+json`.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(skip)]
    status: StatusCode,
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    #[serde(rename = "status")]
    code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>) -> Problem {
        Problem {
            status,
            kind: "about:blank",
            title: title.into(),
            code: status.as_u16(),
            detail: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail, or the title when there is none.
    pub fn message(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.title)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response()
    }
}

/// Turns axum's plain-text rejections (bad path parameter, 413, unknown route) into problems,
/// or into an HTML error page under a service's `/ui/` pages, where a person is reading.
async fn problem_for_plain_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let page_for = crate::ui::section_of(req.uri().path());
    let response = next.run(req).await;
    let status = response.status();
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if (status.is_client_error() || status.is_server_error()) && is_plain {
        let (_, body) = response.into_parts();
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let title = status.canonical_reason().unwrap_or("Error");
        let detail = String::from_utf8_lossy(&text).trim().to_owned();
        if let Some(section) = page_for {
            let detail = if detail.is_empty() {
                title.to_owned()
            } else {
                detail
            };
            return crate::ui::HtmlError::new(status, section, detail).into_response();
        }
        let problem = Problem::new(status, title);
        return if detail.is_empty() {
            problem.into_response()
        } else {
            problem.detail(detail).into_response()
        };
    }
    response
}

/// Request ids `<random prefix>-<counter>`: unique per process start, and far cheaper than a
/// UUID per request (no random numbers on the hot path).
#[derive(Clone)]
struct SequentialRequestId {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl SequentialRequestId {
    fn new() -> SequentialRequestId {
        SequentialRequestId {
            prefix: Arc::from(format!("{:08x}", rand::random::<u32>())),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Adds the middleware every service gets: request log line, timeout, body limit, problem
/// bodies for every error, and a 404 problem for unknown routes.
pub fn with_middleware(router: Router) -> Router {
    router
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "Not Found") })
        .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(60),
        ))
        // Outside the limit and timeout layers, so their plain-text errors become problems too.
        .layer(axum::middleware::from_fn(problem_for_plain_errors))
        .layer(PropagateRequestIdLayer::x_request_id())
        // One log line per request: method, path and request id in the span; status and
        // latency in the event.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                    )
                })
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        // Outermost, so the id exists before the span is made. A client's own id is kept.
        .layer(SetRequestIdLayer::x_request_id(SequentialRequestId::new()))
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The peer's address reaches handlers as `ConnectInfo` (the feed's readers list it).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}

/// `?limit=&before=` of every list: newest first, `limit` 1 to 500 (default 50), `before` an id.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// Only ids below this one (the next page).
    pub before: Option<i64>,
}

/// A validated [`PageQuery`].
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    /// Only ids below this; `i64::MAX` for the first page.
    pub before: i64,
}

impl PageQuery {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 500;

    pub fn parse(self) -> Result<Page, Problem> {
        let limit = self.limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(
                Problem::new(StatusCode::BAD_REQUEST, "Bad Request").detail(format!(
                    "limit must be 1 to {}, got {limit}",
                    Self::MAX_LIMIT
                )),
            );
        }
        Ok(Page {
            limit,
            before: self.before.unwrap_or(i64::MAX),
        })
    }
}

/// `GET /{svc}/health`: the process answers.
pub fn alive() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /{svc}/ready`: 200 when the database answers and every migration set is applied,
/// else a 503 problem.
pub async fn readiness(db: &crate::db::Db, sets: &[crate::db::Migrations]) -> Response {
    for set in sets {
        if !db.ready(set).await {
            return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not Ready")
                .detail("database unreachable or migrations not applied")
                .into_response();
        }
    }
    axum::Json(serde_json::json!({"status": "ready"})).into_response()
}
