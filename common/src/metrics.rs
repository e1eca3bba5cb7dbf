//! Prometheus metrics: one registry per service (services share a process in all-in-one mode
//! and in tests, so nothing is global), exposed at `GET /{svc}/metrics` in the text format.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::http::Connections;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// HTTP request counts and latencies by route.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    /// Each route's series, found by its template without building labels: a request pays a
    /// map lookup, never an allocation (labels are built once per route, method and status).
    routes: Arc<RwLock<HashMap<String, Vec<Arc<RouteSeries>>>>>,
    connections: Connections,
}

/// The series of one route and method.
struct RouteSeries {
    method: Method,
    route: String,
    latency: Histogram,
    by_status: RwLock<Vec<(u16, Counter)>>,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> HttpMetrics {
        let m = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            routes: Arc::default(),
            connections: Connections::register(registry),
        };
        registry.register("http_requests", "HTTP requests served", m.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head",
            m.latency.clone(),
        );
        m
    }

    /// The gauges of the connections the service is served on: for
    /// [`crate::http::Edge::counting`].
    pub fn connections(&self) -> Connections {
        self.connections.clone()
    }

    /// Counts a request answered outside the router (see [`crate::http::Hold::answer`]) under
    /// the route `template`, as the router's layer would.
    pub(crate) fn record(&self, method: &Method, template: &str, status: u16, took: Duration) {
        let series = self.series(method, template);
        series.latency.observe(took.as_secs_f64());
        self.count(&series, status);
    }

    fn series(&self, method: &Method, template: &str) -> Arc<RouteSeries> {
        if let Some(found) = read(&self.routes)
            .get(template)
            .and_then(|s| s.iter().find(|s| s.method == method))
        {
            return found.clone();
        }
        // `/order/orders/:id` rather than axum's `{id}`: braces in label values trip up some
        // text-format parsers.
        let route = template.replace('{', ":").replace('}', "");
        let latency = self
            .latency
            .get_or_create(&RouteLabels {
                method: method.as_str().to_owned(),
                route: route.clone(),
            })
            .clone();
        let series = Arc::new(RouteSeries {
            method: method.clone(),
            route,
            latency,
            by_status: RwLock::default(),
        });
        let mut routes = write(&self.routes);
        let all = routes.entry(template.to_owned()).or_default();
        if let Some(raced) = all.iter().find(|s| s.method == method) {
            return raced.clone();
        }
        all.push(series.clone());
        series
    }

    fn count(&self, series: &RouteSeries, status: u16) {
        if let Some((_, c)) = read(&series.by_status).iter().find(|(s, _)| *s == status) {
            c.inc();
            return;
        }
        let mut by_status = write(&series.by_status);
        if let Some((_, c)) = by_status.iter().find(|(s, _)| *s == status) {
            c.inc();
            return;
        }
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                method: series.method.as_str().to_owned(),
                route: series.route.clone(),
                status,
            })
            .clone();
        counter.inc();
        by_status.push((status, counter));
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Counts each request by its route template (never the raw path, which would explode the
/// number of series), as a layer on every route (only there is the template known).
#[derive(Clone)]
struct Track {
    metrics: HttpMetrics,
}

impl<S> tower::Layer<S> for Track {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S> tower::Service<Request> for Tracked<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let series = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| self.metrics.series(req.method(), p.as_str()));
        TrackedFuture {
            inner: self.inner.call(req),
            started: Instant::now(),
            series: series.map(|s| (s, self.metrics.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        series: Option<(Arc<RouteSeries>, HttpMetrics)>,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((series, metrics))) = (&result, this.series.take()) {
            series.latency.observe(this.started.elapsed().as_secs_f64());
            metrics.count(&series, response.status().as_u16());
        }
        Poll::Ready(result)
    }
}

/// Adds request metrics to every route of `router` and serves the registry at `path`.
pub fn instrument(
    router: Router,
    http: HttpMetrics,
    registry: Arc<Registry>,
    path: &str,
) -> Router {
    router
        .route(path, get(move || serve(registry.clone())))
        .route_layer(Track { metrics: http })
}

async fn serve(registry: Arc<Registry>) -> Response {
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
