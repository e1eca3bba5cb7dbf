//! What every request gets, in one service wrapped around the whole router: a request id, one
//! log line, a timeout, the request body limit, and problem bodies for plain-text errors.
//!
//! One hand-written service rather than a stack of tower-http layers: `Router::layer` wraps
//! every route with each layer, and each level costs a boxed clone of the service and a boxed
//! future per request. Here a request pays one boxed future; the span and the log line cost
//! nothing when `info` is off for this module, and the request id is formatted without a
//! `format!` string.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::Service;
use tracing::Instrument;

use super::server::{Connections, HeldFor, Hold};
use super::Problem;
use crate::metrics::HttpMetrics;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long a request may take before it is answered `503` (a long poll waits 30 s at most).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Request ids `<random prefix>-<counter in hex>`: unique per process start, and far cheaper
/// than a UUID per request.
struct RequestIds {
    prefix: [u8; 8],
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut prefix = [0u8; 8];
        hex_into(&mut prefix, u64::from(rand::random::<u32>()));
        RequestIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 8 + 1 + 16];
        buf[..8].copy_from_slice(&self.prefix);
        buf[8] = b'-';
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        hex_into(&mut buf[9..9 + digits], n);
        HeaderValue::from_bytes(&buf[..9 + digits]).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// Writes `n` as lowercase hex, right-aligned and zero-padded, into `out`.
fn hex_into(out: &mut [u8], mut n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// The router (or any service) behind the edge.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    ids: Arc<RequestIds>,
    connections: Connections,
    hold: Option<Arc<dyn Hold>>,
    metrics: Option<HttpMetrics>,
    timeout: Duration,
    body_limit: usize,
}

impl<S> Edge<S> {
    pub fn new(inner: S, timeout: Duration, body_limit: usize) -> Edge<S> {
        Edge {
            inner,
            ids: Arc::new(RequestIds::new()),
            connections: Connections::default(),
            hold: None,
            metrics: None,
            timeout,
            body_limit,
        }
    }

    /// Counts the connections it is served on, and the requests it answers without the router
    /// (see [`Hold::answer`]), in a service's metrics.
    pub fn metered(mut self, metrics: HttpMetrics) -> Edge<S> {
        self.connections = metrics.connections();
        self.metrics = Some(metrics);
        self
    }

    /// Holds the requests `hold` says would only wait outside hyper (see [`super::serve`]).
    pub fn holding(mut self, hold: Arc<dyn Hold>) -> Edge<S> {
        self.hold = Some(hold);
        self
    }

    /// Whether to hold a request, from its head (see [`Hold`]).
    pub fn hold(
        &self,
        method: &axum::http::Method,
        target: &str,
        headers: &axum::http::HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Option<BoxFuture<'static, ()>> {
        self.hold.as_ref()?.hold(method, target, headers, peer)
    }

    /// The connections it is served on (see [`super::serve`]).
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The response to `request` from memory, if [`Hold::answer`] has one: with its request
    /// id, its log line and its route metrics, as the router's responses get them. Only a `GET`
    /// without query or body is offered; such a request never reaches the body limit, and an
    /// answer is there at once, well inside the timeout.
    pub fn answer<B: http_body::Body>(
        &self,
        request: &axum::http::Request<B>,
        peer: std::net::SocketAddr,
    ) -> Option<Response> {
        let hold = self.hold.as_ref()?;
        if request.method() != axum::http::Method::GET
            || request.uri().query().is_some()
            || !request.body().is_end_stream()
        {
            return None;
        }
        let path = request.uri().path();
        let started = Instant::now();
        let mut response = hold.answer(path, request.headers(), peer)?;
        let id = self.request_id(request.headers());
        if tracing::enabled!(tracing::Level::INFO) {
            let span = request_span(request.method(), path, &id);
            let _entered = span.enter();
            finished(&response, started);
        }
        response.headers_mut().insert(X_REQUEST_ID, id);
        if let Some(metrics) = &self.metrics {
            metrics.record(
                request.method(),
                path,
                response.status().as_u16(),
                started.elapsed(),
            );
        }
        Some(response)
    }

