use super::*;

fn url() -> Url {
    Url::parse("http://feeds.test/order/feed").unwrap()
}

const PAGE: &str = r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>t</title>
<updated>2026-01-01T00:00:02Z</updated>
<link rel="prev-archive" href="/order/feed/archive/3"/>
<link rel="first" href="archive/1"/>
<entry><id>urn:e:2</id><title>2</title><updated>2026-01-01T00:00:02Z</updated>
<category term="order-placed"/><link rel="alternate" type="application/json" href="/order/orders/2"/></entry>
<entry><id>urn:e:1</id><title>1</title><updated>2026-01-01T00:00:01Z</updated>
<link rel="alternate" href="http://elsewhere.test/x"/></entry>
</feed>"#;

fn ids(page: &FeedPage) -> Vec<&str> {
    page.entries.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn a_page_is_read_oldest_first_with_links_resolved() {
    let page = parse(&url(), PAGE.as_bytes()).unwrap();
    assert_eq!(page.feed_id, "urn:x");
    assert_eq!(ids(&page), ["urn:e:1", "urn:e:2"]);
    assert_eq!(page.entries[1].categories, ["order-placed"]);
    assert_eq!(
        page.entries[1].link.as_ref().unwrap().as_str(),
        "http://feeds.test/order/orders/2"
    );
    assert_eq!(
        page.prev_archive.as_ref().unwrap().as_str(),
        "http://feeds.test/order/feed/archive/3"
    );
    assert_eq!(
        page.first.as_ref().unwrap().as_str(),
        "http://feeds.test/order/archive/1",
        "resolved against the page's URL"
    );
    assert_eq!(
        page.position_of("urn:e:2", page.entries[1].updated_us),
        Some(1)
    );
    assert_eq!(page.position_of("urn:e:2", 1), None, "another revision");
    assert!(!page.archive);
}

#[test]
fn any_prefix_for_the_atom_namespace_is_read_alike() {
    let prefixed = r#"<?xml version="1.0"?>
<atom:feed xmlns:atom="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">
<atom:id>urn:x</atom:id><atom:title>t</atom:title><atom:updated>2026-01-01T00:00:02Z</atom:updated>
<fh:archive/>
<atom:link rel="prev-archive" href="/order/feed/archive/3"/>
<atom:entry><atom:id>urn:e:2</atom:id><atom:title>2</atom:title><atom:updated>2026-01-01T00:00:02Z</atom:updated>
<atom:category term="order-placed"/><atom:link rel="alternate" type="application/json" href="/order/orders/2"/></atom:entry>
<atom:entry><atom:id>urn:e:1</atom:id><atom:title>1</atom:title><atom:updated>2026-01-01T00:00:01Z</atom:updated>
<atom:link href="http://elsewhere.test/x"/></atom:entry>
</atom:feed>"#;
    let page = parse(&url(), prefixed.as_bytes()).unwrap();
    let plain = parse(&url(), PAGE.as_bytes()).unwrap();
    assert_eq!(page.entries, plain.entries);
    assert_eq!(page.prev_archive, plain.prev_archive);
    assert!(page.archive);
}

#[test]
fn elements_of_other_namespaces_named_like_atom_ones_are_ignored() {
    let doc = PAGE.replace(
        "<title>t</title>",
        r#"<x:id xmlns:x="urn:other">urn:not-the-feed</x:id><x:entry xmlns:x="urn:other"><x:id>bogus</x:id></x:entry>"#,
    );
    let page = parse(&url(), doc.as_bytes()).unwrap();
    assert_eq!(page.feed_id, "urn:x");
    assert_eq!(page.entries.len(), 2);
}

#[test]
fn out_of_line_content_gives_the_details_when_there_is_no_json_alternate() {
    let doc = r#"<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>t</title>
<updated>2026-01-01T00:00:02Z</updated>
<entry><id>urn:e:7</id><title>7</title><updated>2026-01-01T00:00:02Z</updated>
<link rel="alternate" type="text/html" href="/order/ui/orders/7"/>
<content type="application/json" src="orders/7"/></entry>
<entry><id>urn:e:8</id><title>8</title><updated>2026-01-01T00:00:03Z</updated>
<content type="application/json" src="orders/8"/>
<link rel="alternate" type="application/vnd.order+json; charset=utf-8" href="/json/8"/></entry>
<entry><id>urn:e:9</id><title>9</title><updated>2026-01-01T00:00:04Z</updated>
<link rel="related" href="/related/9"/><link href="/html/9"/></entry>
</feed>"#;
    let page = parse(&url(), doc.as_bytes()).unwrap();
    let links: Vec<String> = page
        .entries
        .iter()
        .map(|e| e.link.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        links,
        [
            "http://feeds.test/order/orders/7",
            "http://feeds.test/json/8",
            "http://feeds.test/html/9"
        ]
    );
}

#[test]
fn xml_base_applies_to_the_element_and_its_descendants() {
    let doc = r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://feeds.test/api/v2/"><id>urn:x</id>
<title>t</title><updated>2026-01-01T00:00:02Z</updated>
<link rel="prev-archive" href="pages/3"/>
<entry xml:base="orders/"><id>urn:e:1</id><title>1</title><updated>2026-01-01T00:00:01+02:00</updated>
<link rel="alternate" type="application/json" href="1"/></entry>
<entry><id>urn:e:2</id><title>2</title><updated>2026-01-01T00:00:02Z</updated>
<link xml:base="/root/" rel="alternate" type="application/json" href="2"/></entry>
</feed>"#;
    let page = parse(&url(), doc.as_bytes()).unwrap();
    assert_eq!(
        page.prev_archive.unwrap().as_str(),
        "http://feeds.test/api/v2/pages/3"
    );
    let links: Vec<String> = page
        .entries
        .iter()
        .map(|e| e.link.as_ref().unwrap().to_string())
        .collect();
    // The first entry is older: +02:00 puts it two hours earlier.
    assert_eq!(
        links,
        [
            "http://feeds.test/api/v2/orders/1",
            "http://feeds.test/root/2"
        ]
    );
}

fn entries_at(seconds: &[(&str, u32)]) -> String {
    let entries: String = seconds
        .iter()
        .map(|(id, s)| {
            format!(
                r#"<entry><id>{id}</id><title>x</title><updated>2026-01-01T00:00:{s:02}Z</updated><link href="/d/{id}"/></entry>"#
            )
        })
        .collect();
    format!(
        r#"<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>t</title><updated>2026-01-01T00:00:09Z</updated>{entries}</feed>"#
    )
}

#[test]
fn entries_are_applied_by_updated_whichever_way_the_page_lists_them() {
    let newest_first = entries_at(&[("c", 3), ("b", 2), ("a", 1)]);
    let oldest_first = entries_at(&[("a", 1), ("b", 2), ("c", 3)]);
    let shuffled = entries_at(&[("b", 2), ("c", 3), ("a", 1)]);
    for doc in [newest_first, oldest_first, shuffled] {
        assert_eq!(
            ids(&parse(&url(), doc.as_bytes()).unwrap()),
            ["a", "b", "c"]
        );
    }
}

#[test]
fn equal_times_keep_the_order_of_the_documents_direction() {
    // Newest first (our own feed, where a group commit shares one time): reverse document order.
    let newest_first = entries_at(&[("d", 3), ("c2", 2), ("c1", 2), ("a", 1)]);
    assert_eq!(
        ids(&parse(&url(), newest_first.as_bytes()).unwrap()),
        ["a", "c1", "c2", "d"]
    );
    // Oldest first: document order.
    let oldest_first = entries_at(&[("a", 1), ("c1", 2), ("c2", 2), ("d", 3)]);
    assert_eq!(
        ids(&parse(&url(), oldest_first.as_bytes()).unwrap()),
        ["a", "c1", "c2", "d"]
    );
    // All equal: taken as newest first, the RFC 5005 convention.
    let same = entries_at(&[("z", 1), ("y", 1)]);
    assert_eq!(ids(&parse(&url(), same.as_bytes()).unwrap()), ["y", "z"]);
}

#[test]
fn non_atom_and_malformed_documents_are_refused() {
    assert!(parse(&url(), b"<html><body>hi</body></html>").is_err());
    assert!(parse(&url(), b"{\"feed\": 1}").is_err());
    assert!(parse(&url(), b"").unwrap_err().contains("no <feed>"));
    assert!(parse(
        &url(),
        b"<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry>"
    )
    .is_err());
    assert!(parse(&url(), b"<feed><entry/></feed>")
        .unwrap_err()
        .contains("namespace"));
    assert!(parse(&url(), b"<x:feed><x:id>a</x:id></x:feed>")
        .unwrap_err()
        .contains("prefix"));
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><feed/>";
    assert!(parse(&url(), laughs.as_bytes())
        .unwrap_err()
        .contains("DOCTYPE"));
    let entity = PAGE.replace("<title>t</title>", "<title>&custom;</title>");
    assert!(parse(&url(), entity.as_bytes())
        .unwrap_err()
        .contains("undefined entity"));
}

#[test]
fn a_feed_without_an_id_is_refused() {
    let no_id = PAGE.replace("<id>urn:x</id>", "");
    assert!(parse(&url(), no_id.as_bytes())
        .unwrap_err()
        .contains("the feed has no atom:id"));
}

#[test]
fn entries_without_id_or_updated_are_refused() {
    let no_id = PAGE.replace("<id>urn:e:1</id>", "");
    assert!(parse(&url(), no_id.as_bytes())
        .unwrap_err()
        .contains("no atom:id"));
    let no_updated = PAGE.replace("<updated>2026-01-01T00:00:01Z</updated>", "");
    assert!(parse(&url(), no_updated.as_bytes())
        .unwrap_err()
        .contains("updated"));
    let bad_updated = PAGE.replace("2026-01-01T00:00:01Z", "yesterday");
    assert!(parse(&url(), bad_updated.as_bytes())
        .unwrap_err()
        .contains("updated"));
}

#[test]
fn entities_and_character_references_are_decoded() {
    let doc = PAGE.replace("<id>urn:e:1</id>", "<id>tag:a&amp;b,2026:&#x31;</id>");
    let page = parse(&url(), doc.as_bytes()).unwrap();
    assert_eq!(page.entries[0].id, "tag:a&b,2026:1");
}

#[test]
fn an_entry_without_a_link_is_kept_with_the_reason() {
    let no_link = PAGE.replace(
        r#"<link rel="alternate" href="http://elsewhere.test/x"/>"#,
        "",
    );
    let page = parse(&url(), no_link.as_bytes()).unwrap();
    assert!(page.entries[0]
        .link
        .as_ref()
        .unwrap_err()
        .contains("no details link"));
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let depth = 200_000;
    let mut doc = PAGE.replace(
        "<title>1</title>",
        &format!(
            "<title>1</title><x:a xmlns:x=\"urn:x\">{}",
            "<x:a>".repeat(depth)
        ),
    );
    let close = format!("{}</x:a>", "</x:a>".repeat(depth));
    doc = doc.replacen(
        "<link rel=\"alternate\" href=\"http",
        &format!("{close}<link rel=\"alternate\" href=\"http"),
        1,
    );
    let err = parse(&url(), doc.as_bytes()).unwrap_err();
    assert!(err.contains("nested deeper than 64"), "{err}");
}

#[test]
fn nesting_up_to_the_bound_is_accepted() {
    // Feed and entry are two levels; the extension fills the rest.
    let depth = bounds::MAX_DEPTH - 2;
    let doc = PAGE.replace(
        "<title>1</title>",
        &format!(
            "<title>1</title>{}{}",
            "<x:a xmlns:x=\"urn:x\">".repeat(depth),
            "</x:a>".repeat(depth)
        ),
    );
    assert_eq!(parse(&url(), doc.as_bytes()).unwrap().entries.len(), 2);
}

#[test]
fn too_many_elements_or_attributes_are_refused() {
    let many = PAGE.replace("<title>t</title>", &"<i/>".repeat(bounds::MAX_ELEMENTS));
    assert!(parse(&url(), many.as_bytes())
        .unwrap_err()
        .contains("elements"));
    let attrs: String = (0..=bounds::MAX_ATTRIBUTES)
        .map(|i| format!(" a{i}=\"v\""))
        .collect();
    let wide = PAGE.replace("<title>t</title>", &format!("<title{attrs}>t</title>"));
    assert!(parse(&url(), wide.as_bytes())
        .unwrap_err()
        .contains("attributes"));
}

#[test]
fn links_inside_source_or_other_elements_are_not_the_entrys() {
    let doc = PAGE.replace(
        r#"<link rel="alternate" href="http://elsewhere.test/x"/>"#,
        r#"<source><id>urn:s</id><link rel="alternate" href="/wrong"/></source>"#,
    );
    let page = parse(&url(), doc.as_bytes()).unwrap();
    assert!(page.entries[0].link.is_err());
    assert_eq!(page.feed_id, "urn:x");
}

#[test]
fn registered_relations_may_be_written_as_iris() {
    let doc = PAGE.replace(
        r#"rel="prev-archive""#,
        r#"rel="http://www.iana.org/assignments/relation/prev-archive""#,
    );
    assert!(parse(&url(), doc.as_bytes())
        .unwrap()
        .prev_archive
        .is_some());
}

/// Found by the fuzzer: an archive link to a URI with no host (`rn:x`, `mailto:`) names no
/// page to fetch, so the page has no such link, as with one that does not resolve.
#[test]
fn paging_links_without_a_host_count_as_none() {
    for href in ["rn:x", "mailto:feeds@shop.example", "data:,x"] {
        let page = PAGE
            .replace(
                r#"href="/order/feed/archive/3""#,
                &format!(r#"href="{href}""#),
            )
            .replace(r#"href="archive/1""#, &format!(r#"href="{href}""#));
        let page = parse(&url(), page.as_bytes()).unwrap();
        assert_eq!(page.prev_archive, None, "{href}");
        assert_eq!(page.first, None, "{href}");
        assert_eq!(ids(&page), ["urn:e:1", "urn:e:2"], "{href}");
    }
}
