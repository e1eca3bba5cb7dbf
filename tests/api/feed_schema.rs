//! Every kind of page the publisher serves validates against RFC 4287's RELAX NG schema
//! (Appendix B, `tests/schema/atom.rnc`) with a real validator, jing (Debian's `jing`;
//! `scripts/test` installs it).

use std::path::Path;
use std::process::Command;

use crate::helpers::{spawn_order, OrderOptions, Reply};

/// Runs jing on `body`; returns its complaints, empty when the document is valid.
fn jing(name: &str, body: &str) -> String {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema/atom.rnc");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{name}.xml"));
    std::fs::write(&file, body).expect("write page");
    let out = Command::new("jing")
        .arg("-c")
        .arg(&schema)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run jing ({e}): install it with `apt-get install jing` (scripts/test does)"
            )
        });
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        format!("{complaints}(exit {:?})", out.status.code())
    }
}

fn assert_valid(name: &str, page: &Reply) {
    assert_eq!(page.status, 200, "{name}: {}", page.text());
    let complaints = jing(name, &page.text());
    assert!(
        complaints.is_empty(),
        "{name} is not valid Atom:\n{complaints}\n{}",
        page.text()
    );
}

/// The validator is real: it refuses the page shape the feed used to serve (`fh:archive`
/// after the entries), so a pass below means something.
#[test]
fn the_validator_refuses_a_marker_after_the_entries() {
    let misplaced = r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">
<title>t</title><id>urn:x</id><updated>2026-01-01T00:00:00Z</updated><author><name>a</name></author>
<entry><title>e</title><id>urn:e</id><updated>2026-01-01T00:00:00Z</updated><link href="/x"/></entry>
<fh:archive/></feed>"#;

    let complaints = jing("misplaced", misplaced);

    assert!(
        complaints.contains(r#"element "fh:archive" not allowed here"#),
        "{complaints}"
    );
}

/// The empty head, a head with entries, a head just after a page filled (no entries, a
/// `prev-archive` link) and archive pages, with placements and cancellations, are all valid.
#[tokio::test]
async fn every_kind_of_page_validates_against_the_rfc_4287_schema() {
    let app = spawn_order(OrderOptions::default()).await; // page size 5

    let empty = app.get("/order/feed").await;
    assert_valid("empty-head", &empty);
    assert_valid("empty-inline-head", &app.get("/order/feed/inline").await);
    let created = empty.feed().updated().timestamp();
    assert!(
        created > 1_700_000_000,
        "an empty feed is dated by its creation, not the epoch: {}",
        empty.text()
    );

    for i in 0..5 {
        app.place(1 + i % 3).await;
    }
    let just_filled = app.get("/order/feed").await;
    assert_valid("head-after-a-page-filled", &just_filled);
    assert!(just_filled.feed().entries().is_empty());

    let first = app.place(1).await;
    app.cancel(first).await;
    for i in 0..6 {
        app.place(1 + i % 3).await;
    }
    assert_valid("head", &app.get("/order/feed").await);
    // Every Atom representation: details inline too.
    assert_valid("inline-head", &app.get("/order/feed/inline").await);
    for page in 1..=2 {
        let inline = app.get(&format!("/order/feed/inline/archive/{page}")).await;
        assert_valid(&format!("inline-archive-{page}"), &inline);
        assert!(inline
            .text()
            .contains(r#"<content type="application/json">"#));
    }
    for page in 1..=2 {
        let archive = app.get(&format!("/order/feed/archive/{page}")).await;
        assert_valid(&format!("archive-{page}"), &archive);
        let text = archive.text();
        let marker = text.find("<fh:archive/>").expect("the archive marker");
        let first_entry = text.find("<entry>").expect("entries");
        assert!(
            marker < first_entry,
            "fh:archive among the metadata: {text}"
        );
    }
}
