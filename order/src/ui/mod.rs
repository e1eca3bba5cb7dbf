//! The order service's HTML pages under `/order/ui/`: the order list, the form to place one,
//! each order with its cancel button. Thin handlers over [`crate::service`], as the JSON
//! routes are; see [`common::ui`] for why pages have their own paths.

mod form;
mod pages;
mod readers;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use common::http::PageQuery;
use common::ui::{self, HtmlError, Section};

use crate::model::IdempotencyKey;
use crate::service::{self, Placed};
use crate::{store, AppState, Error};
use form::{FieldErrors, OrderForm};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/order/ui/", get(list))
        .route("/order/ui/orders", post(place))
        .route("/order/ui/orders/new", get(new_order))
        .route("/order/ui/orders/{id}", get(show))
        .route("/order/ui/orders/{id}/cancel", post(cancel))
        .route(readers::READERS, get(readers_page))
}

impl From<Error> for HtmlError {
    fn from(e: Error) -> HtmlError {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) | Error::UnsupportedMediaType(_) => StatusCode::BAD_REQUEST,
            Error::Common(common::Error::NotFound(_)) => StatusCode::NOT_FOUND,
            Error::Common(_) | Error::Db(_) | Error::Corrupt(_) | Error::WriterStopped => {
                return HtmlError::internal(Section::Order, &e)
            }
        };
        HtmlError::new(status, Section::Order, e.to_string())
    }
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Response, HtmlError> {
    let page = ui::list_page(page, Section::Order)?;
    let orders = store::list(&state.db, page.before, page.limit).await?;
    Ok(pages::page("Orders", pages::list(&orders, page.limit)))
}

async fn new_order(State(state): State<AppState>) -> Response {
    form_page(
        &state,
        &OrderForm::blank(),
        &FieldErrors::new(),
        StatusCode::OK,
    )
}

fn form_page(
    state: &AppState,
    form: &OrderForm,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    // The seeded catalog is small; the form offers all of it.
    let body = pages::new_order(&state.catalog, form, errors);
    (status, pages::page("Place an order", body)).into_response()
}

/// Places the order and shows it, or shows the form again with the input kept and each error
/// next to its field (422).
async fn place(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, HtmlError> {
    ui::same_site(&headers, Section::Order)?;
    let form = OrderForm::from_pairs(pairs);
    let request = match form.to_request() {
        Ok(request) => request,
        Err(errors) => {
            return Ok(form_page(
                &state,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
    };
    let key = IdempotencyKey::parse(form.key.as_bytes()).ok();
    match service::place(&state, request, key).await {
        Ok(Placed::Created(order) | Placed::Replayed(order)) => {
            Ok(ui::see_other(&pages::order_url(order.id)))
        }
        // What only the database can tell (an item withdrawn meanwhile, the form already
        // used for another order) belongs to no single field.
        Err(Error::Invalid(message)) => {
            let errors = FieldErrors::from([(form::FORM.to_owned(), message)]);
            Ok(form_page(
                &state,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

async fn show(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, HtmlError> {
    let order = store::get(&state.db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("There is no order {id}.")))?;
    let readers = state.feed.readers();
    // Only the entries after the slowest reader can decide anything.
    let newest = match readers.iter().filter_map(|r| r.position).min() {
        Some(lowest) => state
            .feed
            .newest_with_link(&format!("/order/orders/{id}"), lowest)
            .await
            .map_err(Error::from)?,
        None => None,
    };
    let body = maud::html! {
        (pages::order(&order))
        (readers::on_order_page(&readers, newest))
    };
    Ok(pages::page(&format!("Order {id}"), body))
}

async fn readers_page(State(state): State<AppState>) -> Response {
    let body = readers::page(&state.feed.readers(), state.feed.head_position());
    pages::page("Who reads this feed", body)
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, HtmlError> {
    ui::same_site(&headers, Section::Order)?;
    let order = service::cancel(&state, id).await?;
    Ok(ui::see_other(&pages::order_url(order.id)))
}
