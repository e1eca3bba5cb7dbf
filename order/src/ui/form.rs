//! The "place an order" form: what the browser posts, kept as text so it can be shown again,
//! and its checks, each error attached to the field it is about.

use std::collections::BTreeMap;

use crate::model::{Address, LineRequest, PlaceOrderRequest, MAX_COUNT};

/// Longest text accepted in one address field (as the JSON API).
const MAX_TEXT: usize = 200;

/// Form field names, shared by the parser and the page.
pub const CUSTOMER: &str = "customerId";
pub const LINES: &str = "lines";
pub const KEY: &str = "idempotencyKey";
/// Errors that belong to no single field.
pub const FORM: &str = "form";

/// The field holding the count of item `item_id`.
pub fn count_field(item_id: i64) -> String {
    format!("count-{item_id}")
}

/// The field holding `part` (`street`, `zip`, `city`) of address `which` (`shipping`,
/// `billing`).
pub fn address_field(which: &str, part: &str) -> String {
    format!("{which}-{part}")
}

/// The form as posted. Unknown fields are ignored, as browsers send the submit button too.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrderForm {
    pub customer: String,
    /// Item id → the count as typed.
    pub counts: BTreeMap<i64, String>,
    pub shipping: AddressForm,
    pub billing: AddressForm,
    /// Made when the form is shown: a second submit of the same form (a double click, a
    /// reload after a lost response) returns the first order instead of placing another.
    pub key: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddressForm {
    pub street: String,
    pub zip: String,
    pub city: String,
}

/// Field name → what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

impl OrderForm {
    /// An empty form with a fresh idempotency key.
    pub fn blank() -> OrderForm {
        OrderForm {
            key: format!("form-{:032x}", rand::random::<u128>()),
            ..OrderForm::default()
        }
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> OrderForm {
        let mut form = OrderForm::default();
        for (name, value) in pairs {
            match name.as_str() {
                CUSTOMER => form.customer = value,
                KEY => form.key = value,
                "shipping-street" => form.shipping.street = value,
                "shipping-zip" => form.shipping.zip = value,
                "shipping-city" => form.shipping.city = value,
                "billing-street" => form.billing.street = value,
                "billing-zip" => form.billing.zip = value,
                "billing-city" => form.billing.city = value,
                other => {
                    if let Some(id) = other
                        .strip_prefix("count-")
                        .and_then(|id| id.parse::<i64>().ok())
                    {
                        form.counts.insert(id, value);
                    }
                }
            }
        }
        form
    }

    /// The JSON API's request this form stands for, or every error found at once.
    pub fn to_request(&self) -> Result<PlaceOrderRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let customer_id = match self.customer.trim().parse::<i64>() {
            Ok(id) if id > 0 => id,
            _ => {
                errors.insert(CUSTOMER.into(), "Choose a customer.".into());
                0
            }
        };
        let mut lines = Vec::new();
        for (&item_id, text) in &self.counts {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match text.parse::<i64>() {
                Ok(0) => {}
                Ok(count) if (1..=MAX_COUNT).contains(&count) => {
                    lines.push(LineRequest { item_id, count })
                }
                _ => {
                    errors.insert(
                        count_field(item_id),
                        format!("Enter a whole number from 0 to {MAX_COUNT}."),
                    );
                }
            }
        }
        if lines.is_empty() && !errors.keys().any(|k| k.starts_with("count-")) {
            errors.insert(LINES.into(), "Order at least one item.".into());
        }
        let shipping_address = self.shipping.parse("shipping", &mut errors);
        let billing_address = self.billing.parse("billing", &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PlaceOrderRequest {
            customer_id,
            lines,
            shipping_address,
            billing_address,
        })
    }
}

impl AddressForm {
    /// All three parts empty: the customer's own address (`None`). All filled: that address.
    /// Anything else is an error on each part that needs fixing.
    fn parse(&self, which: &str, errors: &mut FieldErrors) -> Option<Address> {
        let parts = [
            ("street", self.street.trim()),
            ("zip", self.zip.trim()),
            ("city", self.city.trim()),
        ];
        if parts.iter().all(|(_, v)| v.is_empty()) {
            return None;
        }
        for (part, value) in parts {
            let message = if value.is_empty() {
                "Fill in street, zip and city, or leave all three empty.".to_owned()
            } else if value.len() > MAX_TEXT {
                format!("At most {MAX_TEXT} characters.")
            } else {
                continue;
            };
            errors.insert(address_field(which, part), message);
        }
        Some(Address {
            street: parts[0].1.to_owned(),
            zip: parts[1].1.to_owned(),
            city: parts[2].1.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_complete_form_becomes_the_json_request() {
        let form = OrderForm::from_pairs(pairs(&[
            ("customerId", "2"),
            ("count-1", "0"),
            ("count-3", " 2 "),
            ("count-4", ""),
            ("shipping-street", "Main St 1"),
            ("shipping-zip", "12345"),
            ("shipping-city", "Springfield"),
            ("idempotencyKey", "form-abc"),
            ("submit", ""),
        ]));
        let request = form.to_request().expect("valid");
        assert_eq!(request.customer_id, 2);
        assert_eq!(request.lines.len(), 1);
        assert_eq!((request.lines[0].item_id, request.lines[0].count), (3, 2));
        assert_eq!(
            request.shipping_address.map(|a| a.city).as_deref(),
            Some("Springfield")
        );
        assert!(request.billing_address.is_none());
        assert_eq!(form.key, "form-abc");
    }

    #[test]
    fn every_mistake_is_reported_next_to_its_field() {
        let form = OrderForm::from_pairs(pairs(&[
            ("customerId", ""),
            ("count-1", "-1"),
            ("count-2", "lots"),
            ("billing-street", "Only a street"),
        ]));
        let errors = form.to_request().expect_err("invalid");
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "billing-city",
                "billing-zip",
                "count-1",
                "count-2",
                "customerId"
            ]
        );
    }

    #[test]
    fn a_form_without_items_asks_for_one() {
        let form = OrderForm::from_pairs(pairs(&[("customerId", "1"), ("count-1", "0")]));
        let errors = form.to_request().expect_err("no lines");
        assert!(errors.contains_key(LINES), "{errors:?}");
    }

    #[test]
    fn blank_forms_get_distinct_keys() {
        assert_ne!(OrderForm::blank().key, OrderForm::blank().key);
    }
}
