//! Server-rendered HTML for people: the page shell every service's pages share, its CSS, error
//! pages, and small formatting helpers.
//!
//! Pages live under `/{svc}/ui/…`, beside the JSON API rather than negotiated on its paths, so
//! JSON clients, caches and the OpenAPI document never see HTML. Everything works without
//! JavaScript: actions are plain `<form method="post">` answered with `303 See Other`.
//! [maud](https://maud.lambda.xyz) was chosen over askama and minijinja because its templates
//! are checked Rust that escapes every interpolated value unless told otherwise.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

pub mod chart;
pub mod consumer;
pub mod copies;

use crate::clock::rfc3339;
use crate::http::{Page, PageQuery};

/// Which part of the system a page belongs to, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Order,
    Invoicing,
    Shipping,
}

impl Section {
    const ALL: [(Section, &'static str); 3] = [
        (Section::Order, "/order/ui/"),
        (Section::Invoicing, "/invoicing/ui/"),
        (Section::Shipping, "/shipping/ui/"),
    ];
}

/// The section whose pages `path` is one of, if any: errors there are shown as pages.
pub fn section_of(path: &str) -> Option<Section> {
    if path == "/" {
        return Some(Section::Home);
    }
    Section::ALL
        .iter()
        .find(|(_, prefix)| path.starts_with(prefix))
        .map(|(section, _)| *section)
}

/// Our whole stylesheet: small enough to inline, so a page is one request and needs no route.
const CSS: &str = r#"
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:baseline}
header a{color:#fff;text-decoration:none;padding:.1rem .3rem;border-radius:.2rem}
header a[aria-current]{background:#ffffff33}
header strong{margin-right:.5rem}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
a{color:#1f5fa8}
figure.chart{margin:.25rem 0;max-width:24rem}
figure.chart svg{display:block;color:#1f5fa8;background:#fff;border:1px solid #ddd;border-radius:.2rem}
figure.chart figcaption{font-size:.85rem;color:#555}
.scroll,pre{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e3e3;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
form.inline{display:inline}
button{font:inherit;padding:.35rem .9rem;border:1px solid #1f3a5f;border-radius:.3rem;background:#1f3a5f;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1f3a5f}
button.danger{background:#a12622;border-color:#a12622}
fieldset{border:1px solid #d5d5d5;border-radius:.3rem;margin:0 0 1rem;padding:.5rem 1rem;background:#fff}
label{display:block;font-weight:600;margin-top:.5rem}
input,select{font:inherit;padding:.3rem;width:100%;max-width:24rem;border:1px solid #aaa;border-radius:.2rem}
input[type=number]{max-width:7rem}
input[aria-invalid=true],select[aria-invalid=true]{border-color:#a12622}
.error{color:#a12622;font-weight:600;margin:.2rem 0}
.notice{background:#e8f1fb;border:1px solid #b6d0ee;padding:.5rem 1rem;border-radius:.3rem}
.status-cancelled{color:#a12622}
.status-placed{color:#1b6e2a}
.hint{color:#555;font-size:.9rem}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:1rem 0}
@media (max-width:40rem){dl{grid-template-columns:1fr}dt{margin-top:.4rem}}
"#;

/// Defence in depth should a value ever escape unescaped: no script, no plugin, no frame runs,
/// forms post only back here. Styles are inline by design (see [`CSS`]).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole HTML5 page: shell, navigation and `body`, with a strict content security policy.
pub fn page(section: Section, title: &str, body: Markup) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(render(section, title, body)),
    )
        .into_response()
}

fn render(section: Section, title: &str, body: Markup) -> String {
    let nav = [
        (Section::Home, "/", "Home"),
        (Section::ALL[0].0, Section::ALL[0].1, "Orders"),
        (Section::ALL[1].0, Section::ALL[1].1, "Invoices"),
        (Section::ALL[2].0, Section::ALL[2].1, "Shipments"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Feedline" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    strong { "Feedline" }
                    nav aria-label="Services" {
                        @for (s, href, label) in nav {
                            @if s == section {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                            " "
                        }
                        a href="/order/feed" { "Feed" }
                    }
                }
                main { (body) }
            }
        }
    };
    markup.into_string()
}

/// An error shown to a person as a page rather than as problem+json.
#[derive(Debug)]
pub struct HtmlError {
    pub status: StatusCode,
    pub section: Section,
    pub detail: String,
}

impl HtmlError {
    pub fn new(status: StatusCode, section: Section, detail: impl Into<String>) -> HtmlError {
        HtmlError {
            status,
            section,
            detail: detail.into(),
        }
    }

    /// A failure whose detail must not reach the browser: logged in full, shown generically.
    pub fn internal(section: Section, error: &dyn std::fmt::Display) -> HtmlError {
        tracing::error!(%error, "page failed");
        HtmlError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            section,
            "Something went wrong on our side; the details are in the server log.",
        )
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (reason) }
            p.error { (self.detail) }
            p { a href="/" { "Home" } }
        };
        (self.status, page(self.section, reason, body)).into_response()
    }
}

/// Refuses a form post another site made the browser send (a cross-site request forgery):
/// browsers mark those `Sec-Fetch-Site: cross-site`. Clients that send no such header (curl,
/// older browsers) are let through, as the JSON API lets them through.
pub fn same_site(headers: &HeaderMap, section: Section) -> Result<(), HtmlError> {
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"cross-site") => Err(HtmlError::new(
            StatusCode::FORBIDDEN,
            section,
            "This form was sent from another site; open the page here and submit it again.",
        )),
        _ => Ok(()),
    }
}

/// The `?limit=&before=` of a list page, or an error page saying what is wrong with it.
pub fn list_page(query: PageQuery, section: Section) -> Result<Page, HtmlError> {
    query
        .parse()
        .map_err(|p| HtmlError::new(p.status(), section, p.message()))
}

/// `303 See Other` to `to`: after a form post the browser shows a page it can reload safely.
pub fn see_other(to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Cents as a decimal amount: `12345` → `123.45`. No currency: the contract names none.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// An RFC 3339 time as a `<time>` element showing `2026-11-22 03:00:12 UTC`.
pub fn time(rfc3339_text: &str) -> Markup {
    let shown = chrono::DateTime::parse_from_rfc3339(rfc3339_text)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339_text.to_owned());
    html! { time datetime=(rfc3339_text) { (shown) } }
}

/// The same for a time we hold as a value.
pub fn time_of(t: chrono::DateTime<chrono::Utc>) -> Markup {
    time(&rfc3339(t))
}

/// An order status with its colour class.
pub fn status(status: &str) -> Markup {
    html! { span class={ "status-" (status) } { (status) } }
}

/// "Older" link for a list shown newest first, when the page was full.
pub fn older_link(base: &str, shown: usize, limit: i64, last_id: Option<i64>) -> Markup {
    html! {
        @if let Some(last) = last_id.filter(|_| shown as i64 >= limit) {
            p { a href={ (base) "?before=" (last) } rel="next" { "Older →" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shows_cents_as_two_decimals() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(123_456), "1234.56");
        assert_eq!(money(-250), "-2.50");
        assert_eq!(money(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn pages_escape_what_they_are_given() {
        let html = render(
            Section::Home,
            "<script>t</script>",
            html! { p { ("<script>alert(1)</script>") } },
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn cross_site_form_posts_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(same_site(&headers, Section::Order).is_ok());
        headers.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_site(&headers, Section::Order).is_ok());
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        let refused = same_site(&headers, Section::Order).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
}
