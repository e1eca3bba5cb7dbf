//! SQL for orders: rows in, [`Order`]s out.

use common::clock::{from_micros, rfc3339};
use std::collections::HashMap;

use common::db::{
    list_placeholders, rows_per_statement, values_placeholders, values_placeholders_from, Backend,
    Binds, Db,
};
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

/// Postgres: a text expression for an append statement's `returning` that draws `$param`
/// new order ids, comma-separated (`NULL` for none); read them with [`drawn_ids`].
pub fn draw_ids_sql(param: usize) -> String {
    format!(
        "(SELECT string_agg(id::text, ',') FROM (SELECT nextval(pg_get_serial_sequence('orders', \
         'id')) AS id FROM generate_series(1, ${param})) AS drawn)"
    )
}

/// The ids a [`draw_ids_sql`] expression drew, ascending.
pub fn drawn_ids(text: Option<&str>) -> Result<Vec<i64>, Error> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut ids = text
        .split(',')
        .map(|id| id.parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Corrupt(format!("ids drawn ahead {text:?}: {e}")))?;
    ids.sort_unstable();
    Ok(ids)
}

const ORDER_PARAMS: usize = 16;
const LINE_COLUMNS: &str = "order_id, line_no, item_id, item_name, price_cents, count";
const LINE_PARAMS: usize = 6;
const KEY_COLUMNS: &str = "key, request_hash, order_id, created_us";
const KEY_PARAMS: usize = 4;

/// A new idempotency key: `(key, request hash, order id)`.
pub type NewKey<'a> = (&'a str, &'a str, i64);

/// Inserts new orders (version 1, ids already allocated) and their lines, a few statements
/// for any number of orders.
pub async fn insert_all(
    conn: &mut AnyConnection,
    orders: &[Order],
    created_us: i64,
) -> Result<(), Error> {
    let backend = Backend::of(conn);
    for chunk in orders.chunks(rows_per_statement(ORDER_PARAMS)) {
        let sql = format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES {}",
            values_placeholders(backend, chunk.len(), ORDER_PARAMS)
        );
        let mut query = sqlx::query(&sql);
        for o in chunk {
            query = bind_order(query, o, created_us);
        }
        query.execute(&mut *conn).await?;
    }
    let lines: Vec<(i64, i64, &OrderLine)> = lines_of(orders).collect();
    for chunk in lines.chunks(rows_per_statement(LINE_PARAMS)) {
        let sql = format!(
            "INSERT INTO order_lines ({LINE_COLUMNS}) VALUES {}",
            values_placeholders(backend, chunk.len(), LINE_PARAMS)
        );
        let mut query = sqlx::query(&sql);
        for line in chunk {
            query = bind_line(query, *line);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Postgres: the inserts of [`insert_all`] and [`remember_keys`] as data-modifying common
/// table expressions (`orders_new AS (INSERT …), …, `) for one statement with the feed append
/// (see `common::feed::Publisher::append_alone_sql`), and how many parameters they take;
/// bind them with [`bind_inserts`].
pub fn inserts_as_ctes(orders: &[Order], keys: &[NewKey]) -> (String, usize, Vec<&'static str>) {
    let lines = lines_of(orders).count();
    let mut sql = String::new();
    let mut params = 0;
    let mut names = Vec::new();
    let mut cte = |name: &'static str, table: &str, columns: &str, rows: usize, cols: usize| {
        if rows > 0 {
            names.push(name);
            sql.push_str(&format!(
                "{name} AS (INSERT INTO {table} ({columns}) VALUES {} RETURNING 1), ",
                values_placeholders_from(Backend::Postgres, params + 1, rows, cols)
            ));
            params += rows * cols;
        }
    };
    cte(
        "orders_new",
        "orders",
        ORDER_COLUMNS,
        orders.len(),
        ORDER_PARAMS,
    );
    cte("lines_new", "order_lines", LINE_COLUMNS, lines, LINE_PARAMS);
    cte(
        "keys_new",
        "idempotency_keys",
        KEY_COLUMNS,
        keys.len(),
        KEY_PARAMS,
    );
    (sql, params, names)
}

/// Binds the parameters of [`inserts_as_ctes`].
pub fn bind_inserts<'q, Q: Binds<'q>>(
    mut query: Q,
    orders: &'q [Order],
    keys: &'q [NewKey<'q>],
    now_us: i64,
) -> Q {
    for o in orders {
        query = bind_order(query, o, now_us);
    }
    for line in lines_of(orders) {
        query = bind_line(query, line);
    }
    for key in keys {
        query = bind_key(query, key, now_us);
    }
    query
}

/// Every line of `orders`: `(order id, line number, line)`.
fn lines_of(orders: &[Order]) -> impl Iterator<Item = (i64, i64, &OrderLine)> {
    orders
        .iter()
        .flat_map(|o| (0..).zip(&o.lines).map(move |(no, l)| (o.id, no, l)))
}

fn bind_order<'q, Q: Binds<'q>>(query: Q, o: &'q Order, created_us: i64) -> Q {
    query
        .push(o.id)
        .push(o.version)
        .push(o.status.as_str())
        .push(o.customer.customer_id)
        .push(o.customer.name.as_str())
        .push(o.customer.firstname.as_str())
        .push(o.customer.email.as_str())
        .push(o.shipping_address.street.as_str())
        .push(o.shipping_address.zip.as_str())
        .push(o.shipping_address.city.as_str())
        .push(o.billing_address.street.as_str())
        .push(o.billing_address.zip.as_str())
        .push(o.billing_address.city.as_str())
        .push(o.total_cents)
        .push(created_us)
        .push(created_us)
}

fn bind_line<'q, Q: Binds<'q>>(query: Q, (order_id, no, l): (i64, i64, &'q OrderLine)) -> Q {
    query
        .push(order_id)
        .push(no)
        .push(l.item.item_id)
        .push(l.item.name.as_str())
        .push(l.item.price_cents)
        .push(l.count)
}

fn bind_key<'q, Q: Binds<'q>>(query: Q, (key, hash, order_id): &NewKey<'q>, now_us: i64) -> Q {
    query.push(*key).push(*hash).push(*order_id).push(now_us)
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
    keys: &[NewKey<'_>],
    now_us: i64,
) -> Result<(), Error> {
    let backend = Backend::of(conn);
    for chunk in keys.chunks(rows_per_statement(KEY_PARAMS)) {
        let sql = format!(
            "INSERT INTO idempotency_keys ({KEY_COLUMNS}) VALUES {}",
            values_placeholders(backend, chunk.len(), KEY_PARAMS)
        );
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = bind_key(query, key, now_us);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_drawn_by_a_statement_are_read_ascending() {
        assert_eq!(drawn_ids(None).unwrap(), Vec::<i64>::new());
        assert_eq!(drawn_ids(Some("12,10,11")).unwrap(), vec![10, 11, 12]);
        assert!(matches!(drawn_ids(Some("1,x")), Err(Error::Corrupt(_))));
        assert!(draw_ids_sql(7).contains("generate_series(1, $7)"));
    }
}
