use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::http::Problem;

/// Errors of the shared plumbing: database, configuration, feed publishing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot connect to database {0}: {1}")]
    Connect(String, #[source] sqlx::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A full archive page's positions are not all in the database.
    #[error("archive page {page} has {found} entries, expected {expected}")]
    ArchiveIncomplete {
        page: i64,
        found: usize,
        expected: i64,
    },
    #[error("cannot render a feed page: {0}")]
    Render(#[source] atom_syndication::Error),
    #[error("cannot render a feed page as JSON: {0}")]
    RenderJson(#[source] serde_json::Error),
    #[error("cannot compress a feed page: {0}")]
    Compress(#[source] std::io::Error),
    /// The request accepts no representation or coding we have: 406.
    #[error("{0}")]
    NotAcceptable(String),
    #[error("replaying {url} failed: {reason}")]
    ReplayFailed { url: String, reason: String },
    #[error("rebuild could not read the feed: {0}")]
    RebuildFailed(String),
    /// Something this code guarantees did not hold: a bug, reported rather than hidden.
    #[error("internal invariant broken: {0}")]
    Invariant(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    /// This consumer instance no longer holds the lease: its writes are refused.
    #[error("fenced: {0}")]
    Fenced(String),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, "Not Found")
                .detail(what)
                .into_response(),
            Error::NotAcceptable(what) => {
                let mut response = Problem::new(StatusCode::NOT_ACCEPTABLE, "Not Acceptable")
                    .detail(what)
                    .into_response();
                response.headers_mut().insert(
                    axum::http::header::VARY,
                    axum::http::HeaderValue::from_static("Accept, Accept-Encoding"),
                );
                response
            }
            other => {
                // Internal details go to the log, not to the client.
                tracing::error!(error = %other, "internal error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    .into_response()
            }
        }
    }
}
