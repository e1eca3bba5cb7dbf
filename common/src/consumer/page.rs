//! Reading one feed page (RFC 4287 + RFC 5005) into what a consumer needs, validated.
//!
//! A streaming, namespace-aware reader (quick-xml's `NsReader`) rather than a document tree:
//! elements are matched by namespace and local name, so any prefix works (`<atom:feed>`,
//! `<a:entry>`), `xml:base` is tracked per element, and every bound below is enforced while
//! reading, before anything is built. Nothing recurses, so no nesting can exhaust the stack.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;
use url::Url;

/// RFC 4287 §2: the Atom namespace.
pub const ATOM_NS: &[u8] = b"http://www.w3.org/2005/Atom";
/// RFC 5005 §6: the feed history namespace (`fh:archive`).
pub const HISTORY_NS: &[u8] = b"http://purl.org/syndication/history/1.0";

/// The bounds every page is read within. Our own pages are 4 levels deep with a dozen
/// elements per entry; these leave foreign feeds ample room while no document can make the
/// reader use more than a few times its own size.
pub mod bounds {
    /// Deepest element nesting (the root is level 1).
    pub const MAX_DEPTH: usize = 64;
    /// Elements in one document.
    pub const MAX_ELEMENTS: usize = 200_000;
    /// Attributes (namespace declarations included) on one element.
    pub const MAX_ATTRIBUTES: usize = 64;
    /// Entries in one document.
    pub const MAX_ENTRIES: usize = 10_000;
}

/// One entry as the consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub id: String,
    /// Microseconds since the epoch.
    pub updated_us: i64,
    /// The `atom:category` terms (the event type).
    pub categories: Vec<String>,
    /// The details link resolved against the entry's base URI, or why there is none usable.
    pub link: Result<Url, String>,
    /// Inline details: the text of `<content>` of a JSON media type without `src` (Base64
    /// as RFC 4287 §4.1.3.3 asks, or, from lenient publishers, the JSON itself), undecoded.
    pub inline: Option<String>,
}

impl FeedEntry {
    /// RFC 4287 §4.1.1: entries with the same `atom:id` are the same entry; `updated` tells
    /// its revisions apart.
    pub fn is_revision(&self, id: &str, updated_us: i64) -> bool {
        self.id == id && self.updated_us == updated_us
    }
}

/// A parsed page: entries in the order they are applied (oldest first, see [`parse`]), and
/// its RFC 5005 links.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub url: Url,
    /// The feed-level `atom:id`: which feed this page belongs to.
    pub feed_id: String,
    pub entries: Vec<FeedEntry>,
    /// RFC 5005 §3 `first`: on a subscription document, where a reader with nothing yet may
    /// start reading forward (trusted only as far as [`super::forward`] checks it).
    pub first: Option<Url>,
    pub prev_archive: Option<Url>,
    pub next_archive: Option<Url>,
    pub current: Option<Url>,
    /// RFC 5005 §4: `<fh:archive/>` marks a page that will not change.
    pub archive: bool,
    /// The same page with details inline: a feed-level `link rel="alternate"` of type
    /// `application/atom+xml;details=inline`.
    pub inline_alternate: Option<Url>,
}

impl FeedPage {
    /// Index of the revision `id` at `updated_us`, if this page has it.
    pub fn position_of(&self, id: &str, updated_us: i64) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.is_revision(id, updated_us))
    }

    /// Whether this page holds a newer revision of `id` than `updated_us`.
    pub fn supersedes(&self, id: &str, updated_us: i64) -> bool {
        self.entries
            .iter()
            .any(|e| e.id == id && e.updated_us > updated_us)
    }
}

/// Parses `body` fetched from `url`. Refuses anything that is not a well-formed Atom feed
/// with an `atom:id` and valid entries, and anything beyond [`bounds`]; an entry whose details
/// link is missing or unusable is kept (so it can be parked with the reason).
///
/// RFC 4287 §4.1.1 gives the order of entries in a document no significance, so entries are
/// returned sorted by `atom:updated`. Entries with the same `updated` keep the order of the
/// document's own direction: when the entries with distinct times mostly ascend, document
/// order; otherwise (newest first, as RFC 5005 feeds and ours list them) reverse document
/// order.
pub fn parse(url: &Url, body: &[u8]) -> Result<FeedPage, String> {
    let mut page = Reader::new(url, body)
        .read()
        .map_err(|e| format!("{url}: {e}"))?;
    order_entries(&mut page.entries);
    Ok(page)
}

