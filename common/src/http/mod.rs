//! HTTP plumbing shared by every service: problem details, middleware, serving and shutdown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

mod direct;
mod edge;
mod server;
mod workers;

pub use edge::{Edge, REQUEST_TIMEOUT, X_REQUEST_ID};
pub use server::{serve, Connections, HeldFor, HeldRequest, Hold, PARK_AFTER};
pub use workers::spawn_on_writer_thread;

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

/// Adds what every service gets: a 404 problem for unknown routes, then the edge (request id,
/// log line, timeout, body limit, problem bodies for every error) around the whole router.
pub fn with_middleware(router: Router) -> App {
    let router = router.fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "Not Found") });
    Edge::new(router, edge::REQUEST_TIMEOUT, MAX_REQUEST_BODY)
}

/// A service's router behind the edge: what [`serve`] serves.
pub type App = Edge<Router>;

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
