//! Bulk seeding for benchmarks: many orders and their feed entries, written in large
//! transactions with multi-row inserts, far faster than placing them over HTTP.

use common::db::Db;

use crate::Error;

/// Orders per transaction (each is one row in `orders`, one in `order_lines`, one in
/// `feed_entries`; 200 rows of at most 16 values stay well under every backend's bind limit).
const BATCH: usize = 200;

/// Appends `count` placed orders (customer 1, one line of item 1) and their feed entries.
/// Run it while no `order` service writes to the same database.
pub async fn seed(db: &Db, count: u64) -> Result<u64, Error> {
    let (customer, email, street, zip, city): (String, String, String, String, String) =
        sqlx::query_as("SELECT name, email, street, zip, city FROM customers WHERE id = 1")
            .fetch_one(db.pool())
            .await?;
    let (item, price): (String, i64) =
        sqlx::query_as("SELECT name, price_cents FROM items WHERE id = 1")
            .fetch_one(db.pool())
            .await?;
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(BATCH as u64) as usize;
        let mut tx = db.begin_write().await?;
        // From the orders' own sequence on Postgres, so placements after seeding do not collide.
        let ids = crate::store::allocate_ids(tx.conn(), db.backend(), n).await?;
        let (next_pos, last_us): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(MAX(position), 0) + 1, COALESCE(MAX(updated_us), 0) FROM feed_entries",
        )
        .fetch_one(tx.conn())
        .await?;
        let now_us = chrono::Utc::now().timestamp_micros().max(last_us);
        let rows = |cols: usize| -> String {
            (0..n)
                .map(|r| {
                    let ps: Vec<String> =
                        (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
                    format!("({})", ps.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!(
            "INSERT INTO orders (id, version, status, customer_id, customer_name, customer_firstname, \
             customer_email, ship_street, ship_zip, ship_city, bill_street, bill_zip, bill_city, \
             total_cents, created_us, updated_us) VALUES {}",
            rows(16)
        );
        let mut q = sqlx::query(&sql);
        for &id in &ids {
            q = q
                .bind(id)
                .bind(1i64)
                .bind("placed")
                .bind(1i64)
                .bind(&customer)
                .bind("Seeded")
                .bind(&email)
                .bind(&street)
                .bind(&zip)
                .bind(&city)
                .bind(&street)
                .bind(&zip)
                .bind(&city)
                .bind(price)
                .bind(now_us)
                .bind(now_us);
        }
        q.execute(tx.conn()).await?;
        let sql = format!(
            "INSERT INTO order_lines (order_id, line_no, item_id, item_name, price_cents, count) VALUES {}",
            rows(6)
        );
        let mut q = sqlx::query(&sql);
        for &id in &ids {
            q = q
                .bind(id)
                .bind(0i64)
                .bind(1i64)
                .bind(&item)
                .bind(price)
                .bind(1i64);
        }
        q.execute(tx.conn()).await?;
        let sql = format!(
            "INSERT INTO feed_entries (position, entry_id, title, summary, category, link, updated_us) VALUES {}",
            rows(7)
        );
        let mut q = sqlx::query(&sql);
        for (i, &id) in (0..).zip(&ids) {
            q = q
                .bind(next_pos + i)
                .bind(format!("urn:feedline:order:{id}:v1"))
                .bind(format!("Order {id} placed"))
                .bind(format!(
                    "Order {id} version 1 placed by customer 1: 1 item(s), total {price} cents"
                ))
                .bind("order-placed")
                .bind(format!("/order/orders/{id}"))
                .bind(now_us);
        }
        q.execute(tx.conn()).await?;
        tx.commit().await?;
        done += n as u64;
    }
    Ok(done)
}
