//! What a page holds, structurally: which RFC 4287 elements the feed and each entry have, and
//! the entry ids in document order. The consumer's parser reads what a consumer needs and
//! skips the rest; a conformance check needs to know what is missing.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use common::consumer::page::{ATOM_NS, HISTORY_NS};

/// Which of the elements RFC 4287 requires (or recommends) an element has.
#[derive(Debug, Clone, Default)]
pub struct Present {
    pub id: bool,
    pub title: bool,
    pub updated: bool,
    pub author: bool,
    /// `atom:content` (entries).
    pub content: bool,
    /// `link rel="alternate"` (or without `rel`, which means alternate).
    pub alternate: bool,
    /// `link rel="self"` (feeds).
    pub self_link: bool,
}

/// One entry as written.
#[derive(Debug, Clone, Default)]
pub struct EntryOutline {
    pub id: String,
    pub present: Present,
}

#[derive(Debug, Clone, Default)]
pub struct Outline {
    pub feed: Present,
    /// RFC 5005 §2: `<fh:complete/>`, the whole feed in this one document.
    pub complete: bool,
    /// In document order.
    pub entries: Vec<EntryOutline>,
}

impl Outline {
    /// RFC 4287 §4.1.1 / §4.1.2 MUSTs this page breaks, one phrase each.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let f = &self.feed;
        for (has, what) in [
            (f.id, "atom:id"),
            (f.title, "atom:title"),
            (f.updated, "atom:updated"),
        ] {
            if !has {
                missing.push(format!("feed without {what}"));
            }
        }
        let mut entry_authors = true;
        for (i, e) in self.entries.iter().enumerate() {
            let p = &e.present;
            let name = if e.id.is_empty() {
                format!("entry {}", i + 1)
            } else {
                format!("entry {}", e.id)
            };
            for (has, what) in [
                (p.id, "atom:id"),
                (p.title, "atom:title"),
                (p.updated, "atom:updated"),
                (
                    p.content || p.alternate,
                    "atom:content or an alternate link",
                ),
            ] {
                if !has {
                    missing.push(format!("{name} without {what}"));
                }
            }
            entry_authors &= p.author;
        }
        // §4.1.1: the feed needs an author unless every entry has one.
        if !f.author && !entry_authors {
            missing.push("no atom:author on the feed nor on every entry".into());
        }
        missing
    }
}

/// Reads `body`; `Err` when it is not XML or its root is not `atom:feed`.
pub fn read(body: &[u8]) -> Result<Outline, String> {
    let mut xml = NsReader::from_reader(body);
    xml.config_mut().check_end_names = true;
    let mut outline = Outline::default();
    // Local names of the open elements, `None` outside the Atom namespace.
    let mut path: Vec<Option<Vec<u8>>> = Vec::new();
    let mut text = String::new();
    let mut seen_root = false;
    loop {
        let (ns, event) = xml
            .read_resolved_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        let atom = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == ATOM_NS);
        let history = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == HISTORY_NS);
        if let Event::Start(e) | Event::Empty(e) = &event {
            if history && e.local_name().as_ref() == b"complete" && is_path(&path, &[b"feed"]) {
                outline.complete = true;
            }
        }
        match event {
            Event::Start(e) => {
                seen_root = true;
                open(&mut outline, &path, atom, &e)?;
                path.push(atom.then(|| e.local_name().as_ref().to_vec()));
                text.clear();
            }
            Event::Empty(e) => {
                seen_root = true;
                open(&mut outline, &path, atom, &e)?
            }
            Event::Text(t) => {
                if let Ok(t) = t.xml10_content() {
                    text.push_str(&t);
                }
            }
            Event::End(_) => {
                if is_path(&path, &[b"feed", b"entry", b"id"]) {
                    if let Some(entry) = outline.entries.last_mut() {
                        entry.id = text.trim().to_owned();
                    }
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err("malformed XML: the document ends inside an element".into());
    }
    if !seen_root {
        return Err("no XML element at all".into());
    }
    Ok(outline)
}

fn is_path(path: &[Option<Vec<u8>>], names: &[&[u8]]) -> bool {
    path.len() == names.len()
        && path
            .iter()
            .zip(names)
            .all(|(p, n)| p.as_deref() == Some(*n))
}

fn open(
    outline: &mut Outline,
    path: &[Option<Vec<u8>>],
    atom: bool,
    e: &BytesStart,
) -> Result<(), String> {
    let local = e.local_name();
    let local = local.as_ref();
    if path.is_empty() {
        return if atom && local == b"feed" {
            Ok(())
        } else {
            Err(format!(
                "the root element is <{}>, not an Atom <feed>",
                String::from_utf8_lossy(e.name().as_ref())
            ))
        };
    }
    if !atom {
        return Ok(());
    }
    let present = if is_path(path, &[b"feed"]) {
        if local == b"entry" {
            outline.entries.push(EntryOutline::default());
            return Ok(());
        }
        &mut outline.feed
    } else if is_path(path, &[b"feed", b"entry"]) {
        match outline.entries.last_mut() {
            Some(entry) => &mut entry.present,
            None => return Ok(()),
        }
    } else {
        return Ok(());
    };
    match local {
        b"id" => present.id = true,
        b"title" => present.title = true,
        b"updated" => present.updated = true,
        b"author" => present.author = true,
        b"content" => present.content = true,
        b"link" => {
            let rel = e.try_get_attribute("rel").ok().flatten().and_then(|a| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            });
            match rel.as_deref() {
                None
                | Some("alternate")
                | Some("http://www.iana.org/assignments/relation/alternate") => {
                    present.alternate = true
                }
                Some("self") | Some("http://www.iana.org/assignments/relation/self") => {
                    present.self_link = true
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_feed_misses_nothing_and_keeps_document_order() {
        let o = read(br#"<a:feed xmlns:a="http://www.w3.org/2005/Atom"><a:id>f</a:id><a:title>t</a:title><a:updated>2026-01-01T00:00:00Z</a:updated><a:author><a:name>n</a:name></a:author><a:link rel="self" href="x"/>
            <a:entry><a:id>2</a:id><a:title>b</a:title><a:updated>2026-01-01T00:00:00Z</a:updated><a:link href="d/2"/></a:entry>
            <a:entry><a:id>1</a:id><a:title>a</a:title><a:updated>2026-01-01T00:00:00Z</a:updated><a:content>c</a:content></a:entry></a:feed>"#).unwrap();
        assert_eq!(o.missing(), Vec::<String>::new());
        assert!(o.feed.self_link);
        let ids: Vec<&str> = o.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["2", "1"]);
    }

    #[test]
    fn missing_required_elements_are_named() {
        let o = read(br#"<feed xmlns="http://www.w3.org/2005/Atom"><id>f</id><updated>2026-01-01T00:00:00Z</updated>
            <entry><id>1</id><updated>2026-01-01T00:00:00Z</updated><link rel="related" href="x"/></entry></feed>"#).unwrap();
        let missing = o.missing();
        assert!(
            missing.contains(&"feed without atom:title".to_string()),
            "{missing:?}"
        );
        assert!(missing.contains(&"entry 1 without atom:title".to_string()));
        assert!(missing.contains(&"entry 1 without atom:content or an alternate link".to_string()));
        assert!(missing.contains(&"no atom:author on the feed nor on every entry".to_string()));
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(read(b"<html><body>hi</body></html>")
            .unwrap_err()
            .contains("<html>"));
        assert!(read(b"<feed><id>x</id></feed>")
            .unwrap_err()
            .contains("not an Atom"));
        assert!(read(b"{\"json\": true}").is_err());
    }
}
