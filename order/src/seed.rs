//! Bulk seeding for benchmarks: many orders and their feed entries, written in large
//! transactions with multi-row inserts, far faster than placing them over HTTP.

use common::db::Db;
use common::feed::Publisher;

use crate::model::Status;
use crate::Error;

/// Orders per transaction (each is one row in `orders`, one in `order_lines`, and one feed
/// entry appended through the publisher; 200 rows of at most 16 values stay well under every
/// backend's bind limit).
const BATCH: usize = 200;

/// Appends `count` placed orders (customer 1, one line of item 1) and their feed entries,
/// through `feed` (its lock, its ids, its head). Run it while no `order` service writes to the
/// same database.
pub async fn seed(db: &Db, feed: &Publisher, count: u64) -> Result<u64, Error> {
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
        let now_us = chrono::Utc::now().timestamp_micros();
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
        let entries: Vec<_> = ids
            .iter()
            .map(|&id| crate::service::entry_for(id, 1, Status::Placed, 1, 1, price))
            .collect();
        match feed.append_all(&mut tx, &entries).await? {
            Some(appended) => feed.commit(tx, appended).await?,
            None => tx.commit().await?,
        }
        done += n as u64;
    }
    Ok(done)
}
