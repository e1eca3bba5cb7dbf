//! The consumer on a service's HTML pages: a panel with checkpoint, last poll, lag and parked
//! entries, and the two buttons behind it ("Poll now", "Retry").

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use maud::{html, Markup};

use crate::consumer::{Consumer, ConsumerReport, Projection};
use crate::service::ServiceState;
use crate::ui::{self, HtmlError, Section};
use crate::Error;

/// `POST /ui/poll` and `POST /ui/parked/{id}/retry` under the service's `prefix`; both send
/// the browser back to `{prefix}/ui/`, where the panel shows what happened.
pub fn router<P: Projection>(prefix: &str) -> Router<ServiceState<P>> {
    let section = ui::section_of(&format!("{prefix}/ui/")).unwrap_or(Section::Home);
    let back = format!("{prefix}/ui/#consumer");
    let poll_back = back.clone();
    Router::new()
        .route(
            "/ui/poll",
            post(move |State(c): State<Consumer<P>>, headers: HeaderMap| async move {
                ui::same_site(&headers, section)?;
                c.poll().await;
                Ok::<Response, HtmlError>(ui::see_other(&poll_back))
            }),
        )
        .route(
            "/ui/parked/{id}/retry",
            post(
                move |State(c): State<Consumer<P>>, Path(id): Path<i64>, headers: HeaderMap| async move {
                    ui::same_site(&headers, section)?;
                    c.retry_parked(id).await.map_err(|e| html_error(e, section))?;
                    Ok::<Response, HtmlError>(ui::see_other(&back))
                },
            ),
        )
}

/// The report as a page can show it, or the error page if the database cannot be read.
pub async fn report<P: Projection>(
    consumer: &Consumer<P>,
    section: Section,
) -> Result<ConsumerReport, HtmlError> {
    consumer.report().await.map_err(|e| html_error(e, section))
}

fn html_error(e: Error, section: Section) -> HtmlError {
    match e {
        Error::NotFound(detail) => HtmlError::new(StatusCode::NOT_FOUND, section, detail),
        // Another instance holds the lease: it polls and retries, this one cannot.
        Error::Fenced(detail) => HtmlError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            section,
            format!("another instance is the active consumer: {detail}"),
        ),
        other => HtmlError::internal(section, &other),
    }
}

/// "Poll now" and the consumer's state; parked entries each with a "Retry" button.
pub fn panel(report: &ConsumerReport, prefix: &str) -> Markup {
    html! {
        section id="consumer" aria-labelledby="consumer-title" {
            h2 id="consumer-title" { "Consumer" }
            form.inline method="post" action={ (prefix) "/ui/poll" } {
                button type="submit" { "Poll now" }
            }
            dl style="margin-top:1rem" {
                dt { "Feed" }
                dd { a href=(report.feed_url) { (report.feed_url) } }
                dt { "Details" }
                dd {
                    @if report.polled_url != report.feed_url {
                        "inline, from " a href=(report.polled_url) { (report.polled_url) }
                    } @else if report.details == "inline" {
                        "inline when entries carry them, else by link"
                    } @else {
                        "by link, one request per entry"
                    }
                }
                dt { "Checkpoint" }
                dd {
                    @match &report.checkpoint.entry_id {
                        Some(id) => { code { (id) } }
                        None => { "nothing handled yet" }
                    }
                    @if let Some(t) = &report.checkpoint.entry_updated { " (" (ui::time(t)) ")" }
                }
                dt { "Entries handled" }
                dd.num { (report.checkpoint.handled_entries) }
                dt { "Last poll" }
                dd {
                    @match &report.last_poll {
                        Some(p) => {
                            (ui::time(&p.at)) ": " strong { (p.status) }
                            ", " (p.handled) " entries handled"
                            @if let Some(d) = &p.detail { br; span.error { (d) } }
                        }
                        None => { "not polled yet" }
                    }
                }
                dt { "Failures in a row" }
                dd { (report.consecutive_failures) }
                dt { "Lag" }
                dd {
                    (report.lag.entries) " entries"
                    @if let Some(s) = report.lag.seconds { ", " (format!("{s:.1}")) " s behind the head" }
                    (super::chart::lag_chart(&report.lag.history, "entries pending"))
                }
                dt { "Lease" }
                dd {
                    (report.lease.holder)
                    @if report.lease.active { " (active)" } @else { " (standby)" }
                }
            }
            h3 { "Parked entries (" (report.parked.count) ")" }
            @if report.parked.entries.is_empty() {
                p.hint { "None: every entry so far was applied." }
            } @else {
                div.scroll {
                    table {
                        thead { tr { th { "Entry" } th { "Reason" } th.num { "Attempts" } th { "Parked" } th { span.hint { "Action" } } } }
                        tbody {
                            @for p in &report.parked.entries {
                                tr {
                                    td { code { (p.row.entry_id) } br; (link(&p.row.link)) }
                                    td { (p.row.reason) }
                                    td.num { (p.row.attempts) }
                                    td { (ui::time(&p.parked_at)) }
                                    td {
                                        form.inline method="post" action={ (prefix) "/ui/parked/" (p.row.id) "/retry" } {
                                            button.secondary type="submit" { "Retry" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A link taken from a feed, as a link only when it is one a browser should follow: a parked
/// entry may carry anything, `javascript:` included.
fn link(href: &str) -> Markup {
    let followable = href.starts_with("https://")
        || href.starts_with("http://")
        || (href.starts_with('/') && !href.starts_with("//"));
    html! {
        @if followable { a href=(href) { (href) } } @else { code { (href) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_from_a_feed_are_followable_only_when_they_are_http() {
        assert!(link("/order/orders/1").into_string().contains("href"));
        assert!(link("https://example.com/x").into_string().contains("href"));
        for hostile in [
            "javascript:alert(1)",
            "//evil.example/x",
            "data:text/html,hi",
        ] {
            let html = link(hostile).into_string();
            assert!(!html.contains("href"), "{html}");
        }
    }
}
