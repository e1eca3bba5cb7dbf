//! The order service's pages as markup; no I/O here.

use common::ui::{self, Section};
use maud::{html, Markup};

use super::form::{self, FieldErrors, OrderForm};
use crate::catalog::Catalog;
use crate::model::{Address, Order, Status, MAX_COUNT};

pub const LIST: &str = "/order/ui/";
pub const NEW: &str = "/order/ui/orders/new";

pub fn order_url(id: i64) -> String {
    format!("/order/ui/orders/{id}")
}

pub fn list(orders: &[Order], limit: i64) -> Markup {
    html! {
        h1 { "Orders" }
        div.actions {
            a href=(NEW) { "Place an order" }
            a href="/order/feed" { "Raw feed (Atom)" }
            a href=(super::readers::READERS) { "Who reads this feed" }
            a href="/order/orders" { "JSON" }
        }
        @if orders.is_empty() {
            p.notice { "No orders yet. " a href=(NEW) { "Place the first one." } }
        } @else {
            div.scroll {
                table {
                    thead { tr { th { "Order" } th { "Customer" } th.num { "Total" } th { "Status" } th { "Placed" } } }
                    tbody {
                        @for o in orders {
                            tr {
                                td { a href=(order_url(o.id)) { "#" (o.id) } }
                                td { (o.customer.firstname) " " (o.customer.name) }
                                td.num { (ui::money(o.total_cents)) }
                                td { (ui::status(o.status.as_str())) }
                                td { (ui::time(&o.created)) }
                            }
                        }
                    }
                }
            }
            (ui::older_link(LIST, orders.len(), limit, orders.last().map(|o| o.id)))
        }
    }
}

/// The form, filled with `form` and showing `errors` next to their fields.
pub fn new_order(catalog: &Catalog, form: &OrderForm, errors: &FieldErrors) -> Markup {
    html! {
        h1 { "Place an order" }
        @if !errors.is_empty() {
            p.error role="alert" { "The order was not placed: please correct the fields marked below." }
        }
        (field_error(errors, form::FORM))
        form method="post" action="/order/ui/orders" novalidate {
            input type="hidden" name=(form::KEY) value=(form.key);
            fieldset {
                legend { "Customer" }
                label for="customerId" { "Customer" }
                (field_error(errors, form::CUSTOMER))
                select id="customerId" name=(form::CUSTOMER) required
                    aria-invalid=[errors.contains_key(form::CUSTOMER).then_some("true")] {
                    option value="" { "Choose…" }
                    @for c in catalog.customers() {
                        @let id = c.customer_id.to_string();
                        option value=(id) selected[form.customer == id] {
                            (c.firstname) " " (c.name) " (" (c.email) ")"
                        }
                    }
                }
            }
            fieldset {
                legend { "Items" }
                (field_error(errors, form::LINES))
                div.scroll {
                    table {
                        thead { tr { th { "Item" } th.num { "Price" } th { "Count" } } }
                        tbody {
                            @for item in catalog.items() {
                                @let field = form::count_field(item.item_id);
                                tr {
                                    td { label for=(field) { (item.name) } }
                                    td.num { (ui::money(item.price_cents)) }
                                    td {
                                        input type="number" id=(field) name=(field) min="0" max=(MAX_COUNT)
                                            inputmode="numeric"
                                            value=(form.counts.get(&item.item_id).map(String::as_str).unwrap_or("0"))
                                            aria-invalid=[errors.contains_key(&field).then_some("true")];
                                        (field_error(errors, &field))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (address_fields("shipping", "Shipping address", &form.shipping, errors))
            (address_fields("billing", "Billing address", &form.billing, errors))
            div.actions { button type="submit" { "Place order" } a href=(LIST) { "Cancel" } }
        }
    }
}

fn address_fields(
    which: &str,
    legend: &str,
    value: &form::AddressForm,
    errors: &FieldErrors,
) -> Markup {
    let parts = [
        ("street", "Street", &value.street, "street-address"),
        ("zip", "Zip", &value.zip, "postal-code"),
        ("city", "City", &value.city, "address-level2"),
    ];
    html! {
        fieldset {
            legend { (legend) " (optional)" }
            p.hint { "Leave empty to use the customer's address." }
            @for (part, label, text, autocomplete) in parts {
                @let field = form::address_field(which, part);
                label for=(field) { (label) }
                (field_error(errors, &field))
                input type="text" id=(field) name=(field) value=(text) maxlength="200"
                    autocomplete={ (which) " " (autocomplete) }
                    aria-invalid=[errors.contains_key(&field).then_some("true")];
            }
        }
    }
}

fn field_error(errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(message) = errors.get(field) {
            p.error id={ (field) "-error" } { (message) }
        }
    }
}

pub fn order(o: &Order) -> Markup {
    html! {
        h1 { "Order #" (o.id) " " (ui::status(o.status.as_str())) }
        dl {
            dt { "Customer" }
            dd { (o.customer.firstname) " " (o.customer.name) " (" (o.customer.email) ")" }
            dt { "Shipping address" }
            dd { (address(&o.shipping_address)) }
            dt { "Billing address" }
            dd { (address(&o.billing_address)) }
            dt { "Placed" }
            dd { (ui::time(&o.created)) }
            dt { "Last change" }
            dd { (ui::time(&o.updated)) " (version " (o.version) ")" }
        }
        h2 { "Lines" }
        div.scroll {
            table {
                thead { tr { th { "Item" } th.num { "Count" } th.num { "Price" } th.num { "Line total" } } }
                tbody {
                    @for l in &o.lines {
                        tr {
                            td { (l.item.name) }
                            td.num { (l.count) }
                            td.num { (ui::money(l.item.price_cents)) }
                            td.num { (ui::money(l.count * l.item.price_cents)) }
                        }
                    }
                }
                tfoot { tr { th colspan="3" { "Total" } td.num { strong { (ui::money(o.total_cents)) } } } }
            }
        }
        div.actions {
            @if o.status == Status::Placed {
                form.inline method="post" action={ "/order/ui/orders/" (o.id) "/cancel" } {
                    button.danger type="submit" { "Cancel order" }
                }
            }
            a href={ "/invoicing/ui/invoices/" (o.id) } { "Invoice" }
            a href={ "/shipping/ui/shipments/" (o.id) } { "Shipment" }
            a href={ "/order/orders/" (o.id) } { "JSON" }
            a href=(LIST) { "All orders" }
        }
    }
}

pub fn address(a: &Address) -> Markup {
    html! { (a.street) ", " (a.zip) " " (a.city) }
}

/// The shell around any of the above.
pub fn page(title: &str, body: Markup) -> axum::response::Response {
    ui::page(Section::Order, title, body)
}
