//! A consumer facing a hostile or broken feed server stays up, says what is wrong, and stores
//! nothing wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::consumer_helpers::{spawn_consumer, Kind};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Html,
    Malformed,
    Oversized,
    Endless,
    BillionLaughs,
    ExternalEntity,
    Huge,
    MissingId,
    DeepNesting,
    Mixed,
}

#[derive(Clone)]
struct Hostile {
    mode: Arc<Mutex<Mode>>,
    /// Where the "other origin" entry points.
    elsewhere: String,
}

fn atom(entries: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:hostile</id>
<title>h</title><updated>2026-01-01T00:00:03Z</updated><author><name>h</name></author>
<link rel="self" href="/feed"/>{entries}</feed>"#
    )
}

fn entry(id: &str, second: u32, href: &str) -> String {
    format!(
        r#"<entry><id>{id}</id><title>{id}</title><updated>2026-01-01T00:00:0{second}Z</updated>
<link rel="alternate" type="application/json" href="{href}"/></entry>"#
    )
}

async fn feed(State(h): State<Hostile>) -> Response {
    let mode = *h.mode.lock().unwrap();
    match mode {
        Mode::Html => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Welcome</body></html>",
        )
            .into_response(),
        Mode::Malformed => {
            r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry><id>x</id"#
                .into_response()
        }
        Mode::Oversized => {
            let mut body = atom("").into_bytes();
            body.extend(std::iter::repeat_n(b' ', 5 * 1024 * 1024));
            body.into_response()
        }
        Mode::Endless => {
            let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
            let stream =
                futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Body::from_stream(stream).into_response()
        }
        Mode::BillionLaughs => {
            let mut doc =
                String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE feed [\n<!ENTITY lol \"lol\">\n");
            doc.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
            for i in 2..10 {
                let prev = format!("&lol{};", i - 1).repeat(10);
                doc.push_str(&format!("<!ENTITY lol{i} \"{prev}\">\n"));
            }
            doc.push_str("]>\n");
            doc.push_str(&atom(&entry("&lol9;", 1, "/details/good")));
            doc.into_response()
        }
        Mode::ExternalEntity => {
            let doc = format!(
                "<?xml version=\"1.0\"?><!DOCTYPE feed [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
                atom(&entry("&xxe;", 1, "/details/good"))
            );
            doc.into_response()
        }
        Mode::Huge => {
            // Announces 100 MB; streams it lazily so the test server allocates nothing big.
            let chunk = axum::body::Bytes::from(vec![b' '; 1024 * 1024]);
            let stream = futures::stream::iter(
                (0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let mut r = Body::from_stream(stream).into_response();
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, (100 * 1024 * 1024).into());
            r
        }
        Mode::MissingId => atom(&entry("", 1, "/details/good")).into_response(),
        Mode::DeepNesting => {
            // 200 000 levels of an extension element (2.2 MB, under the page size limit): a
            // recursive parser overflows its stack on it and aborts the whole process.
            let depth = 200_000;
            let deep = format!(
                r#"<entry><id>urn:deep</id><title>d</title><updated>2026-01-01T00:00:01Z</updated>
<x:a xmlns:x="urn:x">{}{}</x:a><link href="/details/good"/></entry>"#,
                "<x:a>".repeat(depth),
                "</x:a>".repeat(depth)
            );
            atom(&deep).into_response()
        }
        Mode::Mixed => {
            // Newest first: the good entry (and the same revision again), an order whose
            // numbers overflow, details nested deeper than any parser should follow, bad
            // details, and a link to another origin.
            let entries = [
                entry("urn:good", 5, "/details/good"),
                entry("urn:overflow", 4, "/details/overflow"),
                entry("urn:deep-json", 3, "/details/deep"),
                entry("urn:good", 5, "/details/good"),
                entry("urn:bad-details", 2, "/details/bad"),
                entry("urn:elsewhere", 1, &h.elsewhere),
            ]
            .concat();
            (
                [(header::CONTENT_TYPE, "application/atom+xml")],
                atom(&entries),
            )
                .into_response()
        }
    }
}

const GOOD_ORDER: &str = r#"{"id": 77, "version": 1, "status": "placed",
  "customer": {"customerId": 1, "name": "N", "firstname": "F", "email": "e@x"},
  "shippingAddress": {"street": "s", "zip": "z", "city": "c"},
  "billingAddress": {"street": "s", "zip": "z", "city": "c"},
  "lines": [{"count": 2, "item": {"itemId": 1, "name": "i", "priceCents": 5}}],
  "totalCents": 10, "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"}"#;

