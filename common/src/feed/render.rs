//! Atom 1.0 documents (RFC 4287) with RFC 5005 paging links, rendered with `atom_syndication`.

use std::collections::BTreeMap;

use atom_syndication::{Category, Entry, Feed, Link, Person, Text};
use chrono::{DateTime, FixedOffset};

use super::store::StoredEntry;
use crate::clock::from_micros;
use crate::Error;

/// RFC 5005 §6: the namespace of `fh:archive`.
pub const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";

/// The fixed identity of a feed.
#[derive(Debug, Clone)]
pub struct FeedIdentity {
    /// `atom:id` of the feed, stable across pages (pages of one feed share it), stored with
    /// the feed when it is created.
    pub id: String,
    pub title: String,
    pub author: String,
    /// When the feed was created: the `updated` of a feed with no entries yet.
    pub created_us: i64,
}

/// The links and markers of one page.
#[derive(Debug, Clone, Default)]
pub struct PageLinks {
    pub self_href: String,
    pub prev_archive: Option<String>,
    pub next_archive: Option<String>,
    /// RFC 5005 §4: archive documents point at the subscription document.
    pub current: Option<String>,
    /// Adds `<fh:archive/>`: this page will not change.
    pub archive: bool,
}

fn link(rel: &str, href: &str, mime: &str) -> Link {
    Link {
        href: href.to_owned(),
        rel: rel.to_owned(),
        mime_type: Some(mime.to_owned()),
        ..Link::default()
    }
}

fn fixed(us: i64) -> DateTime<FixedOffset> {
    from_micros(us).fixed_offset()
}

/// Renders one page; `entries` are newest first.
pub fn render(
    identity: &FeedIdentity,
    links: &PageLinks,
    entries: &[StoredEntry],
) -> Result<Vec<u8>, Error> {
    const ATOM: &str = "application/atom+xml";
    let mut feed_links = vec![link("self", &links.self_href, ATOM)];
    for (rel, href) in [
        ("current", &links.current),
        ("prev-archive", &links.prev_archive),
        ("next-archive", &links.next_archive),
    ] {
        if let Some(href) = href {
            feed_links.push(link(rel, href, ATOM));
        }
    }
    let mut namespaces = BTreeMap::new();
    if links.archive {
        namespaces.insert("fh".to_owned(), HISTORY_NS.to_owned());
    }
    let author = Person {
        name: identity.author.clone(),
        ..Person::default()
    };
    let feed = Feed {
        id: identity.id.clone(),
        title: Text::plain(identity.title.clone()),
        // An empty feed still needs `updated` (RFC 4287 §4.1.1): the time it was created,
        // which keeps its bytes, and so its ETag, stable.
        updated: fixed(
            entries
                .first()
                .map_or(identity.created_us, |e| e.updated_us),
        ),
        authors: vec![author],
        links: feed_links,
        namespaces,
        entries: entries.iter().map(entry).collect(),
        ..Feed::default()
    };
    let mut out = feed
        .write_to(Vec::with_capacity(512 + entries.len() * 512))
        .map_err(Error::Render)?;
    if links.archive {
        insert_archive_marker(&mut out)?;
    }
    out.push(b'\n');
    Ok(out)
}

/// RFC 5005 §4 marks an archive with `<fh:archive/>`, a child of `atom:feed`; RFC 4287's
/// schema (Appendix B) allows such foreign elements only among the feed's metadata, before
/// the first entry. atom_syndication writes extension elements after the entries, so the
/// (empty, constant) marker is placed here instead: right before the first entry, or before
/// `</feed>` on a page without entries.
fn insert_archive_marker(out: &mut Vec<u8>) -> Result<(), Error> {
    const MARKER: &[u8] = b"<fh:archive/>";
    let at = find(out, b"<entry>")
        .or_else(|| find(out, b"</feed>"))
        .ok_or(Error::Invariant("a rendered feed has no </feed>"))?;
    out.splice(at..at, MARKER.iter().copied());
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn entry(e: &StoredEntry) -> Entry {
    Entry {
        id: e.entry_id.clone(),
        title: Text::plain(e.title.clone()),
        updated: fixed(e.updated_us),
        categories: vec![Category {
            term: e.category.clone(),
            ..Category::default()
        }],
        links: vec![link("alternate", &e.link, "application/json")],
        summary: Some(Text::plain(e.summary.clone())),
        ..Entry::default()
    }
}
