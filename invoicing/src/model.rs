//! invoicing's view of an order (read from the order service's JSON) and of an invoice.

use chrono::{DateTime, Utc};
use common::consumer::copies::Document;
use serde::{Deserialize, Serialize};

/// The order details as invoicing reads them: only the fields it needs; others are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDoc {
    pub id: i64,
    pub version: i64,
    pub status: OrderStatus,
    pub customer: Customer,
    pub billing_address: Address,
    pub lines: Vec<LineDoc>,
    pub total_cents: i64,
    pub created: DateTime<Utc>,
}

/// Stored and shown by its serde name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Placed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub customer_id: i64,
    pub name: String,
    pub firstname: String,
    pub email: String,
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
    pub price_cents: i64,
}

impl Document for OrderDoc {
    fn identity(&self) -> (i64, i64) {
        (self.id, self.version)
    }

    fn check(&self) -> Result<(), String> {
        if self.lines.is_empty() {
            return Err(format!("order {} has no lines", self.id));
        }
        let mut total: i64 = 0;
        for line in &self.lines {
            if line.count < 1 || line.item.price_cents < 0 {
                return Err(format!(
                    "order {}: line with count {} and price {}",
                    self.id, line.count, line.item.price_cents
                ));
            }
            total = line
                .count
                .checked_mul(line.item.price_cents)
                .and_then(|t| total.checked_add(t))
                .ok_or_else(|| format!("order {}: line totals overflow", self.id))?;
        }
        if total != self.total_cents {
            return Err(format!(
                "order {}: total {} does not match its lines ({total})",
                self.id, self.total_cents
            ));
        }
        Ok(())
    }
}

/// An invoice as `GET /invoicing/invoices/{orderId}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    pub order_id: i64,
    pub version: i64,
    pub status: OrderStatus,
    pub customer: Customer,
    pub billing_address: Address,
    pub lines: Vec<InvoiceLine>,
    pub total_cents: i64,
    pub ordered_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    pub item_id: i64,
    pub name: String,
    pub price_cents: i64,
    pub count: i64,
    pub line_total_cents: i64,
}