fn order_entries(entries: &mut [FeedEntry]) {
    let (mut up, mut down) = (0usize, 0usize);
    for pair in entries.windows(2) {
        match pair[0].updated_us.cmp(&pair[1].updated_us) {
            std::cmp::Ordering::Less => up += 1,
            std::cmp::Ordering::Greater => down += 1,
            std::cmp::Ordering::Equal => {}
        }
    }
    if up <= down {
        entries.reverse();
    }
    // Stable: ties keep the order chosen above.
    entries.sort_by_key(|e| e.updated_us);
}

/// What an open element is, for what its children and text mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Feed,
    Entry,
    /// A child of `feed` or `entry` whose text is kept (`atom:id`, `atom:updated`).
    Text(Field),
    /// Anything else: its content is skipped (extensions, `atom:source`, `atom:author`…).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    FeedId,
    EntryId,
    EntryUpdated,
    EntryContent,
}

struct Frame {
    role: Role,
    /// XML Base: the base URI in force for this element and its children.
    base: Url,
}

/// Details candidates of an entry, best first (see the README's interoperability rules).
#[derive(Default)]
struct Candidates {
    /// `link rel="alternate"` with a JSON media type.
    json_alternate: Option<Result<Url, String>>,
    /// `content src` (RFC 4287 §4.1.3.2, out-of-line content).
    content_src: Option<Result<Url, String>>,
    /// Any other `link rel="alternate"`.
    alternate: Option<Result<Url, String>>,
}

#[derive(Default)]
struct EntryBuilder {
    id: Option<String>,
    updated: Option<String>,
    categories: Vec<String>,
    details: Candidates,
    inline: Option<String>,
}

struct Reader<'a> {
    url: &'a Url,
    xml: NsReader<&'a [u8]>,
    stack: Vec<Frame>,
    elements: usize,
    text: String,
    page: FeedPage,
    entry: Option<EntryBuilder>,
    feed_id: Option<String>,
}

