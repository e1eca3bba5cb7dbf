//! SQL for orders: rows in, [`Order`]s out.

use common::clock::{from_micros, rfc3339};
use std::collections::HashMap;

use common::db::{list_placeholders, rows_per_statement, values_placeholders, Backend, Db};
use sqlx::AnyConnection;

use crate::model::{Address, Item, Order, OrderCustomer, OrderLine, Status};
use crate::Error;

const ORDER_COLUMNS: &str = "id, version, status, customer_id, customer_name, customer_firstname, \
     customer_email, ship_street, ship_zip, ship_city, bill_street, bill_zip, bill_city, \
     total_cents, created_us, updated_us";

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    version: i64,
    status: String,
    customer_id: i64,
    customer_name: String,
    customer_firstname: String,
    customer_email: String,
    ship_street: String,
    ship_zip: String,
    ship_city: String,
    bill_street: String,
    bill_zip: String,
    bill_city: String,
    total_cents: i64,
    created_us: i64,
    updated_us: i64,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: i64,
    item_id: i64,
    item_name: String,
    price_cents: i64,
    count: i64,
}

impl OrderRow {
    fn into_order(self, lines: Vec<OrderLine>) -> Result<Order, Error> {
        Ok(Order {
            id: self.id,
            version: self.version,
            status: Status::from_db(&self.status)?,
            customer: OrderCustomer {
                customer_id: self.customer_id,
                name: self.customer_name,
                firstname: self.customer_firstname,
                email: self.customer_email,
            },
            shipping_address: Address {
                street: self.ship_street,
                zip: self.ship_zip,
                city: self.ship_city,
            },
            billing_address: Address {
                street: self.bill_street,
                zip: self.bill_zip,
                city: self.bill_city,
            },
            lines,
            total_cents: self.total_cents,
            created: rfc3339(from_micros(self.created_us)),
            updated: rfc3339(from_micros(self.updated_us)),
        })
    }
}

fn line(r: LineRow) -> OrderLine {
    OrderLine {
        count: r.count,
        item: Item {
            item_id: r.item_id,
            name: r.item_name,
            price_cents: r.price_cents,
        },
    }
}

