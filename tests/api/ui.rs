//! The HTML pages over plain HTTP: valid HTML5, labelled inputs, escaping, form posts and the
//! JSON contract beside them. What a person does in a real browser is in `tests/browser`.

use std::collections::HashSet;

use scraper::{Html, Selector};

use crate::consumer_helpers::{spawn_consumer, Kind};
use crate::helpers::{reply, spawn_order, OrderApp, OrderOptions, Reply};

/// A client that shows redirects instead of following them.
fn browser_like() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get_page(base: &str, path: &str) -> Reply {
    reply(
        browser_like()
            .get(format!("{base}{path}"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post_form(
    base: &str,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = browser_like().post(format!("{base}{path}")).form(form);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    reply(request.send().await.unwrap()).await
}

/// Parses `page` as HTML5 and asserts what every page promises: a doctype, no parse error,
/// unique ids, and a `<label for>` for every visible input and select.
fn assert_valid_page(page: &Reply) -> Html {
    let text = page.text();
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{text}"
    );
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    let html = Html::parse_document(&text);
    assert!(
        html.errors.is_empty(),
        "parse errors {:?} in {text}",
        html.errors
    );
    let mut ids = HashSet::new();
    for element in html.select(&Selector::parse("[id]").unwrap()) {
        let id = element.value().attr("id").unwrap();
        assert!(ids.insert(id.to_owned()), "duplicate id {id}");
    }
    let labels: HashSet<&str> = html
        .select(&Selector::parse("label[for]").unwrap())
        .filter_map(|l| l.value().attr("for"))
        .collect();
    for input in
        html.select(&Selector::parse("input:not([type=hidden]), select, textarea").unwrap())
    {
        let id = input.value().attr("id").unwrap_or_default();
        assert!(labels.contains(id), "no label for {:?}", input.html());
    }
    html
}

fn texts(html: &Html, css: &str) -> Vec<String> {
    html.select(&Selector::parse(css).unwrap())
        .map(|e| e.text().collect::<String>())
        .collect()
}

async fn order_app() -> OrderApp {
    spawn_order(OrderOptions::default()).await
}

/// Every page of the three services, including a form shown again with errors, is valid
/// HTML5 with a label for each input, and values are shown escaped.
#[tokio::test]
async fn every_page_is_valid_html_with_labelled_inputs_and_escaped_values() {
    let order = order_app().await;
    let base = order.url("");
    let placed = order
        .post_json(
            "/order/orders",
            &serde_json::json!({"customerId": 2, "lines": [{"itemId": 1, "count": 2}],
                "shippingAddress": {"street": "<script>alert(1)</script>", "zip": "1 & 2", "city": "\"Q\""}}),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    let invoicing = spawn_consumer(Kind::Invoicing, &order.url("/order/feed")).await;
    let shipping = spawn_consumer(Kind::Shipping, &order.url("/order/feed")).await;
    invoicing.poll_ok().await;
    shipping.poll_ok().await;
    let invalid = post_form(
        &base,
        "/order/ui/orders",
        &[("customerId", ""), ("count-1", "x")],
        &[],
    )
    .await;

    // The readers (invoicing, shipping) with their positions.
    invoicing.poll_ok().await;
    shipping.poll_ok().await;
    order.service.state.feed.flush_readers().await.unwrap();

    let mut pages = vec![invalid];
    for path in [
        "/order/ui/",
        "/order/ui/orders/new",
        "/order/ui/orders/1",
        "/order/ui/readers",
    ] {
        pages.push(get_page(&base, path).await);
    }
    for (app, paths) in [
        (&invoicing, ["/invoicing/ui/", "/invoicing/ui/invoices/1"]),
        (&shipping, ["/shipping/ui/", "/shipping/ui/shipments/1"]),
    ] {
        for path in paths {
            pages.push(app.get(path).await);
        }
    }

    assert_eq!(pages[0].status, 422, "{}", pages[0].text());
    for page in &pages[1..] {
        assert_eq!(page.status, 200, "{}", page.text());
    }
    for page in &pages {
        let html = assert_valid_page(page);
        assert!(
            texts(&html, "script").is_empty(),
            "a value became a script: {}",
            page.text()
        );
    }
    let order_page = Html::parse_document(&pages[3].text());
    let shown = texts(&order_page, "dd").join("\n");
    assert!(
        shown.contains("<script>alert(1)</script>, 1 & 2 \"Q\""),
        "{shown}"
    );
    let readers_page = Html::parse_document(&pages[4].text());
    assert_eq!(texts(&readers_page, "h2"), ["invoicing", "shipping"]);
    assert_eq!(
        readers_page
            .select(&Selector::parse("figure.chart svg polyline").unwrap())
            .count(),
        2,
        "a lag chart per reader"
    );
    let shipment_page = Html::parse_document(&pages[8].text());
    assert!(texts(&shipment_page, "dd")
        .join("\n")
        .contains("<script>alert(1)</script>"));
}

/// The form places the order and sends the browser to it with 303; the same form sent twice
/// (a double click) places one order.
#[tokio::test]
async fn the_order_form_places_one_order_however_often_it_is_sent() {
    let order = order_app().await;
    let base = order.url("");
    let form_page = assert_valid_page(&get_page(&base, "/order/ui/orders/new").await);
    let key = form_page
        .select(&Selector::parse("input[name=idempotencyKey]").unwrap())
        .next()
        .and_then(|i| i.value().attr("value"))
        .expect("a key in the form")
        .to_owned();
    let form = [
        ("idempotencyKey", key.as_str()),
        ("customerId", "3"),
        ("count-2", "2"),
        ("count-5", "1"),
        ("billing-street", "Elm 5"),
        ("billing-zip", "999"),
        ("billing-city", "Gotham"),
    ];

    let first = post_form(&base, "/order/ui/orders", &form, &[]).await;
    let second = post_form(&base, "/order/ui/orders", &form, &[]).await;

    assert_eq!(first.status, 303, "{}", first.text());
    assert_eq!(first.header("location"), Some("/order/ui/orders/1"));
    assert_eq!(second.header("location"), Some("/order/ui/orders/1"));
    let placed = order.get("/order/orders/1").await.json();
    assert_eq!(placed["customer"]["customerId"], 3);
    assert_eq!(placed["lines"].as_array().unwrap().len(), 2);
    assert_eq!(placed["billingAddress"]["city"], "Gotham");
    assert_eq!(
        order
            .get("/order/orders")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// An invalid form is shown again (422) with each error next to its field and the input
/// kept; nothing is written.
#[tokio::test]
async fn an_invalid_form_keeps_the_input_shows_each_error_and_writes_nothing() {
    let order = order_app().await;
    let base = order.url("");

    let page = post_form(
        &base,
        "/order/ui/orders",
        &[
            ("customerId", "2"),
            ("count-3", "-4"),
            ("shipping-street", "Kept Street 7"),
        ],
        &[],
    )
    .await;

    assert_eq!(page.status, 422);
    let html = assert_valid_page(&page);
    let error = |id: &str| texts(&html, &format!("#{id}-error")).join("");
    assert!(error("count-3").contains("whole number"), "{}", page.text());
    assert!(error("shipping-zip").contains("Fill in"), "{}", page.text());
    assert!(error("shipping-city").contains("Fill in"));
    assert!(error("customerId").is_empty());
    let selected = html
        .select(&Selector::parse("#customerId option[selected]").unwrap())
        .filter_map(|o| o.value().attr("value"))
        .collect::<Vec<_>>();
    assert_eq!(selected, ["2"]);
    let street = html
        .select(&Selector::parse("#shipping-street").unwrap())
        .next()
        .and_then(|i| i.value().attr("value"));
    assert_eq!(street, Some("Kept Street 7"));
    assert_eq!(
        order.get("/order/orders").await.json(),
        serde_json::json!([])
    );
}

/// A form another site makes the browser post is refused, and cancels nothing.
#[tokio::test]
async fn a_form_posted_from_another_site_is_refused() {
    let order = order_app().await;
    let id = order.place(1).await;
    let base = order.url("");

    let forged = post_form(
        &base,
        &format!("/order/ui/orders/{id}/cancel"),
        &[],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    let own = post_form(
        &base,
        &format!("/order/ui/orders/{id}/cancel"),
        &[],
        &[("sec-fetch-site", "same-origin")],
    )
    .await;

    assert_eq!(forged.status, 403);
    assert_eq!(own.status, 303);
    assert_eq!(
        order.get(&format!("/order/orders/{id}")).await.json()["version"],
        2
    );
}

/// Browsers asking for HTML on the JSON paths still get JSON: pages have their own paths.
#[tokio::test]
async fn json_paths_answer_json_whatever_the_browser_accepts() {
    let order = order_app().await;
    order.place(1).await;

    let list = order
        .get_with("/order/orders", &[("accept", "text/html")])
        .await;
    let missing = get_page(&order.url(""), "/order/ui/orders/99").await;

    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(list.json()[0]["id"], 1);
    assert_eq!(missing.status, 404);
    assert!(assert_valid_page(&missing)
        .html()
        .contains("There is no order 99"));
}

/// The consumer panel shows a parked entry with its reason and a retry button; the button
/// applies the entry once the cause is fixed. "Poll now" polls.
#[tokio::test]
async fn the_consumer_panel_shows_parked_entries_and_its_buttons_work() {
    let order = order_app().await;
    order.faults.not_found.lock().unwrap().insert(1);
    order.place(1).await;
    let invoicing = spawn_consumer(Kind::Invoicing, &order.url("/order/feed")).await;
    let base = format!("http://{}", invoicing.addr);

    let polled = post_form(&base, "/invoicing/ui/poll", &[], &[]).await;
    let page = invoicing.get("/invoicing/ui/").await;
    let html = assert_valid_page(&page);
    let retry_action = html
        .select(&Selector::parse("#consumer form[action*=retry]").unwrap())
        .next()
        .and_then(|f| f.value().attr("action"))
        .expect("a retry button")
        .to_owned();
    order.faults.not_found.lock().unwrap().clear();
    let retried = post_form(&base, &retry_action, &[], &[]).await;

    assert_eq!(polled.status, 303);
    assert_eq!(polled.header("location"), Some("/invoicing/ui/#consumer"));
    let panel = texts(&html, "#consumer").join("");
    assert!(panel.contains("Parked entries (1)"), "{panel}");
    let entry_1 = order.entry_id(1, 1).await;
    assert!(panel.contains(&entry_1), "{panel}");
    assert!(panel.contains("404"), "{panel}");
    assert_eq!(retried.status, 303, "{}", retried.text());
    assert_eq!(invoicing.get("/invoicing/invoices/1").await.status, 200);
    let after = invoicing.get("/invoicing/ui/").await;
    assert!(after.text().contains("Parked entries (0)"));
}
