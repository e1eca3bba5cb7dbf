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

use common::clock::{from_micros, rfc3339};
use common::consumer::copies::{column, variant, variant_name, Stored, Tables, Value, Versioned};
use common::db::Migrations;
use common::service::{About, CopyService, Copying, Service};

pub use common::service::{Config, Settings};

use model::{Address, Customer, Invoice, InvoiceLine, OrderDoc};

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

    // The columns after `order_id` and `version` (and after `order_id, line_no` for lines), in
    // the order `row` and `lines` give their values.
    #[rustfmt::skip]
    const TABLES: Tables = Tables {
        copies: "invoices", key: "order_id", noun: "invoice", key_noun: "order",
        columns: &["status", "customer_id", "name", "firstname", "email", "street", "zip", "city",
                   "total_cents", "ordered_at_us"],
        lines: "invoice_lines",
        line_columns: &["item_id", "name", "price_cents", "count", "line_total_cents"],
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

    fn read(s: &Stored) -> Result<Invoice, sqlx::Error> {
        let r = &s.row;
        let mut lines = Vec::with_capacity(s.lines.len());
        for l in &s.lines {
            lines.push(InvoiceLine {
                item_id: column(l, "item_id")?,
                name: column(l, "name")?,
                price_cents: column(l, "price_cents")?,
                count: column(l, "count")?,
                line_total_cents: column(l, "line_total_cents")?,
            });
        }
        Ok(Invoice {
            order_id: column(r, "order_id")?,
            version: column(r, "version")?,
            status: variant(r, "status")?,
            customer: Customer {
                customer_id: column(r, "customer_id")?,
                name: column(r, "name")?,
                firstname: column(r, "firstname")?,
                email: column(r, "email")?,
            },
            billing_address: Address {
                street: column(r, "street")?,
                zip: column(r, "zip")?,
                city: column(r, "city")?,
            },
            lines,
            total_cents: column(r, "total_cents")?,
            ordered_at: rfc3339(from_micros(column(r, "ordered_at_us")?)),
        })
    }
}