impl<'a> Reader<'a> {
    fn new(url: &'a Url, body: &'a [u8]) -> Reader<'a> {
        let mut xml = NsReader::from_reader(body);
        xml.config_mut().check_end_names = true;
        xml.resolver_mut()
            .set_max_declarations_per_element(bounds::MAX_ATTRIBUTES);
        Reader {
            url,
            xml,
            stack: Vec::new(),
            elements: 0,
            text: String::new(),
            page: FeedPage {
                url: url.clone(),
                feed_id: String::new(),
                entries: Vec::new(),
                first: None,
                prev_archive: None,
                next_archive: None,
                current: None,
                archive: false,
                inline_alternate: None,
            },
            entry: None,
            feed_id: None,
        }
    }

    fn read(mut self) -> Result<FeedPage, String> {
        let mut seen_root = false;
        loop {
            let (ns, event) = self
                .xml
                .read_resolved_event()
                .map_err(|e| format!("malformed XML: {e}"))?;
            let ns = namespace(ns)?;
            match event {
                Event::Start(e) => {
                    self.open(&ns, &e, &mut seen_root)?;
                }
                Event::Empty(e) => {
                    self.open(&ns, &e, &mut seen_root)?;
                    self.close()?;
                }
                Event::End(_) => self.close()?,
                Event::Text(t) => {
                    if self.keeps_text() {
                        let t = t.xml10_content().map_err(|e| format!("bad text: {e}"))?;
                        self.text.push_str(&t);
                    }
                }
                Event::CData(t) => {
                    if self.keeps_text() {
                        let t = t.decode().map_err(|e| format!("bad CDATA: {e}"))?;
                        self.text.push_str(&t);
                    }
                }
                Event::GeneralRef(r) => {
                    // Only XML's predefined entities and character references exist here: a
                    // DOCTYPE, the only way to define more, is refused.
                    let c = match r
                        .resolve_char_ref()
                        .map_err(|e| format!("bad reference: {e}"))?
                    {
                        Some(c) => c,
                        None => {
                            predefined(&r.decode().map_err(|e| format!("bad reference: {e}"))?)?
                        }
                    };
                    if self.keeps_text() {
                        self.text.push(c);
                    }
                }
                Event::DocType(_) => {
                    // quick-xml never expands DTD entities, and refusing a DOCTYPE outright
                    // keeps "billion laughs" style documents out entirely.
                    return Err("feeds with a DOCTYPE are refused".into());
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
        if !seen_root {
            return Err("not an Atom feed (no <feed> element)".into());
        }
        if !self.stack.is_empty() {
            return Err("malformed XML: the document ends inside an element".into());
        }
        let feed_id = self.feed_id.take().unwrap_or_default();
        if feed_id.trim().is_empty() {
            return Err("the feed has no atom:id".into());
        }
        self.page.feed_id = feed_id;
        Ok(self.page)
    }

    fn keeps_text(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                role: Role::Text(_),
                ..
            })
        )
    }

    fn open(&mut self, ns: &[u8], e: &BytesStart, seen_root: &mut bool) -> Result<(), String> {
        self.elements += 1;
        if self.elements > bounds::MAX_ELEMENTS {
            return Err(format!(
                "more than {} elements: refused",
                bounds::MAX_ELEMENTS
            ));
        }
        if self.stack.len() >= bounds::MAX_DEPTH {
            return Err(format!(
                "elements nested deeper than {} levels: refused",
                bounds::MAX_DEPTH
            ));
        }
        let attrs = self.attributes(e)?;
        let parent_base = self.stack.last().map_or(self.url, |f| &f.base);
        let base = match attrs.get("xml:base") {
            Some(b) => parent_base
                .join(b)
                .map_err(|err| format!("bad xml:base {b:?}: {err}"))?,
            None => parent_base.clone(),
        };
        let local = e.local_name();
        let local = local.as_ref();
        let parent = self.stack.last().map(|f| f.role);
        let atom = ns == ATOM_NS;
        let role = match parent {
            None => {
                if !(atom && local == b"feed") {
                    return Err(if local == b"feed" {
                        "not an Atom feed (root element outside the Atom namespace)".into()
                    } else {
                        "not an Atom feed (no <feed> element)".into()
                    });
                }
                *seen_root = true;
                Role::Feed
            }
            Some(Role::Feed) if atom => match local {
                b"entry" => {
                    if self.page.entries.len() >= bounds::MAX_ENTRIES {
                        return Err(format!(
                            "more than {} entries: refused",
                            bounds::MAX_ENTRIES
                        ));
                    }
                    self.entry = Some(EntryBuilder::default());
                    Role::Entry
                }
                b"id" => Role::Text(Field::FeedId),
                b"link" => {
                    self.feed_link(&attrs, &base);
                    Role::Other
                }
                _ => Role::Other,
            },
            Some(Role::Feed) if ns == HISTORY_NS && local == b"archive" => {
                self.page.archive = true;
                Role::Other
            }
            Some(Role::Entry) if atom => {
                let entry = self.entry.get_or_insert_with(EntryBuilder::default);
                match local {
                    b"id" => Role::Text(Field::EntryId),
                    b"updated" => Role::Text(Field::EntryUpdated),
                    b"category" => {
                        if let Some(term) = attrs.get("term") {
                            entry.categories.push(term.to_owned());
                        }
                        Role::Other
                    }
                    b"link" => {
                        entry_link(entry, &attrs, &base);
                        Role::Other
                    }
                    b"content" => match attrs.get("src") {
                        Some(src) => {
                            entry
                                .details
                                .content_src
                                .get_or_insert_with(|| resolve(&base, src));
                            Role::Other
                        }
                        None if attrs.get("type").is_some_and(is_json) => {
                            Role::Text(Field::EntryContent)
                        }
                        None => Role::Other,
                    },
                    _ => Role::Other,
                }
            }
            _ => Role::Other,
        };
        if matches!(role, Role::Text(_)) {
            self.text.clear();
        }
        self.stack.push(Frame { role, base });
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        let Some(frame) = self.stack.pop() else {
            return Err("malformed XML: an end tag without a start".into());
        };
        match frame.role {
            Role::Text(field) => {
                let text = self.text.trim().to_owned();
                let slot = match (field, &mut self.entry) {
                    (Field::FeedId, _) => &mut self.feed_id,
                    (Field::EntryId, Some(entry)) => &mut entry.id,
                    (Field::EntryUpdated, Some(entry)) => &mut entry.updated,
                    (Field::EntryContent, Some(entry)) => &mut entry.inline,
                    (_, None) => return Ok(()),
                };
                // The first occurrence counts; RFC 4287 allows exactly one.
                slot.get_or_insert(text);
            }
            Role::Entry => {
                let entry = self.entry.take().unwrap_or_default();
                let index = self.page.entries.len();
                self.page.entries.push(finish_entry(index, entry)?);
            }
            Role::Feed | Role::Other => {}
        }
        Ok(())
    }

    /// Attributes of `e` by qualified name, unescaped, bounded in number.
    fn attributes(&self, e: &BytesStart) -> Result<Attrs, String> {
        let mut attrs = Attrs::default();
        for (n, a) in e.attributes().enumerate() {
            if n >= bounds::MAX_ATTRIBUTES {
                return Err(format!(
                    "more than {} attributes on one element: refused",
                    bounds::MAX_ATTRIBUTES
                ));
            }
            let a = a.map_err(|err| format!("malformed attribute: {err}"))?;
            let key = std::str::from_utf8(a.key.as_ref())
                .map_err(|_| "attribute name is not UTF-8".to_owned())?;
            // Only unprefixed attributes and xml:base matter to Atom's elements.
            if key.contains(':') && key != "xml:base" {
                continue;
            }
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| format!("malformed attribute {key}: {err}"))?;
            attrs.0.push((key.to_owned(), value.into_owned()));
        }
        Ok(attrs)
    }

    fn feed_link(&mut self, attrs: &Attrs, base: &Url) {
        let Some(href) = attrs.get("href") else {
            return;
        };
        let slot = match relation(attrs.get("rel")).as_ref() {
            "first" => &mut self.page.first,
            "prev-archive" => &mut self.page.prev_archive,
            "next-archive" => &mut self.page.next_archive,
            "current" => &mut self.page.current,
            "alternate" if attrs.get("type").is_some_and(is_inline_atom) => {
                &mut self.page.inline_alternate
            }
            _ => return,
        };
        if slot.is_none() {
            // An unusable archive link is the same as none only for links we do not follow;
            // resolution fails only for hrefs that are not URI references at all, and a URI
            // with no host (`urn:`, `mailto:`, `data:`) names no page to fetch.
            *slot = base.join(href).ok().filter(Url::has_host);
        }
    }
}

