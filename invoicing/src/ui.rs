//! HTML pages under `/invoicing/ui/`: the invoices with the consumer panel, and each invoice.
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

use crate::model::{Address, Invoice};
use crate::{store, AppState, Error, Invoices};

const PREFIX: &str = "/invoicing";
const LIST: &str = "/invoicing/ui/";

#[derive(Clone)]
struct UiState {
    app: AppState,
    consumer: Consumer<Invoices>,
}

pub fn router(app: AppState, consumer: Consumer<Invoices>) -> Router {
    Router::new()
        .route(LIST, get(list))
        .route("/invoicing/ui/invoices/{order_id}", get(show))
        .with_state(UiState {
            app,
            consumer: consumer.clone(),
        })
        .merge(consumer::ui::router(consumer, PREFIX, Section::Invoicing))
}

impl From<Error> for HtmlError {
    fn from(e: Error) -> HtmlError {
        match e {
            Error::NotFound(detail) => {
                HtmlError::new(StatusCode::NOT_FOUND, Section::Invoicing, detail)
            }
            other => HtmlError::internal(Section::Invoicing, &other),
        }
    }
}

async fn list(
    State(state): State<UiState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, HtmlError> {
    let page = ui::list_page(page, Section::Invoicing)?;
    let invoices = store::list(&state.app.db, page.before, page.limit).await?;
    let report = consumer::ui::report(&state.consumer, Section::Invoicing).await?;
    let body = html! {
        h1 { "Invoices" }
        @if invoices.is_empty() {
            p.notice { "No invoices yet: they appear once the consumer has read an order from the feed." }
        } @else {
            div.scroll {
                table {
                    thead { tr { th { "Order" } th { "Customer" } th.num { "Total" } th { "Status" } th { "Ordered" } } }
                    tbody {
                        @for i in &invoices {
                            tr {
                                td { a href={ "/invoicing/ui/invoices/" (i.order_id) } { "Invoice #" (i.order_id) } }
                                td { (i.customer.firstname) " " (i.customer.name) }
                                td.num { (ui::money(i.total_cents)) }
                                td { (ui::status(i.status.as_str())) }
                                td { (ui::time(&i.ordered_at)) }
                            }
                        }
                    }
                }
            }
            (ui::older_link(LIST, invoices.len(), page.limit, invoices.last().map(|i| i.order_id)))
        }
        (consumer::ui::panel(&report, PREFIX))
    };
    Ok(ui::page(Section::Invoicing, "Invoices", body))
}

async fn show(
    State(state): State<UiState>,
    Path(order_id): Path<i64>,
) -> Result<Response, HtmlError> {
    let invoice = store::get(&state.app.db, order_id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "There is no invoice for order {order_id} (yet: press \"Poll now\" on the invoices page)."
        ))
    })?;
    Ok(ui::page(
        Section::Invoicing,
        &format!("Invoice {order_id}"),
        invoice_page(&invoice),
    ))
}

fn invoice_page(i: &Invoice) -> Markup {
    html! {
        h1 { "Invoice for order #" (i.order_id) " " (ui::status(i.status.as_str())) }
        dl {
            dt { "Customer" }
            dd { (i.customer.firstname) " " (i.customer.name) " (" (i.customer.email) ")" }
            dt { "Billing address" }
            dd { (address(&i.billing_address)) }
            dt { "Ordered" }
            dd { (ui::time(&i.ordered_at)) }
            dt { "Order version" }
            dd { (i.version) }
        }
        h2 { "Lines" }
        div.scroll {
            table {
                thead { tr { th { "Item" } th.num { "Unit price" } th.num { "Count" } th.num { "Line total" } } }
                tbody {
                    @for l in &i.lines {
                        tr {
                            td { (l.name) }
                            td.num { (ui::money(l.price_cents)) }
                            td.num { (l.count) }
                            td.num { (ui::money(l.line_total_cents)) }
                        }
                    }
                }
                tfoot { tr { th colspan="3" { "Total" } td.num { strong { (ui::money(i.total_cents)) } } } }
            }
        }
        div.actions {
            a href={ "/order/ui/orders/" (i.order_id) } { "Order" }
            a href={ "/invoicing/invoices/" (i.order_id) } { "JSON" }
            a href=(LIST) { "All invoices" }
        }
    }
}

fn address(a: &Address) -> Markup {
    html! { (a.street) ", " (a.zip) " " (a.city) }
}
