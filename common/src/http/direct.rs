//! A woken long poll answered without hyper: its response written straight to the socket.
//!
//! One commit wakes every long poll waiting on the feed head at once. Served through hyper,
//! each woken poll took a connection's buffers (two of 8 KB, fresh pages the allocator had
//! given back since the last wake, so page faults and copies into them: a quarter of the
//! wake's CPU), a parse, the edge and the router, to answer what the feed already had in
//! memory. Measured with a client that reads nothing until the server is done (kernel receive
//! timestamps, `bench/connections`), 10 000 polls took 160–275 ms to wake where a bare server
//! writing ready bytes took 90 ms (BENCHMARKS.md). Here the head was parsed once when the
//! request was held; the feed's answer is encoded into one small buffer and written with the
//! shared body in one `writev`, and the connection parks again, as it would after hyper.
//!
//! Only a lone `HTTP/1.1` request without a body on a connection that stays open comes here
//! (anything else, and anything the app does not answer, goes to hyper as before); the answer
//! is byte for byte the router's but for `Date` and the request id
//! (`long_poll::a_woken_long_poll_is_answered_as_the_router_answers`).

use std::io::{self, IoSlice, Write};
use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderMap, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::server::{parse_head, stays_open, Head, HeldRequest, Rewind};
use super::App;

/// How long writing one response may take: a client that stops reading loses its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of a held request offered to [`answer_held`].
pub(super) enum Direct {
    /// Written; the connection waits for the client's next request.
    Answered,
    /// Not answered here: hyper serves it, from the bytes still unread.
    NotHere,
    /// The client went away (or stopped reading) while it was answered.
    ClientGone,
}

/// Answers the held request in `io.unread` if the app can without the router (see
/// [`super::Hold::answer_held`]), writing the response to the socket.
pub(super) async fn answer_held(io: &mut Rewind, app: &App, held: HeldRequest) -> Direct {
    let Some(head) = lone_request(&io.unread) else {
        return Direct::NotHere;
    };
    let Some(pending) = app.answer_held(&head.method, &head.target, head.headers, held) else {
        return Direct::NotHere;
    };
    let Some(response) = pending.await else {
        return Direct::NotHere;
    };
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        // A body that fails to produce itself is no answer; nothing was written yet.
        return Direct::NotHere;
    };
    let without_body = !can_have_body(parts.status);
    let head = encode_head(parts.status, &parts.headers, body.len(), without_body);
    let body: &[u8] = if without_body { &[] } else { &body };
    io.unread = axum::body::Bytes::new();
    // Nearly always the socket takes it all at once: no timer then.
    let written = match io
        .stream
        .try_write_vectored(&[IoSlice::new(&head), IoSlice::new(body)])
    {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(_) => return Direct::ClientGone,
    };
    let from_head = written.min(head.len());
    let rest = write_all(
        &mut io.stream,
        &head[from_head..],
        &body[written - from_head..],
    );
    match tokio::time::timeout(WRITE_TIMEOUT, rest).await {
        Ok(Ok(())) => Direct::Answered,
        Ok(Err(_)) | Err(_) => Direct::ClientGone,
    }
}

/// The head in `bytes` when they are exactly one `HTTP/1.1` request head, of a request without
/// a body whose client keeps the connection open.
fn lone_request(bytes: &[u8]) -> Option<Head> {
    let head = parse_head(bytes)?;
    let has_body = head.headers.contains_key(header::TRANSFER_ENCODING)
        || head
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    (head.length == bytes.len()
        && head.version == hyper::Version::HTTP_11
        && !has_body
        && stays_open(head.version, &head.headers))
    .then_some(head)
}

/// RFC 9110 §6.4.1: `1xx`, `204` and `304` responses have no content.
fn can_have_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// The status line and header section as hyper writes them: the response's headers, then the
/// `content-length` of a response that may have content, then `date`.
fn encode_head(
    status: StatusCode,
    headers: &HeaderMap,
    length: usize,
    without_body: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + headers.len() * 48);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !without_body {
        // Writing to a Vec cannot fail.
        let _ = write!(head, "content-length: {length}\r\n");
    }
    if !headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes `head` then `body`, both in one `writev` when the socket takes them.
async fn write_all(stream: &mut TcpStream, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn only_a_lone_keep_alive_http_1_1_request_without_a_body_is_answered_here() {
        let ok = b"GET /order/feed HTTP/1.1\r\nHost: x\r\nPrefer: wait=5\r\n\r\n";
        let head = lone_request(ok).unwrap();
        assert_eq!(
            (head.method, head.target.as_str()),
            (Method::GET, "/order/feed")
        );
        assert_eq!(head.headers["prefer"], "wait=5");
        for refused in [
            &b"GET /order/feed HTTP/1.1\r\nHost: x\r\n\r\nGET /order/feed HTTP/1.1\r\n\r\n"[..],
            b"GET /order/feed HTTP/1.0\r\nHost: x\r\n\r\n",
            b"GET /order/feed HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
            b"GET /order/feed HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            b"GET /order/feed HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /order/feed HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert!(
                lone_request(refused).is_none(),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn a_head_carries_the_headers_a_content_length_and_a_date_but_a_304_no_length() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, "\"a\"".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, "999".parse().unwrap());
        let ok = String::from_utf8(encode_head(StatusCode::OK, &headers, 42, false)).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\netag: \"a\"\r\ncontent-length: 42\r\ndate: "));
        assert!(ok.ends_with(" GMT\r\n\r\n"), "{ok}");
        let not_modified =
            String::from_utf8(encode_head(StatusCode::NOT_MODIFIED, &headers, 0, true)).unwrap();
        assert!(not_modified.starts_with("HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\ndate: "));
        assert!(!not_modified.contains("content-length"));
    }
}
