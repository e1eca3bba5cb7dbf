//! Outbound HTTP for consumers: bounded in time and size, confined to the feed's origin.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use reqwest::{redirect, StatusCode};
use url::Url;

/// Why a request failed, sorted by what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Worth retrying: connect error, timeout, reset, 5xx, 429.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help: 4xx, too large, wrong type, another origin.
    #[error("{0}")]
    Permanent(String),
}

/// Limits of outbound requests.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    pub connect_timeout: Duration,
    /// Whole request, body included.
    pub timeout: Duration,
    /// Largest accepted feed page.
    pub max_page_bytes: usize,
    /// Largest accepted details document.
    pub max_details_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            max_page_bytes: 4 * 1024 * 1024,
            max_details_bytes: 1024 * 1024,
        }
    }
}

/// Validators of the last head response, sent back on the next poll.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
}

/// A successful response body with its validators.
pub struct Fetched {
    pub body: Vec<u8>,
    pub validators: Validators,
    /// The URL after same-origin redirects: the base for relative links.
    pub url: Url,
}

/// What a long poll of the head found.
pub enum Waited {
    /// The head changed (or the validators were stale): here it is, fresh from the origin
    /// (a cache in between may still hold the previous one for a moment).
    Changed(Fetched),
    /// The server held the request for the whole wait and nothing changed.
    Unchanged,
    /// The server answered at once without `Preference-Applied`: it does not long-poll.
    Unsupported,
}

/// The result of a conditional GET.
pub enum Conditional {
    NotModified,
    Modified(Fetched),
}

/// Request headers that tell a publisher who reads its feed and how far it got (README,
/// "Who reads the feed"). Optional for every client; a publisher that does not know them
/// ignores them.
pub const READER_HEADER: &str = "feed-reader";
/// The `atom:id` of the newest entry the reader has handled (its checkpoint).
pub const CHECKPOINT_HEADER: &str = "feed-reader-checkpoint";

/// Who this client reads for, sent with every feed page request.
struct ReaderIdentity {
    name: HeaderValue,
    /// Moves as entries are handled; `None` before the first.
    checkpoint: std::sync::Mutex<Option<HeaderValue>>,
}

/// An HTTP client that only talks to one origin.
#[derive(Clone)]
pub struct FeedClient {
    http: reqwest::Client,
    origin: url::Origin,
    limits: ClientLimits,
    reader: Option<std::sync::Arc<ReaderIdentity>>,
}

