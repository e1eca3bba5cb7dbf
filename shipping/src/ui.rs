//! HTML pages under `/shipping/ui/`: the shipments with the consumer panel, and each shipment.
//! "Poll now" and "Retry" come with the panel from [`common::consumer::ui`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::consumer::{self, Consumer};
use common::http::PageQuery;
use common::ui::{self, HtmlError, Section};
use maud::{html, Markup};

use crate::model::{Address, Shipment};
use crate::{store, AppState, Error, Shipments};

const PREFIX: &str = "/shipping";
const LIST: &str = "/shipping/ui/";

#[derive(Clone)]
struct UiState {
    app: AppState,
    consumer: Consumer<Shipments>,
}

pub fn router(app: AppState, consumer: Consumer<Shipments>) -> Router {
    Router::new()
        .route(LIST, get(list))
        .route("/shipping/ui/shipments/{order_id}", get(show))
        .with_state(UiState {
            app,
            consumer: consumer.clone(),
        })
        .merge(consumer::ui::router(consumer, PREFIX, Section::Shipping))
}

impl From<Error> for HtmlError {
    fn from(e: Error) -> HtmlError {
        match e {
            Error::NotFound(detail) => {
                HtmlError::new(StatusCode::NOT_FOUND, Section::Shipping, detail)
            }
            other => HtmlError::internal(Section::Shipping, &other),
        }
    }
}

async fn list(
    State(state): State<UiState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, HtmlError> {
    let page = ui::list_page(page, Section::Shipping)?;
    let shipments = store::list(&state.app.db, page.before, page.limit).await?;
    let report = consumer::ui::report(&state.consumer, Section::Shipping).await?;
    let body = html! {
        h1 { "Shipments" }
        @if shipments.is_empty() {
            p.notice { "No shipments yet: they appear once the consumer has read an order from the feed." }
        } @else {
            div.scroll {
                table {
                    thead { tr { th { "Order" } th { "Customer" } th { "Ship to" } th { "Status" } th { "Ordered" } } }
                    tbody {
                        @for i in &shipments {
                            tr {
                                td { a href={ "/shipping/ui/shipments/" (i.order_id) } { "Shipment #" (i.order_id) } }
                                td { (i.customer.firstname) " " (i.customer.name) }
                                td { (address(&i.shipping_address)) }
                                td { (ui::status(i.status.as_str())) }
                                td { (ui::time(&i.ordered_at)) }
                            }
                        }
                    }
                }
            }
            (ui::older_link(LIST, shipments.len(), page.limit, shipments.last().map(|i| i.order_id)))
        }
        (consumer::ui::panel(&report, PREFIX))
    };
    Ok(ui::page(Section::Shipping, "Shipments", body))
}

async fn show(
    State(state): State<UiState>,
    Path(order_id): Path<i64>,
) -> Result<Response, HtmlError> {
    let shipment = store::get(&state.app.db, order_id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "There is no shipment for order {order_id} (yet: press \"Poll now\" on the shipments page)."
        ))
    })?;
    Ok(ui::page(
        Section::Shipping,
        &format!("Shipment {order_id}"),
        shipment_page(&shipment),
    ))
}

fn shipment_page(s: &Shipment) -> Markup {
    html! {
        h1 { "Shipment for order #" (s.order_id) " " (ui::status(s.status.as_str())) }
        @if s.status.as_str() == "cancelled" {
            p.notice { "The order was cancelled: do not ship." }
        }
        dl {
            dt { "Customer" }
            dd { (s.customer.firstname) " " (s.customer.name) }
            dt { "Shipping address" }
            dd { (address(&s.shipping_address)) }
            dt { "Ordered" }
            dd { (ui::time(&s.ordered_at)) }
            dt { "Order version" }
            dd { (s.version) }
        }
        h2 { "Pieces" }
        div.scroll {
            table {
                thead { tr { th { "Item" } th.num { "Count" } } }
                tbody {
                    @for l in &s.lines {
                        tr { td { (l.name) } td.num { (l.count) } }
                    }
                }
            }
        }
        div.actions {
            a href={ "/order/ui/orders/" (s.order_id) } { "Order" }
            a href={ "/shipping/shipments/" (s.order_id) } { "JSON" }
            a href=(LIST) { "All shipments" }
        }
    }
}

fn address(a: &Address) -> Markup {
    html! { (a.street) ", " (a.zip) " " (a.city) }
}
