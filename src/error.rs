//! What can stop `feedline check` and `feedline tail` before they have anything to report.

/// One line each, printed as `feedline check: …` with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The arguments make no sense (a URL that is not http(s), an empty command).
    #[error("{0}")]
    Usage(String),
    /// Nothing answered at the URL, or it kept failing.
    #[error("{url}: unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// Something answered, but not with an Atom feed.
    #[error("{url}: not a feed: {reason}")]
    NotAFeed { url: String, reason: String },
    /// The `--writes` command could not be run or failed.
    #[error("the --writes command {command:?} failed: {reason}")]
    Writes { command: String, reason: String },
    /// The feed at the URL became another feed while being followed.
    #[error("{url}: the feed changed identity from {expected} to {found}")]
    OtherFeed {
        url: String,
        expected: String,
        found: String,
    },
    /// Standard output went away (other than a closed pipe, which is a normal end).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Common(#[from] common::Error),
}
