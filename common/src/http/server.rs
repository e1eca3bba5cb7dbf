//! Serving connections: hyper's HTTP/1 server on each accepted socket, and a connection that has
//! had no request for [`PARK_AFTER`] parked outside hyper until its client writes again.
//!
//! hyper gives every connection two 8 KB buffers (one it reads into, one for response heads) and
//! keeps both for as long as the connection lives; a keep-alive connection of a poller idles
//! between polls far longer than it spends in requests. A parked connection is the socket, any
//! bytes hyper had read past the last request, and a small task waiting for readability: about
//! 1.5 KB resident instead of about 20 KB (`bench/connections`). A busy connection never parks
//! (the check runs once per [`PARK_AFTER`], not per request), so the hot path is hyper's own.
//!
//! A long poll is held outside hyper too. A request that asks to wait (`Prefer: wait`) has its
//! connection parked as soon as it is answered, since its client will ask again at once; the
//! next request it sends is read into a buffer of its own size, and if the app's [`Hold`] says
//! it would wait (the feed head, unchanged since the client's `ETag`), it waits there: the
//! socket, those bytes and the wait's state, about 2 KB instead of about 11 KB in hyper. When
//! the wait ends the bytes are handed to hyper, and the handler is told how long the request
//! was held ([`HeldFor`]) so that it waits only for the rest.
//!
//! Served with hyper's `http1` builder directly rather than `axum::serve` (hyper-util's
//! auto-detecting builder, which sniffs every connection for HTTP/2 and adds a watch channel per
//! connection): every service here speaks HTTP/1.1, behind nginx or not.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::direct::Direct;
use super::workers::Workers;
use super::App;

/// How long a connection goes without a request before it leaves hyper.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Most bytes of a request read to decide whether to hold it: a long poll's head is a few
/// hundred; a longer head is not held, only served in hyper.
const HOLD_READ: usize = 4096;

/// Decides, from a request's head before hyper reads it, whether it would only wait (a long
/// poll with nothing to answer yet) and until when.
pub trait Hold: Send + Sync + 'static {
    /// `Some(until)` to hold the request until `until` resolves, then serve it; `target` is the
    /// request-target (path and query), `peer` the client's address.
    fn hold(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Option<BoxFuture<'static, ()>>;

    /// The response to a `GET` of `path` (no query, no body) when it can be given from memory
    /// at once, without the router: the feed head's `304`, and its `200` once rendered. `None`
    /// sends the request through the router as usual. The edge adds the request id, the log
    /// line and the route metrics, counted under `path` itself: only a route without
    /// parameters may be answered here.
    fn answer(&self, _path: &str, _headers: &HeaderMap, _peer: SocketAddr) -> Option<Response> {
        None
    }

    /// The response to a request held by [`Hold::hold`] once its wait has ended (`held` is how
    /// long it waited), when the app would answer it the same without the router: the feed
    /// head's long poll. It is then written to the socket directly, without hyper (see
    /// [`super::direct`]); `None` serves the request through hyper as usual, and so does a
    /// future that comes to `None`. The edge adds the request id, the log line and the route
    /// metrics, counted under `target` itself: only a route without parameters may answer.
    fn answer_held(
        &self,
        _method: &Method,
        _target: &str,
        _headers: HeaderMap,
        _held: HeldRequest,
    ) -> Option<BoxFuture<'static, Option<Response>>> {
        None
    }
}

/// What [`Hold::answer_held`] is told besides the request's head.
#[derive(Debug, Clone)]
pub struct HeldRequest {
    /// The client's address.
    pub peer: SocketAddr,
    /// How long the request was held: a long poll waits only for what is left of its wait.
    pub held: Duration,
    /// The server's shutdown: a wait still left ends with it.
    pub shutdown: CancellationToken,
}

/// How long the request was held before hyper read it (a request extension): a long poll's
/// handler waits only for what is left of its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldFor(pub Duration);

const PREFER: HeaderName = HeaderName::from_static("prefer");

/// Counts of the connections a service is served on: gauges in its metrics
/// (`http_connections`, `http_connections_parked`, `http_requests_held`), read by tests too.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    open: Gauge,
    parked: Gauge,
    held: Gauge,
}