/// Parses, but its line total does not fit in 64 bits.
const OVERFLOW_ORDER: &str = r#"{"id": 78, "version": 1, "status": "placed",
  "customer": {"customerId": 1, "name": "N", "firstname": "F", "email": "e@x"},
  "shippingAddress": {"street": "s", "zip": "z", "city": "c"},
  "billingAddress": {"street": "s", "zip": "z", "city": "c"},
  "lines": [{"count": 9223372036854775807, "item": {"itemId": 1, "name": "i", "priceCents": 9223372036854775807}}],
  "totalCents": 1, "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"}"#;

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Non-Atom content, malformed XML, an oversized, endless or 100 MB body, entity expansion
/// ("billion laughs"), external entities, an entry without an id: each poll fails with a clear
/// reason in `/consumer`, nothing is stored, and the service keeps serving.
#[tokio::test]
async fn a_broken_feed_is_reported_and_stores_nothing() {
    let mode = Arc::new(Mutex::new(Mode::Html));
    let hostile = Hostile {
        mode: mode.clone(),
        elsewhere: "http://127.0.0.1:9/unused".into(),
    };
    let base = serve(Router::new().route("/feed", get(feed)).with_state(hostile)).await;
    let invoicing = spawn_consumer(Kind::Invoicing, &format!("{base}/feed")).await;

    for (m, expected) in [
        (Mode::Html, "not an Atom feed"),
        (Mode::Malformed, "malformed XML"),
        (Mode::Oversized, "exceeds the limit"),
        (Mode::Endless, "exceeds the limit"),
        (Mode::BillionLaughs, "DOCTYPE"),
        (Mode::ExternalEntity, "DOCTYPE"),
        (Mode::Huge, "104857600 bytes exceeds the limit"),
        (Mode::MissingId, "no atom:id"),
        (Mode::DeepNesting, "nested deeper than 64 levels"),
    ] {
        *mode.lock().unwrap() = m;

        let report = invoicing.poll().await;

        assert_eq!(report["status"], "error");
        let detail = report["detail"].as_str().unwrap();
        assert!(
            detail.contains(expected),
            "{detail:?} should say {expected:?}"
        );
        let status = invoicing.report().await;
        assert_eq!(status["lastPoll"]["status"], "error");
        assert_eq!(status["checkpoint"]["handledEntries"], 0);
        assert!(invoicing.copies().await.is_empty());
        assert_eq!(invoicing.get("/invoicing/health").await.status, 200);
    }
    let metrics = invoicing.get("/invoicing/metrics").await.text();
    assert!(
        metrics.contains(r#"consumer_poll_errors_total{kind="feed"}"#),
        "{metrics}"
    );
}

/// Entries linking to another origin, details of the wrong shape or with overflowing numbers
/// are parked with the reason; the other origin never receives a request; an entry repeated in
/// the feed is handled once; good entries still apply.
#[tokio::test]
async fn hostile_entries_are_parked_and_other_hosts_never_called() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let elsewhere = serve(Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { GOOD_ORDER }
    }))
    .await;
    let hostile = Hostile {
        mode: Arc::new(Mutex::new(Mode::Mixed)),
        elsewhere: format!("{elsewhere}/order/orders/77"),
    };
    let base = serve(
        Router::new()
            .route("/feed", get(feed))
            .route(
                "/details/good",
                get(|| async { ([(header::CONTENT_TYPE, "application/json")], GOOD_ORDER) }),
            )
            .route(
                "/details/bad",
                get(|| async { r#"{"id": "seventy", "version": 1e999}"# }),
            )
            .route("/details/overflow", get(|| async { OVERFLOW_ORDER }))
            .route(
                "/details/deep",
                get(|| async {
                    // 100 000 nested arrays inside a valid-looking order, well under the size
                    // limit: serde_json's recursion limit refuses it.
                    let n = 100_000;
                    format!(
                        r#"{{"id": 79, "version": 1, "x": {}{}}}"#,
                        "[".repeat(n),
                        "]".repeat(n)
                    )
                }),
            )
            .with_state(hostile),
    )
    .await;
    let invoicing = spawn_consumer(Kind::Invoicing, &format!("{base}/feed")).await;

    let report = invoicing.poll().await;

    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no request to another origin"
    );
    let status = invoicing.report().await;
    assert_eq!(status["parked"]["count"], 4);
    let reasons: Vec<(String, String)> = status["parked"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["entryId"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(id, r)| id == "urn:elsewhere" && r.contains("not on the feed's origin")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(id, r)| id == "urn:bad-details" && r.contains("do not parse")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(id, r)| id == "urn:deep-json" && r.contains("nested deeper than 64")),
        "{reasons:?}"
    );
    assert_eq!(
        invoicing
            .handled()
            .await
            .iter()
            .filter(|id| *id == "urn:good")
            .count(),
        1,
        "the same revision listed twice is handled once"
    );
    let invoices = invoicing.copies().await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["orderId"], 77);
    assert_eq!(status["checkpoint"]["entryId"], "urn:good");
}
