//! The invoicing service: keeps an invoice for every order by consuming the order feed.
//!
//! # Layout
//! - this file: the service ([`Invoicing`]) and how an order becomes an invoice ([`Invoices`]:
//!   tables, columns, reading back).
//! - [`model`]: invoicing's own reading of the order JSON, and the invoice it serves.
//! - `pages`: the HTML of the invoice list and of one invoice.
//!
//! Everything else (polling, checkpoints, parked entries, the routes, the consumer panel,
//! configuration) comes from [`common::service`] and [`common::consumer`].

pub mod model;
mod pages;

use common::consumer::copies::{col, variant_name, Tables, Value, Versioned};
use common::db::Migrations;
use common::service::{About, CopyService, Copying, Service};

pub use common::service::{Config, Settings};

use model::{Invoice, OrderDoc};

/// Invoices as versioned copies of orders.
pub struct Invoices;

/// The invoicing service's [`common::service::Domain`].
pub type Invoicing = Copying<Invoices>;
pub type InvoicingService = Service<Invoicing>;

impl CopyService for Invoices {
    const ABOUT: About = About {
        name: "invoicing",
        about: "Feedline invoicing: invoices kept from the order feed",
        bind: "127.0.0.1:8082",
        feed: "http://127.0.0.1:8081/order/feed",
    };

    fn migrations() -> Migrations {
        common::migrations!()
    }
}

impl Versioned for Invoices {
    type Details = OrderDoc;
    type Copy = Invoice;

    // Each column with the invoice field it holds; `row` and `lines` give values in this order.
    #[rustfmt::skip]
    const TABLES: Tables = Tables {
        copies: "invoices", key: col("order_id", "orderId"), noun: "invoice", key_noun: "order",
        columns: &[
            col("status", "status"), col("customer_id", "customer.customerId"),
            col("name", "customer.name"), col("firstname", "customer.firstname"),
            col("email", "customer.email"), col("street", "billingAddress.street"),
            col("zip", "billingAddress.zip"), col("city", "billingAddress.city"),
            col("total_cents", "totalCents"), col("ordered_at_us", "orderedAt"),
        ],
        lines: "invoice_lines",
        line_columns: &[
            col("item_id", "itemId"), col("name", "name"), col("price_cents", "priceCents"),
            col("count", "count"), col("line_total_cents", "lineTotalCents"),
        ],
    };

    #[rustfmt::skip]
    fn row(o: &OrderDoc) -> Vec<Value<'_>> {
        let (c, a) = (&o.customer, &o.billing_address);
        vec![variant_name(&o.status), c.customer_id.into(), (&c.name).into(),
             (&c.firstname).into(), (&c.email).into(), (&a.street).into(), (&a.zip).into(),
             (&a.city).into(), o.total_cents.into(), o.created.timestamp_micros().into()]
    }

    #[rustfmt::skip]
    fn lines(o: &OrderDoc) -> Vec<Vec<Value<'_>>> {
        // `check` proved the products do not overflow.
        o.lines.iter().map(|l| vec![l.item.item_id.into(), (&l.item.name).into(),
            l.item.price_cents.into(), l.count.into(), (l.count * l.item.price_cents).into()])
            .collect()
    }
}
