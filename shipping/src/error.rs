use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::http::Problem;

/// Everything that can go wrong in the shipping service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Common(#[from] common::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, "Not Found")
                .detail(what)
                .into_response(),
            Error::Common(e) => e.into_response(),
            Error::Db(e) => common::Error::Db(e).into_response(),
        }
    }
}
