//! Bulk seeding for benchmarks: many orders and their feed entries in large transactions,
//! far faster than placing them over HTTP, written by the same statements as placements
//! (multi-row, at most 256 parameters each) and appended through the publisher (its lock, its
//! ids, its head).

use crate::model::{LineRequest, NewOrder, Order};
use crate::{service, store, AppState, Error};

/// Orders per transaction.
const BATCH: usize = 200;

/// Appends `count` placed orders (customer 1, one piece of item 1) and their feed entries.
/// Run it while no other `order` process writes to the same database.
pub async fn seed(state: &AppState, count: u64) -> Result<u64, Error> {
    let new = NewOrder {
        customer_id: 1,
        lines: vec![LineRequest {
            item_id: 1,
            count: 1,
        }],
        shipping_address: None,
        billing_address: None,
    };
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(BATCH as u64) as usize;
        let now_us = state.clock.now().timestamp_micros();
        let template = service::new_order(&state.catalog, &new, now_us)?;
        let mut tx = state.db.begin_write().await?;
        // From the orders' own sequence on Postgres, so placements after seeding do not collide.
        let ids = store::allocate_ids(tx.conn(), state.db.backend(), n).await?;
        let orders: Vec<Order> = ids
            .into_iter()
            .map(|id| Order {
                id,
                ..template.clone()
            })
            .collect();
        store::insert_all(tx.conn(), &orders, now_us).await?;
        let entries: Vec<_> = orders.iter().map(service::entry).collect();
        state.feed.append(tx, &entries).await?.commit().await?;
        done += n as u64;
    }
    // What the archiver would have stored while these orders were placed one by one, had
    // each representation been read.
    if state.feed.settings().store_archives {
        state
            .feed
            .store_archives(&common::feed::Representation::ALL)
            .await?;
    }
    Ok(done)
}
