//! What a person does in a real browser (headless Chromium over WebDriver) against the
//! all-in-one server: place an order through the form, follow it to invoicing and shipping,
//! cancel it, get an invalid form back with its errors. Every page visited is saved as a
//! screenshot under `target/tmp/browser/<test>/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them as root).

mod driver;

use driver::{App, Browser};

/// The click-through a newcomer does: landing page → form → order → invoice and shipment
/// after "Poll now" → cancel → the cancellation seen in all three services.
#[tokio::test]
async fn a_person_places_an_order_follows_it_everywhere_and_cancels_it() {
    let app = App::start().await;
    let mut b = Browser::start("place_follow_cancel", &app.base).await;

    b.open("/").await;
    b.shot("landing").await;
    b.click_link("Place an order").await;
    assert_eq!(b.path().await, "/order/ui/orders/new");
    b.select("#customerId", "2").await;
    b.fill("#count-3", "2").await;
    b.fill("#count-5", "1").await;
    b.fill("#shipping-street", "1 Infinite Loop").await;
    b.fill("#shipping-zip", "95014").await;
    b.fill("#shipping-city", "Cupertino").await;
    b.shot("order-form-filled").await;
    b.click_button("Place order").await;

    assert_eq!(b.path().await, "/order/ui/orders/1");
    assert_eq!(b.text("h1").await, "Order #1 placed");
    assert!(b
        .text("main")
        .await
        .contains("1 Infinite Loop, 95014 Cupertino"));
    b.shot("order-placed").await;
    b.click_link("All orders").await;
    let rows = b.texts("tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("#1") && rows[0].contains("placed"),
        "{rows:?}"
    );
    b.shot("order-list").await;

    for (nav, list, row_link, detail_h1) in [
        (
            "Invoices",
            "/invoicing/ui/",
            "Invoice #1",
            "Invoice for order #1 placed",
        ),
        (
            "Shipments",
            "/shipping/ui/",
            "Shipment #1",
            "Shipment for order #1 placed",
        ),
    ] {
        b.click_link(nav).await;
        assert_eq!(b.path().await, list);
        b.click_button("Poll now").await;
        assert_eq!(b.path().await, format!("{list}#consumer"));
        let panel = b.text("#consumer").await;
        assert!(panel.contains("Parked entries (0)"), "{panel}");
        assert!(panel.contains("urn:uuid:"), "the checkpoint entry: {panel}");
        b.shot(&format!("{}-after-poll", nav.to_lowercase())).await;
        b.click_link(row_link).await;
        assert_eq!(b.text("h1").await, detail_h1);
        b.shot(&format!("{}-detail", nav.to_lowercase())).await;
    }
    assert!(
        b.text("main").await.contains("1 Infinite Loop"),
        "shipment goes to the form's address"
    );

    b.click_link("Order").await;
    b.click_button("Cancel order").await;
    assert_eq!(b.text("h1").await, "Order #1 cancelled");
    assert!(b.texts("button").await.iter().all(|t| t != "Cancel order"));
    b.shot("order-cancelled").await;
    for (nav, row_status) in [("Invoices", "cancelled"), ("Shipments", "cancelled")] {
        b.click_link(nav).await;
        b.click_button("Poll now").await;
        let rows = b.texts("main > div.scroll tbody tr").await;
        assert!(rows[0].contains(row_status), "{nav}: {rows:?}");
        b.shot(&format!("{}-cancelled", nav.to_lowercase())).await;
    }
    b.click_link("Orders").await;
    assert!(b.texts("tbody tr").await[0].contains("cancelled"));

    b.close().await;
    app.stop().await;
}

