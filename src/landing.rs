//! `/`: where a person starts: the three services' pages, their JSON and the feed.

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::ui::{self, Section};
use maud::html;

pub fn router() -> Router {
    Router::new().route("/", get(|| async { landing() }))
}

fn landing() -> Response {
    let body = html! {
        h1 { "Feedline" }
        p {
            "Event integration over plain HTTP: the order service publishes its order events as an "
            "Atom feed; invoicing and shipping poll it and keep their own copies."
        }
        div.actions {
            a href="/order/ui/orders/new" { "Place an order" }
        }
        div.scroll {
            table {
                thead { tr { th { "Service" } th { "Pages" } th { "JSON and feeds" } } }
                tbody {
                    tr {
                        td { "order" }
                        td { a href="/order/ui/" { "Orders" } ", " a href="/order/ui/orders/new" { "new order" } }
                        td {
                            a href="/order/orders" { "orders" } ", " a href="/order/customers" { "customers" } ", "
                            a href="/order/items" { "items" } ", " a href="/order/feed" { "feed" } ", "
                            a href="/order/openapi.json" { "OpenAPI" }
                        }
                    }
                    tr {
                        td { "invoicing" }
                        td { a href="/invoicing/ui/" { "Invoices and consumer" } }
                        td { a href="/invoicing/invoices" { "invoices" } ", " a href="/invoicing/consumer" { "consumer" } }
                    }
                    tr {
                        td { "shipping" }
                        td { a href="/shipping/ui/" { "Shipments and consumer" } }
                        td { a href="/shipping/shipments" { "shipments" } ", " a href="/shipping/consumer" { "consumer" } }
                    }
                }
            }
        }
        h2 { "From a terminal" }
        pre { code {
            "curl -X POST localhost:8080/order/orders -H 'content-type: application/json' \\\n"
            "  -d '{\"customerId\": 1, \"lines\": [{\"itemId\": 2, \"count\": 3}]}'"
        } }
    };
    ui::page(Section::Home, "Home", body)
}
