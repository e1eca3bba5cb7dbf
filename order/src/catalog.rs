//! Customers and items: the seeded catalog orders refer to.

use common::db::Db;

use crate::model::{Address, Customer, Item};
use crate::Error;

/// (id, name, firstname, email, street, zip, city)
const CUSTOMERS: &[(i64, &str, &str, &str, &str, &str, &str)] = &[
    (
        1,
        "Wolff",
        "Eberhard",
        "eberhard.wolff@example.com",
        "Unter den Linden 1",
        "10117",
        "Berlin",
    ),
    (
        2,
        "Lovelace",
        "Ada",
        "ada@example.com",
        "12 St James's Square",
        "SW1Y 4JH",
        "London",
    ),
    (
        3,
        "Hopper",
        "Grace",
        "grace@example.com",
        "1 Navy Way",
        "20350",
        "Arlington",
    ),
    (
        4,
        "Turing",
        "Alan",
        "alan@example.com",
        "Bletchley Park",
        "MK3 6EB",
        "Milton Keynes",
    ),
    (
        5,
        "Hamilton",
        "Margaret",
        "margaret@example.com",
        "2101 NASA Parkway",
        "77058",
        "Houston",
    ),
];

/// (id, name, price in cents)
const ITEMS: &[(i64, &str, i64)] = &[
    (1, "iPod", 9_900),
    (2, "iPod nano", 4_900),
    (3, "iPod touch", 19_900),
    (4, "Headphones", 2_900),
    (5, "Charger", 1_490),
    (6, "Case", 990),
];

/// Inserts the catalog rows that are missing; rows already there are left as they are, so
/// seeding is idempotent across restarts.
pub async fn seed(db: &Db) -> Result<(), Error> {
    let mut tx = db.begin_write().await?;
    for (id, name, firstname, email, street, zip, city) in CUSTOMERS {
        sqlx::query(
            "INSERT INTO customers (id, name, firstname, email, street, zip, city) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(firstname)
        .bind(email)
        .bind(street)
        .bind(zip)
        .bind(city)
        .execute(tx.conn())
        .await?;
    }
    for (id, name, price) in ITEMS {
        sqlx::query(
            "INSERT INTO items (id, name, price_cents) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(price)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

type CustomerRow = (i64, String, String, String, String, String, String);

fn customer(r: CustomerRow) -> Customer {
    Customer {
        customer_id: r.0,
        name: r.1,
        firstname: r.2,
        email: r.3,
        address: Address {
            street: r.4,
            zip: r.5,
            city: r.6,
        },
    }
}

/// The whole catalog in memory. It is seeded at start and never changes while the service
/// runs, so placing an order validates against it without a query.
#[derive(Debug, Default)]
pub struct Catalog {
    customers: std::collections::BTreeMap<i64, Customer>,
    items: std::collections::BTreeMap<i64, Item>,
}

impl Catalog {
    pub async fn load(db: &Db) -> Result<Catalog, Error> {
        let customers = customers(db, i64::MAX, i64::MAX).await?;
        let items = items(db, i64::MAX, i64::MAX).await?;
        Ok(Catalog {
            customers: customers.into_iter().map(|c| (c.customer_id, c)).collect(),
            items: items.into_iter().map(|i| (i.item_id, i)).collect(),
        })
    }

    pub fn customer(&self, id: i64) -> Option<&Customer> {
        self.customers.get(&id)
    }

    pub fn item(&self, id: i64) -> Option<&Item> {
        self.items.get(&id)
    }

    /// Every customer, by id.
    pub fn customers(&self) -> impl Iterator<Item = &Customer> {
        self.customers.values()
    }

    /// Every item, by id.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }
}

/// Customers with ids below `before`, highest id first.
pub async fn customers(db: &Db, before: i64, limit: i64) -> Result<Vec<Customer>, Error> {
    let rows: Vec<CustomerRow> = sqlx::query_as(
        "SELECT id, name, firstname, email, street, zip, city FROM customers \
         WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(customer).collect())
}

/// Items with ids below `before`, highest id first.
pub async fn items(db: &Db, before: i64, limit: i64) -> Result<Vec<Item>, Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, name, price_cents FROM items WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(item_id, name, price_cents)| Item {
            item_id,
            name,
            price_cents,
        })
        .collect())
}