/// An invalid form comes back with each error next to its field and what was typed kept;
/// no order is placed.
#[tokio::test]
async fn an_invalid_order_form_shows_its_errors_and_keeps_the_input() {
    let app = App::start().await;
    let mut b = Browser::start("invalid_form", &app.base).await;

    b.open("/order/ui/orders/new").await;
    b.fill("#count-2", "-3").await;
    b.fill("#billing-street", "Half an address 1").await;
    b.click_button("Place order").await;

    assert_eq!(b.path().await, "/order/ui/orders");
    assert!(b.text("[role=alert]").await.contains("not placed"));
    assert_eq!(b.text("#customerId-error").await, "Choose a customer.");
    assert!(b.text("#count-2-error").await.contains("whole number"));
    assert!(b.text("#billing-zip-error").await.contains("Fill in"));
    assert_eq!(b.value("#count-2").await, "-3");
    assert_eq!(b.value("#billing-street").await, "Half an address 1");
    b.shot("invalid-form").await;
    b.select("#customerId", "1").await;
    b.fill("#count-2", "1").await;
    b.fill("#billing-street", "").await;
    b.click_button("Place order").await;
    assert_eq!(b.text("h1").await, "Order #1 placed");
    b.shot("corrected-form-placed").await;

    b.close().await;
    app.stop().await;
}

/// Markup typed into an address is shown as text on every page it reaches and never runs.
#[tokio::test]
async fn markup_in_an_order_is_shown_as_text_and_never_runs() {
    let app = App::start().await;
    let mut b = Browser::start("escaping", &app.base).await;
    let evil = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";

    b.open("/order/ui/orders/new").await;
    b.select("#customerId", "1").await;
    b.fill("#count-1", "1").await;
    b.fill("#shipping-street", evil).await;
    b.fill("#shipping-zip", "1").await;
    b.fill("#shipping-city", "X").await;
    b.click_button("Place order").await;
    let on_order = b.text("main").await;
    b.shot("order-with-markup").await;
    b.open("/shipping/ui/").await;
    b.click_button("Poll now").await;
    let on_list = b.text("main").await;
    b.click_link("Shipment #1").await;
    let on_shipment = b.text("main").await;
    b.shot("shipment-with-markup").await;

    for text in [on_order, on_list, on_shipment] {
        assert!(text.contains(evil), "{text}");
    }
    assert_eq!(b.eval("return window.pwned === undefined").await, true);
    assert_eq!(b.eval("return document.images.length").await, 0);

    b.close().await;
    app.stop().await;
}

/// The flow seen from the order service: both consumers (running on their own in the
/// all-in-one server) appear on "Who reads this feed" with a lag chart each, and the order's
/// page says both have it.
#[tokio::test]
async fn the_order_service_shows_who_reads_its_feed() {
    let app = App::start().await;
    let mut b = Browser::start("readers", &app.base).await;
    b.open("/order/ui/orders/new").await;
    b.select("#customerId", "3").await;
    b.fill("#count-2", "1").await;
    b.click_button("Place order").await;
    assert_eq!(b.path().await, "/order/ui/orders/1");

    // Positions are written every 5 s: reload until both readers stand at the head.
    let started = std::time::Instant::now();
    loop {
        b.open("/order/ui/orders/1").await;
        let rows = b
            .texts("section[aria-labelledby=readers-title] tbody tr")
            .await;
        if rows.len() == 2 && rows.iter().all(|r| r.contains("has it")) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "readers: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    b.shot("order-with-readers").await;
    b.click_link("who reads this feed").await;
    assert_eq!(b.path().await, "/order/ui/readers");
    assert_eq!(b.texts("main h2").await, ["invoicing", "shipping"]);
    assert_eq!(b.texts("figure.chart").await.len(), 2, "a lag chart each");
    b.shot("readers").await;

    b.close().await;
    app.stop().await;
}

/// At a phone's width every page fits: nothing but a table's own box scrolls sideways.
#[tokio::test]
async fn pages_fit_a_phone_screen() {
    let app = App::start().await;
    let mut b = Browser::start("phone", &app.base).await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.open("/order/ui/orders/new").await;
    b.select("#customerId", "4").await;
    b.fill("#count-4", "3").await;
    b.click_button("Place order").await;

    for (path, name) in [
        ("/", "landing"),
        ("/order/ui/orders/new", "order-form"),
        ("/order/ui/", "orders"),
        ("/order/ui/orders/1", "order"),
        ("/order/ui/readers", "readers"),
        ("/invoicing/ui/", "invoices"),
        ("/shipping/ui/", "shipments"),
    ] {
        b.open(path).await;
        let overflow = b
            .eval("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{path} is wider than the screen by {overflow}px"
        );
        b.shot(&format!("phone-{name}")).await;
    }

    b.close().await;
    app.stop().await;
}