impl Connections {
    /// Registers the two gauges in `registry`.
    pub fn register(registry: &mut Registry) -> Connections {
        let c = Connections::default();
        registry.register(
            "http_connections",
            "Client connections open, parked ones included",
            c.open.clone(),
        );
        registry.register(
            "http_connections_parked",
            "Client connections idle and parked outside the HTTP server until their next request",
            c.parked.clone(),
        );
        registry.register(
            "http_requests_held",
            "Requests held outside the HTTP server while they wait (long polls), on parked connections",
            c.held.clone(),
        );
        c
    }

    /// Connections accepted and not yet closed, parked ones included.
    pub fn open(&self) -> u64 {
        self.open.get().max(0) as u64
    }

    /// Connections waiting outside hyper for their next request, or holding one.
    pub fn parked(&self) -> u64 {
        self.parked.get().max(0) as u64
    }

    /// Requests held outside hyper while they wait (a subset of the parked connections).
    pub fn held(&self) -> u64 {
        self.held.get().max(0) as u64
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting, closes
/// parked connections, lets in-flight requests finish, and returns once every connection is
/// closed.
pub async fn serve(listener: TcpListener, app: App, shutdown: CancellationToken) -> io::Result<()> {
    let workers = Workers::get()?;
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (app, shutdown) = (app.clone(), shutdown.clone());
                let Some((worker, seat)) = workers.pick() else {
                    connections.spawn(connection(stream, peer, app, shutdown));
                    continue;
                };
                // Registered again with the reactor of the thread it is served on.
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "an accepted connection failed");
                        continue;
                    }
                };
                let served = async move {
                    let _seat = seat;
                    match TcpStream::from_std(stream) {
                        Ok(stream) => connection(stream, peer, app, shutdown).await,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "an accepted connection failed");
                        }
                    }
                };
                connections.spawn_on(served, worker);
            }
            // The client gave up before it was accepted: nothing to serve.
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One accepted socket, from accept to close: in hyper while it has requests, parked between.
async fn connection(stream: TcpStream, peer: SocketAddr, app: App, shutdown: CancellationToken) {
    let counts = app.connections().clone();
    counts.open.inc();
    let activity = Arc::new(Activity::default());
    let mut io = Rewind::new(stream);
    loop {
        // Parked until the client writes: a new connection too, so one that connects and
        // sends nothing costs no buffers. A partial head hyper read past its last request
        // waits here for the rest; a complete one goes to hyper at once (hyper parses what it
        // reads before it can be parked, so that is a guard rather than a path taken).
        // A hang-up reads as readable too, and hyper then sees the end of the stream. A peek,
        // not `readable()`: tokio assumes a socket it has just accepted is readable, and
        // readiness may be a false positive.
        if !io.unread.is_empty() && is_complete_head(&io.unread) {
            // Served below without waiting.
        } else {
            counts.parked.inc();
            let mut first = [0u8; 1];
            let woken = tokio::select! {
                biased;
                _ = shutdown.cancelled() => false,
                peeked = io.stream.peek(&mut first) => peeked.is_ok(),
            };
            if woken && io.unread.is_empty() {
                match hold(&mut io, peer, &app, &shutdown).await {
                    Held::No => {}
                    Held::For(held) => {
                        // Written here when the app answers it without the router (a woken
                        // long poll), and the connection parks again; else hyper serves it.
                        let request = HeldRequest {
                            peer,
                            held,
                            shutdown: shutdown.clone(),
                        };
                        // Boxed so that its state is allocated only while it answers, not
                        // kept in every connection's task (inline: 2.2 KB per waiting poll, not 1.9).
                        match Box::pin(super::direct::answer_held(&mut io, &app, request)).await {
                            Direct::Answered => {
                                counts.parked.dec();
                                continue;
                            }
                            Direct::ClientGone => {
                                counts.parked.dec();
                                break;
                            }
                            Direct::NotHere => activity.held_for(held),
                        }
                    }
                    Held::ClientGone => {
                        counts.parked.dec();
                        break;
                    }
                }
            }
            counts.parked.dec();
            if !woken {
                break;
            }
        }
        // Boxed so that hyper's connection state is freed while parked, not kept inline in
        // this task.
        let served = Box::pin(serve_until_idle(io, peer, &app, &activity, &shutdown)).await;
        let Some(parked) = served else { break };
        io = parked;
    }
    counts.open.dec();
}