    /// The response to a held request once its wait has ended, if [`Hold::answer_held`] has
    /// one: with its request id, its log line (its latency counting the time it was held, as
    /// a routed held request's does) and its route metrics.
    pub fn answer_held(
        &self,
        method: &axum::http::Method,
        target: &str,
        headers: axum::http::HeaderMap,
        request: super::HeldRequest,
    ) -> Option<BoxFuture<'static, Option<Response>>> {
        let held = request.held;
        let hold = self.hold.as_ref()?;
        let id = self.request_id(&headers);
        let pending = hold.answer_held(method, target, headers, request)?;
        let metrics = self.metrics.clone();
        let (method, path) = (method.clone(), target.to_owned());
        Some(Box::pin(async move {
            let started = Instant::now();
            let mut response = pending.await?;
            if tracing::enabled!(tracing::Level::INFO) {
                let span = request_span(&method, &path, &id);
                let _entered = span.enter();
                finished(&response, started.checked_sub(held).unwrap_or(started));
            }
            response.headers_mut().insert(X_REQUEST_ID, id);
            if let Some(metrics) = &metrics {
                metrics.record(
                    &method,
                    &path,
                    response.status().as_u16(),
                    started.elapsed(),
                );
            }
            Some(response)
        }))
    }

    /// The client's request id, or a new one.
    fn request_id(&self, headers: &axum::http::HeaderMap) -> HeaderValue {
        match headers.get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => self.ids.next(),
        }
    }
}

/// The span of one request's log line.
fn request_span(method: &axum::http::Method, path: &str, id: &HeaderValue) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %method,
        path = %path,
        request_id = %String::from_utf8_lossy(id.as_bytes()),
    )
}

/// The log line of a request answered with `response`, `started` when it was read.
fn finished(response: &Response, started: Instant) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "finished processing request"
    );
}

impl<S> Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// Answers `request` with a clone of the inner service, without waiting for it to be ready:
    /// for services that always are, as axum's `Router` (the server calls this, saving the
    /// clone of the whole edge that tower's `&mut self` would take per request).
    pub fn respond(&self, request: Request) -> BoxFuture<'static, Result<Response, Infallible>> {
        self.handle(self.inner.clone(), request)
    }
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The ready service is taken, a clone left in its place (tower's contract).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.handle(inner, request)
    }
}

