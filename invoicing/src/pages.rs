//! The invoice pages: which columns the list shows, and an invoice's own page.

use common::ui::{self, copies::Pages};
use maud::{html, Markup};

use crate::model::{Invoice, OrderStatus};
use crate::Invoices;

fn status(s: OrderStatus) -> Markup {
    ui::status(if s == OrderStatus::Cancelled {
        "cancelled"
    } else {
        "placed"
    })
}

impl Pages for Invoices {
    const PLURAL: &'static str = "Invoices";
    const SINGULAR: &'static str = "Invoice";

    fn key_of(i: &Invoice) -> i64 {
        i.order_id
    }

    fn head() -> Markup {
        html! { th { "Customer" } th.num { "Total" } th { "Status" } th { "Ordered" } }
    }

    fn cells(i: &Invoice) -> Markup {
        html! {
            td { (i.customer.firstname) " " (i.customer.name) }
            td.num { (ui::money(i.total_cents)) }
            td { (status(i.status)) }
            td { (ui::time(&i.ordered_at)) }
        }
    }

    fn detail(i: &Invoice) -> Markup {
        let a = &i.billing_address;
        html! {
            h1 { "Invoice for order #" (i.order_id) " " (status(i.status)) }
            dl {
                dt { "Customer" }
                dd { (i.customer.firstname) " " (i.customer.name) " (" (i.customer.email) ")" }
                dt { "Billing address" }
                dd { (a.street) ", " (a.zip) " " (a.city) }
                dt { "Ordered" } dd { (ui::time(&i.ordered_at)) }
                dt { "Order version" } dd { (i.version) }
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
                a href="/invoicing/ui/" { "All invoices" }
            }
        }
    }
}
