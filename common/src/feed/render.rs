//! Feed pages in each representation: Atom 1.0 (RFC 4287, rendered with `atom_syndication`)
//! with RFC 5005 paging links, and the CloudEvents JSON batch with the same links in a `Link`
//! header (RFC 8288).

use std::collections::BTreeMap;

use atom_syndication::{Category, Content, Entry, Feed, Link, Person, Text};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::Serialize;
use serde_json::value::RawValue;

use super::negotiate::Representation;
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
    /// The oldest archive page, so a reader starting from nothing can walk forward.
    pub first: Option<String>,
    pub prev_archive: Option<String>,
    pub next_archive: Option<String>,
    /// RFC 5005 §4: archive documents point at the subscription document.
    pub current: Option<String>,
    /// Adds `<fh:archive/>`: this page will not change.
    pub archive: bool,
    /// The same page in the other representations.
    pub alternates: Vec<(Representation, String)>,
}

/// A rendered page: its body, and for representations without links in the body, the
/// `Link` header that carries them.
pub struct Page {
    pub body: Vec<u8>,
    pub link_header: Option<String>,
}

/// Renders one page in `representation`; `entries` are newest first.
pub fn render_as(
    representation: Representation,
    identity: &FeedIdentity,
    links: &PageLinks,
    entries: &[StoredEntry],
) -> Result<Page, Error> {
    Ok(match representation {
        Representation::Atom | Representation::AtomInline => Page {
            body: render_atom(representation, identity, links, entries)?,
            link_header: None,
        },
        Representation::Events => Page {
            body: render_events(identity, entries)?,
            link_header: Some(link_header(links)),
        },
    })
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

/// Renders one page as Atom with links only; `entries` are newest first.
pub fn render(
    identity: &FeedIdentity,
    links: &PageLinks,
    entries: &[StoredEntry],
) -> Result<Vec<u8>, Error> {
    render_atom(Representation::Atom, identity, links, entries)
}

fn render_atom(
    representation: Representation,
    identity: &FeedIdentity,
    links: &PageLinks,
    entries: &[StoredEntry],
) -> Result<Vec<u8>, Error> {
    let own = representation.media_type();
    let mut feed_links = vec![link("self", &links.self_href, own)];
    for (rel, href) in [
        ("current", &links.current),
        ("first", &links.first),
        ("prev-archive", &links.prev_archive),
        ("next-archive", &links.next_archive),
    ] {
        if let Some(href) = href {
            feed_links.push(link(rel, href, own));
        }
    }
    for (other, href) in &links.alternates {
        feed_links.push(link("alternate", href, other.media_type()));
    }
    let inline = representation == Representation::AtomInline;
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
        entries: entries.iter().map(|e| entry(e, inline)).collect(),
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

fn entry(e: &StoredEntry, inline: bool) -> Entry {
    // RFC 4287 §4.1.3.3: content of a media type that is neither text nor XML is Base64.
    let content = e.details.as_ref().filter(|_| inline).map(|json| Content {
        content_type: Some("application/json".to_owned()),
        value: Some(base64::engine::general_purpose::STANDARD.encode(json)),
        ..Content::default()
    });
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
        content,
        ..Entry::default()
    }
}

/// A CloudEvents 1.0 structured event (JSON format), one per entry. `dataref` (the CloudEvents
/// extension for claim checks) is the entry's details link; `title` and `summary` are
/// extension attributes carrying the Atom entry's.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    /// The feed's `atom:id`: `source` + `id` identify the event, as in Atom.
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    time: String,
    title: &'a str,
    summary: &'a str,
    dataref: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    datacontenttype: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

fn render_events(identity: &FeedIdentity, entries: &[StoredEntry]) -> Result<Vec<u8>, Error> {
    let events: Vec<CloudEvent<'_>> = entries
        .iter()
        .map(|e| {
            let data = e.details.as_deref().and_then(|json| {
                serde_json::from_str::<&RawValue>(json)
                    .inspect_err(|err| {
                        tracing::warn!(position = e.position, error = %err,
                            "stored details are not JSON; published by link only")
                    })
                    .ok()
            });
            CloudEvent {
                specversion: "1.0",
                id: &e.entry_id,
                source: &identity.id,
                kind: &e.category,
                time: from_micros(e.updated_us).to_rfc3339_opts(SecondsFormat::Micros, true),
                title: &e.title,
                summary: &e.summary,
                dataref: &e.link,
                datacontenttype: data.map(|_| "application/json"),
                data,
            }
        })
        .collect();
    let mut out = serde_json::to_vec(&events).map_err(Error::RenderJson)?;
    out.push(b'\n');
    Ok(out)
}

/// The page's links as an RFC 8288 `Link` header, with RFC 5005's relation names.
fn link_header(links: &PageLinks) -> String {
    let own = Representation::Events.media_type();
    let mut parts = vec![format!(
        "<{}>; rel=\"self\"; type=\"{own}\"",
        links.self_href
    )];
    for (rel, href) in [
        ("current", &links.current),
        ("first", &links.first),
        ("prev-archive", &links.prev_archive),
        ("next-archive", &links.next_archive),
    ] {
        if let Some(href) = href {
            parts.push(format!("<{href}>; rel=\"{rel}\"; type=\"{own}\""));
        }
    }
    for (other, href) in &links.alternates {
        parts.push(format!(
            "<{href}>; rel=\"alternate\"; type=\"{}\"",
            other.media_type()
        ));
    }
    parts.join(", ")
}
