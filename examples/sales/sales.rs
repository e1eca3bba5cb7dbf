//! Sales per item from order events: pieces sold and revenue, placed orders counted once,
//! cancelled ones taken back out. Not a copy of anything, so it implements
//! [`Projection`] itself instead of declaring versioned copies.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::consumer::{Outcome, Projection};
use common::db::Migrations;
use common::service::{Domain, ServiceState};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

/// The order as this consumer reads it: only what sales need.
#[derive(Debug, Deserialize)]
pub struct Order {
    pub id: i64,
    pub version: i64,
    pub status: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Deserialize)]
pub struct Line {
    pub count: i64,
    pub item: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub item_id: i64,
    pub name: String,
    pub price_cents: i64,
}

/// One item's sales, as `GET /sales/items` shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSales {
    pub item_id: i64,
    pub name: String,
    pub pieces: i64,
    pub revenue_cents: i64,
}

#[derive(Default)]
pub struct Sales;

impl Projection for Sales {
    type Details = Order;

    fn check(&self, o: &Order) -> Result<(), String> {
        let ok = o.id > 0
            && o.version > 0
            && matches!(o.status.as_str(), "placed" | "cancelled")
            && o.lines
                .iter()
                .all(|l| l.count > 0 && l.item.price_cents >= 0);
        ok.then_some(())
            .ok_or_else(|| format!("order {} cannot be counted", o.id))
    }

    /// Per order: count its lines while it is placed, take them back when it is cancelled.
    /// `counted_orders` says what is counted now, so an older or repeated version is stale.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        batch: &[&Order],
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for o in batch {
            let seen: Option<(i64, i64)> =
                sqlx::query_as("SELECT version, counted FROM counted_orders WHERE order_id = $1")
                    .bind(o.id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let (version, counted) = seen.unwrap_or((0, 0));
            if o.version <= version {
                outcomes.push(Outcome::Stale);
                continue;
            }
            let counts = i64::from(o.status == "placed");
            for l in &o.lines {
                let pieces = (counts - counted) * l.count;
                sqlx::query(
                    "INSERT INTO item_sales (item_id, name, pieces, revenue_cents) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (item_id) DO UPDATE SET \
                     pieces = item_sales.pieces + excluded.pieces, \
                     revenue_cents = item_sales.revenue_cents + excluded.revenue_cents",
                )
                .bind(l.item.item_id)
                .bind(&l.item.name)
                .bind(pieces)
                .bind(pieces.saturating_mul(l.item.price_cents))
                .execute(&mut *conn)
                .await?;
            }
            sqlx::query(
                "INSERT INTO counted_orders (order_id, version, counted) VALUES ($1, $2, $3) \
                 ON CONFLICT (order_id) DO UPDATE SET version = excluded.version, \
                 counted = excluded.counted",
            )
            .bind(o.id)
            .bind(o.version)
            .bind(counts)
            .execute(&mut *conn)
            .await?;
            outcomes.push(Outcome::Applied);
        }
        Ok(outcomes)
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for table in ["item_sales", "counted_orders"] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    fn describe(o: &Order) -> String {
        format!("order {} version {} {}", o.id, o.version, o.status)
    }
}

impl Domain for Sales {
    type Projection = Sales;
    const NAME: &'static str = "sales";
    const ABOUT: &'static str = "Sales per item, kept from the order feed (an example)";
    const DEFAULT_BIND: &'static str = "127.0.0.1:8084";
    const DEFAULT_FEED: &'static str = "http://127.0.0.1:8081/order/feed";

    /// One folder: the SQL is the same on both backends.
    fn migrations() -> Migrations {
        Migrations {
            sqlite: sqlx::migrate!("./examples/sales/migrations"),
            postgres: sqlx::migrate!("./examples/sales/migrations"),
        }
    }

    fn routes() -> Router<ServiceState<Sales>> {
        Router::new().route("/items", get(items))
    }
}

/// `GET /sales/items`: best sellers first.
async fn items(
    State(s): State<ServiceState<Sales>>,
) -> Result<Json<Vec<ItemSales>>, common::Error> {
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT item_id, name, pieces, revenue_cents FROM item_sales \
         ORDER BY revenue_cents DESC, item_id",
    )
    .fetch_all(s.db.pool())
    .await?;
    let items = rows
        .into_iter()
        .map(|(item_id, name, pieces, revenue_cents)| ItemSales {
            item_id,
            name,
            pieces,
            revenue_cents,
        });
    Ok(Json(items.collect()))
}
