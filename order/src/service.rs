//! Placing and cancelling orders. Each change and its feed entry commit in one transaction.

use common::clock::{from_micros, rfc3339};
use common::feed::NewEntry;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::model::{
    IdempotencyKey, NewOrder, Order, OrderCustomer, OrderLine, PlaceOrderRequest, Status,
};
use crate::placer::Placement;
use crate::{store, AppState, Error};

/// What a placement did.
#[derive(Debug)]
pub enum Placed {
    /// A new order was written.
    Created(Order),
    /// The idempotency key was used before with the same body: nothing was written.
    Replayed(Order),
}

/// Places an order. With an idempotency key, a retry of the same request returns the order the
/// first one created, and a different request under the same key is refused. The write itself
/// happens in the group commit of [`crate::placer`].
pub async fn place(
    state: &AppState,
    request: PlaceOrderRequest,
    key: Option<IdempotencyKey>,
) -> Result<Placed, Error> {
    let canonical = serde_json::to_vec(&request).map_err(|e| Error::BadRequest(e.to_string()))?;
    let hash = format!("{:x}", Sha256::digest(canonical));
    let new = NewOrder::parse(request)?;
    state.placer.place(Placement { new, key, hash }).await
}

/// The order `new` describes, priced from the catalog, with id 0 until it is inserted.
pub(crate) fn new_order(catalog: &Catalog, new: &NewOrder, now_us: i64) -> Result<Order, Error> {
    let customer = catalog
        .customer(new.customer_id)
        .ok_or_else(|| Error::invalid(format!("unknown customer {}", new.customer_id)))?;
    let mut lines = Vec::with_capacity(new.lines.len());
    for (i, l) in new.lines.iter().enumerate() {
        let item = catalog
            .item(l.item_id)
            .ok_or_else(|| Error::invalid(format!("lines[{i}]: unknown item {}", l.item_id)))?;
        lines.push(OrderLine {
            count: l.count,
            item: item.clone(),
        });
    }
    let total_cents = lines.iter().map(|l| l.count * l.item.price_cents).sum();
    let now = rfc3339(from_micros(now_us));
    Ok(Order {
        id: 0,
        version: 1,
        status: Status::Placed,
        customer: OrderCustomer {
            customer_id: customer.customer_id,
            name: customer.name.clone(),
            firstname: customer.firstname.clone(),
            email: customer.email.clone(),
        },
        shipping_address: new
            .shipping_address
            .clone()
            .unwrap_or_else(|| customer.address.clone()),
        billing_address: new
            .billing_address
            .clone()
            .unwrap_or_else(|| customer.address.clone()),
        lines,
        total_cents,
        created: now.clone(),
        updated: now,
    })
}

/// Cancels an order. Cancelling a cancelled order changes nothing and returns it as it is, so
/// any number of concurrent cancels all get the same answer and the feed one cancellation.
pub async fn cancel(state: &AppState, id: i64) -> Result<Order, Error> {
    change(state, id, |order| {
        Ok((order.status != Status::Cancelled).then_some(Status::Cancelled))
    })
    .await
}

/// The one path for every change of an existing order's state. In one transaction: lock the
/// order's row, read it as it is now, let `decide` pick the new status (`None`: nothing to
/// change, the order is returned as it is), write it with the next version, and append the
/// event. Two changes of the same order can therefore never both read the same version: the
/// second waits for the first to commit and decides on what it wrote.
pub async fn change(
    state: &AppState,
    id: i64,
    decide: impl FnOnce(&Order) -> Result<Option<Status>, Error>,
) -> Result<Order, Error> {
    let mut tx = state.db.begin_write().await?;
    if !store::lock_for_change(tx.conn(), state.db.backend(), id).await? {
        return Err(Error::NotFound(format!("order {id} not found")));
    }
    let mut order = store::by_id(tx.conn(), id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("order {id} not found")))?;
    let Some(status) = decide(&order)? else {
        return Ok(order);
    };
    let now_us = state.clock.now().timestamp_micros();
    store::set_status(tx.conn(), id, status, now_us).await?;
    order.status = status;
    order.version += 1;
    order.updated = rfc3339(from_micros(now_us));
    let entry = entry(&order);
    state.feed.append(tx, &[entry]).await?.commit().await?;
    tracing::info!(
        order_id = id,
        version = order.version,
        status = status.as_str(),
        "order changed"
    );
    Ok(order)
}

/// The feed entry announcing `order` in its current version.
pub(crate) fn entry(order: &Order) -> NewEntry {
    let (category, verb) = match order.status {
        Status::Placed => ("order-placed", "placed"),
        Status::Cancelled => ("order-cancelled", "cancelled"),
    };
    let pieces: i64 = order.lines.iter().map(|l| l.count).sum();
    let (id, version) = (order.id, order.version);
    NewEntry {
        title: format!("Order {id} {verb}"),
        summary: format!(
            "Order {id} version {version} {verb} by customer {}: {pieces} item(s), total {} cents",
            order.customer.customer_id, order.total_cents
        ),
        category: category.to_owned(),
        link: format!("/order/orders/{id}"),
        // The same document `GET /order/orders/{id}` answers with at this version.
        details: serde_json::to_string(order).ok(),
    }
}
