//! Keeping invoices from order events: the consumer supplies the transaction, we the SQL.

use common::consumer::{Outcome, Projection};
use std::collections::{HashMap, HashSet};

use common::db::{list_placeholders, rows_per_statement, values_placeholders};
use sqlx::AnyConnection;

use crate::model::OrderDoc;

/// Invoices as a projection of the order feed.
pub struct Invoices;

impl Projection for Invoices {
    type Details = OrderDoc;

    fn check(&self, order: &OrderDoc) -> Result<(), String> {
        order.check()
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        batch: &[&OrderDoc],
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        // Within the batch only the highest version of each order is written; the others are
        // stale already.
        let mut newest: HashMap<i64, usize> = HashMap::new();
        for (i, o) in batch.iter().enumerate() {
            let best = newest.entry(o.id).or_insert(i);
            if batch[*best].version < o.version {
                *best = i;
            }
        }
        let mut winners: Vec<usize> = newest.into_values().collect();
        winners.sort_unstable();
        // An older (or the same) version never overwrites what we have.
        let mut applied = HashSet::new();
        for chunk in winners.chunks(rows_per_statement(12)) {
            let sql = format!(
                "INSERT INTO invoices (order_id, version, status, customer_id, name, firstname, email, street, zip, city, total_cents, ordered_at_us) VALUES {} \
                 ON CONFLICT (order_id) DO UPDATE SET version = excluded.version, status = excluded.status, customer_id = excluded.customer_id, name = excluded.name, firstname = excluded.firstname, email = excluded.email, street = excluded.street, zip = excluded.zip, city = excluded.city, total_cents = excluded.total_cents, ordered_at_us = excluded.ordered_at_us \
                 WHERE invoices.version < excluded.version RETURNING order_id",
                values_placeholders(chunk.len(), 12)
            );
            let mut q = sqlx::query_as::<_, (i64,)>(&sql);
            for &i in chunk {
                let o = batch[i];
                q = q
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
                    .bind(o.created.timestamp_micros());
            }
            applied.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|(id,)| id));
        }
        let written: Vec<&OrderDoc> = winners
            .iter()
            .map(|&i| batch[i])
            .filter(|o| applied.contains(&o.id))
            .collect();
        for chunk in written.chunks(rows_per_statement(1)) {
            let sql = format!(
                "DELETE FROM invoice_lines WHERE order_id IN ({})",
                list_placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for o in chunk {
                q = q.bind(o.id);
            }
            q.execute(&mut *conn).await?;
        }
        let all_lines: Vec<(&OrderDoc, usize)> = written
            .iter()
            .flat_map(|o| (0..o.lines.len()).map(move |no| (*o, no)))
            .collect();
        for chunk in all_lines.chunks(rows_per_statement(7)) {
            let sql = format!(
                "INSERT INTO invoice_lines (order_id, line_no, item_id, name, price_cents, count, line_total_cents) VALUES {}",
                values_placeholders(chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for &(o, no) in chunk {
                let line = &o.lines[no];
                q = q
                    .bind(o.id)
                    .bind(no as i64)
                    .bind(line.item.item_id)
                    .bind(&line.item.name)
                    .bind(line.item.price_cents)
                    .bind(line.count)
                    // `check` proved this product does not overflow.
                    .bind(line.count * line.item.price_cents);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, o)| {
                if applied.contains(&o.id) && winners.binary_search(&i).is_ok() {
                    Outcome::Applied
                } else {
                    Outcome::Stale
                }
            })
            .collect())
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
