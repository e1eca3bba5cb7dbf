//! A small publisher for `feedline check`: conformant by default, with one flaw at a time
//! switched on. Three archive-less entries on the head, two full archive pages of three.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

/// What the publisher gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    None,
    /// Answers `304` when `If-Modified-Since` (alone) is at or after the newest entry's
    /// second: an entry committed later within that second is hidden.
    ImsOneSecond,
    /// Archive pages carry the time they were served: different bytes every time.
    ChangingArchives,
    /// Neither `ETag` nor `Last-Modified` on the head.
    NoValidators,
    /// Two entries of the first archive share an id and an `updated`.
    DuplicateIds,
    /// New entries are dated a second before the newest one.
    Backdated,
    /// The first archive page carries another feed's `atom:id`.
    ForeignArchive,
    /// The head's `first` link names the newest archive, not the oldest.
    FirstNotOldest,
}

const PAGE: usize = 3;
const ARCHIVES: usize = 2;
const BASE_US: i64 = 1_780_000_000_000_000;

struct Lab {
    flaw: Flaw,
    /// (id, updated µs), oldest first.
    entries: Vec<(String, i64)>,
}

type Shared = Arc<Mutex<Lab>>;

fn rfc3339(us: i64) -> String {
    common::clock::rfc3339(common::clock::from_micros(us))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Lab {
    fn page(&self, archive: Option<usize>) -> String {
        let (range, links, updated) = match archive {
            Some(n) => {
                let mut links = vec![
                    ("self", format!("/feed/archive/{n}")),
                    ("current", "/feed".to_owned()),
                    (
                        "next-archive",
                        if n == ARCHIVES {
                            "/feed".to_owned()
                        } else {
                            format!("/feed/archive/{}", n + 1)
                        },
                    ),
                ];
                if n > 1 {
                    links.push(("prev-archive", format!("/feed/archive/{}", n - 1)));
                }
                let range = (n - 1) * PAGE..n * PAGE;
                let updated = if self.flaw == Flaw::ChangingArchives {
                    now_us()
                } else {
                    self.entries[range.end - 1].1
                };
                (range, links, updated)
            }
            None => (
                ARCHIVES * PAGE..self.entries.len(),
                vec![
                    ("self", "/feed".to_owned()),
                    ("prev-archive", format!("/feed/archive/{ARCHIVES}")),
                    (
                        "first",
                        if self.flaw == Flaw::FirstNotOldest {
                            format!("/feed/archive/{ARCHIVES}")
                        } else {
                            "/feed/archive/1".to_owned()
                        },
                    ),
                ],
                self.newest_us(),
            ),
        };
        let mut out = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">
<id>{}</id><title>Lab</title><updated>{}</updated><author><name>lab</name></author>
"#,
            if self.flaw == Flaw::ForeignArchive && archive == Some(1) {
                "urn:lab:another-feed"
            } else {
                "urn:lab:feed"
            },
            rfc3339(updated)
        );
        if archive.is_some() {
            out.push_str("<fh:archive/>\n");
        }
        for (rel, href) in links {
            out.push_str(&format!("<link rel=\"{rel}\" href=\"{href}\"/>\n"));
        }
        for i in range.rev() {
            let (id, us) = &self.entries[i];
            out.push_str(&format!(
                "<entry><id>{id}</id><title>Entry {i}</title><updated>{}</updated><category term=\"thing-happened\"/><link rel=\"alternate\" type=\"application/json\" href=\"/details/{i}\"/></entry>\n",
                rfc3339(*us)
            ));
        }
        out.push_str("</feed>\n");
        out
    }

    fn newest_us(&self) -> i64 {
        self.entries.iter().map(|e| e.1).max().unwrap_or(BASE_US)
    }

    fn write(&mut self) {
        let n = self.entries.len();
        let us = if self.flaw == Flaw::Backdated {
            self.newest_us() - 1_000_000
        } else {
            now_us()
        };
        self.entries.push((format!("urn:lab:{n}"), us));
    }
}

async fn head(State(lab): State<Shared>, headers: HeaderMap) -> Response {
    let lab = lab.lock().unwrap();
    let body = lab.page(None);
    if lab.flaw == Flaw::NoValidators {
        return ok(body, "no-cache", vec![]);
    }
    let etag = format!("\"n{}\"", lab.entries.len());
    let lm_secs = lab.newest_us().div_euclid(1_000_000);
    let lm = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(lm_secs as u64),
    );
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let ims = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    // RFC 9110 §13.2.2: the tag decides when there is one.
    let unchanged = match (inm, ims) {
        (Some(tag), _) => tag == etag,
        // Correct at one-second resolution: only a date after the newest entry's second
        // proves the client has everything.
        (None, Some(ims)) if lab.flaw == Flaw::ImsOneSecond => ims >= lm_secs,
        (None, Some(ims)) => ims > lm_secs,
        (None, None) => false,
    };
    let validators = vec![(header::ETAG, etag), (header::LAST_MODIFIED, lm)];
    if unchanged {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        for (k, v) in validators {
            r.headers_mut().insert(k, v.parse().unwrap());
        }
        return r;
    }
    ok(body, "no-cache", validators)
}

async fn archive(State(lab): State<Shared>, Path(n): Path<usize>) -> Response {
    if n == 0 || n > ARCHIVES {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = lab.lock().unwrap().page(Some(n));
    let etag = format!("\"a{n}-{}\"", body.len());
    ok(
        body,
        "public, max-age=31536000, immutable",
        vec![(header::ETAG, etag)],
    )
}

fn ok(body: String, cache: &str, headers: Vec<(header::HeaderName, String)>) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "application/atom+xml".to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
        ],
        body,
    )
        .into_response();
    for (k, v) in headers {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

async fn details(Path(n): Path<usize>) -> Response {
    axum::Json(serde_json::json!({ "n": n })).into_response()
}

async fn write(State(lab): State<Shared>) -> StatusCode {
    lab.lock().unwrap().write();
    StatusCode::CREATED
}

/// Serves a lab publisher with `flaw` on port 0; returns its base URL.
pub async fn serve(flaw: Flaw) -> String {
    let mut entries: Vec<(String, i64)> = (0..ARCHIVES * PAGE + 3)
        .map(|i| (format!("urn:lab:{i}"), BASE_US + i as i64 * 1_000_000))
        .collect();
    if flaw == Flaw::DuplicateIds {
        entries[2] = entries[1].clone();
    }
    let lab = Arc::new(Mutex::new(Lab { flaw, entries }));
    let router = Router::new()
        .route("/feed", get(head))
        .route("/feed/archive/{n}", get(archive))
        .route("/details/{n}", get(details))
        .route("/write", post(write))
        .with_state(lab);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}
