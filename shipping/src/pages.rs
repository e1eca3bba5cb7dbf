//! The shipment pages: the list's columns (where to, not what it cost) and one shipment.

use common::ui::{self, copies::Pages};
use maud::{html, Markup};

use crate::model::{Address, OrderStatus, Shipment};
use crate::Shipments;

fn to(a: &Address) -> Markup {
    html! { (a.street) ", " (a.zip) " " (a.city) }
}

impl Pages for Shipments {
    const PLURAL: &'static str = "Shipments";
    const SINGULAR: &'static str = "Shipment";

    fn key_of(s: &Shipment) -> i64 {
        s.order_id
    }

    fn head() -> Markup {
        html! { th { "Customer" } th { "Ship to" } th { "Status" } th { "Ordered" } }
    }

    fn cells(s: &Shipment) -> Markup {
        let cancelled = s.status == OrderStatus::Cancelled;
        html! {
            td { (s.customer.firstname) " " (s.customer.name) }
            td { (to(&s.shipping_address)) }
            td { (ui::status(if cancelled { "cancelled" } else { "placed" })) }
            td { (ui::time(&s.ordered_at)) }
        }
    }

    fn detail(s: &Shipment) -> Markup {
        let cancelled = s.status == OrderStatus::Cancelled;
        html! {
            h1 { "Shipment for order #" (s.order_id) " " (ui::status(if cancelled { "cancelled" } else { "placed" })) }
            @if cancelled {
                p.notice { "The order was cancelled: do not ship." }
            }
            dl {
                dt { "Customer" } dd { (s.customer.firstname) " " (s.customer.name) }
                dt { "Shipping address" } dd { (to(&s.shipping_address)) }
                dt { "Ordered" } dd { (ui::time(&s.ordered_at)) }
                dt { "Order version" } dd { (s.version) }
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
                a href="/shipping/ui/" { "All shipments" }
            }
        }
    }
}
