//! `/`: a small page linking the three services.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Feedline</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
code{background:#f4f4f4;padding:0 .2em}</style></head>
<body>
<h1>Feedline</h1>
<p>Event integration over plain HTTP: the order service publishes an Atom feed; invoicing and
shipping poll it and keep their own copies.</p>
<ul>
<li><a href="/order/orders">order</a>: <a href="/order/feed">feed</a>,
    <a href="/order/customers">customers</a>, <a href="/order/items">items</a></li>
<li><a href="/invoicing/invoices">invoicing</a>: <a href="/invoicing/consumer">consumer</a></li>
<li><a href="/shipping/shipments">shipping</a>: <a href="/shipping/consumer">consumer</a></li>
</ul>
<p>Place an order:</p>
<pre><code>curl -X POST localhost:8080/order/orders -H 'content-type: application/json' \
  -d '{"customerId": 1, "lines": [{"itemId": 2, "count": 3}]}'</code></pre>
</body>
</html>
"#;

pub fn router() -> Router {
    Router::new().route("/", get(|| async { Html(PAGE) }))
}
