//! Proactive negotiation (RFC 9110 §12): which representation of a feed page, and which
//! content coding, a request gets.
//!
//! Every representation also has a URL of its own (see [`Representation::segment`]); the
//! generic feed URLs pick one by `Accept`. Either way the answer varies with `Accept` and
//! `Accept-Encoding`, and says so with `Vary`.

use std::fmt;

/// The representations of every feed page. The same entries, positions and paging in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Representation {
    /// Atom with a link to each entry's details: the default, the design's "just IDs" style.
    Atom,
    /// Atom whose entries also carry the details as they were at that event, in
    /// `<content type="application/json">` (Base64, as RFC 4287 §4.1.3.3 requires for a
    /// non-text, non-XML media type).
    AtomInline,
    /// A CloudEvents JSON batch (`application/cloudevents-batch+json`): one structured event
    /// per entry with the details as `data` and the link as `dataref`; paging links in the
    /// `Link` header (RFC 8288), with RFC 5005's relation names.
    Events,
}

impl Representation {
    /// In order of preference when a request accepts several equally.
    pub const ALL: [Representation; 3] = [
        Representation::Atom,
        Representation::AtomInline,
        Representation::Events,
    ];

    /// The media type, as advertised in alternate links and matched against `Accept`.
    pub fn media_type(self) -> &'static str {
        match self {
            Representation::Atom => "application/atom+xml",
            Representation::AtomInline => "application/atom+xml;details=inline",
            Representation::Events => "application/cloudevents-batch+json",
        }
    }

    /// The `Content-Type` of a response.
    pub fn content_type(self) -> &'static str {
        match self {
            Representation::Atom | Representation::AtomInline => self.media_type(),
            Representation::Events => "application/cloudevents-batch+json; charset=utf-8",
        }
    }

    /// Path segment after the feed's path: `/order/feed{segment}` and
    /// `/order/feed{segment}/archive/{n}`.
    pub fn segment(self) -> &'static str {
        match self {
            Representation::Atom => "",
            Representation::AtomInline => "/inline",
            Representation::Events => "/events",
        }
    }

    /// Whether its entries carry the details snapshots.
    pub fn has_details(self) -> bool {
        self != Representation::Atom
    }

    /// Marks validators, so no two representations share an `ETag`.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Representation::Atom => "",
            Representation::AtomInline => "i",
            Representation::Events => "e",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// How well a media range matches: `None` when it does not, else its specificity.
    fn specificity(self, range: &MediaRange<'_>) -> Option<u8> {
        let (kind, sub) = match self {
            Representation::Atom | Representation::AtomInline => ("application", "atom+xml"),
            Representation::Events => ("application", "cloudevents-batch+json"),
        };
        let details = range.param("details");
        match (range.kind, range.sub) {
            ("*", "*") => Some(0),
            (k, "*") if k.eq_ignore_ascii_case(kind) => Some(1),
            // A JSON client asking for plain JSON gets the JSON representation.
            (k, s)
                if self == Representation::Events
                    && k.eq_ignore_ascii_case("application")
                    && s.eq_ignore_ascii_case("json") =>
            {
                Some(2)
            }
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => {
                match (self, details) {
                    (_, None) => Some(2),
                    (Representation::AtomInline, Some(d)) if d.eq_ignore_ascii_case("inline") => {
                        Some(3)
                    }
                    (Representation::Atom, Some(d)) if d.eq_ignore_ascii_case("links") => Some(3),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A content coding of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// In order of preference when a request accepts several equally: zstd decompresses
    /// fastest, gzip is understood everywhere.
    pub const PREFERENCE: [Encoding; 3] = [Encoding::Zstd, Encoding::Gzip, Encoding::Identity];

    pub fn token(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Appended to the identity body's `ETag`: each coding is other bytes, so it gets its own
    /// strong validator (RFC 9110 §8.8.3).
    pub(crate) fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => ".gz",
            Encoding::Zstd => ".zst",
        }
    }

    fn matches(self, coding: &str) -> Option<u8> {
        match coding {
            "*" => Some(0),
            c if c.eq_ignore_ascii_case(self.token()) => Some(1),
            c if self == Encoding::Gzip && c.eq_ignore_ascii_case("x-gzip") => Some(1),
            _ => None,
        }
    }
}

/// Nothing the request accepts can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAcceptable(pub String);

impl fmt::Display for NotAcceptable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The representation among `offered` (in preference order) that `accept` rates highest.
/// No `Accept` header, or one of which nothing parses, accepts anything.
pub fn representation(
    accept: Option<&str>,
    offered: &[Representation],
) -> Result<Representation, NotAcceptable> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return offered
            .first()
            .copied()
            .ok_or_else(|| NotAcceptable("nothing is offered".into()));
    };
    let ranges: Vec<MediaRange<'_>> = accept.split(',').filter_map(MediaRange::parse).collect();
    if ranges.is_empty() {
        // Nothing in it parses: ignored, as if absent (RFC 9110 §12.5.1 allows either).
        return representation(None, offered);
    }
    best(offered, |r| {
        ranges
            .iter()
            .filter_map(|range| r.specificity(range).map(|s| (s, range.q)))
            .max_by_key(|(s, _)| *s)
            .map_or(0, |(_, q)| q)
    })
    .ok_or_else(|| {
        let types: Vec<&str> = offered.iter().map(|r| r.media_type()).collect();
        NotAcceptable(format!(
            "Accept: {accept} matches none of {}",
            types.join(", ")
        ))
    })
}

