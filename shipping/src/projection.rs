//! Keeping shipments from order events: the consumer supplies the transaction, we the SQL.

use common::consumer::{Outcome, Projection};
use sqlx::AnyConnection;

use crate::model::OrderDoc;

/// Shipments as a projection of the order feed.
pub struct Shipments;

impl Projection for Shipments {
    type Details = OrderDoc;

    fn check(&self, order: &OrderDoc) -> Result<(), String> {
        order.check()
    }

    async fn apply(&self, conn: &mut AnyConnection, o: &OrderDoc) -> Result<Outcome, sqlx::Error> {
        let current: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM shipments WHERE order_id = $1")
                .bind(o.id)
                .fetch_optional(&mut *conn)
                .await?;
        // An older (or the same) version never overwrites what we have.
        match current {
            Some((v,)) if v >= o.version => return Ok(Outcome::Stale),
            Some(_) => {
                sqlx::query("DELETE FROM shipment_lines WHERE order_id = $1")
                    .bind(o.id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM shipments WHERE order_id = $1")
                    .bind(o.id)
                    .execute(&mut *conn)
                    .await?;
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO shipments (order_id, version, status, customer_id, name, firstname, \
             street, zip, city, ordered_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(o.id)
        .bind(o.version)
        .bind(o.status.as_str())
        .bind(o.customer.customer_id)
        .bind(&o.customer.name)
        .bind(&o.customer.firstname)
        .bind(&o.shipping_address.street)
        .bind(&o.shipping_address.zip)
        .bind(&o.shipping_address.city)
        .bind(o.created.timestamp_micros())
        .execute(&mut *conn)
        .await?;
        for (no, line) in o.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO shipment_lines (order_id, line_no, item_id, name, count) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(o.id)
            .bind(no as i64)
            .bind(line.item.item_id)
            .bind(&line.item.name)
            .bind(line.count)
            .execute(&mut *conn)
            .await?;
        }
        Ok(Outcome::Applied)
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM shipment_lines")
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM shipments")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    fn describe(o: &OrderDoc) -> String {
        format!("order {} version {} {}", o.id, o.version, o.status.as_str())
    }
}