impl<S> Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    fn handle(
        &self,
        mut inner: S,
        mut request: Request,
    ) -> BoxFuture<'static, Result<Response, Infallible>> {
        // A client's own id is kept.
        let id = match request.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        let page_for = crate::ui::section_of(request.uri().path());
        let logging = tracing::enabled!(tracing::Level::INFO);
        let span = if logging {
            request_span(request.method(), request.uri().path(), &id)
        } else {
            tracing::Span::none()
        };
        // The clock is read only for the log line (the route metrics time requests themselves).
        // A request held before hyper read it is logged with the time it was held.
        let started = logging.then(|| {
            let now = Instant::now();
            match request.extensions().get::<HeldFor>() {
                Some(HeldFor(held)) => now.checked_sub(*held).unwrap_or(now),
                None => now,
            }
        });
        let response = match limit_body(request, self.body_limit) {
            Ok(request) => Ok(tokio::time::timeout(self.timeout, inner.call(request))),
            Err(declared) => Err(too_large(declared, self.body_limit)),
        };
        Box::pin(
            async move {
                let mut response = match response {
                    Ok(pending) => match pending.await {
                        Ok(Ok(response)) => response,
                        Err(_elapsed) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Timeout")
                            .detail("the request took too long")
                            .into_response(),
                    },
                    Err(too_large) => too_large,
                };
                if response.status().is_client_error() || response.status().is_server_error() {
                    response = problem_for_plain_error(response, page_for).await;
                }
                response.headers_mut().insert(X_REQUEST_ID, id);
                if let Some(started) = started {
                    finished(&response, started);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The request with its body bounded to `limit` bytes, or the length it declares when that is
/// over the limit. A request without a body (every GET) is passed as it is.
fn limit_body(request: Request, limit: usize) -> Result<Request, u64> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    match declared {
        Some(n) if n > limit as u64 => Err(n),
        Some(0) | None if !chunked => Ok(request),
        _ => Ok(request.map(|body| Body::new(http_body_util::Limited::new(body, limit)))),
    }
}

fn too_large(declared: u64, limit: usize) -> Response {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")
        .detail(format!(
            "the request body is {declared} bytes; at most {limit} are accepted"
        ))
        .into_response()
}

/// axum's plain-text rejections (bad path parameter, a body over the limit, an unknown route)
/// become problems, or an HTML error page under a service's `/ui/` pages, where a person is
/// reading.
async fn problem_for_plain_error(
    response: Response,
    page_for: Option<crate::ui::Section>,
) -> Response {
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !is_plain {
        return response;
    }
    let status = response.status();
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
    if detail.is_empty() {
        problem.into_response()
    } else {
        problem.detail(detail).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    fn app(timeout: Duration) -> Edge<Router> {
        let router = Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route("/stuck", get(std::future::pending::<&'static str>))
            .route("/echo", post(|body: String| async move { body }))
            .route(
                "/order/ui/page/{id}",
                get(|axum::extract::Path(_id): axum::extract::Path<u32>| async { "page" }),
            );
        Edge::new(router, timeout, 16)
    }

    async fn send(app: Edge<Router>, request: axum::http::Request<Body>) -> (Response, String) {
        let response = app.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn get_(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path).body(Body::empty()).unwrap()
    }

    fn content_type(r: &Response) -> &str {
        r.headers()
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
    }

    #[test]
    fn request_ids_are_the_prefix_and_a_hex_counter() {
        let ids = RequestIds::new();
        let prefix = std::str::from_utf8(&ids.prefix).unwrap().to_owned();
        assert_eq!(prefix.len(), 8);
        assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(ids.next(), format!("{prefix}-1").as_str());
        ids.next.store(0xabc, Ordering::Relaxed);
        assert_eq!(ids.next(), format!("{prefix}-abc").as_str());
        ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(ids.next(), format!("{prefix}-ffffffffffffffff").as_str());
    }

    #[tokio::test]
    async fn each_response_carries_a_new_request_id_or_the_clients_own() {
        let app = app(REQUEST_TIMEOUT);
        let (first, _) = send(app.clone(), get_("/fast")).await;
        let (second, _) = send(app.clone(), get_("/fast")).await;
        let first = first.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
        let second = second.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
        assert_ne!(first, second);
        assert_eq!(
            first.split_once('-').unwrap().0,
            second.split_once('-').unwrap().0
        );
        let mut own = get_("/fast");
        own.headers_mut()
            .insert(X_REQUEST_ID, HeaderValue::from_static("client-7"));
        let (kept, body) = send(app, own).await;
        assert_eq!(kept.headers()[X_REQUEST_ID], "client-7");
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn a_request_that_takes_too_long_gets_a_503_problem() {
        let started = Instant::now();
        let (response, body) = send(app(Duration::from_millis(50)), get_("/stuck")).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type(&response), "application/problem+json");
        assert!(body.contains("took too long"), "{body}");
        assert!(response.headers().contains_key(X_REQUEST_ID));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_whether_declared_or_streamed() {
        let app = app(REQUEST_TIMEOUT);
        let declared = axum::http::Request::post("/echo")
            .header(header::CONTENT_LENGTH, "17")
            .body(Body::from("x".repeat(17)))
            .unwrap();
        let (response, body) = send(app.clone(), declared).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(content_type(&response), "application/problem+json");
        assert!(body.contains("17 bytes"), "{body}");
        // No length declared: the body is cut off at the limit while it is read.
        let chunks = futures::stream::iter(["0123456789", "0123456789"].map(Ok::<_, Infallible>));
        let streamed = axum::http::Request::post("/echo")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(Body::from_stream(chunks))
            .unwrap();
        let (response, _) = send(app.clone(), streamed).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(content_type(&response), "application/problem+json");
        let small = axum::http::Request::post("/echo")
            .header(header::CONTENT_LENGTH, "5")
            .body(Body::from("small"))
            .unwrap();
        let (response, body) = send(app, small).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, "small");
    }

    #[tokio::test]
    async fn plain_text_errors_become_problems_or_pages_under_ui() {
        let app = app(REQUEST_TIMEOUT);
        let (api, body) = send(app.clone(), get_("/nowhere")).await;
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(content_type(&api), "application/problem+json");
        assert!(body.contains("\"status\":404"), "{body}");
        let (page, body) = send(app, get_("/order/ui/page/x")).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        assert!(
            content_type(&page).starts_with("text/html"),
            "{}",
            content_type(&page)
        );
        assert!(body.contains("<html"), "{body}");
    }

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_log_line_per_request_with_method_path_id_status_and_latency() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let mut request = get_("/fast");
        request
            .headers_mut()
            .insert(X_REQUEST_ID, HeaderValue::from_static("abc-1"));
        send(app(REQUEST_TIMEOUT), request).await;
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = lines[0];
        for part in [
            " INFO ",
            "request{method=GET path=/fast request_id=abc-1}",
            "finished processing request",
            "status=200",
            "latency_us=",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
    }

    /// Answers a `GET /memo` from memory: what [`Edge::answer`] is offered.
    struct Memo;

    impl Hold for Memo {
        fn hold(
            &self,
            _: &axum::http::Method,
            _: &str,
            _: &axum::http::HeaderMap,
            _: std::net::SocketAddr,
        ) -> Option<BoxFuture<'static, ()>> {
            None
        }

        fn answer(
            &self,
            path: &str,
            _: &axum::http::HeaderMap,
            _: std::net::SocketAddr,
        ) -> Option<Response> {
            (path == "/memo").then(|| Response::new(Body::from("from memory")))
        }
    }

    /// An answer from memory gets a request id (the client's, if it sent one) and is counted
    /// under its route, like a routed request; only a `GET` without query or body is offered.
    #[tokio::test]
    async fn an_answer_from_memory_gets_a_request_id_and_its_metrics() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let edge = app(Duration::from_secs(5))
            .holding(Arc::new(Memo))
            .metered(metrics);
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 9));

        let answered = edge.answer(&get_("/memo"), peer).unwrap();
        assert_eq!(answered.status(), StatusCode::OK);
        assert!(answered.headers().contains_key(X_REQUEST_ID));
        let mine = axum::http::Request::get("/memo")
            .header(X_REQUEST_ID, "mine")
            .body(Body::empty())
            .unwrap();
        let answered = edge.answer(&mine, peer).unwrap();
        assert_eq!(answered.headers()[X_REQUEST_ID], "mine");

        assert!(edge.answer(&get_("/memo?x=1"), peer).is_none());
        assert!(edge.answer(&get_("/fast"), peer).is_none());
        let with_body = axum::http::Request::get("/memo")
            .body(Body::from("abc"))
            .unwrap();
        assert!(edge.answer(&with_body, peer).is_none());
        let post = axum::http::Request::post("/memo")
            .body(Body::empty())
            .unwrap();
        assert!(edge.answer(&post, peer).is_none());

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.lines().any(|l| l.starts_with("http_requests_total{")
                && l.contains(r#"route="/memo""#)
                && l.contains(r#"status="200""#)
                && l.ends_with(" 2")),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_count{method="GET",route="/memo"} 2"#),
            "{text}"
        );
    }
}
