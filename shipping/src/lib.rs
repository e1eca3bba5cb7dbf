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

use common::consumer::copies::{col, variant_name, Tables, Value};
use common::db::Migrations;
use common::service::{About, CopyService, Copying, Service};

pub use common::service::{Config, Settings};

use model::{OrderDoc, Shipment};

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

    // Where each shipment field is kept; `row` and `lines` give the values in this order.
    #[rustfmt::skip]
    const TABLES: Tables = Tables {
        copies: "shipments", lines: "shipment_lines", key: col("order_id", "orderId"),
        noun: "shipment", key_noun: "order",
        columns: &[
            col("status", "status"), col("customer_id", "customer.customerId"),
            col("name", "customer.name"), col("firstname", "customer.firstname"),
            col("street", "shippingAddress.street"), col("zip", "shippingAddress.zip"),
            col("city", "shippingAddress.city"), col("ordered_at_us", "orderedAt"),
        ],
        line_columns: &[col("item_id", "itemId"), col("name", "name"), col("count", "count")],
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
}