/// `n` new order ids, ascending. Postgres draws them from the table's sequence (other
/// instances may draw concurrently); on SQLite this process is the only writer and holds the
/// write lock, so the ids after the largest are free.
pub async fn allocate_ids(
    conn: &mut AnyConnection,
    backend: Backend,
    n: usize,
) -> Result<Vec<i64>, Error> {
    if n == 0 {
        return Ok(Vec::new());
    }
    match backend {
        Backend::Postgres => {
            let rows: Vec<(i64,)> = sqlx::query_as(
                "SELECT nextval(pg_get_serial_sequence('orders', 'id')) \
                 FROM generate_series(1, $1)",
            )
            .bind(n as i64)
            .fetch_all(&mut *conn)
            .await?;
            let mut ids: Vec<i64> = rows.into_iter().map(|(id,)| id).collect();
            ids.sort_unstable();
            Ok(ids)
        }
        Backend::Sqlite => {
            let (max,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM orders")
                .fetch_one(&mut *conn)
                .await?;
            Ok((max + 1..=max + n as i64).collect())
        }
    }
}

/// Inserts new orders (version 1, ids already allocated) and their lines, a few statements
/// for any number of orders.
pub async fn insert_all(
    conn: &mut AnyConnection,
    orders: &[Order],
    created_us: i64,
) -> Result<(), Error> {
    let backend = Backend::of(conn);
    for chunk in orders.chunks(rows_per_statement(16)) {
        let sql = format!(
            "INSERT INTO orders (id, version, status, customer_id, customer_name, \
             customer_firstname, customer_email, ship_street, ship_zip, ship_city, bill_street, \
             bill_zip, bill_city, total_cents, created_us, updated_us) VALUES {}",
            values_placeholders(backend, chunk.len(), 16)
        );
        let mut query = sqlx::query(&sql);
        for o in chunk {
            query = query
                .bind(o.id)
                .bind(o.version)
                .bind(o.status.as_str())
                .bind(o.customer.customer_id)
                .bind(&o.customer.name)
                .bind(&o.customer.firstname)
                .bind(&o.customer.email)
                .bind(&o.shipping_address.street)
                .bind(&o.shipping_address.zip)
                .bind(&o.shipping_address.city)
                .bind(&o.billing_address.street)
                .bind(&o.billing_address.zip)
                .bind(&o.billing_address.city)
                .bind(o.total_cents)
                .bind(created_us)
                .bind(created_us);
        }
        query.execute(&mut *conn).await?;
    }
    let lines: Vec<(i64, i64, &OrderLine)> = orders
        .iter()
        .flat_map(|o| (0..).zip(&o.lines).map(move |(no, l)| (o.id, no, l)))
        .collect();
    for chunk in lines.chunks(rows_per_statement(6)) {
        let sql = format!(
            "INSERT INTO order_lines (order_id, line_no, item_id, item_name, price_cents, count) \
             VALUES {}",
            values_placeholders(backend, chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (order_id, no, l) in chunk {
            query = query
                .bind(*order_id)
                .bind(*no)
                .bind(l.item.item_id)
                .bind(&l.item.name)
                .bind(l.item.price_cents)
                .bind(l.count);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Locks order `id` for a state change until the transaction ends; false when there is no
/// such order. Postgres takes the row lock; on SQLite the write transaction already holds the
/// database's single writer lock, which serializes every change.
pub async fn lock_for_change(
    conn: &mut AnyConnection,
    backend: Backend,
    id: i64,
) -> Result<bool, Error> {
    let sql = match backend {
        Backend::Postgres => "SELECT id FROM orders WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT id FROM orders WHERE id = $1",
    };
    let row: Option<(i64,)> = sqlx::query_as(sql).bind(id).fetch_optional(conn).await?;
    Ok(row.is_some())
}

/// Sets a new status and bumps the version.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: i64,
    status: Status,
    updated_us: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE orders SET status = $1, version = version + 1, updated_us = $2 WHERE id = $3",
    )
    .bind(status.as_str())
    .bind(updated_us)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<Order>, Error> {
    // One query, one row per line: the details endpoint is what every consumer calls once per
    // entry, and on SQLite each query is a round trip to sqlx's connection thread. Every order
    // has at least one line (checked when placed), so the inner join loses none.
    let rows: Vec<OrderWithLine> = sqlx::query_as(
        "SELECT o.id, o.version, o.status, o.customer_id, o.customer_name, o.customer_firstname, \
         o.customer_email, o.ship_street, o.ship_zip, o.ship_city, o.bill_street, o.bill_zip, \
         o.bill_city, o.total_cents, o.created_us, o.updated_us, \
         l.order_id, l.item_id, l.item_name, l.price_cents, l.count \
         FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.id = $1 ORDER BY l.line_no",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else {
        return Ok(None);
    };
    let mut lines = vec![line(first.line)];
    lines.extend(rows.map(|r| line(r.line)));
    Ok(Some(first.order.into_order(lines)?))
}

#[derive(sqlx::FromRow)]
struct OrderWithLine {
    #[sqlx(flatten)]
    order: OrderRow,
    #[sqlx(flatten)]
    line: LineRow,
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Order>, Error> {
    let mut conn = db.pool().acquire().await?;
    by_id(&mut conn, id).await
}

/// Orders with ids below `before`, newest first, with their lines (two queries in all).
pub async fn list(db: &Db, before: i64, limit: i64) -> Result<Vec<Order>, Error> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id < $1 ORDER BY id DESC LIMIT $2");
    let rows: Vec<OrderRow> = sqlx::query_as(&sql)
        .bind(before)
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    let (Some(max), Some(min)) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id)) else {
        return Ok(Vec::new());
    };
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, item_id, item_name, price_cents, count FROM order_lines \
         WHERE order_id >= $1 AND order_id <= $2 ORDER BY order_id DESC, line_no",
    )
    .bind(min)
    .bind(max)
    .fetch_all(db.pool())
    .await?;
    let mut lines = lines.into_iter().peekable();
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        let mut own = Vec::new();
        // Lines of ids between the page's orders would belong to none of them; skip those.
        while lines.peek().is_some_and(|l| l.order_id > row.id) {
            lines.next();
        }
        while let Some(l) = lines.next_if(|l| l.order_id == row.id) {
            own.push(line(l));
        }
        orders.push(row.into_order(own)?);
    }
    Ok(orders)
}

/// The stored request hash and order of each of `keys` that was used before.
pub async fn idempotency_keys(
    conn: &mut AnyConnection,
    keys: &[&str],
) -> Result<HashMap<String, (String, i64)>, Error> {
    let backend = Backend::of(conn);
    let mut found = HashMap::new();
    for chunk in keys.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT key, request_hash, order_id FROM idempotency_keys WHERE key IN ({})",
            list_placeholders(backend, chunk.len())
        );
        let mut query = sqlx::query_as(&sql);
        for key in chunk {
            query = query.bind(*key);
        }
        let rows: Vec<(String, String, i64)> = query.fetch_all(&mut *conn).await?;
        found.extend(rows.into_iter().map(|(k, h, id)| (k, (h, id))));
    }
    Ok(found)
}

/// Remembers `(key, request hash, order id)` for each new key.
pub async fn remember_keys(
    conn: &mut AnyConnection,
    keys: &[(&str, &str, i64)],
    now_us: i64,
) -> Result<(), Error> {
    let backend = Backend::of(conn);
    for chunk in keys.chunks(rows_per_statement(4)) {
        let sql = format!(
            "INSERT INTO idempotency_keys (key, request_hash, order_id, created_us) VALUES {}",
            values_placeholders(backend, chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (key, hash, order_id) in chunk {
            query = query.bind(*key).bind(*hash).bind(*order_id).bind(now_us);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
