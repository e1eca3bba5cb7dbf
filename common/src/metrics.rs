//! Prometheus metrics: one registry per service (services share a process in all-in-one mode
//! and in tests, so nothing is global), exposed at `GET /{svc}/metrics` in the text format.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
        };
        registry.register("http_requests", "HTTP requests served", m.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head",
            m.latency.clone(),
        );
        m
    }
}

/// Counts each request by its route template (never the raw path, which would explode the
/// number of series).
async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        // `/order/orders/:id` rather than axum's `{id}`: braces in label values trip up some
        // text-format parsers.
        .map_or_else(
            || "unmatched".to_owned(),
            |p| p.as_str().replace('{', ":").replace('}', ""),
        );
    let response = next.run(req).await;
    let labels = RouteLabels { method, route };
    m.latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method: labels.method,
            route: labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
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
        .route_layer(axum::middleware::from_fn_with_state(http, track))
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
