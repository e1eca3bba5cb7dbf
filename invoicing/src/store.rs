//! Reading invoices for the API.

use common::clock::{from_micros, rfc3339};
use common::db::Db;

use crate::model::{Address, CustomerDoc, Invoice, InvoiceLine, OrderStatus};
use crate::Error;

type InvoiceRow = (
    i64,
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
);
type LineRow = (i64, i64, String, i64, i64, i64);

const COLUMNS: &str = "order_id, version, status, customer_id, name, firstname, email, street, \
                       zip, city, total_cents, ordered_at_us";

fn invoice(r: InvoiceRow, lines: Vec<InvoiceLine>) -> Invoice {
    Invoice {
        order_id: r.0,
        version: r.1,
        status: OrderStatus::from_db(&r.2),
        customer: CustomerDoc {
            customer_id: r.3,
            name: r.4,
            firstname: r.5,
            email: r.6,
        },
        billing_address: Address {
            street: r.7,
            zip: r.8,
            city: r.9,
        },
        lines,
        total_cents: r.10,
        ordered_at: rfc3339(from_micros(r.11)),
    }
}

fn line(r: LineRow) -> InvoiceLine {
    InvoiceLine {
        item_id: r.1,
        name: r.2,
        price_cents: r.3,
        count: r.4,
        line_total_cents: r.5,
    }
}

/// Invoices with order ids below `before`, newest first.
pub async fn list(db: &Db, before: i64, limit: i64) -> Result<Vec<Invoice>, Error> {
    let rows: Vec<InvoiceRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE order_id < $1 ORDER BY order_id DESC LIMIT $2"
    ))
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let (Some(max), Some(min)) = (rows.first().map(|r| r.0), rows.last().map(|r| r.0)) else {
        return Ok(Vec::new());
    };
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, item_id, name, price_cents, count, line_total_cents FROM invoice_lines \
         WHERE order_id >= $1 AND order_id <= $2 ORDER BY order_id DESC, line_no",
    )
    .bind(min)
    .bind(max)
    .fetch_all(db.pool())
    .await?;
    let mut lines = lines.into_iter().peekable();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        while lines.peek().is_some_and(|l| l.0 > row.0) {
            lines.next();
        }
        let mut own = Vec::new();
        while let Some(l) = lines.next_if(|l| l.0 == row.0) {
            own.push(line(l));
        }
        out.push(invoice(row, own));
    }
    Ok(out)
}

pub async fn get(db: &Db, order_id: i64) -> Result<Option<Invoice>, Error> {
    let row: Option<InvoiceRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, item_id, name, price_cents, count, line_total_cents FROM invoice_lines \
         WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await?;
    Ok(Some(invoice(row, lines.into_iter().map(line).collect())))
}
