//! The checker's HTTP: plain GETs with exactly the headers a check asks for, and everything
//! about the answer kept (status, headers, body, time taken).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use common::consumer::client::error_chain;

use crate::error::Error;

/// Largest body read; a feed page beyond it is reported, not read.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub elapsed: Duration,
    /// After redirects: the base for relative links.
    pub url: Url,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one check run.
#[derive(Clone)]
pub struct Probe {
    http: reqwest::Client,
}

impl Probe {
    pub fn new(timeout: Duration) -> Result<Probe, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .user_agent(concat!("feedline-check/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(Probe { http })
    }

    /// GET `url` as a feed reader would (`Accept: application/atom+xml`), with `headers`.
    pub async fn get(&self, url: &Url, headers: &[(&str, &str)]) -> Result<Answer, Error> {
        let mut map = HeaderMap::new();
        map.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/atom+xml"),
        );
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Usage(format!("bad header name {name}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| Error::Usage(format!("bad header value {value:?}: {e}")))?;
            map.insert(name, value);
        }
        self.send(url, map).await
    }

    /// GET `url` accepting JSON (a details link).
    pub async fn get_json(&self, url: &Url) -> Result<Answer, Error> {
        let mut map = HeaderMap::new();
        map.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json, */*;q=0.1"),
        );
        self.send(url, map).await
    }

    async fn send(&self, url: &Url, headers: HeaderMap) -> Result<Answer, Error> {
        let started = Instant::now();
        let unreachable = |e: reqwest::Error| Error::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        };
        let mut response = self
            .http
            .get(url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let final_url = response.url().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Error::NotAFeed {
                    url: url.to_string(),
                    reason: format!("body larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
            url: final_url,
        })
    }
}
