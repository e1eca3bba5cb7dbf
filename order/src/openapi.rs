//! The OpenAPI document served at `/order/openapi.json`, generated from the handlers' and
//! models' annotations (utoipa), so it cannot drift from the code unnoticed.

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::model;
use crate::routes::{catalog, feed, health, orders};

/// An RFC 9457 problem details document (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Feedline order service",
        description = "Orders and their Atom feed of events."
    ),
    paths(
        orders::place,
        orders::list,
        orders::show,
        orders::cancel,
        catalog::customers,
        catalog::items,
        feed::head,
        feed::archive,
        feed::inline_head,
        feed::inline_archive,
        feed::events_head,
        feed::events_archive,
        feed::readers,
        health::health,
        health::ready,
    ),
    components(schemas(
        model::PlaceOrderRequest,
        model::LineRequest,
        model::Address,
        model::Order,
        model::OrderLine,
        model::OrderCustomer,
        model::Item,
        model::Customer,
        model::Status,
        feed::Readers,
        Problem,
    ))
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
