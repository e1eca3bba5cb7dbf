//! Pages for a service's versioned copies: the list (with the consumer panel) at
//! `{prefix}/ui/` and one page per copy at `{prefix}/ui/{copies}/{key}`. The service supplies
//! the cells and the detail; the shell, paging, errors and the panel are shared.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::{HtmlError, Section};
use crate::consumer::copies::{Copies, Versioned};
use crate::http::PageQuery;
use crate::service::ServiceState;

/// How a service shows its copies to people.
pub trait Pages: Versioned {
    /// The list's heading and the start of each row's link: `Invoices`, `Invoice`.
    const PLURAL: &'static str;
    const SINGULAR: &'static str;

    fn key_of(copy: &Self::Copy) -> i64;
    /// The list's header cells after the first (the link to the copy).
    fn head() -> Markup;
    /// One row's cells after the first.
    fn cells(copy: &Self::Copy) -> Markup;
    /// A copy's own page: its heading and body.
    fn detail(copy: &Self::Copy) -> Markup;
}

/// `GET /ui/` and `GET /ui/{copies}/{key}` under `prefix` (e.g. `/invoicing`).
pub fn routes<V: Pages>(prefix: &str) -> Router<ServiceState<Copies<V>>> {
    let section = super::section_of(&format!("{prefix}/ui/")).unwrap_or(Section::Home);
    let prefix: std::sync::Arc<str> = prefix.into();
    Router::new()
        .route(
            "/ui/",
            get(
                move |state: State<ServiceState<Copies<V>>>, page: Query<PageQuery>| {
                    let prefix = prefix.clone();
                    async move { list::<V>(state, page, &prefix, section).await }
                },
            ),
        )
        .route(
            &format!("/ui/{}/{{key}}", V::TABLES.copies),
            get(
                move |state: State<ServiceState<Copies<V>>>, key: Path<i64>| {
                    show::<V>(state, key, section)
                },
            ),
        )
}

async fn list<V: Pages>(
    State(state): State<ServiceState<Copies<V>>>,
    Query(page): Query<PageQuery>,
    prefix: &str,
    section: Section,
) -> Result<Response, HtmlError> {
    let page = super::list_page(page, section)?;
    let copies = Copies::<V>::list(&state.db, page.before, page.limit)
        .await
        .map_err(|e| HtmlError::internal(section, &e))?;
    let report = super::consumer::report(&state.consumer, section).await?;
    let base = format!("{prefix}/ui/");
    let t = V::TABLES;
    let body = html! {
        h1 { (V::PLURAL) }
        @if copies.is_empty() {
            p.notice { "No " (t.noun) "s yet: they appear once the consumer has read an "
                (t.key_noun) " from the feed." }
        } @else {
            div.scroll {
                table {
                    thead { tr { th { "Order" } (V::head()) } }
                    tbody {
                        @for c in &copies {
                            tr {
                                td { a href={ (base) (t.copies) "/" (V::key_of(c)) } { (V::SINGULAR) " #" (V::key_of(c)) } }
                                (V::cells(c))
                            }
                        }
                    }
                }
            }
            (super::older_link(&base, copies.len(), page.limit, copies.last().map(V::key_of)))
        }
        (super::consumer::panel(&report, prefix))
    };
    Ok(super::page(section, V::PLURAL, body))
}

async fn show<V: Pages>(
    State(state): State<ServiceState<Copies<V>>>,
    Path(key): Path<i64>,
    section: Section,
) -> Result<Response, HtmlError> {
    let t = V::TABLES;
    let copy = Copies::<V>::get(&state.db, key)
        .await
        .map_err(|e| HtmlError::internal(section, &e))?
        .ok_or_else(|| {
            HtmlError::new(
                StatusCode::NOT_FOUND,
                section,
                format!(
                    "There is no {} for {} {key} (yet: press \"Poll now\" on the {}s page).",
                    t.noun, t.key_noun, t.noun
                ),
            )
        })?;
    Ok(super::page(
        section,
        &format!("{} {key}", V::SINGULAR),
        V::detail(&copy),
    ))
}