/// What became of a request read before hyper.
enum Held {
    /// Not held (not a long poll that would wait, or not read whole): serve it.
    No,
    /// Held this long, then woken: serve it.
    For(Duration),
    /// The client closed while it was held, or before it sent anything.
    ClientGone,
}

/// Reads the request the client has sent on a parked connection and, if the app would only
/// wait on it, waits here until the app's wait ends, the client writes again or closes, or
/// shutdown. What was read is left in `io` for hyper.
async fn hold(io: &mut Rewind, peer: SocketAddr, app: &App, shutdown: &CancellationToken) -> Held {
    let read = match read_available(&io.stream) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Held::No,
        Err(_) => return Held::ClientGone,
    };
    if read.is_empty() {
        return Held::ClientGone;
    }
    let until = parse_head(&read)
        .and_then(|head| app.hold(&head.method, &head.target, &head.headers, peer));
    io.unread = Bytes::from(read);
    let Some(until) = until else {
        return Held::No;
    };
    let since = Instant::now();
    let mut next = [0u8; 1];
    app.connections().held.inc();
    let client_gone = tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        _ = until => false,
        peeked = io.stream.peek(&mut next) => !matches!(peeked, Ok(n) if n > 0),
    };
    app.connections().held.dec();
    if client_gone {
        return Held::ClientGone;
    }
    Held::For(since.elapsed())
}

/// What the socket has ready now, up to [`HOLD_READ`] bytes, in a buffer of its own size.
fn read_available(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; HOLD_READ];
    let n = stream.try_read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// A complete request head at the start of some bytes.
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) target: String,
    pub(super) headers: HeaderMap,
    pub(super) version: hyper::Version,
    /// Its length in bytes, the blank line included.
    pub(super) length: usize,
}

/// The complete request head at the start of `bytes`, if there is one.
pub(super) fn parse_head(bytes: &[u8]) -> Option<Head> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut slots);
    let httparse::Status::Complete(length) = request.parse(bytes).ok()? else {
        return None;
    };
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let target = request.path?.to_owned();
    let version = match request.version? {
        0 => hyper::Version::HTTP_10,
        _ => hyper::Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for h in request.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some(Head {
        method,
        target,
        headers,
        version,
        length,
    })
}

/// Whether a `Prefer` header asks to wait (RFC 7240 §4.3): the mark of a long poll.
fn asks_to_wait(headers: &HeaderMap) -> bool {
    headers.get_all(PREFER).iter().any(|v| {
        v.as_bytes()
            .windows(5)
            .any(|w| w.eq_ignore_ascii_case(b"wait="))
    })
}

/// Whether the client means to send more on this connection (RFC 9112 §9.3): one that asked
/// to close it is closed once answered, never parked.
fn keeps_alive<B>(request: &hyper::Request<B>) -> bool {
    stays_open(request.version(), request.headers())
}

/// Whether a connection stays open after a request of `version` with `headers` (RFC 9112
/// §9.3): HTTP/1.1 unless a `Connection` option says `close`, HTTP/1.0 only if one says
/// `keep-alive`.
pub(super) fn stays_open(version: hyper::Version, headers: &HeaderMap) -> bool {
    let mut tokens = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    if version == hyper::Version::HTTP_10 {
        tokens.any(|t| t.eq_ignore_ascii_case("keep-alive"))
    } else {
        !tokens.any(|t| t.eq_ignore_ascii_case("close"))
    }
}

fn is_complete_head(bytes: &[u8]) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    // Too many headers is complete enough: hyper answers it.
    !matches!(
        httparse::Request::new(&mut slots).parse(bytes),
        Ok(httparse::Status::Partial)
    )
}

