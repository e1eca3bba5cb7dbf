//! Keeping invoices from order events: the consumer supplies the transaction, we the SQL.

use common::consumer::{Outcome, Projection};
use sqlx::AnyConnection;

use crate::model::OrderDoc;

/// Invoices as a projection of the order feed.
pub struct Invoices;

impl Projection for Invoices {
    type Details = OrderDoc;

    fn check(&self, order: &OrderDoc) -> Result<(), String> {
        order.check()
    }

    async fn apply(&self, conn: &mut AnyConnection, o: &OrderDoc) -> Result<Outcome, sqlx::Error> {
        let current: Option<(i64,)> =
            sqlx::query_as("SELECT version FROM invoices WHERE order_id = $1")
                .bind(o.id)
                .fetch_optional(&mut *conn)
                .await?;
        // An older (or the same) version never overwrites what we have.
        match current {
            Some((v,)) if v >= o.version => return Ok(Outcome::Stale),
            Some(_) => {
                sqlx::query("DELETE FROM invoice_lines WHERE order_id = $1")
                    .bind(o.id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM invoices WHERE order_id = $1")
                    .bind(o.id)
                    .execute(&mut *conn)
                    .await?;
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO invoices (order_id, version, status, customer_id, name, firstname, email, \
             street, zip, city, total_cents, ordered_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(o.id)
        .bind(o.version)
        .bind(o.status.as_str())
        .bind(o.customer.customer_id)
        .bind(&o.customer.name)
        .bind(&o.customer.firstname)
        .bind(&o.customer.email)
        .bind(&o.billing_address.street)
        .bind(&o.billing_address.zip)
        .bind(&o.billing_address.city)
        .bind(o.total_cents)
        .bind(o.created.timestamp_micros())
        .execute(&mut *conn)
        .await?;
        for (no, line) in o.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_lines (order_id, line_no, item_id, name, price_cents, count, \
                 line_total_cents) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(o.id)
            .bind(no as i64)
            .bind(line.item.item_id)
            .bind(&line.item.name)
            .bind(line.item.price_cents)
            .bind(line.count)
            // `check` proved this product does not overflow.
            .bind(line.count * line.item.price_cents)
            .execute(&mut *conn)
            .await?;
        }
        Ok(Outcome::Applied)
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM invoice_lines")
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM invoices")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    fn describe(o: &OrderDoc) -> String {
        format!("order {} version {} {}", o.id, o.version, o.status.as_str())
    }
}