fn entry_link(entry: &mut EntryBuilder, attrs: &Attrs, base: &Url) {
    if relation(attrs.get("rel")) != "alternate" {
        return;
    }
    let Some(href) = attrs.get("href") else {
        return;
    };
    let resolved = resolve(base, href);
    let slot = if attrs.get("type").is_some_and(is_json) {
        &mut entry.details.json_alternate
    } else {
        &mut entry.details.alternate
    };
    slot.get_or_insert(resolved);
}

fn finish_entry(index: usize, e: EntryBuilder) -> Result<FeedEntry, String> {
    let id = e.id.filter(|id| !id.is_empty());
    let Some(id) = id else {
        return Err(format!("entry {index} has no atom:id"));
    };
    let updated = e
        .updated
        .ok_or_else(|| format!("entry {id} has no valid atom:updated"))?;
    // RFC 4287 §3.3: an RFC 3339 date-time, any offset, fractions optional.
    let updated_us = chrono::DateTime::parse_from_rfc3339(&updated)
        .map(|t| t.timestamp_micros())
        .ok()
        .filter(|us| *us > 0)
        .ok_or_else(|| format!("entry {id} has no valid atom:updated ({updated:?})"))?;
    let details = e.details;
    let link = details
        .json_alternate
        .or(details.content_src)
        .or(details.alternate)
        .unwrap_or_else(|| {
            Err(format!(
                "entry {id} has no details link (no link rel=\"alternate\" and no content src)"
            ))
        });
    Ok(FeedEntry {
        id,
        updated_us,
        categories: e.categories,
        link,
        inline: e.inline.filter(|text| !text.is_empty()),
    })
}

fn resolve(base: &Url, href: &str) -> Result<Url, String> {
    base.join(href)
        .map_err(|err| format!("bad link {href:?}: {err}"))
}

/// RFC 4287 §4.2.7.2: no `rel` means `alternate`; IANA-registered names may be written as
/// the full IRI.
fn relation(rel: Option<&str>) -> Cow<'_, str> {
    let rel = rel.map(str::trim).unwrap_or("alternate");
    Cow::Borrowed(
        rel.strip_prefix("http://www.iana.org/assignments/relation/")
            .unwrap_or(rel),
    )
}

fn is_json(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// `application/atom+xml;details=inline`, whatever the spacing, case and quoting.
fn is_inline_atom(media_type: &str) -> bool {
    let mut parts = media_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/atom+xml")
        && parts.any(|p| {
            p.split_once('=').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("details")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("inline")
            })
        })
}

fn namespace(ns: ResolveResult<'_>) -> Result<Vec<u8>, String> {
    match ns {
        ResolveResult::Bound(Namespace(ns)) => Ok(ns.to_vec()),
        ResolveResult::Unbound => Ok(Vec::new()),
        ResolveResult::Unknown(prefix) => Err(format!(
            "undeclared namespace prefix {:?}",
            String::from_utf8_lossy(&prefix)
        )),
    }
}

fn predefined(name: &str) -> Result<char, String> {
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(format!("undefined entity &{other};")),
    }
}

#[derive(Default)]
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests;