/// Serves requests on `io` until the client closes, shutdown, or [`PARK_AFTER`] without a
/// request; in the last case gives the socket back, with what hyper had read ahead.
async fn serve_until_idle(
    io: Rewind,
    peer: SocketAddr,
    app: &App,
    activity: &Arc<Activity>,
    shutdown: &CancellationToken,
) -> Option<Rewind> {
    let service = Handler {
        app: app.clone(),
        peer,
        activity: activity.clone(),
    };
    let mut conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    let mut tick = std::pin::pin!(tokio::time::sleep(PARK_AFTER));
    // One wait for shutdown for the connection's time in hyper: a new one per wake-up would
    // lock the token's waiter list twice per request, a lock every connection shares.
    let mut stopping = std::pin::pin!(shutdown.cancelled());
    let mut seen = activity.started();
    let mut parking = false;
    let mut shutting_down = false;
    loop {
        tokio::select! {
            biased;
            // Shutdown first: a response that becomes ready in the same wake-up then says
            // `Connection: close`.
            _ = &mut stopping, if !shutting_down => {
                shutting_down = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection failed");
                    return None;
                }
                break;
            }
            _ = std::future::poll_fn(|cx| activity.poll_leave(cx)), if !parking && !shutting_down => {
                // Answered a long poll: its client asks again at once, and is held parked.
                parking = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            _ = &mut tick, if !parking && !shutting_down => {
                let started = activity.started();
                if started == seen && started > 0 && activity.is_idle() {
                    // No request since the last tick and none in flight: hyper is between
                    // requests (or flushing the last response), so it finishes without adding
                    // `Connection: close` to anything. Before its first request hyper counts a
                    // connection busy, and shutting it down then would answer that request
                    // with `Connection: close`: one whose first head is still incomplete stays.
                    parking = true;
                    Pin::new(&mut conn).graceful_shutdown();
                } else {
                    seen = started;
                    tick.as_mut().reset(tokio::time::Instant::now() + PARK_AFTER);
                }
            }
        }
    }
    if !parking || shutting_down {
        // The client closed, or asked to (`Connection: close`), or the server is stopping.
        return None;
    }
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    io.unread(parts.read_buf);
    Some(io)
}

/// Requests started and finished on one connection: it is idle when the two are equal.
#[derive(Debug, Default)]
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// A request asked to wait (`Prefer: wait`): park once idle, without waiting for the tick.
    leave: AtomicBool,
    /// Woken when a request finishes while `leave` is set.
    finishing: AtomicWaker,
    /// Microseconds the next request was held before hyper read it (0: not held).
    held_us: AtomicU64,
}

impl Activity {
    fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    fn is_idle(&self) -> bool {
        self.finished.load(Ordering::Relaxed) == self.started()
    }

    fn held_for(&self, held: Duration) {
        let us = u64::try_from(held.as_micros()).unwrap_or(u64::MAX).max(1);
        self.held_us.store(us, Ordering::Relaxed);
    }

    fn take_held(&self) -> Option<HeldFor> {
        match self.held_us.swap(0, Ordering::Relaxed) {
            0 => None,
            us => Some(HeldFor(Duration::from_micros(us))),
        }
    }

    /// Ready once a request that asked to wait has been answered and none is in flight.
    fn poll_leave(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.finishing.register(cx.waker());
        if self.leave.load(Ordering::Relaxed) && self.started() > 0 && self.is_idle() {
            self.leave.store(false, Ordering::Relaxed);
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Counts a request finished when dropped: with the response body once hyper has written it,
/// or with the request's future if the connection failed first.
struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
        if self.0.leave.load(Ordering::Relaxed) {
            self.0.finishing.wake();
        }
    }
}

/// hyper's service for one connection: the app behind the edge, with the peer's address as
/// axum's `ConnectInfo` (the feed's readers list it).
struct Handler {
    app: App,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Handler {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, request: hyper::Request<Incoming>) -> Responding {
        self.activity.started.fetch_add(1, Ordering::Relaxed);
        let finished = Finished(self.activity.clone());
        if asks_to_wait(request.headers()) && keeps_alive(&request) {
            self.activity.leave.store(true, Ordering::Relaxed);
        }
        let held = self.activity.take_held();
        // A held request was a long poll: the router's, to wait for what is left of it.
        if held.is_none() {
            if let Some(response) = self.app.answer(&request, self.peer) {
                return Responding {
                    response: Pending::Answered(Some(response)),
                    finished: Some(finished),
                };
            }
        }
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        if let Some(held) = held {
            request.extensions_mut().insert(held);
        }
        Responding {
            response: Pending::Routed(self.app.respond(request)),
            finished: Some(finished),
        }
    }
}

/// The response, its body carrying the request's [`Finished`].
struct Responding {
    response: Pending,
    finished: Option<Finished>,
}

/// A response given from memory, or the edge's future.
enum Pending {
    Answered(Option<Response>),
    Routed(BoxFuture<'static, Result<Response, Infallible>>),
}

impl Future for Responding {
    type Output = Result<hyper::Response<TrackedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match &mut self.response {
            Pending::Answered(response) => response.take(),
            Pending::Routed(routed) => {
                let Ok(response) = std::task::ready!(routed.as_mut().poll(cx));
                Some(response)
            }
        };
        // Polled again after it was ready: hyper never does.
        let response = response.unwrap_or_default();
        let finished = self.finished.take();
        Poll::Ready(Ok(response.map(|body| TrackedBody {
            body,
            _finished: finished,
        })))
    }
}

/// A response body that counts its request finished when hyper drops it.
pub struct TrackedBody {
    body: Body,
    _finished: Option<Finished>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket with bytes to be read again before it: what hyper had read past its last request
/// when the connection was parked.
pub(super) struct Rewind {
    pub(super) unread: Bytes,
    pub(super) stream: TcpStream,
}

impl Rewind {
    fn new(stream: TcpStream) -> Rewind {
        Rewind {
            unread: Bytes::new(),
            stream,
        }
    }

