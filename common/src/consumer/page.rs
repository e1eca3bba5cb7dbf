//! Reading one feed page (RFC 4287 + RFC 5005) into what a consumer needs, validated.

use atom_syndication::Feed;
use url::Url;

/// One entry as the consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub id: String,
    /// Microseconds since the epoch.
    pub updated_us: i64,
    /// The `atom:category` terms (the event type).
    pub categories: Vec<String>,
    /// The details link resolved against the page URL, or why there is none usable.
    pub link: Result<Url, String>,
}

/// A parsed page: entries oldest first, and the link to the previous archive.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub url: Url,
    pub entries: Vec<FeedEntry>,
    pub prev_archive: Option<Url>,
}

impl FeedPage {
    /// Index of the entry with `id`, if this page has it.
    pub fn position_of(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }
}

/// Parses `body` fetched from `url`. Refuses anything that is not a well-formed Atom feed with
/// valid entries; an entry whose link is missing or unusable is kept (so it can be parked with
/// the reason) rather than failing the page.
pub fn parse(url: &Url, body: &[u8]) -> Result<FeedPage, String> {
    let Some(root) = find(body, b"<feed") else {
        return Err(format!("{url}: not an Atom feed (no <feed> element)"));
    };
    // quick-xml, under atom_syndication, never expands DTD entities or fetches external ones;
    // refusing a DOCTYPE outright keeps "billion laughs" style documents out entirely.
    if find(&body[..root], b"<!DOCTYPE").is_some() {
        return Err(format!("{url}: feeds with a DOCTYPE are refused"));
    }
    let tag_end = find(&body[root..], b">").map_or(body.len(), |i| root + i);
    if find(&body[root..tag_end], b"http://www.w3.org/2005/Atom").is_none() {
        return Err(format!(
            "{url}: not an Atom feed (root element outside the Atom namespace)"
        ));
    }
    let feed = Feed::read_from(body).map_err(|e| format!("{url}: malformed Atom: {e}"))?;
    let mut entries = Vec::with_capacity(feed.entries().len());
    for (i, e) in feed.entries().iter().enumerate() {
        if e.id().trim().is_empty() {
            return Err(format!("{url}: entry {i} has no atom:id"));
        }
        let updated_us = e.updated().timestamp_micros();
        if updated_us <= 0 {
            return Err(format!("{url}: entry {} has no valid atom:updated", e.id()));
        }
        let link = e
            .links()
            .iter()
            .find(|l| l.rel() == "alternate")
            .ok_or_else(|| format!("entry {} has no alternate link", e.id()))
            .and_then(|l| {
                url.join(l.href())
                    .map_err(|err| format!("entry {}: bad link {:?}: {err}", e.id(), l.href()))
            });
        entries.push(FeedEntry {
            id: e.id().to_owned(),
            updated_us,
            categories: e.categories().iter().map(|c| c.term().to_owned()).collect(),
            link,
        });
    }
    // RFC 5005: documents list entries newest first by convention but do not promise it; we
    // rely on our reading of `updated` only to check that, and keep the document's order.
    entries.reverse();
    let prev_archive = feed
        .links()
        .iter()
        .find(|l| l.rel() == "prev-archive")
        .map(|l| {
            url.join(l.href())
                .map_err(|e| format!("{url}: bad prev-archive link {:?}: {e}", l.href()))
        })
        .transpose()?;
    Ok(FeedPage {
        url: url.clone(),
        entries,
        prev_archive,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://feeds.test/order/feed").unwrap()
    }

    const PAGE: &str = r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>t</title>
<updated>2026-01-01T00:00:02Z</updated>
<link rel="prev-archive" href="/order/feed/archive/3"/>
<entry><id>urn:e:2</id><title>2</title><updated>2026-01-01T00:00:02Z</updated>
<category term="order-placed"/><link rel="alternate" type="application/json" href="/order/orders/2"/></entry>
<entry><id>urn:e:1</id><title>1</title><updated>2026-01-01T00:00:01Z</updated>
<link rel="alternate" href="http://elsewhere.test/x"/></entry>
</feed>"#;

    #[test]
    fn a_page_is_read_oldest_first_with_links_resolved() {
        let page = parse(&url(), PAGE.as_bytes()).unwrap();
        assert_eq!(page.entries[0].id, "urn:e:1");
        assert_eq!(page.entries[1].id, "urn:e:2");
        assert_eq!(page.entries[1].categories, ["order-placed"]);
        assert_eq!(
            page.entries[1].link.as_ref().unwrap().as_str(),
            "http://feeds.test/order/orders/2"
        );
        assert_eq!(
            page.prev_archive.as_ref().unwrap().as_str(),
            "http://feeds.test/order/feed/archive/3"
        );
        assert_eq!(page.position_of("urn:e:2"), Some(1));
    }

    #[test]
    fn non_atom_and_malformed_documents_are_refused() {
        assert!(parse(&url(), b"<html><body>hi</body></html>").is_err());
        assert!(parse(&url(), b"{\"feed\": 1}").is_err());
        assert!(parse(
            &url(),
            b"<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry>"
        )
        .is_err());
        assert!(parse(&url(), b"<feed><entry/></feed>")
            .unwrap_err()
            .contains("namespace"));
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><feed/>";
        assert!(parse(&url(), laughs.as_bytes())
            .unwrap_err()
            .contains("DOCTYPE"));
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
            .contains("no alternate link"));
    }
}
