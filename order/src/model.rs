//! The order domain: validated input and the order as the API shows it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Error;

/// Longest accepted address field or idempotency key.
const MAX_TEXT: usize = 200;
/// Most lines in one order.
pub const MAX_LINES: usize = 100;
/// Most pieces of one item in one line.
pub const MAX_COUNT: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: String,
    pub zip: String,
    pub city: String,
}

impl Address {
    fn validate(&self, field: &str) -> Result<(), Error> {
        for (name, value) in [
            ("street", &self.street),
            ("zip", &self.zip),
            ("city", &self.city),
        ] {
            if value.trim().is_empty() {
                return Err(Error::invalid(format!("{field}.{name} must not be empty")));
            }
            if value.len() > MAX_TEXT {
                return Err(Error::invalid(format!(
                    "{field}.{name} is longer than {MAX_TEXT} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// The body of `POST /order/orders` as received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub customer_id: i64,
    pub lines: Vec<LineRequest>,
    #[serde(default)]
    pub shipping_address: Option<Address>,
    #[serde(default)]
    pub billing_address: Option<Address>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineRequest {
    pub item_id: i64,
    pub count: i64,
}

/// A placement request that passed every check that needs no database.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer_id: i64,
    pub lines: Vec<LineRequest>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
}

impl NewOrder {
    pub fn parse(req: PlaceOrderRequest) -> Result<NewOrder, Error> {
        if req.lines.is_empty() {
            return Err(Error::invalid("lines must not be empty"));
        }
        if req.lines.len() > MAX_LINES {
            return Err(Error::invalid(format!(
                "at most {MAX_LINES} lines per order"
            )));
        }
        for (i, line) in req.lines.iter().enumerate() {
            if !(1..=MAX_COUNT).contains(&line.count) {
                return Err(Error::invalid(format!(
                    "lines[{i}].count must be between 1 and {MAX_COUNT}, got {}",
                    line.count
                )));
            }
        }
        if let Some(a) = &req.shipping_address {
            a.validate("shippingAddress")?;
        }
        if let Some(a) = &req.billing_address {
            a.validate("billingAddress")?;
        }
        Ok(NewOrder {
            customer_id: req.customer_id,
            lines: req.lines,
            shipping_address: req.shipping_address,
            billing_address: req.billing_address,
        })
    }
}

/// An `Idempotency-Key` header value: 1 to 200 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, Error> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_TEXT
            && raw.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        match std::str::from_utf8(raw) {
            Ok(s) if ok => Ok(IdempotencyKey(s.to_owned())),
            _ => Err(Error::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_TEXT} printable ASCII characters"
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Placed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "placed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status stored as `s`. Anything else is refused, never taken for `placed`: an
    /// order that cannot be read faithfully is not served (or published) at all.
    pub fn from_db(s: &str) -> Result<Status, crate::Error> {
        match s {
            "placed" => Ok(Status::Placed),
            "cancelled" => Ok(Status::Cancelled),
            other => Err(crate::Error::Corrupt(format!(
                "unknown order status {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub customer_id: i64,
    pub name: String,
    pub firstname: String,
    pub email: String,
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub item_id: i64,
    pub name: String,
    pub price_cents: i64,
}

/// The customer as embedded in an order (no address: the order has its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCustomer {
    pub customer_id: i64,
    pub name: String,
    pub firstname: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub count: i64,
    pub item: Item,
}

/// An order as `GET /order/orders/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: i64,
    pub version: i64,
    pub status: Status,
    pub customer: OrderCustomer,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub lines: Vec<OrderLine>,
    pub total_cents: i64,
    pub created: String,
    pub updated: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: Vec<(i64, i64)>) -> PlaceOrderRequest {
        PlaceOrderRequest {
            customer_id: 1,
            lines: lines
                .into_iter()
                .map(|(item_id, count)| LineRequest { item_id, count })
                .collect(),
            shipping_address: None,
            billing_address: None,
        }
    }

    #[test]
    fn an_order_needs_lines_with_positive_counts() {
        assert!(NewOrder::parse(request(vec![])).is_err());
        assert!(NewOrder::parse(request(vec![(1, 0)])).is_err());
        assert!(NewOrder::parse(request(vec![(1, MAX_COUNT + 1)])).is_err());
        assert!(NewOrder::parse(request(vec![(1, 1)])).is_ok());
    }

    #[test]
    fn blank_address_fields_are_refused() {
        let mut req = request(vec![(1, 1)]);
        req.billing_address = Some(Address {
            street: " ".into(),
            zip: "1".into(),
            city: "x".into(),
        });
        let err = NewOrder::parse(req).unwrap_err().to_string();
        assert!(err.contains("billingAddress.street"), "{err}");
    }

    #[test]
    fn idempotency_keys_are_printable_and_bounded() {
        assert!(IdempotencyKey::parse(b"abc-123").is_ok());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(&[b'a'; 201]).is_err());
        assert!(IdempotencyKey::parse(b"a\x01").is_err());
    }

    #[test]
    fn a_stored_status_this_code_does_not_know_is_refused_not_taken_for_placed() {
        assert_eq!(Status::from_db("placed").unwrap(), Status::Placed);
        assert_eq!(Status::from_db("cancelled").unwrap(), Status::Cancelled);
        let err = Status::from_db("shipped").unwrap_err().to_string();
        assert!(err.contains("unknown order status \"shipped\""), "{err}");
    }
}