    fn unread(&mut self, read_ahead: Bytes) {
        if read_ahead.is_empty() {
            return;
        }
        // What is left of an earlier rewind comes after what hyper read from it.
        let mut all = Vec::with_capacity(read_ahead.len() + self.unread.len());
        all.extend_from_slice(&read_ahead);
        all.extend_from_slice(&self.unread);
        self.unread = Bytes::from(all);
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            let chunk = self.unread.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;

    use super::*;

    struct Server {
        addr: SocketAddr,
        connections: Connections,
        shutdown: CancellationToken,
        served: tokio::task::JoinHandle<io::Result<()>>,
    }

    /// Holds `GET /poll` until `release` is notified, like a long poll of an unchanged head.
    struct HoldPolls(Arc<Notify>);

    impl Hold for HoldPolls {
        fn hold(
            &self,
            method: &Method,
            target: &str,
            _: &HeaderMap,
            _: SocketAddr,
        ) -> Option<BoxFuture<'static, ()>> {
            let release = self.0.clone();
            (method == Method::GET && target == "/poll").then(|| {
                Box::pin(async move { release.notified().await }) as BoxFuture<'static, ()>
            })
        }

        fn answer(&self, path: &str, _: &HeaderMap, _: SocketAddr) -> Option<Response> {
            (path == "/answered").then(|| Response::new(Body::from("from memory")))
        }
    }

    async fn start(release: Arc<Notify>) -> Server {
        let router = Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route("/answered", get(|| async { "from the router" }))
            .route(
                "/thread",
                get(|| async { std::thread::current().name().unwrap_or("").to_owned() }),
            )
            .route("/big", get(|| async { "x".repeat(BIG) }))
            .route(
                "/held",
                get({
                    let release = release.clone();
                    move || async move {
                        release.notified().await;
                        "released"
                    }
                }),
            )
            .route(
                "/poll",
                get(|held: Option<axum::Extension<HeldFor>>| async move {
                    if held.is_some() {
                        "held"
                    } else {
                        "not held"
                    }
                }),
            );
        let app = super::super::with_middleware(router).holding(Arc::new(HoldPolls(release)));
        let connections = app.connections().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(listener, app, shutdown.clone()));
        Server {
            addr,
            connections,
            shutdown,
            served,
        }
    }

