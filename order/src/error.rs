use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::http::Problem;

/// Everything that can go wrong in the order service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be read (malformed JSON, bad header): 400.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but asks for something impossible: 422.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database holds something this code cannot read (a 500, logged in full).
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    /// The group-commit writer task is gone (the service is shutting down).
    #[error("the order writer has stopped")]
    WriterStopped,
    #[error(transparent)]
    Common(#[from] common::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let err = match self {
            Error::Common(e) => return e.into_response(),
            other => other,
        };
        let (status, title) = match &err {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid Order"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "Not Found"),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type")
            }
            Error::Common(_) => unreachable_common(),
            Error::Db(_) | Error::Corrupt(_) | Error::WriterStopped => {
                // Internal detail goes to the log, not to the client.
                tracing::error!(error = %err, "internal error");
                return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    .into_response();
            }
        };
        Problem::new(status, title)
            .detail(err.to_string())
            .into_response()
    }
}

/// Handled before the match; kept as a value so the match stays exhaustive.
fn unreachable_common() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}