impl FeedClient {
    pub fn new(feed_url: &Url, limits: ClientLimits) -> Result<FeedClient, crate::Error> {
        let origin = feed_url.origin();
        if !origin.is_tuple() {
            return Err(crate::Error::Config(format!(
                "feed URL {feed_url} has no host to fetch from"
            )));
        }
        let allowed = origin.clone();
        // Redirects are followed only within the feed's origin, and at most 5 times.
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if attempt.url().origin() != allowed {
                attempt.error("redirect to another origin")
            } else {
                attempt.follow()
            }
        });
        // zstd is decoded here (see `decode_zstd`), gzip by reqwest; both are asked for.
        let mut coding = HeaderMap::new();
        coding.insert(
            reqwest::header::ACCEPT_ENCODING,
            HeaderValue::from_static("zstd, gzip"),
        );
        let http = reqwest::Client::builder()
            .no_zstd()
            .default_headers(coding)
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .redirect(policy)
            .user_agent(concat!("feedline-consumer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(FeedClient {
            http,
            origin,
            limits,
            reader: None,
        })
    }

    /// Names the reader in every feed page request ([`READER_HEADER`]); a name that is not a
    /// valid header value is not sent.
    pub fn with_reader(mut self, name: &str) -> FeedClient {
        self.reader = HeaderValue::from_str(name).ok().map(|name| {
            std::sync::Arc::new(ReaderIdentity {
                name,
                checkpoint: std::sync::Mutex::new(None),
            })
        });
        self
    }

    /// The checkpoint sent from now on ([`CHECKPOINT_HEADER`]).
    pub fn set_checkpoint(&self, entry_id: &str) {
        if let (Some(reader), Ok(value)) = (&self.reader, HeaderValue::from_str(entry_id)) {
            *reader
                .checkpoint
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
        }
    }

    fn reader_headers(&self, headers: &mut HeaderMap) {
        let Some(reader) = &self.reader else { return };
        headers.insert(READER_HEADER, reader.name.clone());
        let checkpoint = reader
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(checkpoint) = checkpoint {
            headers.insert(CHECKPOINT_HEADER, checkpoint);
        }
    }

    /// True when `url` is on the feed's origin.
    pub fn allowed(&self, url: &Url) -> bool {
        url.origin() == self.origin
    }

    /// GET a feed page, conditionally when `validators` are given.
    pub async fn page(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<Conditional, FetchError> {
        let mut headers = HeaderMap::new();
        if let Some(etag) = &validators.etag {
            headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = &validators.last_modified {
            headers.insert(IF_MODIFIED_SINCE, lm.clone());
        }
        self.reader_headers(&mut headers);
        self.get(
            url,
            headers,
            "application/atom+xml",
            self.limits.max_page_bytes,
        )
        .await
    }

    /// Long-polls the head: a conditional GET with `Prefer: wait=N` (RFC 7240), which a
    /// supporting server holds until the feed changes.
    pub async fn wait_for_change(
        &self,
        url: &Url,
        validators: &Validators,
        wait: Duration,
    ) -> Result<Waited, FetchError> {
        let mut reader = HeaderMap::new();
        self.reader_headers(&mut reader);
        let mut request = self
            .http
            .get(url.clone())
            .headers(reader)
            .header("prefer", format!("wait={}", wait.as_secs()))
            .timeout(wait + self.limits.timeout);
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm.clone());
        }
        let response = request.send().await.map_err(|e| classify(url, &e))?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(FetchError::Transient(format!("{url}: HTTP {status}")));
        }
        if status == StatusCode::NOT_MODIFIED {
            let applied = response
                .headers()
                .get("preference-applied")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("wait"));
            return Ok(if applied {
                Waited::Unchanged
            } else {
                Waited::Unsupported
            });
        }
        if !status.is_success() {
            return Err(FetchError::Permanent(format!("{url}: HTTP {status}")));
        }
        let fetched = read_limited(url, response, self.limits.max_page_bytes).await?;
        Ok(Waited::Changed(fetched))
    }

    /// GET a details document (JSON).
    pub async fn details(&self, url: &Url) -> Result<Fetched, FetchError> {
        match self
            .get(
                url,
                HeaderMap::new(),
                "application/json",
                self.limits.max_details_bytes,
            )
            .await?
        {
            Conditional::Modified(f) => Ok(f),
            Conditional::NotModified => Err(FetchError::Permanent(format!(
                "{url}: 304 to an unconditional request"
            ))),
        }
    }

    async fn get(
        &self,
        url: &Url,
        headers: HeaderMap,
        accept: &'static str,
        max_bytes: usize,
    ) -> Result<Conditional, FetchError> {
        if !self.allowed(url) {
            return Err(FetchError::Permanent(format!(
                "{url} is not on the feed's origin {}",
                self.origin.ascii_serialization()
            )));
        }
        let response = self
            .http
            .get(url.clone())
            .headers(headers)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| classify(url, &e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(FetchError::Transient(format!("{url}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Permanent(format!("{url}: HTTP {status}")));
        }
        Ok(Conditional::Modified(
            read_limited(url, response, max_bytes).await?,
        ))
    }
}

/// Reads a body of at most `max_bytes`, whatever `Content-Length` says or does not say.
async fn read_limited(
    url: &Url,
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Fetched, FetchError> {
    if let Some(len) = response.content_length() {
        if len > max_bytes as u64 {
            return Err(FetchError::Permanent(format!(
                "{url}: body of {len} bytes exceeds the limit of {max_bytes}"
            )));
        }
    }
    let validators = Validators {
        etag: response.headers().get(ETAG).cloned(),
        last_modified: response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .cloned(),
    };
    let final_url = response.url().clone();
    // reqwest has decoded gzip already (its Content-Encoding is gone then); zstd is left to us.
    let zstd = response
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"zstd"));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(url, &e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(FetchError::Permanent(format!(
                "{url}: body exceeds the limit of {max_bytes} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if zstd {
        body = decode_zstd(url, &body, max_bytes)?;
    }
    Ok(Fetched {
        body,
        validators,
        url: final_url,
    })
}

thread_local! {
    /// One zstd decoder per thread, reset for each body: reqwest's decoder, a new context
    /// per response fed chunk by chunk, cost the consumer 14 % of its CPU in a catch-up.
    static ZSTD: std::cell::RefCell<Option<zstd::stream::raw::Decoder<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decodes a zstd body (one or more frames), refusing it once the decoded bytes exceed
/// `max_bytes`: a compression bomb is bad input like any other, found before it is expanded.
fn decode_zstd(url: &Url, coded: &[u8], max_bytes: usize) -> Result<Vec<u8>, FetchError> {
    use zstd::stream::raw::{InBuffer, Operation as _, OutBuffer};
    let invalid = |e: std::io::Error| FetchError::Permanent(format!("{url}: invalid zstd: {e}"));
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decoder = match slot.as_mut() {
            Some(d) => {
                d.reinit().map_err(invalid)?;
                d
            }
            None => {
                let mut d = zstd::stream::raw::Decoder::new().map_err(invalid)?;
                // RFC 8878 §3.1.1.1.2: 8 MiB windows are what every decoder should support;
                // a frame asking for more (up to zstd's 128 MiB default) is refused rather
                // than given the memory. Kept across resets (session only).
                d.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(23))
                    .map_err(invalid)?;
                slot.insert(d)
            }
        };
        let mut body: Vec<u8> = Vec::with_capacity(coded.len().saturating_mul(8).min(max_bytes));
        let mut input = InBuffer::around(coded);
        let mut frame_done = true;
        while input.pos() < coded.len() || !frame_done {
            if body.len() == body.capacity() {
                if body.len() > max_bytes {
                    return Err(FetchError::Permanent(format!(
                        "{url}: body exceeds the limit of {max_bytes} bytes once decoded"
                    )));
                }
                // One byte past the limit is enough to know it is exceeded.
                let room = body.len().max(64 * 1024).min(max_bytes + 1 - body.len());
                body.reserve_exact(room);
            }
            let before = (input.pos(), body.len());
            let pos = body.len();
            let mut output = OutBuffer::around_pos(&mut body, pos);
            let hint = decoder.run(&mut input, &mut output).map_err(invalid)?;
            frame_done = hint == 0;
            if (input.pos(), body.len()) == before && body.len() < body.capacity() {
                return Err(FetchError::Permanent(format!(
                    "{url}: invalid zstd: the body ends inside a frame"
                )));
            }
        }
        if body.len() > max_bytes {
            return Err(FetchError::Permanent(format!(
                "{url}: body exceeds the limit of {max_bytes} bytes once decoded"
            )));
        }
        Ok(body)
    })
}

fn classify(url: &Url, e: &reqwest::Error) -> FetchError {
    let msg = format!("{url}: {}", error_chain(e));
    if e.is_redirect() || e.is_builder() {
        FetchError::Permanent(msg)
    } else {
        // Connect, timeout, reset, truncated body: the next attempt may succeed.
        FetchError::Transient(msg)
    }
}

/// reqwest's top-level message alone ("error sending request") hides the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://feed.example/feed").unwrap()
    }

    #[test]
    fn zstd_bodies_decode_frame_after_frame_with_one_reused_decoder() {
        let page = "<feed>".repeat(10_000).into_bytes();
        let mut two_frames = zstd::bulk::compress(&page, 3).unwrap();
        two_frames.extend(zstd::bulk::compress(b"<more/>", 1).unwrap());
        for _ in 0..3 {
            let body = decode_zstd(&url(), &two_frames, 1 << 20).unwrap();
            assert_eq!(&body[..page.len()], &page[..]);
            assert_eq!(&body[page.len()..], b"<more/>");
        }
        assert!(decode_zstd(&url(), &[], 10).unwrap().is_empty());
    }

    #[test]
    fn zstd_bodies_over_the_limit_once_decoded_or_cut_short_are_refused() {
        let page = vec![b' '; 1 << 20];
        let coded = zstd::bulk::compress(&page, 3).unwrap();
        assert!(coded.len() < 1000);
        assert!(
            decode_zstd(&url(), &coded, page.len()).is_ok(),
            "exactly the limit"
        );
        let over = decode_zstd(&url(), &coded, page.len() - 1).unwrap_err();
        assert!(over.to_string().contains("exceeds the limit"), "{over}");
        let cut = decode_zstd(&url(), &coded[..coded.len() - 3], 2 << 20).unwrap_err();
        assert!(cut.to_string().contains("invalid zstd"), "{cut}");
        // The decoder is reset after a failure: the next body decodes.
        assert_eq!(decode_zstd(&url(), &coded, 2 << 20).unwrap(), page);
        let garbage = decode_zstd(&url(), b"not zstd at all", 100).unwrap_err();
        assert!(garbage.to_string().contains("invalid zstd"), "{garbage}");
    }
}
