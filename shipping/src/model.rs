//! shipping's view of an order (read from the order service's JSON) and of a shipment.

use chrono::{DateTime, Utc};
use common::consumer::copies::Document;
use serde::{Deserialize, Serialize};

/// The order details as shipping reads them: no prices, the shipping address.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDoc {
    pub id: i64,
    pub version: i64,
    pub status: OrderStatus,
    pub customer: Recipient,
    pub shipping_address: Address,
    pub lines: Vec<LineDoc>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Placed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub customer_id: i64,
    pub name: String,
    pub firstname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub zip: String,
    pub city: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LineDoc {
    pub count: i64,
    pub item: ItemDoc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDoc {
    pub item_id: i64,
    pub name: String,
}

impl Document for OrderDoc {
    fn identity(&self) -> (i64, i64) {
        (self.id, self.version)
    }

    fn check(&self) -> Result<(), String> {
        if self.lines.is_empty() {
            return Err(format!("order {} has no lines", self.id));
        }
        if let Some(line) = self.lines.iter().find(|l| l.count < 1) {
            return Err(format!("order {}: line with count {}", self.id, line.count));
        }
        Ok(())
    }
}

/// A shipment as `GET /shipping/shipments/{orderId}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub order_id: i64,
    pub version: i64,
    pub status: OrderStatus,
    pub customer: Recipient,
    pub shipping_address: Address,
    pub lines: Vec<ShipmentLine>,
    pub ordered_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentLine {
    pub item_id: i64,
    pub name: String,
    pub count: i64,
}
