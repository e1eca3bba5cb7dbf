//! Placing and cancelling orders. Each change and its feed entry commit in one transaction.

use common::clock::{from_micros, rfc3339};
use common::feed::NewEntry;
use sha2::{Digest, Sha256};

use crate::model::{
    IdempotencyKey, NewOrder, Order, OrderCustomer, OrderLine, PlaceOrderRequest, Status,
};
use crate::{catalog, store, AppState, Error};

/// What a placement did.
#[derive(Debug)]
pub enum Placed {
    /// A new order was written.
    Created(Order),
    /// The idempotency key was used before with the same body: nothing was written.
    Replayed(Order),
}

/// Places an order. With an idempotency key, a retry of the same request returns the order the
/// first one created, and a different request under the same key is refused.
pub async fn place(
    state: &AppState,
    request: PlaceOrderRequest,
    key: Option<IdempotencyKey>,
) -> Result<Placed, Error> {
    let canonical = serde_json::to_vec(&request).map_err(|e| Error::BadRequest(e.to_string()))?;
    let hash = format!("{:x}", Sha256::digest(canonical));
    let new = NewOrder::parse(request)?;
    match try_place(state, &new, key.as_ref(), &hash).await {
        // On Postgres two requests with one new key can race; the loser finds the winner's row.
        Err(Error::Db(e)) if key.is_some() && is_unique_violation(&e) => {
            try_place(state, &new, key.as_ref(), &hash).await
        }
        other => other,
    }
}

async fn try_place(
    state: &AppState,
    new: &NewOrder,
    key: Option<&IdempotencyKey>,
    hash: &str,
) -> Result<Placed, Error> {
    let mut tx = state.db.begin_write().await?;
    if let Some(key) = key {
        if let Some((stored_hash, order_id)) =
            store::idempotency_key(tx.conn(), key.as_str()).await?
        {
            if stored_hash != hash {
                return Err(Error::invalid(format!(
                    "Idempotency-Key {:?} was already used with a different request",
                    key.as_str()
                )));
            }
            let order = store::by_id(tx.conn(), order_id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("order {order_id} not found")))?;
            return Ok(Placed::Replayed(order));
        }
    }
    let customer = catalog::customer_by_id(tx.conn(), new.customer_id)
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown customer {}", new.customer_id)))?;
    let mut lines = Vec::with_capacity(new.lines.len());
    for (i, l) in new.lines.iter().enumerate() {
        let item = catalog::item_by_id(tx.conn(), l.item_id)
            .await?
            .ok_or_else(|| Error::invalid(format!("lines[{i}]: unknown item {}", l.item_id)))?;
        lines.push(OrderLine {
            count: l.count,
            item,
        });
    }
    let total_cents = lines.iter().map(|l| l.count * l.item.price_cents).sum();
    let now = state.clock.now();
    let now_us = now.timestamp_micros();
    let mut order = Order {
        id: 0,
        version: 1,
        status: Status::Placed,
        customer: OrderCustomer {
            customer_id: customer.customer_id,
            name: customer.name,
            firstname: customer.firstname,
            email: customer.email,
        },
        shipping_address: new
            .shipping_address
            .clone()
            .unwrap_or_else(|| customer.address.clone()),
        billing_address: new.billing_address.clone().unwrap_or(customer.address),
        lines,
        total_cents,
        created: rfc3339(from_micros(now_us)),
        updated: rfc3339(from_micros(now_us)),
    };
    order.id = store::insert(tx.conn(), &order, now_us).await?;
    if let Some(key) = key {
        store::remember_key(tx.conn(), key.as_str(), hash, order.id, now_us).await?;
    }
    let appended = state.feed.append(&mut tx, &entry(&order)).await?;
    state.feed.commit(tx, appended).await?;
    tracing::info!(order_id = order.id, total_cents, "order placed");
    Ok(Placed::Created(order))
}

/// Cancels an order. Cancelling a cancelled order changes nothing and returns it as it is.
pub async fn cancel(state: &AppState, id: i64) -> Result<Order, Error> {
    let mut tx = state.db.begin_write().await?;
    let mut order = store::by_id(tx.conn(), id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("order {id} not found")))?;
    if order.status == Status::Cancelled {
        return Ok(order);
    }
    let now_us = state.clock.now().timestamp_micros();
    store::set_status(tx.conn(), id, Status::Cancelled, now_us).await?;
    order.status = Status::Cancelled;
    order.version += 1;
    order.updated = rfc3339(from_micros(now_us));
    let appended = state.feed.append(&mut tx, &entry(&order)).await?;
    state.feed.commit(tx, appended).await?;
    tracing::info!(order_id = id, version = order.version, "order cancelled");
    Ok(order)
}

/// The feed entry announcing `order` in its current version.
fn entry(order: &Order) -> NewEntry {
    let (category, verb) = match order.status {
        Status::Placed => ("order-placed", "placed"),
        Status::Cancelled => ("order-cancelled", "cancelled"),
    };
    let pieces: i64 = order.lines.iter().map(|l| l.count).sum();
    NewEntry {
        entry_id: format!("urn:feedline:order:{}:v{}", order.id, order.version),
        title: format!("Order {} {verb}", order.id),
        summary: format!(
            "Order {} version {} {verb} by customer {}: {pieces} item(s), total {} cents",
            order.id, order.version, order.customer.customer_id, order.total_cents
        ),
        category: category.to_owned(),
        link: format!("/order/orders/{}", order.id),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