    /// Waits, up to ten seconds, until `holds` does.
    async fn until(what: &str, holds: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !holds() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reads one response with a `Content-Length`: its head (lowercased) and body.
    async fn response(stream: &mut TcpStream) -> (String, String) {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(bytes[..end].to_vec())
                    .unwrap()
                    .to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if bytes.len() >= end + 4 + length {
                    let body = String::from_utf8(bytes[end + 4..end + 4 + length].to_vec());
                    return (head, body.unwrap());
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole response: {bytes:?}");
            bytes.extend_from_slice(&chunk[..n]);
        }
    }

    const GET_FAST: &[u8] = b"GET /fast HTTP/1.1\r\nhost: test\r\n\r\n";
    const LONG_POLL: &[u8] = b"GET /poll HTTP/1.1\r\nhost: test\r\nprefer: wait=30\r\n\r\n";

    /// Reads until `bytes` has `n` response heads and ends with `last`, the last body.
    async fn responses(stream: &mut TcpStream, n: usize, last: &str) -> String {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let read = async {
            loop {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if text.matches("HTTP/1.1 ").count() == n && text.ends_with(last) {
                    return text;
                }
                let got = stream.read(&mut chunk).await.unwrap();
                assert!(got > 0, "closed before {n} responses: {text}");
                bytes.extend_from_slice(&chunk[..got]);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("responses within 10 s")
    }

    #[tokio::test]
    async fn a_long_poll_waits_parked_and_the_next_one_on_its_connection_too() {
        let release = Arc::new(Notify::new());
        let server = start(release.clone()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        for round in 0..3 {
            // Written at once after the last answer: had the connection stayed in hyper (it
            // parks an idle one only after a second), hyper would read this poll itself.
            stream.write_all(LONG_POLL).await.unwrap();
            until("the poll is held, parked", || {
                server.connections.held() == 1 && server.connections.parked() == 1
            })
            .await;
            release.notify_one();
            let (head, body) = response(&mut stream).await;
            assert!(head.starts_with("http/1.1 200"), "round {round}: {head}");
            assert_eq!(
                body, "held",
                "round {round}: the handler is told it was held"
            );
        }
        // A request that is not a long poll goes to hyper as before.
        stream.write_all(GET_FAST).await.unwrap();
        assert_eq!(response(&mut stream).await.1, "ok");
    }

    /// More than the sockets' buffers hold: its response is still being written when done.
    const BIG: usize = 16 << 20;

    #[tokio::test]
    async fn a_request_to_wait_that_asks_to_close_is_closed_after_its_response() {
        let server = start(Arc::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                b"GET /big HTTP/1.1\r\nhost: test\r\nprefer: wait=1\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        // Not reading at first, so that the response has finished while hyper still writes it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
            .await
            .expect("the server closes the connection (Connection: close), not parks it")
            .unwrap();
        assert!(all.len() > BIG, "{}", all.len());
        assert_eq!(server.connections.parked(), 0);
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_while_held_is_closed() {
        let server = start(Arc::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(LONG_POLL).await.unwrap();
        // Nothing releases the poll: only the hang-up ends it.
        until("the poll is held", || server.connections.held() == 1).await;
        drop(stream);
        until("the held connection is closed", || {
            server.connections.open() == 0
        })
        .await;
        assert_eq!(server.connections.parked(), 0);
        assert_eq!(server.connections.held(), 0);
    }

    #[tokio::test]
    async fn requests_pipelined_behind_a_long_poll_are_served_in_order() {
        let release = Arc::new(Notify::new());
        let server = start(release.clone()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // Held: the request behind it waits for it (HTTP/1.1 answers in order).
        stream
            .write_all(&[LONG_POLL, GET_FAST].concat())
            .await
            .unwrap();
        release.notify_one();
        let text = responses(&mut stream, 2, "ok").await;
        assert!(text.contains("\r\n\r\nheld"), "{text}");
        // Not held (hyper serves it) yet asking to wait: the connection leaves hyper once
        // both are answered, not in between.
        let not_held = b"GET /fast HTTP/1.1\r\nhost: test\r\nprefer: wait=30\r\n\r\n";
        stream
            .write_all(&[&not_held[..], GET_FAST].concat())
            .await
            .unwrap();
        let text = responses(&mut stream, 2, "ok").await;
        assert!(text.contains("\r\n\r\nok"), "{text}");
    }

    #[tokio::test]
    async fn an_idle_connection_is_parked_and_serves_its_next_request() {
        let server = start(Arc::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // Parked from the start: nothing is given to hyper before the client writes.
        until("the new connection is parked", || {
            server.connections.open() == 1 && server.connections.parked() == 1
        })
        .await;
        for round in 0..2 {
            stream.write_all(GET_FAST).await.unwrap();
            let (head, body) = response(&mut stream).await;
            assert!(head.starts_with("http/1.1 200"), "round {round}: {head}");
            assert!(!head.contains("connection: close"), "round {round}: {head}");
            assert_eq!(body, "ok");
            assert_eq!(server.connections.open(), 1);
            until("the connection is parked", || {
                server.connections.parked() == 1
            })
            .await;
            assert_eq!(server.connections.open(), 1);
        }
        drop(stream);
        until("the connection is closed", || {
            server.connections.open() == 0
        })
        .await;
        assert_eq!(server.connections.parked(), 0);
    }

    #[tokio::test]
    async fn a_request_head_cut_in_two_by_parking_is_read_whole() {
        let server = start(Arc::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(GET_FAST).await.unwrap();
        response(&mut stream).await;
        let (first, rest) = GET_FAST.split_at(22);
        stream.write_all(first).await.unwrap();
        until("the connection is parked", || {
            server.connections.parked() == 1
        })
        .await;
        stream.write_all(rest).await.unwrap();
        let (head, body) = response(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn shutdown_closes_parked_connections_and_lets_requests_in_flight_finish() {
        let release = Arc::new(Notify::new());
        let server = start(release.clone()).await;
        let mut parked = TcpStream::connect(server.addr).await.unwrap();
        parked.write_all(GET_FAST).await.unwrap();
        response(&mut parked).await;
        until("the connection is parked", || {
            server.connections.parked() == 1
        })
        .await;
        let mut busy = TcpStream::connect(server.addr).await.unwrap();
        busy.write_all(b"GET /held HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        until("both are open", || server.connections.open() == 2).await;
        server.shutdown.cancel();
        // The parked connection is closed at once: it reads the end of the stream.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), parked.read_to_end(&mut rest));
        assert_eq!(read.await.unwrap().unwrap(), 0);
        until("the parked connection is gone", || {
            server.connections.open() == 1
        })
        .await;
        assert!(!server.served.is_finished(), "a request is still in flight");
        release.notify_one();
        let (head, body) = response(&mut busy).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert_eq!(body, "released");
        tokio::time::timeout(Duration::from_secs(10), server.served)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(server.connections.open(), 0);
    }

    /// Connections are served on the serving threads when there are any (`HTTP_THREADS`; the
    /// suite runs with them and without), else on the runtime that accepted them. How they are
    /// spread is `workers::tests`: other tests share the threads.
    #[tokio::test]
    async fn connections_are_served_on_the_serving_threads() {
        let server = start(Arc::default()).await;
        let threaded = !Workers::get().unwrap().workers_empty();
        for _ in 0..3 {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream
                .write_all(b"GET /thread HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .unwrap();
            let (_, name) = response(&mut stream).await;
            assert_eq!(name.starts_with("http-"), threaded, "served on {name:?}");
        }
    }

    /// What the app answers from memory skips the router, and keeps its place among
    /// pipelined requests; a query sends the same path to the router.
    #[tokio::test]
    async fn answers_from_memory_skip_the_router_and_keep_their_order() {
        let server = start(Arc::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                b"GET /answered HTTP/1.1\r\nhost: test\r\n\r\n\
                  GET /fast HTTP/1.1\r\nhost: test\r\n\r\n\
                  GET /answered?x=1 HTTP/1.1\r\nhost: test\r\n\r\n\
                  GET /answered HTTP/1.1\r\nhost: test\r\nx-request-id: mine\r\n\r\n",
            )
            .await
            .unwrap();
        let text = responses(&mut stream, 4, "from memory").await;
        let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
        let bodies: Vec<&str> = answers
            .iter()
            .map(|a| a.split("\r\n\r\n").nth(1).unwrap())
            .collect();
        let ids: Vec<Option<&str>> = answers
            .iter()
            .map(|a| {
                a.lines()
                    .find_map(|l| l.strip_prefix("x-request-id: "))
                    .map(str::trim)
            })
            .collect();
        assert_eq!(
            bodies,
            ["from memory", "ok", "from the router", "from memory"]
        );
        assert!(ids.iter().all(Option::is_some), "{ids:?}");
        assert_eq!(ids[3], Some("mine"));
    }
}