/// The content coding `accept_encoding` rates highest. Without the header, or when it lists
/// nothing we have, the body goes uncoded unless `identity` is explicitly refused.
pub fn encoding(accept_encoding: Option<&str>) -> Result<Encoding, NotAcceptable> {
    let Some(header) = accept_encoding else {
        return Ok(Encoding::Identity);
    };
    let codings: Vec<(&str, u16)> = header.split(',').filter_map(coding).collect();
    best(&Encoding::PREFERENCE, |e| {
        let rated = codings
            .iter()
            .filter_map(|(c, q)| e.matches(c).map(|s| (s, *q)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, q)| q);
        match (e, rated) {
            (_, Some(q)) => q,
            // RFC 9110 §12.5.3: identity is acceptable unless excluded.
            (Encoding::Identity, None) => 1,
            (_, None) => 0,
        }
    })
    .ok_or_else(|| NotAcceptable(format!("Accept-Encoding: {header} refuses every coding")))
}

/// The first of `offered` with the highest weight above zero.
fn best<T: Copy>(offered: &[T], weight: impl Fn(T) -> u16) -> Option<T> {
    let mut chosen: Option<(T, u16)> = None;
    for &o in offered {
        let w = weight(o);
        if w > 0 && chosen.is_none_or(|(_, best)| w > best) {
            chosen = Some((o, w));
        }
    }
    chosen.map(|(o, _)| o)
}

/// One element of `Accept`: `type/subtype` with parameters and a weight in thousandths.
struct MediaRange<'a> {
    kind: &'a str,
    sub: &'a str,
    params: Vec<(&'a str, &'a str)>,
    q: u16,
}

impl<'a> MediaRange<'a> {
    fn parse(element: &'a str) -> Option<MediaRange<'a>> {
        let mut parts = element.split(';');
        let (kind, sub) = parts.next()?.trim().split_once('/')?;
        let mut range = MediaRange {
            kind: kind.trim(),
            sub: sub.trim(),
            params: Vec::new(),
            q: 1000,
        };
        for p in parts {
            let (name, value) = p.split_once('=')?;
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            if name.eq_ignore_ascii_case("q") {
                range.q = weight(value)?;
            } else {
                range.params.push((name, value));
            }
        }
        Some(range)
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// One element of `Accept-Encoding`: a coding and its weight.
fn coding(element: &str) -> Option<(&str, u16)> {
    let mut parts = element.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() {
        return None;
    }
    let mut q = 1000;
    for p in parts {
        if let Some((n, v)) = p.split_once('=') {
            if n.trim().eq_ignore_ascii_case("q") {
                q = weight(v.trim())?;
            }
        }
    }
    Some((name, q))
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths. A malformed weight drops its element.
fn weight(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Representation::*;

    fn pick(accept: &str) -> Result<Representation, NotAcceptable> {
        representation(Some(accept), &Representation::ALL)
    }

    #[test]
    fn atom_with_links_is_the_default() {
        assert_eq!(representation(None, &Representation::ALL), Ok(Atom));
        assert_eq!(pick("*/*"), Ok(Atom));
        assert_eq!(pick("application/atom+xml"), Ok(Atom));
        assert_eq!(pick("application/*"), Ok(Atom));
        assert_eq!(pick("text/html, */*;q=0.1"), Ok(Atom));
    }

    #[test]
    fn accept_chooses_by_weight_then_specificity() {
        assert_eq!(pick("application/atom+xml;details=inline"), Ok(AtomInline));
        assert_eq!(
            pick("application/atom+xml; details=\"inline\""),
            Ok(AtomInline)
        );
        assert_eq!(pick("application/cloudevents-batch+json"), Ok(Events));
        assert_eq!(pick("application/json"), Ok(Events));
        assert_eq!(
            pick("application/atom+xml;q=0.5, application/cloudevents-batch+json"),
            Ok(Events)
        );
        // The more specific range decides: inline refused, plain Atom welcome.
        assert_eq!(
            pick("application/atom+xml;details=inline;q=0, application/atom+xml"),
            Ok(Atom)
        );
        assert_eq!(pick("application/atom+xml;q=0, */*"), Ok(Events));
    }

    #[test]
    fn an_accept_nothing_matches_is_refused_with_what_is_offered() {
        let err = pick("text/html").unwrap_err();
        assert!(err.0.contains("application/atom+xml"), "{err}");
        assert!(pick("application/atom+xml;details=embedded").is_err());
        assert!(pick("*/*;q=0").is_err());
        assert!(representation(Some("application/json"), &[Atom]).is_err());
        assert_eq!(
            representation(Some("*/*"), &[AtomInline]),
            Ok(AtomInline),
            "one URL, one representation"
        );
    }

    #[test]
    fn malformed_elements_are_ignored() {
        assert_eq!(pick("garbage, application/json"), Ok(Events));
        assert_eq!(pick("application/json;q=2, application/atom+xml"), Ok(Atom));
        assert_eq!(pick("application/json;q=0.1234"), Ok(Atom));
    }

    #[test]
    fn encodings_by_weight_then_preference() {
        assert_eq!(encoding(None), Ok(Encoding::Identity));
        assert_eq!(encoding(Some("gzip")), Ok(Encoding::Gzip));
        assert_eq!(encoding(Some("x-gzip")), Ok(Encoding::Gzip));
        assert_eq!(
            encoding(Some("gzip, deflate, br, zstd")),
            Ok(Encoding::Zstd)
        );
        assert_eq!(encoding(Some("zstd;q=0.5, gzip")), Ok(Encoding::Gzip));
        assert_eq!(encoding(Some("br")), Ok(Encoding::Identity));
        assert_eq!(encoding(Some("*")), Ok(Encoding::Zstd));
        assert_eq!(encoding(Some("gzip;q=0")), Ok(Encoding::Identity));
        assert!(encoding(Some("identity;q=0")).is_err());
        assert!(encoding(Some("br, *;q=0")).is_err());
        assert_eq!(encoding(Some("*;q=0, identity")), Ok(Encoding::Identity));
    }
}
