//! The shipping service: keeps a shipment (what to send where, no prices) for every order by
//! consuming the order feed.
//!
//! # Layout
//! - this file: the service ([`Shipping`]) and the shipment kept per order ([`Shipments`]).
//! - [`model`]: shipping's own reading of the order JSON, and the shipment it serves.
//! - `pages`: the HTML of the shipment list and of one shipment.
//!
//! Polling, checkpoints, parked entries, routes, the consumer panel and configuration come
//! from [`common::service`] and [`common::consumer`].

pub mod model;
mod pages;

use common::clock::{from_micros, rfc3339};
use common::consumer::copies::{column, variant, variant_name, Stored, Tables, Value};
use common::db::Migrations;
use common::service::{About, CopyService, Copying, Service};

pub use common::service::{Config, Settings};

use model::{Address, OrderDoc, Recipient, Shipment, ShipmentLine};

/// Shipments as versioned copies of orders.
pub struct Shipments;

/// The shipping service's [`common::service::Domain`].
pub type Shipping = Copying<Shipments>;
pub type ShippingService = Service<Shipping>;

impl CopyService for Shipments {
    fn migrations() -> Migrations {
        common::migrations!()
    }

    const ABOUT: About = About {
        name: "shipping",
        bind: "127.0.0.1:8083",
        feed: "http://127.0.0.1:8081/order/feed",
        about: "Feedline shipping: shipments kept from the order feed",
    };
}

impl common::consumer::copies::Versioned for Shipments {
    type Details = OrderDoc;
    type Copy = Shipment;

    #[rustfmt::skip]
    const TABLES: Tables = Tables {
        copies: "shipments", lines: "shipment_lines", key: "order_id",
        noun: "shipment", key_noun: "order",
        // After `order_id, version` (`order_id, line_no`), as `row` (`lines`) gives them.
        columns: &["status", "customer_id", "name", "firstname", "street", "zip", "city",
                   "ordered_at_us"],
        line_columns: &["item_id", "name", "count"],
    };

    #[rustfmt::skip]
    fn row(o: &OrderDoc) -> Vec<Value<'_>> {
        let to = &o.shipping_address;
        vec![variant_name(&o.status), o.customer.customer_id.into(), (&o.customer.name).into(),
             (&o.customer.firstname).into(), (&to.street).into(), (&to.zip).into(),
             (&to.city).into(), o.created.timestamp_micros().into()]
    }

    fn lines(o: &OrderDoc) -> Vec<Vec<Value<'_>>> {
        let mut lines = Vec::with_capacity(o.lines.len());
        for l in &o.lines {
            lines.push(vec![
                l.item.item_id.into(),
                (&l.item.name).into(),
                l.count.into(),
            ]);
        }
        lines
    }

    fn read(stored: &Stored) -> Result<Shipment, sqlx::Error> {
        let lines = stored.lines.iter().map(|l| {
            Ok(ShipmentLine {
                item_id: column(l, "item_id")?,
                name: column(l, "name")?,
                count: column(l, "count")?,
            })
        });
        let r = &stored.row;
        Ok(Shipment {
            order_id: column(r, "order_id")?,
            version: column(r, "version")?,
            status: variant(r, "status")?,
            customer: Recipient {
                customer_id: column(r, "customer_id")?,
                firstname: column(r, "firstname")?,
                name: column(r, "name")?,
            },
            shipping_address: Address {
                street: column(r, "street")?,
                city: column(r, "city")?,
                zip: column(r, "zip")?,
            },
            lines: lines.collect::<Result<_, sqlx::Error>>()?,
            ordered_at: rfc3339(from_micros(column(r, "ordered_at_us")?)),
        })
    }
}
